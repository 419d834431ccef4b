"""The command line: instant help, one-line errors with a non-zero exit, the demo's data message."""

from __future__ import annotations

import subprocess
import sys
import time
from pathlib import Path

import pytest


def _medlens(*args: str, cwd: Path | None = None) -> subprocess.CompletedProcess:
    return subprocess.run(
        [sys.executable, "-m", "medlens.cli", *args],
        capture_output=True,
        text=True,
        cwd=cwd,
        timeout=600,
    )


def test_help_is_instant_and_lists_verbs() -> None:
    t0 = time.perf_counter()
    proc = _medlens("--help")
    assert proc.returncode == 0
    for verb in ("train", "evaluate", "predict", "demo", "download"):
        assert verb in proc.stdout
    assert time.perf_counter() - t0 < 10
    probe = subprocess.run(
        [sys.executable, "-c", "import sys, medlens.cli; print('torch' in sys.modules)"],
        capture_output=True,
        text=True,
    )
    assert probe.stdout.strip() == "False"


def test_malformed_config_is_one_line_and_exit_2(tmp_path: Path) -> None:
    config = tmp_path / "bad.yaml"
    config.write_text("data: {path: x.npz}\ntrain: {lr: -1}\n")
    proc = _medlens("train", str(config))
    assert proc.returncode == 2
    assert "train.lr" in proc.stderr and str(config) in proc.stderr
    assert "Traceback" not in proc.stderr


def test_demo_names_the_missing_file(tmp_path: Path) -> None:
    proc = _medlens("demo", "--data", str(tmp_path / "nowhere" / "pneumoniamnist.npz"))
    assert proc.returncode == 2
    assert "pneumoniamnist.npz" in proc.stderr and str(tmp_path / "nowhere") in proc.stderr
    assert "Traceback" not in proc.stderr


def test_train_predict_evaluate_on_real_pneumoniamnist(pneumonia_npz: Path, tmp_path: Path) -> None:
    import numpy as np
    import pandas as pd
    import yaml
    from PIL import Image as PILImage

    config = {
        "name": "cli",
        "output_dir": str(tmp_path / "runs"),
        "data": {"format": "medmnist", "path": str(pneumonia_npz), "train_fraction_used": 0.05},
        "model": {"name": "small_cnn"},
        "train": {"epochs": 1, "batch_size": 32},
        "evaluate": {"n_bootstrap": 20},
    }
    (tmp_path / "c.yaml").write_text(yaml.safe_dump(config))
    proc = _medlens("train", str(tmp_path / "c.yaml"), "--quiet")
    assert proc.returncode == 0, proc.stderr[-2000:]
    run = tmp_path / "runs" / "cli"
    assert (run / "report.html").is_file()

    # The same test images as PNG files must get the probabilities the run recorded.
    test_images = np.load(pneumonia_npz)["test_images"][:3]
    for k, image in enumerate(test_images):
        PILImage.fromarray(image).save(tmp_path / f"case{k}.png")
    (tmp_path / "broken.png").write_bytes(b"\x89PNG\r\n\x1a\n broken")
    pngs = [str(tmp_path / f"case{k}.png") for k in range(3)]
    proc = _medlens(
        "predict", str(run), *pngs, str(tmp_path / "broken.png"), "--out", str(tmp_path / "p.csv")
    )
    assert proc.returncode == 2 and "broken.png" in proc.stderr and "Traceback" not in proc.stderr
    proc = _medlens(
        "predict",
        str(run),
        *pngs,
        str(tmp_path / "broken.png"),
        "--out",
        str(tmp_path / "p.csv"),
        "--skip-bad",
    )
    assert proc.returncode == 0, proc.stderr[-2000:]
    out = pd.read_csv(tmp_path / "p.csv")
    assert len(out) == 4 and out["error"].fillna("").astype(bool).sum() == 1
    recorded = pd.read_csv(run / "predictions.csv")
    recorded = recorded[recorded["split"] == "test"].set_index("case_id")
    prob_columns = [c for c in out.columns if c.startswith("prob_")]
    for k in range(3):
        row = out[out["case_id"] == pngs[k]].iloc[0]
        ref = recorded.loc[f"test/{k:06d}"]
        assert row[prob_columns[1]] == pytest.approx(ref[prob_columns[1]], abs=1e-5)

    proc = _medlens("evaluate", str(run), "--out", str(tmp_path / "ev"))
    assert proc.returncode == 0, proc.stderr[-2000:]
    assert (tmp_path / "ev" / "metrics.json").is_file()
