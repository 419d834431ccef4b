"""cv_report.html of a cross-validation folder: rendered from
``report/templates/cross_validation.html`` inside the shared frame."""

from __future__ import annotations

import inspect
import re
from pathlib import Path

import pandas as pd

import medlens.commands.cv
import medlens.report.cross_validation
from medlens.report.cross_validation import write_cv_report

TEMPLATES = Path(medlens.report.cross_validation.__file__).parent / "templates"
DATA_URI = re.compile(r'src="data:image/png;base64,[A-Za-z0-9+/=]+"')


def _summary(out: Path) -> tuple[dict, pd.DataFrame]:
    metrics = {
        "auc": {"values": [0.8, 0.9], "mean": 0.85, "sd": 0.0707, "n_defined": 2},
        "sensitivity": {"values": [None, 0.5], "mean": 0.5, "sd": None, "n_defined": 1},
        "accuracy_at_0.5": {"values": [0.7, 0.6], "mean": 0.65, "sd": 0.0707, "n_defined": 2},
    }
    summary = {
        "config": "hc",
        "folds": 2,
        "fold_dirs": [str(out / "fold_0"), str(out / "fold_1")],
        "n_test": [50, 49],
        "thresholds": [0.41, 0.52],
        "metrics": metrics,
    }
    rows = [
        {"fold": str(k), "n_test": summary["n_test"][k], "threshold": summary["thresholds"][k],
         **{n: m["values"][k] for n, m in metrics.items()}}
        for k in range(2)
    ] + [{"fold": s, **{n: m[s] for n, m in metrics.items()}} for s in ("mean", "sd")]  # fmt: skip
    table = pd.DataFrame(rows)
    table["n_test"] = table["n_test"].astype("Int64")
    return summary, table


def test_the_page_comes_from_the_templates_folder_in_the_shared_frame(tmp_path: Path) -> None:
    assert (TEMPLATES / "cross_validation.html").is_file()
    assert '{% extends "base.html" %}' in (TEMPLATES / "cross_validation.html").read_text()
    for module in (medlens.report.cross_validation, medlens.commands.cv):
        assert "<html" not in inspect.getsource(module)  # no inline template
    summary, table = _summary(tmp_path)
    path = write_cv_report(tmp_path, summary, table, "hc")
    assert path == tmp_path / "cv_report.html"
    html = path.read_text(encoding="utf-8")
    assert html.startswith("<!DOCTYPE html>")  # base.html's frame and style
    assert "<main>" in html and "--accent" in html
    assert "<title>medlens cross-validation: hc</title>" in html


def test_the_table_plot_and_fold_links(tmp_path: Path) -> None:
    summary, table = _summary(tmp_path)
    html = write_cv_report(tmp_path, summary, table, "hc").read_text(encoding="utf-8")
    header = "".join(f"<th>{c}</th>" for c in table.columns)
    assert header in html
    assert '<tr class=""><td>0</td><td>50</td><td>0.410</td><td>0.800</td><td>\u2014</td>' in html
    assert '<tr class="stat"><td>mean</td><td>\u2014</td><td>\u2014</td><td>0.850</td>' in html
    assert "&lt;NA&gt;" not in html and "nan" not in html  # missing values are dashes
    assert len(DATA_URI.findall(html)) == 1
    assert '<a href="fold_0/report.html">' in html and '<a href="fold_1/report.html">' in html
    assert "2-fold cross-validation" in html


def test_a_plot_without_any_defined_metric_still_renders(tmp_path: Path) -> None:
    summary, table = _summary(tmp_path)
    for entry in summary["metrics"].values():
        entry.update(values=[None, None], mean=None, sd=None, n_defined=0)
    html = write_cv_report(tmp_path, summary, table, "x<y").read_text(encoding="utf-8")
    assert len(DATA_URI.findall(html)) == 1 and "x&lt;y" in html and "x<y" not in html
