"""The reference objects and the detections of one image, as the detection metrics take them.

Boxes are ``(N, 4)`` ``x1, y1, x2, y2`` in pixel edges (COCO's continuous coordinates:
``x2 - x1`` is the width); labels are 0-based class indices.
"""

from __future__ import annotations

from dataclasses import dataclass

import numpy as np

from medlens.errors import InputError


def _boxes(value: np.ndarray | list, where: str) -> np.ndarray:
    boxes = np.asarray(value, dtype=np.float64)
    if boxes.size == 0:
        return boxes.reshape(0, 4)
    if boxes.ndim != 2 or boxes.shape[1] != 4 or not np.isfinite(boxes).all():
        raise InputError(where, f"boxes must be a finite (N, 4) array, got shape {boxes.shape}")
    return boxes


def _masks(value: np.ndarray | None, n: int, where: str) -> np.ndarray | None:
    if value is None:
        return None
    masks = np.asarray(value, dtype=bool)
    if masks.ndim != 3 or len(masks) != n:
        raise InputError(where, f"masks must be (N, H, W) for {n} objects, got {masks.shape}")
    return masks


@dataclass(frozen=True)
class ReferenceObjects:
    """The reference objects of one image.

    Attributes:
        boxes: ``(G, 4)`` float64.
        labels: ``(G,)`` int64 class indices.
        crowd: ``(G,)`` bool: ignore regions (a detection on one is neither right nor wrong).
        masks: ``(G, H, W)`` bool instance masks, for mask AP; or None.
        image_id: names the image in errors and tables.
    """

    boxes: np.ndarray
    labels: np.ndarray
    crowd: np.ndarray
    masks: np.ndarray | None = None
    image_id: str = ""

    @classmethod
    def of(
        cls,
        boxes: np.ndarray | list,
        labels: np.ndarray | list,
        crowd: np.ndarray | list | None = None,
        masks: np.ndarray | None = None,
        image_id: str = "",
    ) -> ReferenceObjects:
        """Checked arrays (``crowd`` all False when not given).

        Raises:
            InputError: naming ``image_id`` when the shapes disagree.
        """
        b = _boxes(boxes, image_id)
        lab = np.asarray(labels, dtype=np.int64).reshape(-1)
        c = np.zeros(len(b), bool) if crowd is None else np.asarray(crowd, dtype=bool).reshape(-1)
        if not len(b) == len(lab) == len(c):
            raise InputError(image_id, f"{len(b)} boxes, {len(lab)} labels, {len(c)} crowd flags")
        return cls(b, lab, c, _masks(masks, len(b), image_id), image_id)


@dataclass(frozen=True)
class DetectedObjects:
    """The detections of one image, in the order the detector gave them.

    Attributes:
        boxes: ``(D, 4)`` float64.
        scores: ``(D,)`` float64 confidences (higher is surer).
        labels: ``(D,)`` int64 class indices.
        masks: ``(D, H, W)`` bool instance masks, for mask AP; or None.
        image_id: names the image in errors and tables.
    """

    boxes: np.ndarray
    scores: np.ndarray
    labels: np.ndarray
    masks: np.ndarray | None = None
    image_id: str = ""

    @classmethod
    def of(
        cls,
        boxes: np.ndarray | list,
        scores: np.ndarray | list,
        labels: np.ndarray | list,
        masks: np.ndarray | None = None,
        image_id: str = "",
    ) -> DetectedObjects:
        """Checked arrays.

        Raises:
            InputError: naming ``image_id`` when the shapes disagree or a score is not finite.
        """
        b = _boxes(boxes, image_id)
        s = np.asarray(scores, dtype=np.float64).reshape(-1)
        lab = np.asarray(labels, dtype=np.int64).reshape(-1)
        if not len(b) == len(s) == len(lab):
            raise InputError(image_id, f"{len(b)} boxes, {len(s)} scores, {len(lab)} labels")
        if not np.isfinite(s).all():
            raise InputError(image_id, "a detection score is NaN or infinite")
        return cls(b, s, lab, _masks(masks, len(b), image_id), image_id)

    @classmethod
    def empty(cls, image_id: str = "") -> DetectedObjects:
        return cls.of(np.zeros((0, 4)), [], [], image_id=image_id)
