"""benchmarks/_machine.py: a recipe's data path, as configs/ write it, found under the shared
data wherever that lives."""

from __future__ import annotations

import sys
from pathlib import Path

import pytest
import yaml

REPO = Path(__file__).resolve().parents[2]
sys.path.insert(0, str(REPO / "benchmarks"))
import _machine  # noqa: E402


def test_a_config_path_maps_under_the_shared_data(monkeypatch, tmp_path: Path) -> None:
    monkeypatch.setattr(_machine, "SHARED_DATA", tmp_path)
    path = _machine.shared_path("../shared/data/adrenalmnist3d/adrenalmnist3d_64.npz")
    assert path == tmp_path / "adrenalmnist3d" / "adrenalmnist3d_64.npz"


def test_a_path_outside_the_shared_data_is_refused() -> None:
    with pytest.raises(ValueError, match="not under"):
        _machine.shared_path("/elsewhere/data.npz")


@pytest.mark.parametrize("recipe", sorted((REPO / "configs").glob("*mnist*.yaml")))
def test_every_medmnist_recipe_names_a_file_that_exists(recipe: Path) -> None:
    # The benchmarks train what the recipe names; a recipe pointing at a missing file would
    # fail only after earlier runs had spent their budget.
    path = yaml.safe_load(recipe.read_text())["data"]["path"]
    assert _machine.shared_path(path).is_file(), recipe.name
