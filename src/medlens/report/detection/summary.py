"""The tables and sentences of a detection report and model card, from the run's numbers
(one place, so report.html and model_card.md agree)."""

from __future__ import annotations

from typing import Any

from medlens.report.formatting import MISSING, format_ci, format_duration, format_value
from medlens.run_folder.detection import DetectionRun

#: Reader-facing names of the detection metrics.
LABELS = {
    "map": "mAP@[.5:.95] (COCO)",
    "map50": "mAP@0.5",
    "map75": "mAP@0.75",
    "ar100": "AR@100",
    "precision": "Precision (findings)",
    "recall": "Recall (findings)",
    "f1": "Object-wise F1",
    "froc_mean_sensitivity": "FROC mean sensitivity",
    "mask_map": "Mask mAP@[.5:.95]",
    "mask_map50": "Mask mAP@0.5",
    "mask_map75": "Mask mAP@0.75",
    "mask_ar100": "Mask AR@100",
}
PER_CLASS = ("ap50", "ap", "ap75", "ar100", "f1", "precision", "recall", "froc_mean_sensitivity")
PER_CLASS_LABELS = {
    "ap50": "AP@0.5",
    "ap": "AP@[.5:.95]",
    "ap75": "AP@0.75",
    "ar100": "AR@100",
    "f1": "F1",
    "precision": "Precision",
    "recall": "Recall",
    "froc_mean_sensitivity": "FROC sens.",
}
#: Fewer test objects of a class than this make its AP an unstable estimate.
FEW_OBJECTS = 30


def value_ci(entry: Any) -> tuple[str, str]:
    """``(value, CI)`` strings of a ``{value, ci_low, ci_high}`` entry."""
    if not isinstance(entry, dict):
        return MISSING, MISSING
    return format_value(entry.get("value")), format_ci(entry.get("ci_low"), entry.get("ci_high"))


def overall_rows(run: DetectionRun) -> list[dict[str, str]]:
    """Test value with CI and validation value of every overall metric."""
    test = (run.split("test") or {}).get("metrics", {})
    val = (run.split("val") or {}).get("metrics", {})
    rows = []
    for name in [n for n in LABELS if n in test]:
        value, ci = value_ci(test[name])
        rows.append(
            {"label": LABELS[name], "test": value, "ci": ci, "val": value_ci(val.get(name))[0]}
        )
    return rows


def class_rows(run: DetectionRun, split: str = "test") -> list[dict[str, Any]]:
    """One row per class: its AP family, F1, FROC, count errors, threshold, objects."""
    per_class = (run.split(split) or {}).get("per_class", {})
    rows = []
    for name in run.class_names:
        entry = per_class.get(name, {})
        count = entry.get("count") or {}
        rows.append(
            {
                "class_name": name,
                "cells": [value_ci(entry.get(m)) for m in PER_CLASS],
                "n_reference": entry.get("n_reference", MISSING),
                "n_findings": entry.get("n_findings", MISSING),
                "threshold": format_value(entry.get("threshold")),
                "count_mae": format_value(count.get("mae"), 2),
                "count_bias": format_value(count.get("bias"), 2),
                "count_rmse": format_value(count.get("rmse"), 2),
                "mean_reference": format_value(count.get("mean_reference"), 2),
            }
        )
    return rows


def froc_rows(run: DetectionRun) -> dict[str, Any]:
    """The FROC readings of the test split: rates, all classes, and each class."""
    froc = (run.split("test") or {}).get("froc") or {}
    rates = [f"{r:g}" for r in froc.get("fps_per_image") or []]
    rows = [
        {
            "name": "all classes",
            "readings": [format_value(v) for v in froc.get("sensitivity") or []],
        }
    ]
    for name, values in (froc.get("per_class") or {}).items():
        rows.append({"name": name, "readings": [format_value(v) for v in values]})
    return {"rates": rates, "rows": rows}


def settings(run: DetectionRun) -> list[tuple[str, str]]:
    """(label, value) pairs describing the model and its training."""
    model, train, det = run.section("model"), run.section("train"), run.section("detection")
    m = run.metrics
    weights = model.get("pretrained") or (
        "medlens checkpoint " + str(model["init"])
        if model.get("init")
        else "none (trained from scratch)"
    )
    return [
        (
            "Detector",
            f"{model.get('name', MISSING)} on {model.get('backbone') or 'its default backbone'}",
        ),
        ("Starting weights", str(weights)),
        (
            "Anchor sizes (px, finest level first)",
            str(det.get("anchor_sizes") or "the detector's default"),
        ),
        (
            "Epochs",
            f"{m.get('epochs_run', MISSING)} of {m.get('planned_epochs', MISSING)} planned; best (validation mAP@0.5) {m.get('best_epoch', MISSING)}",
        ),
        ("Training time", format_duration(m.get("train_seconds"))),
        (
            "Optimiser",
            f"{train.get('optimizer', MISSING)}, learning rate {train.get('lr', MISSING)}, batch {train.get('batch_size', MISSING)}",
        ),
        (
            "Operating thresholds",
            ", ".join(f"{k} {v:.3f}" for k, v in run.thresholds.items())
            + f" ({describe_thresholds(m.get('threshold_method'))})",
        ),
        (
            "Matching",
            f"a finding matches a reference object of its class at IoU >= {det.get('match_iou', 0.5)}",
        ),
    ]


def describe_thresholds(method: Any) -> str:
    if method == "fixed":
        return "fixed in the config"
    return "each chosen on the validation split to maximise the class's object-wise F1; the test split played no part"


def split_sizes(run: DetectionRun) -> list[dict[str, Any]]:
    """Images and objects per class of each split (data_summary.json)."""
    splits = (run.data_summary or {}).get("splits") or {}
    return [
        {
            "split": name,
            "n": info.get("n", MISSING),
            "objects": [info.get("objects", {}).get(c, MISSING) for c in run.class_names],
            "empty": info.get("images_without_objects", 0),
        }
        for name, info in splits.items()
    ]


def limitations(run: DetectionRun) -> list[str]:
    """What a reader must know, worked out from the run's own numbers."""
    notes = [
        "Objects that are present but not annotated count as false positives: where the "
        "reference is incomplete (overlapping cells often are, e.g. red blood cells in "
        "BCCD), that class's precision and AP are underestimated, its F1-optimal threshold is "
        "pushed up, and its counts then fall below the true number of cells.",
        "AP ranks every detection above the score threshold; the findings (F1, counts, overlays) "
        "are only those at or above each class's operating threshold.",
    ]
    test = run.split("test") or {}
    for name, entry in (test.get("per_class") or {}).items():
        n = entry.get("n_reference")
        if isinstance(n, int) and n < FEW_OBJECTS:
            notes.append(
                f"{name}: only {n} test objects; its AP and F1 are unstable (see the CIs)."
            )
    skipped = (run.data_summary or {}).get("skipped_objects") or []
    if skipped:
        notes.append(
            f"{len(skipped)} annotated object(s) were left out as unusable (--skip-bad); they are "
            "listed in data_summary.json."
        )
    untrained = (run.data_summary or {}).get("classes_without_training_objects") or []
    if untrained:
        notes.append(
            f"No training image held an object of {', '.join(untrained)}: the detector could not "
            "learn it, and its test objects are misses."
        )
    n_images = test.get("n_images")
    if isinstance(n_images, int) and n_images < FEW_OBJECTS:
        notes.append(f"The test split holds {n_images} images; the CIs are wide.")
    return notes
