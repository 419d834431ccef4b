"""The trust verbs end to end on a small real run with a subgroup column:
``train.group_reweighting``, ``medlens audit``, ``medlens explain``, ``medlens features``."""

from __future__ import annotations

import json
import subprocess
import sys
from pathlib import Path

import numpy as np
import pandas as pd
import pytest
import torch
from PIL import Image as PILImage
from typer.testing import CliRunner

from medlens.cli import app
from medlens.commands.train import train_and_report
from medlens.config import parse_config
from medlens.errors import ConfigError

torch.set_num_threads(1)
N_PER_SPLIT = {"train": 240, "val": 80, "test": 80}


@pytest.fixture(scope="module")
def manifest(pneumonia_npz: Path, tmp_path_factory: pytest.TempPathFactory) -> Path:
    """Real PneumoniaMNIST images as PNG with a manifest: official splits, a 'site' column."""
    root = tmp_path_factory.mktemp("manifest")
    data = np.load(pneumonia_npz)
    rng = np.random.default_rng(0)
    rows = []
    for split, n in N_PER_SPLIT.items():
        images, labels = data[f"{split}_images"], data[f"{split}_labels"].ravel()
        # balanced classes (the subset's train split is mostly pneumonia)
        idx = np.concatenate([np.flatnonzero(labels == c)[: n // 2] for c in (0, 1)])
        for i in idx:
            path = root / f"{split}_{i}.png"
            PILImage.fromarray(images[i]).save(path)
            site = "A" if rng.random() < 0.5 else "B"
            rows.append({"path": path.name, "label": int(labels[i]), "split": split, "site": site})
    pd.DataFrame(rows).to_csv(root / "cases.csv", index=False)
    return root / "cases.csv"


def _config(manifest: Path, out: Path, **train: object) -> dict:
    return {
        "name": "trust",
        "seed": 0,
        "output_dir": str(out),
        "data": {
            "format": "csv",
            "path": str(manifest),
            "subgroup_columns": ["site"],
            "class_names": ["normal", "pneumonia"],
        },
        "preprocess": [{"name": "fixed_scale", "divisor": 255}],
        "model": {"name": "small_cnn"},
        "train": {"epochs": 3, "batch_size": 32, "lr": 3e-3, "warmup_epochs": 0, **train},
        "evaluate": {"n_bootstrap": 100},
    }


@pytest.fixture(scope="module")
def run_dir(manifest: Path, tmp_path_factory: pytest.TempPathFactory) -> Path:
    out = tmp_path_factory.mktemp("runs")
    cfg = parse_config(_config(manifest, out, group_reweighting="site"))
    return train_and_report(cfg, progress=False)


def test_group_reweighting_needs_a_subgroup_column(manifest: Path, tmp_path: Path):
    cfg = parse_config(_config(manifest, tmp_path, group_reweighting="scanner"))
    with pytest.raises(ConfigError, match="train.group_reweighting.*scanner.*site"):
        train_and_report(cfg, progress=False)


def test_audit_writes_its_files_and_a_report_section(run_dir: Path):
    result = CliRunner().invoke(
        app,
        [
            "audit",
            str(run_dir),
            "--groups",
            "site",
            "--n-bootstrap",
            "200",
            "--min-group-size",
            "10",
        ],
    )
    assert result.exit_code == 0, result.output
    audit = json.loads((run_dir / "audit.json").read_text())
    assert audit["attributes"] == ["site"]
    html = (run_dir / "report.html").read_text()
    assert "Fairness (subgroup audit)" in html
    assert "Fairness (subgroup audit)" in (run_dir / "model_card.md").read_text()


def test_audit_names_a_missing_column_in_one_line(run_dir: Path):
    proc = subprocess.run(
        [sys.executable, "-m", "medlens.cli", "audit", str(run_dir), "--groups", "sex"],
        capture_output=True,
        text=True,
    )
    assert proc.returncode == 2
    assert "predictions.csv: has no column 'sex'" in proc.stderr
    assert "Traceback" not in proc.stderr


def test_explain_analysis_goes_into_the_report(run_dir: Path):
    result = CliRunner().invoke(
        app,
        [
            "explain",
            str(run_dir),
            "--gallery",
            "--n-per-kind",
            "2",
            "--faithfulness",
            "4",
            "--randomization",
        ],
    )
    assert result.exit_code == 0, result.output
    record = json.loads((run_dir / "explanations.json").read_text())
    assert record["method"] == "gradcam"
    assert 0.0 <= record["randomization_ssim"]["gradcam"] < 1.0
    assert record["faithfulness"][0]["deletion_auc"] >= 0.0
    html = (run_dir / "report.html").read_text()
    assert "Model-randomisation check" in html and "Faithfulness" in html
    assert "data:image/png;base64" in html


def test_explain_overlays_for_given_images(run_dir: Path, manifest: Path, tmp_path: Path):
    image = next(manifest.parent.glob("test_*.png"))
    result = CliRunner().invoke(
        app, ["explain", str(run_dir), str(image), "-m", "saliency", "--out", str(tmp_path)]
    )
    assert result.exit_code == 0, result.output
    assert list(tmp_path.glob("*.png"))


def test_features_of_a_run(run_dir: Path, tmp_path: Path):
    out = tmp_path / "f.npz"
    result = CliRunner().invoke(app, ["features", str(run_dir), "--out", str(out)])
    assert result.exit_code == 0, result.output
    with np.load(out, allow_pickle=False) as data:
        assert data["features"].shape[0] == sum(N_PER_SPLIT.values())
