"""The Pascal VOC reader on the real BCCD files, and on crafted ones for the edge cases."""

from __future__ import annotations

from pathlib import Path

import numpy as np
import pytest

from medlens.data.boxes import open_detection_source
from medlens.data.boxes.voc import read_voc, read_voc_xml, voc_splits
from medlens.errors import ConfigError, InputError


@pytest.fixture(scope="module")
def bccd(shared_data: Path) -> Path:
    return shared_data / "bccd_blood_cells" / "BCCD"


def test_the_whole_bccd_set_with_its_official_split(bccd: Path) -> None:
    records = read_voc(bccd)
    assert len(records) == 364
    splits = voc_splits(bccd)
    assert sorted(splits.values()).count("train") == 205
    assert {r.split for r in records} == {"train", "val", "test"}
    assert sum(1 for r in records if r.split == "test") == 72


def test_corners_become_pixel_edges(bccd: Path) -> None:
    record = read_voc_xml(bccd / "Annotations" / "BloodImage_00000.xml", bccd / "JPEGImages")
    assert record.size == (480, 640)
    wbc = record.objects[0]
    assert wbc.label == "WBC" and wbc.where == "object 1"
    assert wbc.box == (259.0, 176.0, 491.0, 376.0)  # xmin 260 ymin 177 xmax 491 ymax 376


def test_the_two_degenerate_boxes_fail_naming_file_and_object(bccd: Path) -> None:
    with pytest.raises(InputError) as info:
        open_detection_source(bccd)
    assert info.value.path.endswith("BloodImage_00338.xml")
    assert "object 13 (RBC)" in info.value.reason and "zero" in info.value.reason
    assert "--skip-bad" in info.value.reason
    source = open_detection_source(bccd, skip_bad=True)
    assert [(Path(b.file).name, b.object) for b in source.skipped] == [
        ("BloodImage_00338.xml", "object 13"),
        ("BloodImage_00343.xml", "object 4"),
    ]
    assert source.class_names == ["Platelets", "RBC", "WBC"]
    counts = source.object_counts([c for c in source.cases if c.split == "test"])
    assert counts == {"Platelets": 69, "RBC": 805, "WBC": 71}


def test_targets_as_arrays(bccd_subset) -> None:
    source = open_detection_source(bccd_subset({"train": 2, "val": 1, "test": 1}))
    case = source.cases[0]
    targets = source.targets(case, (480, 640))
    assert targets.boxes.dtype == np.float32 and targets.boxes.shape[1] == 4
    assert targets.labels.dtype == np.int64 and len(targets) == len(targets.crowd)
    assert targets.masks is None and not source.has_masks
    assert case.label == 2  # WBC: the rarest class in this small subset


def test_classes_that_do_not_match_the_annotations(bccd_subset) -> None:
    root = bccd_subset({"train": 2, "val": 1, "test": 1})
    with pytest.raises(ConfigError, match="Neutrophil has no object") as info:
        open_detection_source(root, class_names=["RBC", "WBC", "Platelets", "Neutrophil"])
    assert info.value.key == "data.class_names"
    with pytest.raises(InputError, match=r"unknown label 'Platelets' \(the classes are RBC, WBC\)"):
        open_detection_source(root, class_names=["RBC", "WBC"])


def _xml(folder: Path, name: str, objects: str, filename: str = "a.png") -> Path:
    path = folder / "Annotations" / f"{name}.xml"
    path.write_text(
        f"<annotation><filename>{filename}</filename><size><width>20</width><height>10</height>"
        f"</size>{objects}</annotation>"
    )
    return path


def _obj(name: str, box: tuple, difficult: int = 0) -> str:
    corners = "".join(
        f"<{k}>{v}</{k}>" for k, v in zip(("xmin", "ymin", "xmax", "ymax"), box, strict=True)
    )
    return f"<object><name>{name}</name><difficult>{difficult}</difficult><bndbox>{corners}</bndbox></object>"


def test_crafted_voc_edge_cases(tmp_path: Path, png_bytes) -> None:
    for sub in ("Annotations", "JPEGImages"):
        (tmp_path / sub).mkdir()
    (tmp_path / "JPEGImages" / "a.png").write_bytes(png_bytes(np.zeros((10, 20), np.uint8)))
    _xml(tmp_path, "a", _obj("cell", (1, 1, 5, 5)) + _obj("cell", (2, 2, 8, 8), difficult=1))
    source = open_detection_source(tmp_path)
    targets = source.targets(source.cases[0], (10, 20))
    assert targets.crowd.tolist() == [False, True]  # difficult objects are ignore regions
    _xml(tmp_path, "a", _obj("cell", (1, 1, 25, 5)))
    with pytest.raises(
        InputError, match=r"object 1 \(cell\): the box .* leaves the image of 20 x 10"
    ):
        open_detection_source(tmp_path)
    _xml(tmp_path, "a", _obj("cell", (1, "x", 5, 5)))
    with pytest.raises(InputError, match="missing or not a number"):
        open_detection_source(tmp_path)
    _xml(tmp_path, "a", "", filename="gone.png")
    (tmp_path / "JPEGImages" / "a.png").unlink()
    with pytest.raises(InputError, match="refers to image .*gone.png, which does not exist"):
        open_detection_source(tmp_path)


def test_an_image_without_objects_is_kept(tmp_path: Path, png_bytes) -> None:
    for sub in ("Annotations", "JPEGImages"):
        (tmp_path / sub).mkdir()
    for name in ("a", "b"):
        (tmp_path / "JPEGImages" / f"{name}.png").write_bytes(
            png_bytes(np.zeros((10, 20), np.uint8))
        )
    _xml(tmp_path, "a", _obj("cell", (1, 1, 5, 5)), "a.png")
    _xml(tmp_path, "b", "", "b.png")
    source = open_detection_source(tmp_path)
    empty = source.targets(source.cases[1], (10, 20))
    assert len(empty) == 0 and empty.boxes.shape == (0, 4)
    assert source.cases[1].label is None
