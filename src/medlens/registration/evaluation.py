"""The accuracy of one registration: similarity before and after, the Jacobian of the
deformation, and, when references are given, TRE from landmarks and the overlap of the
propagated labels (``metrics.json`` of a registration output folder)."""

from __future__ import annotations

from typing import Any

import numpy as np

from medlens.metrics.registration import (
    distance_summary,
    jacobian_statistics,
    propagated_label_metrics,
    target_registration_error,
)
from medlens.registration.chain import TransformChain
from medlens.registration.jacobian import jacobian_determinant
from medlens.registration.warp import map_points


def correlation(a: np.ndarray, b: np.ndarray) -> float:
    """Pearson correlation of two intensity arrays of the same shape (NaN when constant)."""
    x, y = a.ravel().astype(np.float64), b.ravel().astype(np.float64)
    x, y = x - x.mean(), y - y.mean()
    denom = float(np.sqrt((x * x).sum() * (y * y).sum()))
    return float((x * y).sum() / denom) if denom > 0 else float("nan")


def deformation_metrics(chain: TransformChain) -> dict[str, Any]:
    """The Jacobian determinant statistics of the deformable stage (``{}`` without one) and
    the determinant of the linear part."""
    d = chain.dims
    out: dict[str, Any] = {"linear_determinant": float(np.linalg.det(chain.linear[:d, :d]))}
    if chain.displacement is not None:
        out["jacobian"] = jacobian_statistics(jacobian_determinant(chain.displacement))
        out["folded_pct"] = out["jacobian"]["folded_pct"]
    return out


def landmark_metrics(
    chain: TransformChain, fixed_points: np.ndarray, moving_points: np.ndarray
) -> dict[str, Any]:
    """TRE (mm) of the fixed landmarks mapped through the chain, and before registration
    (through the initial alignment only)."""
    mapped = map_points(chain, fixed_points)
    before = TransformChain(
        chain.fixed_shape,
        chain.moving_shape,
        chain.fixed_to_world,
        chain.moving_to_world,
        chain.initial,
        chain.initial,
    )
    after_mm = target_registration_error(mapped, moving_points)
    before_mm = target_registration_error(map_points(before, fixed_points), moving_points)
    return {
        "tre_mm": distance_summary(after_mm),
        "tre_before_mm": distance_summary(before_mm),
        "tre_per_landmark_mm": after_mm.tolist(),
    }


def label_metrics(
    warped: np.ndarray, before: np.ndarray, fixed_labels: np.ndarray, spacing: tuple[float, ...]
) -> dict[str, Any]:
    """Dice and HD95 (mm) per label of the propagated labels, after and before."""
    after = propagated_label_metrics(warped, fixed_labels, spacing)
    prior = propagated_label_metrics(before, fixed_labels, spacing, labels=list(after))
    mean = float(np.mean([m["dice"] for m in after.values()])) if after else float("nan")
    return {
        "labels": {str(k): {**v, "dice_before": prior[k]["dice"]} for k, v in after.items()},
        "mean_dice": mean,
    }
