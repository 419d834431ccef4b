"""ImageFolderSource: classes from sub-folders, lazy reading, split layout, DICOM cases."""

from __future__ import annotations

import shutil
from pathlib import Path

import numpy as np
import PIL.Image
import pytest

from medlens.data.folder import ImageFolderSource
from medlens.errors import InputError


def _png(path: Path, value: int) -> None:
    path.parent.mkdir(parents=True, exist_ok=True)
    PIL.Image.fromarray(np.full((6, 7), value, dtype=np.uint8)).save(path)


def test_classes_are_sorted_folders_and_images_load_lazily(tmp_path: Path) -> None:
    _png(tmp_path / "pneumonia" / "b.png", 200)
    _png(tmp_path / "normal" / "a.png", 10)
    _png(tmp_path / "normal" / "c.png", 11)
    source = ImageFolderSource(tmp_path)
    assert source.class_names == ["normal", "pneumonia"]
    assert [(c.case_id, c.label, c.split) for c in source.cases] == [
        ("normal/a.png", 0, None), ("normal/c.png", 0, None), ("pneumonia/b.png", 1, None)
    ]  # fmt: skip
    (tmp_path / "normal" / "c.png").unlink()  # nothing was read at construction
    assert source.load(source.cases[2]).array.max() == 200
    with pytest.raises(InputError, match="c.png"):
        source.load(source.cases[1])


def test_patient_sub_folders_group_cases(tmp_path: Path) -> None:
    _png(tmp_path / "benign" / "patient7" / "left.png", 1)
    _png(tmp_path / "benign" / "patient7" / "right.png", 2)
    _png(tmp_path / "malignant" / "x.png", 3)
    source = ImageFolderSource(tmp_path)
    assert [c.patient_id for c in source.cases] == ["patient7", "patient7", "malignant/x.png"]


def test_split_folders_give_the_official_split(tmp_path: Path) -> None:
    _png(tmp_path / "train" / "a" / "1.png", 1)
    _png(tmp_path / "train" / "b" / "2.png", 2)
    _png(tmp_path / "test" / "b" / "3.png", 3)
    source = ImageFolderSource(tmp_path)
    assert source.class_names == ["a", "b"]
    assert [(c.split, c.label) for c in source.cases] == [("test", 1), ("train", 0), ("train", 1)]


def test_given_class_names_fix_the_label_order(tmp_path: Path) -> None:
    _png(tmp_path / "normal" / "a.png", 1)
    _png(tmp_path / "abnormal" / "b.png", 2)
    source = ImageFolderSource(tmp_path, class_names=["normal", "abnormal"])
    assert {c.case_id: c.label for c in source.cases} == {"abnormal/b.png": 1, "normal/a.png": 0}
    with pytest.raises(InputError, match="'abnormal' is not one of class_names"):
        ImageFolderSource(tmp_path, class_names=["normal"])


def test_stray_files_are_reported_not_skipped(tmp_path: Path) -> None:
    _png(tmp_path / "a" / "1.png", 1)
    (tmp_path / "a" / "labels.txt").write_text("oops")
    with pytest.raises(InputError, match="labels.txt: is not an image"):
        ImageFolderSource(tmp_path)
    (tmp_path / "a" / "labels.txt").unlink()
    (tmp_path / "README.md").write_text("x")
    with pytest.raises(InputError, match="README.md: lies outside any class folder"):
        ImageFolderSource(tmp_path)


def test_hidden_files_are_ignored(tmp_path: Path) -> None:
    _png(tmp_path / "a" / "1.png", 1)
    (tmp_path / "a" / ".DS_Store").write_bytes(b"\x00")
    assert len(ImageFolderSource(tmp_path).cases) == 1


def test_dicom_series_folder_is_one_case_with_its_patient(ct_dir: Path, tmp_path: Path) -> None:
    shutil.copytree(ct_dir, tmp_path / "liver" / "study1")
    (tmp_path / "other").mkdir()
    shutil.copy(ct_dir / "01.dcm", tmp_path / "other" / "slice.dcm")
    source = ImageFolderSource(tmp_path, read_patient_ids=True)
    assert [c.case_id for c in source.cases] == ["liver/study1", "other/slice.dcm"]
    assert {c.patient_id for c in source.cases} == {"99000"}  # PatientID of the real CT
    assert source.load(source.cases[0]).array.shape == (1, 3, 512, 512)
    assert source.load(source.cases[1]).array.shape == (1, 512, 512)


def test_empty_root(tmp_path: Path) -> None:
    (tmp_path / "a").mkdir()
    with pytest.raises(InputError, match="holds no images"):
        ImageFolderSource(tmp_path)
