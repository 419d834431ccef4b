"""Shared fixtures: the real data in ../shared/data (never copied into the repo)."""

from __future__ import annotations

import os
from pathlib import Path

import numpy as np
import pytest

REPO = Path(__file__).resolve().parents[1]
SHARED_DATA = Path(os.environ.get("MEDLENS_SHARED_DATA", REPO.parent / "shared" / "data"))


@pytest.fixture(scope="session")
def shared_data() -> Path:
    """The folder of real datasets. Missing data is a failure, not a skip: CI has it."""
    assert SHARED_DATA.is_dir(), f"real test data not found at {SHARED_DATA}"
    return SHARED_DATA


@pytest.fixture(scope="session")
def pneumonia_npz(shared_data: Path) -> Path:
    return shared_data / "pneumoniamnist_subset" / "pneumoniamnist.npz"


@pytest.fixture(scope="session")
def adrenal_npz(shared_data: Path) -> Path:
    return shared_data / "adrenalmnist3d" / "adrenalmnist3d.npz"


@pytest.fixture(scope="session")
def ct_dir(shared_data: Path) -> Path:
    return shared_data / "dicom_ct_liver_seg" / "ct"


@pytest.fixture(scope="session")
def drive_subset(shared_data: Path, tmp_path_factory: pytest.TempPathFactory):
    """``drive_subset(train_ids, test_ids)``: the DRIVE layout holding only those images
    (symbolic links to the real files), for segmentation runs small enough for a test."""

    def make(train_ids: tuple[str, ...], test_ids: tuple[str, ...]) -> Path:
        source = shared_data / "drive_retina_vessels"
        root = tmp_path_factory.mktemp("drive")
        for split, ids, tag in (("training", train_ids, "training"), ("test", test_ids, "test")):
            for sub in ("images", "1st_manual", "mask"):
                (root / split / sub).mkdir(parents=True)
            for number in ids:
                for sub, name in (
                    ("images", f"{number}_{tag}.tif"),
                    ("1st_manual", f"{number}_manual1.gif"),
                    ("mask", f"{number}_{tag}_mask.gif"),
                ):
                    (root / split / sub / name).symlink_to(source / split / sub / name)
        return root

    return make


@pytest.fixture
def rng() -> np.random.Generator:
    return np.random.default_rng(0)


@pytest.fixture(autouse=True)
def _seed_torch() -> None:
    try:
        import torch
    except ImportError:  # pragma: no cover - torch is a hard dependency
        return
    torch.manual_seed(0)
