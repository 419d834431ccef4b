"""Malformed DICOM: each failure is one InputError naming the file, never a traceback."""

from __future__ import annotations

from collections.abc import Callable
from pathlib import Path

import numpy as np
import pydicom
import pytest

from medlens.data.readers import read_image
from medlens.errors import InputError

TestFile = Callable[[str], Path]


def _raises_for(path: Path, match: str) -> InputError:
    with pytest.raises(InputError, match=match) as info:
        read_image(path)
    assert info.value.path == str(path)
    return info.value


def test_pydicom_truncated_pixel_data(dicom_testfile: TestFile) -> None:
    _raises_for(dicom_testfile("MR_truncated.dcm"), "could not be decoded .*less than expected")


@pytest.mark.filterwarnings("ignore:End of file reached before delimiter")
def test_pydicom_file_cut_before_its_pixel_data(dicom_testfile: TestFile) -> None:
    _raises_for(dicom_testfile("emri_small_jpeg_2k_lossless_too_short.dcm"), "no pixel data")


def test_object_without_pixels(dicom_testfile: TestFile) -> None:
    _raises_for(dicom_testfile("rtplan.dcm"), "no pixel data .RT Plan Storage")


def test_jpeg_the_decoders_cannot_read(dicom_testfile: TestFile) -> None:
    error = _raises_for(dicom_testfile("JPEG-lossy.dcm"), "could not be decoded")
    assert "JPEG Extended" in error.reason


@pytest.mark.parametrize("keep", [0.5, 0.05])
def test_real_ct_truncated(ct_dir: Path, tmp_path: Path, keep: float) -> None:
    data = (ct_dir / "01.dcm").read_bytes()
    (tmp_path / "cut.dcm").write_bytes(data[: int(len(data) * keep)])
    _raises_for(tmp_path / "cut.dcm", "could not be decoded .*less than expected")


def test_file_cut_inside_the_preamble(ct_dir: Path, tmp_path: Path) -> None:
    (tmp_path / "stub.dcm").write_bytes((ct_dir / "01.dcm").read_bytes()[:100])
    _raises_for(tmp_path / "stub.dcm", "not a DICOM file")


def test_unknown_transfer_syntax(dicom_testfile: TestFile, tmp_path: Path) -> None:
    ds = pydicom.dcmread(dicom_testfile("MR_small.dcm"))
    ds.file_meta.TransferSyntaxUID = "1.2.826.0.1.3680043.99999.1"  # no decoder knows it
    ds.save_as(tmp_path / "odd_syntax.dcm")
    error = _raises_for(tmp_path / "odd_syntax.dcm", "cannot be decoded")
    assert "1.2.826.0.1.3680043.99999.1" in error.reason


def test_text_file_named_dcm(tmp_path: Path) -> None:
    (tmp_path / "report.dcm").write_text("patient doing well\n" * 20)
    _raises_for(tmp_path / "report.dcm", "not a DICOM file")


def test_nan_in_float_pixel_data(dicom_testfile: TestFile, tmp_path: Path) -> None:
    ds = pydicom.dcmread(dicom_testfile("MR_small.dcm"))
    for keyword in ("PixelData", "BitsStored", "HighBit", "PixelRepresentation"):
        delattr(ds, keyword)
    values = np.full((ds.Rows, ds.Columns), 1.5, dtype=np.float32)
    values[3, 4] = np.nan
    ds.BitsAllocated = 32
    ds.FloatPixelData = values.tobytes()
    ds.save_as(tmp_path / "float_nan.dcm")
    _raises_for(tmp_path / "float_nan.dcm", "1 of 4096 pixel values are NaN")
