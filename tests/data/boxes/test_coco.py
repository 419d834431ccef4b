"""The COCO reader on crafted files: polygons, RLE (list and string), crowd regions, an image
without annotations, and the clear errors."""

from __future__ import annotations

import json
from pathlib import Path

import numpy as np
import pytest

from medlens.data.boxes import open_detection_source
from medlens.data.boxes.rle import encode_mask, mask_to_counts
from medlens.errors import InputError


def _write(tmp_path: Path, png_bytes, annotations: list, images: int = 2) -> Path:
    (tmp_path / "images").mkdir(exist_ok=True)
    for i in range(images):
        (tmp_path / "images" / f"{i}.png").write_bytes(png_bytes(np.zeros((12, 16), np.uint8)))
    document = {
        "images": [
            {"id": i + 1, "file_name": f"{i}.png", "width": 16, "height": 12} for i in range(images)
        ],
        "categories": [{"id": 7, "name": "nucleus"}, {"id": 3, "name": "cell"}],
        "annotations": annotations,
    }
    path = tmp_path / "annotations.json"
    path.write_text(json.dumps(document))
    return path


def test_masks_boxes_and_crowd_regions(tmp_path: Path, png_bytes) -> None:
    mask = np.zeros((12, 16), bool)
    mask[2:6, 3:9] = True
    annotations = [
        {
            "id": 1,
            "image_id": 1,
            "category_id": 3,
            "bbox": [3, 2, 6, 4],
            "iscrowd": 0,
            "segmentation": encode_mask(mask),
        },
        {
            "id": 2,
            "image_id": 1,
            "category_id": 7,
            "bbox": [3, 2, 6, 4],
            "iscrowd": 1,
            "segmentation": {"size": [12, 16], "counts": mask_to_counts(mask)},
        },
        {
            "id": 3,
            "image_id": 1,
            "category_id": 3,
            "bbox": [10, 6, 4, 4],
            "iscrowd": 0,
            "segmentation": [[10, 6, 14, 6, 14, 10, 10, 10]],
        },
    ]
    source = open_detection_source(_write(tmp_path, png_bytes, annotations))
    assert source.layout == "coco" and source.class_names == ["cell", "nucleus"]  # id order
    assert source.has_masks
    first = next(c for c in source.cases if c.case_id == "0")
    targets = source.targets(first, (12, 16))
    np.testing.assert_array_equal(targets.boxes[0], [3, 2, 9, 6])
    assert targets.labels.tolist() == [0, 1, 0] and targets.crowd.tolist() == [False, True, False]
    np.testing.assert_array_equal(targets.masks[0], mask)
    np.testing.assert_array_equal(targets.masks[1], mask)
    assert targets.masks[2].sum() == 16  # the 4 x 4 polygon's pixel centres
    empty = next(c for c in source.cases if c.case_id == "1")
    assert len(source.targets(empty, (12, 16))) == 0  # an image without annotations


def test_errors_name_the_file_and_the_annotation(tmp_path: Path, png_bytes) -> None:
    bad_box = [{"id": 5, "image_id": 1, "category_id": 3, "bbox": [3, 2, 0, 4], "iscrowd": 0}]
    path = _write(tmp_path, png_bytes, bad_box)
    with pytest.raises(
        InputError, match=r"annotation id 5 \(cell\): the box .* zero or negative size"
    ) as info:
        open_detection_source(path)
    assert info.value.path == str(path)
    unknown = [{"id": 6, "image_id": 1, "category_id": 99, "bbox": [3, 2, 2, 4]}]
    with pytest.raises(InputError, match="annotation id 6 .*unknown label 'category 99'"):
        open_detection_source(_write(tmp_path, png_bytes, unknown))
    orphan = [{"id": 7, "image_id": 42, "category_id": 3, "bbox": [3, 2, 2, 4]}]
    with pytest.raises(InputError, match="annotation id 7 refers to image id 42"):
        open_detection_source(_write(tmp_path, png_bytes, orphan))
    path = _write(tmp_path, png_bytes, [])
    (tmp_path / "images" / "1.png").unlink()
    with pytest.raises(InputError, match=r"refers to image .*1.png, which does not exist"):
        open_detection_source(path)


def test_skip_bad_lists_the_objects(tmp_path: Path, png_bytes) -> None:
    annotations = [
        {"id": 1, "image_id": 1, "category_id": 3, "bbox": [3, 2, 4, 4]},
        {"id": 2, "image_id": 1, "category_id": 3, "bbox": [14, 2, 8, 4]},
    ]
    source = open_detection_source(_write(tmp_path, png_bytes, annotations), skip_bad=True)
    assert [(b.object, b.label) for b in source.skipped] == [("annotation id 2", "cell")]
    assert "leaves the image" in source.skipped[0].reason
    assert len(source.targets(source.cases[0], (12, 16))) == 1


def test_split_files_give_the_official_split(tmp_path: Path, png_bytes) -> None:
    path = _write(
        tmp_path, png_bytes, [{"id": 1, "image_id": 1, "category_id": 3, "bbox": [3, 2, 4, 4]}]
    )
    document = json.loads(path.read_text())
    path.unlink()
    for split, image in (("train", 0), ("test", 1)):
        part = {
            **document,
            "images": [document["images"][image]],
            "annotations": [{**document["annotations"][0], "image_id": image + 1}],
        }
        (tmp_path / f"{split}.json").write_text(json.dumps(part))
    source = open_detection_source(tmp_path)
    assert sorted(c.split for c in source.cases) == ["test", "train"]
