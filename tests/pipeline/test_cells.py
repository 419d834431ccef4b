"""Reading a pipeline's cases: ids, labels, masks, and the rule for classes too small to learn."""

from __future__ import annotations

from pathlib import Path

import numpy as np
import PIL.Image
import pytest

from medlens.errors import ConfigError, InputError
from medlens.pipeline.cells import load_image, load_regions, open_cells
from medlens.pipeline.config import CellData


def test_real_wbc_labels_match_zero_padded_stems_and_masks_map_to_regions(
    shared_data: Path, wbc_section
) -> None:
    data = CellData(**wbc_section(shared_data / "wbc_cells", small_classes="exclude"))
    cells = open_cells(data, need_masks=True)
    assert len(cells.cases) == 299  # 300 images, the one basophil left out
    assert cells.class_names == ["neutrophil", "lymphocyte", "monocyte", "eosinophil"]
    assert np.bincount(cells.labels).tolist() == [176, 53, 48, 22]
    [(left_out, reason)] = cells.excluded
    assert left_out.case_id == "291" and "basophil" in reason
    first = cells.cases[0]
    assert first.case_id == "001" and cells.class_names[first.label] == "lymphocyte"
    regions = load_regions(first, data, load_image(first))
    assert set(np.unique(regions)) == {0, 1, 2}  # background, cytoplasm, nucleus


def test_a_class_smaller_than_the_folds_is_an_error_by_default(
    shared_data: Path, wbc_section
) -> None:
    data = CellData(**wbc_section(shared_data / "wbc_cells"))
    with pytest.raises(ConfigError, match=r"basophil \(1\).*small_classes: exclude"):
        open_cells(data, need_masks=True)


def test_unknown_label_missing_label_and_missing_mask_name_the_file(
    cells_dir: Path, cells_data
) -> None:
    data = CellData(**cells_data(cells_dir, class_names={"small": "S"}))
    with pytest.raises(InputError, match="label 'large' is not one of small"):
        open_cells(data, need_masks=True)
    (cells_dir / "images" / "999.png").write_bytes((cells_dir / "images" / "000.png").read_bytes())
    with pytest.raises(InputError, match=r"999\.png: has no label in labels\.csv"):
        open_cells(CellData(**cells_data(cells_dir)), need_masks=True)
    (cells_dir / "images" / "999.png").unlink()
    (cells_dir / "images" / "003_mask.png").unlink()
    with pytest.raises(InputError, match=r"003\.png: has no mask"):
        open_cells(CellData(**cells_data(cells_dir)), need_masks=True)


def test_mismatched_label_maps_are_refused(cells_dir: Path, cells_data) -> None:
    data = CellData(**cells_data(cells_dir, mask_values={"cytoplasm": 100, "nucleus": 255}))
    cells = open_cells(data, need_masks=True)
    case = cells.cases[0]
    with pytest.raises(InputError, match=r"000_mask\.png: holds grey levels 128 that are neither"):
        load_regions(case, data, load_image(case))
    PIL.Image.fromarray(np.zeros((20, 20), np.uint8)).save(cells_dir / "images" / "000_mask.png")
    with pytest.raises(
        InputError, match=r"mask is \(20, 20\) but its image 000\.png is \(48, 48\)"
    ):
        load_regions(case, data, load_image(case))


def test_a_named_class_without_a_case_is_left_out_and_listed(cells_dir: Path, cells_data) -> None:
    names = {"small": "S", "huge": "H", "large": "L"}
    cells = open_cells(CellData(**cells_data(cells_dir, class_names=names)), need_masks=False)
    assert cells.class_names == ["S", "L"]
    assert np.bincount(cells.labels).tolist() == [4, 4]
    assert cells.excluded == [("H", "class named in data.class_names without a case")]


def test_the_validation_carve_holds_every_class_when_it_can() -> None:
    from medlens.pipeline.folds import validation_carve

    labels = np.array([0, 0, 1, 1])
    val = validation_carve(labels, 0.15, seed=0)
    assert sorted(labels[val].tolist()) == [0, 1]
    labels = np.array([0] * 200 + [1] * 40)
    val = validation_carve(labels, 0.15, seed=0)
    assert val.sum() == 36 and np.bincount(labels[val]).tolist() == [30, 6]
