"""``medlens train`` with ``task: segmentation`` end to end on a few real DRIVE images."""

from __future__ import annotations

import json
from pathlib import Path

import numpy as np
import pandas as pd
import pytest
import torch
from typer.testing import CliRunner

from medlens.cli import app
from medlens.commands.train import train_and_report
from medlens.config import parse_config
from medlens.data.masks import read_mask
from medlens.errors import ConfigError
from medlens.tasks import check_config

torch.set_num_threads(1)

TRAIN_IDS = ("21", "22", "23", "24")
TEST_IDS = ("01", "02")


@pytest.fixture(scope="module")
def small_drive(drive_subset) -> Path:
    """The DRIVE layout with 4 training and 2 test images."""
    return drive_subset(TRAIN_IDS, TEST_IDS)


def _config(data: Path, out: Path, **changes) -> dict:
    cfg = {
        "name": "drive",
        "task": "segmentation",
        "seed": 0,
        "output_dir": str(out),
        "data": {
            "format": "segmentation",
            "path": str(data),
            "layout": "drive",
            "val_fraction": 0.25,
        },
        "preprocess": [
            {"name": "select_channels", "channels": [1]},
            {"name": "fixed_scale", "divisor": 255},
            {"name": "resize", "size": [128, 128]},
        ],
        "augment": [{"name": "random_flip", "axes": [-1]}],
        "model": {"name": "unet"},
        "segmentation": {"patch_size": [64, 64], "patches_per_image": 16, "tta_flip": True},
        "train": {"epochs": 4, "batch_size": 8, "lr": 0.003, "warmup_epochs": 0},
        "evaluate": {"n_bootstrap": 0},
    }
    for key, value in changes.items():
        section, leaf = key.split("__")
        cfg[section][leaf] = value
    return cfg


@pytest.fixture(scope="module")
def drive_run(small_drive: Path, tmp_path_factory: pytest.TempPathFactory) -> Path:
    out = tmp_path_factory.mktemp("runs")
    return train_and_report(parse_config(_config(small_drive, out)), progress=False)


def test_the_run_folder_holds_metrics_masks_and_documents(drive_run: Path, small_drive: Path):
    for name in (
        "config.yaml",
        "model.pt",
        "preprocessing.json",
        "labels.json",
        "metrics.json",
        "segmentation_metrics.csv",
        "history.csv",
        "report.html",
        "model_card.md",
    ):
        assert (drive_run / name).is_file(), name
    assert not drive_run.with_name("drive.partial").exists()
    metrics = json.loads((drive_run / "metrics.json").read_text())
    assert metrics["task"] == "segmentation"
    assert metrics["class_names"] == ["background", "vessel"]
    test_dice = metrics["splits"]["test"]["vessel"]["dice"]
    assert test_dice["n"] == len(TEST_IDS)
    assert 0.0 <= test_dice["mean"] <= 1.0
    history = pd.read_csv(drive_run / "history.csv")
    assert list(history["epoch"]) == [1, 2, 3, 4]
    assert history["val_dice"].notna().all()


def test_masks_are_written_on_each_images_own_grid_and_match_the_csv(
    drive_run: Path, small_drive: Path
):
    from medlens.metrics import evaluate_segmentation

    table = pd.read_csv(drive_run / "segmentation_metrics.csv", dtype={"case_id": str})
    test_rows = table[table["split"] == "test"]
    assert sorted(test_rows["case_id"]) == [f"test/{n}" for n in TEST_IDS]
    for number in TEST_IDS:
        pred = read_mask(drive_run / "masks" / f"test_{number}.png")
        assert pred.spatial_shape == (584, 565)  # back on the original grid, not 128 x 128
        ref = read_mask(small_drive / "test" / "1st_manual" / f"{number}_manual1.gif")
        fov = read_mask(small_drive / "test" / "mask" / f"{number}_test_mask.gif").array[0] > 0
        expected = evaluate_segmentation(pred.array[0], ref.array[0], fov_mask=fov)[1]["dice"]
        row = test_rows[test_rows["case_id"] == f"test/{number}"].iloc[0]
        assert row["dice"] == pytest.approx(expected, abs=1e-9)
        assert not pred.array[0][~fov].any()  # nothing outside the field of view


def test_the_report_names_the_segmentation_metrics(drive_run: Path):
    html = (drive_run / "report.html").read_text()
    assert "hausdorff" in html.lower() or "HD95" in html
    assert "Dice" in html


def test_distances_of_images_without_spacing_are_recorded_in_px(drive_run: Path):
    """DRIVE's TIFF/GIF files carry no pixel size (1.0 per axis is assumed): not mm."""
    metrics = json.loads((drive_run / "metrics.json").read_text())
    assert metrics["distance_unit"] == "px"
    html = (drive_run / "report.html").read_text()
    assert "Hausdorff distance, 95th percentile (HD95), px" in html
    assert "HD95), mm" not in html and "HD95 (mm)" not in html
    card = (drive_run / "model_card.md").read_text()
    assert "distances in px" in card and "- Surface Dice tolerance: 1.0 px." in card


def test_training_learns_vessels_better_than_chance(drive_run: Path):
    """Vessels are ~12% of the FOV: a model that learned nothing scores Dice ~0.2 or 0."""
    table = pd.read_csv(drive_run / "segmentation_metrics.csv")
    assert table.loc[table["split"] == "test", "pixel_auc"].mean() > 0.75


def test_a_classifier_name_is_refused_for_segmentation(small_drive: Path, tmp_path: Path):
    cfg = parse_config(_config(small_drive, tmp_path, model__name="resnet18"))
    with pytest.raises(ConfigError, match="model.name.*classification model"):
        train_and_report(cfg, progress=False)
    assert not (tmp_path / "drive").exists()


def test_unet_plus_plus_trains_with_deep_supervision(small_drive: Path, tmp_path: Path):
    cfg = _config(
        small_drive,
        tmp_path,
        model__name="unet_plus_plus",
        model__deep_supervision=True,
        train__epochs=1,
        segmentation__patches_per_image=2,
    )
    cfg["segmentation"]["tta_flip"] = False
    run = train_and_report(parse_config(cfg), progress=False)
    state = torch.load(run / "model.pt", map_location="cpu", weights_only=False)
    assert state["model_config"]["deep_supervision"] is True
    # the four heads were trained: the auxiliary ones are kept, not replaced by identities
    assert any(k.startswith("net.final_conv_0_1.") for k in state["model"])
    metrics = json.loads((run / "metrics.json").read_text())
    assert np.isfinite(metrics["splits"]["test"]["vessel"]["dice"]["mean"])


def test_imagenet_weights_are_refused_for_a_segmenter(small_drive: Path, tmp_path: Path):
    cfg = parse_config(_config(small_drive, tmp_path, model__pretrained="imagenet"))
    with pytest.raises(ConfigError, match="model.pretrained"):
        train_and_report(cfg, progress=False)
    assert not (tmp_path / "drive").exists()


def test_a_stem_stride_is_refused_for_a_segmenter_not_ignored(small_drive: Path, tmp_path: Path):
    cfg = parse_config(_config(small_drive, tmp_path, model__stem_stride=2))
    with pytest.raises(ConfigError, match="model.stem_stride.*unet has no stem stride"):
        train_and_report(cfg, progress=False)
    assert not (tmp_path / "drive").exists()


def test_a_patch_size_the_network_cannot_take_is_refused(small_drive: Path, tmp_path: Path):
    cfg = parse_config(_config(small_drive, tmp_path, segmentation__patch_size=[50, 50]))
    with pytest.raises(ConfigError, match="50"):
        train_and_report(cfg, progress=False)


def test_segmentation_data_needs_the_segmentation_task(small_drive: Path, tmp_path: Path):
    cfg = _config(small_drive, tmp_path)
    cfg["task"] = "classification"
    with pytest.raises(ConfigError, match="task: segmentation") as info:
        check_config(parse_config(cfg))
    assert info.value.key == "data.format"


def test_cli_trains_a_segmentation_config(small_drive: Path, tmp_path: Path):
    import yaml

    cfg = _config(small_drive, tmp_path, train__epochs=1)
    cfg["segmentation"]["save_masks"] = "nifti"
    path = tmp_path / "seg.yaml"
    path.write_text(yaml.safe_dump(cfg))
    result = CliRunner().invoke(app, ["train", str(path), "--quiet"])
    assert result.exit_code == 0, result.output
    mask = read_mask(tmp_path / "drive" / "masks" / "test_01.nii.gz")
    assert mask.spatial_shape == (584, 565)
    assert set(np.unique(mask.array)) <= {0, 1}


def test_a_3d_segmenter_trains_channels_last_and_its_checkpoint_loads_anywhere(ct_run: Path):
    """The 3D FCN of ``ct_run`` trained on the CPU in the channels-last layout (faster, same
    numbers); the saved weights load into a model in the default layout."""
    from medlens.models import model_from_config

    checkpoint = torch.load(ct_run / "model.pt", weights_only=False)
    kernels = {
        k: v
        for k, v in checkpoint["model"].items()
        if v.dim() == 5 and v.shape[1] > 1 and v.shape[2:].numel() > 1
    }
    assert kernels
    for key, value in kernels.items():
        assert value.is_contiguous(memory_format=torch.channels_last_3d), key
        assert not value.is_contiguous(), key
    fresh = model_from_config(checkpoint["model_config"])
    fresh.load_state_dict(checkpoint["model"])
    assert all(p.is_contiguous() for p in fresh.parameters())
