"""Random augmentations. Each draws its parameters and returns a deterministic twin.

``random_gamma`` draws ``Gamma(gamma=0.83)``, ``random_flip`` draws ``Flip(axes=[1])`` or
``Identity()``: the twin is what runs, so ``image.meta["history"]`` records what was drawn
and replaying it reproduces the output. Each augmentation applies with probability ``p``
(``random_flip``: per axis; ``random_crop``: a centred crop otherwise, so the output size
never depends on the draw). Ranges are ``[low, high]`` lists or one number (see each class).
"""

from __future__ import annotations

from abc import ABC, abstractmethod
from collections.abc import Sequence
from typing import Any

import numpy as np

from medlens.data.image import Image
from medlens.errors import InputError
from medlens.preprocess._common import (
    choice,
    integer,
    new_image,
    number,
    numbers,
    per_axis,
    probability,
    require,
    spatial_axis,
    value_range,
)
from medlens.preprocess.base import RandomTransform, Transform
from medlens.preprocess.enhancement import Gamma
from medlens.preprocess.geometric import PADDING_MODES, Affine, Elastic, Flip, Rotate
from medlens.preprocess.photometric import Blur, BrightnessContrast, Noise
from medlens.preprocess.registry import TRANSFORMS
from medlens.preprocess.spatial import Crop, centred_start

_SEED_LIMIT = 2**31 - 1


@TRANSFORMS.register("identity")
class Identity(Transform):
    """Return a copy of the image unchanged (what a random transform draws when it skips)."""

    name = "identity"

    def apply(self, image: Image) -> Image:
        return new_image(image, image.array.copy())


class _Maybe(RandomTransform, ABC):
    """A random transform applied with probability ``p``; ``Identity`` otherwise."""

    def __init__(self, p: float) -> None:
        self.p = probability(p, self.name)

    def draw(self, rng: np.random.Generator, image: Image) -> Transform:
        if rng.random() >= self.p:
            return Identity()
        return self.sample(rng, image)

    @abstractmethod
    def sample(self, rng: np.random.Generator, image: Image) -> Transform:
        """The twin with parameters drawn from ``rng`` (called with probability ``p``)."""


def _uniform(rng: np.random.Generator, bounds: list[float]) -> float:
    return float(rng.uniform(bounds[0], bounds[1]))


@TRANSFORMS.register("random_flip")
class RandomFlip(RandomTransform):
    """Flip each of the given spatial axes independently with probability ``p``.

    Args:
        axes: spatial axes that may be flipped (0-based; -1 is the last, W).
        p: probability of flipping each axis.
    """

    name = "random_flip"

    def __init__(self, axes: int | list[int] = -1, p: float = 0.5) -> None:
        self.axes = numbers(axes, self.name, "axes", integral=True)
        self.p = probability(p, self.name)

    def draw(self, rng: np.random.Generator, image: Image) -> Transform:
        candidates = self.axes if isinstance(self.axes, list) else [self.axes]
        axes = sorted({spatial_axis(int(a), image, "random_flip") for a in candidates})
        chosen = [a for a, u in zip(axes, rng.random(len(axes)), strict=True) if u < self.p]
        return Flip(axes=chosen) if chosen else Identity()

    def params(self) -> dict[str, Any]:
        return {"axes": self.axes, "p": self.p}


def _interpolation(transform: str, order: int, padding_mode: str) -> tuple[int, str]:
    order = integer(order, transform, "order", low=0)
    require(order <= 5, transform, "order", f"must be 0 to 5, got {order}")
    return order, choice(padding_mode, transform, "padding_mode", PADDING_MODES)


def _draw_angles(rng: np.random.Generator, degrees: list[float], image: Image) -> list[float]:
    count = 1 if image.spatial_dims == 2 else 3
    return [_uniform(rng, degrees) for _ in range(count)]


@TRANSFORMS.register("random_rotate")
class RandomRotate(_Maybe):
    """Rotate about the centre by angles drawn uniformly from ``degrees``.

    Args:
        degrees: ``[low, high]`` in degrees, or ``x`` for ``[-x, x]``.
        plane: for 3D, two spatial axes spanning the one plane to rotate in (``[1, 2]``: the
            (H, W) plane, about axis 0); ``None`` draws an angle for each of the three
            planes. 2D images have one plane.
        p: probability of rotating.
        order: spline order of the interpolation.
        padding_mode: ``constant`` (0), ``nearest`` or ``reflect``.
    """

    name = "random_rotate"

    def __init__(
        self,
        degrees: float | list[float] = 15.0,
        plane: list[int] | None = None,
        p: float = 0.5,
        order: int = 1,
        padding_mode: str = "constant",
    ) -> None:
        super().__init__(p)
        self.degrees = value_range(degrees, self.name, "degrees")
        if plane is not None:
            ok = isinstance(plane, (list, tuple)) and len(plane) == 2
            require(ok, self.name, "plane", f"must be two spatial axes, got {plane!r}")
            plane = [integer(a, self.name, "plane") for a in plane]
        self.plane = plane
        self.order, self.padding_mode = _interpolation(self.name, order, padding_mode)

    def sample(self, rng: np.random.Generator, image: Image) -> Transform:
        angles = _draw_angles(rng, self.degrees, image)
        if self.plane is not None:
            i, j = sorted(spatial_axis(a, image, "random_rotate plane") for a in self.plane)
            if i == j:
                raise InputError(image.source or "<image>", "random_rotate plane needs two axes")
            if image.spatial_dims == 3:
                about = 3 - i - j  # the axis the plane turns about
                angles = [angles[0] if k == about else 0.0 for k in range(3)]
        return Rotate(degrees=angles, order=self.order, padding_mode=self.padding_mode)

    def params(self) -> dict[str, Any]:
        return {
            "degrees": self.degrees,
            "plane": self.plane,
            "p": self.p,
            "order": self.order,
            "padding_mode": self.padding_mode,
        }


@TRANSFORMS.register("random_affine")
class RandomAffine(_Maybe):
    """Rotation, isotropic scaling and translation drawn uniformly from their ranges.

    Args:
        degrees: ``[low, high]`` in degrees or ``x`` for ``[-x, x]``; one angle per plane.
        scale: ``[low, high]`` zoom factors or ``x`` for ``[1 - x, 1 + x]``.
        translation: ``[low, high]`` in voxels or ``x`` for ``[-x, x]``, drawn per axis.
        p: probability of applying.
        order: spline order of the interpolation.
        padding_mode: ``constant`` (0), ``nearest`` or ``reflect``.
    """

    name = "random_affine"

    def __init__(
        self,
        degrees: float | list[float] = 10.0,
        scale: float | list[float] = 0.1,
        translation: float | list[float] = 0.0,
        p: float = 0.5,
        order: int = 1,
        padding_mode: str = "constant",
    ) -> None:
        super().__init__(p)
        self.degrees = value_range(degrees, self.name, "degrees")
        self.scale = value_range(scale, self.name, "scale", center=1.0)
        require(self.scale[0] > 0, self.name, "scale", f"must stay > 0, got {self.scale}")
        self.translation = value_range(translation, self.name, "translation")
        self.order, self.padding_mode = _interpolation(self.name, order, padding_mode)

    def sample(self, rng: np.random.Generator, image: Image) -> Transform:
        return Affine(
            degrees=_draw_angles(rng, self.degrees, image),
            scale=_uniform(rng, self.scale),
            translation=[_uniform(rng, self.translation) for _ in range(image.spatial_dims)],
            order=self.order,
            padding_mode=self.padding_mode,
        )

    def params(self) -> dict[str, Any]:
        return {
            "degrees": self.degrees,
            "scale": self.scale,
            "translation": self.translation,
            "p": self.p,
            "order": self.order,
            "padding_mode": self.padding_mode,
        }


@TRANSFORMS.register("random_elastic")
class RandomElastic(_Maybe):
    """Elastic deformation with a freshly seeded displacement field.

    Args:
        alpha: largest displacement in voxels: a number, or ``[low, high]`` to draw from.
        sigma: smoothness of the field, in voxels.
        p: probability of applying.
        order: spline order of the interpolation.
        padding_mode: ``constant`` (0), ``nearest`` or ``reflect``.
    """

    name = "random_elastic"

    def __init__(
        self,
        alpha: float | list[float] = 2.0,
        sigma: float = 4.0,
        p: float = 0.5,
        order: int = 1,
        padding_mode: str = "nearest",
    ) -> None:
        super().__init__(p)
        self.alpha: float | list[float]
        if isinstance(alpha, (list, tuple)):
            self.alpha = value_range(alpha, self.name, "alpha", low=0.0)
        else:
            self.alpha = number(alpha, self.name, "alpha", low=0.0)
        self.sigma = number(sigma, self.name, "sigma", low=0.0, strict_low=True)
        self.order, self.padding_mode = _interpolation(self.name, order, padding_mode)

    def sample(self, rng: np.random.Generator, image: Image) -> Transform:
        alpha = _uniform(rng, self.alpha) if isinstance(self.alpha, list) else self.alpha
        return Elastic(
            alpha=alpha,
            sigma=self.sigma,
            seed=int(rng.integers(_SEED_LIMIT)),
            order=self.order,
            padding_mode=self.padding_mode,
        )

    def params(self) -> dict[str, Any]:
        return {
            "alpha": self.alpha,
            "sigma": self.sigma,
            "p": self.p,
            "order": self.order,
            "padding_mode": self.padding_mode,
        }


@TRANSFORMS.register("random_brightness_contrast")
class RandomBrightnessContrast(_Maybe):
    """Brightness offset and contrast factor drawn uniformly (intensity units of [0, 1]).

    Args:
        brightness: ``[low, high]`` offset or ``x`` for ``[-x, x]``.
        contrast: ``[low, high]`` factor or ``x`` for ``[1 - x, 1 + x]``.
        p: probability of applying.
    """

    name = "random_brightness_contrast"

    def __init__(
        self,
        brightness: float | list[float] = 0.1,
        contrast: float | list[float] = 0.1,
        p: float = 0.5,
    ) -> None:
        super().__init__(p)
        self.brightness = value_range(brightness, self.name, "brightness")
        self.contrast = value_range(contrast, self.name, "contrast", center=1.0, low=0.0)

    def sample(self, rng: np.random.Generator, image: Image) -> Transform:
        return BrightnessContrast(
            brightness=_uniform(rng, self.brightness), contrast=_uniform(rng, self.contrast)
        )

    def params(self) -> dict[str, Any]:
        return {"brightness": self.brightness, "contrast": self.contrast, "p": self.p}


@TRANSFORMS.register("random_gamma")
class RandomGamma(_Maybe):
    """Gamma correction with ``gamma`` drawn log-uniformly (so 1/x and x are equally likely).

    Args:
        gamma: ``[low, high]`` with ``0 < low <= high``, or ``x`` for ``[1/x, x]``.
        p: probability of applying.
    """

    name = "random_gamma"

    def __init__(self, gamma: float | list[float] = 1.5, p: float = 0.5) -> None:
        super().__init__(p)
        if isinstance(gamma, (list, tuple)):
            self.gamma = value_range(list(gamma), self.name, "gamma")
        else:
            x = number(gamma, self.name, "gamma", low=0.0, strict_low=True)
            self.gamma = sorted([x, 1.0 / x])
        require(self.gamma[0] > 0, self.name, "gamma", f"must stay > 0, got {self.gamma}")

    def sample(self, rng: np.random.Generator, image: Image) -> Transform:
        log_gamma = _uniform(rng, [float(np.log(self.gamma[0])), float(np.log(self.gamma[1]))])
        return Gamma(gamma=float(np.exp(log_gamma)))

    def params(self) -> dict[str, Any]:
        return {"gamma": self.gamma, "p": self.p}


@TRANSFORMS.register("random_noise")
class RandomNoise(_Maybe):
    """Additive Gaussian noise with a standard deviation drawn uniformly (intensity units).

    Args:
        std: ``[low, high]`` or ``x`` for ``[0, x]``.
        p: probability of applying.
    """

    name = "random_noise"

    def __init__(self, std: float | list[float] = 0.05, p: float = 0.5) -> None:
        super().__init__(p)
        self.std = value_range(std, self.name, "std", one_sided=True, low=0.0)

    def sample(self, rng: np.random.Generator, image: Image) -> Transform:
        return Noise(std=_uniform(rng, self.std), seed=int(rng.integers(_SEED_LIMIT)))

    def params(self) -> dict[str, Any]:
        return {"std": self.std, "p": self.p}


@TRANSFORMS.register("random_blur")
class RandomBlur(_Maybe):
    """Gaussian blur with a standard deviation drawn uniformly, in voxels.

    Args:
        sigma: ``[low, high]`` or ``x`` for ``[0, x]`` (voxels).
        p: probability of applying.
    """

    name = "random_blur"

    def __init__(self, sigma: float | Sequence[float] = (0.25, 1.0), p: float = 0.5) -> None:
        super().__init__(p)
        self.sigma = value_range(sigma, self.name, "sigma", one_sided=True, low=0.0)

    def sample(self, rng: np.random.Generator, image: Image) -> Transform:
        return Blur(sigma=_uniform(rng, self.sigma))

    def params(self) -> dict[str, Any]:
        return {"sigma": self.sigma, "p": self.p}


@TRANSFORMS.register("random_crop")
class RandomCrop(RandomTransform):
    """A window of ``size`` voxels at a random position of the image padded by ``padding``.

    With ``padding=4`` a 28x28 image cropped to 28 shifts by up to 4 voxels (the CIFAR-style
    augmentation). An image smaller than ``size`` is placed at a random position inside the
    window. With probability ``1 - p`` the window is centred instead.

    Args:
        size: window size, one number or one per spatial axis (voxels).
        padding: voxels of padding added on each side before drawing the position.
        pad_value: intensity of padded voxels.
        p: probability of a random (rather than centred) position.
    """

    name = "random_crop"

    def __init__(
        self,
        size: int | list[int],
        padding: int | list[int] = 0,
        pad_value: float = 0.0,
        p: float = 1.0,
    ) -> None:
        self.p = probability(p, self.name)
        self.size = numbers(size, self.name, "size", integral=True, low=1)
        self.padding = numbers(padding, self.name, "padding", integral=True, low=0)
        self.pad_value = number(pad_value, self.name, "pad_value")

    def draw(self, rng: np.random.Generator, image: Image) -> Transform:
        size = [int(s) for s in per_axis(self.size, image, "random_crop size")]
        if rng.random() >= self.p:
            start = [centred_start(n, s) for n, s in zip(image.spatial_shape, size, strict=True)]
            return Crop(start=start, size=size, pad_value=self.pad_value)
        padding = [int(q) for q in per_axis(self.padding, image, "random_crop padding")]
        start = []
        for n, s, q in zip(image.spatial_shape, size, padding, strict=True):
            lo, hi = sorted((-q, n + q - s))
            start.append(int(rng.integers(lo, hi + 1)))
        return Crop(start=start, size=size, pad_value=self.pad_value)

    def params(self) -> dict[str, Any]:
        return {
            "size": self.size,
            "padding": self.padding,
            "pad_value": self.pad_value,
            "p": self.p,
        }
