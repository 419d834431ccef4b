"""ManifestSource: CSV columns, label mapping, relative paths and every error naming the CSV."""

from __future__ import annotations

from pathlib import Path

import numpy as np
import PIL.Image
import pytest

from medlens.data.manifest import ManifestSource
from medlens.errors import InputError


@pytest.fixture
def images(tmp_path: Path) -> Path:
    for i in range(4):
        (tmp_path / "img").mkdir(exist_ok=True)
        PIL.Image.fromarray(np.full((5, 5), 10 * i, dtype=np.uint8)).save(
            tmp_path / "img" / f"{i}.png"
        )
    return tmp_path


def _csv(folder: Path, text: str) -> Path:
    path = folder / "manifest.csv"
    path.write_text(text)
    return path


def test_string_labels_sorted_patients_and_subgroups(images: Path) -> None:
    csv = _csv(
        images,
        "path,label,patient_id,sex,site\n"
        "img/0.png,pneumonia,p1,F,A\n"
        "img/1.png,normal,p1,F,A\n"
        f"{images / 'img' / '2.png'},normal,p2,M,B\n",
    )
    source = ManifestSource(csv, subgroup_columns=["sex", "site"])
    assert source.class_names == ["normal", "pneumonia"]
    assert [c.label for c in source.cases] == [1, 0, 0]
    assert [c.patient_id for c in source.cases] == ["p1", "p1", "p2"]
    assert dict(source.cases[2].attributes) == {"sex": "M", "site": "B"}
    assert source.cases[0].source == str(images / "img" / "0.png")  # relative to the CSV
    assert source.load(source.cases[2]).array.max() == 20


def test_class_names_fix_the_order(images: Path) -> None:
    csv = _csv(images, "path,label\nimg/0.png,pneumonia\nimg/1.png,normal\n")
    source = ManifestSource(csv, class_names=["pneumonia", "normal"])
    assert [c.label for c in source.cases] == [0, 1]


def test_integer_labels(images: Path) -> None:
    csv = _csv(images, "path,label\nimg/0.png,2\nimg/1.png,0\n")
    source = ManifestSource(csv)
    assert source.class_names == ["0", "1", "2"] and [c.label for c in source.cases] == [2, 0]
    named = ManifestSource(csv, class_names=["a", "b", "c"])
    assert [c.label for c in named.cases] == [2, 0]


def test_label_missing_from_class_names_names_csv_line_and_value(images: Path) -> None:
    csv = _csv(images, "path,label\nimg/0.png,normal\nimg/1.png,covid\n")
    with pytest.raises(
        InputError, match=r"manifest.csv: line 3: label 'covid' is not one of class_names"
    ):
        ManifestSource(csv, class_names=["normal", "pneumonia"])


def test_missing_file_names_file_and_line(images: Path) -> None:
    csv = _csv(images, "path,label\nimg/0.png,a\nimg/9.png,b\n")
    with pytest.raises(InputError, match=r"9.png: listed in .*manifest.csv line 3 but not found"):
        ManifestSource(csv)


def test_missing_column(images: Path) -> None:
    csv = _csv(images, "file,label\nimg/0.png,a\n")
    with pytest.raises(InputError, match="no column 'path'"):
        ManifestSource(csv)
    with pytest.raises(InputError, match="no column 'age'"):
        ManifestSource(_csv(images, "path,label\nimg/0.png,a\n"), subgroup_columns=["age"])


def test_empty_label_cell(images: Path) -> None:
    with pytest.raises(InputError, match="line 2: column 'label' is empty"):
        ManifestSource(_csv(images, "path,label\nimg/0.png,\n"))


def test_duplicate_rows(images: Path) -> None:
    with pytest.raises(InputError, match="line 3: .* already listed on line 2"):
        ManifestSource(_csv(images, "path,label\nimg/0.png,a\nimg/0.png,b\n"))


def test_split_column_is_the_official_split(images: Path) -> None:
    csv = _csv(images, "path,label,split\nimg/0.png,a,train\nimg/1.png,b,TEST\nimg/2.png,a,val\n")
    assert [c.split for c in ManifestSource(csv).cases] == ["train", "test", "val"]
    with pytest.raises(InputError, match="split 'holdout'"):
        ManifestSource(_csv(images, "path,label,split\nimg/0.png,a,holdout\n"))


def test_without_patient_column_each_case_is_a_patient(
    images: Path, caplog: pytest.LogCaptureFixture
) -> None:
    source = ManifestSource(_csv(images, "path,label\nimg/0.png,a\nimg/1.png,a\n"))
    assert [c.patient_id for c in source.cases] == [c.case_id for c in source.cases]
    assert "no 'patient_id' column" in caplog.text


def test_unreadable_csv(tmp_path: Path) -> None:
    (tmp_path / "bin.csv").write_bytes(b"\xff\xfe\x00\x00garbage\x00")
    with pytest.raises(InputError, match="bin.csv"):
        ManifestSource(tmp_path / "bin.csv")
    with pytest.raises(InputError, match="not found"):
        ManifestSource(tmp_path / "absent.csv")
