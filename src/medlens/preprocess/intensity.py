"""Intensity normalisation: min-max, fixed scale, z-score, percentile clipping, CT windows.

All of them work on 2D ``(C, H, W)`` and 3D ``(C, D, H, W)`` images alike, keep the spatial
shape, and return float32.
"""

from __future__ import annotations

from collections.abc import Sequence
from typing import Any

import numpy as np

from medlens.data.image import Image
from medlens.errors import ConfigError, InputError
from medlens.preprocess._common import (
    as_float32,
    check_finite,
    integer,
    new_image,
    number,
    numbers,
    require,
)
from medlens.preprocess.base import Transform
from medlens.preprocess.registry import TRANSFORMS

#: Standard CT windows as (center, width) in Hounsfield units.
CT_WINDOW_PRESETS: dict[str, tuple[float, float]] = {
    "lung": (-600.0, 1500.0),
    "mediastinum": (50.0, 350.0),
    "bone": (400.0, 1800.0),
    "brain": (40.0, 80.0),
    "abdomen": (40.0, 400.0),
    "liver": (60.0, 160.0),
}


def _rescale(array: np.ndarray, lo: float, hi: float, out_min: float, out_max: float) -> np.ndarray:
    """Map ``[lo, hi]`` linearly onto ``[out_min, out_max]``; a constant image gives out_min."""
    if hi <= lo:
        return np.full_like(array, out_min, dtype=np.float32)
    scale = (out_max - out_min) / (hi - lo)
    out = ((array - lo) * scale + out_min).astype(np.float32, copy=False)
    return np.clip(out, out_min, out_max, out=out)  # float rounding may overshoot by an ulp


@TRANSFORMS.register("scale_intensity")
class ScaleIntensity(Transform):
    """Min-max scaling of the whole image (all channels together) onto ``[out_min, out_max]``.

    A constant image becomes ``out_min`` everywhere (zeros by default), never NaN.

    Args:
        out_min: lowest output intensity.
        out_max: highest output intensity.

    Example:
        >>> ScaleIntensity()(image).array.min(), ScaleIntensity()(image).array.max()
        (0.0, 1.0)
    """

    name = "scale_intensity"

    def __init__(self, out_min: float = 0.0, out_max: float = 1.0) -> None:
        self.out_min = number(out_min, self.name, "out_min")
        self.out_max = number(out_max, self.name, "out_max")
        require(self.out_max > self.out_min, self.name, "out_max", "must exceed out_min")

    def apply(self, image: Image) -> Image:
        array = check_finite(image, self.name)
        out = _rescale(array, float(array.min()), float(array.max()), self.out_min, self.out_max)
        return new_image(image, out)

    def params(self) -> dict[str, Any]:
        return {"out_min": self.out_min, "out_max": self.out_max}


@TRANSFORMS.register("fixed_scale")
class FixedScale(Transform):
    """Divide by a constant, then optionally standardise with given constants.

    ``out = (array / divisor - mean) / std``; the cheap, data-independent default for
    8-bit images such as MedMNIST (``divisor=255``).

    Args:
        divisor: the constant to divide by (255 for 8-bit images).
        mean: per-channel (list) or shared (number) mean of the divided intensities.
        std: per-channel or shared standard deviation; given together with ``mean``.
    """

    name = "fixed_scale"

    def __init__(
        self,
        divisor: float = 255.0,
        mean: float | list[float] | None = None,
        std: float | list[float] | None = None,
    ) -> None:
        self.divisor = number(divisor, self.name, "divisor", low=0.0, strict_low=True)
        require((mean is None) == (std is None), self.name, "std", "give mean and std together")
        self.mean = numbers(mean, self.name, "mean") if mean is not None else None
        self.std = (
            numbers(std, self.name, "std", low=0.0, strict_low=True) if std is not None else None
        )

    def _per_channel(self, value: float | Sequence[float], image: Image, what: str) -> np.ndarray:
        values = np.asarray(value, dtype=np.float32).reshape(-1)
        if values.size not in (1, image.num_channels):
            raise InputError(
                image.source or "<image>",
                f"fixed_scale {what} has {values.size} values for {image.num_channels} channels",
            )
        return values.reshape((-1,) + (1,) * image.spatial_dims)

    def apply(self, image: Image) -> Image:
        out = as_float32(image) / np.float32(self.divisor)
        if self.mean is not None and self.std is not None:
            mean = self._per_channel(self.mean, image, "mean")
            std = self._per_channel(self.std, image, "std")
            out = (out - mean) / std
        return new_image(image, out)

    def params(self) -> dict[str, Any]:
        return {"divisor": self.divisor, "mean": self.mean, "std": self.std}


def _standardise(values: np.ndarray) -> np.ndarray:
    std = float(values.std())
    return (values - values.mean()) / np.float32(std if std > 0 else 1.0)


@TRANSFORMS.register("z_score")
class ZScore(Transform):
    """Per-channel standardisation to mean 0 and standard deviation 1.

    Args:
        nonzero: compute the statistics over nonzero voxels only and leave zero voxels at 0
            (for skull-stripped or masked volumes whose background is exactly 0).

    A constant channel becomes zeros (its deviation from its mean), never NaN.
    """

    name = "z_score"

    def __init__(self, nonzero: bool = False) -> None:
        require(
            isinstance(nonzero, bool),
            self.name,
            "nonzero",
            f"must be true or false, got {nonzero!r}",
        )
        self.nonzero = nonzero

    def apply(self, image: Image) -> Image:
        array = check_finite(image, self.name)
        out = np.zeros_like(array)
        for c, channel in enumerate(array):
            if not self.nonzero:
                out[c] = _standardise(channel)
                continue
            mask = channel != 0
            if mask.any():
                out[c][mask] = _standardise(channel[mask])
        return new_image(image, out)

    def params(self) -> dict[str, Any]:
        return {"nonzero": self.nonzero}


@TRANSFORMS.register("percentile_clip")
class PercentileClip(Transform):
    """Clip the whole image at two percentiles, then rescale onto ``[out_min, out_max]``.

    Args:
        lower: lower percentile, in percent (0-100).
        upper: upper percentile, in percent (0-100), above ``lower``.
        out_min: intensity given to the lower percentile and below.
        out_max: intensity given to the upper percentile and above.
    """

    name = "percentile_clip"

    def __init__(
        self, lower: float = 0.5, upper: float = 99.5, out_min: float = 0.0, out_max: float = 1.0
    ) -> None:
        self.lower = number(lower, self.name, "lower", low=0.0, high=100.0)
        self.upper = number(upper, self.name, "upper", low=0.0, high=100.0)
        require(self.upper > self.lower, self.name, "upper", "must exceed lower")
        self.out_min = number(out_min, self.name, "out_min")
        self.out_max = number(out_max, self.name, "out_max")
        require(self.out_max > self.out_min, self.name, "out_max", "must exceed out_min")

    def apply(self, image: Image) -> Image:
        array = check_finite(image, self.name)
        lo, hi = (float(v) for v in np.percentile(array, [self.lower, self.upper]))
        out = _rescale(np.clip(array, lo, hi), lo, hi, self.out_min, self.out_max)
        return new_image(image, out)

    def params(self) -> dict[str, Any]:
        return {
            "lower": self.lower,
            "upper": self.upper,
            "out_min": self.out_min,
            "out_max": self.out_max,
        }


@TRANSFORMS.register("ct_window")
class CTWindow(Transform):
    """A CT window: Hounsfield units in ``[center - width/2, center + width/2]`` -> ``[0, 1]``.

    Give either ``preset`` (one of ``CT_WINDOW_PRESETS``: lung -600/1500, mediastinum 50/350,
    bone 400/1800, brain 40/80, abdomen 40/400, liver 60/160) or both ``center`` and ``width``.
    Values outside the window are clipped to 0 or 1.

    Args:
        center: window centre (level), in HU.
        width: window width, in HU (> 0).
        preset: a named standard window.

    Example:
        >>> CTWindow(preset="lung")  # -1350 HU -> 0, 150 HU -> 1
    """

    name = "ct_window"

    def __init__(
        self, center: float | None = None, width: float | None = None, preset: str | None = None
    ) -> None:
        if preset is not None:
            if preset not in CT_WINDOW_PRESETS:
                raise ConfigError(
                    f"{self.name}.preset",
                    f"unknown CT window preset {preset!r}; presets: {', '.join(CT_WINDOW_PRESETS)}",
                )
            require(
                center is None and width is None,
                self.name,
                "preset",
                "give a preset or center/width, not both",
            )
        else:
            require(
                center is not None and width is not None,
                self.name,
                "center",
                "give a preset or both center and width",
            )
            center = number(center, self.name, "center")
            width = number(width, self.name, "width", low=0.0, strict_low=True)
        self.center = center
        self.width = width
        self.preset = preset

    @property
    def window(self) -> tuple[float, float]:
        """(center, width) in HU."""
        if self.preset is not None:
            return CT_WINDOW_PRESETS[self.preset]
        return float(self.center), float(self.width)  # type: ignore[arg-type]

    def apply(self, image: Image) -> Image:
        array = check_finite(image, self.name)
        center, width = self.window
        lo = center - width / 2
        out = np.clip((array - np.float32(lo)) / np.float32(width), 0.0, 1.0)
        return new_image(image, out)

    def params(self) -> dict[str, Any]:
        if self.preset is not None:
            return {"preset": self.preset}
        return {"center": self.center, "width": self.width}


#: Luminance weights (ITU-R BT.709, as in ``skimage.color.rgb2gray``) for RGB -> gray.
_LUMA = np.array([0.2125, 0.7154, 0.0721], dtype=np.float32)


@TRANSFORMS.register("to_channels")
class ToChannels(Transform):
    """Change the channel count: gray (1) -> ``channels`` copies, or RGB (3) -> gray (1).

    RGB -> gray uses the BT.709 luminance weights of ``skimage.color.rgb2gray``. An image
    that already has ``channels`` channels is copied unchanged.

    Args:
        channels: the output channel count (3 for ImageNet backbones, 1 for gray models).
    """

    name = "to_channels"

    def __init__(self, channels: int = 3) -> None:
        self.channels = integer(channels, self.name, "channels", low=1)

    def apply(self, image: Image) -> Image:
        array = as_float32(image)
        c = image.num_channels
        if c == self.channels:
            out = array.copy()
        elif c == 1:
            out = np.repeat(array, self.channels, axis=0)
        elif c == 3 and self.channels == 1:
            out = np.tensordot(_LUMA, array, axes=(0, 0))[None]
        else:
            raise InputError(
                image.source or "<image>",
                f"to_channels cannot turn {c} channels into {self.channels}; "
                "it repeats 1 channel or turns 3 (RGB) into 1",
            )
        return new_image(image, out)

    def params(self) -> dict[str, Any]:
        return {"channels": self.channels}


@TRANSFORMS.register("select_channels")
class SelectChannels(Transform):
    """Keep the listed channels, in the order given (e.g. ``[1]``: the green channel of a
    fundus photograph, where vessels have the most contrast).

    Args:
        channels: 0-based channel indices.
    """

    name = "select_channels"

    def __init__(self, channels: int | list[int] = 0) -> None:
        values = [channels] if isinstance(channels, int) else list(channels)
        require(bool(values), self.name, "channels", "must name at least one channel")
        self.channels = [integer(c, self.name, "channels", low=0) for c in values]

    def apply(self, image: Image) -> Image:
        missing = [c for c in self.channels if c >= image.num_channels]
        if missing:
            raise InputError(
                image.source or "<image>",
                f"select_channels asks for channel {missing[0]} of a "
                f"{image.num_channels}-channel image",
            )
        return new_image(image, as_float32(image)[self.channels].copy())

    def params(self) -> dict[str, Any]:
        return {"channels": list(self.channels)}
