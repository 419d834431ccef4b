"""Patient geometry of DICOM images: slice normals, slice order and LPS affines (mm)."""

from __future__ import annotations

import numpy as np
from numpy.typing import ArrayLike


def slice_normal(orientation: ArrayLike) -> np.ndarray:
    """Unit normal of an image plane from ``ImageOrientationPatient`` (row then column cosines).

    The normal is ``row x column``; positions projected on it increase along the stack.
    """
    cosines = np.asarray(orientation, dtype=np.float64).reshape(2, 3)
    normal = np.cross(cosines[0], cosines[1])
    return normal / np.linalg.norm(normal)


def slice_offsets(positions: np.ndarray, orientation: ArrayLike) -> np.ndarray:
    """Distance (mm) of each ``ImagePositionPatient`` along the slice normal."""
    return np.asarray(positions, dtype=np.float64) @ slice_normal(orientation)


def lps_affine(
    origin: ArrayLike,
    orientation: ArrayLike,
    row_spacing: float,
    column_spacing: float,
    slice_vector: ArrayLike | None = None,
) -> np.ndarray:
    """4x4 matrix from voxel indices ``(k, r, c)`` (slice, row, column) to LPS world mm.

    Args:
        origin: ``ImagePositionPatient`` of the first slice (centre of its first pixel), mm.
        orientation: ``ImageOrientationPatient``: direction of increasing column index, then
            of increasing row index.
        row_spacing: distance between rows (``PixelSpacing[0]``), mm.
        column_spacing: distance between columns (``PixelSpacing[1]``), mm.
        slice_vector: step from one slice to the next in mm (LPS); the unit normal when None.
    """
    cosines = np.asarray(orientation, dtype=np.float64).reshape(2, 3)
    step = slice_normal(orientation) if slice_vector is None else np.asarray(slice_vector, float)
    affine = np.eye(4)
    affine[:3, 0] = step
    affine[:3, 1] = row_spacing * cosines[1]
    affine[:3, 2] = column_spacing * cosines[0]
    affine[:3, 3] = np.asarray(origin, dtype=np.float64)
    return affine


def irregular_spacing(offsets_sorted: np.ndarray, rel_tol: float = 0.1) -> str | None:
    """Why sorted slice offsets (mm) do not form an evenly spaced stack, or None when they do."""
    steps = np.diff(offsets_sorted)
    if steps.size == 0:
        return None
    if steps.min() < 1e-3:
        return "two slices share the same position"
    median = float(np.median(steps))
    if np.abs(steps - median).max() > max(rel_tol * median, 1e-2):
        return (
            f"slice spacing is not uniform ({steps.min():.3f} to {steps.max():.3f} mm); "
            "a slice may be missing"
        )
    return None
