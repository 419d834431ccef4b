"""Crops: boxes widened and clipped, label maps pasted back onto the image's grid, and a box
outside its image refused with the stage and the file named."""

from __future__ import annotations

import numpy as np
import pytest

from medlens.data.image import Image
from medlens.errors import InputError
from medlens.pipeline.config import CropStage
from medlens.pipeline.stages.crop import crop_box, crop_labels, make_crop, paste_labels, region_box


def test_a_box_is_widened_by_its_margin_and_clipped_at_the_border() -> None:
    box, whole = crop_box((10.0, 0.0, 30.0, 20.0), (40, 40), 0.5, "cell", "a.png")
    assert box == (0, 0, 40, 30) and not whole
    assert crop_box(None, (40, 50), 0.1, "cell", "a.png") == ((0, 0, 40, 50), True)


@pytest.mark.parametrize(
    "box", [(50.0, 0.0, 60.0, 10.0), (-5.0, 0.0, 10.0, 10.0), (5.0, 5.0, 5.0, 9.0)]
)
def test_a_box_outside_the_image_names_the_stage_and_the_image(box) -> None:
    with pytest.raises(
        InputError, match=r"b\.png: stage 'cell': the box .* falls outside the 40 x 40"
    ):
        crop_box(box, (40, 40), 0.1, "cell", "b.png")


def test_a_label_map_found_on_a_crop_maps_back_onto_the_image() -> None:
    labels = np.zeros((60, 80), np.uint8)
    labels[20:40, 30:50] = 1
    labels[25:35, 35:45] = 2
    image = Image(
        np.random.default_rng(0).random((3, 60, 80)).astype(np.float32), (1.0, 1.0), source="c.png"
    )
    stage = CropStage(name="cell", kind="crop", input="segment", margin=0.5, size=[40, 40])
    crop = make_crop(image, region_box(labels, [1, 2]), stage)
    assert crop.box == (10, 20, 50, 60) and crop.image.array.shape == (3, 40, 40)
    back = paste_labels(crop_labels(labels, crop, (40, 40)), crop, (60, 80))
    assert np.array_equal(back, labels)
