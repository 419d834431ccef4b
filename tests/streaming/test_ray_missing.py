"""Ray is an optional extra: without it the Ray engine says how to get it."""

from __future__ import annotations

import sys
from pathlib import Path

import pytest

from medlens.errors import ConfigError
from medlens.streaming import stream_predict


def test_the_ray_engine_without_ray_names_the_extra(
    pneumonia_run: Path, png_folder: Path, tmp_path: Path, monkeypatch: pytest.MonkeyPatch
) -> None:
    monkeypatch.setitem(sys.modules, "ray", None)  # import ray -> ImportError
    monkeypatch.setitem(sys.modules, "ray.data", None)
    with pytest.raises(ConfigError, match=r"medlens\[ray\]"):
        stream_predict(
            pneumonia_run, [png_folder], tmp_path / "out.parquet", engine="ray", progress=False
        )
