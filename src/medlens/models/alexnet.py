"""``alexnet`` from torchvision.

Its 11x11 stride-4 convolution and three 3x3 stride-2 max-pools need at least 63 px: smaller
inputs (28 px MedMNIST) are upsampled bilinearly to 63 px. ``dropout`` sets AlexNet's own two
dropouts (before fc6 and fc7); ``pre_logits`` are fc7's 4096 outputs.
"""

from __future__ import annotations

from typing import Any

import torch
from torch import nn

from medlens.models.channels import with_input_channels
from medlens.models.classifier import Classifier
from medlens.models.layers import MinSizeUpsample
from medlens.models.pretrained import create_torchvision_pretrained
from medlens.models.registry import BuildOptions, register_model

MIN_INPUT_SIZE = 63


class AlexNetClassifier(Classifier):
    """torchvision's AlexNet; stages: its five convolutions (with their ReLUs and pools).

    Args:
        net: a ``torchvision.models.AlexNet``.
    """

    def __init__(self, net: Any) -> None:
        super().__init__(spatial_dims=2, num_classes=int(net.classifier[-1].out_features))
        self.resize = MinSizeUpsample(MIN_INPUT_SIZE)
        self.net: Any = net  # a library network: its sub-modules are looked up by name
        self.num_features = int(net.classifier[-1].in_features)

    def forward_features(self, x: torch.Tensor) -> torch.Tensor:
        return self.net.features(self.resize(x))

    def forward_head(self, features: torch.Tensor, pre_logits: bool = False) -> torch.Tensor:
        fc7 = self.net.classifier[:-1](torch.flatten(self.net.avgpool(features), 1))
        return fc7 if pre_logits else self.net.classifier[-1](fc7)

    def stages(self) -> list[nn.Module]:
        f = self.net.features
        return [f[0:3], f[3:6], f[6:8], f[8:10], f[10:13]]

    @property
    def head(self) -> nn.Module:
        return self.net.classifier[-1]

    @property
    def target_layer(self) -> nn.Module:
        return self.net.features[-1]

    def _replace_classifier(self, num_classes: int) -> None:
        self.net.classifier[-1] = nn.Linear(self.num_features, num_classes)


@register_model(
    "alexnet", spatial_dims=(2,), pretrained_dims=(2,), channels_last=((2, "inference"),)
)
def alexnet(opts: BuildOptions) -> Classifier:
    from torchvision import models

    net: Any
    if opts.pretrained:
        net = create_torchvision_pretrained(
            "alexnet", models.alexnet, models.AlexNet_Weights.IMAGENET1K_V1
        )
        for layer in net.classifier:
            if isinstance(layer, nn.Dropout):
                layer.p = opts.dropout
    else:
        net = models.alexnet(num_classes=opts.num_classes, dropout=opts.dropout)
    net.features[0] = with_input_channels(
        net.features[0], opts.in_channels, keep_weights=opts.pretrained
    )
    model = AlexNetClassifier(net)
    if model.num_classes != opts.num_classes:
        model.reset_classifier(opts.num_classes)
    return model
