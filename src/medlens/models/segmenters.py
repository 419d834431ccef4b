"""Segmentation networks: MONAI's U-Net family and V-Net, and a small FCN baseline.

Sizes suit a CPU: U-Net channels (16, 32, 64, 128) with three downsamplings. Every network is
a :class:`~medlens.models.segmenter.Segmenter` (logits of the input's spatial size, a
``size_divisor``, a ``head`` and a ``target_layer``), built by name with ``create_model``:
``unet``, ``residual_unet``, ``attention_unet``, ``unet_plus_plus`` (2D and 3D), ``vnet``
(3D) and ``fcn`` (2D and 3D).
"""

from __future__ import annotations

from collections.abc import Sequence
from typing import Any

import torch
import torch.nn.functional as F
from torch import nn

from medlens.errors import ConfigError, InputError
from medlens.models.registry import BuildOptions, register_model
from medlens.models.segmenter import Segmenter

UNET_CHANNELS = (16, 32, 64, 128)
UNET_PLUS_PLUS_FEATURES = (16, 16, 32, 64, 128, 16)
_CONV = {2: nn.Conv2d, 3: nn.Conv3d}
_NORM = {2: nn.BatchNorm2d, 3: nn.BatchNorm3d}


def _check_dims(name: str, spatial_dims: int, allowed: tuple[int, ...] = (2, 3)) -> None:
    if spatial_dims not in allowed:
        supported = " or ".join(f"{d}D" for d in allowed)
        raise ConfigError("model.spatial_dims", f"{name} is {supported}, not {spatial_dims}D")


def _unet_levels(
    name: str, spatial_dims: int, channels: Sequence[int]
) -> tuple[tuple[int, ...], tuple[int, ...]]:
    """Checked ``(channels, strides)`` of a MONAI U-Net: one stride-2 step between levels."""
    _check_dims(name, spatial_dims)
    if len(channels) < 3:
        raise ConfigError(
            "model.channels", f"{name} needs at least 3 levels of channels, got {tuple(channels)}"
        )
    return tuple(int(c) for c in channels), (2,) * (len(channels) - 1)


class UNet(Segmenter):
    """MONAI's ``UNet``: strided-convolution encoder, transposed-convolution decoder.

    With ``num_res_units > 0`` every block is a residual unit (Kerfoot et al. 2018), which
    is ``residual_unet``.

    Args:
        in_channels: image channels.
        num_classes: logits width, background included.
        spatial_dims: 2 or 3.
        dropout: dropout probability inside every block.
        num_res_units: residual units per block (0: plain convolutions).
        channels: channels per level; ``len(channels) - 1`` stride-2 downsamplings.
    """

    def __init__(
        self,
        in_channels: int = 1,
        num_classes: int = 2,
        spatial_dims: int = 2,
        dropout: float = 0.0,
        num_res_units: int = 0,
        channels: Sequence[int] = UNET_CHANNELS,
    ) -> None:
        from monai.networks import nets

        channels, strides = _unet_levels("unet", spatial_dims, channels)
        super().__init__(spatial_dims, in_channels, num_classes, size_divisor=2 ** len(strides))
        self.net: Any = nets.UNet(
            spatial_dims,
            in_channels,
            num_classes,
            channels,
            strides,
            num_res_units=num_res_units,
            dropout=dropout,
        )

    def forward_logits(self, x: torch.Tensor) -> torch.Tensor:
        return self.net(x)

    @property
    def head(self) -> nn.Module:
        return self.net.model[2]  # the top up-sampling layer, which outputs the logits

    @property
    def target_layer(self) -> nn.Module:
        return self.net.model[1].submodule[2]  # the last decoder block below the head


class AttentionUNet(Segmenter):
    """MONAI's ``AttentionUnet`` (Oktay et al. 2018): skip connections gated by attention.

    Args:
        in_channels: image channels.
        num_classes: logits width, background included.
        spatial_dims: 2 or 3.
        dropout: dropout probability inside every block.
        channels: channels per level; ``len(channels) - 1`` stride-2 downsamplings.
    """

    def __init__(
        self,
        in_channels: int = 1,
        num_classes: int = 2,
        spatial_dims: int = 2,
        dropout: float = 0.0,
        channels: Sequence[int] = UNET_CHANNELS,
    ) -> None:
        from monai.networks import nets

        channels, strides = _unet_levels("attention_unet", spatial_dims, channels)
        super().__init__(spatial_dims, in_channels, num_classes, size_divisor=2 ** len(strides))
        self.net: Any = nets.AttentionUnet(
            spatial_dims, in_channels, num_classes, channels, strides, dropout=dropout
        )

    def forward_logits(self, x: torch.Tensor) -> torch.Tensor:
        return self.net(x)

    @property
    def head(self) -> nn.Module:
        return self.net.model[2]  # 1x1 convolution to the logits

    @property
    def target_layer(self) -> nn.Module:
        return self.net.model[1].merge  # the full-resolution decoder convolution


class UNetPlusPlus(Segmenter):
    """MONAI's ``BasicUNetPlusPlus`` (Zhou et al. 2018): nested, dense skip pathways.

    Four stride-2 max-poolings, so sides must be multiples of 16 voxels; training needs one
    side of at least 32, as instance normalisation cannot normalise a single voxel at the
    1/16 level.

    Args:
        in_channels: image channels.
        num_classes: logits width, background included.
        spatial_dims: 2 or 3.
        dropout: dropout probability inside every block.
        features: the six widths of ``BasicUNetPlusPlus`` (five levels and the last decoder).
        deep_supervision: in training mode, return the logits of the four nested decoders,
            ``[final (X0,4), X0,3, X0,2, X0,1]``, for a deeply supervised loss; evaluation
            mode always returns the final logits alone. Without it the three auxiliary heads
            are dropped, so that every parameter takes part in each step (as DDP expects).
    """

    def __init__(
        self,
        in_channels: int = 1,
        num_classes: int = 2,
        spatial_dims: int = 2,
        dropout: float = 0.0,
        features: Sequence[int] = UNET_PLUS_PLUS_FEATURES,
        deep_supervision: bool = False,
    ) -> None:
        from monai.networks import nets

        _check_dims("unet_plus_plus", spatial_dims)
        super().__init__(spatial_dims, in_channels, num_classes, size_divisor=16)
        self.deep_supervision = deep_supervision
        self.net: Any = nets.BasicUNetPlusPlus(
            spatial_dims,
            in_channels,
            num_classes,
            features=tuple(features),
            deep_supervision=deep_supervision,
            dropout=dropout,
        )
        if not deep_supervision:
            for level in (1, 2, 3):
                setattr(self.net, f"final_conv_0_{level}", nn.Identity())

    def forward_logits(self, x: torch.Tensor) -> torch.Tensor | list[torch.Tensor]:
        if self.training and max(x.shape[2:]) < 2 * self.size_divisor:
            raise InputError(
                "input",
                f"unet_plus_plus trains on inputs with a side of at least {2 * self.size_divisor} "
                f"voxels, got {tuple(x.shape[2:])}: its 1/16 level would hold a single voxel, "
                "which instance normalisation cannot normalise",
            )
        outputs = self.net(x)
        if self.deep_supervision and self.training:
            return outputs[::-1]
        return outputs[-1]

    @property
    def head(self) -> nn.Module:
        if not self.deep_supervision:
            return self.net.final_conv_0_4
        heads = [getattr(self.net, f"final_conv_0_{level}") for level in (4, 3, 2, 1)]
        return nn.ModuleList(heads)  # a view: the heads stay where they are

    @property
    def target_layer(self) -> nn.Module:
        return self.net.upcat_0_4


class VNet(Segmenter):
    """MONAI's ``VNet`` (Milletari et al. 2016): residual 5x5x5 stages, four downsamplings.

    Sides must be multiples of 16 voxels, and ``in_channels`` must divide 16 (the input
    transition adds the image, repeated, to its 16 feature channels).

    Args:
        in_channels: image channels (1, 2, 4, 8 or 16).
        num_classes: logits width, background included.
        dropout: probability of every dropout layer (channel dropout), 0 to switch them off.
    """

    def __init__(self, in_channels: int = 1, num_classes: int = 2, dropout: float = 0.0) -> None:
        from monai.networks import nets

        if 16 % in_channels:
            raise ConfigError(
                "model.in_channels",
                f"vnet reads 1, 2, 4, 8 or 16 channels (a divisor of 16), got {in_channels}",
            )
        super().__init__(3, in_channels, num_classes, size_divisor=16)
        self.net: Any = nets.VNet(
            3,
            in_channels,
            num_classes,
            dropout_prob_down=dropout,
            dropout_prob_up=(dropout, dropout),
        )
        # Two skip-connection dropouts keep MONAI's fixed 0.5; the config's value rules all.
        for module in self.net.modules():
            if isinstance(module, nn.modules.dropout._DropoutNd):
                module.p = dropout

    def forward_logits(self, x: torch.Tensor) -> torch.Tensor:
        return self.net(x)

    @property
    def head(self) -> nn.Module:
        return self.net.out_tr

    @property
    def target_layer(self) -> nn.Module:
        return self.net.up_tr32


class FCN(Segmenter):
    """A fully convolutional baseline (Long et al. 2015, FCN-32s style).

    Three conv3-BN-ReLU blocks (the last two stride 2), a 1x1 classifier, and (bi/tri)linear
    upsampling of the coarse logits back to the input size: any input size works.

    Args:
        in_channels: image channels.
        num_classes: logits width, background included.
        spatial_dims: 2 or 3.
        dropout: dropout probability before the classifier.
        widths: channels of the three blocks.
    """

    def __init__(
        self,
        in_channels: int = 1,
        num_classes: int = 2,
        spatial_dims: int = 2,
        dropout: float = 0.0,
        widths: tuple[int, int, int] = (16, 32, 64),
    ) -> None:
        _check_dims("fcn", spatial_dims)
        super().__init__(spatial_dims, in_channels, num_classes, size_divisor=1)
        conv, norm = _CONV[spatial_dims], _NORM[spatial_dims]
        blocks = []
        for i, (c_in, c_out) in enumerate(zip((in_channels, *widths[:-1]), widths, strict=True)):
            stride = 1 if i == 0 else 2
            blocks += [conv(c_in, c_out, 3, stride, padding=1, bias=False), norm(c_out), nn.ReLU()]
        self.encoder = nn.Sequential(*blocks)
        self.drop = nn.Dropout(dropout)
        self.classifier = conv(widths[-1], num_classes, 1)
        self._mode = "bilinear" if spatial_dims == 2 else "trilinear"

    def forward_logits(self, x: torch.Tensor) -> torch.Tensor:
        coarse = self.classifier(self.drop(self.encoder(x)))
        return F.interpolate(coarse, size=x.shape[2:], mode=self._mode, align_corners=False)

    @property
    def head(self) -> nn.Module:
        return self.classifier

    @property
    def target_layer(self) -> nn.Module:
        return self.encoder


@register_model("unet", spatial_dims=(2, 3), task="segmentation", takes_channels=True)
def unet(opts: BuildOptions) -> Segmenter:
    return UNet(
        opts.in_channels,
        opts.num_classes,
        opts.spatial_dims,
        opts.dropout,
        channels=opts.channels or UNET_CHANNELS,
    )


@register_model(
    "residual_unet",
    spatial_dims=(2, 3),
    task="segmentation",
    takes_channels=True,
    channels_last=((3, "train"), (2, "train")),
)
def residual_unet(opts: BuildOptions) -> Segmenter:
    return UNet(
        opts.in_channels,
        opts.num_classes,
        opts.spatial_dims,
        opts.dropout,
        num_res_units=2,
        channels=opts.channels or UNET_CHANNELS,
    )


@register_model(
    "attention_unet",
    spatial_dims=(2, 3),
    task="segmentation",
    takes_channels=True,
    channels_last=((3, "train"), (3, "inference"), (2, "train"), (2, "inference")),
)
def attention_unet(opts: BuildOptions) -> Segmenter:
    return AttentionUNet(
        opts.in_channels,
        opts.num_classes,
        opts.spatial_dims,
        opts.dropout,
        channels=opts.channels or UNET_CHANNELS,
    )


@register_model(
    "unet_plus_plus",
    spatial_dims=(2, 3),
    task="segmentation",
    takes_deep_supervision=True,
    channels_last=((3, "train"),),
)
def unet_plus_plus(opts: BuildOptions) -> Segmenter:
    return UNetPlusPlus(
        opts.in_channels,
        opts.num_classes,
        opts.spatial_dims,
        opts.dropout,
        deep_supervision=opts.deep_supervision,
    )


@register_model("vnet", spatial_dims=(3,), task="segmentation", channels_last=((3, "train"),))
def vnet(opts: BuildOptions) -> Segmenter:
    return VNet(opts.in_channels, opts.num_classes, opts.dropout)


@register_model(
    "fcn", spatial_dims=(2, 3), task="segmentation", channels_last=((3, "train"), (2, "train"))
)
def fcn(opts: BuildOptions) -> Segmenter:
    return FCN(opts.in_channels, opts.num_classes, opts.spatial_dims, opts.dropout)
