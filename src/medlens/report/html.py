"""``report.html``: the one self-contained page a person reads about a run.

Figures are embedded as base64 PNG and the CSS is inline, so the page can be mailed or
archived on its own and loads nothing from the network.
"""

from __future__ import annotations

from datetime import datetime
from pathlib import Path
from typing import Any

import medlens
from medlens.io_utils import write_atomic
from medlens.report.figures import SPLIT_TITLES, RunFigure, write_figures
from medlens.report.formatting import (
    MISSING,
    describe_threshold,
    format_ci,
    format_duration,
    format_level,
    format_value,
    metric_label,
    transform_steps,
)
from medlens.report.limitations import limitations
from medlens.report.rendering import png_data_uri, template_environment
from medlens.report.trust_section import trust_context
from medlens.run_folder.classification import RunFolder, read_run_folder
from medlens.run_folder.sections import HTML, read_sections, section_notice


def _metric_rows(run: RunFolder, splits: list[str]) -> list[dict[str, Any]]:
    names: list[str] = []
    for split in splits:
        names += [n for n in run.metrics["splits"][split]["metrics"] if n not in names]
    rows = []
    for name in names:
        cells = {}
        for split in splits:
            entry = run.metrics["splits"][split]["metrics"].get(name, {})
            cells[split] = {
                "value": format_value(entry.get("value")),
                "ci": format_ci(entry.get("ci_low"), entry.get("ci_high")),
                "note": entry.get("note", ""),
            }
        rows.append({"label": metric_label(name, len(run.class_names)), "cells": cells})
    return rows


def _split_details(run: RunFolder, split: str) -> dict[str, Any]:
    evaluation = run.metrics["splits"][split]
    names = run.class_names
    per_class = [
        {
            "name": name,
            "precision": format_value(scores.get("precision")),
            "recall": format_value(scores.get("recall")),
            "f1": format_value(scores.get("f1")),
            "support": scores.get("support", MISSING),
        }
        for name, scores in evaluation.get("per_class", {}).items()
    ]
    at_half = [
        {"label": metric_label(name), "value": format_value(value)}
        for name, value in evaluation.get("metrics_at_0.5", {}).items()
    ]
    matrix = evaluation.get("confusion_matrix")
    confusion = (
        [{"name": names[i], "counts": row} for i, row in enumerate(matrix)] if matrix else []
    )
    return {
        "name": split,
        "title": SPLIT_TITLES.get(split, split),
        "n": evaluation["n"],
        "per_class": per_class,
        "at_half": at_half,
        "confusion": confusion,
    }


def _data_summary(run: RunFolder) -> dict[str, Any]:
    summary = run.data_summary or {}
    splits = summary.get("splits") or {
        split: {"n": e["n"], "class_counts": e.get("class_counts", {})}
        for split, e in run.metrics["splits"].items()
    }
    order = {"train": 0, "val": 1, "test": 2}
    rows = []
    for split in sorted(splits, key=lambda s: order.get(s, 3)):
        counts = splits[split].get("class_counts", {})
        n = splits[split].get("n")
        rows.append(
            {
                "title": SPLIT_TITLES.get(split, split),
                "n": MISSING if n is None else n,
                "counts": [
                    {
                        "value": counts.get(name, MISSING),
                        "share": f"{100 * counts[name] / n:.1f}%" if n and name in counts else "",
                    }
                    for name in run.class_names
                ],
            }
        )
    return {
        "recorded": run.data_summary is not None,
        "source": summary.get("source") or MISSING,
        "rows": rows,
        "skipped": [
            {"file": str(s.get("file", MISSING)), "reason": str(s.get("reason", MISSING))}
            if isinstance(s, dict)
            else {"file": str(s), "reason": MISSING}
            for s in summary.get("skipped_files") or []
        ],
    }


def _model(run: RunFolder) -> dict[str, str]:
    model = run.config.get("model", {}) if isinstance(run.config.get("model"), dict) else {}
    train = run.config.get("train", {}) if isinstance(run.config.get("train"), dict) else {}
    if run.metrics.get("kind") == "ensemble":  # trains nothing: its members were trained
        pretrained = "its members' trained weights (the ensemble trains no network)"
        strategy = f"none: combines its members' probabilities ({model.get('strategy', MISSING)})"
    else:
        pretrained = str(model.get("pretrained") or "none (random initialisation)")
        strategy = str(model.get("strategy", MISSING))
    return {
        "name": str(model.get("name", MISSING)),
        "pretrained": pretrained,
        "strategy": strategy,
        "epochs": str(train.get("epochs", MISSING)),
        "best_epoch": str(run.metrics.get("best_epoch", MISSING)),
        "train_time": format_duration(run.metrics.get("train_seconds")),
    }


def _figures(figures: list[RunFigure]) -> list[dict[str, Any]]:
    """Test figures first (the headline), then validation, then the learning curves."""
    order = {"test": 0, "val": 1, None: 3}
    return [
        {
            "title": f.title,
            "split": f.split,
            "file": f"plots/{f.path.name}",
            "src": png_data_uri(f.path),
        }
        for f in sorted(figures, key=lambda f: order.get(f.split, 2))
    ]


def extra_sections(run_dir: Path) -> list[dict[str, str]]:
    """HTML fragments that later verbs (``medlens audit``, ``medlens explain``) left in
    ``sections/<id>.html``. A fragment is embedded as written only while it has the hash
    medlens recorded when it wrote it (``run_folder.sections``); any other, from a folder
    changed or made elsewhere, is replaced by a notice and its markup never reaches the page.

    Returns:
        ``{"id", "html", "notice"}`` per fragment: ``html`` (embedded unescaped) for a
        verified fragment, else an empty ``html`` and a plain-text ``notice`` (escaped by the
        template).
    """
    return [
        {
            "id": f.section_id,
            "html": f.text or "",
            "notice": "" if f.verified else section_notice(f),
        }
        for f in read_sections(run_dir, HTML)
    ]


def render_report(run: RunFolder, figures: list[RunFigure]) -> str:
    """The report page of ``run`` as HTML text, with ``figures`` embedded."""
    splits = run.split_names()
    level = run.metrics["splits"][splits[-1]].get("ci_level", 0.95)
    k = len(run.class_names)
    context = {
        "title": f"medlens report: {run.name}",
        "run_name": run.name,
        "finished": run.finished.strftime("%Y-%m-%d %H:%M"),
        "generated": datetime.now().strftime("%Y-%m-%d %H:%M"),
        "version": medlens.__version__,
        "task": f"{'binary' if k == 2 else f'{k}-class'} classification",
        "class_names": run.class_names,
        "model": _model(run),
        "data": _data_summary(run),
        "threshold": format_value(run.threshold, 4) if k == 2 else "argmax",
        "threshold_method": run.threshold_method or MISSING,
        "threshold_text": describe_threshold(run.threshold_method, run.threshold, run.class_names),
        "ci_level": format_level(level),
        "splits": [{"name": s, "title": SPLIT_TITLES.get(s, s)} for s in splits],
        "metric_rows": _metric_rows(run, splits),
        "details": [_split_details(run, s) for s in reversed(splits)],
        "figures": _figures(figures),
        "transforms": transform_steps(run.preprocessing),
        "preprocessing_recorded": run.preprocessing is not None,
        "trust": trust_context(run),
        "limitations": limitations(run),
        "audit_run": run.audit is not None,
        "extra_sections": extra_sections(run.path),
        "has_model_card": (run.path / "model_card.md").is_file(),
    }
    return template_environment().get_template("report.html").render(**context)


def write_report(run_dir: str | Path) -> Path:
    """Draw ``plots/`` and write ``report.html`` for the run folder ``run_dir``.

    Returns:
        The path of report.html (written atomically).

    Raises:
        InputError: naming the run-folder file that is missing or malformed (metrics.json,
            predictions.csv, ...).

    Example:
        >>> write_report("runs/pneumonia-resnet18")  # doctest: +SKIP
        PosixPath('runs/pneumonia-resnet18/report.html')
    """
    run = read_run_folder(run_dir)
    figures = write_figures(run, run.predictions(), run.history())
    return write_atomic(run.path / "report.html", render_report(run, figures))
