"""``lenet5``: LeNet-5 with combined min+max pooling, for 28 px images."""

from __future__ import annotations

import torch
from torch import nn

from medlens.models.classifier import Classifier, global_average_pool
from medlens.models.layers import MinMaxPool2d, MinSizeUpsample
from medlens.models.registry import BuildOptions, register_model


class LeNet5(Classifier):
    """LeNet-5 (LeCun et al. 1998) whose sub-sampling layers pool both maxima and minima.

    C1 conv5 (6 ch, padded so a 28 px input keeps 28 px) - tanh - min+max pool -
    C3 conv5 (16 ch) - tanh - min+max pool - C5 conv5 (120 ch) - tanh - global average pool -
    F6 linear (84) - tanh - linear (classes). Each pooling concatenates max-pooling and
    min-pooling (``-maxpool(-x)``), doubling the channels (see ``MinMaxPool2d`` for why a
    concatenation rather than a sum). tanh, as in the original, keeps the sign of the strong
    negative responses that the min-pool selects (a ReLU would zero them).

    Inputs under 28 px are upsampled to 28 px (C5 needs a 5 px map); larger inputs give a
    larger C5 map that is averaged. ``pre_logits`` are F6's 84 outputs.

    Args:
        in_channels: image channels.
        num_classes: logits width.
        dropout: dropout probability before the last linear layer.
    """

    min_input_size = 28

    def __init__(self, in_channels: int = 1, num_classes: int = 2, dropout: float = 0.0) -> None:
        super().__init__(spatial_dims=2, num_classes=num_classes)
        self.resize = MinSizeUpsample(self.min_input_size)
        self.c1 = nn.Sequential(nn.Conv2d(in_channels, 6, 5, padding=2), nn.Tanh(), MinMaxPool2d(2))
        self.c3 = nn.Sequential(nn.Conv2d(12, 16, 5), nn.Tanh(), MinMaxPool2d(2))
        self.c5 = nn.Sequential(nn.Conv2d(32, 120, 5), nn.Tanh())
        self.f6 = nn.Sequential(nn.Linear(120, 84), nn.Tanh())
        self.num_features = 84
        self.drop = nn.Dropout(dropout)
        self.fc = nn.Linear(84, num_classes)

    def forward_features(self, x: torch.Tensor) -> torch.Tensor:
        return self.c5(self.c3(self.c1(self.resize(x))))

    def forward_head(self, features: torch.Tensor, pre_logits: bool = False) -> torch.Tensor:
        f6 = self.f6(global_average_pool(features))
        return f6 if pre_logits else self.fc(self.drop(f6))

    def stages(self) -> list[nn.Module]:
        return [self.c1, self.c3, self.c5]

    @property
    def head(self) -> nn.Module:
        return self.fc

    @property
    def target_layer(self) -> nn.Module:
        return self.c5

    def _replace_classifier(self, num_classes: int) -> None:
        self.fc = nn.Linear(self.num_features, num_classes)


@register_model("lenet5", spatial_dims=(2,), channels_last=((2, "train"), (2, "inference")))
def lenet5(opts: BuildOptions) -> Classifier:
    return LeNet5(opts.in_channels, opts.num_classes, opts.dropout)
