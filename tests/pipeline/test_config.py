"""The pipeline config: stages wired to earlier stages of the right kind, one clear error."""

from __future__ import annotations

from pathlib import Path

import pytest

from medlens.errors import ConfigError
from medlens.pipeline.config import EnsembleConfig, is_pipeline_file, parse_pipeline, read_pipeline

REPO = Path(__file__).resolve().parents[2]


def _config(stages: list[dict]) -> dict:
    data = {"path": "d", "images": "*.png", "labels": "l.csv"}
    return {"kind": "pipeline", "data": data, "stages": stages}


def test_a_stage_reading_a_later_or_unknown_stage_is_refused() -> None:
    stages = [
        {"name": "crop", "kind": "crop", "input": "segment"},
        {"name": "segment", "kind": "segment"},
        {"name": "classify", "kind": "classify", "input": "crop"},
    ]
    with pytest.raises(
        ConfigError, match="stage 'crop' takes 'segment', which is not an earlier stage"
    ):
        parse_pipeline(_config(stages))


def test_a_stage_reading_a_stage_of_the_wrong_kind_is_refused() -> None:
    stages = [
        {"name": "segment", "kind": "segment"},
        {"name": "cell", "kind": "crop", "input": "segment"},
        {"name": "features", "kind": "features", "masks": "cell", "regions": {"n": ["n"]},
         "handcrafted": {}},
        {"name": "classify", "kind": "classify", "input": "features"},
    ]  # fmt: skip
    with pytest.raises(ConfigError, match="takes 'cell', a crop stage; it needs a segment stage"):
        parse_pipeline(_config(stages))


def test_the_last_stage_classifies_and_names_are_unique() -> None:
    with pytest.raises(ConfigError, match="the last stage must be a classify stage"):
        parse_pipeline(_config([{"name": "segment", "kind": "segment"}]))
    twice = [{"name": "c", "kind": "classify"}, {"name": "c", "kind": "classify"}]
    with pytest.raises(ConfigError, match="two stages are named 'c'"):
        parse_pipeline(_config(twice))


def test_unknown_keys_and_bad_grey_levels_are_named() -> None:
    raw = _config([{"name": "c", "kind": "classify", "epochs": 3}])
    with pytest.raises(ConfigError, match=r"stages\[0\]\.epochs"):
        parse_pipeline(raw)
    raw = _config([{"name": "c", "kind": "classify"}])
    raw["data"]["mask_values"] = {"nucleus": 255, "cytoplasm": 255}
    with pytest.raises(ConfigError, match="its own grey level"):
        parse_pipeline(raw)


def test_every_shipped_wbc_config_parses_and_is_recognised(monkeypatch: pytest.MonkeyPatch) -> None:
    monkeypatch.chdir(REPO)
    paths = sorted((REPO / "configs" / "wbc").glob("*.yaml"))
    assert len(paths) == 6
    kinds = set()
    for path in paths:
        assert is_pipeline_file(path)
        config = read_pipeline(path)
        kinds.add(type(config).__name__)
        if isinstance(config, EnsembleConfig):
            assert len(config.members) == 5
        else:
            assert config.data.path == (REPO.parent / "shared" / "data" / "wbc_cells").resolve()
    assert kinds == {"PipelineConfig", "EnsembleConfig"}
    assert not is_pipeline_file(REPO / "configs" / "drive_unet.yaml")
