"""Free-response ROC: sensitivity (the share of reference objects found) against the mean
number of false positives per image, as lesion-detection challenges report it (LUNA16's
1/8 ... 8 false positives per image, and their mean)."""

from __future__ import annotations

from collections.abc import Sequence
from dataclasses import dataclass

import numpy as np

from medlens.metrics.detection.matching import ClassMatches

DEFAULT_FPS = (0.125, 0.25, 0.5, 1.0, 2.0, 4.0, 8.0)


@dataclass(frozen=True)
class Froc:
    """A FROC curve and its reading at fixed false-positive rates.

    Attributes:
        fps_per_image: ``(P,)`` the curve's false positives per image, one point per
            detection taken in score order (0 first).
        sensitivity: ``(P,)`` the sensitivity at each point.
        at: the false-positive rates read off.
        sensitivity_at: the best sensitivity reached with at most that many false positives
            per image (NaN when there is no reference object).
    """

    fps_per_image: np.ndarray
    sensitivity: np.ndarray
    at: tuple[float, ...]
    sensitivity_at: tuple[float, ...]

    @property
    def mean_sensitivity(self) -> float:
        """The mean of ``sensitivity_at`` (LUNA16's competition performance metric)."""
        return float(np.mean(self.sensitivity_at))


def froc(
    matches: Sequence[Sequence[ClassMatches]],
    classes: Sequence[int],
    threshold_index: int = 0,
    at: Sequence[float] = DEFAULT_FPS,
    images: np.ndarray | None = None,
) -> Froc:
    """The FROC of the detections of ``classes`` pooled (a detection is right when it matches
    a reference object of its own class at the IoU threshold ``threshold_index``; one on a
    crowd region counts neither way).

    Args:
        matches: ``[image][class]`` matches (``match_images``).
        classes: the class indices pooled (one for a per-class curve).
        threshold_index: which IoU threshold of the matches decides.
        at: false positives per image to read the sensitivity at.
        images: indices into ``matches`` (repeats allowed); None: every image once.
    """
    order = np.arange(len(matches)) if images is None else np.asarray(images)
    n_images = len(order)
    scores, right, counted = [], [], []
    n_ref = 0
    for i in order.tolist():
        for k in classes:
            m = matches[i][k]
            n_ref += m.n_reference
            scores.append(m.scores)
            right.append(m.matched[threshold_index] & ~m.ignored[threshold_index])
            counted.append(~m.ignored[threshold_index])
    score = np.concatenate(scores) if scores else np.zeros(0)
    rank = np.argsort(-score, kind="mergesort")
    hit = np.concatenate(right)[rank] if right else np.zeros(0, bool)
    keep = np.concatenate(counted)[rank] if counted else np.zeros(0, bool)
    hit = hit[keep]
    tp = np.concatenate([[0.0], np.cumsum(hit)])
    fp = np.concatenate([[0.0], np.cumsum(~hit)])
    fpi = fp / max(n_images, 1)
    if n_ref == 0:
        sens = np.full(len(tp), np.nan)
        return Froc(fpi, sens, tuple(at), tuple(float("nan") for _ in at))
    sens = tp / n_ref
    readings = tuple(float(sens[fpi <= rate].max()) for rate in at)
    return Froc(fpi, sens, tuple(float(a) for a in at), readings)
