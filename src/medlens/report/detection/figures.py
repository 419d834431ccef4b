"""The figures of a detection report: precision-recall per class at IoU 0.5, FROC, the
per-image counts, and the validation mAP@0.5 over the epochs."""

from __future__ import annotations

from dataclasses import dataclass
from pathlib import Path
from typing import Any

import numpy as np
import pandas as pd

from medlens.report.plots import new_figure, save_figure, show_message


@dataclass(frozen=True)
class Figure:
    title: str
    path: Path


def pr_curves(split: dict[str, Any], path: Path) -> Figure:
    """Interpolated precision against recall at IoU 0.5, one line per class (COCO's 101
    recall points), with each class's AP@0.5 in the legend."""
    fig, ax = new_figure()
    curves = split.get("curves") or {}
    recall = np.asarray(curves.get("recall") or [])
    drawn = False
    for name, precision in (curves.get("precision_at_iou50") or {}).items():
        values = np.asarray(precision, dtype=float)
        if not np.isfinite(values).all():
            continue
        ap = split["per_class"][name]["ap50"]["value"]
        ax.plot(recall, values, label=f"{name} (AP@0.5 {ap:.3f})")
        drawn = True
    if not drawn:
        show_message(ax, "no class has reference objects in this split")
    else:
        ax.set(xlabel="Recall", ylabel="Precision", xlim=(0, 1), ylim=(0, 1.02))
        ax.legend(loc="lower left", fontsize="small")
    return Figure("Precision-recall at IoU 0.5 (test)", save_figure(fig, path))


def froc_plot(split: dict[str, Any], path: Path) -> Figure:
    """Sensitivity against false positives per image (log axis), all classes pooled, with the
    sensitivity read at each fixed rate marked."""
    fig, ax = new_figure()
    froc = split.get("froc") or {}
    curve = froc.get("curve") or {}
    fpi = np.asarray(curve.get("fps_per_image") or [], dtype=float)
    sens = np.asarray(curve.get("sensitivity") or [], dtype=float)
    if fpi.size < 2 or not np.isfinite(sens).all():
        show_message(ax, "no FROC: no reference objects or no detections")
    else:
        keep = fpi > 0
        ax.step(fpi[keep], sens[keep], where="post", label="all classes")
        at = np.asarray(froc.get("fps_per_image") or [], dtype=float)
        ax.plot(at, froc.get("sensitivity"), "o", label="read at")
        ax.set_xscale("log")
        ax.set(xlabel="False positives per image", ylabel="Sensitivity", ylim=(0, 1.02))
        ax.legend(loc="lower right", fontsize="small")
    return Figure("FROC (test)", save_figure(fig, path))


def count_scatter(counts: pd.DataFrame | None, path: Path) -> Figure | None:
    """Detected against reference objects per test image, one colour per class."""
    if counts is None:
        return None
    test = counts[counts["split"] == "test"]
    if test.empty:
        return None
    fig, ax = new_figure()
    top = float(max(test["reference"].max(), test["predicted"].max(), 1))
    ax.plot([0, top], [0, top], color="grey", linewidth=0.8)
    for name, group in test.groupby("class"):
        ax.plot(group["reference"], group["predicted"], "o", alpha=0.6, label=str(name))
    ax.set(xlabel="Reference objects per image", ylabel="Findings per image")
    ax.legend(loc="upper left", fontsize="small")
    return Figure(
        "Counts per test image (findings at each class's threshold)", save_figure(fig, path)
    )


def learning_curve(history: pd.DataFrame | None, path: Path) -> Figure | None:
    """Training loss and validation mAP@0.5 per epoch."""
    if history is None or "val_map50" not in history.columns:
        return None
    fig, ax = new_figure()
    ax.plot(history["epoch"], history["train_loss"], label="training loss")
    ax.set(xlabel="Epoch", ylabel="Training loss")
    twin = ax.twinx()
    twin.plot(history["epoch"], history["val_map50"], color="#E69F00", label="validation mAP@0.5")
    twin.set(ylabel="Validation mAP@0.5", ylim=(0, 1.02))
    ax.legend(loc="upper left", fontsize="small")
    twin.legend(loc="upper right", fontsize="small")
    return Figure("Learning curve", save_figure(fig, path))
