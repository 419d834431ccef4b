"""Bad input refused before any optimisation, each with one ``InputError`` that names the
file and the reason."""

from __future__ import annotations

import numpy as np

from medlens.data.image import Image
from medlens.errors import InputError

#: Fraction of the fixed grid that must land inside the moving image after the initial
#: alignment.
MIN_OVERLAP = 0.01


def check_pair(fixed: Image, moving: Image) -> None:
    """Refuse images of different dimensionality, non-finite intensities, or a constant image.

    Raises:
        InputError: naming the offending file.
    """
    if fixed.spatial_dims != moving.spatial_dims:
        raise InputError(
            moving.source,
            f"is {moving.spatial_dims}D but the fixed image {fixed.source} is "
            f"{fixed.spatial_dims}D; register images of the same dimensionality",
        )
    for image in (fixed, moving):
        if not np.isfinite(image.array).all():
            raise InputError(image.source, "holds NaN or infinite intensities")
        if float(np.ptp(image.array)) == 0.0:
            raise InputError(image.source, "has one intensity everywhere; nothing to align")


def check_labels(labels: Image, moving: Image) -> None:
    """Refuse a label map that is not on the moving image's grid (shape, and affine where both
    have one) or that is not integer-valued.

    Raises:
        InputError: naming the label file.
    """
    if labels.spatial_shape != moving.spatial_shape:
        raise InputError(
            labels.source,
            f"labels of shape {labels.spatial_shape} are not on the grid of the moving image "
            f"{moving.source} ({moving.spatial_shape})",
        )
    label_affine, moving_affine = labels.affine, moving.affine
    placed = label_affine is not None and moving_affine is not None
    if placed and not np.allclose(np.asarray(label_affine), np.asarray(moving_affine), atol=1e-3):
        raise InputError(
            labels.source,
            f"labels lie elsewhere in the scanner than the moving image {moving.source} "
            "(their affines differ)",
        )
    values = labels.array
    if not np.isfinite(values).all() or not np.array_equal(values, np.round(values)):
        raise InputError(labels.source, "is not a label map (non-integer values)")


def check_overlap(fraction: float, fixed: Image, moving: Image, how: str) -> None:
    """Refuse a pair whose grids barely meet after the initial alignment.

    Args:
        fraction: share of the fixed grid's voxels that land inside the moving image.
        how: the initial alignment, in words.

    Raises:
        InputError: naming the moving image.
    """
    if fraction < MIN_OVERLAP:
        raise InputError(
            moving.source,
            f"does not overlap the fixed image {fixed.source} after the initial alignment "
            f"({how}: {100 * fraction:.2f}% of the fixed grid lands inside it); check the "
            "files' orientation and origin, or use --init com",
        )
