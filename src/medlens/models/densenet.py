"""``densenet121`` / ``densenet201``: timm in 2D, MONAI (121 only) in 3D.

Small-input stem (``cifar_stem``, automatic under 64 px): the 7x7 stride-2 convolution becomes a
3x3 stride-1 one (freshly initialised) and the max-pool is dropped, so a 28 px image reaches the
last dense block at 3 px. A DenseNet needs 29 px with the standard stem and 8 px with the small
one; smaller inputs are upsampled (bi/trilinearly) to that size.
"""

from __future__ import annotations

import logging
from typing import Any

import torch
from torch import nn

from medlens.models.classifier import Classifier, global_average_pool, stage
from medlens.models.layers import MinSizeUpsample
from medlens.models.registry import BuildOptions, register_model
from medlens.models.timm_backbone import TimmClassifier, create_timm_net

logger = logging.getLogger(__name__)

MIN_INPUT_SIZE_STANDARD_STEM = 29
MIN_INPUT_SIZE_SMALL_STEM = 8  # three stride-2 transitions


def _densenet_stages(features: Any) -> list[nn.Module]:
    f = features
    return [
        stage(f.conv0, f.norm0),
        stage(f.denseblock1, f.transition1),
        stage(f.denseblock2, f.transition2),
        stage(f.denseblock3, f.transition3),
        stage(f.denseblock4, f.norm5),
    ]


def _small_input_stem(features: Any, in_channels: int, spatial_dims: int) -> None:
    conv = {2: nn.Conv2d, 3: nn.Conv3d}[spatial_dims]
    features.conv0 = conv(
        in_channels, features.conv0.out_channels, 3, stride=1, padding=1, bias=False
    )
    features.pool0 = nn.Identity()


class TimmDenseNet(TimmClassifier):
    """A timm DenseNet; its stages are the stem and the four dense blocks (with transitions)."""

    def stages(self) -> list[nn.Module]:
        return _densenet_stages(self.net.features)

    @property
    def target_layer(self) -> nn.Module:
        return self.net.features.norm5


class MonaiDenseNet(Classifier):
    """A MONAI DenseNet (3D) with a pooled, dropout-then-linear head.

    MONAI's ``norm5`` has no activation; the ReLU its head applies is ``feature_act`` here, so
    that ``forward_features`` and the CAM layer give the activated map.

    Args:
        net: a ``monai.networks.nets.DenseNet``.
        dropout: dropout probability before the last linear layer.
        min_input_size: inputs with a shorter side are upsampled to it, in voxels.
    """

    def __init__(self, net: Any, dropout: float = 0.0, min_input_size: int = 1) -> None:
        out = net.class_layers.out
        super().__init__(spatial_dims=3, num_classes=int(out.out_features))
        self.resize: nn.Module = (
            MinSizeUpsample(min_input_size) if min_input_size > 1 else nn.Identity()
        )
        self.net: Any = net  # a library network: its sub-modules are looked up by name
        self.feature_act = nn.ReLU()
        self.num_features = int(out.in_features)
        self.drop = nn.Dropout(dropout)

    def forward_features(self, x: torch.Tensor) -> torch.Tensor:
        return self.feature_act(self.net.features(self.resize(x)))

    def forward_head(self, features: torch.Tensor, pre_logits: bool = False) -> torch.Tensor:
        pooled = global_average_pool(features)
        return pooled if pre_logits else self.net.class_layers.out(self.drop(pooled))

    def stages(self) -> list[nn.Module]:
        return _densenet_stages(self.net.features)

    @property
    def head(self) -> nn.Module:
        return self.net.class_layers.out

    @property
    def target_layer(self) -> nn.Module:
        return self.feature_act

    def _replace_classifier(self, num_classes: int) -> None:
        self.net.class_layers.out = nn.Linear(self.num_features, num_classes)


def _build_densenet(name: str, opts: BuildOptions) -> Classifier:
    small = opts.small_input_stem
    min_size = MIN_INPUT_SIZE_SMALL_STEM if small else MIN_INPUT_SIZE_STANDARD_STEM
    if opts.spatial_dims == 3:
        from monai.networks.nets import DenseNet121

        net3d = DenseNet121(
            spatial_dims=3, in_channels=opts.in_channels, out_channels=opts.num_classes
        )
        if small:
            _small_input_stem(net3d.features, opts.in_channels, 3)
        return MonaiDenseNet(net3d, opts.dropout, min_size)
    net: Any = create_timm_net(name, opts)
    if small:
        if opts.pretrained:
            logger.info(
                "%s: the small-input stem convolution is new; it has no ImageNet weights", name
            )
        _small_input_stem(net.features, opts.in_channels, 2)
    return TimmDenseNet(net, min_size)


@register_model(
    "densenet121",
    spatial_dims=(2, 3),
    pretrained_dims=(2,),
    channels_last=((3, "train"), (2, "train"), (2, "inference")),
)
def densenet121(opts: BuildOptions) -> Classifier:
    return _build_densenet("densenet121", opts)


@register_model(
    "densenet201",
    spatial_dims=(2,),
    pretrained_dims=(2,),
    channels_last=((2, "train"), (2, "inference")),
)
def densenet201(opts: BuildOptions) -> Classifier:
    return _build_densenet("densenet201", opts)
