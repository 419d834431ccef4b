"""Config validation: malformed configs name the key and the reason."""

from __future__ import annotations

from pathlib import Path

import pytest
import yaml

from medlens.config import RunConfig, parse_config
from medlens.errors import ConfigError
from medlens.tasks import load_config


def _write(tmp_path: Path, raw: object) -> Path:
    path = tmp_path / "c.yaml"
    path.write_text(yaml.safe_dump(raw))
    return path


def test_defaults_are_written_out(tmp_path: Path) -> None:
    cfg = load_config(_write(tmp_path, {"data": {"path": "x.npz"}}))
    resolved = yaml.safe_load(cfg.to_yaml())
    assert resolved["train"]["threshold"] == "youden_plateau"  # issue 16: the stable rule
    assert resolved["calibration"]["method"] == "temperature"
    assert resolved["refer"]["rule"] == "coverage" and resolved["ood"]["score"] == "mahalanobis"
    assert resolved["model"]["name"] == "resnet18"
    assert Path(resolved["data"]["path"]).is_absolute()
    assert RunConfig.model_validate(resolved) == cfg


@pytest.mark.parametrize(
    ("raw", "key"),
    [
        ({"data": {"path": "x"}, "train": {"lr": -1}}, "train.lr"),
        ({"data": {"path": "x"}, "train": {"epochs": "many"}}, "train.epochs"),
        ({"data": {"path": "x"}, "trian": {}}, "trian"),
        ({}, "data"),
        ({"data": {"path": "x", "format": "xls"}}, "data.format"),
        (
            {
                "data": {"path": "x"},
                "preprocess": [{"name": "fixed_scale", "divisor": 1}, {"name": "nope"}],
            },
            "preprocess[1].name",
        ),
        ({"data": {"path": "x"}, "name": "../escape"}, "name"),
    ],
)
def test_malformed_config_names_the_key(tmp_path: Path, raw: dict, key: str) -> None:
    with pytest.raises(ConfigError) as info:
        load_config(_write(tmp_path, raw))
    assert info.value.key == key
    assert str(tmp_path / "c.yaml") in str(info.value)


def test_invalid_yaml_and_missing_file(tmp_path: Path) -> None:
    bad = tmp_path / "bad.yaml"
    bad.write_text("data: {path: [unclosed\n")
    with pytest.raises(ConfigError, match="not valid YAML"):
        load_config(bad)
    with pytest.raises(ConfigError, match="not found"):
        load_config(tmp_path / "absent.yaml")
    with pytest.raises(ConfigError, match="mapping"):
        parse_config(["a", "list"])


def test_overrides_are_validated(tmp_path: Path) -> None:
    path = _write(tmp_path, {"data": {"path": "x"}})
    assert load_config(path, {"train.epochs": 3}).train.epochs == 3
    with pytest.raises(ConfigError, match="train.epochs"):
        load_config(path, {"train.epochs": 0})


def test_random_transform_in_preprocess_is_refused(tmp_path: Path) -> None:
    raw = {"data": {"path": "x"}, "preprocess": [{"name": "random_flip", "axes": [-1]}]}
    with pytest.raises(ConfigError, match="belong under augment") as info:
        load_config(_write(tmp_path, raw))
    assert info.value.key == "preprocess[0].name"


def test_bad_transform_parameter_names_the_entry(tmp_path: Path) -> None:
    raw = {"data": {"path": "x"}, "augment": [{"name": "random_flip", "p": 7}]}
    with pytest.raises(ConfigError) as info:
        load_config(_write(tmp_path, raw))
    assert info.value.key.startswith("augment[0]")


def test_unreadable_config_paths_and_overrides(tmp_path: Path) -> None:
    with pytest.raises(ConfigError, match="folder"):
        load_config(tmp_path)
    binary = tmp_path / "b.yaml"
    binary.write_bytes(b"\xff\xfe\x00\x81")
    with pytest.raises(ConfigError, match="text"):
        load_config(binary)
    empty_train = tmp_path / "e.yaml"
    empty_train.write_text("data: {path: x}\ntrain:\n")
    assert load_config(empty_train, {"train.epochs": 4}).train.epochs == 4
    with pytest.raises(ConfigError, match="not a mapping"):
        load_config(empty_train, {"data.path.x": 1})
