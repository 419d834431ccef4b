"""How numbers and choices read in report.html and model_card.md (one place, so they agree)."""

from __future__ import annotations

from typing import Any

#: Reader-facing names of the registered metrics; unknown names are shown as they are.
METRIC_LABELS = {
    "accuracy": "Accuracy",
    "balanced_accuracy": "Balanced accuracy",
    "sensitivity": "Sensitivity (recall)",
    "specificity": "Specificity",
    "precision": "Precision (PPV)",
    "f1": "F1 score",
    "auc": "ROC AUC",
    "average_precision": "Average precision (PR AUC)",
    "ece": "Calibration error (ECE, lower is better)",
    "brier": "Brier score (lower is better)",
}

#: Multi-class tasks report these as macro averages over classes.
MACRO_METRICS = {"sensitivity", "specificity", "precision", "f1", "auc", "average_precision"}

DASH = "\u2013"  # en dash between the ends of an interval
MISSING = "\u2014"  # em dash for a value that is undefined or not recorded


def metric_label(name: str, n_classes: int = 2) -> str:
    label = METRIC_LABELS.get(name, name)
    return f"{label}, macro" if n_classes > 2 and name in MACRO_METRICS else label


def format_value(value: Any, digits: int = 3) -> str:
    """``0.91234 -> "0.912"``; ``None`` (undefined) -> an em dash."""
    if value is None:
        return MISSING
    return f"{float(value):.{digits}f}"


def format_ci(low: Any, high: Any, digits: int = 3) -> str:
    """``(0.887, 0.934) -> "0.887–0.934"``; an em dash when either end is missing."""
    if low is None or high is None:
        return MISSING
    return f"{float(low):.{digits}f}{DASH}{float(high):.{digits}f}"


def format_level(level: Any) -> str:
    """``0.95 -> "95%"``."""
    return f"{100 * float(level):g}%"


def format_duration(seconds: Any) -> str:
    """``3725.2 -> "1 h 2 min"``, ``95 -> "1 min 35 s"``, ``None -> "—"``."""
    if seconds is None:
        return MISSING
    total = int(round(float(seconds)))
    hours, rest = divmod(total, 3600)
    minutes, secs = divmod(rest, 60)
    if hours:
        return f"{hours} h {minutes} min"
    return f"{minutes} min {secs} s" if minutes else f"{secs} s"


def describe_threshold(method: str | None, threshold: float | None, class_names: list[str]) -> str:
    """One sentence saying how the decision threshold was chosen."""
    if len(class_names) > 2 or threshold is None:
        return "Multi-class task: each case gets its most probable class; there is no threshold."
    positive = class_names[1]
    rule = f"A case is called '{positive}' when p({positive}) >= {threshold:.4g}."
    if method == "youden_plateau":
        how = (
            "chosen on the validation split as the middle of the thresholds whose Youden's J "
            "(sensitivity + specificity - 1) is within one standard error of the best"
        )
    elif method == "youden":
        how = (
            "chosen on the validation split to maximise Youden's J (sensitivity + specificity - 1)"
        )
    elif method == "max_f1":
        how = f"chosen on the validation split to maximise the F1 score of '{positive}'"
    elif method == "fixed":
        how = "fixed in the config, not tuned on any data"
    else:
        how = f"chosen by method {method!r}"
    return f"{rule} The threshold was {how}; the test split played no part in choosing it."


def transform_steps(preprocessing: list[Any] | None) -> list[dict[str, str]]:
    """The recorded preprocessing as ``{"name", "params"}`` rows for a report's pipeline list."""
    steps = []
    for spec in preprocessing or []:
        if isinstance(spec, dict):
            params = ", ".join(f"{k}={v}" for k, v in spec.items() if k != "name")
            steps.append({"name": str(spec.get("name", MISSING)), "params": params})
        else:
            steps.append({"name": str(spec), "params": ""})
    return steps
