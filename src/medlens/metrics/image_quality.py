"""Image-quality metrics of a processed or generated image against its reference: PSNR, SSIM.

Both wrap scikit-image (``peak_signal_noise_ratio``, ``structural_similarity``) for 2D and 3D
single-channel images and return exactly what it returns for the same ``data_range``.

``data_range`` is the span of intensities the metric treats as full scale (255 for 8-bit
images, 1 for images scaled to [0, 1], e.g. 4095 for 12-bit CT). Pass it whenever the format
defines it. When it is ``None`` medlens derives it from the reference as
``reference.max() - reference.min()``. scikit-image instead guesses it from the dtype (1 or 2
for float images), which is wrong for CT in HU or MR intensities, and refuses float images in
SSIM; medlens never uses that guess.
"""

from __future__ import annotations

import numpy as np
from numpy.typing import ArrayLike
from skimage.metrics import peak_signal_noise_ratio, structural_similarity

from medlens.errors import InputError

#: SSIM window side in voxels: scikit-image's uniform default, and the side of its Gaussian
#: window of sigma 1.5 (truncated at 3.5 sigma).
SSIM_WINDOW = {False: 7, True: 11}


def _check_images(
    reference: ArrayLike, test: ArrayLike, data_range: float | None
) -> tuple[np.ndarray, np.ndarray, float]:
    ref = np.asarray(reference, dtype=float)
    img = np.asarray(test, dtype=float)
    if ref.ndim not in (2, 3):
        raise InputError("reference", f"expected a 2D or 3D image, got shape {ref.shape}")
    if img.shape != ref.shape:
        raise InputError("test", f"shape {img.shape} differs from the reference's {ref.shape}")
    for name, array in (("reference", ref), ("test", img)):
        if not np.isfinite(array).all():
            raise InputError(name, "the image contains NaN or infinite values")
    if data_range is None:
        span = float(ref.max() - ref.min())
        if span <= 0:
            raise InputError(
                "reference", "is constant, so data_range cannot be derived; pass data_range"
            )
        return ref, img, span
    span = float(data_range)
    if not (np.isfinite(span) and span > 0):
        raise InputError("data_range", f"must be a positive number, got {data_range}")
    return ref, img, span


def psnr(reference: ArrayLike, test: ArrayLike, data_range: float | None = None) -> float:
    """Peak signal-to-noise ratio in dB: ``10 log10(data_range**2 / MSE)``.

    Args:
        reference: the reference image, 2D or 3D.
        test: the image to score, same shape.
        data_range: full-scale intensity span; ``None``: the reference's max - min.

    Returns:
        PSNR in dB; ``inf`` for identical images.

    Example:
        >>> psnr([[0.0, 1.0], [1.0, 0.0]], [[0.0, 1.0], [1.0, 0.1]], data_range=1.0)
        26.020599913279625
    """
    ref, img, span = _check_images(reference, test, data_range)
    if np.array_equal(ref, img):
        return float("inf")
    return float(peak_signal_noise_ratio(ref, img, data_range=span))


def ssim(
    reference: ArrayLike,
    test: ArrayLike,
    data_range: float | None = None,
    *,
    gaussian_weights: bool = False,
) -> float:
    """Mean structural similarity (Wang et al. 2004) over a sliding window, in [-1, 1].

    By default scikit-image's defaults: a 7-voxel uniform window, K1 = 0.01, K2 = 0.03, sample
    covariance. ``gaussian_weights=True`` gives Wang et al.'s recipe as scikit-image documents
    it: a Gaussian window of sigma 1.5 voxels and population covariance.

    Args:
        reference: the reference image, 2D or 3D, at least 7 voxels along each axis (11 with
            ``gaussian_weights``).
        test: the image to score, same shape.
        data_range: full-scale intensity span; ``None``: the reference's max - min.
        gaussian_weights: weight the window with a Gaussian instead of uniformly.

    Raises:
        InputError: images of different shapes, NaNs, an image smaller than the window.
    """
    ref, img, span = _check_images(reference, test, data_range)
    window = SSIM_WINDOW[gaussian_weights]
    if min(ref.shape) < window:
        raise InputError(
            "reference", f"SSIM needs >= {window} voxels along each axis, got {ref.shape}"
        )
    kwargs = {"sigma": 1.5, "use_sample_covariance": False} if gaussian_weights else {}
    return float(
        structural_similarity(
            ref, img, data_range=span, gaussian_weights=gaussian_weights, **kwargs
        )
    )
