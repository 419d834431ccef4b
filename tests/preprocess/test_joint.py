"""apply_joint: image, label mask and ROI moved alike by every registered transform."""

from __future__ import annotations

from typing import Any

import numpy as np
import pytest
from scipy import ndimage
from scipy.cluster.vq import kmeans2

from medlens.data.image import Image
from medlens.data.readers import read_image
from medlens.errors import InputError
from medlens.preprocess import TRANSFORMS, RandomTransform, Transform, build_pipeline
from medlens.preprocess.geometric import Rotate
from medlens.preprocess.joint import apply_joint
from medlens.preprocess.pipeline import build_transform
from medlens.preprocess.spatial import Crop, Resize

# Strong enough that a mask left behind disagrees with the image (checked below). Padding is
# the background intensity (0.2) so that padded voxels read as label 0 in the image too.
EXAMPLES: dict[str, dict[str, Any]] = {
    "scale_intensity": {},
    "fixed_scale": {"divisor": 2.0},
    "z_score": {"nonzero": True},
    "percentile_clip": {"lower": 1.0, "upper": 99.0},
    "ct_window": {"center": 0.5, "width": 1.0},
    "to_channels": {"channels": 3},
    "select_channels": {"channels": [0]},
    "resize": {"size": 24},
    "resample_to_spacing": {"spacing": 1.5},
    "crop_or_pad": {"size": 30, "pad_value": 0.2},
    "center_crop": {"size": 14},
    "pad_to_multiple": {"multiple": 32, "pad_value": 0.2},
    "crop": {"start": 5, "size": 30, "pad_value": 0.2},
    "clahe": {"clip_limit": 0.02},
    "histogram_equalization": {"nbins": 64},
    "gamma": {"gamma": 0.8},
    "gaussian_denoise": {"sigma_mm": 0.5},
    "median_denoise": {"size": 3},
    "nlm_denoise": {},
    "flip": {"axes": [0, -1]},
    "rotate": {"degrees": 90.0, "padding_mode": "nearest"},
    "affine": {"degrees": 20.0, "scale": 1.2, "translation": 3.0, "padding_mode": "nearest"},
    "elastic": {"alpha": 6.0, "sigma": 3.0, "seed": 7},
    "brightness_contrast": {"brightness": 0.1, "contrast": 1.2},
    "noise": {"std": 0.03, "seed": 3},
    "blur": {"sigma": 0.7},
    "identity": {},
    "random_flip": {"axes": [0, 1], "p": 1.0},
    "random_rotate": {"degrees": [60, 120], "p": 1.0, "padding_mode": "nearest"},
    "random_affine": {
        "degrees": 20,
        "scale": 0.2,
        "translation": 3,
        "p": 1.0,
        "padding_mode": "nearest",
    },
    "random_elastic": {"alpha": [5.0, 7.0], "sigma": 3.0, "p": 1.0},
    "random_brightness_contrast": {"brightness": 0.1, "contrast": 0.2, "p": 1.0},
    "random_gamma": {"gamma": [0.7, 1.5], "p": 1.0},
    "random_noise": {"std": [0.01, 0.03], "p": 1.0},
    "random_blur": {"sigma": [0.5, 0.8], "p": 1.0},
    "random_crop": {"size": 30, "padding": 2, "p": 1.0, "pad_value": 0.2},
    "rotate90": {"k": 1},
    "rescale": {"factor": 1.5},
    "fit_size": {"min_size": 20},
    "random_rotate90": {"p": 1.0},
    "random_scale": {"scale": [1.2, 1.5], "p": 1.0},
}
NAMES = TRANSFORMS.names()
LEVELS = np.array([0.2, 0.55, 0.9], dtype=np.float32)  # image intensity of labels 0, 1, 2
AGREEMENT = 0.96


def _case(kind: str) -> tuple[Image, Image]:
    """Two off-centre boxes (labels 1, 2); the image shows each label at its own level."""
    if kind == "2d":
        labels = np.zeros((40, 48), np.uint8)
        labels[6:14, 8:30] = 1
        labels[22:34, 30:38] = 2
        spacing, affine = (1.0, 1.0), None
    else:
        labels = np.zeros((16, 20, 24), np.uint8)
        labels[2:7, 3:10, 4:16] = 1
        labels[8:14, 11:17, 14:20] = 2
        spacing, affine = (2.0, 1.0, 1.0), np.diag([2.0, 1.0, 1.0, 1.0])
    image = Image(LEVELS[labels][None], spacing, affine=affine, source=f"synthetic-{kind}")
    return image, Image(labels[None], spacing, source=f"synthetic-{kind}-mask")


def _agreement(image: Image, mask: Image) -> float:
    """Share of voxels whose label, read off the image's intensities alone (1D k-means with
    one cluster per label, started evenly from darkest to brightest), equals the mask's."""
    values = image.array[0].astype(np.float64)
    k = len(np.unique(mask.array))
    start = np.linspace(values.min(), values.max(), k)[:, None]
    centres, read = kmeans2(values.reshape(-1, 1), start, minit="matrix", missing="raise")
    rank = np.argsort(np.argsort(centres[:, 0]))
    return float((rank[read].reshape(values.shape) == mask.array[0]).mean())


def _transform(name: str) -> Transform | RandomTransform:
    return build_transform({"name": name, **EXAMPLES[name]})


def test_every_registered_transform_has_a_joint_example() -> None:
    assert set(NAMES) == set(EXAMPLES)


@pytest.mark.parametrize("kind", ["2d", "3d"])
@pytest.mark.parametrize("name", NAMES)
def test_mask_and_roi_follow_the_image(name: str, kind: str) -> None:
    image, mask = _case(kind)
    roi = Image(mask.array > 0, mask.spacing, source="roi")
    t = _transform(name)
    out, out_mask, out_roi = apply_joint(t, image, mask, roi, rng=np.random.default_rng(0))

    # the same grid ...
    assert out_mask.spatial_shape == out.spatial_shape == out_roi.spatial_shape
    assert out_mask.spacing == out.spacing == out_roi.spacing
    if out.affine is None:
        assert out_mask.affine is None
    else:
        np.testing.assert_allclose(out_mask.affine, out.affine)
    # ... the labels it had, in its own dtype ...
    assert out_mask.array.dtype == np.uint8 and out_roi.array.dtype == np.bool_
    assert set(np.unique(out_mask.array)) <= {0, 1, 2}
    np.testing.assert_array_equal(out_roi.array, out_mask.array > 0)
    # ... where the image shows them
    assert _agreement(out, out_mask) >= AGREEMENT
    # the image is exactly what the pipeline alone makes of it
    alone = t(image, np.random.default_rng(0)) if isinstance(t, RandomTransform) else t(image)
    np.testing.assert_array_equal(out.array, alone.array)


@pytest.mark.parametrize("kind", ["2d", "3d"])
@pytest.mark.parametrize("name", NAMES)
def test_a_mask_left_behind_would_be_caught(name: str, kind: str) -> None:
    # The examples move content far enough that the unmoved mask fails the agreement check,
    # so a geometric transform that forgot its for_mask() twin fails the test above.
    image, mask = _case(kind)
    t = _transform(name)
    twin = t.draw(np.random.default_rng(0), image) if isinstance(t, RandomTransform) else t
    moved, _, _ = apply_joint(twin, image, mask)
    if twin.for_mask() is None or moved.spatial_shape != image.spatial_shape:
        return  # values only (checked above: mask untouched) or a new grid (caught by shape)
    if np.array_equal(twin.for_mask()(mask).array, mask.array.astype(np.float32)):
        return  # moves nothing on this case (identity-like draw)
    assert _agreement(moved, mask) < AGREEMENT


def test_a_missing_mask_twin_fails_the_alignment_check(monkeypatch) -> None:
    image, mask = _case("2d")
    monkeypatch.setattr(Rotate, "for_mask", lambda self: None)
    out, out_mask, _ = apply_joint(Rotate(degrees=90.0, padding_mode="nearest"), image, mask)
    assert _agreement(out, out_mask) < 0.8


def test_random_transforms_draw_once_and_the_mask_gets_the_same_draw() -> None:
    image, mask = _case("2d")
    pipeline = build_pipeline(
        [
            {"name": "random_affine", "degrees": 30, "translation": 4, "p": 1.0},
            {"name": "random_elastic", "alpha": 4.0, "p": 1.0},
            {"name": "random_gamma", "p": 1.0},
        ]
    )
    out, out_mask, _ = apply_joint(pipeline, image, mask, rng=np.random.default_rng(3))
    np.testing.assert_array_equal(out.array, pipeline(image, rng=np.random.default_rng(3)).array)
    drawn = out.meta["history"]
    assert [h["name"] for h in drawn] == ["affine", "elastic", "gamma"]
    # the mask's history holds the same geometric draws with nearest-label interpolation
    expected = [{**h, "order": 0, "padding_mode": "constant"} for h in drawn[:2]]
    assert out_mask.meta["history"] == expected


def test_compose_apply_joint_matches_the_function() -> None:
    image, mask = _case("3d")
    pipeline = build_pipeline([{"name": "random_rotate", "degrees": 40, "p": 1.0}])
    a = pipeline.apply_joint(image, mask, rng=np.random.default_rng(1))
    b = apply_joint(pipeline, image, mask, rng=np.random.default_rng(1))
    np.testing.assert_array_equal(a[0].array, b[0].array)
    np.testing.assert_array_equal(a[1].array, b[1].array)
    assert a[2] is None


def test_downsampling_a_mask_invents_no_label_between_two_others() -> None:
    # skimage smooths a float array before downsampling unless told not to; a smoothed
    # boundary between labels 1 and 3 would produce a 2 (nearest only copies labels)
    labels = np.ones((1, 30, 30), np.int16)
    labels[:, :, 15:] = 3
    _, out, _ = apply_joint(
        Resize(size=7, order=1),
        Image(labels.astype(np.float32), (1.0, 1.0)),
        Image(labels, (1.0, 1.0)),
    )
    assert out.array.dtype == np.int16
    assert set(np.unique(out.array)) == {1, 3}


class CropToNonzero(Transform):
    """Crop to the bounding box of the image's non-zero voxels (geometry from content)."""

    name = "crop_to_nonzero"

    def apply(self, image: Image) -> Image:
        return self.fixed_for(image).apply(image)

    def fixed_for(self, image: Image) -> Transform:
        box = ndimage.find_objects((image.array != 0).any(axis=0).astype(int))[0]
        return Crop(start=[s.start for s in box], size=[s.stop - s.start for s in box])


def test_geometry_taken_from_the_image_is_used_for_the_mask() -> None:
    array = np.zeros((1, 20, 20), np.float32)
    array[0, 3:12, 5:16] = 1.0
    labels = np.zeros((1, 20, 20), np.uint8)
    labels[0, 6:8, 7:9] = 1  # a lesion inside the body: its own bounding box is smaller
    out, out_mask, _ = apply_joint(
        CropToNonzero(), Image(array, (1.0, 1.0)), Image(labels, (1.0, 1.0))
    )
    assert out.spatial_shape == out_mask.spatial_shape == (9, 11)
    np.testing.assert_array_equal(out_mask.array, labels[:, 3:12, 5:16])


def test_inputs_are_left_untouched() -> None:
    image, mask = _case("2d")
    before = mask.array.copy(), image.array.copy()
    apply_joint(_transform("rotate"), image, mask)
    np.testing.assert_array_equal(mask.array, before[0])
    np.testing.assert_array_equal(image.array, before[1])
    assert "history" not in mask.meta


def test_a_float_mask_is_refused() -> None:
    image, mask = _case("2d")
    soft = Image(mask.array.astype(np.float32), mask.spacing, source="soft.nii")
    with pytest.raises(InputError, match="soft.nii: a mask must hold integer labels"):
        apply_joint(_transform("flip"), image, soft)


def test_a_mask_on_another_grid_is_refused() -> None:
    image, mask = _case("2d")
    small = Image(mask.array[:, :20], mask.spacing, source="small.png")
    with pytest.raises(InputError, match="small.png: mask grid"):
        apply_joint(_transform("flip"), image, small)
    coarse = Image(mask.array, (2.0, 2.0), source="coarse.nii")
    with pytest.raises(InputError, match="coarse.nii: mask spacing"):
        apply_joint(_transform("flip"), image, coarse)


def test_random_transforms_need_a_generator() -> None:
    image, mask = _case("2d")
    with pytest.raises(ValueError, match="random_flip"):
        apply_joint(build_pipeline([{"name": "random_flip"}]), image, mask)


def test_a_grid_change_without_a_mask_twin_is_an_error(monkeypatch) -> None:
    image, mask = _case("2d")
    monkeypatch.setattr(Resize, "for_mask", lambda self: None)
    with pytest.raises(RuntimeError, match="'resize' changed the image grid"):
        apply_joint(Resize(size=10), image, mask)


def test_real_fundus_photograph_and_vessel_mask_stay_aligned(shared_data) -> None:
    folder = shared_data / "drive_retina_vessels" / "training"
    image = read_image(folder / "images" / "21_training.tif")
    vessels = read_image(folder / "1st_manual" / "21_manual1.gif")
    fov = read_image(folder / "mask" / "21_training_mask.gif")
    mask = Image((vessels.array > 127).astype(np.uint8), vessels.spacing, source="21_manual1")
    roi = Image(fov.array > 127, fov.spacing, source="21_training_mask")
    pipeline = build_pipeline(
        [
            {"name": "fixed_scale", "divisor": 255.0},
            {"name": "select_channels", "channels": [1]},  # green: vessels are darkest there
            {"name": "random_flip", "axes": [0, 1], "p": 1.0},
            {"name": "random_affine", "degrees": 30, "scale": 0.15, "translation": 10, "p": 1.0},
            {"name": "random_elastic", "alpha": 4.0, "sigma": 8.0, "p": 1.0},
            {"name": "resize", "size": [292, 282]},
        ]
    )
    out, out_mask, out_roi = apply_joint(pipeline, image, mask, roi, rng=np.random.default_rng(0))
    assert out_mask.array.dtype == np.uint8 and set(np.unique(out_mask.array)) == {0, 1}
    assert out_roi.array.dtype == np.bool_
    assert out_mask.spatial_shape == out_roi.spatial_shape == out.spatial_shape == (292, 282)
    # the vessel share of the field of view is about kept (the zoom changes it a little)
    share = out_mask.array[out_roi.array].mean()
    assert share == pytest.approx(mask.array[roi.array].mean(), rel=0.25)

    def vessel_contrast(green: np.ndarray, labels: np.ndarray, fov: np.ndarray) -> float:
        """Mean green intensity of background minus vessels, inside the field of view."""
        return float(green[fov & (labels == 0)].mean() - green[fov & (labels == 1)].mean())

    before = vessel_contrast(image.array[1] / 255.0, mask.array[0], roi.array[0])
    after = vessel_contrast(out.array[0], out_mask.array[0], out_roi.array[0])
    assert after == pytest.approx(before, rel=0.2)  # vessels still lie on the dark lines
    stale = Resize(size=[292, 282], order=0)(Image(mask.array.astype(np.float32), (1.0, 1.0)))
    assert vessel_contrast(out.array[0], stale.array[0], out_roi.array[0]) < 0.3 * before


def test_real_adrenal_volume_and_its_thresholded_mask_stay_aligned(adrenal_npz) -> None:
    volume = np.load(adrenal_npz)["train_images"][0].astype(np.float32) / 255.0
    mask = Image((volume > 0.5).astype(np.uint8)[None], (1.0, 1.0, 1.0), source="adrenal#0")
    image = Image(volume[None], (1.0, 1.0, 1.0), source="adrenal")
    pipeline = build_pipeline(
        [
            {"name": "random_affine", "degrees": 25, "scale": 0.15, "translation": 2, "p": 1.0},
            {"name": "random_flip", "axes": [0, 1, 2], "p": 0.5},
        ]
    )
    out, out_mask, _ = apply_joint(pipeline, image, mask, rng=np.random.default_rng(5))
    assert out_mask.array.dtype == np.uint8 and set(np.unique(out_mask.array)) == {0, 1}

    def dice(labels: np.ndarray) -> float:
        seen = out.array[0] > 0.5  # the gland as the (linearly interpolated) image shows it
        return float(2 * (seen & (labels == 1)).sum() / (seen.sum() + (labels == 1).sum()))

    # a small structure (~450 voxels): borders weigh, so Dice is high, not 1
    assert dice(out_mask.array[0]) > 0.85
    assert dice(mask.array[0]) < 0.5  # the mask before the transform no longer fits
