"""The trainer end to end on real data: run folder, threshold on validation, resume."""

from __future__ import annotations

import json
from collections.abc import Callable
from pathlib import Path
from typing import Any

import pandas as pd
import pytest
import torch

from medlens.commands.train import train_and_report
from medlens.config import parse_config
from medlens.metrics.threshold import choose_threshold
from medlens.train.deep.run import train_from_config

RUN_FILES = [
    "config.yaml",
    "model.pt",
    "last.pt",
    "preprocessing.json",
    "labels.json",
    "metrics.json",
    "predictions.csv",
    "history.csv",
    "data_summary.json",
    "report.html",
    "model_card.md",
]


class Killed(Exception):
    """What ``kill_after`` raises: a run stopped as a kill would stop it."""


def kill_after(last_epoch: int) -> Callable[[int, dict], None]:
    """An epoch callback that stops the run after epoch ``last_epoch`` (1-based)."""

    def callback(epoch: int, record: dict) -> None:
        if epoch == last_epoch:
            raise Killed

    return callback


def test_run_folder_is_complete_and_threshold_comes_from_validation(
    tiny_config: dict[str, Any],
) -> None:
    run = train_and_report(parse_config(tiny_config), progress=False)
    assert run.name == "tiny" and not run.with_name("tiny.partial").exists()
    for name in RUN_FILES:
        assert (run / name).is_file(), name
    assert any((run / "plots").glob("*.png"))

    metrics = json.loads((run / "metrics.json").read_text())
    preds = pd.read_csv(run / "predictions.csv")
    assert set(preds["split"]) == {"val", "test"}
    assert (preds["split"] == "test").sum() == 624 and (preds["split"] == "val").sum() == 524
    val = preds[preds["split"] == "val"]
    prob_columns = [c for c in preds.columns if c.startswith("prob_")]
    assert {"pred_label", "decision", "refer", "refer_reason", "ood", "ood_score"} <= set(
        preds.columns
    )
    assert (preds["pred_label"] == preds["pred"].map({0: "normal", 1: "pneumonia"})).all()
    assert len(prob_columns) == 2
    # the default rule since issue 16, on the calibrated validation probabilities
    expected = choose_threshold(
        val["label"].to_numpy(), val[prob_columns[1]].to_numpy(), "youden_plateau"
    )
    assert metrics["threshold"] == pytest.approx(expected)
    test_auc = metrics["splits"]["test"]["metrics"]["auc"]
    assert test_auc["ci_low"] <= test_auc["value"] <= test_auc["ci_high"]
    summary = json.loads((run / "data_summary.json").read_text())
    assert summary["splits"]["train"]["n"] == pytest.approx(0.05 * 3882, abs=2)
    history = pd.read_csv(run / "history.csv")
    assert list(history["epoch"]) == [1, 2]


@pytest.mark.parametrize("ema_half_life_epochs", [None, 0.5])
def test_same_seed_same_numbers_and_resume_after_kill(
    tiny_config: dict[str, Any], tmp_path: Path, ema_half_life_epochs: float | None
) -> None:
    tiny_config["train"].update(epochs=3, ema_half_life_epochs=ema_half_life_epochs)
    straight = train_from_config(parse_config(tiny_config), progress=False)
    reference = torch.load(straight / "model.pt", weights_only=False)["model"]
    tiny_config["output_dir"] = str(tmp_path / "resumed")
    cfg = parse_config(tiny_config)
    with pytest.raises(Killed):
        train_from_config(cfg, callbacks=[kill_after(2)], progress=False)
    assert (tmp_path / "resumed" / "tiny.partial" / "last.pt").is_file()
    assert not (tmp_path / "resumed" / "tiny").exists()
    resumed = train_from_config(cfg, resume=True, progress=False)
    again = torch.load(resumed / "model.pt", weights_only=False)["model"]
    for key, value in reference.items():
        assert torch.equal(value, again[key]), key
    # the whole training state, the moving average included, not only the kept epoch
    last_straight = torch.load(straight / "last.pt", weights_only=False)
    last_resumed = torch.load(resumed / "last.pt", weights_only=False)
    for part in ("model", "ema") if ema_half_life_epochs else ("model",):
        for key, value in last_straight[part].items():
            assert torch.equal(value, last_resumed[part][key]), (part, key)
    m1 = json.loads((straight / "metrics.json").read_text())["splits"]["test"]["metrics"]
    m2 = json.loads((resumed / "metrics.json").read_text())["splits"]["test"]["metrics"]
    assert m1["auc"]["value"] == m2["auc"]["value"]
    history = pd.read_csv(resumed / "history.csv")
    assert len(history) == 3
    assert ("val_auc_raw" in history.columns) == (ema_half_life_epochs is not None)


def test_existing_run_is_not_overwritten(tiny_config: dict[str, Any]) -> None:
    tiny_config["train"]["epochs"] = 1
    cfg = parse_config(tiny_config)
    train_from_config(cfg, progress=False)
    from medlens.errors import ConfigError

    with pytest.raises(ConfigError, match="already exists"):
        train_from_config(cfg, progress=False)


def test_balanced_sampler_and_linear_probe_from_checkpoint(
    tiny_config: dict[str, Any], tmp_path: Path
) -> None:
    tiny_config["train"]["epochs"] = 1
    source = train_from_config(parse_config(tiny_config), progress=False)
    tiny_config.update(name="probe")
    tiny_config["model"].update(init=str(source / "model.pt"), strategy="linear_probe")
    tiny_config["train"]["imbalance"] = "balanced_sampler"
    run = train_from_config(parse_config(tiny_config), progress=False)
    start = torch.load(source / "model.pt", weights_only=False)["model"]
    probed = torch.load(run / "model.pt", weights_only=False)["model"]
    from medlens.models import create_model

    model = create_model("small_cnn", 1, 2, 2, input_size=28)
    head = next(name for name, module in model.named_modules() if module is model.head)
    frozen = [k for k in start if not k.startswith(head + ".")]
    assert frozen and all(torch.equal(start[k], probed[k]) for k in frozen)
    assert not all(torch.equal(start[k], probed[k]) for k in start if k.startswith(head + "."))


@pytest.mark.parametrize(
    ("name", "key", "value"),
    [
        ("lenet5", "channels", [8, 16, 32]),
        ("small_cnn", "deep_supervision", True),
        ("resnet18", "stem_stride", 2),
    ],
)
def test_a_setting_the_model_does_not_have_is_refused_before_a_run_folder(
    tiny_config: dict[str, Any], name: str, key: str, value: Any
) -> None:
    from medlens.errors import ConfigError

    tiny_config["model"] = {"name": name, key: value}
    with pytest.raises(ConfigError, match=f"model.{key}"):
        train_and_report(parse_config(tiny_config), progress=False)
    assert not (Path(tiny_config["output_dir"]) / tiny_config["name"]).exists()


def test_a_3d_run_trains_channels_last_and_resumes_exactly(
    adrenal_npz: Path, tmp_path: Path
) -> None:
    """3D networks train in the channels-last layout on the CPU (faster, same numbers); a
    killed run still resumes to the same weights, and its checkpoint loads anywhere."""
    from medlens.models import model_from_config

    config = {
        "name": "tiny3d",
        "seed": 5,
        "output_dir": str(tmp_path / "straight"),
        "data": {"format": "medmnist", "path": str(adrenal_npz), "train_fraction_used": 0.1},
        "preprocess": [{"name": "fixed_scale", "divisor": 255}],
        "model": {"name": "small_cnn", "channels": [4, 8]},
        "train": {"epochs": 2, "batch_size": 16, "lr": 3e-3},
        "evaluate": {"n_bootstrap": 20},
    }
    straight = train_from_config(parse_config(config), progress=False)
    checkpoint = torch.load(straight / "model.pt", weights_only=False)
    saved = checkpoint["model"]
    assert saved["block2.0.weight"].is_contiguous(memory_format=torch.channels_last_3d)
    assert not saved["block2.0.weight"].is_contiguous()
    config["output_dir"] = str(tmp_path / "resumed")
    cfg = parse_config(config)
    with pytest.raises(Killed):
        train_from_config(cfg, callbacks=[kill_after(1)], progress=False)
    resumed = train_from_config(cfg, resume=True, progress=False)
    again = torch.load(resumed / "model.pt", weights_only=False)["model"]
    for key, value in saved.items():
        assert torch.equal(value, again[key]), key

    fresh = model_from_config(checkpoint["model_config"])
    fresh.load_state_dict(saved)
    assert fresh.block2[0].weight.is_contiguous()


def test_a_validation_split_without_a_class_stops_the_run_before_training(
    tiny_config: dict[str, Any], pneumonia_npz: Path, tmp_path: Path
) -> None:
    import numpy as np

    from medlens.errors import InputError

    arrays = dict(np.load(pneumonia_npz))
    keep = arrays["val_labels"].reshape(-1) == 1
    arrays["val_images"], arrays["val_labels"] = (
        arrays["val_images"][keep],
        arrays["val_labels"][keep],
    )
    one_class = tmp_path / "one_class_val.npz"
    np.savez(one_class, **arrays)
    tiny_config["data"]["path"] = str(one_class)
    epochs: list[int] = []
    with pytest.raises(InputError, match="one_class_val.npz.*no case of class"):
        train_from_config(
            parse_config(tiny_config),
            progress=False,
            callbacks=[lambda epoch, record: epochs.append(epoch)],
        )
    assert epochs == []
    assert not (tmp_path / "runs").exists() or not any((tmp_path / "runs").iterdir())
