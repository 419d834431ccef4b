"""``medlens demo`` / ``make demo``: the main job on real data, with a report at the end."""

from __future__ import annotations

from pathlib import Path

from medlens.config import parse_config
from medlens.errors import InputError

DEMO_FILE = "pneumoniamnist.npz"


def demo_config(data: Path, output_dir: Path, minutes: float) -> dict:
    """ResNet-18 (CIFAR-style stem) on PneumoniaMNIST with flips, class-weighted loss,
    a time-budgeted cosine schedule and the threshold chosen on validation."""
    return {
        "name": "demo-pneumoniamnist-resnet18",
        "seed": 0,
        "output_dir": str(output_dir),
        "data": {"format": "medmnist", "path": str(data)},
        "preprocess": [{"name": "fixed_scale", "divisor": 255}],
        "augment": [
            {"name": "random_flip", "axes": [-1], "p": 0.5},
            {"name": "random_affine", "degrees": 10, "scale": 0.1, "translation": 2, "p": 0.5},
        ],
        "model": {"name": "resnet18"},
        "train": {
            "epochs": 30,
            "batch_size": 128,
            "lr": 2e-3,
            "max_minutes": minutes,
            "early_stopping_patience": None,
        },
        "evaluate": {"n_bootstrap": 500},
    }


def run_demo(data: Path, output_dir: Path = Path("runs"), minutes: float = 4.0) -> Path:
    """Train the demo model. When ``data`` is missing, say which file to put where."""
    from medlens.train.run import train_from_config

    data = Path(data)
    if not data.is_file():
        target = data if data.suffix == ".npz" else data / DEMO_FILE
        raise InputError(
            target,
            f"PneumoniaMNIST not found. Put the MedMNIST v2 file {DEMO_FILE} there "
            f"(https://zenodo.org/records/10519652/files/{DEMO_FILE}), or run "
            f"`medlens download pneumoniamnist --root {target.parent}` when online, "
            "or pass --data PATH",
        )
    config = parse_config(demo_config(data, output_dir, minutes))
    return train_from_config(config, overwrite=True)
