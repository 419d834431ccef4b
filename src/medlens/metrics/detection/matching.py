"""COCO's greedy matching of detections to reference objects, per image and class.

Exactly pycocotools' ``COCOeval.evaluateImg`` (area range "all"): the detections of a class
are taken in score order (a stable sort, so equal scores keep the detector's order), at most
``max_detections`` of them; each matches the still-unmatched reference object of its class
with the highest IoU at or above the threshold (among equal IoUs the last one), preferring
objects that count over crowd regions; a crowd region may take any number of detections,
which are then ignored rather than counted right.
"""

from __future__ import annotations

from collections.abc import Sequence
from dataclasses import dataclass

import numpy as np

from medlens.metrics.detection.iou import box_iou, mask_iou
from medlens.metrics.detection.objects import DetectedObjects, ReferenceObjects

#: pycocotools' IoU thresholds, 0.50:0.05:0.95.
COCO_IOUS = np.linspace(0.5, 0.95, int(np.round((0.95 - 0.5) / 0.05)) + 1)


@dataclass(frozen=True)
class ClassMatches:
    """The detections of one class on one image, matched at each IoU threshold.

    Attributes:
        scores: ``(D,)`` scores, best first (at most ``max_detections``).
        matched: ``(T, D)`` a detection matched a reference object at threshold ``t``.
        ignored: ``(T, D)`` it matched a crowd region (neither right nor wrong).
        n_reference: reference objects that count (crowd regions left out).
        present: the image has a detection or a reference object of this class (pycocotools
            leaves the others out of the accumulation).
    """

    scores: np.ndarray
    matched: np.ndarray
    ignored: np.ndarray
    n_reference: int
    present: bool


def _match(
    iou: np.ndarray, ignore: np.ndarray, thresholds: np.ndarray
) -> tuple[np.ndarray, np.ndarray]:
    """``(matched, ignored)``, each ``(T, D)``, for ``iou`` of score-sorted detections against
    reference objects sorted with the counted ones first."""
    n_det, n_ref = iou.shape
    matched = np.zeros((len(thresholds), n_det), dtype=bool)
    ignored = np.zeros((len(thresholds), n_det), dtype=bool)
    if n_det == 0 or n_ref == 0:
        return matched, ignored
    counted = ~ignore
    for t, threshold in enumerate(thresholds):
        floor = min(float(threshold), 1 - 1e-10)
        taken = np.zeros(n_ref, dtype=bool)
        for d in range(n_det):
            free = ~taken | ignore  # crowd regions stay free
            m = -1
            for group in (counted, ignore):
                candidates = free & group & (iou[d] >= floor)
                if candidates.any():
                    best = iou[d][candidates].max()
                    m = int(np.flatnonzero(candidates & (iou[d] == best))[-1])
                    break
            if m < 0:
                continue
            matched[t, d] = True
            ignored[t, d] = bool(ignore[m])
            taken[m] = True
    return matched, ignored


def match_image(
    detections: DetectedObjects,
    reference: ReferenceObjects,
    num_classes: int,
    thresholds: Sequence[float] | np.ndarray = tuple(COCO_IOUS),
    max_detections: int = 100,
    use_masks: bool = False,
) -> list[ClassMatches]:
    """The matches of every class on one image.

    Args:
        detections: the image's detections.
        reference: its reference objects.
        num_classes: classes 0 .. num_classes - 1 are matched.
        thresholds: IoU thresholds (``COCO_IOUS``: 0.50 to 0.95).
        max_detections: the best-scoring detections kept per class (COCO: 100).
        use_masks: match instance masks (mask AP) rather than boxes.

    Returns:
        One ``ClassMatches`` per class, in class order.
    """
    ious = np.asarray(thresholds, dtype=np.float64)
    out = []
    for k in range(num_classes):
        d_idx = np.flatnonzero(detections.labels == k)
        d_idx = d_idx[np.argsort(-detections.scores[d_idx], kind="mergesort")][:max_detections]
        r_idx = np.flatnonzero(reference.labels == k)
        crowd = reference.crowd[r_idx]
        r_idx = r_idx[np.argsort(crowd, kind="mergesort")]  # counted objects first
        crowd = reference.crowd[r_idx]
        if use_masks:
            assert detections.masks is not None and reference.masks is not None
            iou = mask_iou(detections.masks[d_idx], reference.masks[r_idx], crowd)
        else:
            iou = box_iou(detections.boxes[d_idx], reference.boxes[r_idx], crowd)
        matched, ignored = _match(iou, crowd, ious)
        out.append(
            ClassMatches(
                scores=detections.scores[d_idx],
                matched=matched,
                ignored=ignored,
                n_reference=int((~crowd).sum()),
                present=bool(len(d_idx) or len(r_idx)),
            )
        )
    return out


def match_images(
    detections: Sequence[DetectedObjects],
    references: Sequence[ReferenceObjects],
    num_classes: int,
    thresholds: Sequence[float] | np.ndarray = tuple(COCO_IOUS),
    max_detections: int = 100,
    use_masks: bool = False,
) -> list[list[ClassMatches]]:
    """``match_image`` for every image: ``[image][class]``."""
    return [
        match_image(d, r, num_classes, thresholds, max_detections, use_masks)
        for d, r in zip(detections, references, strict=True)
    ]
