"""Mask surfaces and the exact distances between two of them, in mm — fast.

The **surface** of a binary mask is the set of its voxels that have at least one
face-neighbour outside the mask (6-connectivity in 3D, 4-connectivity in 2D); voxels on the
image border count as having an outside neighbour. It equals ``mask & ~binary_erosion(mask)``
with scipy's default (cross-shaped) structuring element and ``border_value=0``: the surface
that MONAI's ``get_mask_edges`` (``use_subvoxels=False``) and MedPy use.

The **directed surface distances** from surface A to surface B are, for each voxel of A, the
Euclidean distance in mm (voxel centres scaled by ``spacing``) to the nearest voxel of B.

Both masks are cropped to the bounding box of their union (which is also the bounding box of
both surfaces) before anything else; the distances come from
:mod:`medlens.metrics.nearest_surface`, exact and without a distance transform of the volume.
"""

from __future__ import annotations

from collections.abc import Sequence
from dataclasses import dataclass

import numpy as np
from numpy.typing import ArrayLike

from medlens.metrics.mask_inputs import as_fov, as_spacing, check_pair
from medlens.metrics.nearest_surface import NearestSurface


@dataclass(frozen=True)
class SurfaceDistances:
    """The two directed surface-distance sets of a (prediction, reference) pair, in mm.

    Attributes:
        pred_to_ref: for each prediction surface voxel, the distance to the nearest reference
            surface voxel (``inf`` for every voxel when the reference surface is empty).
        ref_to_pred: for each reference surface voxel, the distance to the nearest prediction
            surface voxel (``inf`` for every voxel when the prediction surface is empty).
    """

    pred_to_ref: np.ndarray
    ref_to_pred: np.ndarray


def mask_surface(mask: np.ndarray) -> np.ndarray:
    """The surface voxels of a binary 2D/3D mask (see the module docstring), same shape, ``bool``.

    Example:
        >>> square = np.zeros((5, 5), bool); square[1:4, 1:4] = True
        >>> int(mask_surface(square).sum())  # the ring of 8 around the centre voxel
        8
    """
    return _surface(np.pad(np.asarray(mask, dtype=bool), 1))


def _surface(padded: np.ndarray) -> np.ndarray:
    """The surface of ``padded[1:-1, ...]``, a mask whose outermost layer is all ``False``."""
    inner = (slice(1, -1),) * padded.ndim
    core = padded[inner]
    interior = core.copy()
    for axis in range(padded.ndim):
        for start in (0, 2):  # the neighbour before, then the neighbour after, along `axis`
            window = list(inner)
            window[axis] = slice(start, padded.shape[axis] - 2 + start)
            interior &= padded[tuple(window)]
    return core & ~interior


def bounding_box(mask: np.ndarray) -> tuple[slice, ...] | None:
    """The smallest box (one slice per axis) holding every ``True`` voxel; ``None`` if none."""
    box = [slice(None)] * mask.ndim
    for axis in range(mask.ndim):
        # Each axis only looks inside the extent already found along the previous ones.
        others = tuple(a for a in range(mask.ndim) if a != axis)
        hits = np.flatnonzero(np.any(mask[tuple(box)], axis=others))
        if hits.size == 0:
            return None
        box[axis] = slice(int(hits[0]), int(hits[-1]) + 1)
    return tuple(box)


def surface_distances(
    pred: ArrayLike,
    ref: ArrayLike,
    spacing: float | Sequence[float] | None = None,
    *,
    fov_mask: ArrayLike | None = None,
) -> SurfaceDistances:
    """Both directed surface-distance sets of two binary masks, in mm (see the module docstring).

    Args:
        pred: predicted binary mask, 2D or 3D.
        ref: reference binary mask of the same shape.
        spacing: voxel size in mm, one per axis (or one for all); ``None``: 1 (voxel units).
        fov_mask: optional field of view; surface voxels outside it are dropped from both
            surfaces (as sources and as targets) after the surfaces are found on the whole
            masks, as MONAI's ``get_edge_surface_distance(mask=...)`` does.

    Returns:
        The two sets; both empty when neither mask has a surface voxel (inside the FOV).

    Raises:
        InputError: masks that are not binary, of different shapes, or a bad spacing.

    Example:
        >>> ref = np.zeros((9, 9), bool); ref[2:7, 2:7] = True
        >>> pred = np.roll(ref, 1, axis=0)
        >>> float(surface_distances(pred, ref, spacing=(2.0, 0.5)).pred_to_ref.max())
        2.0
    """
    pred_mask, ref_mask = check_pair(pred, ref)
    fov = as_fov(fov_mask, pred_mask.shape)
    voxel_mm = as_spacing(spacing, pred_mask.ndim)
    box = bounding_box(pred_mask | ref_mask)
    if box is None:
        return SurfaceDistances(np.empty(0), np.empty(0))
    # Surfaces are embedded in a zero margin as wide as the longest probe, so that every
    # probe stays inside the array and a flat-index step is the same offset everywhere.
    reach = NearestSurface.margin(voxel_mm)
    crop_shape = tuple(axis.stop - axis.start for axis in box)
    shape = tuple(int(n + 2 * r) for n, r in zip(crop_shape, reach, strict=True))
    inner = tuple(slice(int(r), int(r) + n) for r, n in zip(reach, crop_shape, strict=True))
    surfaces = []
    for mask in (pred_mask, ref_mask):
        surface = _surface(np.pad(mask[box], 1))
        if fov is not None:
            surface &= fov[box]
        embedded = np.zeros(shape, dtype=bool)
        embedded[inner] = surface
        surfaces.append(embedded.ravel())
    surface_pred, surface_ref = surfaces
    at_pred, at_ref = np.flatnonzero(surface_pred), np.flatnonzero(surface_ref)
    if at_pred.size == 0 or at_ref.size == 0:
        # One surface is empty: the other's voxels have no nearest voxel (MONAI: inf).
        return SurfaceDistances(np.full(at_pred.size, np.inf), np.full(at_ref.size, np.inf))
    search = NearestSurface(shape, voxel_mm)
    return SurfaceDistances(
        search.distances(at_pred, surface_ref, at_ref),
        search.distances(at_ref, surface_pred, at_pred),
    )
