"""The per-group metrics of an audit, on the cases and on bootstrap resamples of them.

Every metric is that of the positive class of a binary (or one-vs-rest) decision:

- ``tpr`` true-positive rate (sensitivity), ``fnr = 1 - tpr``;
- ``specificity`` true-negative rate, ``fpr = 1 - specificity``;
- ``ppv`` positive predictive value (precision);
- ``selection_rate`` fraction of cases predicted positive (demographic parity compares it);
- ``auc`` ROC AUC of the positive-class probability;
- ``ece`` expected calibration error of that probability (15 equal-width bins).

Point values come from the registered scikit-learn metrics (``medlens.metrics.METRICS``);
resampled values from their vectorised twins (``medlens.metrics.resampled``), which equal
them on the resampled cases. ``nan`` marks an undefined value (TPR of a group without
positive cases, PPV of a group with no positive prediction).
"""

from __future__ import annotations

import warnings

import numpy as np

from medlens.metrics.registry import METRICS
from medlens.metrics.resampled import RESAMPLED

#: Audit metric -> registered metric it is computed from.
_REGISTERED = {
    "tpr": "sensitivity",
    "specificity": "specificity",
    "ppv": "precision",
    "auc": "auc",
    "ece": "ece",
}

#: Every per-group metric, in table order.
GROUP_METRICS = ("auc", "tpr", "specificity", "ppv", "fpr", "fnr", "selection_rate", "ece")

#: Reader-facing names.
METRIC_TITLES = {
    "auc": "AUC",
    "tpr": "TPR (sensitivity)",
    "specificity": "Specificity",
    "ppv": "PPV (precision)",
    "fpr": "FPR",
    "fnr": "FNR",
    "selection_rate": "Selection rate",
    "ece": "ECE",
}


def _two_columns(p_pos: np.ndarray) -> np.ndarray:
    return np.column_stack([1.0 - p_pos, p_pos])


def point_metrics(y: np.ndarray, p_pos: np.ndarray, pred: np.ndarray) -> dict[str, float]:
    """Every metric of ``GROUP_METRICS`` on one group's cases.

    Args:
        y: 0/1 outcomes ``(n,)``; p_pos: p(positive) ``(n,)``; pred: 0/1 decisions ``(n,)``.
    """
    prob = _two_columns(p_pos)
    with warnings.catch_warnings():  # undefined values are nan by design
        warnings.filterwarnings("ignore", message=".*(ill-defined|not in y_true|only one class).*")
        out = {key: float(METRICS.get(name)(y, prob, pred)) for key, name in _REGISTERED.items()}
    out["fpr"] = 1.0 - out["specificity"]
    out["fnr"] = 1.0 - out["tpr"]
    out["selection_rate"] = float(pred.mean())
    return {key: out[key] for key in GROUP_METRICS}


#: Metrics given the class of each case: resampled within (group, class) cells, so they stay
#: defined in every resample. The others depend on the group's class mix (prevalence) and
#: are resampled within groups only, so their intervals include the prevalence's noise.
CLASS_CONDITIONAL = ("auc", "tpr", "specificity", "fpr", "fnr")
MIX_DEPENDENT = ("ppv", "selection_rate", "ece")


def resampled_metrics(
    weights: np.ndarray,
    y: np.ndarray,
    p_pos: np.ndarray,
    pred: np.ndarray,
    names: tuple[str, ...] = GROUP_METRICS,
) -> dict[str, np.ndarray]:
    """Metrics of ``GROUP_METRICS`` on ``B`` resamples of one group's cases.

    Args:
        weights: how often each case is drawn in each resample, ``(B, n)``.
        y, p_pos, pred: as in ``point_metrics``.
        names: the metrics wanted.

    Returns:
        ``{metric: values (B,)}`` for each of ``names``.
    """
    prob = _two_columns(p_pos)
    out: dict[str, np.ndarray] = {}
    for name in names:
        if name in _REGISTERED:
            out[name] = RESAMPLED[_REGISTERED[name]](weights, y, prob, pred)
        elif name in ("fpr", "fnr"):
            base = "specificity" if name == "fpr" else "tpr"
            out[name] = 1.0 - RESAMPLED[_REGISTERED[base]](weights, y, prob, pred)
        else:
            totals = weights.sum(axis=1)
            out[name] = np.divide(
                weights @ pred.astype(float),
                totals,
                out=np.full(len(weights), np.nan),
                where=totals > 0,
            )
    return out


def percentile_interval(values: np.ndarray, level: float) -> tuple[float, float]:
    """Percentile interval of the defined (finite) values; ``(nan, nan)`` when none is."""
    defined = values[np.isfinite(values)]
    if defined.size == 0:
        return float("nan"), float("nan")
    low, high = np.percentile(defined, [50.0 * (1.0 - level), 50.0 * (1.0 + level)])
    return float(low), float(high)
