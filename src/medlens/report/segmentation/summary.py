"""The facts of a segmentation run as they read in report.html and model_card.md: settings,
data, and the per-split, per-class metric tables (one place, so the two documents agree)."""

from __future__ import annotations

from typing import Any

from medlens.report.figures import SPLIT_TITLES
from medlens.report.formatting import MISSING, format_duration
from medlens.report.segmentation.formatting import (
    MILLIMETRE,
    digits_for,
    distance_unit,
    format_summary,
    ordered_metrics,
    segmentation_metric_label,
)
from medlens.run_folder.segmentation import SegmentationRun


def describe_postprocess(post: dict[str, Any], n_classes: int = 2, unit: str = MILLIMETRE) -> str:
    """``{"threshold": 0.5, "keep_largest": 1, ...} -> "foreground where its probability >= 0.5;
    keep the largest 1 connected component(s) per class"`` (sizes in mm² for 2D, mm³ for 3D).

    Args:
        n_classes: label count with the background; above 2 each voxel takes its most probable
            class and the threshold does not apply.
        unit: the run's distance unit (``mm``, or ``px`` where the spacing was assumed).
    """
    if not post:
        return MISSING
    steps = [
        f"foreground where its probability >= {post.get('threshold', MISSING)}"
        if n_classes <= 2
        else "each voxel takes its most probable class"
    ]
    if post.get("keep_largest"):
        steps.append(f"keep the largest {post['keep_largest']} connected component(s) per class")
    if post.get("fill_holes"):
        steps.append("fill enclosed holes")
    if post.get("min_size_mm"):
        size = post["min_size_mm"]
        steps.append(f"remove objects smaller than {size} {unit}² (2D) / {unit}³ (3D)")
    if len(steps) == 1:
        steps.append("no further post-processing")
    return "; ".join(steps)


def _epochs(run: SegmentationRun) -> str:
    ran, planned = run.metrics.get("epochs_run"), run.metrics.get("planned_epochs")
    if ran is None:
        return str(planned if planned is not None else MISSING)
    if planned is not None and ran < planned:
        return f"{ran} of {planned} planned (stopped early)"
    return str(ran)


def run_settings(run: SegmentationRun, unit: str | None = None) -> list[tuple[str, str]]:
    """(label, value) pairs: model, data, patch size, loss, inference, post-processing, training.

    Args:
        unit: the distance unit of the surface Dice tolerance and object sizes (default: the
            one metrics.json records, see ``distance_unit``).
    """
    unit = unit or distance_unit(run.metrics)
    model, data, seg = run.section("model"), run.section("data"), run.section("segmentation")
    patch = seg.get("patch_size")
    tolerance = seg.get("surface_tolerance_mm")
    return [
        ("Architecture", str(model.get("name", MISSING))),
        ("Classes (label value)", ", ".join(f"{n} ({i})" for i, n in enumerate(run.class_names))),
        ("Data", f"{data.get('path', MISSING)} (layout: {data.get('layout') or 'automatic'})"),
        (
            "Patch size (voxels)",
            " \u00d7 ".join(map(str, patch)) if patch else "whole images (no patches)",
        ),
        ("Loss", str(seg.get("loss", MISSING))),
        (
            "Inference",
            f"sliding window, overlap {seg.get('overlap', MISSING)}; flip test-time augmentation: "
            f"{'yes' if seg.get('tta_flip') else 'no'}",
        ),
        (
            "Post-processing",
            describe_postprocess(seg.get("postprocess") or {}, len(run.class_names), unit),
        ),
        ("Surface Dice tolerance", MISSING if tolerance is None else f"{tolerance} {unit}"),
        ("Epochs", _epochs(run)),
        ("Best epoch (weights kept)", str(run.metrics.get("best_epoch", MISSING))),
        ("Training time", format_duration(run.metrics.get("train_seconds"))),
    ]


def split_sizes(run: SegmentationRun) -> list[tuple[str, str]]:
    """(split title, image count) in train, val, test order, from data_summary.json."""
    splits = (run.data_summary or {}).get("splits") or {}
    return [
        (SPLIT_TITLES[s].capitalize(), str(splits[s].get("n", MISSING)))
        for s in ("train", "val", "test")
        if isinstance(splits.get(s), dict)
    ]


def metric_tables(run: SegmentationRun, unit: str | None = None) -> list[dict[str, Any]]:
    """One table per split (test first, the headline) and class: a row per metric with
    mean ± sd, median, range over cases and the counts of finite, NaN and infinite values.

    Args:
        unit: the label of the distances (default: as ``run_settings``).
    """
    unit = unit or distance_unit(run.metrics)
    tables = []
    for split in reversed(run.split_names()):
        for class_name in run.evaluated_classes(split):
            metrics = run.metrics["splits"][split][class_name]
            rows = []
            for name in ordered_metrics(list(metrics)):
                cells = format_summary(metrics[name], digits_for(name))
                undefined = cells["n_nan"] not in ("0", MISSING) or cells["n_inf"] not in (
                    "0",
                    MISSING,
                )
                rows.append(
                    {
                        "label": segmentation_metric_label(name, unit),
                        "undefined": undefined,
                        **cells,
                    }
                )
            n = max((int(s.get("n") or 0) for s in metrics.values()), default=0)
            tables.append(
                {
                    "split": split,
                    "title": SPLIT_TITLES.get(split, split),
                    "class_name": class_name,
                    "n": n,
                    "rows": rows,
                }
            )
    return tables
