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
