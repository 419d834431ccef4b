"""Validation of the arrays every classification metric takes: labels, probabilities, predictions.

Arrays have no file name, so the ``InputError`` names the argument (``y_prob``) instead.
"""

from __future__ import annotations

import numpy as np
from numpy.typing import ArrayLike

from medlens.errors import InputError

#: Softmax outputs saved as float32 sum to 1 within ~1e-6; anything beyond this is not a
#: probability vector (logits, or sigmoid outputs of a multi-label head).
ROW_SUM_TOLERANCE = 1e-3


def as_probabilities(y_prob: ArrayLike) -> np.ndarray:
    """Probabilities as an ``(N, K)`` float array; a 1-D array is p(class 1) of a binary task.

    Raises:
        InputError: wrong shape, NaN/inf, values outside [0, 1], or rows not summing to 1.
    """
    prob = np.asarray(y_prob, dtype=float)
    if prob.ndim == 1:
        prob = np.column_stack([1.0 - prob, prob])
    if prob.ndim != 2 or prob.shape[1] < 2:
        raise InputError("y_prob", f"expected shape (N, K) with K >= 2 classes, got {prob.shape}")
    if prob.shape[0] == 0:
        raise InputError("y_prob", "there are no cases to evaluate (N = 0)")
    if not np.isfinite(prob).all():
        raise InputError("y_prob", "contains NaN or infinite values")
    if prob.min() < 0.0 or prob.max() > 1.0:
        raise InputError("y_prob", "probabilities must lie in [0, 1] (were logits passed?)")
    worst = float(np.abs(prob.sum(axis=1) - 1.0).max())
    if worst > ROW_SUM_TOLERANCE:
        raise InputError(
            "y_prob", f"rows must sum to 1 (softmax outputs); worst row is off by {worst:.3g}"
        )
    return prob


def as_labels(values: ArrayLike, n_classes: int, n_cases: int, name: str) -> np.ndarray:
    """Integer class indices in ``[0, n_classes)`` as a 1-D array of length ``n_cases``."""
    labels = np.asarray(values)
    if labels.ndim == 2 and labels.shape[1] == 1:  # MedMNIST stores labels as (N, 1)
        labels = labels[:, 0]
    if labels.ndim != 1 or labels.shape[0] != n_cases:
        raise InputError(name, f"expected {n_cases} class indices, got shape {labels.shape}")
    if labels.dtype.kind == "f":
        if not np.isfinite(labels).all() or (labels != np.round(labels)).any():
            raise InputError(name, "class indices must be whole numbers")
    elif labels.dtype.kind not in "iub":
        raise InputError(name, f"class indices must be integers, got dtype {labels.dtype}")
    labels = labels.astype(np.intp)
    if labels.size and (labels.min() < 0 or labels.max() >= n_classes):
        raise InputError(name, f"class indices must lie in [0, {n_classes - 1}]")
    return labels


def check_predictions(
    y_true: ArrayLike, y_prob: ArrayLike, y_pred: ArrayLike | None = None
) -> tuple[np.ndarray, np.ndarray, np.ndarray | None]:
    """Validate and convert ``(y_true (N,), y_prob (N, K), y_pred (N,))``.

    Returns:
        ``y_true`` and ``y_pred`` as integer arrays, ``y_prob`` as an ``(N, K)`` float array.
    """
    prob = as_probabilities(y_prob)
    n_cases, n_classes = prob.shape
    truth = as_labels(y_true, n_classes, n_cases, "y_true")
    pred = None if y_pred is None else as_labels(y_pred, n_classes, n_cases, "y_pred")
    return truth, prob, pred
