"""sample_patches: foreground oversampling, bounds, ROI, seeding; pad_to_patch; crop_window."""

from __future__ import annotations

import numpy as np
import pytest
from numpy.lib.stride_tricks import sliding_window_view

from medlens.data.image import Image
from medlens.data.patches import (
    crop_window,
    pad_to_patch,
    sample_patches,
    voxel_locations,
)
from medlens.data.readers import read_image
from medlens.errors import ConfigError, InputError


def _holds(mask: np.ndarray, slices: tuple[slice, ...], label: int | None = None) -> bool:
    window = mask[slices]
    return bool((window != 0).any() if label is None else (window == label).any())


def _uniform_hit_rate(mask: np.ndarray, patch: tuple[int, ...]) -> float:
    """Exact probability that a window placed uniformly inside the image holds foreground."""
    windows = sliding_window_view(mask != 0, patch)
    return float(windows.any(axis=tuple(range(mask.ndim, 2 * mask.ndim))).mean())


@pytest.fixture(scope="module")
def adrenal_mask(adrenal_npz) -> np.ndarray:
    """A real 3D label map: the adrenal gland of AdrenalMNIST3D case 0 (~2% of 28^3 voxels)."""
    return (np.load(adrenal_npz)["train_images"][0] > 127).astype(np.uint8)


def _sparse_mask() -> np.ndarray:
    mask = np.zeros((120, 100), np.uint8)
    mask[10:12, 80:82] = 1
    mask[100:103, 5:7] = 1
    return mask


@pytest.mark.parametrize("fraction", [0.0, 0.33, 0.75])
def test_measured_foreground_share_matches_the_forced_share_plus_chance(
    adrenal_mask: np.ndarray, fraction: float
) -> None:
    patch, n = (8, 8, 8), 600
    patches = sample_patches(adrenal_mask, patch, n, fraction, rng=np.random.default_rng(0))
    measured = np.mean([_holds(adrenal_mask, s) for s in patches])
    chance = _uniform_hit_rate(adrenal_mask, patch)  # uniform windows that hit the gland
    expected = fraction + (1 - fraction) * chance
    assert measured >= fraction
    assert measured == pytest.approx(expected, abs=4 * np.sqrt(expected * (1 - expected) / n))


def test_sparse_2d_mask_gets_at_least_the_forced_share() -> None:
    mask = _sparse_mask()
    patches = sample_patches(mask, 16, 300, rng=np.random.default_rng(1))
    measured = np.mean([_holds(mask, s) for s in patches])
    assert measured >= 0.33
    assert _uniform_hit_rate(mask, (16, 16)) < 0.1  # uniform sampling alone would not


def test_one_patch_per_image_is_foreground_a_third_of_the_time_on_average() -> None:
    mask = _sparse_mask()
    hits = [
        _holds(mask, sample_patches(mask, 16, 1, rng=np.random.default_rng(seed))[0])
        for seed in range(600)
    ]
    expected = 0.33 + 0.67 * _uniform_hit_rate(mask, (16, 16))
    assert np.mean(hits) == pytest.approx(expected, abs=4 * np.sqrt(expected * 0.6 / 600))


def test_labels_share_the_foreground_patches_equally() -> None:
    mask = np.zeros((200, 200), np.uint8)
    mask[:60, :60] = 1  # 3600 voxels
    mask[180:182, 180:182] = 2  # 4 voxels, far away
    patches = sample_patches(mask, 20, 400, foreground_fraction=1.0, rng=np.random.default_rng(2))
    share_of_2 = np.mean([_holds(mask, s, label=2) for s in patches])
    assert share_of_2 == pytest.approx(0.5, abs=0.1)  # by voxel count it would be ~0.001
    assert all(_holds(mask, s) for s in patches)


@pytest.mark.parametrize("shape", [(30, 41), (9, 17, 12)])
def test_patches_lie_inside_the_image_even_for_foreground_at_the_edges(shape: tuple) -> None:
    mask = np.zeros(shape, np.uint8)
    mask[(0,) * len(shape)] = 1
    mask[tuple(n - 1 for n in shape)] = 2
    patch = tuple(min(8, n) for n in shape)
    patches = sample_patches(mask, patch, 200, 0.5, rng=np.random.default_rng(3))
    for slices in patches:
        assert len(slices) == len(shape)
        for s, p, n in zip(slices, patch, shape, strict=True):
            assert s.start >= 0 and s.stop <= n and s.stop - s.start == p
        assert mask[slices].shape == patch
    assert sum(_holds(mask, s) for s in patches) >= 100


def test_uniform_patches_reach_every_position() -> None:
    mask = np.zeros((20, 30), np.uint8)
    patches = sample_patches(mask, (5, 10), 500, rng=np.random.default_rng(4))
    rows = {s[0].start for s in patches}
    cols = {s[1].start for s in patches}
    assert rows == set(range(16)) and cols == set(range(21))


def test_same_seed_same_patches_and_another_seed_others() -> None:
    mask = _sparse_mask()
    a = sample_patches(mask, 16, 20, rng=7)
    b = sample_patches(mask, 16, 20, rng=np.random.default_rng(7))
    c = sample_patches(mask, 16, 20, rng=8)
    assert a == b and a != c


def test_precomputed_locations_give_the_same_patches() -> None:
    mask = _sparse_mask()
    roi = np.zeros_like(mask)
    roi[50:, :] = 1
    direct = sample_patches(mask, 16, 30, rng=5, roi=roi)
    located = voxel_locations(mask, roi, max_per_label=None)
    assert sample_patches(mask, 16, 30, rng=5, roi=roi, locations=located) == direct


def test_voxel_locations_are_the_labelled_voxels_and_respect_the_cap() -> None:
    mask = np.zeros((10, 12, 14), np.int32)
    mask[1:4, 2:5, 3:6] = 1
    mask[7, 8, 9] = 5
    located = voxel_locations(mask, max_per_label=None)
    assert sorted(located.labels) == [1, 5] and located.roi is None
    np.testing.assert_array_equal(located.labels[1], np.argwhere(mask == 1))
    np.testing.assert_array_equal(located.labels[5], [[7, 8, 9]])
    capped = voxel_locations(mask, max_per_label=4)
    assert len(capped.labels[1]) == 4
    assert all(mask[tuple(p)] == 1 for p in capped.labels[1])


def test_non_foreground_patches_are_centred_in_the_real_field_of_view(shared_data) -> None:
    fov_path = shared_data / "drive_retina_vessels" / "training" / "mask" / "21_training_mask.gif"
    fov = read_image(fov_path).array[0] > 127
    mask = np.zeros(fov.shape, np.uint8)
    patches = sample_patches(mask, 48, 200, foreground_fraction=0.0, rng=6, roi=fov)
    assert all(fov[s].any() for s in patches)
    # the image corners lie outside the circular field of view; uniform windows hit them
    corner = np.zeros_like(fov)
    corner[:48, :48] = True
    assert not any((corner[s] & ~fov[s]).all() for s in patches)
    uniform = sample_patches(mask, 48, 200, foreground_fraction=0.0, rng=6)
    assert not all(fov[s].all() for s in uniform)


def test_a_mask_without_foreground_gets_uniform_patches() -> None:
    mask = np.zeros((30, 30), np.uint8)
    patches = sample_patches(mask, 10, 50, foreground_fraction=1.0, rng=0)
    starts = {tuple(s.start for s in slices) for slices in patches}
    assert len(patches) == 50 and len(starts) > 10


def test_bad_arguments_are_reported() -> None:
    mask = np.zeros((30, 30), np.uint8)
    with pytest.raises(InputError, match="smaller than the patch.*pad_to_patch"):
        sample_patches(mask, 40, 1)
    with pytest.raises(ConfigError, match="foreground_fraction"):
        sample_patches(mask, 10, 1, foreground_fraction=1.5)
    with pytest.raises(ConfigError, match="patch_size: gives 3 sizes for 2 spatial axes"):
        sample_patches(mask, [4, 4, 4], 1)
    with pytest.raises(InputError, match="ROI is empty"):
        sample_patches(mask, 10, 1, roi=np.zeros_like(mask))


def test_crop_window_pads_outside_and_keeps_the_dtype() -> None:
    array = np.arange(2 * 5 * 6, dtype=np.int16).reshape(2, 5, 6)
    out = crop_window(array, [-2, 3], [6, 5], fill=-1)
    padded = np.pad(array, ((0, 0), (2, 1), (0, 2)), constant_values=-1)
    np.testing.assert_array_equal(out, padded[:, 0:6, 3:8])
    assert out.dtype == np.int16


def test_pad_to_patch_pads_centred_and_keeps_world_positions() -> None:
    affine = np.diag([0.5, 0.8, 1.0])
    affine[:2, 2] = [10.0, -4.0]
    image = Image(np.full((1, 10, 40), 3.0, np.float32), (0.5, 0.8), affine=affine, source="x")
    mask = Image(np.ones((1, 10, 40), np.uint8), (0.5, 0.8))
    roi = Image(np.ones((1, 10, 40), bool), (0.5, 0.8))
    p_image, p_mask, p_roi = pad_to_patch(image, mask, [32, 32], roi, pad_value=-1.0)
    assert p_image.spatial_shape == p_mask.spatial_shape == p_roi.spatial_shape == (32, 40)
    np.testing.assert_array_equal(p_image.array[0, 11:21], 3.0)
    assert (p_image.array[0, :11] == -1).all() and (p_image.array[0, 21:] == -1).all()
    assert p_mask.array.dtype == np.uint8 and p_mask.array.sum() == 400
    assert p_roi.array.dtype == np.bool_ and p_roi.array[0, 11:21].all()
    assert not p_roi.array[0, :11].any()
    # voxel (11, 0) of the padded grid is voxel (0, 0) of the original: same place in mm
    np.testing.assert_allclose(p_image.affine @ [11, 0, 1], affine @ [0, 0, 1])
    same = pad_to_patch(image, mask, 8)
    assert same[0] is image and same[1] is mask and same[2] is None
