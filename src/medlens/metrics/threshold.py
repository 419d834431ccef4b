"""Decision thresholds for binary tasks, and turning probabilities into predicted classes.

Choose the threshold on the VALIDATION split only, then apply it unchanged to the test split:
a threshold tuned on test cases makes the test metrics optimistic.
"""

from __future__ import annotations

from typing import Literal

import numpy as np
from numpy.typing import ArrayLike
from sklearn.metrics import precision_recall_curve, roc_curve

from medlens.errors import ConfigError, InputError
from medlens.metrics.inputs import as_labels, as_probabilities

ThresholdMethod = Literal["youden_plateau", "youden", "max_f1", "fixed"]
THRESHOLD_METHODS: tuple[str, ...] = ("youden_plateau", "youden", "max_f1", "fixed")

#: Scores closer than this count as tied (float noise in J or F1).
_TIE_TOLERANCE = 1e-12


def _closest_to_half(thresholds: np.ndarray, scores: np.ndarray) -> float:
    best = scores.max()
    tied = thresholds[scores >= best - _TIE_TOLERANCE]
    return float(tied[np.argmin(np.abs(tied - 0.5))])


def _plateau_middle(truth: np.ndarray, scores: np.ndarray) -> float:
    """The middle of the cuts whose Youden's J is within one standard error of the best.

    On a validation split where AUC is near 1, J is flat over a wide range of thresholds and
    its arg-max lands wherever a few cases happen to fall. Every cut between two neighbouring
    distinct scores whose J is within the binomial standard error of the best, ``sqrt(tpr (1 -
    tpr) / n1 + fpr (1 - fpr) / n0)`` at the best point (Breiman's one-standard-error rule),
    is as good as validation can tell. The cut in the middle of those (their lower median, by
    rank) is the one farthest, in cases, from both ends of the plateau, so noise that moves an
    end moves it least; the threshold is placed halfway, in log-odds, between the scores on
    either side of that cut, not on a case's own score. Ranks decide the cut, and log-odds
    midpoints move with any affine map of the log-odds, so temperature scaling (or any
    Platt-type recalibration) of the scores picks the same cut and the same decisions.
    """
    fpr, tpr, thresholds = roc_curve(truth, scores, drop_intermediate=False)
    finite = np.isfinite(thresholds)  # descending distinct scores; a cut at each
    fpr, tpr, thresholds = fpr[finite], tpr[finite], thresholds[finite]
    j = tpr - fpr
    best = int(np.argmax(j))
    n1, n0 = int((truth == 1).sum()), int((truth == 0).sum())
    se = np.sqrt(tpr[best] * (1 - tpr[best]) / n1 + fpr[best] * (1 - fpr[best]) / n0)
    cuts = np.flatnonzero(j >= j[best] - se - _TIE_TOLERANCE)
    cut = int(cuts[(len(cuts) - 1) // 2])
    above = thresholds[cut]  # the lowest score called class 1
    if cut + 1 >= len(thresholds):
        return float(above)
    below = thresholds[cut + 1]  # the highest score called class 0
    with np.errstate(divide="ignore"):
        ends = np.log([below, above]) - np.log1p(-np.array([below, above]))
    if not np.isfinite(ends).all():  # a score of exactly 0 or 1: halfway in probability
        return float((below + above) / 2)
    return float(1.0 / (1.0 + np.exp(-ends.mean())))


def choose_threshold(
    y_true: ArrayLike,
    p_pos: ArrayLike,
    method: ThresholdMethod = "youden",
    fixed: float = 0.5,
) -> float:
    """The probability threshold t (predict class 1 when p(class 1) >= t) for a binary task.

    Use validation predictions only; never the test split.

    Args:
        y_true: true classes (0/1) of the validation cases, shape ``(N,)``.
        p_pos: predicted p(class 1), shape ``(N,)``.
        method: ``"youden_plateau"`` (``train.threshold``'s default) takes the middle of the thresholds whose
            Youden's J is within one standard error of the best (see ``_plateau_middle``: a
            stable choice when J is flat); ``"youden"`` maximises Youden's J = sensitivity +
            specificity - 1 over the ROC curve; ``"max_f1"`` maximises F1 of class 1 over the precision-recall curve;
            ``"fixed"`` returns ``fixed``. Ties go to the candidate closest to 0.5.
        fixed: the threshold used by ``method="fixed"``, in (0, 1).

    Returns:
        A threshold that is one of the observed scores (``youden``, ``max_f1``), halfway in
        log-odds between two neighbouring ones (``youden_plateau``), or ``fixed``.

    Raises:
        ConfigError: unknown method or a fixed threshold outside (0, 1).
        InputError: malformed arrays, or a tuned method on labels lacking one of the classes.

    Example:
        >>> choose_threshold([0, 0, 1, 1], [0.1, 0.4, 0.35, 0.8], "youden")
        0.35
    """
    if method == "fixed":
        if not 0.0 < fixed < 1.0:
            raise ConfigError("train.fixed_threshold", f"must lie in (0, 1), got {fixed}")
        return float(fixed)
    if method not in THRESHOLD_METHODS:
        raise ConfigError(
            "train.threshold", f"unknown method {method!r}; use {', '.join(THRESHOLD_METHODS)}"
        )
    scores = np.asarray(p_pos, dtype=float)
    if scores.ndim != 1:
        raise InputError("p_pos", f"expected p(class 1) of shape (N,), got {scores.shape}")
    scores = as_probabilities(scores)[:, 1]
    truth = as_labels(y_true, 2, len(scores), "y_true")
    if np.unique(truth).size < 2:
        raise InputError(
            "y_true",
            f"choosing a {method} threshold needs both classes, only class {truth[0]} is present",
        )
    if method == "youden_plateau":
        return _plateau_middle(truth, scores)
    if method == "youden":
        fpr, tpr, thresholds = roc_curve(truth, scores, drop_intermediate=False)
        finite = np.isfinite(thresholds)  # the first point (inf) predicts nothing positive
        return _closest_to_half(thresholds[finite], (tpr - fpr)[finite])
    prec, rec, thresholds = precision_recall_curve(truth, scores)
    prec, rec = prec[:-1], rec[:-1]  # the last point (recall 0) has no threshold
    denom = prec + rec
    f1 = np.divide(2 * prec * rec, denom, out=np.zeros_like(denom), where=denom > 0)
    return _closest_to_half(thresholds, f1)


def predict_labels(y_prob: ArrayLike, threshold: float | None = 0.5) -> np.ndarray:
    """Predicted class indices ``(N,)``.

    Binary (K = 2, or a 1-D array of p(class 1)): class 1 where p(class 1) >= ``threshold``.
    Multi-class: the arg-max class; ``threshold`` is ignored.
    """
    prob = as_probabilities(y_prob)
    if prob.shape[1] == 2:
        if threshold is None:
            raise ConfigError("threshold", "a binary task needs a decision threshold")
        return (prob[:, 1] >= threshold).astype(np.intp)
    return prob.argmax(axis=1).astype(np.intp)
