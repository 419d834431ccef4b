"""Deterministic geometric transforms on a fixed grid: flip, rotate, affine, elastic.

They are the twins the random augmentations draw (``random_flip`` -> ``flip`` ...). The
content moves; the grid (shape, spacing, affine) stays; ``for_mask()`` gives the twin that
moves a label mask alike (nearest label, label 0 from outside). Axes are spatial axes: 0 is
H for 2D and D for 3D; negative indices count from the end (-1 is W).

Angles are in degrees. A 2D image has one rotation plane (H, W). A 3D image has three
angles, about spatial axes 0, 1 and 2 (the planes (H, W), (D, W), (D, H)); a single number
rotates in the (H, W) plane, slice by slice. Rotations act in physical space (the spacing
is honoured), translations and elastic displacements are in voxels.

Each also maps points (``map_points``, ``unmap_points``: voxel-edge coordinates, see
``Transform.map_points``), so boxes move with the pixels.
"""

from __future__ import annotations

from collections.abc import Sequence
from typing import Any

import numpy as np
from scipy import ndimage

from medlens.data.image import Image
from medlens.errors import InputError
from medlens.preprocess._common import (
    as_float32,
    choice,
    integer,
    new_image,
    number,
    numbers,
    per_axis,
    require,
    spatial_axis,
)
from medlens.preprocess.base import Transform
from medlens.preprocess.registry import TRANSFORMS

PADDING_MODES = ("constant", "nearest", "reflect")
#: How the ``for_mask()`` twins interpolate: the nearest label, and label 0 from outside the
#: image whatever padding the image uses (the convention of TorchIO and nnU-Net).
_MASK_INTERPOLATION: dict[str, Any] = {"order": 0, "padding_mode": "constant"}
#: Fixed-point steps that invert an elastic field at a point (each shrinks the error by about
#: the field's largest gradient, well below 1 for smooth fields).
_POINT_ITERATIONS = 12


@TRANSFORMS.register("flip")
class Flip(Transform):
    """Reverse the image along the given spatial axes (a copy of a view; no interpolation).

    Args:
        axes: spatial axes to flip (0-based; negative counts from the end).

    Example:
        >>> Flip(axes=[1])(image)  # left-right flip of a 2D image
    """

    name = "flip"

    def __init__(self, axes: int | list[int] = -1) -> None:
        self.axes = numbers(axes, self.name, "axes", integral=True)

    def apply(self, image: Image) -> Image:
        axes = self.axes if isinstance(self.axes, list) else [self.axes]
        spatial = {spatial_axis(int(a), image, "flip") for a in axes}
        out = np.flip(as_float32(image), axis=tuple(a + 1 for a in sorted(spatial)))
        return new_image(image, np.ascontiguousarray(out))

    def params(self) -> dict[str, Any]:
        return {"axes": self.axes}

    def for_mask(self) -> Transform:
        return Flip(**self.params())

    def _spatial_axes(self, image: Image) -> list[int]:
        axes = self.axes if isinstance(self.axes, list) else [self.axes]
        return sorted({spatial_axis(int(a), image, "flip") for a in axes})

    def map_points(self, points: np.ndarray, image: Image) -> np.ndarray:
        out = np.array(points, dtype=np.float64)
        for axis in self._spatial_axes(image):
            out[:, axis] = image.spatial_shape[axis] - out[:, axis]
        return out

    def unmap_points(self, points: np.ndarray, image: Image) -> np.ndarray:
        return self.map_points(points, image)  # a flip is its own inverse


def _angles(degrees: float | Sequence[float], image: Image) -> list[float]:
    """One angle (2D) or three (3D) in degrees, from a number or a list."""
    need = 1 if image.spatial_dims == 2 else 3
    if isinstance(degrees, Sequence):
        if len(degrees) != need:
            raise InputError(
                image.source or "<image>",
                f"a {image.spatial_dims}D rotation takes {need} angle(s), got {len(degrees)}",
            )
        return [float(d) for d in degrees]
    return [float(degrees)] + [0.0] * (need - 1)


def rotation_matrix(angles: Sequence[float]) -> np.ndarray:
    """Rotation matrix (2x2 or 3x3) from one angle (2D) or three angles about axes 0, 1, 2."""
    ndim = 2 if len(angles) == 1 else 3
    matrix = np.eye(ndim)
    planes = [(0, 1)] if ndim == 2 else [(1, 2), (0, 2), (0, 1)]
    for angle, (i, j) in zip(angles, planes, strict=True):
        theta = np.deg2rad(angle)
        step = np.eye(ndim)
        step[i, i] = step[j, j] = np.cos(theta)
        step[i, j], step[j, i] = -np.sin(theta), np.sin(theta)
        matrix = matrix @ step
    return matrix


def voxel_matrix(image: Image, angles: Sequence[float], scale: Sequence[float]) -> np.ndarray:
    """The rotation and scaling of a physical rotation by ``angles`` (degrees), written in
    voxel coordinates of ``image`` (the spacing is honoured)."""
    spacing = np.asarray(image.spacing, dtype=float)
    # In voxel space, a physical rotation R becomes D^-1 R D with D = diag(spacing).
    return (rotation_matrix(angles) * spacing[None, :] / spacing[:, None]) @ np.diag(scale)


def affine_points(
    points: np.ndarray,
    image: Image,
    angles: Sequence[float],
    scale: Sequence[float],
    translation: Sequence[float],
    inverse: bool = False,
) -> np.ndarray:
    """Points (voxel edges) moved as ``warp_affine`` moves the content about the centre, or
    moved back with ``inverse``."""
    forward = voxel_matrix(image, angles, scale)
    centre = np.asarray(image.spatial_shape, dtype=float) / 2  # the centre, in voxel edges
    shift = np.asarray(translation, dtype=float)
    pts = np.asarray(points, dtype=np.float64)
    if inverse:
        return (pts - centre - shift) @ np.linalg.inv(forward).T + centre
    return (pts - centre) @ forward.T + centre + shift


def warp_affine(
    image: Image,
    angles: Sequence[float],
    scale: Sequence[float],
    translation: Sequence[float],
    order: int,
    padding_mode: str,
) -> np.ndarray:
    """Rotate and scale about the image centre, then translate (voxels); a ``(C, ...)`` array."""
    inverse = np.linalg.inv(voxel_matrix(image, angles, scale))
    center = (np.asarray(image.spatial_shape, dtype=float) - 1) / 2
    offset = center - inverse @ (center + np.asarray(translation, dtype=float))
    array = as_float32(image)
    out = np.empty_like(array)
    for c, channel in enumerate(array):  # per channel: interpolating over C too costs 2x
        out[c] = ndimage.affine_transform(
            channel, inverse, offset=offset, order=order, mode=padding_mode, cval=0.0
        )
    return out


class _Warp(Transform):
    """Shared arguments of the interpolating transforms."""

    def _interpolation(self, order: int, padding_mode: str) -> None:
        self.order = integer(order, self.name, "order", low=0)
        require(self.order <= 5, self.name, "order", f"must be 0 to 5, got {self.order}")
        self.padding_mode = choice(padding_mode, self.name, "padding_mode", PADDING_MODES)


@TRANSFORMS.register("rotate")
class Rotate(_Warp):
    """Rotate about the image centre by fixed angles in degrees (see the module docstring).

    Args:
        degrees: one angle (2D, or the (H, W) plane of a volume) or three angles (3D).
        order: spline order of the interpolation (1: linear).
        padding_mode: what fills voxels from outside the image: ``constant`` (0),
            ``nearest`` (edge voxel) or ``reflect``.
    """

    name = "rotate"

    def __init__(
        self, degrees: float | list[float] = 0.0, order: int = 1, padding_mode: str = "constant"
    ) -> None:
        self.degrees = numbers(degrees, self.name, "degrees")
        self._interpolation(order, padding_mode)

    def apply(self, image: Image) -> Image:
        ndim = image.spatial_dims
        angles = _angles(self.degrees, image)
        out = warp_affine(image, angles, [1.0] * ndim, [0.0] * ndim, self.order, self.padding_mode)
        return new_image(image, out)

    def params(self) -> dict[str, Any]:
        return {"degrees": self.degrees, "order": self.order, "padding_mode": self.padding_mode}

    def for_mask(self) -> Transform:
        return Rotate(**{**self.params(), **_MASK_INTERPOLATION})

    def map_points(self, points: np.ndarray, image: Image) -> np.ndarray:
        ndim = image.spatial_dims
        return affine_points(
            points, image, _angles(self.degrees, image), [1.0] * ndim, [0.0] * ndim
        )

    def unmap_points(self, points: np.ndarray, image: Image) -> np.ndarray:
        ndim = image.spatial_dims
        angles = _angles(self.degrees, image)
        return affine_points(points, image, angles, [1.0] * ndim, [0.0] * ndim, inverse=True)


@TRANSFORMS.register("affine")
class Affine(_Warp):
    """Rotate (degrees) and scale about the image centre, then translate (voxels).

    Args:
        degrees: one angle (2D, or the (H, W) plane of a volume) or three angles (3D).
        scale: zoom factor, one for all axes or one per axis (> 1 enlarges the content).
        translation: shift in voxels, one for all axes or one per axis.
        order: spline order of the interpolation (1: linear).
        padding_mode: ``constant`` (0), ``nearest`` or ``reflect``.
    """

    name = "affine"

    def __init__(
        self,
        degrees: float | list[float] = 0.0,
        scale: float | list[float] = 1.0,
        translation: float | list[float] = 0.0,
        order: int = 1,
        padding_mode: str = "constant",
    ) -> None:
        self.degrees = numbers(degrees, self.name, "degrees")
        self.scale = numbers(scale, self.name, "scale", low=0.0, strict_low=True)
        self.translation = numbers(translation, self.name, "translation")
        self._interpolation(order, padding_mode)

    def apply(self, image: Image) -> Image:
        angles, scale, shift = self._geometry(image)
        out = warp_affine(image, angles, scale, shift, self.order, self.padding_mode)
        return new_image(image, out)

    def params(self) -> dict[str, Any]:
        return {
            "degrees": self.degrees,
            "scale": self.scale,
            "translation": self.translation,
            "order": self.order,
            "padding_mode": self.padding_mode,
        }

    def for_mask(self) -> Transform:
        return Affine(**{**self.params(), **_MASK_INTERPOLATION})

    def _geometry(self, image: Image) -> tuple[list[float], list[float], list[float]]:
        angles = _angles(self.degrees, image)
        scale = [float(s) for s in per_axis(self.scale, image, "affine scale")]
        shift = [float(t) for t in per_axis(self.translation, image, "affine translation")]
        return angles, scale, shift

    def map_points(self, points: np.ndarray, image: Image) -> np.ndarray:
        return affine_points(points, image, *self._geometry(image))

    def unmap_points(self, points: np.ndarray, image: Image) -> np.ndarray:
        return affine_points(points, image, *self._geometry(image), inverse=True)


def _upsample_linear(field: np.ndarray, axis: int, n_out: int) -> np.ndarray:
    """Linear interpolation of ``field`` along ``axis`` onto ``n_out`` samples, edges aligned.

    Written as two gathers and a blend rather than a matrix product: multithreaded BLAS on
    small arrays is slower than this when the cores are shared.
    """
    n_in = field.shape[axis]
    position = np.clip((np.arange(n_out) + 0.5) * n_in / n_out - 0.5, 0, n_in - 1)
    low = np.minimum(np.floor(position).astype(np.intp), max(n_in - 2, 0))
    high = np.minimum(low + 1, n_in - 1)
    shape = [1] * field.ndim
    shape[axis] = n_out
    weight = (position - low).astype(np.float32).reshape(shape)
    below = np.take(field, low, axis=axis)
    return below + (np.take(field, high, axis=axis) - below) * weight


def displacement_field(shape: Sequence[int], alpha: float, sigma: float, seed: int) -> np.ndarray:
    """A smooth random displacement field ``(ndim, *shape)`` in voxels, largest magnitude
    ``alpha`` per axis: uniform noise from ``seed`` smoothed by a Gaussian of ``sigma`` voxels.
    """
    ndim = len(shape)
    rng = np.random.default_rng(seed)
    # Drawing on a coarser grid and zooming up is far cheaper than smoothing full-size noise;
    # the field is smooth at scale sigma anyway.
    step = max(1, int(sigma // 2))
    coarse = [max(2, -(-n // step)) for n in shape]
    noise = rng.uniform(-1.0, 1.0, size=(ndim, *coarse)).astype(np.float32)
    field = ndimage.gaussian_filter(noise, sigma=[0.0] + [sigma / step] * ndim, mode="reflect")
    for axis, (n, m) in enumerate(zip(shape, coarse, strict=True), start=1):
        if n != m:
            field = _upsample_linear(field, axis, n)
    peak = np.abs(field).reshape(ndim, -1).max(axis=1)
    peak[peak == 0] = 1.0
    return field * (alpha / peak).reshape((ndim,) + (1,) * ndim).astype(np.float32)


@TRANSFORMS.register("elastic")
class Elastic(_Warp):
    """Elastic deformation by a smooth random displacement field rebuilt from a seed.

    The twin of ``random_elastic``: it stores the seed of the field, not the field.

    Args:
        alpha: largest displacement along each axis, in voxels.
        sigma: smoothness of the field (Gaussian standard deviation), in voxels.
        seed: seed of the field's random numbers.
        order: spline order of the interpolation (1: linear).
        padding_mode: ``constant`` (0), ``nearest`` or ``reflect``.
    """

    name = "elastic"

    def __init__(
        self,
        alpha: float = 2.0,
        sigma: float = 4.0,
        seed: int = 0,
        order: int = 1,
        padding_mode: str = "nearest",
    ) -> None:
        self.alpha = number(alpha, self.name, "alpha", low=0.0)
        self.sigma = number(sigma, self.name, "sigma", low=0.0, strict_low=True)
        self.seed = integer(seed, self.name, "seed", low=0)
        self._interpolation(order, padding_mode)

    def apply(self, image: Image) -> Image:
        shape = image.spatial_shape
        field = displacement_field(shape, self.alpha, self.sigma, self.seed)
        coords = np.indices(shape, dtype=np.float32) + field
        array = as_float32(image)
        out = np.empty_like(array)
        for c, channel in enumerate(array):
            out[c] = ndimage.map_coordinates(
                channel, coords, order=self.order, mode=self.padding_mode, cval=0.0
            )
        return new_image(image, out)

    def params(self) -> dict[str, Any]:
        return {
            "alpha": self.alpha,
            "sigma": self.sigma,
            "seed": self.seed,
            "order": self.order,
            "padding_mode": self.padding_mode,
        }

    def for_mask(self) -> Transform:
        return Elastic(**{**self.params(), **_MASK_INTERPOLATION})

    def _displacement_at(self, field: np.ndarray, index: np.ndarray) -> np.ndarray:
        """The field (voxels) at ``(N, ndim)`` voxel-centre coordinates, linearly interpolated."""
        coords = index.T
        return np.stack(
            [ndimage.map_coordinates(c, coords, order=1, mode="nearest") for c in field], axis=1
        )

    def map_points(self, points: np.ndarray, image: Image) -> np.ndarray:
        # The output at o shows the input at o + field(o): a point p of the input lands where
        # o + field(o) = p, found by fixed-point iteration (the field is smooth and small).
        field = displacement_field(image.spatial_shape, self.alpha, self.sigma, self.seed)
        target = np.asarray(points, dtype=np.float64) - 0.5
        out = target.copy()
        for _ in range(_POINT_ITERATIONS):
            out = target - self._displacement_at(field, out)
        return out + 0.5

    def unmap_points(self, points: np.ndarray, image: Image) -> np.ndarray:
        field = displacement_field(image.spatial_shape, self.alpha, self.sigma, self.seed)
        index = np.asarray(points, dtype=np.float64) - 0.5
        return index + self._displacement_at(field, index) + 0.5
