"""``googlenet`` (Inception-v1) from torchvision, without its auxiliary classifiers.

Its ceil-mode pools read inputs from 15 px up; smaller ones are upsampled bilinearly to 15 px
(a 28 px image is read as is). ``forward_features`` runs the network from ``conv1`` and skips
torchvision's ``transform_input`` re-scaling: medlens normalises in its own preprocessing.
"""

from __future__ import annotations

from typing import Any

import torch
from torch import nn

from medlens.models.channels import with_input_channels
from medlens.models.classifier import Classifier, stage
from medlens.models.layers import MinSizeUpsample
from medlens.models.pretrained import create_torchvision_pretrained
from medlens.models.registry import BuildOptions, register_model

MIN_INPUT_SIZE = 15
_FEATURE_LAYERS = (
    "conv1", "maxpool1", "conv2", "conv3", "maxpool2",
    "inception3a", "inception3b", "maxpool3",
    "inception4a", "inception4b", "inception4c", "inception4d", "inception4e", "maxpool4",
    "inception5a", "inception5b",
)  # fmt: skip


class GoogLeNetClassifier(Classifier):
    """torchvision's GoogLeNet; stages: stem, inception 3, inception 4, inception 5.

    Args:
        net: a ``torchvision.models.GoogLeNet`` built with ``aux_logits=False``.
    """

    def __init__(self, net: Any) -> None:
        super().__init__(spatial_dims=2, num_classes=int(net.fc.out_features))
        self.resize = MinSizeUpsample(MIN_INPUT_SIZE)
        self.net: Any = net  # a library network: its sub-modules are looked up by name
        self.num_features = int(net.fc.in_features)

    def forward_features(self, x: torch.Tensor) -> torch.Tensor:
        x = self.resize(x)
        for name in _FEATURE_LAYERS:
            x = getattr(self.net, name)(x)
        return x

    def forward_head(self, features: torch.Tensor, pre_logits: bool = False) -> torch.Tensor:
        pooled = torch.flatten(self.net.avgpool(features), 1)
        return pooled if pre_logits else self.net.fc(self.net.dropout(pooled))

    def stages(self) -> list[nn.Module]:
        n = self.net
        return [
            stage(n.conv1, n.conv2, n.conv3),
            stage(n.inception3a, n.inception3b),
            stage(n.inception4a, n.inception4b, n.inception4c, n.inception4d, n.inception4e),
            stage(n.inception5a, n.inception5b),
        ]

    @property
    def head(self) -> nn.Module:
        return self.net.fc

    @property
    def target_layer(self) -> nn.Module:
        return self.net.inception5b

    def _replace_classifier(self, num_classes: int) -> None:
        self.net.fc = nn.Linear(self.num_features, num_classes)


@register_model(
    "googlenet",
    spatial_dims=(2,),
    pretrained_dims=(2,),
    channels_last=((2, "train"), (2, "inference")),
)
def googlenet(opts: BuildOptions) -> Classifier:
    from torchvision import models

    net: Any
    if opts.pretrained:
        # torchvision loads the auxiliary classifiers' weights, then drops them (aux_logits unset).
        net = create_torchvision_pretrained(
            "googlenet", models.googlenet, models.GoogLeNet_Weights.IMAGENET1K_V1
        )
        net.dropout.p = opts.dropout
    else:
        net = models.googlenet(
            num_classes=opts.num_classes, aux_logits=False, init_weights=True, dropout=opts.dropout
        )
    net.transform_input = False
    net.conv1.conv = with_input_channels(
        net.conv1.conv, opts.in_channels, keep_weights=opts.pretrained
    )
    model = GoogLeNetClassifier(net)
    if model.num_classes != opts.num_classes:
        model.reset_classifier(opts.num_classes)
    return model
