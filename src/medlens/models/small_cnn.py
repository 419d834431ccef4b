"""``small_cnn``: two convolution blocks and a linear classifier, 2D or 3D, for small images."""

from __future__ import annotations

import torch
from torch import nn

from medlens.errors import ConfigError
from medlens.models.classifier import Classifier, global_average_pool
from medlens.models.registry import BuildOptions, register_model

_CONV = {2: nn.Conv2d, 3: nn.Conv3d}
_NORM = {2: nn.BatchNorm2d, 3: nn.BatchNorm3d}
_POOL = {2: nn.MaxPool2d, 3: nn.MaxPool3d}


class SmallCNN(Classifier):
    """conv3-BN-ReLU-maxpool2 (32 ch), conv3-BN-ReLU (64 ch), global average pool, linear.

    A fast baseline for 28 px MedMNIST images and 28^3 volumes; it reads any input of at
    least 2 px (voxels) a side.

    Args:
        in_channels: image channels.
        num_classes: logits width.
        spatial_dims: 2 or 3.
        dropout: dropout probability before the linear layer.
        widths: channels of the two blocks.
    """

    def __init__(
        self,
        in_channels: int = 1,
        num_classes: int = 2,
        spatial_dims: int = 2,
        dropout: float = 0.0,
        widths: tuple[int, int] = (32, 64),
    ) -> None:
        if spatial_dims not in _CONV:
            raise ConfigError("model.spatial_dims", f"small_cnn is 2D or 3D, not {spatial_dims}D")
        super().__init__(spatial_dims=spatial_dims, num_classes=num_classes)
        conv, norm, pool = _CONV[spatial_dims], _NORM[spatial_dims], _POOL[spatial_dims]
        self.block1 = nn.Sequential(
            conv(in_channels, widths[0], 3, padding=1, bias=False),
            norm(widths[0]),
            nn.ReLU(),
            pool(2),
        )
        self.block2 = nn.Sequential(
            conv(widths[0], widths[1], 3, padding=1, bias=False), norm(widths[1]), nn.ReLU()
        )
        self.num_features = widths[1]
        self.drop = nn.Dropout(dropout)
        self.fc = nn.Linear(widths[1], num_classes)

    def forward_features(self, x: torch.Tensor) -> torch.Tensor:
        return self.block2(self.block1(x))

    def forward_head(self, features: torch.Tensor, pre_logits: bool = False) -> torch.Tensor:
        pooled = global_average_pool(features)
        return pooled if pre_logits else self.fc(self.drop(pooled))

    def stages(self) -> list[nn.Module]:
        return [self.block1, self.block2]

    @property
    def head(self) -> nn.Module:
        return self.fc

    @property
    def target_layer(self) -> nn.Module:
        return self.block2

    def _replace_classifier(self, num_classes: int) -> None:
        self.fc = nn.Linear(self.num_features, num_classes)


@register_model("small_cnn", spatial_dims=(2, 3))
def small_cnn(opts: BuildOptions) -> Classifier:
    return SmallCNN(opts.in_channels, opts.num_classes, opts.spatial_dims, opts.dropout)
