"""Value tests of flip, rotate, affine and elastic on fixed grids."""

from __future__ import annotations

import numpy as np
import pytest

from medlens.data.image import Image
from medlens.errors import ConfigError, InputError
from medlens.preprocess.geometric import Affine, Elastic, Flip, Rotate, displacement_field


def _image(array: np.ndarray, spacing: tuple[float, ...] | None = None) -> Image:
    array = np.asarray(array, dtype=np.float32)
    return Image(array, spacing or (1.0,) * (array.ndim - 1), source="case-7")


def _point(shape: tuple[int, ...], where: tuple[int, ...]) -> np.ndarray:
    array = np.zeros((1, *shape), dtype=np.float32)
    array[(0, *where)] = 1.0
    return array


def test_flip_reverses_the_spatial_axes_it_names() -> None:
    array = np.random.default_rng(0).random((2, 4, 5, 6)).astype(np.float32)
    np.testing.assert_array_equal(Flip(axes=[0])(_image(array)).array, array[:, ::-1])
    np.testing.assert_array_equal(Flip(axes=[-1])(_image(array)).array, array[:, :, :, ::-1])
    both = Flip(axes=[1, 2])(_image(array)).array
    np.testing.assert_array_equal(both, array[:, :, ::-1, ::-1])
    assert both.flags["C_CONTIGUOUS"]


def test_flip_twice_is_the_identity() -> None:
    array = np.random.default_rng(1).random((1, 7, 9)).astype(np.float32)
    flip = Flip(axes=[1])
    np.testing.assert_array_equal(flip(flip(_image(array))).array, array)


def test_flip_rejects_an_axis_the_image_lacks() -> None:
    with pytest.raises(InputError, match="case-7"):
        Flip(axes=[2])(_image(np.zeros((1, 4, 4))))


def test_rotate_by_90_degrees_matches_rot90() -> None:
    array = np.random.default_rng(2).random((1, 9, 9)).astype(np.float32)
    out = Rotate(degrees=90.0)(_image(array)).array
    np.testing.assert_allclose(out[0], np.rot90(array[0]), atol=1e-5)


@pytest.mark.parametrize(("angles", "moved"), [([90, 0, 0], (2, 4, 4)), ([0, 0, 90], (4, 2, 4))])
def test_3d_rotation_turns_about_the_named_axis(angles: list[float], moved: tuple) -> None:
    # a point on axis 0 through the centre stays put when rotating about axis 0
    out = Rotate(degrees=angles)(_image(_point((9, 9, 9), (2, 4, 4)))).array[0]
    assert tuple(np.argwhere(out > 0.5)[0]) == moved


def test_3d_single_angle_rotates_each_slice_in_plane() -> None:
    volume = np.random.default_rng(3).random((1, 3, 9, 9)).astype(np.float32)
    out = Rotate(degrees=90.0)(_image(volume)).array
    for d in range(3):
        np.testing.assert_allclose(out[0, d], np.rot90(volume[0, d]), atol=1e-5)


def test_rotation_respects_anisotropic_spacing() -> None:
    # 10 mm before the centre (10, 20) along axis 0 (5 voxels of 2 mm) ends 10 mm after it
    # along axis 1 (20 voxels of 0.5 mm, not 5) after a quarter turn
    array = _point((21, 41), (5, 20))
    out = Rotate(degrees=-90.0)(_image(array, spacing=(2.0, 0.5))).array[0]
    peak = np.unravel_index(np.argmax(out), out.shape)
    assert peak == (10, 40)


def test_rotate_needs_one_or_three_angles() -> None:
    with pytest.raises(InputError, match="takes 3 angle"):
        Rotate(degrees=[10.0, 20.0])(_image(np.zeros((1, 4, 4, 4))))


def test_affine_translation_and_scale() -> None:
    image = _image(_point((9, 9), (2, 4)))
    moved = Affine(translation=[2, -1])(image).array[0]
    assert tuple(np.argwhere(moved > 0.5)[0]) == (4, 3)
    zoomed = Affine(scale=2.0, order=0)(image).array[0]
    assert zoomed[0, 4] == 1.0 and zoomed[2, 4] == 0.0


def test_affine_padding_modes() -> None:
    ones = _image(np.ones((1, 8, 8)))
    assert Affine(translation=[3, 0])(ones).array[0, 0].sum() == 0.0
    assert np.all(Affine(translation=[3, 0], padding_mode="nearest")(ones).array == 1.0)
    with pytest.raises(ConfigError, match="padding_mode"):
        Affine(padding_mode="wrap")


def test_displacement_field_peaks_at_alpha_and_is_seeded() -> None:
    field = displacement_field((28, 28, 28), alpha=3.0, sigma=4.0, seed=5)
    assert field.shape == (3, 28, 28, 28)
    np.testing.assert_allclose(np.abs(field).reshape(3, -1).max(axis=1), 3.0, rtol=1e-5)
    np.testing.assert_array_equal(field, displacement_field((28, 28, 28), 3.0, 4.0, 5))
    assert not np.array_equal(field, displacement_field((28, 28, 28), 3.0, 4.0, 6))
    # smooth: neighbouring displacements differ far less than the amplitude
    assert np.abs(np.diff(field, axis=1)).max() < 1.0


def test_elastic_moves_a_ramp_by_at_most_alpha() -> None:
    ramp = np.tile(np.arange(32, dtype=np.float32), (1, 32, 1))
    out = Elastic(alpha=2.0, sigma=4.0, seed=1)(_image(ramp)).array[0]
    shift = out - ramp[0]
    assert np.abs(shift[:, 2:-2]).max() <= 2.0 + 1e-4
    assert np.abs(shift).max() > 0.5
    zero = Elastic(alpha=0.0, sigma=4.0, seed=1)(_image(ramp)).array
    np.testing.assert_allclose(zero, ramp, atol=1e-5)
