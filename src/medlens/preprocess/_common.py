"""Helpers shared by the transform modules: output images, parameter checks, axis sizes."""

from __future__ import annotations

from collections.abc import Sequence
from dataclasses import replace
from typing import Any

import numpy as np

from medlens.data.image import Image
from medlens.errors import ConfigError, InputError

Number = int | float


def new_image(
    image: Image,
    array: np.ndarray,
    spacing: Sequence[float] | None = None,
    affine: np.ndarray | None = None,
) -> Image:
    """A new float32 ``Image`` holding ``array``; the input is left untouched.

    The history list is copied, so appending to the output's history never changes the
    input's. ``affine`` replaces the one ``Image.with_array`` keeps (or drops on a new grid).
    """
    out = image.with_array(
        np.asarray(array, dtype=np.float32),
        spacing=tuple(float(s) for s in spacing) if spacing is not None else None,
    )
    if "history" in out.meta:
        out.meta["history"] = list(out.meta["history"])
    if affine is not None:
        out = replace(out, affine=affine)
    return out


def as_float32(image: Image) -> np.ndarray:
    """The image array as float32 (a copy only when the dtype differs)."""
    return np.asarray(image.array, dtype=np.float32)


def require(condition: bool, transform: str, param: str, reason: str) -> None:
    """Raise ``ConfigError`` keyed ``transform.param`` unless ``condition`` holds."""
    if not condition:
        raise ConfigError(f"{transform}.{param}", reason)


def _is_number(value: Any) -> bool:
    return isinstance(value, (int, float, np.integer, np.floating)) and not isinstance(
        value, (bool, np.bool_)
    )


def number(
    value: Any,
    transform: str,
    param: str,
    *,
    low: float | None = None,
    high: float | None = None,
    strict_low: bool = False,
) -> float:
    """``value`` as a float, checked against ``[low, high]`` (``(low, high]`` if strict_low)."""
    require(_is_number(value), transform, param, f"must be a number, got {value!r}")
    value = float(value)
    require(np.isfinite(value), transform, param, f"must be finite, got {value}")
    if low is not None:
        ok = value > low if strict_low else value >= low
        require(ok, transform, param, f"must be {'>' if strict_low else '>='} {low}, got {value}")
    if high is not None:
        require(value <= high, transform, param, f"must be <= {high}, got {value}")
    return value


def integer(value: Any, transform: str, param: str, *, low: int | None = None) -> int:
    """``value`` as an int (a float with an integral value is accepted), checked ``>= low``."""
    ok = _is_number(value) and float(value).is_integer()
    require(ok, transform, param, f"must be an integer, got {value!r}")
    value = int(value)
    if low is not None:
        require(value >= low, transform, param, f"must be >= {low}, got {value}")
    return value


def numbers(
    value: Any, transform: str, param: str, *, integral: bool = False, **bounds: Any
) -> float | int | list[float] | list[int]:
    """A number, or a non-empty list of numbers (one per spatial axis), each checked."""
    one = integer if integral else number
    if isinstance(value, (list, tuple)):
        require(len(value) > 0, transform, param, "must not be an empty list")
        return [one(v, transform, param, **bounds) for v in value]  # type: ignore[operator]
    return one(value, transform, param, **bounds)  # type: ignore[operator]


def value_range(
    value: Any,
    transform: str,
    param: str,
    *,
    center: float = 0.0,
    one_sided: bool = False,
    low: float | None = None,
) -> list[float]:
    """A ``[lo, hi]`` range given as such or as a number ``x``, which means
    ``[center - x, center + x]`` (``[center, center + x]`` when ``one_sided``)."""
    if isinstance(value, (list, tuple)):
        require(
            len(value) == 2, transform, param, f"must be a number or [low, high], got {value!r}"
        )
        lo, hi = (number(v, transform, param) for v in value)
    else:
        x = number(value, transform, param, low=0.0)
        lo, hi = (center if one_sided else center - x), center + x
    require(lo <= hi, transform, param, f"low must not exceed high, got [{lo}, {hi}]")
    if low is not None:
        require(lo >= low, transform, param, f"must stay >= {low}, got [{lo}, {hi}]")
    return [lo, hi]


def probability(value: Any, transform: str) -> float:
    return number(value, transform, "p", low=0.0, high=1.0)


def choice(value: Any, transform: str, param: str, options: Sequence[str]) -> str:
    require(
        value in options, transform, param, f"must be one of {', '.join(options)}; got {value!r}"
    )
    return str(value)


def per_axis(value: float | int | Sequence[Any], image: Image, what: str) -> tuple[Any, ...]:
    """One value per spatial axis: a scalar is repeated; a list must match the image's axes."""
    ndim = image.spatial_dims
    if isinstance(value, (list, tuple)):
        if len(value) != ndim:
            raise InputError(
                image.source or "<image>",
                f"{what} has {len(value)} values but the image has {ndim} spatial axes",
            )
        return tuple(value)
    return (value,) * ndim


def spatial_axis(axis: int, image: Image, what: str) -> int:
    """A spatial axis index (negative counts from the end) as a non-negative index."""
    ndim = image.spatial_dims
    if not -ndim <= axis < ndim:
        raise InputError(
            image.source or "<image>", f"{what} axis {axis} is out of range for {ndim} spatial axes"
        )
    return axis % ndim


def check_unit_range(image: Image, transform: str, tolerance: float = 1e-3) -> np.ndarray:
    """The float32 array, after checking its intensities lie in [0, 1] (within ``tolerance``)."""
    array = as_float32(image)
    lo, hi = float(array.min()), float(array.max())
    if not (np.isfinite(lo) and np.isfinite(hi)) or lo < -tolerance or hi > 1 + tolerance:
        raise InputError(
            image.source or "<image>",
            f"{transform} expects intensities in [0, 1], got [{lo:.4g}, {hi:.4g}]; "
            "put scale_intensity, ct_window or fixed_scale before it",
        )
    return np.clip(array, 0.0, 1.0)


def check_finite(image: Image, transform: str) -> np.ndarray:
    """The float32 array, after checking it holds no NaN or infinity."""
    array = as_float32(image)
    if not np.isfinite(array).all():
        raise InputError(
            image.source or "<image>", f"{transform}: the image contains NaN or infinity"
        )
    return array


def shifted_affine(affine: np.ndarray | None, start: Sequence[float]) -> np.ndarray | None:
    """The affine of a grid whose voxel 0 sits at voxel ``start`` of the old grid."""
    if affine is None:
        return None
    shift = np.eye(affine.shape[0])
    shift[: len(start), -1] = start
    return affine @ shift


def scaled_affine(affine: np.ndarray | None, factors: Sequence[float]) -> np.ndarray | None:
    """The affine after resampling by ``factors`` (old voxels per new voxel), edges aligned."""
    if affine is None:
        return None
    n = len(factors)
    f = np.asarray(factors, dtype=float)
    scale = np.eye(affine.shape[0])
    scale[np.arange(n), np.arange(n)] = f
    scale[:n, -1] = 0.5 * f - 0.5  # new voxel centre i lies at old index (i + 0.5) * f - 0.5
    return affine @ scale
