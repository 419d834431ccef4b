"""Compressed transfer syntaxes decode (pylibjpeg plugins) to their uncompressed references.

The pairs are pydicom's own test files: the same pixels stored uncompressed and compressed.
"""

from __future__ import annotations

from collections.abc import Callable
from pathlib import Path

import numpy as np
import pydicom
import pytest

from medlens.data.readers import read_image

TestFile = Callable[[str], Path]

LOSSLESS_PAIRS = [
    ("MR_small.dcm", "MR_small_RLE.dcm"),
    ("MR_small.dcm", "MR_small_jpeg_ls_lossless.dcm"),
    ("MR_small.dcm", "MR_small_jp2klossless.dcm"),
    ("emri_small.dcm", "emri_small_RLE.dcm"),
    ("emri_small.dcm", "emri_small_jpeg_ls_lossless.dcm"),
    ("emri_small.dcm", "emri_small_jpeg_2k_lossless.dcm"),
    ("SC_rgb.dcm", "SC_rgb_rle.dcm"),
    ("SC_rgb.dcm", "SC_rgb_jpeg_gdcm.dcm"),  # JPEG lossless, process 14
    ("MR2_UNCR.dcm", "MR2_J2KR.dcm"),
    ("US1_UNCR.dcm", "US1_J2KR.dcm"),  # colour, YBR_RCT
]


@pytest.mark.parametrize(("reference", "compressed"), LOSSLESS_PAIRS)
def test_lossless_syntax_matches_uncompressed(
    dicom_testfile: TestFile, reference: str, compressed: str
) -> None:
    ref_ds = pydicom.dcmread(dicom_testfile(reference), stop_before_pixels=True)
    comp_ds = pydicom.dcmread(dicom_testfile(compressed), stop_before_pixels=True)
    assert not ref_ds.file_meta.TransferSyntaxUID.is_compressed
    assert comp_ds.file_meta.TransferSyntaxUID.is_compressed
    expected = read_image(dicom_testfile(reference))
    decoded = read_image(dicom_testfile(compressed))
    np.testing.assert_array_equal(decoded.array, expected.array)
    assert decoded.spacing == expected.spacing


def test_lossy_jpeg_baseline_is_close_to_reference(dicom_testfile: TestFile) -> None:
    decoded = read_image(dicom_testfile("SC_rgb_jpeg_dcmtk.dcm"))
    expected = read_image(dicom_testfile("SC_rgb.dcm"))
    assert "JPEG Baseline" in decoded.meta["transfer_syntax"]
    assert decoded.array.shape == expected.array.shape == (3, 100, 100)
    assert np.abs(decoded.array - expected.array).max() <= 10  # YBR JPEG converted back to RGB


@pytest.mark.parametrize(
    ("name", "shape"),
    [
        ("JPEG2000.dcm", (1, 1024, 256)),
        ("JPGExtended.dcm", (1, 1024, 256)),
        ("JPEGLSNearLossless_08.dcm", (1, 45, 10)),
        ("GDCMJ2K_TextGBR.dcm", (3, 400, 400)),
    ],
)
def test_other_compressed_files_decode(
    dicom_testfile: TestFile, name: str, shape: tuple[int, ...]
) -> None:
    image = read_image(dicom_testfile(name))
    assert image.array.shape == shape
    assert np.isfinite(image.array).all() and np.ptp(image.array) > 0
