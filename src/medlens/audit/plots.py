"""The audit's figures: per-group rates with intervals, and ROC curves per group.

Built on ``matplotlib.figure.Figure`` with an Agg canvas (never pyplot), written atomically
as PNG, like the report's figures.
"""

from __future__ import annotations

import io
from pathlib import Path

import numpy as np
import pandas as pd
from matplotlib.backends.backend_agg import FigureCanvasAgg
from matplotlib.figure import Figure
from sklearn.metrics import RocCurveDisplay

from medlens.audit.group_metrics import METRIC_TITLES
from medlens.audit.result import TOO_SMALL, AuditResult
from medlens.io_utils import write_atomic

DPI = 120

#: Metrics drawn as bars, one bar per group within each metric.
BAR_METRICS = ("tpr", "fpr", "auc")


def _save(fig: Figure, path: Path) -> Path:
    buffer = io.BytesIO()
    fig.savefig(buffer, format="png", dpi=DPI)
    fig.clear()
    return write_atomic(path, buffer.getvalue())


def plot_group_rates(result: AuditResult, attribute: str, path: str | Path) -> Path:
    """Bar chart of TPR, FPR and AUC per group of ``attribute`` with interval error bars.

    Groups too small to compare are hatched and labelled; an undefined value draws no bar.
    """
    entries = [g for g in result.groups if g.attribute == attribute]
    width = 0.8 / max(len(entries), 1)
    fig = Figure(figsize=(max(5.0, 1.2 * len(entries) + 3.0), 4.2), layout="constrained")
    FigureCanvasAgg(fig)
    ax = fig.subplots()
    x = np.arange(len(BAR_METRICS))
    for k, entry in enumerate(entries):
        est = [entry.metrics[m] for m in BAR_METRICS]
        values = np.array([e.value for e in est])
        low = np.nan_to_num(values - np.array([e.ci_low for e in est]), nan=0.0).clip(min=0)
        high = np.nan_to_num(np.array([e.ci_high for e in est]) - values, nan=0.0).clip(min=0)
        small = entry.status == TOO_SMALL
        label = f"{entry.group} (n={entry.n}{', too small' if small else ''})"
        ax.bar(
            x + (k - (len(entries) - 1) / 2) * width,
            np.nan_to_num(values, nan=0.0),
            width,
            yerr=np.vstack([low, high]),
            capsize=3,
            label=label,
            hatch="//" if small else None,
            alpha=0.6 if small else 1.0,
        )
    ax.set_xticks(x, [METRIC_TITLES[m] for m in BAR_METRICS])
    ax.set_ylim(0, 1.05)
    ax.set_ylabel("value")
    level = f"{100 * result.ci_level:g}%"
    ax.set_title(f"{attribute}: rates by group ({level} bootstrap CI)")
    fig.legend(loc="outside lower center", ncols=min(len(entries), 4), fontsize="small")
    return _save(fig, Path(path))


def plot_group_roc(
    y: np.ndarray, p_pos: np.ndarray, groups: pd.Series, attribute: str, path: str | Path
) -> Path:
    """ROC curve of each group of ``attribute`` on one axes (scikit-learn's RocCurveDisplay).

    A group lacking either class has no ROC curve and is named in the title instead.
    """
    fig = Figure(figsize=(5.0, 4.6), layout="constrained")
    FigureCanvasAgg(fig)
    ax = fig.subplots()
    labels = groups.astype(str).to_numpy()
    skipped = []
    drawn = False
    for name in (
        [str(c) for c in groups.cat.categories] if hasattr(groups, "cat") else sorted(set(labels))
    ):
        mask = labels == name
        if np.unique(y[mask]).size < 2:
            skipped.append(name)
            continue
        RocCurveDisplay.from_predictions(
            y[mask], p_pos[mask], name=f"{name} (n={int(mask.sum())})", ax=ax,
            plot_chance_level=not drawn,
        )  # fmt: skip
        drawn = True
    title = f"ROC by {attribute}"
    if skipped:
        title += f"\nno curve (one class only): {', '.join(skipped)}"
    ax.set_title(title)
    return _save(fig, Path(path))
