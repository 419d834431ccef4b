"""Instance masks as objects: a label map (one object per value) or a binary mask split by
connected components."""

from __future__ import annotations

from pathlib import Path

import numpy as np

from medlens.data.boxes import open_detection_source
from medlens.data.boxes.instance_masks import instance_masks


def test_label_map_and_binary_mask() -> None:
    labels = np.zeros((8, 8), np.int64)
    labels[1:3, 1:3] = 4
    labels[5:7, 5:8] = 9
    parts = instance_masks(labels)
    assert [int(p.sum()) for p in parts] == [4, 6]
    binary = (labels > 0).astype(np.int64) * 255
    assert [int(p.sum()) for p in instance_masks(binary)] == [4, 6]  # two components


def test_folder_layout_with_classes(tmp_path: Path, png_bytes) -> None:
    (tmp_path / "images").mkdir()
    (tmp_path / "masks").mkdir()
    mask = np.zeros((10, 12), np.uint8)
    mask[1:4, 2:6] = 255
    mask[6:9, 7:11] = 255
    (tmp_path / "images" / "x.png").write_bytes(png_bytes(np.zeros((10, 12), np.uint8)))
    (tmp_path / "masks" / "x.png").write_bytes(png_bytes(mask))
    (tmp_path / "labels.csv").write_text("path,label\nx.png,cell\n")
    source = open_detection_source(tmp_path)
    assert source.layout == "instance_masks" and source.class_names == ["cell"]
    targets = source.targets(source.cases[0], (10, 12))
    np.testing.assert_array_equal(targets.boxes, [[2, 1, 6, 4], [7, 6, 11, 9]])
    assert targets.masks.shape == (2, 10, 12) and targets.masks[0].sum() == 12
