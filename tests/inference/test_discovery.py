"""Lazy file discovery: what is found, in which order, and what is passed over."""

from __future__ import annotations

import shutil
from pathlib import Path

import pytest

from medlens.errors import InputError
from medlens.inference.discovery import iter_image_files, iter_input_cases


def test_folders_are_walked_in_name_order_and_non_images_passed_over(tmp_path: Path) -> None:
    for name in ("b.png", "a.dcm", "1.2.840.10008.99", "IM0001", "c.nii.gz", "x.txt", ".hid.png"):
        (tmp_path / name).write_bytes(b"")
    (tmp_path / "sub").mkdir()
    (tmp_path / "sub" / "z.npy").write_bytes(b"")
    (tmp_path / ".git").mkdir()
    (tmp_path / ".git" / "d.png").write_bytes(b"")

    found = iter_image_files([tmp_path])
    assert next(found) == str(tmp_path / "1.2.840.10008.99")  # a generator, consumed lazily
    rest = [Path(p).relative_to(tmp_path).as_posix() for p in found]
    assert rest == ["IM0001", "a.dcm", "b.png", "c.nii.gz", "sub/z.npy"]


def test_a_file_given_directly_is_always_a_case(tmp_path: Path) -> None:
    notes = tmp_path / "notes.txt"
    notes.write_text("x")
    assert list(iter_image_files([notes])) == [str(notes)]


def test_a_missing_input_fails_at_the_call(tmp_path: Path) -> None:
    with pytest.raises(InputError, match="not found"):
        iter_image_files([tmp_path / "absent"])


def test_with_volumes_a_folder_of_dicom_slices_is_one_case(ct_dir: Path, tmp_path: Path) -> None:
    shutil.copytree(ct_dir, tmp_path / "study" / "series1")
    (tmp_path / "study" / "scout.png").write_bytes(b"")
    assert list(iter_image_files([tmp_path / "study"], volumes=True)) == [
        str(tmp_path / "study" / "scout.png"),
        str(tmp_path / "study" / "series1"),
    ]
    flat = list(iter_image_files([tmp_path / "study"]))
    assert len(flat) == 1 + len(list(ct_dir.glob("*.dcm")))


def test_folders_expand_to_files_and_a_dicom_folder_is_one_series_for_3d(
    ct_dir: Path, tmp_path: Path
) -> None:
    series = tmp_path / "study" / "series1"
    shutil.copytree(ct_dir, series)
    (tmp_path / "study" / ".hidden.png").write_bytes(b"")
    flat = list(iter_input_cases([tmp_path / "study"]))
    assert [Path(f).name for _, f, _ in flat] == sorted(p.name for p in ct_dir.glob("*.dcm"))

    volumes = list(iter_input_cases([tmp_path / "study"], volumes=True))
    assert [case_id for case_id, _, _ in volumes] == [str(series)]
    volume = volumes[0][2]()
    assert volume.array.shape[:2] == (1, 3) and volume.spatial_dims == 3
    assert abs(volume.spacing[0] - 1.0) < 1e-6  # mm between slices
