"""Quarter turns: ``rotate90`` and its random twin ``random_rotate90``.

A quarter turn moves every voxel exactly (no interpolation), so it is the rotation to use on
boxes: they stay tight. ``k`` turns go from the plane's first axis towards its second
(``numpy.rot90``); the sides of the plane, and their spacings, swap when ``k`` is odd.
"""

from __future__ import annotations

from typing import Any

import numpy as np

from medlens.data.image import Image
from medlens.errors import InputError
from medlens.preprocess._common import as_float32, integer, new_image, probability, require
from medlens.preprocess.augmentation import Identity
from medlens.preprocess.base import RandomTransform, Transform
from medlens.preprocess.geometric import spatial_axis
from medlens.preprocess.registry import TRANSFORMS


def _plane(value: Any, transform: str) -> list[int]:
    ok = isinstance(value, (list, tuple)) and len(value) == 2
    require(ok, transform, "plane", f"must be two spatial axes, got {value!r}")
    return [integer(a, transform, "plane") for a in value]


def _axes(plane: list[int], image: Image) -> tuple[int, int]:
    a, b = (spatial_axis(p, image, "rotate90 plane") for p in plane)
    if a == b:
        raise InputError(image.source or "<image>", "rotate90 needs two different axes")
    return a, b


@TRANSFORMS.register("rotate90")
class Rotate90(Transform):
    """Turn the image by ``k`` quarter turns in a plane (exact: no interpolation).

    Args:
        k: quarter turns (any integer; 4 is a full turn), from the plane's first axis
            towards its second.
        plane: two spatial axes (default: the last two, (H, W) of a 2D image).

    Example:
        >>> Rotate90(k=1)(image)  # a 2D (C, H, W) image becomes (C, W, H)
    """

    name = "rotate90"

    def __init__(self, k: int = 1, plane: list[int] | None = None) -> None:
        self.k = integer(k, self.name, "k")
        self.plane = _plane(plane if plane is not None else [-2, -1], self.name)

    def apply(self, image: Image) -> Image:
        a, b = _axes(self.plane, image)
        turns = self.k % 4
        out = np.rot90(as_float32(image), turns, axes=(a + 1, b + 1))
        spacing = list(image.spacing)
        if turns % 2:
            spacing[a], spacing[b] = spacing[b], spacing[a]
        turned = new_image(image, np.ascontiguousarray(out), spacing=spacing)
        return new_image(turned, turned.array, affine=self._affine(image, a, b, turns))

    def _affine(self, image: Image, a: int, b: int, turns: int) -> np.ndarray | None:
        if image.affine is None:
            return None
        # new voxel index -> old voxel index, one quarter turn at a time (the inverse map)
        ndim = image.spatial_dims
        shape = list(image.spatial_shape)
        to_old = np.eye(ndim + 1)
        for _ in range(turns):
            step = np.eye(ndim + 1)  # maps an index after this turn to one before it
            step[a, :] = 0.0
            step[b, :] = 0.0
            step[a, b] = 1.0  # old a = new b
            step[b, a] = -1.0  # old b = n_b - 1 - new a
            step[b, -1] = shape[b] - 1
            to_old = to_old @ step
            shape[a], shape[b] = shape[b], shape[a]
        affine = image.affine
        full = np.eye(affine.shape[0])
        keep = list(range(ndim)) + [affine.shape[0] - 1]
        full[np.ix_(keep, keep)] = to_old
        return affine @ full

    def _turn(self, points: np.ndarray, image: Image, turns: int) -> np.ndarray:
        a, b = _axes(self.plane, image)
        shape = list(image.spatial_shape)
        out = np.array(points, dtype=np.float64)
        for _ in range(turns % 4):
            # voxel (i_a, i_b) goes to (n_b - 1 - i_b, i_a); in edges (n_b - p_b, p_a)
            out[:, a], out[:, b] = shape[b] - out[:, b], out[:, a].copy()
            shape[a], shape[b] = shape[b], shape[a]
        return out

    def map_points(self, points: np.ndarray, image: Image) -> np.ndarray:
        return self._turn(points, image, self.k)

    def unmap_points(self, points: np.ndarray, image: Image) -> np.ndarray:
        a, b = _axes(self.plane, image)
        shape = list(image.spatial_shape)
        if self.k % 2:
            shape[a], shape[b] = shape[b], shape[a]
        # the grid the points lie on: the output's, for the turns that undo these
        grid = image.with_array(np.broadcast_to(np.float32(0), (1, *shape)))
        return self._turn(points, grid, -self.k)

    def params(self) -> dict[str, Any]:
        return {"k": self.k, "plane": self.plane}

    def for_mask(self) -> Transform:
        return Rotate90(**self.params())


@TRANSFORMS.register("random_rotate90")
class RandomRotate90(RandomTransform):
    """With probability ``p``, turn by 1, 2 or 3 quarter turns (equally likely).

    Args:
        plane: two spatial axes (default: the last two).
        p: probability of turning at all.
    """

    name = "random_rotate90"

    def __init__(self, plane: list[int] | None = None, p: float = 0.5) -> None:
        self.plane = _plane(plane if plane is not None else [-2, -1], self.name)
        self.p = probability(p, self.name)

    def draw(self, rng: np.random.Generator, image: Image) -> Transform:
        if rng.random() >= self.p:
            return Identity()
        return Rotate90(k=int(rng.integers(1, 4)), plane=self.plane)

    def params(self) -> dict[str, Any]:
        return {"plane": self.plane, "p": self.p}
