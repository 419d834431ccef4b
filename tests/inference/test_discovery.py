"""Lazy file discovery: what is found, in which order, and what is passed over."""

from __future__ import annotations

import os
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


def test_a_symlink_loop_is_walked_once_and_does_not_fail(tmp_path: Path) -> None:
    """``a/b/up -> a`` and ``a/self -> .``: each folder is walked once, nothing repeats."""
    root = tmp_path / "a"
    (root / "b").mkdir(parents=True)
    (root / "x.png").write_bytes(b"")
    (root / "b" / "y.png").write_bytes(b"")
    (root / "b" / "up").symlink_to(root, target_is_directory=True)
    (root / "self").symlink_to(".", target_is_directory=True)

    found = [Path(p).relative_to(root).as_posix() for p in iter_image_files([root])]
    assert found == ["b/y.png", "x.png"]
    assert len(list(iter_image_files([root], volumes=True))) == 2


def test_a_symlink_to_another_folder_is_followed_once(tmp_path: Path) -> None:
    outside = tmp_path / "outside"
    outside.mkdir()
    (outside / "z.png").write_bytes(b"")
    root = tmp_path / "root"
    root.mkdir()
    (root / "link").symlink_to(outside, target_is_directory=True)
    (root / "link2").symlink_to(outside, target_is_directory=True)
    found = [Path(p).relative_to(root).as_posix() for p in iter_image_files([root])]
    assert found == ["link/z.png"]


def test_an_unreadable_folder_is_an_input_error_naming_it(
    tmp_path: Path, monkeypatch: pytest.MonkeyPatch
) -> None:
    (tmp_path / "ok.png").write_bytes(b"")
    locked = tmp_path / "locked"
    locked.mkdir()
    real_scandir = os.scandir

    def scandir(path):  # root may read any folder, so the refusal is simulated
        if os.fspath(path) == str(locked):
            raise PermissionError(13, "Permission denied", os.fspath(path))
        return real_scandir(path)

    monkeypatch.setattr(os, "scandir", scandir)
    found = iter_image_files([tmp_path])
    with pytest.raises(InputError, match="cannot be listed") as info:
        list(found)
    assert info.value.path == str(locked)


def test_a_link_to_itself_is_one_file_among_the_others(tmp_path: Path) -> None:
    (tmp_path / "image.png").write_bytes(b"")
    (tmp_path / "loop.dcm").symlink_to("loop.dcm")  # resolving it fails with ELOOP
    found = [Path(p).name for p in iter_image_files([tmp_path])]
    assert found == ["image.png", "loop.dcm"]  # the walk goes on; reading it is the error
