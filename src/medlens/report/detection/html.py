"""``report.html`` of a detection run folder: per-class AP with CIs, precision-recall and FROC
curves, the count table, and the best, median and worst test images with their boxes.

Self-contained like the other reports: figures embedded as base64 PNG, CSS inline.
"""

from __future__ import annotations

from datetime import datetime
from pathlib import Path
from typing import Any

import medlens
from medlens.io_utils import write_atomic
from medlens.report.detection.figures import count_scatter, froc_plot, learning_curve, pr_curves
from medlens.report.detection.overlays import GROUPS, draw_overlays
from medlens.report.detection.summary import (
    PER_CLASS_LABELS,
    class_rows,
    froc_rows,
    limitations,
    overall_rows,
    settings,
    split_sizes,
)
from medlens.report.formatting import MISSING, transform_steps
from medlens.report.rendering import png_data_uri, template_environment
from medlens.run_folder import layout
from medlens.run_folder.detection import DetectionRun, read_detection_run

GROUP_TITLES = {"best": "Best F1", "median": "Median F1", "worst": "Worst F1"}


def _figure(figure: Any) -> dict[str, str] | None:
    if figure is None:
        return None
    return {
        "title": figure.title,
        "file": f"plots/{figure.path.name}",
        "src": png_data_uri(figure.path),
    }


def render_detection_report(run: DetectionRun) -> str:
    """The report page of a detection ``run`` as HTML text (figures drawn into ``plots/``)."""
    plots = run.path / layout.PLOTS
    test = run.split("test") or {}
    figures = [
        pr_curves(test, plots / "pr_curves.png") if test else None,
        froc_plot(test, plots / "froc.png") if test else None,
        count_scatter(run.table(layout.COUNTS), plots / "counts.png"),
        learning_curve(run.table(layout.HISTORY), plots / "learning_curve.png"),
    ]
    overlays = draw_overlays(run, plots)
    groups = []
    for group in GROUPS:
        items = [
            {"image_id": i, "f1": f"{f1:.3f}", "file": f"plots/{p.name}", "src": png_data_uri(p)}
            for g, i, f1, p in overlays.items
            if g == group
        ]
        if items:
            groups.append({"title": GROUP_TITLES[group], "figures": items})
    context = {
        "title": f"medlens report: {run.name}",
        "run_name": run.name,
        "finished": run.finished.strftime("%Y-%m-%d %H:%M"),
        "generated": datetime.now().strftime("%Y-%m-%d %H:%M"),
        "version": medlens.__version__,
        "classes": ", ".join(run.class_names),
        "class_names": run.class_names,
        "settings": settings(run),
        "source": (run.data_summary or {}).get("source") or MISSING,
        "sizes": split_sizes(run),
        "skipped": (run.data_summary or {}).get("skipped_objects") or [],
        "overall": overall_rows(run),
        "ci_level": f"{100 * float(test.get('ci_level', 0.95)):g}%",
        "n_bootstrap": test.get("n_bootstrap", 0),
        "per_class_labels": [PER_CLASS_LABELS[k] for k in PER_CLASS_LABELS],
        "per_class": class_rows(run),
        "froc": froc_rows(run),
        "figures": [_figure(f) for f in figures if f is not None],
        "overlays": groups,
        "notes": overlays.notes,
        "transforms": transform_steps(run.preprocessing),
        "limitations": limitations(run),
        "has_model_card": (run.path / layout.MODEL_CARD).is_file(),
    }
    return template_environment().get_template("detection.html").render(**context)


def write_detection_report(run_dir: str | Path) -> Path:
    """Draw ``plots/`` and write ``report.html`` for the detection run folder ``run_dir``.

    Raises:
        InputError: naming the run-folder file that is missing or malformed.
    """
    run = read_detection_run(run_dir)
    return write_atomic(run.path / layout.REPORT, render_detection_report(run))
