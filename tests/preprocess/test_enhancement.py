"""Value tests of contrast enhancement and denoising, including on real chest X-rays."""

from __future__ import annotations

from pathlib import Path

import numpy as np
import pytest
from scipy import ndimage

from medlens.data.image import Image
from medlens.errors import InputError
from medlens.preprocess.enhancement import (
    Clahe,
    Gamma,
    GaussianDenoise,
    HistogramEqualization,
    MedianDenoise,
    NlmDenoise,
    noise_sigma,
)
from medlens.preprocess.intensity import ScaleIntensity


def _image(array: np.ndarray, spacing: tuple[float, ...] | None = None) -> Image:
    array = np.asarray(array, dtype=np.float32)
    return Image(array, spacing or (1.0,) * (array.ndim - 1), source="xray.png")


def _local_contrast(array: np.ndarray, size: int = 5) -> float:
    """Mean standard deviation over ``size``-voxel neighbourhoods."""
    mean = ndimage.uniform_filter(array, size)
    square = ndimage.uniform_filter(array * array, size)
    return float(np.sqrt(np.clip(square - mean * mean, 0, None)).mean())


@pytest.fixture(scope="module")
def chest_xrays(pneumonia_npz: Path) -> np.ndarray:
    with np.load(pneumonia_npz) as data:
        return data["test_images"][:8].astype(np.float32) / 255.0


def test_clahe_increases_local_contrast_of_real_chest_xrays(chest_xrays: np.ndarray) -> None:
    clahe = Clahe(clip_limit=0.02)
    for xray in chest_xrays:
        image = _image(xray[None])
        stretched = ScaleIntensity()(image).array[0]  # a plain min-max stretch, for fairness
        out = clahe(image).array[0]
        assert out.min() >= 0.0 and out.max() <= 1.0
        assert _local_contrast(out) > 1.2 * _local_contrast(stretched)


def test_clahe_stronger_clip_limit_gives_more_contrast(chest_xrays: np.ndarray) -> None:
    image = _image(chest_xrays[0][None])
    # 14x14 regions hold 196 pixels, so the clip limits allow 1 and 19 counts per bin
    weak = Clahe(clip_limit=0.005, kernel_size=14)(image).array[0]
    strong = Clahe(clip_limit=0.1, kernel_size=14)(image).array[0]
    assert _local_contrast(strong) > 1.1 * _local_contrast(weak)


def test_clahe_works_natively_on_volumes_and_constant_channels() -> None:
    volume = np.random.default_rng(0).random((2, 12, 12, 3)) * 0.5 + 0.25
    volume[1] = 0.5
    out = Clahe()(_image(volume)).array
    assert out.shape == volume.shape
    assert out[0].max() == pytest.approx(1.0) and out[0].min() == pytest.approx(0.0)
    assert np.all(out[1] == 0.0)


def test_clahe_rejects_unscaled_intensities() -> None:
    with pytest.raises(InputError, match="expects intensities in \\[0, 1\\]"):
        Clahe()(_image(np.full((1, 8, 8), 200.0)))


def test_histogram_equalization_flattens_the_histogram_keeping_order() -> None:
    skewed = np.random.default_rng(1).random((1, 32, 32)) ** 4
    out = HistogramEqualization()(_image(skewed)).array[0]
    assert abs(float(np.median(out)) - 0.5) < 0.05 < abs(float(np.median(skewed)) - 0.5)
    order = np.argsort(skewed.reshape(-1))
    assert np.all(np.diff(out.reshape(-1)[order]) >= 0)


def test_gamma_raises_to_the_power() -> None:
    array = np.array([[[0.0, 0.25, 1.0]]])
    np.testing.assert_allclose(Gamma(gamma=2.0)(_image(array)).array[0, 0], [0.0, 0.0625, 1.0])
    np.testing.assert_allclose(Gamma(gamma=0.5)(_image(array)).array[0, 0], [0.0, 0.5, 1.0])
    assert np.isfinite(Gamma(gamma=0.5)(_image(-array)).array).all()


def test_gaussian_denoise_sigma_is_in_millimetres() -> None:
    array = np.random.default_rng(2).random((1, 16, 16))
    out = GaussianDenoise(sigma_mm=2.0)(_image(array, spacing=(2.0, 0.5))).array[0]
    expected = ndimage.gaussian_filter(
        array[0].astype(np.float32), sigma=(1.0, 4.0), mode="nearest"
    )
    np.testing.assert_allclose(out, expected, atol=1e-6)


def test_median_denoise_removes_salt_and_pepper() -> None:
    array = np.full((1, 9, 9, 9), 0.5)
    array[0, 4, 4, 4] = 1.0
    array[0, 2, 6, 1] = 0.0
    out = MedianDenoise(size=3)(_image(array)).array
    np.testing.assert_array_equal(out, 0.5)


def test_noise_sigma_estimates_white_noise() -> None:
    rng = np.random.default_rng(3)
    for sigma in (0.02, 0.1):
        assert noise_sigma(rng.normal(0.5, sigma, (64, 64))) == pytest.approx(sigma, rel=0.1)


def test_nlm_denoise_brings_a_noisy_image_closer_to_the_clean_one() -> None:
    yy, xx = np.mgrid[0:48, 0:48] / 48.0
    clean = 0.5 + 0.3 * np.sin(6 * xx) * np.cos(4 * yy)
    noisy = np.clip(clean + np.random.default_rng(4).normal(0, 0.08, clean.shape), 0, 1)
    out = NlmDenoise()(_image(noisy[None])).array[0]
    assert np.mean((out - clean) ** 2) < 0.5 * np.mean((noisy - clean) ** 2)
