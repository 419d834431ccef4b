"""report.html from a synthetic run folder: numbers as in metrics.json, self-contained, atomic."""

from __future__ import annotations

import base64
import io
import json
import re
from pathlib import Path

import pytest
from PIL import Image

from medlens.errors import InputError
from medlens.report import write_report

DATA_URI = re.compile(r'src="data:image/png;base64,([A-Za-z0-9+/=]+)"')


def _fmt(value: float) -> str:
    return f"{value:.3f}"


def test_report_shows_every_metric_with_its_interval(binary_run: Path) -> None:
    path = write_report(binary_run)
    assert path == binary_run / "report.html"
    html = path.read_text(encoding="utf-8")
    metrics = json.loads((binary_run / "metrics.json").read_text())
    for split in ("val", "test"):
        for name, entry in metrics["splits"][split]["metrics"].items():
            assert f"<strong>{_fmt(entry['value'])}</strong>" in html, (split, name)
            assert f"{_fmt(entry['ci_low'])}\u2013{_fmt(entry['ci_high'])}" in html, (split, name)
        for name, value in metrics["splits"][split]["metrics_at_0.5"].items():
            assert f"<strong>{_fmt(value)}</strong>" in html, (split, name)
    assert f"{metrics['threshold']:.4f}" in html
    assert "youden" in html and "validation split to maximise Youden" in html
    assert "computed once, on a split no choice looked at" in html
    assert 'class="test"' in html  # the test column is highlighted


def test_report_shows_data_summary_and_pipeline(binary_run: Path) -> None:
    html = write_report(binary_run).read_text(encoding="utf-8")
    summary = json.loads((binary_run / "data_summary.json").read_text())
    for split, values in summary["splits"].items():
        assert f"<td>{values['n']}</td>" in html, split
        for count in values["class_counts"].values():
            assert f"<td>{count} " in html
    assert "bad_0.png" in html and "truncated PNG" in html
    assert "scale_intensity" in html and "resize" in html
    assert "resnet18" in html and "full" in html
    assert "Limitations" in html and "not a medical device" in html
    assert "No subgroup (fairness) audit was run" in html


def test_report_embeds_png_figures_and_loads_nothing_external(binary_run: Path) -> None:
    html = write_report(binary_run).read_text(encoding="utf-8")
    images = DATA_URI.findall(html)
    assert len(images) == 9  # roc, pr, confusion, reliability x (val, test) + learning curves
    for encoded in images:
        data = base64.b64decode(encoded)
        with Image.open(io.BytesIO(data)) as image:
            assert image.format == "PNG"
    assert "http://" not in html and "https://" not in html
    assert "<script" not in html and "<link" not in html and "@import" not in html
    for kind in ("roc", "pr", "confusion", "reliability"):
        for split in ("val", "test"):
            assert (binary_run / "plots" / f"{kind}_{split}.png").is_file()
    assert (binary_run / "plots" / "learning_curves.png").is_file()


def test_multiclass_report(multiclass_run: Path) -> None:
    html = write_report(multiclass_run).read_text(encoding="utf-8")
    assert "3-class classification" in html
    assert "most probable class" in html
    assert "ROC AUC, macro" in html
    metrics = json.loads((multiclass_run / "metrics.json").read_text())
    auc = metrics["splits"]["test"]["metrics"]["auc"]
    assert f"{_fmt(auc['ci_low'])}\u2013{_fmt(auc['ci_high'])}" in html


def test_undefined_metric_is_a_dash_with_its_note(binary_run: Path) -> None:
    path = binary_run / "metrics.json"
    metrics = json.loads(path.read_text())
    metrics["splits"]["test"]["metrics"]["auc"] = {
        "value": None,
        "ci_low": None,
        "ci_high": None,
        "note": "auc is undefined on these cases (no 'normal' case)",
    }
    path.write_text(json.dumps(metrics))
    html = write_report(binary_run).read_text(encoding="utf-8")
    assert "auc is undefined on these cases (no &#39;normal&#39; case)" in html


def test_missing_metrics_json_names_the_file(binary_run: Path) -> None:
    (binary_run / "metrics.json").unlink()
    with pytest.raises(InputError) as info:
        write_report(binary_run)
    assert info.value.path == str(binary_run / "metrics.json")
    assert "metrics.json not found" in str(info.value)


@pytest.mark.parametrize(
    ("file", "content", "fragment"),
    [
        ("metrics.json", "{not json", "not valid JSON"),
        ("metrics.json", '{"class_names": ["a", "b"]}', "'splits'"),
        ("predictions.csv", "case_id,split,label,pred\nx,test,0,0\n", "prob_normal"),
        ("predictions.csv", None, "predictions.csv not found"),
        ("labels.json", '{"threshold": 0.123456}', "differs"),
        ("history.csv", "step,loss\n1,0.5\n", "epoch"),
    ],
)
def test_malformed_run_folder_raises_input_error(
    binary_run: Path, file: str, content, fragment
) -> None:
    target = binary_run / file
    if content is None:
        target.unlink()
    else:
        target.write_text(content)
    with pytest.raises(InputError) as info:
        write_report(binary_run)
    assert info.value.path == str(target)
    assert fragment in str(info.value)


def test_failed_rewrite_keeps_the_previous_report(binary_run: Path) -> None:
    first = write_report(binary_run).read_bytes()
    (binary_run / "predictions.csv").write_text("case_id,split\nx,test\n")
    with pytest.raises(InputError):
        write_report(binary_run)
    assert (binary_run / "report.html").read_bytes() == first
    assert not [p for p in binary_run.rglob("*") if p.name.endswith(".tmp")]
