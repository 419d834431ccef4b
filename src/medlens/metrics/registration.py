"""Registration accuracy: target registration error from landmarks (mm), overlap of
propagated labels (Dice, HD95 in mm), and the Jacobian determinant of the deformation
(folded voxels, statistics).

Each function takes arrays that the registration has already produced (mapped landmarks,
warped labels, a determinant map), so these metrics do not depend on how they were made.
"""

from __future__ import annotations

from collections.abc import Sequence

import numpy as np
from numpy.typing import ArrayLike

from medlens.errors import InputError
from medlens.metrics.overlap import dice
from medlens.metrics.surface import surface_metrics


def target_registration_error(mapped: ArrayLike, reference: ArrayLike) -> np.ndarray:
    """The distance (mm) between each fixed landmark mapped into the moving image and the
    moving image's own landmark.

    Args:
        mapped: ``(N, d)`` fixed landmarks after the transform, world mm.
        reference: ``(N, d)`` the corresponding moving landmarks, world mm.

    Raises:
        InputError: different numbers of landmarks or of coordinates.

    Example:
        >>> target_registration_error([[0, 0, 0]], [[3, 4, 0]])
        array([5.])
    """
    a, b = np.asarray(mapped, dtype=np.float64), np.asarray(reference, dtype=np.float64)
    if a.ndim != 2 or a.shape != b.shape:
        raise InputError(
            "landmarks", f"fixed and moving landmarks differ in shape: {a.shape} vs {b.shape}"
        )
    return np.linalg.norm(a - b, axis=1)


def distance_summary(distances: ArrayLike) -> dict[str, float | int]:
    """``n``, ``mean``, ``median``, ``std``, ``p90`` and ``max`` of distances (mm)."""
    values = np.asarray(distances, dtype=np.float64)
    if values.size == 0:
        return {"n": 0}
    return {
        "n": int(values.size),
        "mean": float(values.mean()),
        "median": float(np.median(values)),
        "std": float(values.std()),
        "p90": float(np.percentile(values, 90)),
        "max": float(values.max()),
    }


def folded_percentage(determinant: ArrayLike, mask: ArrayLike | None = None) -> float:
    """Percentage (0-100) of voxels whose Jacobian determinant is <= 0 (the deformation
    folds there), inside ``mask`` when given."""
    det = np.asarray(determinant)
    if mask is not None:
        det = det[np.asarray(mask, dtype=bool)]
    return float(100.0 * np.count_nonzero(det <= 0) / max(det.size, 1))


def jacobian_statistics(
    determinant: ArrayLike, mask: ArrayLike | None = None
) -> dict[str, float | int]:
    """Folded voxels (count and %) and ``min``, ``p1``, ``mean``, ``std``, ``p99``, ``max`` and
    the standard deviation of ``log`` (over unfolded voxels) of the Jacobian determinant."""
    det = np.asarray(determinant, dtype=np.float64)
    if mask is not None:
        det = det[np.asarray(mask, dtype=bool)]
    det = det.ravel()
    if det.size == 0:
        return {"voxels": 0}
    positive = det[det > 0]
    return {
        "voxels": int(det.size),
        "folded_voxels": int(np.count_nonzero(det <= 0)),
        "folded_pct": folded_percentage(det),
        "min": float(det.min()),
        "p1": float(np.percentile(det, 1)),
        "mean": float(det.mean()),
        "std": float(det.std()),
        "p99": float(np.percentile(det, 99)),
        "max": float(det.max()),
        "std_log": float(np.log(positive).std()) if positive.size else float("nan"),
    }


def propagated_label_metrics(
    warped: ArrayLike,
    reference: ArrayLike,
    spacing: Sequence[float] | None = None,
    labels: Sequence[int] | None = None,
) -> dict[int, dict[str, float]]:
    """Dice and HD95 (mm) per label of labels propagated onto the fixed image against its own.

    Args:
        warped: the moving image's label map warped onto the fixed grid.
        reference: the fixed image's label map (same shape).
        spacing: fixed voxel size per axis, mm (None: voxels).
        labels: the labels to score (default: every non-zero label in either map).

    Raises:
        InputError: the two maps differ in shape.
    """
    a, b = np.asarray(warped), np.asarray(reference)
    if a.shape != b.shape:
        raise InputError(
            "labels", f"warped labels {a.shape} and fixed labels {b.shape} differ in shape"
        )
    chosen = labels if labels is not None else sorted(set(np.unique(a)) | set(np.unique(b)))
    out: dict[int, dict[str, float]] = {}
    for label in chosen:
        if int(label) == 0:
            continue
        pred, ref = a == label, b == label
        surface = surface_metrics(pred, ref, spacing)
        out[int(label)] = {
            "dice": dice(pred, ref),
            "hausdorff_distance_95": surface["hausdorff_distance_95"],
        }
    return out
