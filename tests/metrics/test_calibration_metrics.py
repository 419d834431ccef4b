"""Expected calibration error and the Brier score."""

from __future__ import annotations

import numpy as np
import pytest
from sklearn.calibration import calibration_curve

from medlens.metrics import METRICS
from medlens.metrics.calibration import N_BINS, bin_index, reliability_target

ece = METRICS.get("ece")
brier = METRICS.get("brier")


def _calibrated_binary(n: int, seed: int) -> tuple[np.ndarray, np.ndarray]:
    rng = np.random.default_rng(seed)
    p1 = rng.uniform(0.0, 1.0, n)
    y = (rng.uniform(0.0, 1.0, n) < p1).astype(int)  # y ~ Bernoulli(p1): calibrated by construction
    return y, np.column_stack([1 - p1, p1])


def test_ece_of_calibrated_binary_predictions_is_near_zero() -> None:
    y, prob = _calibrated_binary(100_000, seed=0)
    assert ece(y, prob, (prob[:, 1] >= 0.5).astype(int)) < 0.01


def test_ece_of_calibrated_multiclass_predictions_is_near_zero() -> None:
    rng = np.random.default_rng(1)
    prob = rng.dirichlet([0.5, 0.5, 0.5], size=50_000)
    # labels drawn from the stated probabilities (inverse CDF per row)
    y = (rng.uniform(size=(len(prob), 1)) > np.cumsum(prob, axis=1)).sum(axis=1)
    assert ece(y, prob, prob.argmax(axis=1)) < 0.015


def test_ece_of_overconfident_predictions_is_large() -> None:
    y, prob = _calibrated_binary(20_000, seed=2)
    p1 = prob[:, 1]
    sharpened = p1**4 / (p1**4 + (1 - p1) ** 4)  # same ranking, pushed towards 0 and 1
    over = np.column_stack([1 - sharpened, sharpened])
    calibrated = ece(y, prob, (p1 >= 0.5).astype(int))
    overconfident = ece(y, over, (sharpened >= 0.5).astype(int))
    assert overconfident > 0.1
    assert overconfident > 5 * calibrated


def test_ece_agrees_with_sklearn_calibration_curve(random_binary) -> None:
    y, prob, pred = random_binary
    frac_pos, mean_prob = calibration_curve(y, prob[:, 1], n_bins=N_BINS, strategy="uniform")
    counts = np.bincount(bin_index(prob[:, 1]), minlength=N_BINS)
    counts = counts[counts > 0]  # calibration_curve drops empty bins
    expected = np.sum(counts / len(y) * np.abs(frac_pos - mean_prob))
    assert ece(y, prob, pred) == pytest.approx(expected, abs=1e-12)


def test_ece_of_a_hand_computed_case() -> None:
    # bin of 0.9: 2 cases, 1 positive -> |0.5 - 0.9|; bin of 0.2: 2 cases, none positive -> 0.2
    y = np.array([1, 0, 0, 0])
    p1 = np.array([0.9, 0.9, 0.2, 0.2])
    prob = np.column_stack([1 - p1, p1])
    assert ece(y, prob, (p1 >= 0.5).astype(int)) == pytest.approx(0.5 * 0.4 + 0.5 * 0.2)


def test_multiclass_reliability_uses_the_predicted_class_confidence() -> None:
    prob = np.array([[0.6, 0.3, 0.1], [0.2, 0.2, 0.6]])
    confidence, outcome = reliability_target([0, 0], prob, [0, 2])
    np.testing.assert_allclose(confidence, [0.6, 0.6])
    np.testing.assert_array_equal(outcome, [1.0, 0.0])


def test_brier_bounds() -> None:
    y = np.array([0, 1, 1])
    perfect = np.eye(2)[y].astype(float)
    assert brier(y, perfect, y) == 0.0
    assert brier(y, 1.0 - perfect, 1 - y) == 1.0
    assert brier(y, np.full((3, 2), 0.5), y) == pytest.approx(0.25)


@pytest.mark.parametrize("n_classes", [2, 5])
def test_brier_equals_scikit_learn_and_takes_rounded_probabilities(n_classes: int) -> None:
    """Equal to ``brier_score_loss``; probabilities read back from a CSV (4 decimals, so
    rows sum to one only to 5e-4) give no warning and the same score to that precision."""
    import warnings

    from sklearn.metrics import brier_score_loss

    rng = np.random.default_rng(3)
    prob = rng.dirichlet(np.ones(n_classes), size=200)
    y = rng.integers(0, n_classes, 200)
    if n_classes == 2:
        expected = brier_score_loss(y, prob[:, 1], pos_label=1)
    else:
        expected = brier_score_loss(y, prob, labels=list(range(n_classes)))
    assert brier(y, prob, prob.argmax(1)) == pytest.approx(expected, abs=1e-12)
    rounded = np.round(prob, 4)
    with warnings.catch_warnings():
        warnings.simplefilter("error")
        assert brier(y, rounded, prob.argmax(1)) == pytest.approx(expected, abs=2e-3)


def test_top_label_ece_reads_the_decided_class_where_ece_reads_class_1() -> None:
    from medlens.metrics.calibration import ece, ece_top_label

    p1 = np.array([0.3, 0.7])
    probs, labels = np.c_[1 - p1, p1], np.array([1, 1])
    # decided 0 (wrongly) and 1 (rightly), both at confidence 0.7: one bin, |1 - 1.4| / 2
    assert ece_top_label(labels, probs) == pytest.approx(0.2)
    # p(class 1) 0.3 and 0.7 against class 1 both times: (0.7 + 0.3) / 2
    assert ece(labels, probs, (p1 >= 0.5).astype(int)) == pytest.approx(0.5)


def test_top_label_ece_is_ece_for_more_classes() -> None:
    from medlens.metrics.calibration import ece, ece_top_label

    rng = np.random.default_rng(0)
    labels, probs = rng.integers(0, 3, 200), rng.dirichlet([1, 1, 1], 200)
    assert ece_top_label(labels, probs) == pytest.approx(ece(labels, probs, probs.argmax(1)))
