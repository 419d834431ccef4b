"""A folder of real PneumoniaMNIST images as PNG files, with one corrupt file in the middle
(the run that predicts them is ``pneumonia_run`` of tests/conftest.py)."""

from __future__ import annotations

from pathlib import Path

import numpy as np
import pytest
from PIL import Image as PILImage

from medlens.data.medmnist import load_medmnist_npz

N_IMAGES = 40
CORRUPT = "chest_019b.png"  # sorts between chest_019 and chest_020


@pytest.fixture(scope="session")
def png_folder(pneumonia_npz: Path, tmp_path_factory: pytest.TempPathFactory) -> Path:
    """40 real test-split radiographs (28 px PNG) and one truncated PNG among them."""
    folder = tmp_path_factory.mktemp("pngs")
    images = load_medmnist_npz(pneumonia_npz).images["test"][:N_IMAGES]
    for i, image in enumerate(images):
        PILImage.fromarray(np.asarray(image, dtype=np.uint8)).save(folder / f"chest_{i:03d}.png")
    good = (folder / "chest_000.png").read_bytes()
    (folder / CORRUPT).write_bytes(good[: len(good) // 3])
    (folder / "notes.txt").write_text("not an image: passed over")
    return folder


@pytest.fixture(scope="session")
def corrupt_png(png_folder: Path) -> Path:
    """The truncated PNG of ``png_folder`` (its other files are the N_IMAGES good ones)."""
    return png_folder / CORRUPT


@pytest.fixture(scope="session")
def n_images() -> int:
    return N_IMAGES
