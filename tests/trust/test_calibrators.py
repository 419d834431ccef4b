"""Post-hoc calibrators: rankings kept, parameters recovered, replay equal to scikit-learn."""

from __future__ import annotations

import numpy as np
import pytest
from scipy.special import softmax
from sklearn.metrics import roc_auc_score

from medlens.errors import ConfigError, InputError
from medlens.metrics.calibration import ece
from medlens.trust.calibrators import (
    METHODS,
    BiasCorrectedTemperature,
    TemperatureScaling,
    Uncalibrated,
    binary_log_odds,
    calibrator_from_dict,
    fit_calibrator,
)


def _overconfident(rng: np.random.Generator, n: int, k: int, temperature: float):
    """Labels drawn from softmax(z), reported as softmax(z * temperature): too sharp."""
    z = rng.normal(size=(n, k)) * 1.5
    truth = softmax(z, axis=1)
    labels = np.array([rng.choice(k, p=row) for row in truth])
    return softmax(z * temperature, axis=1), labels


@pytest.mark.parametrize("k", [2, 3])
def test_temperature_recovers_the_known_overconfidence_and_keeps_the_ranking(rng, k) -> None:
    probs, labels = _overconfident(rng, 20_000, k, temperature=2.5)
    calibrator = fit_calibrator("temperature", probs, labels)
    assert isinstance(calibrator, TemperatureScaling)
    assert calibrator.temperature == pytest.approx(2.5, rel=0.05)
    calibrated = calibrator.transform(probs)
    np.testing.assert_allclose(calibrated.sum(axis=1), 1.0, atol=1e-12)
    assert ece(labels, calibrated, calibrated.argmax(1)) < 0.5 * ece(labels, probs, probs.argmax(1))
    assert (calibrated.argmax(1) == probs.argmax(1)).all()
    for c in range(k):
        y = (labels == c).astype(int)
        before, after = roc_auc_score(y, probs[:, c]), roc_auc_score(y, calibrated[:, c])
        if k == 2:  # p(class 1) is a monotone function of the raw one: the very same AUC
            assert after == before
        else:  # one-vs-rest scores also depend on the other classes' logits
            assert after == pytest.approx(before, abs=0.005)


@pytest.mark.parametrize("k", [2, 3])
def test_bcts_recovers_temperature_and_class_offset_that_temperature_alone_cannot(rng, k) -> None:
    # a class-weighted loss shifts the logits: reported = softmax(2 z + shift) for labels of
    # softmax(z); the exact inverse is T = 2 and bias = -shift / 2 (relative to class 0)
    z = rng.normal(size=(20_000, k)) * 1.5
    labels = np.array([rng.choice(k, p=row) for row in softmax(z, axis=1)])
    shift = np.array([0.0, 1.2, -0.6][:k])
    probs = softmax(2.0 * z + shift, axis=1)
    bcts = fit_calibrator("bcts", probs, labels)
    assert isinstance(bcts, BiasCorrectedTemperature)
    assert bcts.temperature == pytest.approx(2.0, rel=0.05)
    expected_bias = -shift[1:] / 2
    np.testing.assert_allclose(bcts.bias[-len(expected_bias) :], expected_bias, atol=0.06)
    calibrated = bcts.transform(probs)
    np.testing.assert_allclose(calibrated.sum(axis=1), 1.0, atol=1e-12)
    # the class mix comes right; a temperature alone leaves it off
    temperature = fit_calibrator("temperature", probs, labels).transform(probs)
    share = np.bincount(labels, minlength=k) / len(labels)
    assert np.abs(calibrated.mean(axis=0) - share).max() < 0.01
    assert (
        np.abs(temperature.mean(axis=0) - share).max()
        > 2 * np.abs(calibrated.mean(axis=0) - share).max()
    )
    if k == 2:  # p(class 1) monotone in the raw one: the very same AUC
        assert roc_auc_score(labels, calibrated[:, 1]) == roc_auc_score(labels, probs[:, 1])


def test_binary_ranking_is_kept_even_at_saturated_float32_probabilities() -> None:
    p1 = np.array([0.0, 1e-30, 0.2, 0.5, 0.9, 1 - 1e-15, 1.0])
    probs = np.column_stack([1 - p1, p1])
    odds = binary_log_odds(p1)
    assert (np.diff(odds) > 0).all()  # strictly increasing, finite at 0 and 1
    out = TemperatureScaling(0.5).transform(probs)[:, 1]
    assert (np.diff(out) >= 0).all()  # never reordered (float64 may saturate at the ends)
    f32 = np.array([0.1, 0.99999994, 1.0], dtype=np.float32).astype(float)
    sharp = TemperatureScaling(3.0).transform(np.column_stack([1 - f32, f32]))[:, 1]
    assert (np.diff(sharp) > 0).all()  # float32's last steps below 1 stay apart


@pytest.mark.parametrize("method", ["temperature", "isotonic"])
@pytest.mark.parametrize("k", [2, 3])
def test_replay_from_the_recorded_numbers_equals_scikit_learn(rng, method, k) -> None:
    from sklearn.base import BaseEstimator, ClassifierMixin
    from sklearn.calibration import CalibratedClassifierCV
    from sklearn.frozen import FrozenEstimator

    from medlens.trust.calibrators import log_scores

    probs, labels = _overconfident(rng, 3000, k, temperature=2.0)

    class Scores(ClassifierMixin, BaseEstimator):  # the scores as scikit-learn reads them
        def fit(self, X, y=None):
            self.classes_ = np.arange(k)
            return self

        def decision_function(self, X):
            return X[:, 0] / 2 if k == 2 else X

        def predict(self, X):
            return np.zeros(len(X), dtype=int)

    x = log_scores(probs)
    x = x[:, None] if x.ndim == 1 else x
    reference = CalibratedClassifierCV(
        FrozenEstimator(Scores().fit(x)), method=method, cv=[(np.arange(3000), np.arange(3000))]
    ).fit(x, labels)
    recorded = calibrator_from_dict(fit_calibrator(method, probs, labels).to_dict())
    np.testing.assert_allclose(recorded.transform(probs), reference.predict_proba(x), atol=1e-9)


@pytest.mark.parametrize("method", METHODS)
def test_every_method_round_trips_through_its_json_record(rng, method) -> None:
    probs, labels = _overconfident(rng, 500, 3, temperature=2.0)
    fitted = fit_calibrator(method, probs, labels)
    again = calibrator_from_dict(fitted.to_dict())
    np.testing.assert_allclose(again.transform(probs), fitted.transform(probs), atol=1e-12)
    assert calibrator_from_dict(None) == Uncalibrated()


def test_bad_method_missing_class_and_malformed_record_are_one_clear_error(rng) -> None:
    probs, labels = _overconfident(rng, 100, 3, temperature=1.0)
    with pytest.raises(ConfigError, match="calibration.method"):
        fit_calibrator("platt", probs, labels)
    with pytest.raises(InputError, match="class 2 has none"):
        fit_calibrator("temperature", probs, np.where(labels == 2, 0, labels))
    with pytest.raises(InputError, match="malformed"):
        calibrator_from_dict({"method": "temperature", "temperature": -1})
    with pytest.raises(InputError, match="unknown method"):
        calibrator_from_dict({"method": "beta"})


def test_cross_fitted_choice_prefers_the_bias_when_the_class_mix_is_off(rng) -> None:
    from medlens.trust.calibration_choice import best_by_log_loss, cross_fitted_scores

    z = rng.normal(size=(600, 2)) * 1.5
    labels = np.array([rng.choice(2, p=row) for row in softmax(z, axis=1)])
    shifted = softmax(2.0 * z + np.array([0.0, 1.5]), axis=1)  # sharp and off-centre
    table = cross_fitted_scores(shifted, labels, seed=0)
    assert set(table) == {"none", "temperature", "bcts", "dirichlet", "isotonic"}
    assert table["bcts"]["log_loss"] < table["temperature"]["log_loss"] < table["none"]["log_loss"]
    assert best_by_log_loss(table) in {"bcts", "dirichlet"}  # the two with an intercept
    # well calibrated already: nothing beats leaving it alone by much
    calm = cross_fitted_scores(softmax(z, axis=1), labels, methods=("none", "bcts"))
    assert calm["bcts"]["log_loss"] == pytest.approx(calm["none"]["log_loss"], abs=0.01)
    with pytest.raises(InputError, match="class 1 has 1 validation cases"):
        cross_fitted_scores(shifted[:50], np.r_[np.zeros(49, int), 1])
