"""First-order (histogram) features of the intensities inside an ROI (IBSI chapter 3.3/3.4)."""

from __future__ import annotations

import numpy as np

from medlens.features.roi import RegionOfInterest


def first_order_features(
    roi: RegionOfInterest, levels: np.ndarray, n_levels: int
) -> dict[str, float]:
    """Statistics of the ROI's intensities, in the image's own units.

    Everything is computed on the original intensities except ``entropy`` and
    ``uniformity``, which use the discretised gray levels (see ``quantize``). The variance
    and standard deviation divide by N (as IBSI and pyradiomics); ``kurtosis`` is the
    excess kurtosis (0 for a normal distribution; pyradiomics reports it + 3); skewness and
    kurtosis are 0 for a flat ROI. Percentiles interpolate linearly (numpy's default).

    Args:
        roi: the region of interest.
        levels: gray levels ``1..Ng`` from ``quantize`` (0 outside the ROI).
        n_levels: ``Ng``.

    Returns:
        ``firstorder_*`` features: mean, standard_deviation, variance, skewness, kurtosis,
        minimum, maximum, range, median, percentile_10, percentile_90, interquartile_range,
        mean_absolute_deviation, robust_mean_absolute_deviation (about the mean of the
        10th-90th percentile values), root_mean_squared, energy (sum of x², intensity²),
        total_energy (energy x voxel volume, intensity² mm³, or mm² in 2D), entropy (bits),
        uniformity.
    """
    x = roi.values
    mean = float(x.mean())
    centred = x - mean
    variance = float(np.mean(centred**2))
    sd = np.sqrt(variance)
    if sd > 0:
        skewness = float(np.mean(centred**3) / sd**3)
        kurtosis = float(np.mean(centred**4) / variance**2 - 3.0)
    else:
        skewness = kurtosis = 0.0
    p10, p25, median, p75, p90 = np.percentile(x, [10, 25, 50, 75, 90])
    robust = x[(x >= p10) & (x <= p90)]
    energy = float(np.sum(x**2))
    counts = np.bincount(levels[roi.mask], minlength=n_levels + 1)[1:]
    p = counts[counts > 0] / x.size
    return {
        "firstorder_mean": mean,
        "firstorder_standard_deviation": float(sd),
        "firstorder_variance": variance,
        "firstorder_skewness": skewness,
        "firstorder_kurtosis": kurtosis,
        "firstorder_minimum": float(x.min()),
        "firstorder_maximum": float(x.max()),
        "firstorder_range": float(x.max() - x.min()),
        "firstorder_median": float(median),
        "firstorder_percentile_10": float(p10),
        "firstorder_percentile_90": float(p90),
        "firstorder_interquartile_range": float(p75 - p25),
        "firstorder_mean_absolute_deviation": float(np.mean(np.abs(centred))),
        "firstorder_robust_mean_absolute_deviation": float(np.mean(np.abs(robust - robust.mean()))),
        "firstorder_root_mean_squared": float(np.sqrt(energy / x.size)),
        "firstorder_energy": energy,
        "firstorder_total_energy": energy * roi.voxel_volume,
        "firstorder_entropy": float(-np.sum(p * np.log2(p))),
        "firstorder_uniformity": float(np.sum(p**2)),
    }
