"""The segmentation side of the one trainer: patch batches in, Dice on whole images out."""

from __future__ import annotations

from collections.abc import Sequence
from dataclasses import dataclass
from typing import Any

import numpy as np
import torch
from torch import nn

from medlens.data.image import Image


@dataclass
class PreparedCase:
    """One case after the deterministic preprocessing, applied jointly to image and mask.

    Attributes:
        image: the preprocessed image (what the network sees).
        mask: the label map on the same grid, ``(1, *spatial)`` integer.
        roi: the field of view on the same grid, ``(1, *spatial)`` bool, or None.
        original_mask: the label map on the image's own grid (metrics are computed there).
        original_roi: the field of view on the image's own grid, or None.
        original: the image as read (its grid, spacing and affine).
    """

    case_id: str
    image: Image
    mask: Image
    roi: Image | None
    original_mask: Image
    original_roi: Image | None
    original: Image


def foreground_dice(
    probs: np.ndarray, mask: np.ndarray, roi: np.ndarray | None, num_classes: int
) -> float:
    """Mean Dice over the foreground classes of the argmax of ``probs`` (C, *spatial) against
    ``mask`` (*spatial), counted inside ``roi``; classes absent from both count as 1."""
    pred = probs.argmax(0)
    keep = np.ones(mask.shape, bool) if roi is None else roi
    scores = []
    for c in range(1, num_classes):
        p, r = (pred == c) & keep, (mask == c) & keep
        denom = int(p.sum()) + int(r.sum())
        scores.append(1.0 if denom == 0 else 2.0 * int((p & r).sum()) / denom)
    return float(np.mean(scores)) if scores else float("nan")


class SegmentationTask:
    """Patch batches -> the configured loss (outside the field of view ignored); validation:
    sliding-window probabilities on every whole validation image, mean foreground Dice (argmax)
    and the mean voxel cross-entropy inside the field of view."""

    score_name = "val_dice"

    def __init__(
        self,
        loss_fn: nn.Module,
        val_cases: Sequence[PreparedCase],
        num_classes: int,
        roi_size: Sequence[int] | None,
        overlap: float,
        sw_batch_size: int,
    ) -> None:
        self.loss_fn = loss_fn
        self.val_cases = list(val_cases)
        self.num_classes = num_classes
        self.roi_size = roi_size
        self.overlap = overlap
        self.sw_batch_size = sw_batch_size

    def batch_loss(
        self, model: nn.Module, batch: Any, device: torch.device
    ) -> tuple[torch.Tensor, int]:
        x = batch["image"].to(device, non_blocking=True)
        y = batch["mask"].to(device, non_blocking=True)
        roi = batch["roi"].to(device, non_blocking=True)
        logits = model(x)  # a list of heads, final first, under deep supervision
        if isinstance(logits, (list, tuple)):
            return self.loss_fn([head.float() for head in logits], y, roi), int(x.shape[0])
        return self.loss_fn(logits.float(), y, roi), int(x.shape[0])

    def predict(
        self, model: nn.Module, case: PreparedCase, device: torch.device, tta_flip: bool = False
    ) -> np.ndarray:
        """Softmax probabilities ``(num_classes, *spatial)`` of one preprocessed case."""
        from medlens.inference.sliding_window import sliding_window_predict

        image = torch.from_numpy(np.ascontiguousarray(case.image.array, dtype=np.float32))
        roi_size = self.roi_size or case.image.spatial_shape
        probs = sliding_window_predict(
            model,
            image,
            roi_size=list(roi_size),
            overlap=self.overlap,
            sw_batch_size=self.sw_batch_size,
            tta_flip=tta_flip,
            device=device,
        )
        return probs[0].float().cpu().numpy()

    def validate(self, model: nn.Module, device: torch.device) -> tuple[float, float]:
        if not self.val_cases:
            return float("nan"), float("nan")
        dices, losses = [], []
        for case in self.val_cases:
            probs = self.predict(model, case, device)
            mask = case.mask.array[0].astype(np.int64)
            roi = None if case.roi is None else case.roi.array[0].astype(bool)
            dices.append(foreground_dice(probs, mask, roi, self.num_classes))
            picked = np.take_along_axis(probs, mask[None], axis=0)[0]
            nll = -np.log(np.clip(picked, 1e-7, 1.0))
            losses.append(float(nll[roi].mean() if roi is not None else nll.mean()))
        model.train()
        return float(np.nanmean(dices)), float(np.mean(losses))
