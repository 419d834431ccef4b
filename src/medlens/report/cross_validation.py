"""``cv_report.html`` of a cross-validation folder: the per-fold test metrics with their mean
and sd, a bar plot of every metric per fold, and links to the fold runs' own reports,
rendered from ``templates/cross_validation.html``."""

from __future__ import annotations

import math
from pathlib import Path
from typing import Any

import numpy as np
import pandas as pd

import medlens
from medlens.io_utils import write_atomic
from medlens.report.plots import figure_png, new_figure, show_message
from medlens.report.rendering import png_data_uri, template_environment

#: The file name of the page in the cross-validation folder.
CV_REPORT = "cv_report.html"
_PLOT_DPI = 110


def _cell(value: Any) -> str:
    """A table cell: a dash where the value is missing (``None``, NaN, or ``pd.NA``, as in
    the ``n_test`` column of the mean and sd rows), floats to 3 decimals."""
    if value is None or value is pd.NA or (isinstance(value, float) and math.isnan(value)):
        return "\u2014"
    return f"{value:.3f}" if isinstance(value, float) else str(value)


def _bar_plot(summary: dict[str, Any]) -> str:
    """Grouped bars (one per fold) of every metric, as a PNG data URI."""
    names = [n for n, m in summary["metrics"].items() if m["n_defined"] and "_at_0.5" not in n]
    k = summary["folds"]
    width = 0.8 / k
    fig, ax = new_figure(max(6.0, 0.9 * len(names)), 3.6)
    if not names:
        show_message(ax, "no test metric is defined on any fold")
        return png_data_uri(figure_png(fig, dpi=_PLOT_DPI))
    x = np.arange(len(names))
    for fold in range(k):
        values = [summary["metrics"][n]["values"][fold] for n in names]
        heights = [np.nan if v is None else v for v in values]
        ax.bar(x - 0.4 + width * (fold + 0.5), heights, width, label=f"fold {fold}")
    ax.set_xticks(x, names, rotation=30, ha="right")
    ax.set_ylabel("test value")
    ax.set_ylim(0, 1.05)
    ax.legend(
        ncols=min(k, 10),
        fontsize="small",
        loc="lower center",
        bbox_to_anchor=(0.5, 1.0),
        frameon=False,
    )
    return png_data_uri(figure_png(fig, dpi=_PLOT_DPI))


def render_cv_report(summary: dict[str, Any], table: pd.DataFrame, name: str) -> str:
    """The cross-validation page as HTML text.

    Args:
        summary: the document of ``cv_summary.json`` (``folds``, ``fold_dirs``, and per
            metric its ``values`` per fold, ``mean``, ``sd`` and ``n_defined``).
        table: the rows of ``cv_summary.csv``: one per fold, then the ``mean`` and ``sd``
            rows (column ``fold``).
        name: the cross-validated config's name.
    """
    rows = [
        {
            "cls": "stat" if str(record["fold"]) in ("mean", "sd") else "",
            "cells": [_cell(v) for v in record.values()],
        }
        for record in table.to_dict("records")
    ]
    return (
        template_environment()
        .get_template("cross_validation.html")
        .render(
            title=f"medlens cross-validation: {name}",
            version=medlens.__version__,
            folds=summary["folds"],
            columns=list(table.columns),
            rows=rows,
            plot=_bar_plot(summary),
            fold_dirs=[Path(d).name for d in summary["fold_dirs"]],
        )
    )


def write_cv_report(
    out_dir: str | Path, summary: dict[str, Any], table: pd.DataFrame, name: str
) -> Path:
    """Write ``cv_report.html`` into the cross-validation folder ``out_dir`` (atomically);
    the arguments are those of ``render_cv_report``. Returns its path."""
    return write_atomic(Path(out_dir) / CV_REPORT, render_cv_report(summary, table, name))
