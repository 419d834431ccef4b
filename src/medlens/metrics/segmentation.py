"""Segmentation metrics per class, their registry, and a NaN/inf-aware summary.

Every registered metric takes binary masks and answers one call,
``fn(pred, ref, spacing=None, *, fov_mask=None) -> float`` (for ``pixel_auc`` ``pred`` is the
probability map), with spacing in mm per axis. :func:`evaluate_segmentation` computes them
all for each class of two label maps, counting voxels once and surface distances once.

Empty masks give ``nan`` or ``inf`` as documented in :mod:`medlens.metrics.overlap` and
:mod:`medlens.metrics.surface`; :func:`summarize` averages only the finite values and
reports how many were NaN and inf, so neither vanishes into a mean.
"""

from __future__ import annotations

import math
from collections.abc import Callable, Iterable, Sequence
from typing import Any

import numpy as np
from numpy.typing import ArrayLike

from medlens.errors import InputError
from medlens.metrics.mask_inputs import as_fov, as_spacing
from medlens.metrics.overlap import (
    dice,
    jaccard,
    overlap_counts,
    pixel_auc,
    precision,
    sensitivity,
    specificity,
)
from medlens.metrics.surface import (
    average_symmetric_surface_distance,
    hausdorff_distance,
    hausdorff_distance_95,
    metrics_from_distances,
    normalized_surface_dice,
)
from medlens.metrics.surface_distance import surface_distances
from medlens.registry import Registry

SegmentationMetric = Callable[..., float]

SEGMENTATION_METRICS: Registry[SegmentationMetric] = Registry("segmentation metric")

for _metric in (
    dice,
    jaccard,
    precision,
    sensitivity,
    specificity,
    pixel_auc,
    hausdorff_distance,
    hausdorff_distance_95,
    average_symmetric_surface_distance,
    normalized_surface_dice,
):
    SEGMENTATION_METRICS.register()(_metric)


def evaluate_segmentation(
    pred: ArrayLike,
    ref: ArrayLike,
    spacing: float | Sequence[float] | None = None,
    labels: Sequence[int] | None = None,
    fov_mask: ArrayLike | None = None,
    tolerance_mm: float = 1.0,
    *,
    prob: ArrayLike | None = None,
    ignore_empty: bool = True,
) -> dict[int, dict[str, Any]]:
    """Every segmentation metric for each class of a predicted and a reference label map.

    Args:
        pred: predicted label map (or binary mask), 2D or 3D, integer or boolean.
        ref: reference label map of the same shape.
        spacing: voxel size in mm per axis; ``None`` gives distances in voxels.
        labels: the classes to evaluate; default: every non-zero label found in ``pred`` or
            ``ref``, or ``[1]`` when both are all background (so an empty pair is reported,
            not skipped).
        fov_mask: optional field of view: voxels outside it are not counted and surface voxels
            outside it are dropped.
        tolerance_mm: the normalised surface Dice tolerance, in mm.
        prob: optional probabilities for ``pixel_auc``: the foreground probability map (same
            shape as ``pred``) when one class is evaluated, or a channel-first map whose
            channel ``c`` is the probability of label ``c``.
        ignore_empty: Dice and Jaccard of an empty reference: ``nan`` if True (MONAI's
            default), else 1.0 or 0.0.

    Returns:
        ``{label: {metric name: value, "pred_voxels": n, "ref_voxels": n}}``, distances in mm.

    Raises:
        InputError: shapes that differ, non-integer or negative labels, a bad spacing.

    Example:
        >>> ref = np.zeros((8, 8), int); ref[2:6, 2:6] = 1
        >>> evaluate_segmentation(ref, ref, spacing=(0.5, 0.5))[1]["dice"]
        1.0
    """
    pred_map, ref_map = _label_map(pred, "pred"), _label_map(ref, "ref")
    if pred_map.shape != ref_map.shape:
        raise InputError("pred", f"shape {pred_map.shape} differs from ref {ref_map.shape}")
    voxel_mm = as_spacing(spacing, pred_map.ndim)
    fov = as_fov(fov_mask, pred_map.shape)
    classes = _labels_to_evaluate(pred_map, ref_map, labels)
    prob_maps = _probability_maps(prob, classes, pred_map.shape)
    results: dict[int, dict[str, Any]] = {}
    for label in classes:
        pred_c, ref_c = pred_map == label, ref_map == label
        counts = overlap_counts(pred_c, ref_c, fov_mask=fov)
        row: dict[str, Any] = {
            "dice": counts.dice(ignore_empty),
            "jaccard": counts.jaccard(ignore_empty),
            "precision": counts.precision(),
            "sensitivity": counts.sensitivity(),
            "specificity": counts.specificity(),
        }
        if prob_maps is not None:
            row["pixel_auc"] = pixel_auc(prob_maps[label], ref_c, fov_mask=fov)
        distances = surface_distances(pred_c, ref_c, voxel_mm, fov_mask=fov)
        row.update(metrics_from_distances(distances, tolerance_mm))
        row["pred_voxels"] = counts.tp + counts.fp
        row["ref_voxels"] = counts.tp + counts.fn
        results[label] = row
    return results


def _label_map(values: ArrayLike, name: str) -> np.ndarray:
    labels = np.asarray(values)
    if labels.ndim not in (2, 3):
        raise InputError(name, f"expected a 2D or 3D label map, got shape {labels.shape}")
    if labels.dtype == bool:
        return labels.astype(np.uint8)
    if labels.dtype.kind == "f":
        if not np.isfinite(labels).all() or (labels != np.round(labels)).any():
            raise InputError(name, "a label map must hold whole numbers (no NaN, no fractions)")
        labels = labels.astype(np.int64)
    elif labels.dtype.kind not in "iu":
        raise InputError(name, f"a label map must be integer or boolean, got dtype {labels.dtype}")
    if labels.size and labels.min() < 0:
        raise InputError(name, "labels must be >= 0 (0 is background)")
    return labels


def _labels_to_evaluate(
    pred: np.ndarray, ref: np.ndarray, labels: Sequence[int] | None
) -> list[int]:
    if labels is not None:
        chosen = [int(label) for label in labels]
        if not chosen or min(chosen) < 1:
            raise InputError("labels", f"expected one or more labels >= 1, got {list(labels)}")
        return chosen
    present = _present(pred) | _present(ref)
    return sorted(present - {0}) or [1]


def _present(label_map: np.ndarray) -> set[int]:
    """The labels in a map; counting beats sorting when the labels are small integers."""
    if label_map.size and int(label_map.max()) < 2**16:
        return {int(v) for v in np.flatnonzero(np.bincount(label_map.ravel()))}
    return {int(v) for v in np.unique(label_map)}


def _probability_maps(
    prob: ArrayLike | None, labels: list[int], shape: tuple[int, ...]
) -> dict[int, np.ndarray] | None:
    if prob is None:
        return None
    maps = np.asarray(prob, dtype=float)
    if maps.shape == shape:
        if len(labels) != 1:
            raise InputError(
                "prob", f"one probability map given for {len(labels)} labels; pass (C, *shape)"
            )
        return {labels[0]: maps}
    if maps.shape[1:] != shape or maps.shape[0] <= max(labels):
        raise InputError(
            "prob", f"expected shape {shape} or (C > {max(labels)}, *{shape}), got {maps.shape}"
        )
    return {label: maps[label] for label in labels}


def summarize(values: Iterable[float]) -> dict[str, float | int]:
    """Mean and spread of the finite values, and how many were NaN or infinite.

    A Hausdorff distance is ``inf`` when one mask of a case is empty and ``nan`` when both
    are; averaging either into a mean would hide it or poison it, so both are counted apart.

    Returns:
        ``{"mean", "std", "median", "min", "max"}`` over the finite values (``nan`` when there
        are none) and ``{"n", "n_finite", "n_nan", "n_inf"}``.

    Example:
        >>> summarize([1.0, 3.0, float("inf"), float("nan")])["mean"]
        2.0
    """
    array = np.asarray(list(values), dtype=float).ravel()
    finite = array[np.isfinite(array)]
    stats = (
        {
            "mean": float(finite.mean()),
            "std": float(finite.std()),
            "median": float(np.median(finite)),
            "min": float(finite.min()),
            "max": float(finite.max()),
        }
        if finite.size
        else dict.fromkeys(("mean", "std", "median", "min", "max"), math.nan)
    )
    return {
        **stats,
        "n": int(array.size),
        "n_finite": int(finite.size),
        "n_nan": int(np.isnan(array).sum()),
        "n_inf": int(np.isinf(array).sum()),
    }
