"""Calibration metrics: expected calibration error (ECE) and the Brier score.

Reliability target (what ECE and the reliability diagram compare):
- binary tasks: p(class 1) against the observed frequency of class 1, the reliability
  diagram of scikit-learn's ``calibration_curve`` (every case counts, whatever its prediction);
- multi-class tasks: the confidence of the predicted class against whether it was right
  (the "top-label" ECE of Guo et al. 2017).

``ece_top_label`` gives the top-label ECE of a binary task too (the arg-max class's
confidence, which lies in [0.5, 1]).
"""

from __future__ import annotations

import numpy as np
from numpy.typing import ArrayLike

from medlens.metrics.inputs import check_predictions
from medlens.metrics.registry import METRICS

#: Equal-width bins on [0, 1] used by ``ece`` and the reliability diagram.
N_BINS = 15


def reliability_target(
    y_true: ArrayLike, y_prob: ArrayLike, y_pred: ArrayLike | None = None
) -> tuple[np.ndarray, np.ndarray]:
    """The ``(confidence, outcome)`` pair that calibration compares, both shaped ``(N,)``.

    Binary: ``(p(class 1), y_true == 1)``. Multi-class: ``(p(predicted class), y_pred == y_true)``,
    the predicted class being ``y_pred`` or, when omitted, the arg-max of ``y_prob``.
    """
    truth, prob, pred = check_predictions(y_true, y_prob, y_pred)
    if prob.shape[1] == 2:
        return prob[:, 1], (truth == 1).astype(float)
    if pred is None:
        pred = prob.argmax(axis=1)
    return prob[np.arange(len(truth)), pred], (pred == truth).astype(float)


def bin_index(confidence: np.ndarray, n_bins: int = N_BINS) -> np.ndarray:
    """Index of the equal-width bin of each confidence, as scikit-learn's ``calibration_curve``.

    Bins are ``[0, 1/n], (1/n, 2/n], ..., ((n-1)/n, 1]``.
    """
    edges = np.linspace(0.0, 1.0, n_bins + 1)
    return np.searchsorted(edges[1:-1], confidence)


def calibration_gap(confidence: np.ndarray, outcome: np.ndarray, n_bins: int = N_BINS) -> float:
    """ECE of confidences and 0/1 outcomes.

    ECE = sum over bins b of n_b / N * |mean outcome in b - mean confidence in b|.
    """
    residual = np.bincount(
        bin_index(confidence, n_bins), weights=outcome - confidence, minlength=n_bins
    )
    return float(np.abs(residual).sum() / len(confidence))


@METRICS.register("ece")
def ece(y_true: ArrayLike, y_prob: ArrayLike, y_pred: ArrayLike) -> float:
    """Expected calibration error over 15 equal-width bins (0 = perfectly calibrated, max 1).

    Binary: reliability of p(class 1); multi-class: of the predicted class's confidence
    (see the module docstring).
    """
    confidence, outcome = reliability_target(y_true, y_prob, y_pred)
    return calibration_gap(confidence, outcome)


def ece_top_label(y_true: ArrayLike, y_prob: ArrayLike) -> float:
    """Top-label ECE (Guo et al. 2017) over 15 equal-width bins: the confidence of the
    arg-max class against whether it was right, for two classes too. ``ece`` reads a binary
    task through p(class 1) instead; the two can differ, so the binary runs record both."""
    truth, prob, _ = check_predictions(y_true, y_prob)
    pred = prob.argmax(axis=1)
    return calibration_gap(prob[np.arange(len(truth)), pred], (pred == truth).astype(float))


def brier_per_case(y_true: ArrayLike, y_prob: ArrayLike) -> np.ndarray:
    """Squared error per case: binary ``(p1 - y)^2``; multi-class ``sum_k (p_k - [y = k])^2``."""
    truth, prob, _ = check_predictions(y_true, y_prob)
    if prob.shape[1] == 2:
        return (prob[:, 1] - (truth == 1)) ** 2
    onehot = np.eye(prob.shape[1])[truth]
    return ((prob - onehot) ** 2).sum(axis=1)


@METRICS.register("brier")
def brier(y_true: ArrayLike, y_prob: ArrayLike, y_pred: ArrayLike) -> float:
    """Brier score (lower is better): binary ``mean (p1 - y)^2`` in [0, 1]; multi-class the mean
    over cases of the summed squared error over classes, in [0, 2] (scikit-learn's
    ``brier_score_loss``, computed here without its warning when probabilities read back
    from a CSV sum to one only to the file's printed precision)."""
    check_predictions(y_true, y_prob, y_pred)
    return float(brier_per_case(y_true, y_prob).mean())
