"""Spatial transforms that change the grid: resize, resample to a spacing, crop and pad.

Sizes are in voxels and spacings in mm, given either as one number for every spatial axis or
as a list with one value per spatial axis (``[H, W]`` for 2D, ``[D, H, W]`` for 3D). The
image's spacing and affine are updated to match the new grid. Each ``for_mask()`` twin
regrids a label mask alike, with nearest-neighbour interpolation and label 0 as padding, and
``map_points`` / ``unmap_points`` move points (voxel edges) between the grids, so boxes follow.
"""

from __future__ import annotations

from collections.abc import Sequence
from typing import Any

import numpy as np

from medlens.data.image import Image
from medlens.errors import InputError
from medlens.preprocess._common import (
    as_float32,
    integer,
    new_image,
    number,
    numbers,
    per_axis,
    require,
    scaled_affine,
    shifted_affine,
)
from medlens.preprocess.base import Transform
from medlens.preprocess.registry import TRANSFORMS


def window(
    array: np.ndarray, start: Sequence[int], size: Sequence[int], pad_value: float
) -> np.ndarray:
    """The spatial window ``[start, start + size)`` of a ``(C, *spatial)`` array.

    Parts of the window outside the array (negative ``start`` or past the end) are filled
    with ``pad_value``, so one call crops, pads, or both.
    """
    out = np.full((array.shape[0], *size), pad_value, dtype=np.float32)
    src, dst = [slice(None)], [slice(None)]
    for begin, length, n in zip(start, size, array.shape[1:], strict=True):
        lo, hi = max(begin, 0), min(begin + length, n)
        if hi <= lo:
            return out
        src.append(slice(lo, hi))
        dst.append(slice(lo - begin, hi - begin))
    out[tuple(dst)] = array[tuple(src)]
    return out


def centred_start(current: int, target: int) -> int:
    """Window start that centres ``target`` voxels on ``current``; odd extra goes to the end."""
    return (current - target) // 2 if current >= target else -((target - current) // 2)


def _windowed(image: Image, start: Sequence[int], size: Sequence[int], pad_value: float) -> Image:
    out = window(as_float32(image), start, size, pad_value)
    return new_image(image, out, affine=shifted_affine(image.affine, start))


def resample(image: Image, shape: Sequence[int], order: int) -> np.ndarray:
    """The array resampled onto ``shape`` voxels with edges aligned (skimage ``resize``).

    Order 0 is pure nearest-neighbour: skimage would otherwise smooth a downsampled float
    array first, which invents values between the labels of a mask.
    """
    from skimage.transform import resize

    array = as_float32(image)
    if tuple(shape) == image.spatial_shape:
        return array.copy()
    out = np.empty((array.shape[0], *shape), dtype=np.float32)
    for c, channel in enumerate(array):
        out[c] = resize(
            channel,
            tuple(shape),
            order=order,
            mode="edge",
            preserve_range=True,
            anti_aliasing=None if order > 0 else False,
        )
    return out


def scale_points(
    points: np.ndarray, before: Sequence[int], after: Sequence[int], inverse: bool = False
) -> np.ndarray:
    """Points (voxel edges) of a grid of ``before`` voxels on the resampled grid of ``after``
    voxels, edges aligned (``resample``'s rule), or back with ``inverse``."""
    factors = np.asarray(after, dtype=float) / np.asarray(before, dtype=float)
    pts = np.asarray(points, dtype=np.float64)
    return pts / factors if inverse else pts * factors


def shift_points(points: np.ndarray, start: Sequence[int], inverse: bool = False) -> np.ndarray:
    """Points (voxel edges) in a window whose first voxel is voxel ``start`` of the old grid,
    or back with ``inverse``."""
    pts = np.asarray(points, dtype=np.float64)
    offset = np.asarray(start, dtype=float)
    return pts + offset if inverse else pts - offset


class WindowTransform(Transform):
    """A transform that cuts the window ``[start, start + size)`` out of the image."""

    def window_of(self, image: Image) -> tuple[list[int], list[int]]:
        """``(start, size)`` of the window, in voxels, for ``image`` (each subclass says)."""
        raise NotImplementedError(f"{type(self).__name__} must define window_of")

    def apply(self, image: Image) -> Image:
        start, size = self.window_of(image)
        return _windowed(image, start, size, getattr(self, "pad_value", 0.0))

    def map_points(self, points: np.ndarray, image: Image) -> np.ndarray:
        return shift_points(points, self.window_of(image)[0])

    def unmap_points(self, points: np.ndarray, image: Image) -> np.ndarray:
        return shift_points(points, self.window_of(image)[0], inverse=True)


class RegriddingTransform(Transform):
    """A transform that resamples the image onto a new grid of ``shape_of(image)`` voxels."""

    def shape_of(self, image: Image) -> list[int]:
        """The output size, in voxels, for ``image`` (each subclass says)."""
        raise NotImplementedError(f"{type(self).__name__} must define shape_of")

    def map_points(self, points: np.ndarray, image: Image) -> np.ndarray:
        return scale_points(points, image.spatial_shape, self.shape_of(image))

    def unmap_points(self, points: np.ndarray, image: Image) -> np.ndarray:
        return scale_points(points, image.spatial_shape, self.shape_of(image), inverse=True)


def spline_order(value: Any, transform: str) -> int:
    order = integer(value, transform, "order", low=0)
    require(order <= 5, transform, "order", f"must be a spline order from 0 to 5, got {order}")
    return order


def regridded(image: Image, shape: Sequence[int], order: int, spacing: Sequence[float]) -> Image:
    factors = [n / m for n, m in zip(image.spatial_shape, shape, strict=True)]
    out = resample(image, shape, order)
    return new_image(image, out, spacing=spacing, affine=scaled_affine(image.affine, factors))


@TRANSFORMS.register("resize")
class Resize(RegriddingTransform):
    """Resample to a given spatial size in voxels; the physical extent is kept, so the spacing
    grows or shrinks accordingly.

    Args:
        size: output size, one number for all spatial axes or one per axis (voxels).
        order: spline order, 0 (nearest, for label maps) to 5; 1 (linear) for images.
            Downsampling with order > 0 smooths first (anti-aliasing).
    """

    name = "resize"

    def __init__(self, size: int | list[int], order: int = 1) -> None:
        self.size = numbers(size, self.name, "size", integral=True, low=1)
        self.order = spline_order(order, self.name)

    def shape_of(self, image: Image) -> list[int]:
        return [int(s) for s in per_axis(self.size, image, "resize size")]

    def apply(self, image: Image) -> Image:
        shape = self.shape_of(image)
        spacing = [
            sp * n / m for sp, n, m in zip(image.spacing, image.spatial_shape, shape, strict=True)
        ]
        return regridded(image, shape, self.order, spacing)

    def params(self) -> dict[str, Any]:
        return {"size": self.size, "order": self.order}

    def for_mask(self) -> Transform:
        return Resize(**{**self.params(), "order": 0})


@TRANSFORMS.register("resample_to_spacing")
class ResampleToSpacing(RegriddingTransform):
    """Resample to a target voxel spacing in mm, using the image's own spacing.

    The new size along each axis is ``round(size * spacing / target)`` voxels (at least 1);
    the output's spacing is the target.

    Args:
        spacing: target spacing in mm, one number for all spatial axes or one per axis.
        order: spline order, 0 (nearest, for label maps) to 5; 1 (linear) for images.
    """

    name = "resample_to_spacing"

    def __init__(self, spacing: float | list[float], order: int = 1) -> None:
        self.spacing = numbers(spacing, self.name, "spacing", low=0.0, strict_low=True)
        self.order = spline_order(order, self.name)

    def _target(self, image: Image) -> list[float]:
        return [float(s) for s in per_axis(self.spacing, image, "resample_to_spacing spacing")]

    def shape_of(self, image: Image) -> list[int]:
        return [
            max(1, int(round(n * sp / t)))
            for n, sp, t in zip(
                image.spatial_shape, image.spacing, self._target(image), strict=True
            )
        ]

    def apply(self, image: Image) -> Image:
        return regridded(image, self.shape_of(image), self.order, self._target(image))

    def params(self) -> dict[str, Any]:
        return {"spacing": self.spacing, "order": self.order}

    def for_mask(self) -> Transform:
        return ResampleToSpacing(**{**self.params(), "order": 0})


@TRANSFORMS.register("crop_or_pad")
class CropOrPad(WindowTransform):
    """Crop or pad each spatial axis, centred, to a given size in voxels.

    When the difference is odd, the extra voxel is cropped from (or padded at) the end.

    Args:
        size: output size, one number for all spatial axes or one per axis (voxels).
        pad_value: intensity of the padded voxels.
    """

    name = "crop_or_pad"

    def __init__(self, size: int | list[int], pad_value: float = 0.0) -> None:
        self.size = numbers(size, self.name, "size", integral=True, low=1)
        self.pad_value = number(pad_value, self.name, "pad_value")

    def window_of(self, image: Image) -> tuple[list[int], list[int]]:
        size = [int(s) for s in per_axis(self.size, image, "crop_or_pad size")]
        start = [centred_start(n, s) for n, s in zip(image.spatial_shape, size, strict=True)]
        return start, size

    def params(self) -> dict[str, Any]:
        return {"size": self.size, "pad_value": self.pad_value}

    def for_mask(self) -> Transform:
        return CropOrPad(**{**self.params(), "pad_value": 0.0})


@TRANSFORMS.register("center_crop")
class CenterCrop(WindowTransform):
    """Crop each spatial axis, centred, to a given size in voxels (never pads).

    Args:
        size: output size, one number for all spatial axes or one per axis (voxels); must not
            exceed the image's size.
    """

    name = "center_crop"

    def __init__(self, size: int | list[int]) -> None:
        self.size = numbers(size, self.name, "size", integral=True, low=1)

    def window_of(self, image: Image) -> tuple[list[int], list[int]]:
        size = [int(s) for s in per_axis(self.size, image, "center_crop size")]
        if any(s > n for s, n in zip(size, image.spatial_shape, strict=True)):
            raise InputError(
                image.source or "<image>",
                f"center_crop size {size} exceeds the image size {list(image.spatial_shape)}",
            )
        start = [centred_start(n, s) for n, s in zip(image.spatial_shape, size, strict=True)]
        return start, size

    def params(self) -> dict[str, Any]:
        return {"size": self.size}

    def for_mask(self) -> Transform:
        return CenterCrop(**self.params())


@TRANSFORMS.register("pad_to_multiple")
class PadToMultiple(WindowTransform):
    """Pad each spatial axis, centred, up to the next multiple of a number of voxels.

    Useful before networks that downsample ``k`` times (multiple ``2**k``).

    Args:
        multiple: one number for all spatial axes or one per axis (voxels).
        pad_value: intensity of the padded voxels.
    """

    name = "pad_to_multiple"

    def __init__(self, multiple: int | list[int] = 16, pad_value: float = 0.0) -> None:
        self.multiple = numbers(multiple, self.name, "multiple", integral=True, low=1)
        self.pad_value = number(pad_value, self.name, "pad_value")

    def window_of(self, image: Image) -> tuple[list[int], list[int]]:
        multiple = per_axis(self.multiple, image, "pad_to_multiple multiple")
        size = [-(-n // m) * m for n, m in zip(image.spatial_shape, multiple, strict=True)]
        start = [centred_start(n, s) for n, s in zip(image.spatial_shape, size, strict=True)]
        return start, size

    def params(self) -> dict[str, Any]:
        return {"multiple": self.multiple, "pad_value": self.pad_value}

    def for_mask(self) -> Transform:
        return PadToMultiple(**{**self.params(), "pad_value": 0.0})


@TRANSFORMS.register("crop")
class Crop(WindowTransform):
    """The spatial window ``[start, start + size)`` in voxels, padded where it leaves the image.

    The deterministic twin of ``random_crop``.

    Args:
        start: first voxel of the window along each spatial axis (may be negative).
        size: window size along each spatial axis (voxels).
        pad_value: intensity of voxels of the window outside the image.
    """

    name = "crop"

    def __init__(self, start: list[int], size: list[int], pad_value: float = 0.0) -> None:
        self.start = numbers(start, self.name, "start", integral=True)
        self.size = numbers(size, self.name, "size", integral=True, low=1)
        self.pad_value = number(pad_value, self.name, "pad_value")

    def window_of(self, image: Image) -> tuple[list[int], list[int]]:
        start = [int(s) for s in per_axis(self.start, image, "crop start")]
        size = [int(s) for s in per_axis(self.size, image, "crop size")]
        return start, size

    def params(self) -> dict[str, Any]:
        return {"start": self.start, "size": self.size, "pad_value": self.pad_value}

    def for_mask(self) -> Transform:
        return Crop(**{**self.params(), "pad_value": 0.0})
