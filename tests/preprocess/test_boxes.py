"""Boxes move with the pixels: every registered transform, checked against its mask twin."""

from __future__ import annotations

from typing import Any

import numpy as np
import pytest

from medlens.data.image import Image
from medlens.errors import InputError
from medlens.preprocess import TRANSFORMS, RandomTransform, Transform, build_pipeline
from medlens.preprocess.boxes import apply_with_boxes, run_with_steps, unmap_boxes
from medlens.preprocess.pipeline import build_transform

# Every registered transform with arguments that keep the test rectangle inside a 40 x 48
# image (a new transform fails the first test until it is added here).
EXAMPLES: dict[str, dict[str, Any]] = {
    "scale_intensity": {},
    "fixed_scale": {"divisor": 2.0},
    "z_score": {},
    "percentile_clip": {},
    "ct_window": {"preset": "lung"},
    "to_channels": {"channels": 3},
    "select_channels": {"channels": [0]},
    "resize": {"size": [30, 60]},
    "resample_to_spacing": {"spacing": [0.5, 2.0]},
    "crop_or_pad": {"size": [36, 56]},
    "center_crop": {"size": [34, 40]},
    "pad_to_multiple": {"multiple": 32},
    "crop": {"start": [4, -3], "size": [30, 44]},
    "clahe": {},
    "histogram_equalization": {},
    "gamma": {"gamma": 0.8},
    "gaussian_denoise": {"sigma_mm": 1.0},
    "median_denoise": {"size": 3},
    "nlm_denoise": {},
    "flip": {"axes": [0, 1]},
    "rotate": {"degrees": 25.0},
    "affine": {"degrees": -15.0, "scale": [1.1, 0.9], "translation": [2.0, -3.0]},
    "elastic": {"alpha": 2.0, "sigma": 6.0, "seed": 3},
    "brightness_contrast": {"brightness": 0.1, "contrast": 1.2},
    "noise": {"std": 0.1, "seed": 3},
    "blur": {"sigma": 1.0},
    "identity": {},
    "rotate90": {"k": 1},
    "rescale": {"factor": [1.5, 0.75]},
    "fit_size": {"min_size": 30, "max_size": 50},
    "random_flip": {"axes": [0, 1], "p": 1.0},
    "random_rotate": {"degrees": 20.0, "p": 1.0},
    "random_affine": {"degrees": 10, "scale": 0.1, "translation": 2, "p": 1.0},
    "random_elastic": {"alpha": [1.0, 2.0], "sigma": 6.0, "p": 1.0},
    "random_brightness_contrast": {"p": 1.0},
    "random_gamma": {"p": 1.0},
    "random_noise": {"p": 1.0},
    "random_blur": {"p": 1.0},
    "random_crop": {"size": [32, 40], "padding": 2, "p": 1.0},
    "random_rotate90": {"p": 1.0},
    "random_scale": {"scale": [0.7, 1.4], "p": 1.0},
}
NAMES = TRANSFORMS.names()
BOX = np.array([[14.0, 10.0, 31.0, 23.0]])  # x1, y1, x2, y2: rows 10..22, columns 14..30


def _scene() -> tuple[Image, np.ndarray]:
    array = np.random.default_rng(0).random((1, 40, 48), dtype=np.float32)
    mask = np.zeros((1, 40, 48), dtype=bool)
    mask[0, 10:23, 14:31] = True
    return Image(array, (1.0, 1.0), source="scene"), mask


def _twin(name: str, image: Image, seed: int = 0) -> Transform:
    t = build_transform({"name": name, **EXAMPLES[name]})
    twin = t.draw(np.random.default_rng(seed), image) if isinstance(t, RandomTransform) else t
    return twin.fixed_for(image)


def test_every_registered_transform_has_a_box_example() -> None:
    assert set(NAMES) == set(EXAMPLES)


@pytest.mark.parametrize("seed", [0, 1])
@pytest.mark.parametrize("name", NAMES)
def test_boxes_move_with_the_pixels(name: str, seed: int) -> None:
    """The moved box is the tight box of the moved rectangle (to one pixel), and the moved
    instance mask is what the transform's mask twin makes of it."""
    image, mask = _scene()
    twin = _twin(name, image, seed)
    out, boxes, keep, masks = apply_with_boxes(twin, image, BOX, mask)
    moved_pixels = (
        twin.for_mask()(Image(mask.astype(np.uint8), image.spacing)) if twin.for_mask() else None
    )
    expected_mask = mask[0] if moved_pixels is None else moved_pixels.array[0] > 0.5
    rows, cols = np.flatnonzero(expected_mask.any(1)), np.flatnonzero(expected_mask.any(0))
    expected = [cols[0], rows[0], cols[-1] + 1, rows[-1] + 1]
    assert list(keep) == [0]
    np.testing.assert_array_equal(masks[0], expected_mask)
    np.testing.assert_allclose(boxes[0], expected, atol=0)  # from the mask: exact
    _, point_boxes, _, _ = apply_with_boxes(twin, image, BOX)
    np.testing.assert_allclose(point_boxes[0], expected, atol=1.01)  # from the edges: 1 px
    assert out.spatial_shape == expected_mask.shape


@pytest.mark.parametrize(
    "name", [n for n in NAMES if not issubclass(TRANSFORMS.get(n), RandomTransform)]
)
def test_unmap_inverts_map(name: str) -> None:
    image, _ = _scene()
    twin = _twin(name, image)
    points = np.array([[0.0, 0.0], [10.5, 14.25], [39.0, 47.0], [20.0, 3.0]])
    back = twin.unmap_points(twin.map_points(points, image), image)
    np.testing.assert_allclose(back, points, atol=1e-3)


def test_predicted_boxes_map_back_to_the_original_image() -> None:
    image, _ = _scene()
    pipeline = build_pipeline(
        [
            {"name": "fit_size", "min_size": 20, "max_size": 30},
            {"name": "pad_to_multiple", "multiple": 8},
        ]
    )
    out, steps = run_with_steps(pipeline, image)
    assert out.spatial_shape == (24, 24)  # 20 x 24, padded
    _, on_grid, _, _ = apply_with_boxes(pipeline, image, BOX)
    np.testing.assert_allclose(unmap_boxes(on_grid, steps), BOX, atol=1e-6)


def test_boxes_that_leave_the_image_are_dropped() -> None:
    image, _ = _scene()
    boxes = np.array([[14.0, 10.0, 31.0, 23.0], [0.0, 0.0, 6.0, 6.0], [40.0, 2.0, 48.0, 30.0]])
    crop = build_transform({"name": "crop", "start": [4, 5], "size": [30, 34]})
    _, out, keep, _ = apply_with_boxes(crop, image, boxes)
    # the second box keeps 1 x 2 of its 6 x 6 pixels (under a quarter), the third is gone
    assert list(keep) == [0]
    np.testing.assert_allclose(out[0], [9.0, 6.0, 26.0, 19.0])


def test_boxes_need_a_2d_image_and_an_n_by_4_array() -> None:
    image, _ = _scene()
    with pytest.raises(InputError, match=r"\(N, 4\)"):
        apply_with_boxes([], image, np.zeros((2, 3)))
    volume = Image(np.zeros((1, 4, 5, 6), np.float32), (1.0, 1.0, 1.0), source="vol")
    with pytest.raises(InputError, match="2D"):
        apply_with_boxes([], volume, BOX)


def test_random_draws_are_the_pipelines_own() -> None:
    image, _ = _scene()
    pipeline = build_pipeline([{"name": "random_rotate90", "p": 1.0}, {"name": "random_flip"}])
    alone = pipeline(image, rng=np.random.default_rng(4))
    joint, _, _, _ = apply_with_boxes(pipeline, image, BOX, rng=np.random.default_rng(4))
    np.testing.assert_array_equal(alone.array, joint.array)
    assert alone.meta["history"] == joint.meta["history"]
