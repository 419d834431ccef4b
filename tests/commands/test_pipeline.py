"""Pipeline verbs on finished run folders: the ensemble of members on the same test cases,
the cross-validation summary, and members that do not match refused."""

from __future__ import annotations

import csv
import json
from pathlib import Path

import numpy as np
import pytest
import yaml
from typer.testing import CliRunner

from medlens.cli import app
from medlens.commands.pipeline import summarize_folds

NAMES = ["neutrophil", "lymphocyte"]


def _fake_run(
    folder: Path, truth: list[int], probs: np.ndarray, fold: int = 0, ids: list[str] | None = None
) -> Path:
    """A pipeline run folder as ``medlens train`` leaves it (predictions and metrics)."""
    folder.mkdir(parents=True)
    ids = ids or [f"{i:03d}" for i in range(len(truth))]
    with open(folder / "predictions.csv", "w", newline="") as handle:
        writer = csv.writer(handle)
        writer.writerow(["case_id", "image", "truth", "predicted", *[f"p_{n}" for n in NAMES]])
        for cid, t, p in zip(ids, truth, probs, strict=True):
            writer.writerow([cid, f"{cid}.bmp", NAMES[t], NAMES[int(p.argmax())], *p])
    from medlens.pipeline.scoring import class_metrics

    metrics = {
        "kind": "pipeline", "fold": fold, "folds": 2, "seed": 0, "masks_used": "none",
        "classification": class_metrics(np.array(truth), probs, NAMES, 0, 0), "segmentation": {},
    }  # fmt: skip
    (folder / "metrics.json").write_text(json.dumps(metrics))
    (folder / "config.yaml").write_text("kind: pipeline\n")
    return folder


def test_the_ensemble_averages_its_members_probabilities(tmp_path: Path) -> None:
    truth = [0, 0, 1, 1]
    a = _fake_run(tmp_path / "a", truth, np.array([[0.9, 0.1], [0.4, 0.6], [0.3, 0.7], [0.6, 0.4]]))
    b = _fake_run(tmp_path / "b", truth, np.array([[0.7, 0.3], [0.8, 0.2], [0.1, 0.9], [0.8, 0.2]]))
    config = tmp_path / "ensemble.yaml"
    config.write_text(yaml.safe_dump({"kind": "pipeline_ensemble", "name": "ens",
                                      "output_dir": str(tmp_path), "members": [str(a), str(b)]}))  # fmt: skip
    result = CliRunner().invoke(app, ["train", str(config)])
    assert result.exit_code == 0, result.output
    with open(tmp_path / "ens" / "predictions.csv", newline="") as handle:
        rows = list(csv.DictReader(handle))
    assert [float(r["p_neutrophil"]) for r in rows] == pytest.approx([0.8, 0.6, 0.2, 0.7])
    metrics = json.loads((tmp_path / "ens" / "metrics.json").read_text())
    assert metrics["classification"]["accuracy"]["value"] == pytest.approx(0.75)
    evaluated = CliRunner().invoke(app, ["evaluate", str(tmp_path / "ens")])
    assert evaluated.exit_code == 0 and "an ensemble" in evaluated.output


def test_members_with_other_test_cases_are_refused(tmp_path: Path) -> None:
    probs = np.full((2, 2), 0.5)
    a = _fake_run(tmp_path / "a", [0, 1], probs)
    b = _fake_run(tmp_path / "b", [0, 1], probs, ids=["007", "008"])
    config = tmp_path / "ensemble.yaml"
    config.write_text(yaml.safe_dump({"kind": "pipeline_ensemble", "output_dir": str(tmp_path),
                                      "members": [str(a), str(b)]}))  # fmt: skip
    result = CliRunner().invoke(app, ["train", str(config)])
    assert result.exit_code == 2
    assert f"{b}: its test cases differ from" in result.output
    assert not (tmp_path / "pipeline-ensemble").exists()


def test_the_cv_summary_pools_every_folds_test_cases(tmp_path: Path) -> None:
    right = np.array([[0.9, 0.1], [0.2, 0.8]])
    wrong = np.array([[0.2, 0.8], [0.2, 0.8]])
    runs = [
        _fake_run(tmp_path / "fold_0", [0, 1], right, fold=0),
        _fake_run(tmp_path / "fold_1", [0, 1], wrong, fold=1, ids=["002", "003"]),
    ]
    summary = summarize_folds(runs, tmp_path)
    assert summary["mean"]["balanced_accuracy"] == pytest.approx(0.75)  # 1.0 and 0.5
    assert summary["pooled"]["n"] == 4
    assert summary["pooled"]["balanced_accuracy"]["value"] == pytest.approx(0.75)
    assert (tmp_path / "cv_summary.csv").read_text().startswith("fold,balanced_accuracy")
