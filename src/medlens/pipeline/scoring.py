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
    per_class = per_class_scores(truth, pred, class_names)
    for name, bounds in per_class_ci(truth, pred, len(class_names), n_bootstrap, seed).items():
        for k, entry in enumerate(per_class.values()):
            entry[f"{name}_ci"] = bounds[k]  # type: ignore[assignment]
    return {
        "n": len(truth),
        **{k: {"value": v, "ci_low": ci[k][0], "ci_high": ci[k][1]} for k, v in values.items()},
        "per_class": per_class,
        "confusion": confusion(truth, pred, len(class_names)).tolist(),
        "class_names": list(class_names),
    }


def per_class_ci(
    truth: np.ndarray, pred: np.ndarray, n_classes: int, n_bootstrap: int, seed: int
) -> dict[str, list[tuple[float, float]]]:
    """95% percentile bootstrap intervals of each class's precision, recall and F1 (cases
    resampled within their reference class; NaN where a resample leaves it undefined)."""
    from sklearn.metrics import precision_recall_fscore_support

    labels = list(range(n_classes))
    if n_bootstrap == 0:
        nan = [(float("nan"), float("nan"))] * n_classes
        return {"precision": nan, "recall": nan, "f1": nan}
    rng = np.random.default_rng(seed)
    groups = [np.flatnonzero(truth == k) for k in labels]
    samples = np.full((3, n_bootstrap, n_classes), np.nan)
    for b in range(n_bootstrap):
        index = np.concatenate([rng.choice(g, size=g.size) for g in groups if g.size])
        samples[:, b] = precision_recall_fscore_support(
            truth[index], pred[index], labels=labels, zero_division=np.nan
        )[:3]
    out: dict[str, list[tuple[float, float]]] = {}
    for i, name in enumerate(("precision", "recall", "f1")):
        bounds = []
        for k in labels:
            defined = samples[i, :, k][np.isfinite(samples[i, :, k])]
            low, high = np.percentile(defined, [2.5, 97.5]) if defined.size else (np.nan, np.nan)
            bounds.append((float(low), float(high)))
        out[name] = bounds
    return out


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
