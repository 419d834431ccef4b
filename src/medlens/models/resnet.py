"""``resnet18`` / ``resnet34`` / ``resnet50``: timm in 2D, MONAI in 3D.

Small-input stem (``cifar_stem``, automatic under 64 px): the 7x7 stride-2 convolution and the
max-pool become one 3x3 stride-1 convolution, so a 28 px image reaches the last stage at 4 px
instead of 1 px. The new stem convolution is freshly initialised (ImageNet's 7x7 kernels do not
fit it); the rest keeps its pretrained weights. In 3D the standard stem is 7^3 stride 2 with a
max-pool (as MedicalNet), the small one 3^3 stride 1 without max-pool.
"""

from __future__ import annotations

import logging
from typing import Any

import torch
from torch import nn

from medlens.models.classifier import Classifier, global_average_pool, stage
from medlens.models.registry import BuildOptions, register_model
from medlens.models.timm_backbone import TimmClassifier, create_timm_net

logger = logging.getLogger(__name__)


def _resnet_stages(net: Any) -> list[nn.Module]:
    return [stage(net.conv1, net.bn1), net.layer1, net.layer2, net.layer3, net.layer4]


class TimmResNet(TimmClassifier):
    """A timm ResNet; its stages are the stem and ``layer1``..``layer4``."""

    def stages(self) -> list[nn.Module]:
        return _resnet_stages(self.net)

    @property
    def target_layer(self) -> nn.Module:
        return self.net.layer4


class MonaiResNet(Classifier):
    """A MONAI ResNet (3D) with a pooled, dropout-then-linear head.

    Args:
        net: a ``monai.networks.nets.ResNet``.
        dropout: dropout probability before the last linear layer.
    """

    def __init__(self, net: Any, dropout: float = 0.0) -> None:
        super().__init__(spatial_dims=3, num_classes=int(net.fc.out_features))
        self.net: Any = net  # a library network: its sub-modules are looked up by name
        self.num_features = int(net.fc.in_features)
        self.drop = nn.Dropout(dropout)

    def forward_features(self, x: torch.Tensor) -> torch.Tensor:
        net = self.net
        x = net.act(net.bn1(net.conv1(x)))
        if not net.no_max_pool:
            x = net.maxpool(x)
        return net.layer4(net.layer3(net.layer2(net.layer1(x))))

    def forward_head(self, features: torch.Tensor, pre_logits: bool = False) -> torch.Tensor:
        pooled = global_average_pool(features)
        return pooled if pre_logits else self.net.fc(self.drop(pooled))

    def stages(self) -> list[nn.Module]:
        return _resnet_stages(self.net)

    @property
    def head(self) -> nn.Module:
        return self.net.fc

    @property
    def target_layer(self) -> nn.Module:
        return self.net.layer4

    def _replace_classifier(self, num_classes: int) -> None:
        self.net.fc = nn.Linear(self.num_features, num_classes)


def _build_resnet(name: str, opts: BuildOptions) -> Classifier:
    if opts.spatial_dims == 3:
        from monai.networks import nets

        small = opts.small_input_stem
        net3d = getattr(nets, name)(
            spatial_dims=3,
            n_input_channels=opts.in_channels,
            num_classes=opts.num_classes,
            conv1_t_size=3 if small else 7,
            conv1_t_stride=1 if small else 2,
            no_max_pool=small,
        )
        return MonaiResNet(net3d, opts.dropout)
    net: Any = create_timm_net(name, opts)
    if opts.small_input_stem:
        if opts.pretrained:
            logger.info(
                "%s: the small-input stem convolution is new; it has no ImageNet weights", name
            )
        net.conv1 = nn.Conv2d(
            opts.in_channels, net.conv1.out_channels, 3, stride=1, padding=1, bias=False
        )
        net.maxpool = nn.Identity()
    return TimmResNet(net)


@register_model(
    "resnet18",
    spatial_dims=(2, 3),
    pretrained_dims=(2,),
    channels_last=((3, "train"), (3, "inference"), (2, "train"), (2, "inference")),
)
def resnet18(opts: BuildOptions) -> Classifier:
    return _build_resnet("resnet18", opts)


@register_model(
    "resnet34", spatial_dims=(2, 3), pretrained_dims=(2,), channels_last=((2, "inference"),)
)
def resnet34(opts: BuildOptions) -> Classifier:
    return _build_resnet("resnet34", opts)


@register_model(
    "resnet50",
    spatial_dims=(2, 3),
    pretrained_dims=(2,),
    channels_last=((3, "train"), (3, "inference"), (2, "inference")),
)
def resnet50(opts: BuildOptions) -> Classifier:
    return _build_resnet("resnet50", opts)
