"""An ensemble run folder applied to new images: its members replayed with their own
calibrators, combined as fitted, and their disagreement as uncertainty."""

from __future__ import annotations

from pathlib import Path

import numpy as np
import pandas as pd
import pytest
import torch

from medlens.commands.ensemble import ensemble_runs
from medlens.config import parse_config
from medlens.errors import ConfigError
from medlens.inference.classify import predict_files
from medlens.train.deep.run import train_from_config


@pytest.fixture(scope="module")
def members(small_npz: Path, tmp_path_factory: pytest.TempPathFactory) -> list[Path]:
    """Two small CNNs (one with dropout) on 40 real radiographs: plumbing, not accuracy."""
    torch.set_num_threads(1)
    out = tmp_path_factory.mktemp("members")
    runs = []
    for seed, dropout in ((0, 0.3), (1, 0.0)):
        raw = {
            "name": f"cnn-s{seed}",
            "seed": seed,
            "output_dir": str(out),
            "data": {"format": "medmnist", "path": str(small_npz)},
            "preprocess": [{"name": "fixed_scale", "divisor": 255}],
            "model": {"name": "small_cnn", "dropout": dropout},
            "train": {"epochs": 2, "batch_size": 16, "lr": 3e-3, "warmup_epochs": 0},
            "evaluate": {"n_bootstrap": 0},
        }
        runs.append(train_from_config(parse_config(raw), progress=False))
    return runs


def _rows(path: Path) -> pd.DataFrame:
    table = pd.read_csv(path, keep_default_na=False)
    table["case_id"] = table["case_id"].str.split("#").str[-1]
    return table.set_index("case_id")


@pytest.mark.parametrize("method", ["soft", "stacking"])
def test_predict_on_an_ensemble_replays_its_predictions(
    method: str, members: list[Path], small_npz: Path, tmp_path: Path
) -> None:
    run = ensemble_runs(
        members, method, tmp_path, n_bootstrap=0, documents=False, calibration="temperature"
    )
    out = tmp_path / "pred.csv"
    predict_files(run, [small_npz], out, progress=False, uncertainty="ensemble")
    ours = _rows(out)
    recorded = pd.read_csv(run / "predictions.csv", keep_default_na=False)
    recorded = recorded[recorded["split"] == "test"].set_index("case_id")
    ours = ours.loc[recorded.index]
    for column in ("prob_normal", "prob_pneumonia"):
        np.testing.assert_allclose(ours[column], recorded[column], atol=1e-4)
    assert (ours["decision"] == recorded["decision"]).all()
    assert (ours["ood"].astype(int) == recorded["ood"].astype(int)).all()
    assert set(ours["uncertainty_method"]) == {"ensemble"}
    assert (ours["mutual_information"] >= 0).all() and ours["mutual_information"].max() > 0


def test_an_ensemble_refuses_single_network_sampling(
    members: list[Path], small_npz: Path, tmp_path: Path
) -> None:
    run = ensemble_runs(members, "soft", tmp_path, n_bootstrap=0, documents=False)
    with pytest.raises(ConfigError, match="use --uncertainty ensemble"):
        predict_files(run, [small_npz], tmp_path / "x.csv", uncertainty="tta")


def test_mc_dropout_samples_a_network_with_dropout(
    members: list[Path], small_npz: Path, tmp_path: Path
) -> None:
    out = tmp_path / "pred.csv"
    predict_files(members[0], [small_npz], out, progress=False, uncertainty="mc_dropout")
    table = pd.read_csv(out)
    assert set(table["uncertainty_method"]) == {"mc_dropout"}
    assert table["mutual_information"].max() > 0  # the passes disagree
    again = tmp_path / "again.csv"
    predict_files(members[0], [small_npz], again, progress=False, uncertainty="mc_dropout")
    pd.testing.assert_series_equal(  # seeded: the same numbers twice
        pd.read_csv(again)["mutual_information"], table["mutual_information"]
    )
    with pytest.raises(ConfigError, match="mc_dropout needs a network with dropout"):
        predict_files(members[1], [small_npz], out, uncertainty="mc_dropout")
