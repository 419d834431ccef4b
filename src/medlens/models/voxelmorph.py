"""A VoxelMorph-style registration network (Balakrishnan et al. 2019) from MONAI's
``VoxelMorphUNet``: the moving and the fixed image, stacked as channels, in; a flow field
(voxel units, one channel per spatial axis) of the same size out.

The flow is a displacement, or a stationary velocity to integrate by scaling and squaring
(``registration.diffeomorphic``); integration and warping belong to the run
(``medlens.registration.learned``), so one network serves both.
"""

from __future__ import annotations

from collections.abc import Sequence
from typing import Any

import torch
from torch import nn

from medlens.errors import ConfigError, InputError
from medlens.models.registry import BuildOptions, register_model

#: Encoder channels per level (VoxelMorph-1's widths, one level fewer: CPU-sized).
VOXELMORPH_CHANNELS = (16, 32, 32, 32)
#: The two convolutions after the U-Net (VoxelMorph's).
FINAL_CONV_CHANNELS = (16, 16)
#: Standard deviation of the flow layer's initial weights: the first fields are near zero.
FLOW_INIT_STD = 1e-5


class VoxelMorphNet(nn.Module):
    """``forward(pair)``: ``(N, 2 * in_channels, *spatial)`` (moving channels first, then
    fixed) -> flow ``(N, spatial_dims, *spatial)`` in voxels.

    Args:
        in_channels: channels of each image.
        spatial_dims: 2 or 3.
        channels: U-Net channels per level; ``len(channels) - 1`` stride-2 levels, so every
            side must be a multiple of ``size_divisor``.

    Example:
        >>> net = VoxelMorphNet(spatial_dims=2)
        >>> net(torch.zeros(1, 2, 32, 32)).shape
        torch.Size([1, 2, 32, 32])
    """

    def __init__(
        self,
        in_channels: int = 1,
        spatial_dims: int = 3,
        channels: Sequence[int] = VOXELMORPH_CHANNELS,
    ) -> None:
        from monai.networks.nets import VoxelMorphUNet

        super().__init__()
        if spatial_dims not in (2, 3):
            raise ConfigError("model.spatial_dims", f"voxelmorph is 2D or 3D, not {spatial_dims}D")
        if len(channels) < 2:
            raise ConfigError(
                "model.channels", f"voxelmorph needs at least 2 levels, got {channels}"
            )
        self.spatial_dims = spatial_dims
        self.in_channels = in_channels
        self.size_divisor = 2 ** (len(channels) - 1)
        self.net: Any = VoxelMorphUNet(
            spatial_dims,
            2 * in_channels,
            unet_out_channels=int(channels[0]),
            channels=tuple(int(c) for c in channels),
            final_conv_channels=FINAL_CONV_CHANNELS,
        )
        flow = self.flow_layer
        nn.init.normal_(flow.weight, std=FLOW_INIT_STD)
        if flow.bias is not None:
            nn.init.zeros_(flow.bias)

    @property
    def flow_layer(self) -> nn.Conv2d | nn.Conv3d:
        """The last convolution, which outputs the flow."""
        convs = [m for m in self.net.modules() if isinstance(m, (nn.Conv2d, nn.Conv3d))]
        return convs[-1]

    def forward(self, pair: torch.Tensor) -> torch.Tensor:
        spatial = tuple(pair.shape[2:])
        if pair.shape[1] != 2 * self.in_channels or len(spatial) != self.spatial_dims:
            raise InputError(
                "input",
                f"voxelmorph takes (N, {2 * self.in_channels}, {self.spatial_dims} spatial axes), "
                f"got {tuple(pair.shape)}",
            )
        if any(s % self.size_divisor for s in spatial):
            raise InputError(
                "input",
                f"voxelmorph needs sides that are multiples of {self.size_divisor}, got {spatial}",
            )
        return self.net(pair)


# Returns Any: the registry's ``Builder`` type names classifiers and segmenters only.
@register_model("voxelmorph", spatial_dims=(2, 3), task="registration", takes_channels=True)
def voxelmorph(opts: BuildOptions) -> Any:
    """VoxelMorph-style U-Net (``model.channels`` sets its levels)."""
    channels = opts.channels or VOXELMORPH_CHANNELS
    return VoxelMorphNet(opts.in_channels, opts.spatial_dims, channels)
