"""Value tests of resizing, resampling, cropping and padding."""

from __future__ import annotations

import numpy as np
import pytest

from medlens.data.image import Image
from medlens.errors import ConfigError, InputError
from medlens.preprocess.spatial import (
    CenterCrop,
    Crop,
    CropOrPad,
    PadToMultiple,
    ResampleToSpacing,
    Resize,
)


def _image(array: np.ndarray, spacing: tuple[float, ...] | None = None, affine=None) -> Image:
    array = np.asarray(array, dtype=np.float32)
    spacing = spacing or (1.0,) * (array.ndim - 1)
    return Image(array, spacing, affine=affine, source="vol.nii.gz")


def test_resample_to_spacing_shape_arithmetic_on_anisotropic_spacing() -> None:
    image = _image(np.zeros((1, 10, 20, 30)), spacing=(3.0, 1.0, 0.5))
    out = ResampleToSpacing(spacing=1.0)(image)
    assert out.spatial_shape == (30, 20, 15)
    assert out.spacing == (1.0, 1.0, 1.0)
    out = ResampleToSpacing(spacing=[1.5, 2.0, 3.0])(image)
    assert out.spatial_shape == (20, 10, 5)
    assert out.spacing == (1.5, 2.0, 3.0)


def test_resample_to_spacing_keeps_a_smooth_ramp_linear() -> None:
    ramp = np.tile(np.arange(16, dtype=np.float32), (1, 8, 1))  # (1, 8, 16), x mm at spacing 1
    out = ResampleToSpacing(spacing=0.5)(_image(ramp)).array[0]
    assert out.shape == (16, 32)
    # interior voxel centres at (i + 0.5) * 0.5 - 0.5 mm
    expected = (np.arange(32) + 0.5) * 0.5 - 0.5
    np.testing.assert_allclose(out[4, 2:-2], expected[2:-2], atol=1e-5)


def test_resize_changes_spacing_to_keep_the_physical_extent() -> None:
    image = _image(np.random.default_rng(0).random((2, 28, 28)), spacing=(0.5, 0.5))
    out = Resize(size=[14, 56])(image)
    assert out.array.shape == (2, 14, 56)
    assert out.spacing == (1.0, 0.25)


def test_resize_with_order_zero_keeps_labels() -> None:
    labels = np.zeros((1, 12, 12))
    labels[0, 3:9, 3:9] = 2
    out = Resize(size=20, order=0)(_image(labels)).array
    assert set(np.unique(out)) == {0.0, 2.0}


def test_resize_rejects_a_size_for_the_wrong_number_of_axes() -> None:
    with pytest.raises(InputError, match="2 values but the image has 3 spatial axes"):
        Resize(size=[8, 8])(_image(np.zeros((1, 4, 4, 4))))


def test_resize_updates_the_affine_with_aligned_edges() -> None:
    affine = np.diag([2.0, 2.0, 2.0, 1.0])
    affine[:3, 3] = [10.0, 20.0, 30.0]
    image = _image(np.zeros((1, 4, 4, 4)), spacing=(2.0, 2.0, 2.0), affine=affine)
    out = Resize(size=8)(image)
    assert out.spacing == (1.0, 1.0, 1.0)
    # the old grid's first voxel covers [9, 11] mm: new voxels centre at 9.5 and 10.5
    np.testing.assert_allclose(out.affine[:3, 3], [9.5, 19.5, 29.5])
    np.testing.assert_allclose(np.diag(out.affine)[:3], [1.0, 1.0, 1.0])


def test_crop_or_pad_is_centred_with_the_odd_voxel_at_the_end() -> None:
    array = np.arange(5 * 6, dtype=np.float32).reshape(1, 5, 6)
    out = CropOrPad(size=[3, 9], pad_value=-1.0)(_image(array)).array[0]
    assert out.shape == (3, 9)
    # rows 5 -> 3: drop one from each end; columns 6 -> 9: pad 1 before, 2 after
    np.testing.assert_array_equal(out[:, 1:7], array[0, 1:4, :])
    assert np.all(out[:, 0] == -1.0) and np.all(out[:, 7:] == -1.0)

    out = CropOrPad(size=[4, 5])(_image(array)).array[0]
    np.testing.assert_array_equal(out, array[0, 0:4, 0:5])


def test_crop_or_pad_shifts_the_affine_origin() -> None:
    affine = np.diag([0.5, 0.5, 1.0, 1.0])
    image = _image(np.zeros((1, 10, 10)), spacing=(0.5, 0.5), affine=affine)
    out = CropOrPad(size=[6, 14])(image)
    np.testing.assert_allclose(out.affine[:2, 3], [2 * 0.5, -2 * 0.5])


def test_center_crop_and_its_limit() -> None:
    array = np.arange(8 * 8 * 8, dtype=np.float32).reshape(1, 8, 8, 8)
    out = CenterCrop(size=[4, 2, 8])(_image(array)).array
    np.testing.assert_array_equal(out, array[:, 2:6, 3:5, :])
    with pytest.raises(InputError, match="exceeds the image size"):
        CenterCrop(size=9)(_image(array))


def test_pad_to_multiple_pads_up_and_keeps_exact_multiples() -> None:
    image = _image(np.ones((1, 20, 32)))
    out = PadToMultiple(multiple=16)(image).array
    assert out.shape == (1, 32, 32)
    np.testing.assert_array_equal(out[0, 6:26, :], 1.0)
    assert out[0, :6].sum() == 0 and out[0, 26:].sum() == 0


def test_crop_window_partly_outside_is_padded() -> None:
    array = np.arange(16, dtype=np.float32).reshape(1, 4, 4)
    out = Crop(start=[-1, 2], size=[3, 3], pad_value=-5.0)(_image(array)).array[0]
    expected = np.array([[-5, -5, -5], [2, 3, -5], [6, 7, -5]], dtype=np.float32)
    np.testing.assert_array_equal(out, expected)


@pytest.mark.parametrize(
    ("cls", "kwargs"),
    [
        (Resize, {"size": 0}),
        (Resize, {"size": 8, "order": 7}),
        (ResampleToSpacing, {"spacing": -1.0}),
        (CropOrPad, {"size": [8, "x"]}),
        (PadToMultiple, {"multiple": 2.5}),
    ],
)
def test_bad_spatial_parameters_raise_config_error(cls: type, kwargs: dict) -> None:
    with pytest.raises(ConfigError, match=cls.name):
        cls(**kwargs)
