"""Post-hoc calibrators: rankings kept, parameters recovered, replay equal to scikit-learn."""

from __future__ import annotations

import numpy as np
import pytest
from scipy.special import softmax
from sklearn.metrics import roc_auc_score

from medlens.errors import ConfigError, InputError
from medlens.metrics.calibration import ece
from medlens.trust.calibrators import (
    DIRICHLET_CS,
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
@pytest.mark.parametrize("k", [2, 3])
def test_every_method_round_trips_through_its_json_record(rng, method, k) -> None:
    probs, labels = _overconfident(rng, 500, k, temperature=2.0)
    fitted = fit_calibrator(method, probs, labels)
    # the load-time checks accept every fit, for its own class count and without one
    for n_classes in (k, None):
        again = calibrator_from_dict(fitted.to_dict(), n_classes)
        np.testing.assert_allclose(again.transform(probs), fitted.transform(probs), atol=1e-12)
    assert calibrator_from_dict(None) == Uncalibrated()
    if method not in ("none", "temperature"):  # fitted on k classes, refused for another
        with pytest.raises(InputError, match="classes needs|one per class"):
            calibrator_from_dict(fitted.to_dict(), 5 - k)


def test_bad_method_missing_class_and_malformed_record_are_one_clear_error(rng) -> None:
    probs, labels = _overconfident(rng, 100, 3, temperature=1.0)
    with pytest.raises(ConfigError, match="calibration.method"):
        fit_calibrator("platt", probs, labels)
    with pytest.raises(InputError, match="class 2 has none"):
        fit_calibrator("temperature", probs, np.where(labels == 2, 0, labels))
    with pytest.raises(InputError, match="temperature must be above 0"):
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


_TEMPERATURE = {"method": "temperature", "temperature": 1.5}
_BCTS = {"method": "bcts", "temperature": 1.0, "bias": [0.5]}
_DIRICHLET = {"method": "dirichlet", "coef": [[-1.0, 1.0]], "intercept": [0.0]}
_ISOTONIC = {"method": "isotonic", "knots_x": [[-1.0, 0.0, 2.0]], "knots_y": [[0.1, 0.5, 0.9]]}
NAN = float("nan")


@pytest.mark.parametrize(
    ("record", "field"),
    [
        ({}, "records no method"),
        ({"temperature": 2.0}, "records no method"),
        ({"method": None}, "unknown method"),
        (_TEMPERATURE | {"temperature": NAN}, "temperature holds NaN"),
        (_TEMPERATURE | {"temperature": float("inf")}, "temperature holds NaN or infinite"),
        (_TEMPERATURE | {"temperature": "warm"}, "temperature must be a number"),
        ({"method": "temperature"}, "temperature is missing"),
        (_BCTS | {"bias": []}, "bias is empty"),
        (_BCTS | {"bias": [0.5, 9]}, "bias has 2 values; a run of 2 classes needs 1"),
        (_BCTS | {"bias": [0.0, NAN]}, "bias holds NaN"),
        (_BCTS | {"temperature": 0.0}, "temperature must be above 0"),
        (_BCTS | {"at_bound": "bias"}, "at_bound must be a list"),
        (_DIRICHLET | {"coef": [[1.0, 2.0, 3.0]]}, "coef (rows have 3 values|has 1 rows)"),
        (_DIRICHLET | {"coef": [[NAN, 1.0]]}, "coef holds NaN"),
        (_DIRICHLET | {"coef": [[1.0, 2.0], [3.0]]}, "coef must be a list of lists"),
        (
            _DIRICHLET | {"coef": [[1.0, 2.0], [3.0, 4.0]]},
            "coef has 2 rows; a run of 2 classes needs 1",
        ),
        (_DIRICHLET | {"intercept": [0.0, 1.0]}, "intercept has 2 values; coef has 1 rows"),
        (_DIRICHLET | {"intercept": []}, "intercept is empty"),
        (_DIRICHLET | {"C": 0.0, "C_chosen_by": "cv5"}, "C must be above 0"),
        (_DIRICHLET | {"C": NAN, "C_chosen_by": "cv5"}, "C holds NaN"),
        (_DIRICHLET | {"C": 1.0}, "C_chosen_by must name how C was chosen"),
        (_ISOTONIC | {"knots_y": [[0.0, 1.0]]}, r"knots_y\[0\] has 2 values; knots_x\[0\] has 3"),
        (_ISOTONIC | {"knots_x": [[2.0, 0.0, -1.0]]}, r"knots_x\[0\] must be sorted"),
        (_ISOTONIC | {"knots_y": [[-5.0, 0.5, 7.0]]}, r"knots_y\[0\] must lie in \[0, 1\]"),
        (_ISOTONIC | {"knots_x": [[]], "knots_y": [[]]}, r"knots_x\[0\] is empty"),
        (_ISOTONIC | {"knots_x": [[0.0, NAN, 1.0]]}, r"knots_x\[0\] holds NaN"),
        (_ISOTONIC | {"knots_y": [[0.1, 0.5, 0.9], [0.1, 0.5, 0.9]]}, "knots_y has 2 lists"),
        (_ISOTONIC | {"knots_x": []}, "knots_x must be a non-empty list"),
    ],
)
def test_every_malformed_parameter_is_refused_at_load_naming_its_field(record, field) -> None:
    for n_classes in (2, None):
        with pytest.raises(InputError, match=field) as caught:
            calibrator_from_dict(record, n_classes)
        assert caught.value.path == "calibration"  # read_calibrator puts the file there


def test_the_class_count_is_checked_against_the_run_where_known() -> None:
    three = {"method": "bcts", "temperature": 1.0, "bias": [0.0, 0.5, -0.5]}
    assert calibrator_from_dict(three, 3).transform(np.full((1, 3), 1 / 3)).shape == (1, 3)
    with pytest.raises(InputError, match="bias has 3 values; a run of 2 classes needs 1"):
        calibrator_from_dict(three, 2)
    with pytest.raises(InputError, match="coef rows have 2 values, one per class: 3"):
        calibrator_from_dict(_DIRICHLET, 3)
    with pytest.raises(InputError, match="knots_x has 1 lists; a run of 3 classes needs 3"):
        calibrator_from_dict(_ISOTONIC, 3)
    # and a calibrator applied to probabilities of another class count says so
    with pytest.raises(InputError, match="fitted on 3 classes, not 2"):
        calibrator_from_dict(three).transform(np.array([[0.4, 0.6]]))
    assert calibrator_from_dict({"method": "none"}, 3) == Uncalibrated()


def _binary_loss(scores: np.ndarray, labels: np.ndarray, inv_t: float, bias: float) -> float:
    z = scores * inv_t + bias
    return float(np.mean(np.logaddexp(0.0, z) - labels * z))


def test_bcts_reaches_an_optimum_beyond_the_old_bias_bound(rng, caplog) -> None:
    # the audit's network: all log-odds of class 1 in [0.66, 0.99], the labels a steep
    # function of them; the optimum needs T ~ 1/40 and a bias near -34, beyond +-30
    from scipy.optimize import minimize

    scores = rng.uniform(0.66, 0.99, size=4000)
    labels = (rng.random(4000) < 1 / (1 + np.exp(-40 * (scores - 0.85)))).astype(int)
    probs = np.column_stack([1 / (1 + np.exp(scores)), 1 / (1 + np.exp(-scores))])
    with caplog.at_level("WARNING", logger="medlens.trust.calibrators"):
        bcts = fit_calibrator("bcts", probs, labels)
    assert isinstance(bcts, BiasCorrectedTemperature)
    assert not caplog.records and bcts.at_bound == () and "at_bound" not in bcts.to_dict()
    assert bcts.bias[0] < -30
    free = minimize(lambda t: _binary_loss(scores, labels, np.exp(-t[0]), t[1]), np.zeros(2))
    fitted = _binary_loss(scores, labels, 1 / bcts.temperature, bcts.bias[0])
    assert fitted <= free.fun + 1e-6
    assert bcts.bias[0] == pytest.approx(free.x[1], abs=0.5)


def test_bcts_on_a_separable_split_stays_finite_warns_and_records_the_bound(rng, caplog) -> None:
    scores = rng.normal(size=500)
    labels = (scores > 0).astype(int)  # perfectly separated: T would go to 0
    probs = np.column_stack([1 / (1 + np.exp(scores)), 1 / (1 + np.exp(-scores))])
    with caplog.at_level("WARNING", logger="medlens.trust.calibrators"):
        bcts = fit_calibrator("bcts", probs, labels)
    assert isinstance(bcts, BiasCorrectedTemperature)
    assert np.isfinite([bcts.temperature, *bcts.bias]).all()
    assert "temperature" in bcts.at_bound
    assert any("ended on the bound" in r.getMessage() for r in caplog.records)
    record = bcts.to_dict()
    assert "temperature" in record["at_bound"]
    assert calibrator_from_dict(record, 2) == bcts  # recorded, and read back


def test_a_run_records_the_comparison_without_switching_its_calibrator(rng) -> None:
    from medlens.trust.calibration_choice import compared_on_validation

    z = rng.normal(size=(400, 2)) * 1.5
    labels = np.array([rng.choice(2, p=row) for row in softmax(z, axis=1)])
    shifted = softmax(z + np.array([0.0, -3.0]), axis=1)  # every case pushed towards class 0
    record = compared_on_validation(shifted, labels, "temperature")
    assert record["configured"] == "temperature" and record["best"] in {"bcts", "dirichlet"}
    scores = record["scores"]
    assert scores[record["best"]]["log_loss"] < scores["temperature"]["log_loss"]
    few = compared_on_validation(shifted[:20], np.r_[np.zeros(19, int), 1], "temperature")
    assert few == {"skipped": few["skipped"], "configured": "temperature"}
    assert "class 1 has 1 validation cases" in few["skipped"]


def _underconfident_binary(rng: np.random.Generator, n: int) -> tuple[np.ndarray, np.ndarray]:
    """Labels drawn from sigmoid(z), z ~ N(0, 3), reported as sigmoid(z / 8): a weak model's
    timid probabilities, whose calibration needs large coefficients."""
    z = rng.normal(0.0, 3.0, size=n)
    labels = (rng.random(n) < 1 / (1 + np.exp(-z))).astype(int)
    p1 = 1 / (1 + np.exp(-z / 8.0))
    return np.column_stack([1 - p1, p1]), labels


def test_dirichlet_chooses_its_penalty_so_a_weak_models_small_split_is_not_under_fitted(
    rng,
) -> None:
    # C = 1 (the old fixed penalty) shrinks the coefficients of 100 validation cases hard;
    # the cross-validated C lets them grow, and fresh cases get a lower log loss
    from sklearn.linear_model import LogisticRegression
    from sklearn.metrics import log_loss

    losses: dict[str, list[float]] = {"chosen": [], "fixed_c1": []}
    for _ in range(5):
        val_probs, val_labels = _underconfident_binary(rng, 100)
        test_probs, test_labels = _underconfident_binary(rng, 5000)
        chosen = fit_calibrator("dirichlet", val_probs, val_labels)
        assert chosen.C_chosen_by == "cv5" and chosen.C > 1.0
        losses["chosen"].append(log_loss(test_labels, chosen.transform(test_probs)[:, 1]))
        fixed = LogisticRegression(C=1.0, tol=1e-8, max_iter=1000)
        fixed.fit(np.log(val_probs), val_labels)
        losses["fixed_c1"].append(log_loss(test_labels, fixed.predict_proba(np.log(test_probs))))
    assert np.mean(losses["chosen"]) < np.mean(losses["fixed_c1"]) - 0.03


def test_dirichlet_records_its_penalty_and_replays_it(rng) -> None:
    probs = rng.dirichlet([1.0, 1.0, 1.0], size=300)
    noise = rng.integers(0, 3, size=300)  # labels unrelated to the probabilities
    fitted = fit_calibrator("dirichlet", probs, noise)
    record = fitted.to_dict()
    assert record["C_chosen_by"] == "cv5"
    assert record["C"] == min(DIRICHLET_CS)  # nothing to learn: the strongest penalty
    assert calibrator_from_dict(record, 3) == fitted
    # a record from before the choice existed (C = 1, unrecorded) still replays
    old = {"method": "dirichlet", "coef": record["coef"], "intercept": record["intercept"]}
    np.testing.assert_allclose(
        calibrator_from_dict(old, 3).transform(probs), fitted.transform(probs)
    )
    # a class with a single validation case leaves nothing to hold out: C = 1, said so
    one_of = np.r_[np.zeros(40, int), np.ones(40, int), 2]
    few = fit_calibrator("dirichlet", rng.dirichlet([1.0, 1.0, 1.0], size=81), one_of)
    assert (few.C, few.C_chosen_by) == (1.0, "fixed")


def test_the_comparisons_fold_fits_do_not_warn_but_the_runs_own_fit_does(rng, caplog) -> None:
    from medlens.trust.calibration_choice import cross_fitted_scores

    # a separable split: bcts ends on its temperature bound in every fold; only the run's own
    # fit (the one its probabilities come from) should say so
    scores = rng.normal(size=200)
    labels = (scores > 0).astype(int)
    probs = np.column_stack([1 / (1 + np.exp(scores)), 1 / (1 + np.exp(-scores))])
    with caplog.at_level("WARNING", logger="medlens.trust.calibrators"):
        cross_fitted_scores(probs, labels, methods=("bcts",))
    assert not caplog.records
    with caplog.at_level("WARNING", logger="medlens.trust.calibrators"):
        own = fit_calibrator("bcts", probs, labels)
    assert own.at_bound and "ended on the bound" in caplog.text
