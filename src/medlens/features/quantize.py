"""Gray-level discretisation (IBSI section 2.7) before histogram and texture features."""

from __future__ import annotations

import numpy as np

from medlens.errors import ConfigError
from medlens.features.roi import RegionOfInterest

MAX_GRAY_LEVELS = 1024


def quantize(
    roi: RegionOfInterest, bins: int = 32, bin_width: float | None = None
) -> tuple[np.ndarray, int]:
    """Gray levels ``1..Ng`` inside the ROI, ``0`` outside.

    Fixed bin count (the default, IBSI "FBN"): the ROI's range ``[min, max]`` is cut into
    ``bins`` equal bins, ``level = floor(bins * (x - min) / (max - min)) + 1`` with ``max`` in
    the last bin; ``Ng = bins``. A flat ROI is all level 1. Suited to images without a
    physical intensity scale (X-ray, MR, 8-bit images).

    Fixed bin width (``bin_width`` given, IBSI "FBS", pyradiomics' ``binWidth``): bin edges lie
    at multiples of ``bin_width`` in the image's units (HU for CT), so one HU range maps to one
    level in every ROI: ``level = floor(x / w) - floor(min / w) + 1``; ``Ng`` is the top level.

    Args:
        roi: the region of interest.
        bins: number of bins for the fixed bin count.
        bin_width: bin width in intensity units; when given, ``bins`` is ignored.

    Returns:
        ``(levels, Ng)``: int32 array of ``roi.mask``'s shape, and the number of gray levels.

    Raises:
        ConfigError: ``bins`` below 2, a non-positive ``bin_width``, or a width so small that
            the ROI would need more than 1024 levels.
    """
    values = roi.values
    low, high = float(values.min()), float(values.max())
    if bin_width is not None:
        if not (np.isfinite(bin_width) and bin_width > 0):
            raise ConfigError("features.bin_width", f"must be positive, got {bin_width}")
        first = np.floor(low / bin_width)
        n_levels = int(np.floor(high / bin_width) - first) + 1
        if n_levels > MAX_GRAY_LEVELS:
            raise ConfigError(
                "features.bin_width",
                f"{bin_width} cuts the range {low:g}..{high:g} into {n_levels} levels "
                f"(at most {MAX_GRAY_LEVELS}); use a wider bin",
            )
        inside = np.floor(values / bin_width) - first + 1
    else:
        if isinstance(bins, bool) or not isinstance(bins, int | np.integer) or bins < 2:
            raise ConfigError("features.bins", f"must be an integer of at least 2, got {bins!r}")
        n_levels = int(bins)
        if high > low:
            inside = np.floor(n_levels * (values - low) / (high - low)) + 1
        else:
            inside = np.ones_like(values)
    levels = np.zeros(roi.mask.shape, dtype=np.int32)
    levels[roi.mask] = np.clip(inside, 1, n_levels).astype(np.int32)
    return levels, n_levels
