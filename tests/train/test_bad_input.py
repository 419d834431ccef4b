"""Bad files during training: one clear error naming the file, or --skip-bad lists it."""

from __future__ import annotations

import json
from pathlib import Path
from typing import Any

import numpy as np
import pytest
from PIL import Image as PILImage

from medlens.commands.train import train_and_report
from medlens.config import parse_config
from medlens.errors import InputError


@pytest.fixture
def png_folder(pneumonia_npz: Path, tmp_path: Path) -> Path:
    """60 real PneumoniaMNIST images as PNG, one sub-folder per class, plus one corrupt file."""
    data = np.load(pneumonia_npz)
    images, labels = data["val_images"], data["val_labels"].reshape(-1)
    root = tmp_path / "pngs"
    for name, label in (("normal", 0), ("pneumonia", 1)):
        (root / name).mkdir(parents=True)
        for k in np.flatnonzero(labels == label)[:30]:
            PILImage.fromarray(images[k]).save(root / name / f"{k:04d}.png")
    (root / "pneumonia" / "9999.png").write_bytes(b"\x89PNG\r\n\x1a\n" + b"\0" * 40)
    return root


def _config(folder: Path, tmp_path: Path, skip_bad: bool) -> dict[str, Any]:
    return {
        "name": "folder",
        "output_dir": str(tmp_path / "runs"),
        "data": {
            "format": "folder",
            "path": str(folder),
            "split": "random",
            "skip_bad": skip_bad,
            "val_fraction": 0.25,
            "test_fraction": 0.25,
        },
        "model": {"name": "small_cnn"},
        "train": {"epochs": 1, "batch_size": 16},
        "evaluate": {"n_bootstrap": 10},
    }


def test_corrupt_file_stops_training_with_its_name(png_folder: Path, tmp_path: Path) -> None:
    with pytest.raises(InputError) as info:
        train_and_report(parse_config(_config(png_folder, tmp_path, False)), progress=False)
    assert "9999.png" in str(info.value)
    assert not list((tmp_path / "runs").glob("folder*"))


def test_skip_bad_lists_the_skipped_file(png_folder: Path, tmp_path: Path) -> None:
    run = train_and_report(parse_config(_config(png_folder, tmp_path, True)), progress=False)
    summary = json.loads((run / "data_summary.json").read_text())
    assert [Path(s["file"]).name for s in summary["skipped_files"]] == ["9999.png"]
    assert summary["skipped_files"][0]["reason"]
    assert sum(s["n"] for s in summary["splits"].values()) == 60
    assert "9999.png" in (run / "report.html").read_text()
