"""The limitations a reader must know, worked out from the run folder's own numbers."""

from __future__ import annotations

from medlens.report.formatting import format_ci, format_level, format_value
from medlens.run_folder.classification import RunFolder

#: Fewer test cases of a class than this make its per-class numbers unstable.
SMALL_CLASS = 50
#: A train majority/minority ratio at or above this is called imbalanced.
IMBALANCE_RATIO = 3.0
#: A test ECE above this means the probabilities should not be read as risks.
POOR_CALIBRATION = 0.05


def _train_counts(run: RunFolder) -> dict[str, int] | None:
    summary = run.data_summary or {}
    counts = summary.get("splits", {}).get("train", {}).get("class_counts")
    return (
        {str(k): int(v) for k, v in counts.items()} if isinstance(counts, dict) and counts else None
    )


def limitations(run: RunFolder) -> list[str]:
    """Plain-language limitations of this run, most important first."""
    notes = [
        "Research use only: this model is not a medical device and was not validated for "
        "clinical decisions.",
    ]
    test = run.metrics["splits"].get("test")
    if test is not None:
        counts = test.get("class_counts", {})
        text = f"The test split holds {test['n']} cases"
        auc = test["metrics"].get("auc", {})
        if auc.get("ci_low") is not None:
            level = format_level(test.get("ci_level", 0.95))
            text += f"; the {level} CI of the AUC is {format_ci(auc['ci_low'], auc['ci_high'])}"
        notes.append(text + ". Small differences between models are within this uncertainty.")
        small = [f"{name} ({n})" for name, n in counts.items() if n < SMALL_CLASS]
        if small:
            notes.append(f"Few test cases of {', '.join(small)}: per-class numbers are unstable.")
        ece = test["metrics"].get("ece", {}).get("value")
        if ece is not None and ece > POOR_CALIBRATION:
            notes.append(
                f"The probabilities are not well calibrated (test ECE {format_value(ece)}): "
                "read them as scores that rank cases, not as risks."
            )
    else:
        notes.append(
            "No test split was evaluated: the reported numbers are validation numbers only."
        )
    train = _train_counts(run)
    if (
        train
        and min(train.values()) > 0
        and max(train.values()) / min(train.values()) >= IMBALANCE_RATIO
    ):
        split = ", ".join(f"{n} {name}" for name, n in train.items())
        notes.append(f"The training data are imbalanced ({split}).")
    source = (run.data_summary or {}).get("source")
    notes.append(
        f"All cases come from one source{f', {source}' if source else ''}. Performance on other "
        "sites, scanners, acquisition protocols and populations is unknown."
    )
    skipped = (run.data_summary or {}).get("skipped_files") or []
    if skipped:
        notes.append(
            f"{len(skipped)} file(s) could not be read and were left out (listed in the report)."
        )
    if len(run.class_names) == 2 and run.threshold is not None:
        notes.append(
            "The decision threshold was tuned on the validation split; sensitivity and specificity "
            "at other operating points differ (see the ROC curve)."
        )
    if run.audit is None:
        notes.append(
            "No subgroup (fairness) audit was run: performance may differ between patient groups."
        )
    return notes
