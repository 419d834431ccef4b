"""open_source builds the configured source and split; check_cases lists bad files."""

from __future__ import annotations

import shutil
from collections import Counter
from pathlib import Path

import numpy as np
import PIL.Image
import pytest

from medlens.config import DataConfig
from medlens.data.folder import ImageFolderSource
from medlens.data.manifest import ManifestSource
from medlens.data.medmnist import MedMNISTSource
from medlens.data.sources import check_cases, open_source
from medlens.errors import ConfigError, InputError


def _png_tree(root: Path, per_class: int = 12) -> Path:
    for name, value in (("normal", 20), ("pneumonia", 200)):
        (root / name).mkdir(parents=True)
        for i in range(per_class):
            PIL.Image.fromarray(np.full((8, 8), value + i, dtype=np.uint8)).save(
                root / name / f"{i:02d}.png"
            )
    return root


def test_medmnist_keeps_the_official_split(pneumonia_npz: Path) -> None:
    source = open_source(DataConfig(format="medmnist", path=pneumonia_npz))
    assert isinstance(source, MedMNISTSource)
    assert Counter(c.split for c in source.cases) == {"train": 3882, "val": 524, "test": 624}


def test_random_split_replaces_the_official_one(adrenal_npz: Path) -> None:
    cfg = DataConfig(
        format="medmnist", path=adrenal_npz, split="random", val_fraction=0.1, test_fraction=0.2
    )
    source = open_source(cfg)
    sizes = Counter(c.split for c in source.cases)
    assert sizes["test"] / len(source.cases) == pytest.approx(0.2, abs=0.03)
    assert sizes["val"] / len(source.cases) == pytest.approx(0.1, abs=0.03)
    assert [c.split for c in open_source(cfg).cases] == [c.split for c in source.cases]


def test_folder_without_split_gets_a_random_one(tmp_path: Path) -> None:
    source = open_source(DataConfig(format="folder", path=_png_tree(tmp_path / "imgs")))
    assert isinstance(source, ImageFolderSource)
    assert {c.split for c in source.cases} == {"train", "val", "test"}
    for split in ("train", "val", "test"):
        assert {c.label for c in source.cases if c.split == split} == {0, 1}  # stratified


def test_official_split_without_val_gets_one_from_train(tmp_path: Path) -> None:
    _png_tree(tmp_path / "d" / "train")
    _png_tree(tmp_path / "d" / "test", per_class=3)
    source = open_source(DataConfig(format="folder", path=tmp_path / "d"))
    sizes = Counter(c.split for c in source.cases)
    assert sizes["test"] == 6 and sizes["val"] > 0 and sizes["train"] + sizes["val"] == 24
    assert all(c.case_id.startswith("test/") for c in source.cases if c.split == "test")


def test_csv_with_subgroups(tmp_path: Path) -> None:
    _png_tree(tmp_path)
    rows = [
        f"{cls}/{i:02d}.png,{cls},p{i},{'F' if i % 2 else 'M'}"
        for cls in ("normal", "pneumonia")
        for i in range(12)
    ]
    (tmp_path / "m.csv").write_text("path,label,patient_id,sex\n" + "\n".join(rows) + "\n")
    cfg = DataConfig(format="csv", path=tmp_path / "m.csv", subgroup_columns=["sex"])
    source = open_source(cfg)
    assert isinstance(source, ManifestSource)
    for patient in {c.patient_id for c in source.cases}:  # p3 has a normal and a pneumonia image
        assert len({c.split for c in source.cases if c.patient_id == patient}) == 1
    assert {c.attributes["sex"] for c in source.cases} == {"F", "M"}


def test_dicom_folder_splits_by_patient_id(ct_dir: Path, tmp_path: Path) -> None:
    # six files, two classes, but one PatientID: no split can keep the patient whole
    for i, cls in enumerate(("liver", "liver", "liver", "other", "other", "other")):
        (tmp_path / cls).mkdir(exist_ok=True)
        shutil.copy(ct_dir / f"0{i % 3 + 1}.dcm", tmp_path / cls / f"{i}.dcm")
    with pytest.raises(ConfigError, match="at least 3 patients.*got 1 patients"):
        open_source(DataConfig(format="dicom", path=tmp_path))
    by_file = open_source(DataConfig(format="folder", path=tmp_path))  # each file its own patient
    assert {c.split for c in by_file.cases} == {"train", "val", "test"}


def test_missing_path(tmp_path: Path) -> None:
    with pytest.raises(InputError, match="absent.npz: not found"):
        open_source(DataConfig(format="medmnist", path=tmp_path / "absent.npz"))


def test_check_cases_lists_bad_files_with_reasons(tmp_path: Path) -> None:
    root = _png_tree(tmp_path / "imgs", per_class=3)
    (root / "normal" / "01.png").write_bytes(b"\x89PNG\r\n\x1a\n broken")
    source = ImageFolderSource(root)
    good, bad = check_cases(source)
    assert len(good) == 5
    assert [(c.case_id, "cannot be read" in reason) for c, reason in bad] == [
        ("normal/01.png", True)
    ]
    with pytest.raises(InputError, match="01.png"):
        check_cases(source, fail_fast=True)
    assert check_cases(source, cases=good) == (good, [])
