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

ThresholdMethod = Literal["youden", "max_f1", "fixed"]

#: Scores closer than this count as tied (float noise in J or F1).
_TIE_TOLERANCE = 1e-12


def _closest_to_half(thresholds: np.ndarray, scores: np.ndarray) -> float:
    best = scores.max()
    tied = thresholds[scores >= best - _TIE_TOLERANCE]
    return float(tied[np.argmin(np.abs(tied - 0.5))])


def choose_threshold(
    y_true: ArrayLike, p_pos: ArrayLike, method: ThresholdMethod = "youden", fixed: float = 0.5
) -> float:
    """The probability threshold t (predict class 1 when p(class 1) >= t) for a binary task.

    Use validation predictions only; never the test split.

    Args:
        y_true: true classes (0/1) of the validation cases, shape ``(N,)``.
        p_pos: predicted p(class 1), shape ``(N,)``.
        method: ``"youden"`` maximises Youden's J = sensitivity + specificity - 1 over the
            ROC curve; ``"max_f1"`` maximises F1 of class 1 over the precision-recall curve;
            ``"fixed"`` returns ``fixed``. Ties go to the candidate closest to 0.5.
        fixed: the threshold used by ``method="fixed"``, in (0, 1).

    Returns:
        A threshold that is one of the observed scores (``youden``, ``max_f1``) or ``fixed``.

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
    if method not in ("youden", "max_f1"):
        raise ConfigError(
            "train.threshold", f"unknown method {method!r}; use youden, max_f1 or fixed"
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
