"""Small, fast run configs on the real PneumoniaMNIST file."""

from __future__ import annotations

from pathlib import Path
from typing import Any

import pytest


@pytest.fixture
def tiny_config(pneumonia_npz: Path, tmp_path: Path) -> dict[str, Any]:
    """A config that trains a small CNN on 5% of the training split for 2 epochs."""
    return {
        "name": "tiny",
        "seed": 3,
        "output_dir": str(tmp_path / "runs"),
        "data": {"format": "medmnist", "path": str(pneumonia_npz), "train_fraction_used": 0.05},
        "preprocess": [{"name": "fixed_scale", "divisor": 255}],
        "augment": [{"name": "random_flip", "axes": [-1], "p": 0.5}],
        "model": {"name": "small_cnn"},
        "train": {"epochs": 2, "batch_size": 32, "lr": 3e-3, "warmup_epochs": 0.5},
        "evaluate": {"n_bootstrap": 50},
    }
