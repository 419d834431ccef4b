"""benchmarks/classical.py: every run of a dataset (deep, handcrafted, hybrid) reads the file
its recipe in configs/ trains on, so the deep runs are the recipe a user gets and the
ensembles combine runs of the same images."""

from __future__ import annotations

import argparse
import sys
from pathlib import Path

import pytest
import yaml

REPO = Path(__file__).resolve().parents[2]
sys.path.insert(0, str(REPO / "benchmarks"))
import classical  # noqa: E402


@pytest.mark.parametrize("dataset", classical.DATASETS)
def test_every_run_reads_the_recipes_data(dataset: str, tmp_path: Path) -> None:
    recipe = yaml.safe_load(classical.RECIPES[dataset].read_text())
    wanted = Path(recipe["data"]["path"]).name
    args = argparse.Namespace(train_fraction=1.0, n_bootstrap=10)
    deep = classical.deep_config(dataset, 0, 1.0, args, tmp_path)
    handcrafted = classical.classical_config(dataset, "svm_rbf", args, tmp_path)
    hybrid = classical.hybrid_config(dataset, tmp_path / "deep-s0", args, tmp_path)
    paths = {Path(raw["data"]["path"]) for raw in (deep, handcrafted, hybrid)}
    assert paths == {classical.recipe_data(dataset)}
    assert classical.recipe_data(dataset).name == wanted
    assert classical.recipe_data(dataset).is_file()
    # the deep run is the recipe itself, with the benchmark's seed, budget and folders only
    assert deep["model"] == recipe["model"] and deep["seed"] == 0
    assert deep["train"]["max_minutes"] == 1.0


def test_adrenal_runs_read_the_64_voxel_volumes() -> None:
    # the 28-voxel file was read here while the recipe had moved to 64 voxels
    assert classical.recipe_data("adrenal").name == "adrenalmnist3d_64.npz"
