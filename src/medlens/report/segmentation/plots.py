"""Per-case spread of a segmentation run: box and strip plots of Dice and HD95."""

from __future__ import annotations

from collections.abc import Sequence
from pathlib import Path

import numpy as np
import pandas as pd
from matplotlib.axes import Axes

from medlens.errors import InputError
from medlens.report.figures import SPLIT_TITLES
from medlens.report.plots import new_figure, save_figure, show_message
from medlens.report.segmentation.formatting import DISTANCE_METRICS, INFINITY, SHORT_LABELS

#: The metrics drawn side by side: overlap, then boundary distance.
DISTRIBUTION_METRICS = ("dice", "hausdorff_distance_95")
_JITTER = 0.12


def _group_label(split: str, class_name: str, values: np.ndarray, several_classes: bool) -> str:
    finite = int(np.isfinite(values).sum())
    nan, inf = int(np.isnan(values).sum()), int(np.isinf(values).sum())
    head = SPLIT_TITLES.get(split, split) + (f"\n{class_name}" if several_classes else "")
    text = f"{head}\nn = {finite}"
    if nan or inf:
        text += f"\n({nan} NaN, {inf} {INFINITY} not drawn)"
    return text


def _draw(ax: Axes, groups: list[tuple[str, np.ndarray]], ylabel: str, seed: int) -> None:
    rng = np.random.default_rng(seed)
    drawn = [(i, v[np.isfinite(v)]) for i, (_, v) in enumerate(groups)]
    boxes = [(i, v) for i, v in drawn if v.size]
    if not boxes:
        show_message(ax, f"{ylabel}: no finite value in any case")
        return
    ax.boxplot(
        [v for _, v in boxes],
        positions=[i for i, _ in boxes],
        widths=0.5,
        showfliers=False,
        medianprops={"color": "black"},
    )
    for i, values in boxes:
        ax.scatter(
            i + rng.uniform(-_JITTER, _JITTER, values.size),
            values,
            s=14,
            alpha=0.7,
            color="#0072B2",
            zorder=3,
        )
    ax.set_xticks(range(len(groups)), [label for label, _ in groups], fontsize="small")
    ax.set_xlim(-0.7, len(groups) - 0.3)
    ax.set_ylabel(ylabel)


def plot_case_distribution(
    per_case: pd.DataFrame,
    path: str | Path,
    splits: Sequence[str],
    class_names: Sequence[str],
    distance_unit: str = "mm",
    title: str | None = None,
) -> Path:
    """Box plot with every case as a dot, per split and class: Dice (left) and HD95 (right).

    NaN and infinite values cannot be drawn; each group's label says how many were left out.

    Args:
        per_case: one row per case, split and class (``segmentation_metrics.csv``).
        splits: the splits to draw, in order; class_names: the classes, in order.
        distance_unit: the unit of HD95 (mm, or pixels for images without a spacing).

    Raises:
        InputError: a column ``split``, ``class`` or a drawn metric is missing.
    """
    missing = [c for c in ("split", "class", *DISTRIBUTION_METRICS) if c not in per_case.columns]
    if missing:
        raise InputError("segmentation_metrics.csv", f"missing column(s) {', '.join(missing)}")
    several = len(class_names) > 1
    fig, axes = new_figure(5.0 + 1.6 * len(splits) * len(class_names), 4.8, ncols=2)
    for m, (ax, metric) in enumerate(zip(axes, DISTRIBUTION_METRICS, strict=True)):
        groups = []
        for split in splits:
            for name in class_names:
                rows = per_case[(per_case["split"] == split) & (per_case["class"] == name)]
                values = rows[metric].to_numpy(dtype=float)
                groups.append((_group_label(split, name, values, several), values))
        unit = f" ({distance_unit})" if metric in DISTANCE_METRICS else ""
        _draw(ax, groups, SHORT_LABELS.get(metric, metric) + unit, seed=m)
        if metric == "dice":
            ax.set_ylim(-0.03, 1.03)
    if title:
        fig.suptitle(title)
    return save_figure(fig, path)
