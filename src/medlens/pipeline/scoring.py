"""The figures of a pipeline run: Dice of every region of every segment stage, the class
metrics with bootstrap CIs, the confusion matrix, and where errors come from (cases right
with the reference masks but wrong with the predicted ones, and the reverse)."""

from __future__ import annotations

from typing import Any

import numpy as np

from medlens.metrics.bootstrap import bootstrap_ci
from medlens.metrics.classification import (
    accuracy,
    balanced_accuracy,
    confusion,
    f1,
    per_class_scores,
)
from medlens.metrics.overlap import dice

CLASS_METRICS = ("balanced_accuracy", "f1", "accuracy")


def class_metrics(
    truth: np.ndarray, probs: np.ndarray, class_names: list[str], n_bootstrap: int, seed: int
) -> dict[str, Any]:
    """Balanced accuracy, macro-F1 and accuracy with 95% bootstrap CIs (cases resampled within
    classes), per-class precision / recall / F1, and the confusion matrix (rows: truth)."""
    pred = probs.argmax(axis=1)
    values = {
        "balanced_accuracy": balanced_accuracy(truth, probs, pred),
        "f1": f1(truth, probs, pred),
        "accuracy": accuracy(truth, probs, pred),
    }
    ci = bootstrap_ci(truth, probs, pred, list(CLASS_METRICS), n_bootstrap, seed=seed)
    return {
        "n": len(truth),
        **{k: {"value": v, "ci_low": ci[k][0], "ci_high": ci[k][1]} for k, v in values.items()},
        "per_class": per_class_scores(truth, pred, class_names),
        "confusion": confusion(truth, pred, len(class_names)).tolist(),
        "class_names": list(class_names),
    }


def region_dice(found: np.ndarray, reference: np.ndarray, regions: list[str]) -> dict[str, float]:
    """Dice of each region (label ``i + 1``) and of the whole object (every region joined),
    ``cell``; 1.0 where both maps lack a region."""
    out = {
        name: dice(found == k, reference == k, ignore_empty=False)
        for k, name in enumerate(regions, start=1)
    }
    out["cell"] = dice(found > 0, reference > 0, ignore_empty=False)
    return {k: float(v) for k, v in out.items()}


def segmentation_summary(rows: list[dict[str, float]]) -> dict[str, dict[str, float]]:
    """Mean, SD and median of each region's per-case Dice."""
    names = list(rows[0]) if rows else []
    return {
        n: {
            "mean": float(np.mean([r[n] for r in rows])),
            "sd": float(np.std([r[n] for r in rows], ddof=1)) if len(rows) > 1 else 0.0,
            "median": float(np.median([r[n] for r in rows])),
        }
        for n in names
    }


def mask_error_sources(
    truth: np.ndarray, predicted: np.ndarray, with_reference: np.ndarray
) -> dict[str, int]:
    """Counts of cases by whether the class was right with the predicted masks and with the
    reference masks (both from the same fitted later stages)."""
    right_pred = predicted == truth
    right_ref = with_reference == truth
    return {
        "right_both": int((right_pred & right_ref).sum()),
        "right_reference_only": int((~right_pred & right_ref).sum()),
        "right_predicted_only": int((right_pred & ~right_ref).sum()),
        "wrong_both": int((~right_pred & ~right_ref).sum()),
    }
