"""Small layers the adapted networks share: an input-size guard and LeNet's min+max pooling."""

from __future__ import annotations

import math

import torch
import torch.nn.functional as F
from torch import nn


class MinSizeUpsample(nn.Module):
    """Upsample an input whose shortest side is under ``min_size`` voxels up to ``min_size``.

    Networks with a hard floor on their input size (five stride-2 reductions, 3x3 kernels
    on the last map) cannot read a 28 px MedMNIST image; this scales such an input,
    keeping its aspect ratio, with (bi/tri)linear interpolation, and leaves larger inputs
    untouched.

    Args:
        min_size: the smallest side length, in pixels (voxels in 3D), the network accepts.
    """

    def __init__(self, min_size: int) -> None:
        super().__init__()
        self.min_size = int(min_size)

    def forward(self, x: torch.Tensor) -> torch.Tensor:
        spatial = x.shape[2:]
        shortest = min(spatial)
        if shortest >= self.min_size:
            return x
        scale = self.min_size / shortest
        size = tuple(max(self.min_size, math.ceil(s * scale)) for s in spatial)
        mode = {1: "linear", 2: "bilinear", 3: "trilinear"}[len(spatial)]
        return F.interpolate(x, size=size, mode=mode, align_corners=False)

    def extra_repr(self) -> str:
        return f"min_size={self.min_size}"


class MinMaxPool2d(nn.Module):
    """Max-pooling and min-pooling side by side: ``(N, C, H, W)`` -> ``(N, 2C, H/k, W/k)``.

    The min-pool is ``-max_pool(-x)``. The two are concatenated along channels rather than
    summed: a sum lets a bright and a dark response in one window cancel out, while the
    concatenation keeps both polarities and lets the next convolution learn how to weigh
    them (a sum is the special case of equal weights).

    Args:
        kernel_size: pooling window and stride, in pixels.
    """

    def __init__(self, kernel_size: int = 2) -> None:
        super().__init__()
        self.kernel_size = kernel_size

    def forward(self, x: torch.Tensor) -> torch.Tensor:
        k = self.kernel_size
        return torch.cat([F.max_pool2d(x, k), -F.max_pool2d(-x, k)], dim=1)

    def extra_repr(self) -> str:
        return f"kernel_size={self.kernel_size}"
