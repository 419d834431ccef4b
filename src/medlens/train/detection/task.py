"""The detection side of the one trainer: the sum of the detector's losses per batch, and
the validation mAP@0.5 (COCO's AP at IoU 0.5, averaged over classes) on the original images."""

from __future__ import annotations

from collections.abc import Sequence
from typing import Any

import torch
from torch import nn

from medlens.metrics.detection.objects import DetectedObjects
from medlens.train.detection.data import PreparedImage


class DetectionTrainingTask:
    """Batches of (images, targets) -> the detector's summed losses; validation: detections
    of every validation image, mapped back to it, scored by mAP@0.5.

    Args:
        val_images: the prepared validation images.
        num_classes: object classes.
        max_detections: per image and class, as scored.
        mask_threshold: instance-mask probability threshold.
        batch_size: images per forward pass at validation.
    """

    score_name = "val_map50"

    def __init__(
        self,
        val_images: Sequence[PreparedImage],
        num_classes: int,
        max_detections: int = 100,
        mask_threshold: float = 0.5,
        batch_size: int = 4,
    ) -> None:
        self.val_images = list(val_images)
        self.num_classes = num_classes
        self.max_detections = max_detections
        self.mask_threshold = mask_threshold
        self.batch_size = batch_size

    def batch_loss(
        self, model: nn.Module, batch: Any, device: torch.device
    ) -> tuple[torch.Tensor, int]:
        images, targets = batch
        images = [image.to(device, non_blocking=True) for image in images]
        targets = [{k: v.to(device, non_blocking=True) for k, v in t.items()} for t in targets]
        losses = model(images, targets)
        return sum(loss.float() for loss in losses.values()), len(images)  # type: ignore[return-value]

    def predict(
        self, model: nn.Module, device: torch.device, images: Sequence[PreparedImage]
    ) -> list[DetectedObjects]:
        """The detections of ``images`` on their original grids."""
        from medlens.inference.detect import detect_inputs

        return detect_inputs(
            model, [p.item for p in images], device, self.mask_threshold, self.batch_size
        )

    def validate(self, model: nn.Module, device: torch.device) -> tuple[float, float]:
        """``(mAP@0.5, nan)``: the detectors give no loss in evaluation mode."""
        from medlens.metrics.detection import ap_metrics, match_images

        if not self.val_images:
            return float("nan"), float("nan")
        detections = self.predict(model, device, self.val_images)
        references = [p.reference for p in self.val_images]
        matches = match_images(
            detections, references, self.num_classes, max_detections=self.max_detections
        )
        model.train()
        return ap_metrics(matches, self.num_classes)["overall"]["map50"], float("nan")
