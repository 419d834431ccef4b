"""PSNR and SSIM (2D and 3D) against scikit-image, and their data_range rule."""

from __future__ import annotations

import math

import numpy as np
import pytest
from scipy import ndimage
from skimage.metrics import peak_signal_noise_ratio, structural_similarity

from medlens.errors import InputError
from medlens.metrics.image_quality import psnr, ssim


def image_pair(shape: tuple[int, ...], seed: int) -> tuple[np.ndarray, np.ndarray]:
    """A smooth CT-like image in HU (about -1000..400) and a noisy, blurred copy."""
    rng = np.random.default_rng(seed)
    reference = ndimage.gaussian_filter(rng.standard_normal(shape), 3.0)
    reference = np.interp(reference, (reference.min(), reference.max()), (-1000.0, 400.0))
    test = ndimage.gaussian_filter(reference, 0.8) + rng.normal(0.0, 40.0, shape)
    return reference, test


SHAPES = [(64, 48), (24, 28, 20)]


@pytest.mark.parametrize("shape", SHAPES, ids=["2d", "3d"])
def test_psnr_matches_scikit_image(shape):
    reference, test = image_pair(shape, seed=len(shape))
    expected = peak_signal_noise_ratio(reference, test, data_range=4095.0)
    assert psnr(reference, test, data_range=4095.0) == pytest.approx(expected, rel=1e-12)
    derived = peak_signal_noise_ratio(reference, test, data_range=1400.0)
    assert psnr(reference, test) == pytest.approx(derived, rel=1e-12)  # max - min of reference


@pytest.mark.parametrize("shape", SHAPES, ids=["2d", "3d"])
@pytest.mark.parametrize("gaussian_weights", [False, True])
def test_ssim_matches_scikit_image(shape, gaussian_weights):
    reference, test = image_pair(shape, seed=10 + len(shape))
    extra = {"sigma": 1.5, "use_sample_covariance": False} if gaussian_weights else {}
    expected = structural_similarity(
        reference, test, data_range=1400.0, gaussian_weights=gaussian_weights, **extra
    )
    got = ssim(reference, test, gaussian_weights=gaussian_weights)
    assert got == pytest.approx(expected, rel=1e-12)
    assert 0.2 < got < 0.99


def test_identical_images():
    reference, _ = image_pair((32, 32), seed=0)
    assert psnr(reference, reference) == math.inf
    assert ssim(reference, reference) == pytest.approx(1.0)


def test_worse_images_score_lower():
    reference, test = image_pair((40, 40, 12), seed=1)
    worse = test + np.random.default_rng(2).normal(0.0, 100.0, test.shape)
    assert psnr(reference, worse) < psnr(reference, test)
    assert ssim(reference, worse) < ssim(reference, test)


@pytest.mark.parametrize(
    ("call", "message"),
    [
        (lambda: psnr(np.zeros((8, 8)), np.ones((8, 8))), "constant"),
        (lambda: psnr(np.eye(8), np.eye(8)[:7]), "differs"),
        (lambda: psnr(np.eye(8), np.full((8, 8), np.nan)), "NaN"),
        (lambda: psnr(np.eye(8), np.eye(8), data_range=0), "positive"),
        (lambda: ssim(np.eye(6), np.eye(6)), ">= 7"),
        (lambda: ssim(np.eye(9), np.eye(9), gaussian_weights=True), ">= 11"),
        (lambda: ssim(np.zeros(9), np.zeros(9)), "2D or 3D"),
    ],
)
def test_bad_input_raises_input_error(call, message):
    with pytest.raises(InputError, match=message):
        call()
