"""One DICOM file: Modality LUT (HU), spacing, frames, colour, MONOCHROME1, metadata."""

from __future__ import annotations

from collections.abc import Callable
from pathlib import Path

import numpy as np
import pydicom
import pytest

from medlens.data.dicom import read_dicom_file
from medlens.data.readers import read_image

TestFile = Callable[[str], Path]


def test_ct_slice_is_in_hounsfield_units(ct_dir: Path) -> None:
    ds = pydicom.dcmread(ct_dir / "01.dcm")
    image = read_dicom_file(ct_dir / "01.dcm")
    expected = ds.pixel_array * float(ds.RescaleSlope) + float(ds.RescaleIntercept)
    assert float(ds.RescaleIntercept) == -1024  # the stored values are not HU
    np.testing.assert_array_equal(image.array[0], expected)
    assert image.array.dtype == np.float32
    assert image.spacing == pytest.approx((0.810547, 0.810547))
    assert image.meta["modality"] == "CT" and image.meta["units"] == "HU"
    assert (image.meta["window_center"], image.meta["window_width"]) == (40.0, 400.0)
    assert image.meta["patient_id"] == "99000"


def test_pydicom_ct_small_matches_pixel_array_rescaled(dicom_testfile: TestFile) -> None:
    path = dicom_testfile("CT_small.dcm")
    ds = pydicom.dcmread(path)
    image = read_image(path)
    np.testing.assert_array_equal(image.array[0], ds.pixel_array * 1.0 + float(ds.RescaleIntercept))
    assert image.spacing == pytest.approx(tuple(float(v) for v in ds.PixelSpacing))


def test_multiframe_file_is_a_volume(dicom_testfile: TestFile) -> None:
    path = dicom_testfile("emri_small.dcm")
    image = read_image(path)
    assert image.array.shape == (1, 10, 64, 64)
    assert image.spatial_dims == 3 and len(image.spacing) == 3
    np.testing.assert_array_equal(image.array[0], pydicom.dcmread(path).pixel_array)


def test_rgb_file_is_three_channels(dicom_testfile: TestFile) -> None:
    path = dicom_testfile("SC_rgb.dcm")
    image = read_image(path)
    assert image.array.shape == (3, 100, 100)
    np.testing.assert_array_equal(
        np.moveaxis(image.array, 0, -1), pydicom.dcmread(path).pixel_array
    )


def test_palette_colour_without_preamble_is_expanded(dicom_testfile: TestFile) -> None:
    path = dicom_testfile("OT-PAL-8-face.dcm")
    assert path.read_bytes()[128:132] != b"DICM"  # a file pydicom reads only with force=True
    image = read_image(path)
    assert image.array.shape == (3, 480, 640)
    assert image.meta["photometric_interpretation"] == "PALETTE COLOR"
    assert np.ptp(image.array[0]) > 0


def test_monochrome1_is_inverted_over_the_stored_range(
    dicom_testfile: TestFile, tmp_path: Path
) -> None:
    ds = pydicom.dcmread(dicom_testfile("MR_small.dcm"))
    ds.PhotometricInterpretation = "MONOCHROME1"
    ds.WindowCenter, ds.WindowWidth = 600, 1600
    ds.save_as(tmp_path / "mono1.dcm")
    image = read_image(tmp_path / "mono1.dcm")
    bits = int(ds.BitsStored)
    low, high = (
        (-(2 ** (bits - 1)), 2 ** (bits - 1) - 1) if ds.PixelRepresentation else (0, 2**bits - 1)
    )
    np.testing.assert_array_equal(image.array[0], (low + high) - ds.pixel_array.astype(np.float64))
    assert image.meta["inverted_monochrome1"] is True
    assert image.meta["window_center"] == (low + high) - 600  # the window follows the inversion
    # the brightest tissue of the original is now the darkest
    assert np.unravel_index(image.array[0].argmin(), (64, 64)) == np.unravel_index(
        ds.pixel_array.argmax(), (64, 64)
    )


def test_rtdose_grid_scaling_gives_dose(dicom_testfile: TestFile) -> None:
    path = dicom_testfile("rtdose.dcm")
    ds = pydicom.dcmread(path)
    image = read_image(path)
    assert image.array.shape == (1, 15, 10, 10)
    np.testing.assert_allclose(
        image.array[0], ds.pixel_array * float(ds.DoseGridScaling), rtol=1e-6
    )
    assert image.spacing[1:] == pytest.approx((10.0, 10.0))
