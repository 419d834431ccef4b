"""``medlens demo`` / ``make demo``: the main job on real data, with a report at the end."""

from __future__ import annotations

from pathlib import Path

from medlens.config import parse_config
from medlens.errors import InputError

DEMO_FILE = "pneumoniamnist.npz"


def demo_config(data: Path, output_dir: Path, minutes: float) -> dict:
    """ResNet-18 on PneumoniaMNIST resized to 64 px, with flips, affine and contrast
    augmentation, a class-weighted loss, a cosine schedule fitted to ``minutes`` and the
    threshold chosen on validation (the recipe of configs/pneumoniamnist_resnet18.yaml)."""
    return {
        "name": "demo-pneumoniamnist-resnet18",
        "seed": 0,
        "output_dir": str(output_dir),
        "data": {"format": "medmnist", "path": str(data)},
        "preprocess": [
            {"name": "fixed_scale", "divisor": 255},
            {"name": "resize", "size": [64, 64]},
        ],
        "augment": [
            {"name": "random_flip", "axes": [-1], "p": 0.5},
            {"name": "random_affine", "degrees": 15, "scale": 0.15, "translation": 6, "p": 0.8},
            {"name": "random_brightness_contrast", "p": 0.5},
        ],
        "model": {"name": "resnet18", "cifar_stem": False},
        "train": {
            "epochs": 60,
            "batch_size": 128,
            "lr": 2e-3,
            "max_minutes": minutes,
            "early_stopping_patience": None,
            "tta_flip": True,
        },
        "evaluate": {"n_bootstrap": 1000},
    }


def run_demo(data: Path, output_dir: Path = Path("runs"), minutes: float = 4.0) -> Path:
    """Train the demo model. When ``data`` is missing, say which file to put where."""
    from medlens.commands.train import train_and_report

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
    return train_and_report(config, overwrite=True)
