"""Voxel-overlap metrics of a binary segmentation: Dice, Jaccard, precision, sensitivity,
specificity — and pixel AUC from a probability map.

Each counts voxels (optionally only inside a field-of-view mask), so none depends on the
voxel spacing; every function still accepts ``spacing`` so that all segmentation metrics
share one signature ``(pred, ref, spacing=None, *, fov_mask=None) -> float``.

Empty masks. A ratio with a zero denominator is undefined and returned as ``nan``, never
silently as 0 or 1: precision when nothing is predicted, sensitivity when the reference is
empty, specificity when there is no background. Dice and Jaccard follow MONAI's
``DiceMetric`` / ``MeanIoU`` and their ``ignore_empty`` flag: with an empty reference they are
``nan`` when ``ignore_empty=True`` (MONAI's default and ours); with ``ignore_empty=False``
they are 1.0 when the prediction is empty too and 0.0 otherwise.
"""

from __future__ import annotations

from collections.abc import Sequence
from dataclasses import dataclass

import numpy as np
from numpy.typing import ArrayLike
from sklearn.metrics import roc_auc_score

from medlens.errors import InputError
from medlens.metrics.mask_inputs import as_fov, as_mask, check_pair

Spacing = float | Sequence[float] | None


@dataclass(frozen=True)
class OverlapCounts:
    """Voxel counts of a binary prediction against its reference (inside the FOV)."""

    tp: int
    fp: int
    fn: int
    tn: int

    def dice(self, ignore_empty: bool = True) -> float:
        """2 TP / (2 TP + FP + FN); empty reference: see the module docstring."""
        if self.tp + self.fn == 0:
            return _empty_reference(self.fp, ignore_empty)
        return 2 * self.tp / (2 * self.tp + self.fp + self.fn)

    def jaccard(self, ignore_empty: bool = True) -> float:
        """TP / (TP + FP + FN), the intersection over union."""
        if self.tp + self.fn == 0:
            return _empty_reference(self.fp, ignore_empty)
        return self.tp / (self.tp + self.fp + self.fn)

    def precision(self) -> float:
        """TP / (TP + FP), the positive predictive value; ``nan`` if nothing is predicted."""
        return _ratio(self.tp, self.tp + self.fp)

    def sensitivity(self) -> float:
        """TP / (TP + FN), the recall; ``nan`` if the reference is empty."""
        return _ratio(self.tp, self.tp + self.fn)

    def specificity(self) -> float:
        """TN / (TN + FP); ``nan`` if every voxel belongs to the reference."""
        return _ratio(self.tn, self.tn + self.fp)


def _ratio(numerator: int, denominator: int) -> float:
    return numerator / denominator if denominator else float("nan")


def _empty_reference(false_positives: int, ignore_empty: bool) -> float:
    if ignore_empty:
        return float("nan")
    return 0.0 if false_positives else 1.0


def overlap_counts(
    pred: ArrayLike, ref: ArrayLike, *, fov_mask: ArrayLike | None = None
) -> OverlapCounts:
    """Count TP, FP, FN and TN voxels, only inside ``fov_mask`` when one is given.

    Raises:
        InputError: masks that are not binary or whose shapes differ.
    """
    pred_mask, ref_mask = check_pair(pred, ref)
    fov = as_fov(fov_mask, pred_mask.shape)
    if fov is not None:
        pred_mask, ref_mask = pred_mask & fov, ref_mask & fov
    total = pred_mask.size if fov is None else int(np.count_nonzero(fov))
    tp = int(np.count_nonzero(pred_mask & ref_mask))
    fp = int(np.count_nonzero(pred_mask)) - tp
    fn = int(np.count_nonzero(ref_mask)) - tp
    return OverlapCounts(tp=tp, fp=fp, fn=fn, tn=total - tp - fp - fn)


def dice(
    pred: ArrayLike,
    ref: ArrayLike,
    spacing: Spacing = None,
    *,
    fov_mask: ArrayLike | None = None,
    ignore_empty: bool = True,
) -> float:
    """Dice similarity coefficient (= F1) of two binary masks; ``spacing`` is not used.

    Example:
        >>> dice([[1, 1, 0, 0]], [[0, 1, 1, 0]])
        0.5
    """
    return overlap_counts(pred, ref, fov_mask=fov_mask).dice(ignore_empty)


def jaccard(
    pred: ArrayLike,
    ref: ArrayLike,
    spacing: Spacing = None,
    *,
    fov_mask: ArrayLike | None = None,
    ignore_empty: bool = True,
) -> float:
    """Jaccard index (intersection over union) of two binary masks; ``spacing`` is not used."""
    return overlap_counts(pred, ref, fov_mask=fov_mask).jaccard(ignore_empty)


def precision(
    pred: ArrayLike, ref: ArrayLike, spacing: Spacing = None, *, fov_mask: ArrayLike | None = None
) -> float:
    """Fraction of predicted voxels that are in the reference; ``spacing`` is not used."""
    return overlap_counts(pred, ref, fov_mask=fov_mask).precision()


def sensitivity(
    pred: ArrayLike, ref: ArrayLike, spacing: Spacing = None, *, fov_mask: ArrayLike | None = None
) -> float:
    """Fraction of reference voxels that are predicted; ``spacing`` is not used."""
    return overlap_counts(pred, ref, fov_mask=fov_mask).sensitivity()


def specificity(
    pred: ArrayLike, ref: ArrayLike, spacing: Spacing = None, *, fov_mask: ArrayLike | None = None
) -> float:
    """Fraction of background voxels predicted as background; ``spacing`` is not used."""
    return overlap_counts(pred, ref, fov_mask=fov_mask).specificity()


def pixel_auc(
    prob: ArrayLike, ref: ArrayLike, spacing: Spacing = None, *, fov_mask: ArrayLike | None = None
) -> float:
    """Area under the ROC curve of voxel scores against the reference mask (scikit-learn).

    Args:
        prob: foreground probability (or any score) per voxel, same shape as ``ref``.
        ref: reference binary mask.
        spacing: not used.
        fov_mask: only voxels inside it are ranked (DRIVE reports AUC inside its FOV masks).

    Returns:
        The AUC, or ``nan`` when the voxels evaluated are all foreground or all background.

    Raises:
        InputError: scores of another shape, or NaN/inf scores.
    """
    ref_mask = as_mask(ref, "ref")
    scores = np.asarray(prob, dtype=float)
    if scores.shape != ref_mask.shape:
        raise InputError("prob", f"shape {scores.shape} differs from ref {ref_mask.shape}")
    if not np.isfinite(scores).all():
        raise InputError("prob", "the probability map contains NaN or infinite values")
    fov = as_fov(fov_mask, ref_mask.shape)
    truth, scores = (ref_mask, scores) if fov is None else (ref_mask[fov], scores[fov])
    positives = int(np.count_nonzero(truth))
    if positives in (0, truth.size):
        return float("nan")
    return float(roc_auc_score(truth.ravel(), scores.ravel()))
