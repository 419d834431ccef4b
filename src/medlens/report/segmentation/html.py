"""``report.html`` and ``model_card.md`` of a segmentation run folder.

The page is self-contained like the classification report: figures are embedded as base64
PNG, the CSS is inline. Overlays of the best, median and worst test cases are drawn from the
data folder named in config.yaml and the masks in ``masks/``; when either is gone the page
says so and shows everything else.
"""

from __future__ import annotations

from datetime import datetime
from pathlib import Path
from typing import Any

import pandas as pd

import medlens
from medlens.io_utils import write_atomic
from medlens.report.formatting import MISSING, transform_steps
from medlens.report.rendering import png_data_uri, template_environment
from medlens.report.segmentation.calibration import segmentation_calibration
from medlens.report.segmentation.cases import GROUPS
from medlens.report.segmentation.figures import SegmentationFigures, write_segmentation_figures
from medlens.report.segmentation.formatting import (
    SHORT_LABELS,
    digits_for,
    distance_unit,
    format_number,
    ordered_metrics,
)
from medlens.report.segmentation.limitations import segmentation_limitations
from medlens.report.segmentation.model_card import write_segmentation_model_card
from medlens.report.segmentation.summary import metric_tables, run_settings, split_sizes
from medlens.run_folder.segmentation import (
    PER_CASE_COLUMNS,
    SegmentationRun,
    read_segmentation_run,
)

GROUP_TITLES = {"best": "Best Dice", "median": "Median Dice", "worst": "Worst Dice"}
_NOT_METRICS = (*PER_CASE_COLUMNS, "label")


def _per_case(
    table: pd.DataFrame | None, figures: SegmentationFigures, unit: str
) -> dict[str, Any]:
    """The test split's per-case table: one row per case and class, shown cases marked."""
    if table is None:
        return {"columns": [], "rows": []}
    rows = table[table["split"] == "test"]
    names = ordered_metrics([c for c in table.columns if c not in _NOT_METRICS])
    columns = [SHORT_LABELS.get(n, n) + (f" ({unit})" if digits_for(n) == 2 else "") for n in names]
    groups = {r.case_id: g for g, ranked in figures.shown.items() for r in ranked}
    body = []
    for record in rows.sort_values(["case_id", "class"]).to_dict("records"):
        values = []
        for name in names:
            value = record[name]
            counted = name.endswith("_voxels")
            values.append(
                str(int(value))
                if counted and pd.notna(value)
                else format_number(value, digits_for(name))
            )
        body.append(
            {
                "case_id": record["case_id"],
                "class_name": record["class"],
                "group": groups.get(record["case_id"], ""),
                "cells": values,
            }
        )
    return {"columns": columns, "rows": body}


def _overlay_groups(figures: SegmentationFigures) -> list[dict[str, Any]]:
    groups = []
    for group in GROUPS:
        items = [
            {
                "case_id": o.case_id,
                "dice": format_number(o.dice),
                "file": f"plots/{o.path.name}",
                "src": png_data_uri(o.path),
            }
            for o in figures.overlays
            if o.group == group
        ]
        if items:
            groups.append({"title": GROUP_TITLES[group], "figures": items})
    return groups


def _figure(figure: Any) -> dict[str, str] | None:
    if figure is None:
        return None
    return {
        "title": figure.title,
        "file": f"plots/{figure.path.name}",
        "src": png_data_uri(figure.path),
    }


def render_segmentation_report(
    run: SegmentationRun, per_case: pd.DataFrame | None, figures: SegmentationFigures
) -> str:
    """The report page of a segmentation ``run`` as HTML text, with ``figures`` embedded."""
    shown = [
        {"group": g, "cases": ", ".join(f"{r.case_id} ({format_number(r.dice)})" for r in ranked)}
        for g, ranked in figures.shown.items()
        if ranked
    ]
    unit = distance_unit(run.metrics, figures.facts.physical_spacing)
    context = {
        "title": f"medlens report: {run.name}",
        "run_name": run.name,
        "finished": run.finished.strftime("%Y-%m-%d %H:%M"),
        "generated": datetime.now().strftime("%Y-%m-%d %H:%M"),
        "version": medlens.__version__,
        "classes": ", ".join(run.class_names[1:]),
        "settings": run_settings(run, unit),
        "source": (run.data_summary or {}).get("source") or MISSING,
        "sizes": split_sizes(run),
        "distance_unit": unit,
        "metric_tables": metric_tables(run, unit),
        "calibration": segmentation_calibration(run),
        "per_case": _per_case(per_case, figures, unit),
        "curves": _figure(figures.curves),
        "distribution": _figure(figures.distribution),
        "shown": shown,
        "overlays": _overlay_groups(figures),
        "notes": figures.notes,
        "transforms": transform_steps(run.preprocessing),
        "preprocessing_recorded": run.preprocessing is not None,
        "limitations": segmentation_limitations(run, figures.facts),
        "has_model_card": (run.path / "model_card.md").is_file(),
    }
    return template_environment().get_template("segmentation.html").render(**context)


def write_segmentation_report(run_dir: str | Path) -> Path:
    """Draw ``plots/`` and write ``report.html`` for the segmentation run folder ``run_dir``.

    Overlays need the data folder of config.yaml and the predicted masks in ``masks/``; when
    either is missing the page says so in a sentence and shows everything else.

    Returns:
        The path of report.html (written atomically).

    Raises:
        InputError: naming the run-folder file that is missing or malformed (metrics.json,
            segmentation_metrics.csv, history.csv, ...).

    Example:
        >>> write_segmentation_report("runs/drive-unet")  # doctest: +SKIP
        PosixPath('runs/drive-unet/report.html')
    """
    run = read_segmentation_run(run_dir)
    per_case = run.per_case()
    figures = write_segmentation_figures(run, per_case, run.history())
    html = render_segmentation_report(run, per_case, figures)
    return write_atomic(run.path / "report.html", html)


__all__ = [
    "render_segmentation_report",
    "write_segmentation_model_card",
    "write_segmentation_report",
]
