"""A feature pyramid over a medlens classifier: its stages at strides 4 (or 8) to 32, through
torchvision's ``FeaturePyramidNetwork``, plus the coarser levels the detector family adds.

The stages come from timm's feature extraction of the classifier's own network, which keeps
the modules (and their weights: ImageNet's, or a medlens checkpoint's) and their names, so
a ResNet-50 pyramid has the tensor names of torchvision's and takes its COCO weights.
"""

from __future__ import annotations

from collections import OrderedDict
from typing import Any

import torch
from torch import nn
from torchvision.ops.feature_pyramid_network import (
    ExtraFPNBlock,
    FeaturePyramidNetwork,
    LastLevelMaxPool,
    LastLevelP6P7,
)

from medlens.errors import ConfigError
from medlens.models.classifier import Classifier


def stage_indices(net: Any, strides: tuple[int, ...], backbone: str) -> list[int]:
    """The indices of timm's ``feature_info`` whose output strides are ``strides``.

    Raises:
        ConfigError: keyed ``model.backbone`` when the network has no such stages.
    """
    info = getattr(net, "feature_info", None)
    if info is None:
        raise ConfigError(
            "model.backbone",
            f"{backbone} has no multi-scale stages to build a pyramid on (timm CNNs have: "
            "resnet18/34/50, densenet121, efficientnet_b0, mobilenetv3_large_100)",
        )
    reductions = [int(f["reduction"]) for f in info]
    missing = [s for s in strides if s not in reductions]
    if missing:
        raise ConfigError(
            "model.backbone",
            f"{backbone} has stages at strides {reductions}, not {missing}, which the pyramid needs",
        )
    return [len(reductions) - 1 - reductions[::-1].index(s) for s in strides]


class PyramidBackbone(nn.Module):
    """``forward(x)``: an ordered dict of pyramid levels, finest first (``"0"``, ``"1"``, ...
    and the extra levels), each ``out_channels`` wide.

    Args:
        classifier: a medlens classifier on a timm network (its weights are kept).
        strides: the stage strides the pyramid reads, finest first.
        out_channels: the pyramid's width.
        extra: ``"pool"`` (one max-pooled level: Faster/Mask R-CNN's P6) or ``"p6p7"`` (two
            strided convolutions: RetinaNet's and FCOS's P6, P7).
    """

    def __init__(
        self, classifier: Classifier, strides: tuple[int, ...], out_channels: int, extra: str
    ) -> None:
        from timm.models import FeatureListNet

        super().__init__()
        name = str(classifier.config.get("name", type(classifier).__name__))
        net: Any = getattr(classifier, "net", None)
        indices = stage_indices(net, strides, name)
        # Stages inside a Sequential (MobileNet's blocks.1) need it flattened; others keep
        # their names, which are torchvision's for a ResNet.
        nested = any("." in str(f["module"]) for f in net.feature_info)
        self.body = FeatureListNet(net, out_indices=tuple(indices), flatten_sequential=nested)
        channels = [int(c) for c in self.body.feature_info.channels()]
        blocks: ExtraFPNBlock = (
            LastLevelMaxPool() if extra == "pool" else LastLevelP6P7(out_channels, out_channels)
        )
        self.fpn = FeaturePyramidNetwork(channels, out_channels, extra_blocks=blocks)
        self.out_channels = out_channels
        self.levels = len(strides) + (1 if extra == "pool" else 2)

    def forward(self, x: torch.Tensor) -> OrderedDict[str, torch.Tensor]:
        features = self.body(x)
        return self.fpn(OrderedDict((str(i), f) for i, f in enumerate(features)))
