"""``task: registration``: a tiny VoxelMorph-style run trains one epoch on pairs of real
slices through ``medlens train``, then its run folder registers a pair (``medlens
predict``)."""

from __future__ import annotations

import json
from pathlib import Path

import numpy as np
import pytest
import yaml
from scipy import ndimage

from medlens.commands.predict import PredictOptions, predict_command
from medlens.commands.train import train_command
from medlens.errors import ConfigError

from .mni import mni, write_png


@pytest.fixture(scope="module")
def slices(tmp_path_factory: pytest.TempPathFactory) -> Path:
    """Six axial slices of the template (4 mm, padded to 48 x 56) with grey-matter labels."""
    t1, grey, _ = mni()
    root = tmp_path_factory.mktemp("pairs")
    (root / "images").mkdir()
    (root / "labels").mkdir()
    for k, z in enumerate(range(36, 60, 4)):
        image = np.zeros((48, 56))
        labels = np.zeros((48, 56))
        small = ndimage.zoom(t1[:, :, z], 0.5, order=1)[:48, :56]
        image[: small.shape[0], : small.shape[1]] = small / t1.max()
        gm = ndimage.zoom(grey[:, :, z], 0.5, order=1)[:48, :56] > 0.5
        labels[: gm.shape[0], : gm.shape[1]] = gm
        write_png(root / "images" / f"s{k}.png", image)
        write_png(root / "labels" / f"s{k}.png", labels, 1)
    return root


def _config(tmp_path: Path, data: Path, **extra: object) -> Path:
    config = {
        "name": "vm",
        "task": "registration",
        "output_dir": str(tmp_path / "runs"),
        "data": {"format": "pairs", "path": str(data), "val_fraction": 0.34, "test_fraction": 0.34},
        "model": {"name": "voxelmorph"},
        "train": {"epochs": 1, "batch_size": 2},
        **extra,
    }
    path = tmp_path / "vm.yaml"
    path.write_text(yaml.safe_dump(config))
    return path


def test_a_voxelmorph_run_trains_and_registers_a_pair(slices: Path, tmp_path: Path) -> None:
    run = train_command(_config(tmp_path, slices), progress=False)
    for name in (
        "model.pt",
        "metrics.json",
        "report.html",
        "model_card.md",
        "config.yaml",
        "registration_pairs.csv",
        "history.csv",
    ):
        assert (run / name).is_file(), name
    metrics = json.loads((run / "metrics.json").read_text())
    assert metrics["task"] == "registration" and metrics["pairs"] == {
        "test": 2,
        "val": 2,
        "train": 2,
    }
    assert 0 <= metrics["splits"]["test"]["dice"] <= 1
    out = tmp_path / "pair"
    message = predict_command(
        run,
        [slices / "images" / "s0.png", slices / "images" / "s3.png"],
        PredictOptions(out=out),
    )
    assert "written to" in message
    chain = json.loads((out / "transform.json").read_text())
    assert chain["stages"][-1] == {**chain["stages"][-1], "kind": "deformable", "method": "network"}
    with pytest.raises(ConfigError, match="FIXED MOVING pairs"):
        predict_command(run, [slices / "images" / "s0.png"], PredictOptions(out=out))


def test_preprocessing_is_refused_for_registration(slices: Path, tmp_path: Path) -> None:
    path = _config(tmp_path, slices, preprocess=[{"name": "resize", "size": 32}])
    with pytest.raises(ConfigError, match="preprocess"):
        train_command(path, progress=False)


def test_a_stem_stride_is_refused_for_voxelmorph_not_ignored(slices: Path, tmp_path: Path) -> None:
    path = _config(tmp_path, slices, model={"name": "voxelmorph", "stem_stride": 2})
    with pytest.raises(ConfigError, match="model.stem_stride.*voxelmorph has no stem stride"):
        train_command(path, progress=False)
    assert not (tmp_path / "runs" / "vm").exists()
