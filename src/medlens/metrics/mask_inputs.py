"""Validation of what every segmentation metric takes: binary masks, voxel spacing, a FOV mask.

Arrays have no file name, so the ``InputError`` names the argument (``pred``, ``ref``,
``spacing``) instead; callers that read files catch it and name the file.
"""

from __future__ import annotations

from collections.abc import Sequence

import numpy as np
from numpy.typing import ArrayLike

from medlens.errors import InputError


def as_mask(values: ArrayLike, name: str) -> np.ndarray:
    """A 2D or 3D binary mask as a ``bool`` array (``bool`` input is returned without a copy).

    Raises:
        InputError: not 2D/3D, NaN, or values other than 0 and 1.
    """
    mask = np.asarray(values)
    if mask.ndim not in (2, 3):
        raise InputError(name, f"expected a 2D or 3D mask, got shape {mask.shape}")
    if mask.dtype == bool:
        return mask
    if mask.dtype.kind not in "iuf":
        raise InputError(name, f"a mask must be boolean or numeric, got dtype {mask.dtype}")
    if mask.dtype.kind == "f" and np.isnan(mask).any():
        raise InputError(name, "the mask contains NaN values")
    binary = mask != 0
    if not (mask[binary] == 1).all():
        raise InputError(
            name,
            "the mask is not binary (values other than 0 and 1); "
            "pass a label map to evaluate_segmentation(labels=...) instead",
        )
    return binary


def as_spacing(spacing: float | Sequence[float] | None, ndim: int) -> tuple[float, ...]:
    """Voxel spacing in mm, one value per axis; ``None`` means 1 mm (distances in voxels).

    A single number is used for every axis.

    Raises:
        InputError: wrong length, or a value that is not finite and positive.
    """
    if spacing is None:
        return (1.0,) * ndim
    values = np.atleast_1d(np.asarray(spacing, dtype=float))
    if values.ndim != 1:
        raise InputError("spacing", f"expected {ndim} numbers, got shape {values.shape}")
    if values.size == 1:
        values = np.repeat(values, ndim)
    if values.size != ndim:
        raise InputError("spacing", f"expected {ndim} values (one per axis), got {values.size}")
    if not (np.isfinite(values).all() and (values > 0).all()):
        raise InputError("spacing", f"voxel spacing must be finite and positive, got {values}")
    return tuple(float(v) for v in values)


def check_pair(pred: ArrayLike, ref: ArrayLike) -> tuple[np.ndarray, np.ndarray]:
    """The predicted and reference masks as ``bool`` arrays of the same shape."""
    pred_mask, ref_mask = as_mask(pred, "pred"), as_mask(ref, "ref")
    if pred_mask.shape != ref_mask.shape:
        raise InputError("pred", f"shape {pred_mask.shape} differs from ref {ref_mask.shape}")
    return pred_mask, ref_mask


def as_fov(fov_mask: ArrayLike | None, shape: tuple[int, ...]) -> np.ndarray | None:
    """The field-of-view mask (``True`` = evaluated) as ``bool``, or ``None`` when not given."""
    if fov_mask is None:
        return None
    fov = as_mask(fov_mask, "fov_mask")
    if fov.shape != shape:
        raise InputError("fov_mask", f"shape {fov.shape} differs from the masks' {shape}")
    return fov
