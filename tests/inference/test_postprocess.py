"""Post-processing on hand-built masks: largest components, filled holes, sizes in mm."""

from __future__ import annotations

import numpy as np
import pytest
import torch
from pydantic import ValidationError
from scipy import ndimage
from skimage.measure import label as skimage_label

from medlens.errors import ConfigError, InputError
from medlens.inference.postprocess import PostprocessConfig, postprocess


def _two_blobs() -> np.ndarray:
    labels = np.zeros((20, 20), dtype=np.uint8)
    labels[2:7, 2:7] = 1  # 25 px
    labels[12:15, 12:15] = 1  # 9 px
    labels[2:4, 14:18] = 2  # 8 px
    labels[16:19, 2:4] = 2  # 6 px
    return labels


def test_keep_largest_keeps_the_largest_component_of_each_class():
    labels = _two_blobs()
    out = postprocess(labels, keep_largest=1)
    expected = labels.copy()
    expected[12:15, 12:15] = 0
    expected[16:19, 2:4] = 0
    np.testing.assert_array_equal(out, expected)
    np.testing.assert_array_equal(postprocess(labels, keep_largest=2), labels)


def test_components_touching_at_a_corner_are_one_object():
    labels = np.zeros((10, 10), dtype=np.uint8)
    labels[1:4, 1:4] = 1  # 9 px
    labels[4:6, 4:6] = 1  # 4 px, touching the first at a corner only
    labels[7:9, 8:10] = 1  # 4 px, apart
    out = postprocess(labels, keep_largest=1)
    expected = labels.copy()
    expected[7:9, 8:10] = 0
    np.testing.assert_array_equal(out, expected)


def test_a_ring_is_filled_and_a_class_inside_it_is_kept():
    labels = np.zeros((12, 12), dtype=np.uint8)
    labels[2:10, 2:10] = 1
    labels[4:8, 4:8] = 0  # the hole
    labels[5:7, 5:7] = 2  # another class inside the hole (a tumour in an organ)
    out = postprocess(labels, fill_holes=True)
    expected = labels.copy()
    expected[4:8, 4:8] = 1
    expected[5:7, 5:7] = 2
    np.testing.assert_array_equal(out, expected)
    # a ring open to the border has no hole
    open_ring = labels.copy()
    open_ring[5:7, 2:4] = 0
    np.testing.assert_array_equal(postprocess(open_ring, fill_holes=True), open_ring)


def test_a_hollow_sphere_is_filled_in_3d():
    zz, yy, xx = np.mgrid[:15, :15, :15]
    radius = np.sqrt((zz - 7) ** 2 + (yy - 7) ** 2 + (xx - 7) ** 2)
    shell = ((radius >= 4) & (radius <= 6)).astype(np.uint8)
    out = postprocess(shell, fill_holes=True)
    np.testing.assert_array_equal(out, (radius <= 6).astype(np.uint8))


def test_small_objects_are_removed_by_their_volume_in_mm3_with_anisotropic_spacing():
    labels = np.zeros((8, 20, 20), dtype=np.uint8)
    labels[1, 2:4, 2:7] = 1  # 10 voxels
    labels[3:6, 10:12, 10:15] = 1  # 30 voxels
    spacing = (2.0, 0.5, 0.5)  # 0.5 mm³ per voxel: 5 mm³ and 15 mm³
    out = postprocess(labels, min_size_mm=10.0, spacing=spacing)
    expected = labels.copy()
    expected[1] = 0
    np.testing.assert_array_equal(out, expected)
    # with 1 mm isotropic voxels the small object holds 10 mm³ and stays
    np.testing.assert_array_equal(postprocess(labels, min_size_mm=10.0, spacing=(1, 1, 1)), labels)


def test_an_object_of_exactly_the_minimum_area_stays():
    labels = np.zeros((10, 10), dtype=np.uint8)
    labels[2, 0:10] = 1  # 10 px of 0.5 x 0.2 mm = 1 mm², whatever floating point says
    np.testing.assert_array_equal(postprocess(labels, min_size_mm=1.0, spacing=(0.5, 0.2)), labels)
    assert postprocess(labels, min_size_mm=1.01, spacing=(0.5, 0.2)).max() == 0


def test_component_filtering_matches_scikit_image_on_random_blobs(rng):
    noise = ndimage.gaussian_filter(rng.normal(size=(24, 24, 24)), 1.5)
    labels = np.digitize(noise, np.quantile(noise, [0.55, 0.8])).astype(np.uint8)
    spacing = (1.5, 0.7, 0.7)
    min_size_mm = 6.0
    out = postprocess(labels, keep_largest=2, min_size_mm=min_size_mm, spacing=spacing)
    voxel_mm3 = float(np.prod(spacing))
    expected = np.zeros_like(labels)
    for value in (1, 2):
        components = skimage_label(labels == value, connectivity=3)
        sizes = np.bincount(components.ravel())[1:]
        big = [
            i + 1
            for i in np.argsort(-sizes, kind="stable")[:2]
            if sizes[i] * voxel_mm3 >= min_size_mm
        ]
        expected[np.isin(components, big)] = value
    assert len(np.unique(ndimage.label(labels == 1)[0])) > 3, "the blobs have many components"
    np.testing.assert_array_equal(out, expected)


def test_binary_probabilities_are_thresholded_and_multiclass_ones_take_the_argmax(rng):
    foreground = rng.uniform(size=(9, 11))
    probs = np.stack([1 - foreground, foreground])
    np.testing.assert_array_equal(postprocess(probs), foreground >= 0.5)
    np.testing.assert_array_equal(postprocess(probs, threshold=0.2), foreground >= 0.2)
    np.testing.assert_array_equal(postprocess(probs[1:], threshold=0.7), foreground >= 0.7)
    logits = rng.normal(size=(4, 6, 7, 5))
    softmax = np.exp(logits) / np.exp(logits).sum(axis=0)
    out = postprocess(torch.from_numpy(softmax).float())
    assert out.dtype == np.uint8
    np.testing.assert_array_equal(out, softmax.argmax(axis=0))


def test_the_default_config_changes_nothing_but_the_argmax():
    labels = _two_blobs()
    labels[5, 5] = 0  # a hole, and small objects: all kept by default
    out = postprocess(labels, **PostprocessConfig().model_dump(), spacing=(0.3, 0.3))
    np.testing.assert_array_equal(out, labels)
    with pytest.raises(ValidationError):
        PostprocessConfig(keep_biggest=1)


def test_bad_predictions_and_options_are_reported():
    probs = np.full((2, 4, 4), 0.5)
    with pytest.raises(InputError, match="logits"):
        postprocess(probs * 4 - 3)
    with pytest.raises(InputError, match="NaN"):
        postprocess(np.full((2, 4, 4), np.nan))
    with pytest.raises(InputError, match="negative"):
        postprocess(np.full((4, 4), -1))
    with pytest.raises(InputError, match="one per axis"):
        postprocess(np.zeros((4, 4), np.uint8), min_size_mm=1.0, spacing=(1, 1, 1))
    with pytest.raises(ConfigError, match="spacing"):
        postprocess(np.zeros((4, 4), np.uint8), min_size_mm=1.0)
    with pytest.raises(ConfigError, match="positive integer"):
        postprocess(np.zeros((4, 4), np.uint8), keep_largest=0)
    with pytest.raises(ConfigError, match=r"\(0, 1\)"):
        postprocess(probs, threshold=1.0)
