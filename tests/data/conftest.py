"""Fixtures of the data-layer tests: pydicom's own test files and copies of the real CT."""

from __future__ import annotations

import shutil
from collections.abc import Callable
from pathlib import Path

import pytest
from pydicom.data import get_testdata_file


def _dicom_testfile(name: str) -> Path:
    path = get_testdata_file(name, download=False)
    assert path is not None, f"pydicom test file {name} is not installed (pydicom-data missing?)"
    return Path(str(path))


@pytest.fixture(scope="session")
def dicom_testfile() -> Callable[[str], Path]:
    """Path of a file shipped with pydicom or pydicom-data (never downloaded)."""
    return _dicom_testfile


@pytest.fixture
def ct_copy(ct_dir: Path, tmp_path: Path) -> Path:
    """A writable copy of the three real CT slices (ct/01.dcm, 02.dcm, 03.dcm)."""
    target = tmp_path / "ct"
    shutil.copytree(ct_dir, target)
    return target
