"""Value tests of brightness/contrast, noise and blur."""

from __future__ import annotations

import numpy as np
import pytest
from scipy import ndimage

from medlens.data.image import Image
from medlens.errors import ConfigError
from medlens.preprocess.photometric import Blur, BrightnessContrast, Noise


def _image(array: np.ndarray) -> Image:
    array = np.asarray(array, dtype=np.float32)
    return Image(array, (1.0,) * (array.ndim - 1))


def test_brightness_contrast_shifts_the_mean_and_scales_the_spread() -> None:
    array = np.random.default_rng(0).random((2, 16, 16))
    out = BrightnessContrast(brightness=0.1, contrast=1.5)(_image(array)).array
    np.testing.assert_allclose(out.mean(axis=(1, 2)), array.mean(axis=(1, 2)) + 0.1, atol=1e-5)
    np.testing.assert_allclose(out.std(axis=(1, 2)), 1.5 * array.std(axis=(1, 2)), rtol=1e-4)


def test_noise_has_the_stored_std_and_is_rebuilt_from_its_seed() -> None:
    array = np.full((1, 64, 64), 0.5)
    out = Noise(std=0.1, seed=9)(_image(array)).array
    assert (out - 0.5).std() == pytest.approx(0.1, rel=0.05)
    np.testing.assert_array_equal(out, Noise(std=0.1, seed=9)(_image(array)).array)
    assert not np.array_equal(out, Noise(std=0.1, seed=10)(_image(array)).array)


def test_blur_sigma_is_in_voxels_on_every_spatial_axis_not_channels() -> None:
    array = np.random.default_rng(1).random((3, 6, 7, 8)).astype(np.float32)
    out = Blur(sigma=1.5)(_image(array)).array
    for c in range(3):
        expected = ndimage.gaussian_filter(array[c], sigma=1.5, mode="nearest")
        np.testing.assert_allclose(out[c], expected, atol=1e-6)


@pytest.mark.parametrize(
    ("cls", "kwargs"),
    [(BrightnessContrast, {"contrast": -1}), (Noise, {"std": -0.1}), (Blur, {"sigma": "x"})],
)
def test_bad_parameters_raise_config_error(cls: type, kwargs: dict) -> None:
    with pytest.raises(ConfigError, match=cls.name):
        cls(**kwargs)
