"""model_card.md from a synthetic run folder."""

from __future__ import annotations

import json
from pathlib import Path

import pytest

from medlens.errors import InputError
from medlens.report import write_model_card


def test_model_card_sections_and_numbers(binary_run: Path) -> None:
    path = write_model_card(binary_run)
    assert path == binary_run / "model_card.md"
    card = path.read_text(encoding="utf-8")
    for heading in (
        "## Model details",
        "## Intended use",
        "## Data",
        "## Metrics",
        "## Decision threshold",
        "## Limitations",
        "## Fairness",
        "## Explanations",
    ):
        assert heading in card
    assert "Not a medical device" in card
    metrics = json.loads((binary_run / "metrics.json").read_text())
    for split in ("val", "test"):
        for name, e in metrics["splits"][split]["metrics"].items():
            cell = f"{e['value']:.3f} ({e['ci_low']:.3f}\u2013{e['ci_high']:.3f})"
            assert cell in card, (split, name)
    assert f"{metrics['threshold']:.4g}" in card
    summary = json.loads((binary_run / "data_summary.json").read_text())
    counts = summary["splits"]["train"]["class_counts"]
    assert f"| training | 400 | {counts['normal']} | {counts['pneumonia']} |" in card
    assert "pneumoniamnist.npz" in card
    assert "No subgroup audit was run" in card
    assert "No explanation analysis was run" in card


def test_audit_and_explanations_are_reported_when_present(binary_run: Path) -> None:
    audit = {"attributes": ["sex"], "summary": "AUC differs by 0.02 between sexes."}
    (binary_run / "audit.json").write_text(json.dumps(audit))
    (binary_run / "explanations.json").write_text(json.dumps({"summary": "Grad-CAM on lungs."}))
    card = write_model_card(binary_run).read_text(encoding="utf-8")
    assert "No subgroup audit was run" not in card
    assert "AUC differs by 0.02 between sexes." in card and "Attributes audited: sex." in card
    assert "Grad-CAM on lungs." in card


def test_multiclass_model_card(multiclass_run: Path) -> None:
    card = write_model_card(multiclass_run).read_text(encoding="utf-8")
    assert "3-class image classification: benign, malignant, normal" in card
    assert "most probable class" in card


def test_missing_metrics_json_names_the_file(binary_run: Path) -> None:
    (binary_run / "metrics.json").unlink()
    with pytest.raises(InputError) as info:
        write_model_card(binary_run)
    assert info.value.path == str(binary_run / "metrics.json")
    assert not (binary_run / "model_card.md").exists()


def test_missing_run_folder(tmp_path: Path) -> None:
    with pytest.raises(InputError, match="run folder not found"):
        write_model_card(tmp_path / "nope")
