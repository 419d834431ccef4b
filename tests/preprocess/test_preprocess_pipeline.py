"""Compose, build_pipeline from config, and preprocessing.json save/load."""

from __future__ import annotations

import json
from pathlib import Path

import numpy as np
import pytest

from medlens.config import TransformSpec, parse_config
from medlens.data.image import Image
from medlens.errors import ConfigError, InputError
from medlens.preprocess import Compose, build_pipeline, load_pipeline, save_pipeline
from medlens.preprocess.augmentation import RandomFlip
from medlens.preprocess.intensity import FixedScale

SPECS = [
    {"name": "fixed_scale", "divisor": 255.0},
    {"name": "random_flip", "axes": [1], "p": 0.5},
    {"name": "crop_or_pad", "size": 32},
    {"name": "random_noise", "std": 0.05, "p": 1.0},
    {"name": "to_channels", "channels": 3},
]


def _xray() -> Image:
    array = np.random.default_rng(0).integers(0, 256, (1, 28, 28)).astype(np.float32)
    return Image(array, (1.0, 1.0), source="pneumoniamnist.npz#test/0")


def test_compose_runs_in_order_and_records_every_step() -> None:
    pipeline = build_pipeline(SPECS)
    out = pipeline(_xray(), rng=np.random.default_rng(1))
    assert out.array.shape == (3, 32, 32)
    names = [step["name"] for step in out.meta["history"]]
    assert names[0] == "fixed_scale" and names[2:] == ["crop_or_pad", "noise", "to_channels"]
    assert names[1] in ("flip", "identity")
    # replaying the recorded (deterministic) history reproduces the output exactly
    replay = build_pipeline(out.meta["history"])
    assert replay.is_deterministic
    np.testing.assert_array_equal(replay(_xray()).array, out.array)


def test_compose_with_random_transforms_needs_an_rng() -> None:
    pipeline = build_pipeline(SPECS)
    assert not pipeline.is_deterministic
    with pytest.raises(ValueError, match="random_flip, random_noise"):
        pipeline(_xray())
    deterministic = pipeline.deterministic()
    assert deterministic.is_deterministic
    assert [t.name for t in deterministic] == ["fixed_scale", "crop_or_pad", "to_channels"]
    assert deterministic(_xray()).array.shape == (3, 32, 32)


def test_compose_rejects_things_that_are_not_transforms() -> None:
    with pytest.raises(TypeError):
        Compose([FixedScale(), "z_score"])  # type: ignore[list-item]


def test_same_seed_same_output() -> None:
    pipeline = build_pipeline(SPECS)
    a = pipeline(_xray(), rng=np.random.default_rng(7))
    b = pipeline(_xray(), rng=np.random.default_rng(7))
    np.testing.assert_array_equal(a.array, b.array)
    assert a.meta["history"] == b.meta["history"]


def test_build_pipeline_accepts_transform_specs_from_a_run_config(tmp_path: Path) -> None:
    config = parse_config(
        {
            "data": {"path": str(tmp_path)},
            "preprocess": [{"name": "ct_window", "preset": "lung"}, {"name": "resize", "size": 16}],
            "augment": [{"name": "random_flip"}],
        }
    )
    assert all(isinstance(s, TransformSpec) for s in config.preprocess)
    preprocess = build_pipeline(config.preprocess)
    augment = build_pipeline(config.augment, section="augment")
    hu = Image(np.full((1, 20, 20), -600.0, dtype=np.float32), (0.7, 0.7))
    out = augment(preprocess(hu), rng=np.random.default_rng(0))
    assert out.spatial_shape == (16, 16)
    np.testing.assert_allclose(out.array, 0.5)
    assert [t.to_config() for t in augment] == [RandomFlip().to_config()]


def test_unknown_transform_name_is_a_config_error_with_its_index() -> None:
    specs = [{"name": "z_score"}, {"name": "resize", "size": 8}, {"name": "clahee"}]
    with pytest.raises(ConfigError) as info:
        build_pipeline(specs)
    assert info.value.key == "preprocess[2].name"
    assert "clahee" in info.value.reason and "clahe" in info.value.reason
    with pytest.raises(ConfigError) as info:
        build_pipeline([TransformSpec(name="nope")], section="augment")
    assert info.value.key == "augment[0].name"


@pytest.mark.parametrize(
    ("spec", "key", "words"),
    [
        ({"name": "gamma", "gama": 0.8}, "preprocess[0]", ["gamma", "gama"]),
        ({"name": "resize"}, "preprocess[0]", ["resize", "size"]),
        ({"name": "gamma", "gamma": -1.0}, "preprocess[0].gamma", ["gamma", "> 0.0"]),
        ({"name": "ct_window", "preset": "heart"}, "preprocess[0].preset", ["ct_window", "lung"]),
        ({"name": "random_flip", "p": "often"}, "preprocess[0].p", ["random_flip", "number"]),
        ({"size": 3}, "preprocess[0].name", ["name"]),
        ("z_score", "preprocess[0]", ["mapping"]),
    ],
)
def test_bad_parameters_name_the_transform_and_the_reason(spec, key: str, words: list[str]) -> None:
    with pytest.raises(ConfigError) as info:
        build_pipeline([spec])
    assert info.value.key == key
    for word in words:
        assert word in info.value.reason


def test_save_and_load_round_trip_keeps_the_deterministic_part(tmp_path: Path) -> None:
    pipeline = build_pipeline(SPECS)
    path = save_pipeline(pipeline, tmp_path)
    assert path == tmp_path / "preprocessing.json"
    assert sorted(p.name for p in tmp_path.iterdir()) == ["preprocessing.json"]  # no temp left
    document = json.loads(path.read_text())
    assert [t["name"] for t in document["transforms"]] == [
        "fixed_scale",
        "crop_or_pad",
        "to_channels",
    ]

    loaded = load_pipeline(path)
    assert loaded.to_config() == pipeline.deterministic().to_config()
    np.testing.assert_array_equal(loaded(_xray()).array, pipeline.deterministic()(_xray()).array)
    np.testing.assert_array_equal(load_pipeline(tmp_path)(_xray()).array, loaded(_xray()).array)


def test_save_overwrites_atomically(tmp_path: Path) -> None:
    target = tmp_path / "preprocessing.json"
    save_pipeline(build_pipeline([{"name": "z_score"}]), target)
    save_pipeline(build_pipeline([{"name": "scale_intensity"}]), target)
    assert [t.name for t in load_pipeline(target)] == ["scale_intensity"]
    assert len(list(tmp_path.iterdir())) == 1


def test_load_pipeline_reports_bad_files(tmp_path: Path) -> None:
    with pytest.raises(InputError, match="not found"):
        load_pipeline(tmp_path / "missing.json")
    broken = tmp_path / "broken.json"
    broken.write_text('{"transforms": [')
    with pytest.raises(InputError, match="not valid JSON"):
        load_pipeline(broken)
    wrong = tmp_path / "wrong.json"
    wrong.write_text('{"model": "resnet18"}')
    with pytest.raises(InputError, match="no 'transforms' list"):
        load_pipeline(wrong)
    unknown = tmp_path / "unknown.json"
    unknown.write_text('{"transforms": [{"name": "z_score"}, {"name": "sharpen"}]}')
    with pytest.raises(ConfigError) as info:
        load_pipeline(unknown)
    assert info.value.key == "transforms[1].name" and info.value.source == str(unknown)
