"""Intersection over union of boxes and of masks, with COCO's rule for crowd regions: the
overlap with a crowd region is the intersection over the detection's own area."""

from __future__ import annotations

import numpy as np


def box_iou(det: np.ndarray, ref: np.ndarray, crowd: np.ndarray | None = None) -> np.ndarray:
    """``(D, G)`` IoU of boxes ``(D, 4)`` and ``(G, 4)`` (``x1, y1, x2, y2``, pixel edges).

    Args:
        det: detected boxes.
        ref: reference boxes.
        crowd: ``(G,)`` flags; for those columns the value is intersection / detection area.
    """
    if len(det) == 0 or len(ref) == 0:
        return np.zeros((len(det), len(ref)))
    dw, dh = det[:, 2] - det[:, 0], det[:, 3] - det[:, 1]
    rw, rh = ref[:, 2] - ref[:, 0], ref[:, 3] - ref[:, 1]
    iw = np.minimum(det[:, None, 2], ref[None, :, 2]) - np.maximum(det[:, None, 0], ref[None, :, 0])
    ih = np.minimum(det[:, None, 3], ref[None, :, 3]) - np.maximum(det[:, None, 1], ref[None, :, 1])
    inter = np.clip(iw, 0, None) * np.clip(ih, 0, None)
    det_area = (dw * dh)[:, None]
    union = det_area + (rw * rh)[None, :] - inter
    if crowd is not None:
        union = np.where(np.asarray(crowd, bool)[None, :], det_area, union)
    with np.errstate(divide="ignore", invalid="ignore"):
        return np.where(union > 0, inter / union, 0.0)


def mask_iou(det: np.ndarray, ref: np.ndarray, crowd: np.ndarray | None = None) -> np.ndarray:
    """``(D, G)`` IoU of boolean masks ``(D, H, W)`` and ``(G, H, W)`` (crowd columns: the
    intersection over the detection's area)."""
    if len(det) == 0 or len(ref) == 0:
        return np.zeros((len(det), len(ref)))
    d = det.reshape(len(det), -1).astype(np.float64)
    r = ref.reshape(len(ref), -1).astype(np.float64)
    inter = d @ r.T
    det_area = d.sum(axis=1)[:, None]
    union = det_area + r.sum(axis=1)[None, :] - inter
    if crowd is not None:
        union = np.where(np.asarray(crowd, bool)[None, :], det_area, union)
    with np.errstate(divide="ignore", invalid="ignore"):
        return np.where(union > 0, inter / union, 0.0)
