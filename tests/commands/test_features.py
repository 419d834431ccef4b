"""features_from_run and ``medlens features`` (extract_features_command) end to end."""

from __future__ import annotations

from pathlib import Path

import numpy as np
import pandas as pd
import pytest
import torch
import yaml

from medlens.commands.features import extract_features_command
from medlens.config import parse_config
from medlens.errors import ConfigError, InputError
from medlens.features import FeatureSet
from medlens.inference.features import features_from_run


@pytest.fixture(scope="module")
def config_dict(small_npz: Path, tmp_path_factory: pytest.TempPathFactory) -> dict:
    return {
        "name": "tiny",
        "seed": 4,
        "output_dir": str(tmp_path_factory.mktemp("runs")),
        "data": {"format": "medmnist", "path": str(small_npz)},
        "preprocess": [{"name": "fixed_scale", "divisor": 255}],
        "model": {"name": "small_cnn"},
        "train": {"epochs": 1, "batch_size": 16, "amp": False},
        "evaluate": {"n_bootstrap": 10},
    }


@pytest.fixture(scope="module")
def tiny_run(config_dict: dict) -> Path:
    from medlens.train.deep.run import train_from_config

    torch.set_num_threads(1)
    return train_from_config(parse_config(config_dict), progress=False)


@pytest.fixture
def config_file(config_dict: dict, tmp_path: Path) -> Path:
    path = tmp_path / "config.yaml"
    path.write_text(yaml.safe_dump(config_dict))
    return path


def test_run_features_through_the_head_reproduce_the_run_predictions(tiny_run: Path) -> None:
    from medlens.inference.loaded_run import load_run

    fs = features_from_run(tiny_run, splits=["test"], device="cpu", progress=False)
    assert fs.features.shape == (20, 64) and set(fs.splits) == {"test"}
    model = load_run(tiny_run, "cpu").model
    with torch.no_grad():
        probs = torch.softmax(model.head(torch.from_numpy(fs.features)), dim=1).numpy()
    predictions = pd.read_csv(tiny_run / "predictions.csv").set_index("case_id")
    # the network's softmax: predictions.csv's probabilities before calibration (issue 16)
    raw = ["raw_prob_normal", "raw_prob_pneumonia"]
    expected = predictions.loc[fs.case_ids, raw].to_numpy()
    np.testing.assert_allclose(probs, expected, atol=1e-5)
    np.testing.assert_array_equal(fs.labels, predictions.loc[fs.case_ids, "label"].to_numpy())


def test_command_on_a_run_folder_writes_every_case(tiny_run: Path, tmp_path: Path) -> None:
    out = tmp_path / "features.npz"
    written = extract_features_command(tiny_run, None, out, device="cpu", progress=False)
    back = FeatureSet.load(out)
    assert len(back) == 80 and back.features.shape == written.features.shape
    assert sorted(set(back.splits)) == ["test", "train", "val"]
    assert back.meta["run"] == str(tiny_run)


def test_command_on_a_model_name_uses_the_config(config_file: Path, tmp_path: Path) -> None:
    out = tmp_path / "small_cnn.npz"
    fs = extract_features_command(
        "small_cnn", config_file, out, splits=["val"], device="cpu", progress=False
    )
    assert FeatureSet.load(out).features.shape == (20, 64)
    assert fs.meta["seed"] == 4 and fs.feature_names[0] == "deep_0000"


def test_command_handcrafted(config_file: Path, tmp_path: Path) -> None:
    out = tmp_path / "radiomics.npz"
    fs = extract_features_command("handcrafted", config_file, out, splits=["test"], bins=16)
    back = FeatureSet.load(out)
    assert back.features.shape == (20, len(fs.feature_names))
    assert "glcm_contrast" in back.feature_names and "shape_area_mm2" in back.feature_names
    assert back.meta["options"]["bins"] == 16
    # fixed_scale by 255 ran first: the mean intensity is within 0..1.
    column = back.feature_names.index("firstorder_mean")
    assert back.features[:, column].min() > 0 and back.features[:, column].max() < 1


def test_bad_sources(config_file: Path, tmp_path: Path) -> None:
    with pytest.raises(InputError, match="neither a run folder nor a model name"):
        extract_features_command(tmp_path / "no_such_run", config_file, tmp_path / "x.npz")
    with pytest.raises(ConfigError, match="need a config"):
        extract_features_command("small_cnn", None, tmp_path / "x.npz")
    assert not (tmp_path / "x.npz").exists()
