"""Streaming shares the readers' voxel budget (issue 13): a decompression bomb in an archive is
one error row, refused from its header in the decoding worker, and the others are predicted.
``$MEDLENS_MAX_VOXELS`` reaches the worker processes."""

from __future__ import annotations

import gzip
import shutil
import struct
import zlib
from pathlib import Path

import nibabel as nib
import numpy as np
import pandas as pd
import pytest

from medlens.data.budget import MAX_VOXELS_ENV
from medlens.streaming import stream_predict


def _png_declaring(path: Path, width: int, height: int) -> None:
    def chunk(kind: bytes, data: bytes) -> bytes:
        return (
            struct.pack(">I", len(data)) + kind + data + struct.pack(">I", zlib.crc32(kind + data))
        )

    ihdr = struct.pack(">IIBBBBB", width, height, 8, 0, 0, 0, 0)
    path.write_bytes(
        b"\x89PNG\r\n\x1a\n"
        + chunk(b"IHDR", ihdr)
        + chunk(b"IDAT", zlib.compress(b"\x00" * 1024))
        + chunk(b"IEND", b"")
    )


@pytest.fixture
def archive_with_bombs(png_folder: Path, tmp_path: Path) -> Path:
    folder = tmp_path / "archive"
    folder.mkdir()
    for name in ("chest_000.png", "chest_001.png", "chest_002.png"):
        shutil.copy(png_folder / name, folder / name)
    _png_declaring(folder / "chest_001b.png", 60000, 60000)
    header = nib.Nifti1Header()
    header.set_data_shape((4096, 4096, 4096))
    header.set_data_dtype(np.float32)
    (folder / "chest_002b.nii.gz").write_bytes(
        gzip.compress(header.binaryblock + b"\x00" * 4 + b"\x00" * 2**16)
    )
    return folder


def test_bombs_are_error_rows_refused_before_decoding_in_the_workers(
    pneumonia_run: Path, archive_with_bombs: Path, tmp_path: Path, monkeypatch: pytest.MonkeyPatch
):
    monkeypatch.delenv(MAX_VOXELS_ENV, raising=False)
    out = tmp_path / "rows.parquet"
    summary = stream_predict(
        pneumonia_run, archive_with_bombs, out, workers=2, batch_size=2, progress=False
    )
    assert (summary.predicted, summary.errors) == (3, 2)
    rows = pd.read_parquet(out).set_index("case_id")
    for name in ("chest_001b.png", "chest_002b.nii.gz"):
        error = rows.loc[str(archive_with_bombs / name), "error"]
        assert "voxels" in error and "refused before decoding" in error, error
    assert rows.error.isna().sum() == 3


def test_the_environment_budget_reaches_the_decoding_processes(
    pneumonia_run: Path, png_folder: Path, tmp_path: Path, monkeypatch: pytest.MonkeyPatch
):
    folder = tmp_path / "two"
    folder.mkdir()
    for name in ("chest_000.png", "chest_001.png"):
        shutil.copy(png_folder / name, folder / name)
    monkeypatch.setenv(MAX_VOXELS_ENV, "500")  # a 28 x 28 radiograph is 784 voxels
    out = tmp_path / "rows.csv"
    summary = stream_predict(pneumonia_run, folder, out, workers=2, batch_size=2, progress=False)
    assert (summary.predicted, summary.errors) == (0, 2)
    errors = pd.read_csv(out).error
    assert all("784 voxels" in e and "limit of 500" in e for e in errors)
