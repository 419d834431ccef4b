"""Label shift: the EM estimate of a batch's class mix and the adapted probabilities, on
simulated cases whose true posterior is known."""

from __future__ import annotations

import json
from pathlib import Path

import numpy as np
import pytest
from scipy.stats import norm
from sklearn.metrics import roc_auc_score

from medlens.errors import InputError
from medlens.metrics.calibration import ece
from medlens.run_folder.trust import calibration_record, read_source_prior
from medlens.trust.calibrators import TemperatureScaling
from medlens.trust.label_shift import (
    MIN_CASES,
    adapt_to_prior,
    estimate_prior_shift,
    source_prior,
)


def _posterior(x: np.ndarray, prior_pos: float) -> np.ndarray:
    """The exact p(y | x) of two unit Gaussians at -1 and +1 with p(y=1) = prior_pos."""
    pos, neg = prior_pos * norm.pdf(x, 1.0), (1 - prior_pos) * norm.pdf(x, -1.0)
    p1 = pos / (pos + neg)
    return np.stack([1 - p1, p1], axis=1)


def _cases(n: int, prior_pos: float, seed: int) -> tuple[np.ndarray, np.ndarray]:
    rng = np.random.default_rng(seed)
    y = (rng.random(n) < prior_pos).astype(int)
    return rng.normal(np.where(y == 1, 1.0, -1.0), 1.0), y


@pytest.mark.parametrize("target", [0.2, 0.5, 0.8])
def test_em_recovers_the_class_mix_and_the_true_posterior(target: float) -> None:
    # the "model" is exactly calibrated for a 50/50 validation mix; the new site's mix differs
    x, y = _cases(4000, target, seed=1)
    probs = _posterior(x, 0.5)
    shift = estimate_prior_shift(probs, [0.5, 0.5], n_bootstrap=50, seed=0)
    assert shift.target_prior[1] == pytest.approx(target, abs=0.03)
    low, high = shift.interval[1]
    assert low <= target <= high  # the 95% interval covers the truth
    adapted = shift.transform(probs)
    np.testing.assert_allclose(adapted, _posterior(x, target), atol=0.04)
    preds = (probs[:, 1] >= 0.5).astype(int)
    if target != 0.5:  # adapting removes the calibration error the shift caused
        assert ece(y, adapted, preds) < 0.6 * ece(y, probs, preds)
    assert shift.warning is None and "warning" not in shift.to_dict()


def _plain_em(probs: np.ndarray, source: np.ndarray, steps: int) -> np.ndarray:
    pi = source.copy()
    for _ in range(steps):
        adapted = probs * pi / source
        pi = (adapted / adapted.sum(axis=1, keepdims=True)).mean(axis=0)
    return pi


@pytest.mark.parametrize("target", [0.1, 0.6])
def test_two_classes_find_the_maximum_em_finds(target: float) -> None:
    # two classes use bisection on the likelihood's derivative: the same fixed point as EM
    x, _ = _cases(1500, target, seed=5)
    probs, source = _posterior(x, 0.4), np.array([0.6, 0.4])
    shift = estimate_prior_shift(probs, source, n_bootstrap=0)
    np.testing.assert_allclose(shift.target_prior, _plain_em(probs, source, 3000), atol=1e-7)
    assert shift.to_dict()["method"] == "bisection"


def test_an_estimate_driven_to_the_edge_carries_a_warning() -> None:
    # a weak model whose batch probabilities all sit a little below the source mix: the
    # likelihood keeps rising towards "no positives", whatever the batch truly holds
    rng = np.random.default_rng(4)
    p1 = rng.uniform(0.40, 0.49, 300)
    shift = estimate_prior_shift(np.stack([1 - p1, p1], axis=1), [0.5, 0.5], n_bootstrap=20)
    assert shift.target_prior[1] < 1e-3
    assert shift.warning is not None and "edge" in shift.warning
    assert _plain_em(np.stack([1 - p1, p1], axis=1), np.array([0.5, 0.5]), 3000)[1] < 1e-3
    assert shift.to_dict()["warning"] == shift.warning


def test_no_shift_on_the_cases_that_set_the_source_prior() -> None:
    # temperature scaling leaves a bias (no intercept): the source prior is the mean
    # calibrated probability, so EM on validation itself finds no shift whatever the bias
    x, _ = _cases(500, 0.7, seed=2)
    calibrated = TemperatureScaling(1.7).transform(_posterior(x, 0.3))
    prior = source_prior(calibrated)
    shift = estimate_prior_shift(calibrated, prior, n_bootstrap=0)
    np.testing.assert_allclose(shift.target_prior, prior, atol=1e-9)
    np.testing.assert_allclose(shift.transform(calibrated), calibrated, atol=1e-9)


def test_two_class_adaptation_keeps_the_ranking() -> None:
    x, y = _cases(300, 0.4, seed=3)
    probs = _posterior(x, 0.5)
    adapted = adapt_to_prior(probs, [0.5, 0.5], [0.9, 0.1])
    assert np.array_equal(np.argsort(adapted[:, 1]), np.argsort(probs[:, 1]))
    assert roc_auc_score(y, adapted[:, 1]) == roc_auc_score(y, probs[:, 1])
    np.testing.assert_allclose(adapted.sum(axis=1), 1.0)


def test_three_classes() -> None:
    rng = np.random.default_rng(4)
    means = np.array([-2.0, 0.0, 2.0])
    y = rng.choice(3, size=3000, p=[0.6, 0.3, 0.1])
    x = rng.normal(means[y], 1.0)
    likelihood = norm.pdf(x[:, None], means[None, :])
    probs = likelihood / likelihood.sum(axis=1, keepdims=True)  # calibrated for 1/3 each
    shift = estimate_prior_shift(probs, [1 / 3] * 3, n_bootstrap=0)
    np.testing.assert_allclose(shift.target_prior, [0.6, 0.3, 0.1], atol=0.03)
    record = shift.to_dict(["a", "b", "c"])
    assert record["converged"] and set(record["target_prior"]) == {"a", "b", "c"}


def test_bad_input_is_one_clear_error() -> None:
    probs = _posterior(np.linspace(-2, 2, MIN_CASES - 1), 0.5)
    with pytest.raises(InputError, match="too few") as info:
        estimate_prior_shift(probs, [0.5, 0.5], what="batch.csv")
    assert info.value.path == "batch.csv"
    enough = _posterior(np.linspace(-2, 2, MIN_CASES), 0.5)
    with pytest.raises(InputError, match="sum to 1"):
        estimate_prior_shift(enough, [0.5, 0.6])
    with pytest.raises(InputError, match="positive"):
        estimate_prior_shift(enough, [0.0, 1.0])
    with pytest.raises(InputError, match="2 class shares"):
        estimate_prior_shift(enough, [0.2, 0.3, 0.5])
    with pytest.raises(InputError, match="finite"):
        estimate_prior_shift(np.full((MIN_CASES, 2), np.nan), [0.5, 0.5])
    zeros = enough.copy()
    zeros[3] = 0.0
    with pytest.raises(InputError, match="case 3 does not"):
        estimate_prior_shift(zeros, [0.5, 0.5])


def test_the_run_folder_records_the_source_prior(tmp_path: Path) -> None:
    path = tmp_path / "calibration.json"
    path.write_text(json.dumps(calibration_record(TemperatureScaling(1.3), np.array([0.3, 0.7]))))
    np.testing.assert_allclose(read_source_prior(tmp_path, 2), [0.3, 0.7])
    with pytest.raises(InputError, match="expected 3 class shares") as info:
        read_source_prior(tmp_path, 3)
    assert info.value.path == str(path)
    # a run made before the mix was recorded: one error naming the file, saying what to do
    path.write_text(json.dumps({"method": "temperature", "temperature": 1.3}))
    with pytest.raises(InputError, match="trained again") as info:
        read_source_prior(tmp_path, 2)
    assert info.value.path == str(path)
