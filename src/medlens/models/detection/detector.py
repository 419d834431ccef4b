"""``Detector``: a torchvision detection model behind one medlens contract.

``forward(images, targets)`` is torchvision's: a list of ``(C, H, W)`` float tensors (and,
in training, a list of target dicts with ``boxes`` ``(N, 4)`` x1, y1, x2, y2 in pixels,
``labels`` 1..K with 0 the background, ``masks`` ``(N, H, W)`` for Mask R-CNN) gives the
dict of losses in training mode and, in evaluation mode, one dict per image of ``boxes``,
``scores``, ``labels`` 1..K (and ``masks`` ``(N, 1, H, W)`` probabilities).

medlens sets each image's working scale in its preprocessing (``fit_size``, ``resize``), so
the model's own transform only normalises and batches: it never resizes, and boxes come
back on the grid the network saw.
"""

from __future__ import annotations

from typing import Any

import torch
from torch import nn
from torchvision.models.detection.transform import GeneralizedRCNNTransform

IMAGENET_MEAN = (0.485, 0.456, 0.406)
IMAGENET_STD = (0.229, 0.224, 0.225)


class BatchOnlyTransform(GeneralizedRCNNTransform):
    """torchvision's transform without its resizing: normalise, pad to a multiple of 32,
    batch."""

    def resize(
        self, image: torch.Tensor, target: dict[str, torch.Tensor] | None = None
    ) -> tuple[torch.Tensor, dict[str, torch.Tensor] | None]:
        return image, target


def normalisation(in_channels: int, imagenet: bool) -> tuple[list[float], list[float]]:
    """Mean and standard deviation per channel: ImageNet's for networks pretrained on it (on
    [0, 1] images), else none (0 and 1), as medlens' own classifiers are trained."""
    if not imagenet:
        return [0.0] * in_channels, [1.0] * in_channels
    mean = [IMAGENET_MEAN[c % 3] for c in range(in_channels)]
    std = [IMAGENET_STD[c % 3] for c in range(in_channels)]
    if in_channels == 1:
        mean, std = [sum(IMAGENET_MEAN) / 3], [sum(IMAGENET_STD) / 3]
    return mean, std


class Detector(nn.Module):
    """A detector (or instance segmenter) and the facts the rest of medlens asks of it.

    Attributes:
        net: the torchvision model.
        family: ``faster_rcnn``, ``retinanet``, ``fcos`` or ``mask_rcnn``.
        num_classes: object classes (without the background).
        predicts_masks: it also predicts instance masks.
        config: the ``create_detector`` arguments that rebuild it (JSON-serialisable).
        init_report: what a weight source loaded and skipped.
    """

    def __init__(self, net: nn.Module, family: str, num_classes: int, predicts_masks: bool) -> None:
        super().__init__()
        self.net = net
        self.family = family
        self.num_classes = num_classes
        self.predicts_masks = predicts_masks
        self.config: dict[str, Any] = {}
        self.init_report: dict[str, Any] | None = None

    def forward(
        self, images: list[torch.Tensor], targets: list[dict[str, torch.Tensor]] | None = None
    ) -> Any:
        out = self.net(images, targets)
        if self.training:
            return out
        # RetinaNet and FCOS score every class with a sigmoid, the background (0) too: never
        # a target, it is no detection either.
        return [{k: v[d["labels"] > 0] for k, v in d.items()} for d in out]

    @property
    def backbone(self) -> nn.Module:
        """The feature pyramid (its ``body`` holds the classifier's stages)."""
        return self.net.backbone  # type: ignore[return-value]
