"""The CSV box table: one row per object, an image without objects, clear errors."""

from __future__ import annotations

from pathlib import Path

import numpy as np
import pytest

from medlens.data.boxes import open_detection_source
from medlens.errors import InputError


def _table(tmp_path: Path, png_bytes, rows: str) -> Path:
    for name in ("a.png", "b.png"):
        (tmp_path / name).write_bytes(png_bytes(np.zeros((10, 20), np.uint8)))
    path = tmp_path / "boxes.csv"
    path.write_text("path,x1,y1,x2,y2,label,split\n" + rows)
    return path


def test_objects_images_without_objects_and_splits(tmp_path: Path, png_bytes) -> None:
    path = _table(
        tmp_path, png_bytes, "a.png,1,1,5,5,cell,train\na.png,6,2,9,8,dot,train\nb.png,,,,,,test\n"
    )
    source = open_detection_source(path)
    assert source.layout == "csv" and source.class_names == ["cell", "dot"]
    assert [(c.case_id, c.split) for c in source.cases] == [("a", "train"), ("b", "test")]
    targets = source.targets(source.cases[0])
    np.testing.assert_array_equal(targets.boxes, [[1, 1, 5, 5], [6, 2, 9, 8]])
    assert len(source.targets(source.cases[1])) == 0


def test_bad_rows_are_named(tmp_path: Path, png_bytes) -> None:
    path = _table(tmp_path, png_bytes, "a.png,1,1,25,5,cell,\n")
    with pytest.raises(InputError, match=r"row 2 \(cell\): the box .* leaves the image of 20 x 10"):
        open_detection_source(path)
    source = open_detection_source(path, skip_bad=True)
    assert source.skipped[0].object == "row 2"
    path = _table(tmp_path, png_bytes, "c.png,1,1,5,5,cell,\n")
    with pytest.raises(InputError, match="refers to image .*c.png, which does not exist") as info:
        open_detection_source(path)
    assert info.value.path == str(path)
    (tmp_path / "boxes.csv").write_text("path,x1,y1,label\na.png,1,1,cell\n")
    with pytest.raises(InputError, match="missing column"):
        open_detection_source(tmp_path / "boxes.csv")
