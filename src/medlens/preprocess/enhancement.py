"""Image enhancement: contrast (CLAHE, histogram equalisation, gamma) and denoising.

These transforms expect intensities in [0, 1] (put ``scale_intensity``, ``ct_window`` or
``fixed_scale`` first). ``clahe`` and ``nlm_denoise``, whose parameters are relative to that
range, raise ``InputError`` on anything else; the others work on any range but their
defaults are chosen for [0, 1]. Every transform works channel by channel on 2D and 3D
images (3D natively, not slice by slice) and keeps the shape.
"""

from __future__ import annotations

from typing import Any

import numpy as np
from scipy import ndimage

from medlens.data.image import Image
from medlens.preprocess._common import (
    as_float32,
    check_unit_range,
    integer,
    new_image,
    number,
    numbers,
    per_axis,
)
from medlens.preprocess.base import Transform
from medlens.preprocess.registry import TRANSFORMS


@TRANSFORMS.register("clahe")
class Clahe(Transform):
    """Contrast-limited adaptive histogram equalisation (``skimage.exposure.equalize_adapthist``).

    Expects intensities in [0, 1]; the output spans [0, 1].

    ``clip_limit`` is a fraction of the voxels of one contextual region, floored at one
    count per bin: on a 28x28 image with the default 3x3 regions any limit below 0.11 acts
    the same, so small images want larger ``kernel_size`` (7-14) for the limit to matter.

    Args:
        clip_limit: contrast limit in (0, 1]; higher gives more contrast.
        kernel_size: size of the contextual regions in voxels (one number or one per spatial
            axis); ``None`` uses 1/8 of each axis.
        nbins: number of grey-level bins of the histograms.
    """

    name = "clahe"

    def __init__(
        self, clip_limit: float = 0.01, kernel_size: int | list[int] | None = None, nbins: int = 256
    ) -> None:
        self.clip_limit = number(
            clip_limit, self.name, "clip_limit", low=0.0, high=1.0, strict_low=True
        )
        self.kernel_size = (
            numbers(kernel_size, self.name, "kernel_size", integral=True, low=1)
            if kernel_size is not None
            else None
        )
        self.nbins = integer(nbins, self.name, "nbins", low=2)

    def apply(self, image: Image) -> Image:
        from skimage.exposure import equalize_adapthist

        # The undecorated function: the RGB adapter would mistake a volume ending in 3 for RGB.
        clahe = getattr(equalize_adapthist, "__wrapped__", equalize_adapthist)
        array = check_unit_range(image, self.name)
        kernel = None
        if self.kernel_size is not None:
            kernel = [int(k) for k in per_axis(self.kernel_size, image, "clahe kernel_size")]
        out = np.empty_like(array)
        for c, channel in enumerate(array):
            if channel.max() == channel.min():  # nothing to equalise; skimage would divide by 0
                out[c] = 0.0
                continue
            out[c] = clahe(
                channel, kernel_size=kernel, clip_limit=self.clip_limit, nbins=self.nbins
            )
        return new_image(image, out)

    def params(self) -> dict[str, Any]:
        return {"clip_limit": self.clip_limit, "kernel_size": self.kernel_size, "nbins": self.nbins}


@TRANSFORMS.register("histogram_equalization")
class HistogramEqualization(Transform):
    """Global histogram equalisation per channel (``skimage.exposure.equalize_hist``).

    The output is the intensity's cumulative distribution, in [0, 1]; a constant channel
    becomes zeros.

    Args:
        nbins: number of histogram bins.
    """

    name = "histogram_equalization"

    def __init__(self, nbins: int = 256) -> None:
        self.nbins = integer(nbins, self.name, "nbins", low=2)

    def apply(self, image: Image) -> Image:
        from skimage.exposure import equalize_hist

        array = as_float32(image)
        out = np.zeros_like(array)
        for c, channel in enumerate(array):
            if channel.max() > channel.min():
                out[c] = equalize_hist(channel, nbins=self.nbins)
        return new_image(image, out)

    def params(self) -> dict[str, Any]:
        return {"nbins": self.nbins}


@TRANSFORMS.register("gamma")
class Gamma(Transform):
    """Gamma correction ``out = in ** gamma`` for intensities in [0, 1].

    ``gamma < 1`` brightens, ``gamma > 1`` darkens. Values below 0 keep their sign
    (``-|in| ** gamma``) so the result is never NaN. The twin of ``random_gamma``.

    Args:
        gamma: the exponent (> 0).
    """

    name = "gamma"

    def __init__(self, gamma: float = 1.0) -> None:
        self.gamma = number(gamma, self.name, "gamma", low=0.0, strict_low=True)

    def apply(self, image: Image) -> Image:
        array = as_float32(image)
        out = np.sign(array) * np.power(np.abs(array), np.float32(self.gamma))
        return new_image(image, out)

    def params(self) -> dict[str, Any]:
        return {"gamma": self.gamma}


@TRANSFORMS.register("gaussian_denoise")
class GaussianDenoise(Transform):
    """Gaussian smoothing with a standard deviation in millimetres.

    The sigma is converted to voxels per axis with the image's spacing, so an anisotropic
    volume is smoothed by the same physical amount along every axis.

    Args:
        sigma_mm: standard deviation of the Gaussian, in mm (one number or one per axis).
    """

    name = "gaussian_denoise"

    def __init__(self, sigma_mm: float | list[float] = 0.5) -> None:
        self.sigma_mm = numbers(sigma_mm, self.name, "sigma_mm", low=0.0)

    def apply(self, image: Image) -> Image:
        sigma_mm = per_axis(self.sigma_mm, image, "gaussian_denoise sigma_mm")
        sigma = [0.0] + [s / sp for s, sp in zip(sigma_mm, image.spacing, strict=True)]
        out = ndimage.gaussian_filter(as_float32(image), sigma=sigma, mode="nearest")
        return new_image(image, out)

    def params(self) -> dict[str, Any]:
        return {"sigma_mm": self.sigma_mm}


@TRANSFORMS.register("median_denoise")
class MedianDenoise(Transform):
    """Median filter per channel over a box of voxels (removes salt-and-pepper noise).

    Args:
        size: box size in voxels (odd; one number or one per spatial axis).
    """

    name = "median_denoise"

    def __init__(self, size: int | list[int] = 3) -> None:
        self.size = numbers(size, self.name, "size", integral=True, low=1)

    def apply(self, image: Image) -> Image:
        size = (1, *(int(s) for s in per_axis(self.size, image, "median_denoise size")))
        out = ndimage.median_filter(as_float32(image), size=size, mode="nearest")
        return new_image(image, out)

    def params(self) -> dict[str, Any]:
        return {"size": self.size}


def noise_sigma(channel: np.ndarray) -> float:
    """Robust estimate of the standard deviation of white Gaussian noise (intensity units).

    The median absolute finest-scale diagonal Haar wavelet coefficient divided by 0.6745
    (Donoho's estimator, as ``skimage.restoration.estimate_sigma`` computes with
    PyWavelets, which medlens does not depend on).
    """
    detail = np.asarray(channel, dtype=np.float64)
    for axis in range(detail.ndim):
        even = detail.shape[axis] - detail.shape[axis] % 2
        first = np.take(detail, np.arange(0, even, 2), axis=axis)
        second = np.take(detail, np.arange(1, even, 2), axis=axis)
        detail = (first - second) / np.sqrt(2.0)
    return float(np.median(np.abs(detail)) / 0.6745) if detail.size else 0.0


@TRANSFORMS.register("nlm_denoise")
class NlmDenoise(Transform):
    """Non-local means denoising per channel (``skimage.restoration.denoise_nl_means``).

    Expects intensities in [0, 1].

    Args:
        h: filtering strength in intensity units; ``None`` estimates the noise standard
            deviation per channel (``noise_sigma``) and uses ``0.8 * sigma``.
        patch_size: side of the compared patches, in voxels.
        patch_distance: search radius, in voxels.
    """

    name = "nlm_denoise"

    def __init__(
        self, h: float | None = None, patch_size: int = 3, patch_distance: int = 5
    ) -> None:
        self.h = number(h, self.name, "h", low=0.0, strict_low=True) if h is not None else None
        self.patch_size = integer(patch_size, self.name, "patch_size", low=1)
        self.patch_distance = integer(patch_distance, self.name, "patch_distance", low=1)

    def apply(self, image: Image) -> Image:
        from skimage.restoration import denoise_nl_means

        array = check_unit_range(image, self.name).astype(np.float64)
        out = np.empty(array.shape, dtype=np.float32)
        for c, channel in enumerate(array):
            sigma = noise_sigma(channel) if self.h is None else 0.0
            h = self.h if self.h is not None else max(0.8 * sigma, 1e-6)
            out[c] = denoise_nl_means(
                channel,
                h=h,
                sigma=sigma,
                patch_size=self.patch_size,
                patch_distance=self.patch_distance,
                fast_mode=True,
            )
        return new_image(image, out)

    def params(self) -> dict[str, Any]:
        return {"h": self.h, "patch_size": self.patch_size, "patch_distance": self.patch_distance}
