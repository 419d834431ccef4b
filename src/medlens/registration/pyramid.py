"""The multi-resolution pyramid: each level a smoothed, down-sampled copy of an image, with
the matrix from its voxels to the full-resolution voxels."""

from __future__ import annotations

from collections.abc import Sequence
from dataclasses import dataclass

import numpy as np
import torch
import torch.nn.functional as F

#: Smallest side (voxels) a level keeps, so that local windows still fit.
MIN_SIDE = 8


@dataclass(frozen=True)
class Level:
    """One resolution level of an image.

    Attributes:
        image: ``(1, C, *shape)`` float32, smoothed and resampled.
        factor: the requested down-sampling factor (1 = full resolution).
        scale: full-resolution voxels per level voxel, per axis (``align_corners``).
    """

    image: torch.Tensor
    factor: int
    scale: tuple[float, ...]

    @property
    def shape(self) -> tuple[int, ...]:
        return tuple(self.image.shape[2:])

    def to_full(self) -> np.ndarray:
        """The homogeneous matrix from this level's voxel indices to full-resolution ones."""
        d = len(self.scale)
        matrix = np.eye(d + 1)
        matrix[:d, :d] = np.diag(self.scale)
        return matrix


def level_shape(shape: Sequence[int], factor: int) -> tuple[int, ...]:
    """The grid of a level ``factor`` times coarser (at least ``MIN_SIDE`` voxels a side,
    never more than the image)."""
    return tuple(min(int(n), max(MIN_SIDE, int(np.ceil(n / factor)))) for n in shape)


#: The Gaussian kernel reaches this many standard deviations either side.
GAUSSIAN_TRUNCATED = 3.0


def gaussian_kernel(sigma: float, truncated: float = GAUSSIAN_TRUNCATED) -> torch.Tensor:
    """The discrete Gaussian of ``sigma`` voxels, ``2 * tail + 1`` taps: each the integral of
    the Gaussian over its voxel (MONAI's ``gaussian_1d(approx="erf")``, not normalised)."""
    tail = int(max(sigma * truncated, 0.5) + 0.5)
    x = torch.arange(-tail, tail + 1, dtype=torch.float64)
    t = 0.70710678 / abs(sigma)
    return (0.5 * (torch.erf(t * (x + 0.5)) - torch.erf(t * (x - 0.5)))).clamp(min=0)


def gaussian_smooth(image: torch.Tensor, sigma: float) -> torch.Tensor:
    """``image`` ``(N, C, *spatial)`` smoothed by a separable Gaussian of ``sigma`` voxels
    (zero outside the image; equal to MONAI's ``GaussianFilter(truncated=3)``), as weighted
    sums of shifted copies: a few passes over the image, where ``conv3d`` with a one-axis
    kernel falls back to a slow path on a CPU."""
    if sigma <= 0:
        return image
    taps = gaussian_kernel(sigma).tolist()
    tail = len(taps) // 2
    for axis in range(2, image.ndim):
        n = image.shape[axis]
        pad = [0, 0] * (image.ndim - 2)
        pad[2 * (image.ndim - 1 - axis)] = tail
        pad[2 * (image.ndim - 1 - axis) + 1] = tail
        padded = F.pad(image, pad)
        out = padded.narrow(axis, 0, n) * taps[0]
        for j in range(1, len(taps)):
            out.add_(padded.narrow(axis, j, n), alpha=taps[j])
        image = out
    return image


def build_level(image: torch.Tensor, factor: int) -> Level:
    """The level of ``image`` ``(1, C, *spatial)`` ``factor`` times coarser: smoothed with a
    Gaussian of ``factor / 2`` voxels (anti-aliasing), then resampled linearly."""
    shape = tuple(image.shape[2:])
    if factor <= 1:
        return Level(image, 1, (1.0,) * len(shape))
    target = level_shape(shape, factor)
    mode = "bilinear" if len(shape) == 2 else "trilinear"
    smooth = gaussian_smooth(image, factor / 2.0)
    resized = F.interpolate(smooth, size=target, mode=mode, align_corners=True)
    scale = tuple((n - 1) / max(m - 1, 1) for n, m in zip(shape, target, strict=True))
    return Level(resized, factor, scale)


def interpolate_field(field: torch.Tensor, shape: Sequence[int]) -> torch.Tensor:
    """A vector field ``(1, d, *old)`` interpolated linearly onto a grid of ``shape`` spanning
    the same extent (``align_corners``); the vectors themselves are not rescaled."""
    if tuple(field.shape[2:]) == tuple(shape):
        return field
    mode = "bilinear" if len(shape) == 2 else "trilinear"
    return F.interpolate(field, size=tuple(shape), mode=mode, align_corners=True)


def per_axis(values: Sequence[float], like: torch.Tensor) -> torch.Tensor:
    """``values`` (one per axis) shaped to scale the channels of a field like ``like``."""
    return torch.tensor(list(values), dtype=like.dtype).view(1, -1, *([1] * (like.ndim - 2)))
