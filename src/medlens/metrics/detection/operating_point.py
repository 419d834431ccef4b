"""What a detector says at its operating threshold: object-wise precision, recall and F1 at
one IoU, per-image counts per class (the counting use), and the threshold that maximises F1.

A detection is a finding when its score is at least its class's threshold. The greedy
matching takes detections best first, so the findings' matches are the same as in the full
matching (``match_images``): the metrics here read its prefix.
"""

from __future__ import annotations

from collections.abc import Sequence
from dataclasses import dataclass

import numpy as np

from medlens.metrics.detection.matching import ClassMatches


@dataclass(frozen=True)
class Operating:
    """Object-wise counts of one class (or of all) at the operating threshold.

    Attributes:
        tp: findings matching a reference object.
        fp: findings matching none (those on crowd regions left out).
        fn: reference objects no finding matched.
    """

    tp: int
    fp: int
    fn: int

    @property
    def precision(self) -> float:
        return self.tp / (self.tp + self.fp) if self.tp + self.fp else float("nan")

    @property
    def recall(self) -> float:
        return self.tp / (self.tp + self.fn) if self.tp + self.fn else float("nan")

    @property
    def f1(self) -> float:
        denominator = 2 * self.tp + self.fp + self.fn
        return 2 * self.tp / denominator if denominator else float("nan")


def class_operating(
    matches: Sequence[Sequence[ClassMatches]],
    k: int,
    threshold: float,
    threshold_index: int = 0,
    images: np.ndarray | None = None,
) -> Operating:
    """TP, FP and FN of class ``k`` with score >= ``threshold`` (IoU ``threshold_index``)."""
    order = np.arange(len(matches)) if images is None else np.asarray(images)
    tp = fp = n_ref = 0
    for i in order.tolist():
        m = matches[i][k]
        found = m.scores >= threshold
        right = m.matched[threshold_index] & ~m.ignored[threshold_index]
        wrong = ~m.matched[threshold_index]
        tp += int((found & right).sum())
        fp += int((found & wrong).sum())
        n_ref += m.n_reference
    return Operating(tp, fp, n_ref - tp)


def pooled(parts: Sequence[Operating]) -> Operating:
    """Micro-averaged counts over classes."""
    return Operating(sum(p.tp for p in parts), sum(p.fp for p in parts), sum(p.fn for p in parts))


def best_f1_threshold(
    matches: Sequence[Sequence[ClassMatches]], k: int, threshold_index: int = 0
) -> float:
    """The score threshold of class ``k`` with the highest object-wise F1 (ties: the higher
    threshold, the fewer findings); 1.0 when the class has no detection or no reference."""
    scores, right, wrong, n_ref = [], [], [], 0
    for per_image in matches:
        m = per_image[k]
        scores.append(m.scores)
        right.append(m.matched[threshold_index] & ~m.ignored[threshold_index])
        wrong.append(~m.matched[threshold_index])
        n_ref += m.n_reference
    score = np.concatenate(scores)
    if score.size == 0 or n_ref == 0:
        return 1.0
    rank = np.argsort(-score, kind="mergesort")
    score = score[rank]
    tp = np.cumsum(np.concatenate(right)[rank])
    fp = np.cumsum(np.concatenate(wrong)[rank])
    # a threshold at a score takes every detection scoring as much: the last of a tie
    last = np.r_[score[1:] != score[:-1], True]
    f1 = np.where(last, 2 * tp / (2 * tp + fp + (n_ref - tp)), -1.0)
    best = int(np.flatnonzero(f1 == f1.max())[0])
    return float(score[best])


def count_errors(predicted: np.ndarray, reference: np.ndarray) -> dict[str, float]:
    """Per-image count errors of one class: ``predicted - reference`` summarised.

    Returns:
        ``mae`` (mean absolute error, objects per image), ``bias`` (mean signed error: > 0
        over-counts), ``rmse`` and ``mean_reference`` (objects per image).
    """
    error = np.asarray(predicted, dtype=float) - np.asarray(reference, dtype=float)
    if error.size == 0:
        return {k: float("nan") for k in ("mae", "bias", "rmse", "mean_reference")}
    return {
        "mae": float(np.abs(error).mean()),
        "bias": float(error.mean()),
        "rmse": float(np.sqrt((error**2).mean())),
        "mean_reference": float(np.mean(reference)),
    }
