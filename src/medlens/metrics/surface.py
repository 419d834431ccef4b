"""Surface-distance metrics in mm: Hausdorff distance, HD95, ASSD, normalised surface Dice.

All four come from the two directed surface-distance sets of
:func:`medlens.metrics.surface_distance.surface_distances` (surfaces: 6-connected in 3D,
4-connected in 2D), computed once; :func:`surface_metrics` returns them together.

Definitions — the same as MONAI's (``compute_hausdorff_distance``,
``compute_average_surface_distance(symmetric=True)``, ``compute_surface_dice`` with
``use_subvoxels=False``), to 1e-6 relative (MONAI rounds to float32; medlens keeps float64):

- ``hausdorff_distance``: the largest distance in either direction.
- ``hausdorff_distance_95``: the larger of the two directed 95th percentiles (linear
  interpolation, as ``numpy.percentile`` and ``torch.quantile``). Not the 95th percentile of
  the pooled distances.
- ``average_symmetric_surface_distance``: the mean over the pooled distances of both
  directions, so the larger surface weighs more. MedPy's ``assd`` averages the two directed
  means instead, and DeepMind's surface-distance weights each voxel by its surface area;
  neither is what this function returns.
- ``normalized_surface_dice``: the fraction of surface voxels of both masks lying within
  ``tolerance_mm`` of the other surface (voxel counts; DeepMind's version weights by area).

Empty masks (after the field of view), following MONAI:

==========================  =====================  =======================
case                        HD, HD95, ASSD         normalised surface Dice
==========================  =====================  =======================
both empty                  ``nan``                ``nan``
only one empty              ``inf``                ``0.0``
==========================  =====================  =======================

MONAI agrees on every cell but one: with one mask empty its HD95 is ``nan``, because
``torch.quantile`` interpolates between infinities; medlens returns ``inf`` there too.
Average them with :func:`medlens.metrics.segmentation.summarize`, which counts NaN and inf
instead of letting them into the mean.
"""

from __future__ import annotations

from collections.abc import Sequence

import numpy as np
from numpy.typing import ArrayLike

from medlens.errors import InputError
from medlens.metrics.surface_distance import SurfaceDistances, surface_distances

#: The percentile of the "95%" Hausdorff distance.
HD_PERCENTILE = 95.0
#: The metrics of :func:`surface_metrics`, in the order they are returned.
SURFACE_METRICS = (
    "hausdorff_distance",
    "hausdorff_distance_95",
    "average_symmetric_surface_distance",
    "normalized_surface_dice",
)


def metrics_from_distances(
    distances: SurfaceDistances, tolerance_mm: float = 1.0
) -> dict[str, float]:
    """HD, HD95, ASSD and NSD (mm; NSD unitless) from the two directed distance sets.

    Args:
        distances: the directed sets, as :func:`surface_distances` returns them.
        tolerance_mm: the normalised surface Dice tolerance, in mm.
    """
    tolerance = _check_tolerance(tolerance_mm)
    both = (distances.pred_to_ref, distances.ref_to_pred)
    sizes = [d.size for d in both]
    if sizes == [0, 0]:
        return dict.fromkeys(SURFACE_METRICS, float("nan"))
    if 0 in sizes:  # one surface is missing: no finite distance exists
        return {**dict.fromkeys(SURFACE_METRICS[:3], float("inf")), "normalized_surface_dice": 0.0}
    pooled = np.concatenate(both)
    return {
        "hausdorff_distance": float(pooled.max()),
        "hausdorff_distance_95": float(max(np.percentile(d, HD_PERCENTILE) for d in both)),
        "average_symmetric_surface_distance": float(pooled.mean()),
        "normalized_surface_dice": float(np.count_nonzero(pooled <= tolerance) / pooled.size),
    }


def _check_tolerance(tolerance_mm: float) -> float:
    tolerance = float(tolerance_mm)
    if not (np.isfinite(tolerance) and tolerance >= 0):
        raise InputError("tolerance_mm", f"must be finite and >= 0 mm, got {tolerance_mm}")
    return tolerance


def surface_metrics(
    pred: ArrayLike,
    ref: ArrayLike,
    spacing: float | Sequence[float] | None = None,
    *,
    tolerance_mm: float = 1.0,
    fov_mask: ArrayLike | None = None,
) -> dict[str, float]:
    """All four surface metrics of a binary prediction against its reference, from one pass.

    Args:
        pred: predicted binary mask, 2D or 3D.
        ref: reference binary mask of the same shape.
        spacing: voxel size in mm per axis; ``None`` gives distances in voxels.
        tolerance_mm: the normalised surface Dice tolerance, in mm.
        fov_mask: optional field of view restricting both surfaces.

    Returns:
        ``{"hausdorff_distance", "hausdorff_distance_95",
        "average_symmetric_surface_distance"}`` in mm and ``"normalized_surface_dice"`` in
        [0, 1]; NaN/inf for empty masks as the module docstring says.

    Example:
        >>> ref = np.zeros((20, 20, 20), bool); ref[5:15, 5:15, 5:15] = True
        >>> surface_metrics(np.roll(ref, 2, axis=2), ref, (1.0, 1.0, 3.0))["hausdorff_distance"]
        6.0
    """
    distances = surface_distances(pred, ref, spacing, fov_mask=fov_mask)
    return metrics_from_distances(distances, tolerance_mm)


def hausdorff_distance(
    pred: ArrayLike,
    ref: ArrayLike,
    spacing: float | Sequence[float] | None = None,
    *,
    fov_mask: ArrayLike | None = None,
) -> float:
    """Largest surface distance in either direction, in mm (``nan``/``inf`` for empty masks)."""
    return surface_metrics(pred, ref, spacing, fov_mask=fov_mask)["hausdorff_distance"]


def hausdorff_distance_95(
    pred: ArrayLike,
    ref: ArrayLike,
    spacing: float | Sequence[float] | None = None,
    *,
    fov_mask: ArrayLike | None = None,
) -> float:
    """The larger of the two directed 95th-percentile surface distances, in mm."""
    return surface_metrics(pred, ref, spacing, fov_mask=fov_mask)["hausdorff_distance_95"]


def average_symmetric_surface_distance(
    pred: ArrayLike,
    ref: ArrayLike,
    spacing: float | Sequence[float] | None = None,
    *,
    fov_mask: ArrayLike | None = None,
) -> float:
    """Mean distance (mm) over the surface voxels of both masks to the other surface."""
    metrics = surface_metrics(pred, ref, spacing, fov_mask=fov_mask)
    return metrics["average_symmetric_surface_distance"]


def normalized_surface_dice(
    pred: ArrayLike,
    ref: ArrayLike,
    spacing: float | Sequence[float] | None = None,
    *,
    tolerance_mm: float = 1.0,
    fov_mask: ArrayLike | None = None,
) -> float:
    """Fraction of both masks' surface voxels within ``tolerance_mm`` of the other surface."""
    metrics = surface_metrics(pred, ref, spacing, tolerance_mm=tolerance_mm, fov_mask=fov_mask)
    return metrics["normalized_surface_dice"]
