"""One split's predictions -> the JSON-ready evaluation stored in ``metrics.json``."""

from __future__ import annotations

import math
import warnings
from collections.abc import Sequence
from typing import Any

import numpy as np
from numpy.typing import ArrayLike

from medlens.errors import InputError
from medlens.metrics.bootstrap import bootstrap_ci
from medlens.metrics.classification import confusion, per_class_scores
from medlens.metrics.inputs import check_predictions
from medlens.metrics.registry import METRICS
from medlens.metrics.threshold import predict_labels

#: Display order of the standard metrics; metrics registered later follow, by name.
STANDARD_METRICS = (
    "accuracy",
    "balanced_accuracy",
    "sensitivity",
    "specificity",
    "precision",
    "f1",
    "auc",
    "average_precision",
    "ece",
    "brier",
)

#: MedMNIST reports accuracy at the fixed threshold 0.5; these make results comparable.
METRICS_AT_HALF = ("accuracy", "sensitivity", "specificity", "f1")


def _json_float(value: float) -> float | None:
    return float(value) if math.isfinite(value) else None


def _undefined_note(
    name: str, truth: np.ndarray, pred: np.ndarray, class_names: Sequence[str]
) -> str:
    """Why a metric came out undefined on these cases, in one sentence."""
    k = len(class_names)
    reasons = [f"no '{class_names[c]}' case" for c in range(k) if not (truth == c).any()]
    reasons += [f"no case predicted '{class_names[c]}'" for c in range(k) if not (pred == c).any()]
    why = "; ".join(reasons) if reasons else "a zero denominator"
    return f"{name} is undefined on these cases ({why})"


def evaluate_predictions(
    y_true: ArrayLike,
    y_prob: ArrayLike,
    class_names: Sequence[str],
    threshold: float | None,
    n_bootstrap: int = 1000,
    ci_level: float = 0.95,
    seed: int = 0,
    metric_names: Sequence[str] | None = None,
) -> dict[str, Any]:
    """Every metric with its bootstrap interval, per-class scores and the confusion matrix.

    Args:
        y_true: true class indices ``(N,)``.
        y_prob: predicted probabilities ``(N, K)``, K = ``len(class_names)``.
        class_names: the class names, in class-index order.
        threshold: decision threshold on p(class 1) for binary tasks (chosen on validation);
            ignored (``None`` in the output) for multi-class tasks, which predict the arg-max.
        n_bootstrap: class-stratified resamples for the intervals (0: no intervals).
        ci_level: coverage of the intervals, in (0, 1).
        seed: seed of the resampling.
        metric_names: metrics to report; default all registered in ``METRICS``.

    Returns:
        ``{"n", "class_counts", "threshold", "decision_rule", "ci_level", "n_bootstrap",
        "metrics": {name: {"value", "ci_low", "ci_high"[, "note"]}}, "metrics_at_0.5"
        (binary only), "per_class": {class: {"precision", "recall", "f1", "support"}},
        "confusion_matrix": [[...]] (rows true, columns predicted)}``. Undefined values are
        ``None`` with a ``"note"`` saying why; nothing raises for a single-class split.
    """
    truth, prob, _ = check_predictions(y_true, y_prob)
    if len(class_names) != prob.shape[1]:
        raise InputError(
            "class_names", f"{len(class_names)} names for {prob.shape[1]} probability columns"
        )
    if metric_names is None:
        metric_names = [
            *STANDARD_METRICS,
            *(n for n in METRICS.names() if n not in STANDARD_METRICS),
        ]
    names = list(metric_names)
    pred = predict_labels(prob, threshold)
    with warnings.catch_warnings():
        # Undefined metrics are reported as None with a note; scikit-learn's warnings repeat it.
        warnings.filterwarnings("ignore", message=".*(ill-defined|not in y_true|only one class).*")
        return _evaluate(
            truth, prob, pred, class_names, threshold, names, n_bootstrap, ci_level, seed
        )


def _evaluate(
    truth: np.ndarray,
    prob: np.ndarray,
    pred: np.ndarray,
    class_names: Sequence[str],
    threshold: float | None,
    names: list[str],
    n_bootstrap: int,
    ci_level: float,
    seed: int,
) -> dict[str, Any]:
    k = prob.shape[1]
    binary = k == 2
    intervals = bootstrap_ci(truth, prob, pred, names, n_bootstrap, ci_level, seed)

    metrics: dict[str, dict[str, Any]] = {}
    for name in names:
        value = METRICS.get(name)(truth, prob, pred)
        low, high = intervals[name]
        entry: dict[str, Any] = {"value": _json_float(value), "ci_low": None, "ci_high": None}
        if not math.isfinite(value):
            entry["note"] = _undefined_note(name, truth, pred, class_names)
        elif n_bootstrap == 0:
            entry["note"] = "no confidence interval: n_bootstrap = 0"
        elif not (math.isfinite(low) and math.isfinite(high)):
            entry["note"] = "no confidence interval: the metric was undefined on every resample"
        else:
            entry["ci_low"], entry["ci_high"] = low, high
            if not low <= value <= high:
                entry["note"] = (
                    f"the value lies outside its percentile interval: {name} is biased under "
                    "resampling (binned ECE is, on small samples)"
                )
        metrics[name] = entry

    result: dict[str, Any] = {
        "n": int(len(truth)),
        "class_counts": {name: int((truth == c).sum()) for c, name in enumerate(class_names)},
        "threshold": float(threshold) if binary and threshold is not None else None,
        "decision_rule": "p(class 1) >= threshold" if binary else "argmax",
        "ci_level": float(ci_level),
        "n_bootstrap": int(n_bootstrap),
        "metrics": metrics,
    }
    if binary:
        pred_half = predict_labels(prob, 0.5)
        result["metrics_at_0.5"] = {
            name: _json_float(METRICS.get(name)(truth, prob, pred_half)) for name in METRICS_AT_HALF
        }
    result["per_class"] = {
        cls: {key: (_json_float(v) if key != "support" else v) for key, v in scores.items()}
        for cls, scores in per_class_scores(truth, pred, class_names).items()
    }
    result["confusion_matrix"] = confusion(truth, pred, k).tolist()
    return result
