"""DICOM series: grouping, position order, spacing, LPS affine and HU on the real CT."""

from __future__ import annotations

import shutil
from collections.abc import Callable
from pathlib import Path

import numpy as np
import pydicom
import pytest

from medlens.data.dicom import read_dicom_file
from medlens.data.dicom_series import read_dicom_series
from medlens.errors import InputError


def test_real_ct_series_geometry(ct_dir: Path) -> None:
    volume = read_dicom_series(ct_dir)
    assert volume.array.shape == (1, 3, 512, 512)
    assert volume.spacing == pytest.approx((1.0, 0.810547, 0.810547), abs=1e-6)
    # sorted along the slice normal (+z): instance 3 (z=-128.69) first, instance 1 last
    assert [Path(f).name for f in volume.meta["slice_files"]] == ["03.dcm", "02.dcm", "01.dcm"]
    for k, name in enumerate(volume.meta["slice_files"]):
        position = np.array(
            pydicom.dcmread(name, stop_before_pixels=True).ImagePositionPatient, float
        )
        np.testing.assert_allclose(volume.affine @ [k, 0, 0, 1], [*position, 1], atol=1e-4)
        np.testing.assert_array_equal(volume.array[0, k], read_dicom_file(name).array[0])
    # columns run along +x (L), rows along +y (P): pixel (r, c) is at IPP + (c, r) * 0.81 mm
    np.testing.assert_allclose(
        volume.affine[:3, 1:3], [[0, 0.810547], [0.810547, 0], [0, 0]], atol=1e-6
    )


def test_real_ct_values_are_plausible_hounsfield_units(ct_dir: Path) -> None:
    volume = read_dicom_series(ct_dir).array
    in_field = volume[volume > -2000]  # -3024 marks pixels outside the reconstruction circle
    assert -1050 <= np.percentile(in_field, 5) <= -950  # air around the body
    counts, edges = np.histogram(in_field, bins=np.arange(-1200, 1600, 50))
    assert -150 <= edges[counts.argmax()] <= 100  # soft tissue / water dominates the body
    assert in_field.max() < 3000  # bone, not stored integers


def test_order_ignores_file_names(ct_dir: Path, tmp_path: Path) -> None:
    for source, target in (("01.dcm", "c.dcm"), ("02.dcm", "a.dcm"), ("03.dcm", "b.dcm")):
        shutil.copy(ct_dir / source, tmp_path / target)
    renamed = read_dicom_series(tmp_path)
    np.testing.assert_array_equal(renamed.array, read_dicom_series(ct_dir).array)
    assert [Path(f).name for f in renamed.meta["slice_files"]] == ["b.dcm", "a.dcm", "c.dcm"]


def _edit(path: Path, change: Callable[[pydicom.Dataset], None]) -> None:
    ds = pydicom.dcmread(path)
    change(ds)
    ds.save_as(path)


def test_several_series_must_be_chosen(ct_copy: Path) -> None:
    other_uid = "1.2.826.0.1.3680043.99999.7"
    _edit(ct_copy / "03.dcm", lambda ds: setattr(ds, "SeriesInstanceUID", other_uid))
    with pytest.raises(InputError, match=r"holds 2 series.*99999\.7"):
        read_dicom_series(ct_copy)
    chosen = read_dicom_series(ct_copy, series_uid=other_uid)
    assert chosen.array.shape == (1, 1, 512, 512)  # the lone slice of that series
    assert chosen.spacing[0] == pytest.approx(1.25)  # SliceThickness stands in for dz
    assert (
        read_dicom_series(
            ct_copy, series_uid=pydicom.dcmread(ct_copy / "01.dcm").SeriesInstanceUID
        ).array.shape[1]
        == 2
    )


def test_uneven_spacing_is_refused(ct_copy: Path) -> None:
    _edit(
        ct_copy / "01.dcm",
        lambda ds: setattr(ds, "ImagePositionPatient", [-235.2, -226.8, -124.69]),
    )
    with pytest.raises(InputError, match="not uniform"):
        read_dicom_series(ct_copy)


def test_duplicate_positions_are_refused(ct_copy: Path) -> None:
    _edit(
        ct_copy / "01.dcm",
        lambda ds: setattr(ds, "ImagePositionPatient", [-235.2, -226.8, -127.69]),
    )
    with pytest.raises(InputError, match="same position"):
        read_dicom_series(ct_copy)


def test_mixed_orientation_is_refused(ct_copy: Path) -> None:
    _edit(
        ct_copy / "02.dcm", lambda ds: setattr(ds, "ImageOrientationPatient", [1, 0, 0, 0, 0, -1])
    )
    with pytest.raises(InputError, match="02.dcm.*ImageOrientationPatient"):
        read_dicom_series(ct_copy)


def test_stray_file_is_named(ct_copy: Path) -> None:
    (ct_copy / "notes.txt").write_text("scan looked fine")
    with pytest.raises(InputError, match="notes.txt"):
        read_dicom_series(ct_copy)


def test_hidden_files_and_dicomdir_are_not_slices(ct_copy: Path) -> None:
    (ct_copy / ".DS_Store").write_bytes(b"\x00\x01")
    (ct_copy / "DICOMDIR").write_bytes(b"index")
    assert read_dicom_series(ct_copy).array.shape == (1, 3, 512, 512)


def test_corrupt_slice_is_named(ct_copy: Path) -> None:
    data = (ct_copy / "02.dcm").read_bytes()
    (ct_copy / "02.dcm").write_bytes(data[: len(data) - 1000])
    with pytest.raises(InputError, match="02.dcm"):
        read_dicom_series(ct_copy)


def test_without_positions_instance_number_orders(ct_copy: Path) -> None:
    for name in ("01.dcm", "02.dcm", "03.dcm"):
        _edit(ct_copy / name, lambda ds: delattr(ds, "ImagePositionPatient"))
    volume = read_dicom_series(ct_copy)
    assert [Path(f).name for f in volume.meta["slice_files"]] == ["01.dcm", "02.dcm", "03.dcm"]
    assert volume.affine is None and volume.meta["slice_order"] == "instance_number"
    assert volume.spacing[0] == pytest.approx(1.25)


def test_empty_folder(tmp_path: Path) -> None:
    with pytest.raises(InputError, match="no DICOM files"):
        read_dicom_series(tmp_path)
