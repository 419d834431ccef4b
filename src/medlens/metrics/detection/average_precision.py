"""COCO average precision and recall from matched detections (pycocotools' ``accumulate``
and ``summarize`` for area "all"), for any multiset of images (the bootstrap's too).

Precision is read at 101 recall points (0, 0.01, ..., 1) on the curve made monotone from the
right; a class without reference objects has no AP (NaN) and is left out of the means.
"""

from __future__ import annotations

from collections.abc import Sequence
from dataclasses import dataclass

import numpy as np

from medlens.metrics.detection.matching import ClassMatches

#: pycocotools' recall points, 0:0.01:1.
RECALL_POINTS = np.linspace(0.0, 1.0, int(np.round((1.0 - 0.0) / 0.01)) + 1)


@dataclass(frozen=True)
class Curves:
    """One class's precision at each recall point and its final recall, per IoU threshold.

    Attributes:
        precision: ``(T, 101)``; NaN everywhere when the class has no reference object.
        recall: ``(T,)`` the recall with every detection; NaN likewise.
        n_reference: reference objects counted.
    """

    precision: np.ndarray
    recall: np.ndarray
    n_reference: int


def class_curves(
    matches: Sequence[ClassMatches], n_thresholds: int, images: np.ndarray | None = None
) -> Curves:
    """The curves of one class over the images listed in ``images`` (indices into
    ``matches``, repeats allowed; None: every image once, in order)."""
    order = np.arange(len(matches)) if images is None else np.asarray(images)
    chosen = [matches[i] for i in order.tolist() if matches[i].present]
    n_ref = sum(m.n_reference for m in chosen)
    nan = np.full((n_thresholds, len(RECALL_POINTS)), np.nan)
    if n_ref == 0:
        return Curves(nan, np.full(n_thresholds, np.nan), 0)
    if not chosen or not any(len(m.scores) for m in chosen):
        zeros = np.zeros((n_thresholds, len(RECALL_POINTS)))
        return Curves(zeros, np.zeros(n_thresholds), n_ref)
    scores = np.concatenate([m.scores for m in chosen])
    rank = np.argsort(-scores, kind="mergesort")
    matched = np.concatenate([m.matched for m in chosen], axis=1)[:, rank]
    ignored = np.concatenate([m.ignored for m in chosen], axis=1)[:, rank]
    tp = np.cumsum(matched & ~ignored, axis=1, dtype=np.float64)
    fp = np.cumsum(~matched & ~ignored, axis=1, dtype=np.float64)
    recall = tp / n_ref
    precision = tp / (fp + tp + np.spacing(1))
    envelope = np.maximum.accumulate(precision[:, ::-1], axis=1)[:, ::-1]
    n_det = tp.shape[1]
    out = np.zeros((n_thresholds, len(RECALL_POINTS)))
    for t in range(n_thresholds):
        at = np.searchsorted(recall[t], RECALL_POINTS, side="left")
        inside = at < n_det
        out[t, inside] = envelope[t, at[inside]]
    return Curves(out, recall[:, -1], n_ref)


def average_precision(curves: Curves, threshold_index: int | None = None) -> float:
    """The mean precision over the recall points (and over the IoU thresholds, or at one of
    them); NaN for a class without reference objects."""
    precision = curves.precision if threshold_index is None else curves.precision[threshold_index]
    return float(np.mean(precision)) if np.isfinite(precision).all() else float("nan")


def average_recall(curves: Curves) -> float:
    """The recall with every detection (at most the per-image cap) over the IoU thresholds."""
    return float(np.mean(curves.recall)) if np.isfinite(curves.recall).all() else float("nan")


def nanmean(values: Sequence[float]) -> float:
    """The mean over the classes where a value exists (COCO's mean over classes); NaN if none."""
    finite = [v for v in values if np.isfinite(v)]
    return float(np.mean(finite)) if finite else float("nan")
