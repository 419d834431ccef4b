"""A timm model behind the medlens contract; each architecture module says where its stages are."""

from __future__ import annotations

from typing import Any

import torch
from torch import nn

from medlens.models.classifier import Classifier
from medlens.models.layers import MinSizeUpsample
from medlens.models.pretrained import create_timm_pretrained
from medlens.models.registry import BuildOptions


def create_timm_net(name: str, opts: BuildOptions) -> nn.Module:
    """The timm network ``name`` for ``opts``; timm's ``in_chans`` adapts pretrained weights."""
    kwargs: dict[str, Any] = {
        "in_chans": opts.in_channels,
        "num_classes": opts.num_classes,
        "drop_rate": opts.dropout,
    }
    if opts.pretrained:
        return create_timm_pretrained(name, **kwargs)
    import timm

    return timm.create_model(name, pretrained=False, **kwargs)


class TimmClassifier(Classifier):
    """Delegates features, head and classifier reset to timm; subclasses name stages and CAM layer.

    Args:
        net: a timm model (which already has ``forward_features`` / ``forward_head``).
        min_input_size: inputs whose shortest side is smaller are upsampled to it, in pixels.
    """

    def __init__(self, net: Any, min_input_size: int = 1) -> None:
        super().__init__(spatial_dims=2, num_classes=int(net.num_classes))
        self.resize: nn.Module = (
            MinSizeUpsample(min_input_size) if min_input_size > 1 else nn.Identity()
        )
        self.net: Any = net  # a library network: its sub-modules are looked up by name

    @property
    def num_features(self) -> int:  # type: ignore[override]
        # VGG's pre-logits (its fc6/fc7 as convolutions) are wider than its feature map.
        return int(getattr(self.net, "head_hidden_size", None) or self.net.num_features)

    def forward_features(self, x: torch.Tensor) -> torch.Tensor:
        return self.net.forward_features(self.resize(x))

    def forward_head(self, features: torch.Tensor, pre_logits: bool = False) -> torch.Tensor:
        return self.net.forward_head(features, pre_logits=pre_logits)

    @property
    def head(self) -> nn.Module:
        return self.net.get_classifier()

    def _replace_classifier(self, num_classes: int) -> None:
        self.net.reset_classifier(num_classes)
