"""Pipeline fixtures: the real WBC images (a stratified handful, linked from ../shared/data),
a synthetic set for error paths, and pipeline configs small enough for a test."""

from __future__ import annotations

import csv
from collections.abc import Callable
from pathlib import Path
from typing import Any

import numpy as np
import PIL.Image
import pytest
import yaml

WBC_TYPES = {
    "1": "neutrophil",
    "2": "lymphocyte",
    "3": "monocyte",
    "4": "eosinophil",
    "5": "basophil",
}


def wbc_data(root: Path, **extra: Any) -> dict[str, Any]:
    """The data section of a pipeline on the WBC layout at ``root``."""
    return {
        "path": str(root),
        "images": "Dataset 1/*.bmp",
        "masks": "Dataset 1/{stem}.png",
        "mask_values": {"cytoplasm": 128, "nucleus": 255},
        "labels": "Class Labels of Dataset 1.csv",
        "id_column": "image ID",
        "label_column": "class label",
        "class_names": WBC_TYPES,
        **extra,
    }


@pytest.fixture(scope="session")
def wbc_subset(
    shared_data: Path, wbc_labels: dict[int, str], tmp_path_factory: pytest.TempPathFactory
) -> Path:
    """The WBC layout with 8 neutrophils and 8 lymphocytes (links to the real files) and the
    real labels file."""
    source = shared_data / "wbc_cells"
    chosen = [i for i in sorted(wbc_labels) if wbc_labels[i] == "1"][:8]
    chosen += [i for i in sorted(wbc_labels) if wbc_labels[i] == "2"][:8]
    root = tmp_path_factory.mktemp("wbc")
    (root / "Dataset 1").mkdir()
    for i in chosen:
        for suffix in (".bmp", ".png"):
            name = f"{i:03d}{suffix}"
            (root / "Dataset 1" / name).symlink_to(source / "Dataset 1" / name)
    (root / "Class Labels of Dataset 1.csv").symlink_to(source / "Class Labels of Dataset 1.csv")
    return root


def synthetic_cells(root: Path, n_per_class: int = 4, size: int = 48) -> Path:
    """Two classes of round cells: class "small" has a small nucleus, "large" a large one;
    masks 0 / 128 (cytoplasm) / 255 (nucleus); labels in labels.csv (id, label)."""
    rng = np.random.default_rng(0)
    (root / "images").mkdir(parents=True)
    rows = []
    yy, xx = np.mgrid[:size, :size]
    for k in range(2 * n_per_class):
        label = "small" if k % 2 == 0 else "large"
        cy, cx = rng.integers(18, size - 18, size=2)
        r = np.hypot(yy - cy, xx - cx)
        mask = np.where(r < 14, 128, 0).astype(np.uint8)
        mask[r < (5 if label == "small" else 10)] = 255
        image = np.stack([200 - mask * 0.5, 180 - mask * 0.4, 220 - mask * 0.2], -1)
        image = np.clip(image + rng.normal(0, 5, image.shape), 0, 255).astype(np.uint8)
        PIL.Image.fromarray(image).save(root / "images" / f"{k:03d}.png")
        PIL.Image.fromarray(mask).save(root / "images" / f"{k:03d}_mask.png")
        rows.append({"id": str(k), "label": label})
    with open(root / "labels.csv", "w", newline="") as handle:
        writer = csv.DictWriter(handle, fieldnames=["id", "label"])
        writer.writeheader()
        writer.writerows(rows)
    return root


def synthetic_data(root: Path, **extra: Any) -> dict[str, Any]:
    return {
        "path": str(root),
        "images": "images/[0-9][0-9][0-9].png",
        "masks": "images/{stem}_mask.png",
        "mask_values": {"cytoplasm": 128, "nucleus": 255},
        "labels": "labels.csv",
        "folds": 2,
        **extra,
    }


@pytest.fixture()
def write_config(tmp_path: Path) -> Callable[[dict[str, Any]], Path]:
    """Write a config mapping as YAML; the file's path."""

    def write(config: dict[str, Any], name: str = "pipeline.yaml") -> Path:
        path = tmp_path / name
        path.write_text(yaml.safe_dump(config), encoding="utf-8")
        return path

    return write


TINY_UNET = {
    "preprocess": [{"name": "fixed_scale", "divisor": 255}],
    "model": {"name": "unet", "channels": [8, 16, 32]},
    "segmentation": {"patch_size": [32, 32], "patches_per_image": 2},
    "train": {"epochs": 1, "batch_size": 8},
}
TINY_CNN = {
    "preprocess": [{"name": "fixed_scale", "divisor": 255}],
    "model": {"name": "small_cnn"},
    "train": {"epochs": 1, "batch_size": 8},
}


def four_phase(data: dict[str, Any], out: Path, name: str = "tiny") -> dict[str, Any]:
    """segment -> crop -> handcrafted (nucleus, cell) + deep features -> logistic regression."""
    return {
        "kind": "pipeline",
        "name": name,
        "output_dir": str(out),
        "n_bootstrap": 20,
        "examples": 2,
        "data": data,
        "stages": [
            {"name": "segment", "kind": "segment", "crossfit_folds": 2, "run": TINY_UNET},
            {"name": "cell", "kind": "crop", "input": "segment", "size": [32, 32]},
            {
                "name": "features",
                "kind": "features",
                "masks": "segment",
                "regions": {"nucleus": ["nucleus"], "cell": ["nucleus", "cytoplasm"]},
                "handcrafted": {"bins": 8, "families": ["firstorder", "shape"], "channels": [1]},
                "deep": {"backbone": "small_cnn", "crop": "cell"},
            },
            {"name": "classify", "kind": "classify", "input": "features",
             "estimator": {"name": "logistic_regression"}},
        ],
    }  # fmt: skip


@pytest.fixture()
def cells_dir(tmp_path: Path) -> Path:
    """Synthetic cells (8 images of 48 px, 2 classes) with masks and labels."""
    return synthetic_cells(tmp_path / "cells")


@pytest.fixture()
def cells_data() -> Callable[..., dict[str, Any]]:
    """``cells_data(root, **overrides)``: the data section of ``synthetic_cells``."""
    return synthetic_data


@pytest.fixture(scope="session")
def wbc_section() -> Callable[..., dict[str, Any]]:
    """``wbc_section(root, **overrides)``: the data section of the WBC layout."""
    return wbc_data


@pytest.fixture(scope="session")
def tiny_four_phase() -> Callable[..., dict[str, Any]]:
    """``tiny_four_phase(data, out, name)``: a four-phase pipeline config small enough for a test."""
    return four_phase


@pytest.fixture(scope="session")
def tiny_runs() -> dict[str, dict[str, Any]]:
    """Run fragments of a tiny U-Net and a tiny CNN."""
    return {"unet": TINY_UNET, "cnn": TINY_CNN}


@pytest.fixture()
def make_cells(tmp_path: Path) -> Callable[[int], Path]:
    """``make_cells(n_per_class)``: synthetic cells of that many per class."""
    return lambda n: synthetic_cells(tmp_path / f"cells{n}", n_per_class=n)
