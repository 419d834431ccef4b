"""Deterministic intensity changes used as augmentation twins: brightness/contrast, noise, blur.

Their parameters are in intensity units of images scaled to [0, 1] (noise standard
deviation, brightness offset) or in voxels (blur). The output is not clipped.
"""

from __future__ import annotations

from typing import Any

import numpy as np
from scipy import ndimage

from medlens.data.image import Image
from medlens.preprocess._common import as_float32, integer, new_image, number
from medlens.preprocess.base import Transform
from medlens.preprocess.registry import TRANSFORMS


@TRANSFORMS.register("brightness_contrast")
class BrightnessContrast(Transform):
    """``out = (in - mean) * contrast + mean + brightness``, with the mean taken per channel.

    The twin of ``random_brightness_contrast``.

    Args:
        brightness: intensity offset added everywhere (intensity units).
        contrast: factor stretching intensities about the channel mean (>= 0; 1 keeps them).
    """

    name = "brightness_contrast"

    def __init__(self, brightness: float = 0.0, contrast: float = 1.0) -> None:
        self.brightness = number(brightness, self.name, "brightness")
        self.contrast = number(contrast, self.name, "contrast", low=0.0)

    def apply(self, image: Image) -> Image:
        array = as_float32(image)
        axes = tuple(range(1, array.ndim))
        mean = array.mean(axis=axes, keepdims=True)
        out = (array - mean) * np.float32(self.contrast) + mean + np.float32(self.brightness)
        return new_image(image, out)

    def params(self) -> dict[str, Any]:
        return {"brightness": self.brightness, "contrast": self.contrast}


@TRANSFORMS.register("noise")
class Noise(Transform):
    """Add Gaussian noise regenerated from a stored seed (the twin of ``random_noise``).

    Args:
        std: standard deviation of the noise (intensity units).
        seed: seed of the noise's random numbers.
        mean: mean of the noise (intensity units).
    """

    name = "noise"

    def __init__(self, std: float = 0.0, seed: int = 0, mean: float = 0.0) -> None:
        self.std = number(std, self.name, "std", low=0.0)
        self.seed = integer(seed, self.name, "seed", low=0)
        self.mean = number(mean, self.name, "mean")

    def apply(self, image: Image) -> Image:
        rng = np.random.default_rng(self.seed)
        noise = rng.standard_normal(image.array.shape, dtype=np.float32)
        out = as_float32(image) + noise * np.float32(self.std) + np.float32(self.mean)
        return new_image(image, out)

    def params(self) -> dict[str, Any]:
        return {"std": self.std, "seed": self.seed, "mean": self.mean}


@TRANSFORMS.register("blur")
class Blur(Transform):
    """Gaussian blur with a standard deviation in voxels, the same along every spatial axis.

    The twin of ``random_blur``; use ``gaussian_denoise`` for a sigma in mm.

    Args:
        sigma: standard deviation of the Gaussian, in voxels.
    """

    name = "blur"

    def __init__(self, sigma: float = 1.0) -> None:
        self.sigma = number(sigma, self.name, "sigma", low=0.0)

    def apply(self, image: Image) -> Image:
        sigma = [0.0] + [self.sigma] * image.spatial_dims
        out = ndimage.gaussian_filter(as_float32(image), sigma=sigma, mode="nearest")
        return new_image(image, out)

    def params(self) -> dict[str, Any]:
        return {"sigma": self.sigma}
