"""The plots/ folder of a run: the report's figures, drawn from predictions.csv and history.csv."""

from __future__ import annotations

from dataclasses import dataclass
from pathlib import Path
from typing import Any

import pandas as pd

from medlens.report.plots import (
    plot_confusion,
    plot_learning_curves,
    plot_pr,
    plot_reliability,
    plot_roc,
)
from medlens.report.trust_plots import plot_reliability_before_after, plot_risk_coverage
from medlens.run_folder.classification import RAW_PROB_PREFIX, RunFolder

SPLIT_TITLES = {"val": "validation", "test": "test", "train": "training"}
SPLIT_FIGURES = {
    "roc": "ROC curve",
    "pr": "Precision-recall curve",
    "confusion": "Confusion matrix",
    "reliability": "Reliability diagram",
}


@dataclass(frozen=True)
class RunFigure:
    """One written figure: its split (``None`` for learning curves), kind, title and PNG path."""

    split: str | None
    kind: str
    title: str
    path: Path


def _interval(evaluation: dict[str, Any], name: str) -> tuple[float, float] | None:
    entry = evaluation.get("metrics", {}).get(name, {})
    low, high = entry.get("ci_low"), entry.get("ci_high")
    return None if low is None or high is None else (float(low), float(high))


def _trust_figures(
    run: RunFolder, y: Any, raw: Any, prob: Any, pred: Any, split: str
) -> list[RunFigure]:
    """Calibration before and after, and the risk-coverage curve, of one split."""
    label = f"{SPLIT_TITLES.get(split, split)}, n = {len(y)}"
    method = str((run.metrics.get("trust") or {}).get("calibration", {}).get("method", "none"))
    calibration = run.path / "plots" / f"calibration_{split}.png"
    coverage = run.path / "plots" / f"risk_coverage_{split}.png"
    title = f"Calibration before and after ({label})"
    plot_reliability_before_after(y, raw, prob, calibration, method, title)
    coverage_title = f"Risk-coverage curve ({label})"
    plot_risk_coverage(y, pred, prob, coverage, coverage_title)
    return [
        RunFigure(split, "calibration", title, calibration),
        RunFigure(split, "risk_coverage", coverage_title, coverage),
    ]


def write_figures(
    run: RunFolder, predictions: pd.DataFrame, history: pd.DataFrame | None
) -> list[RunFigure]:
    """Write ``plots/{roc,pr,confusion,reliability}_<split>.png`` and ``plots/learning_curves.png``,
    and for a run that recorded its probabilities before calibration
    ``plots/{calibration,risk_coverage}_<split>.png``.

    Splits come from metrics.json (validation first, test last); a split without rows in
    predictions.csv gets no figures.
    """
    plots = run.path / "plots"
    names = run.class_names
    prob_columns = [f"prob_{name}" for name in names]
    figures: list[RunFigure] = []
    for split in run.split_names():
        rows = predictions[predictions["split"] == split]
        if rows.empty:
            continue
        evaluation = run.metrics["splits"][split]
        level = float(evaluation.get("ci_level", 0.95))
        label = SPLIT_TITLES.get(split, split)
        y, prob, pred = (
            rows["label"].to_numpy(),
            rows[prob_columns].to_numpy(float),
            rows["pred"].to_numpy(),
        )
        titles = {
            kind: f"{what} ({label}, n = {len(rows)})" for kind, what in SPLIT_FIGURES.items()
        }
        paths = {kind: plots / f"{kind}_{split}.png" for kind in SPLIT_FIGURES}
        plot_roc(y, prob, names, paths["roc"], _interval(evaluation, "auc"), level, titles["roc"])
        ap_ci = _interval(evaluation, "average_precision")
        plot_pr(y, prob, names, paths["pr"], ap_ci, level, titles["pr"])
        plot_confusion(y, pred, names, paths["confusion"], titles["confusion"])
        plot_reliability(y, prob, paths["reliability"], title=titles["reliability"])
        figures += [RunFigure(split, kind, titles[kind], paths[kind]) for kind in SPLIT_FIGURES]
        raw_columns = [f"{RAW_PROB_PREFIX}{name}" for name in names]
        if all(c in rows.columns for c in raw_columns):
            figures += _trust_figures(run, y, rows[raw_columns].to_numpy(float), prob, pred, split)
    if history is not None and not history.empty:
        best = run.metrics.get("best_epoch")
        path = plot_learning_curves(history, plots / "learning_curves.png", best_epoch=best)
        figures.append(RunFigure(None, "learning_curves", "Learning curves", path))
    return figures
