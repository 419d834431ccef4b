"""Scaling by a factor: ``rescale``, its random twin ``random_scale`` (scale jitter), and
``fit_size``, which sets a detector's working scale as torchvision does (the short side to
``min_size``, unless the long side would pass ``max_size``).

The physical extent is kept: the spacing grows or shrinks with the factor. Points and boxes
scale with the grid (edges aligned, ``medlens.preprocess.spatial.resample``'s rule).
"""

from __future__ import annotations

from typing import Any

import numpy as np

from medlens.data.image import Image
from medlens.preprocess._common import (
    integer,
    number,
    numbers,
    per_axis,
    probability,
    require,
    value_range,
)
from medlens.preprocess.augmentation import Identity
from medlens.preprocess.base import RandomTransform, Transform
from medlens.preprocess.registry import TRANSFORMS
from medlens.preprocess.spatial import RegriddingTransform, regridded, spline_order


class _Scaled(RegriddingTransform):
    """Resampled to ``shape_of(image)`` voxels with the spline order ``self.order``."""

    order: int

    def apply(self, image: Image) -> Image:
        shape = self.shape_of(image)
        spacing = [
            sp * n / m for sp, n, m in zip(image.spacing, image.spatial_shape, shape, strict=True)
        ]
        return regridded(image, shape, self.order, spacing)


@TRANSFORMS.register("rescale")
class Rescale(_Scaled):
    """Resample by a factor: each side becomes ``round(side * factor)`` voxels (at least 1).

    Args:
        factor: > 1 enlarges; one number for all spatial axes or one per axis.
        order: spline order, 0 (nearest, for label maps) to 5; 1 (linear) for images.
    """

    name = "rescale"

    def __init__(self, factor: float | list[float] = 1.0, order: int = 1) -> None:
        self.factor = numbers(factor, self.name, "factor", low=0.0, strict_low=True)
        self.order = spline_order(order, self.name)

    def shape_of(self, image: Image) -> list[int]:
        factors = per_axis(self.factor, image, "rescale factor")
        return [
            max(1, int(round(n * float(f))))
            for n, f in zip(image.spatial_shape, factors, strict=True)
        ]

    def params(self) -> dict[str, Any]:
        return {"factor": self.factor, "order": self.order}

    def for_mask(self) -> Transform:
        return Rescale(**{**self.params(), "order": 0})


@TRANSFORMS.register("fit_size")
class FitSize(_Scaled):
    """Scale (the same factor on every axis) so the shortest side is ``min_size`` voxels,
    unless the longest would then pass ``max_size``: then the longest is ``max_size``
    (torchvision's ``GeneralizedRCNNTransform`` rule). Sets a detector's working scale.

    Args:
        min_size: target of the shortest side (voxels).
        max_size: cap on the longest side (voxels); None: no cap.
        order: spline order (1: linear for images, 0 for label maps).
    """

    name = "fit_size"

    def __init__(self, min_size: int, max_size: int | None = None, order: int = 1) -> None:
        self.min_size = integer(min_size, self.name, "min_size", low=1)
        self.max_size = None if max_size is None else integer(max_size, self.name, "max_size")
        if self.max_size is not None:
            require(
                self.max_size >= self.min_size,
                self.name,
                "max_size",
                f"must be >= min_size ({self.min_size}), got {self.max_size}",
            )
        self.order = spline_order(order, self.name)

    def factor_for(self, image: Image) -> float:
        """The scale factor this image gets."""
        shape = image.spatial_shape
        factor = self.min_size / min(shape)
        if self.max_size is not None and max(shape) * factor > self.max_size:
            factor = self.max_size / max(shape)
        return factor

    def shape_of(self, image: Image) -> list[int]:
        factor = self.factor_for(image)
        return [max(1, int(round(n * factor))) for n in image.spatial_shape]

    def params(self) -> dict[str, Any]:
        return {"min_size": self.min_size, "max_size": self.max_size, "order": self.order}

    def for_mask(self) -> Transform:
        return FitSize(**{**self.params(), "order": 0})


@TRANSFORMS.register("random_scale")
class RandomScale(RandomTransform):
    """Scale jitter: with probability ``p``, rescale by a factor drawn log-uniformly (so x
    and 1/x are equally likely), the same on every axis.

    Follow it with ``random_crop`` (or ``crop_or_pad``) to keep a fixed size: that zooms the
    content in and out within one frame (the large-scale jitter of detectors).

    Args:
        scale: ``[low, high]`` factors with ``0 < low <= high``, or ``x`` for
            ``[1 - x, 1 + x]``.
        p: probability of scaling.
        order: spline order of the interpolation.
    """

    name = "random_scale"

    def __init__(self, scale: float | list[float] = 0.2, p: float = 0.5, order: int = 1) -> None:
        self.scale = value_range(scale, self.name, "scale", center=1.0)
        require(self.scale[0] > 0, self.name, "scale", f"must stay > 0, got {self.scale}")
        self.p = probability(p, self.name)
        self.order = spline_order(order, self.name)

    def draw(self, rng: np.random.Generator, image: Image) -> Transform:
        if rng.random() >= self.p:
            return Identity()
        low, high = np.log(self.scale[0]), np.log(self.scale[1])
        factor = float(np.exp(rng.uniform(low, high)))
        return Rescale(factor=number(factor, self.name, "scale"), order=self.order)

    def params(self) -> dict[str, Any]:
        return {"scale": self.scale, "p": self.p, "order": self.order}
