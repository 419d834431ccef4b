"""Gray-level size-zone matrix (GLSZM) features, 2D and 3D (IBSI section 3.8)."""

from __future__ import annotations

import numpy as np
from scipy import ndimage

from medlens.features.size_matrix import count_by_size, size_matrix_features

_NAMES = {
    "small_emphasis": "small_area_emphasis",
    "large_emphasis": "large_area_emphasis",
    "gray_level_non_uniformity": "gray_level_non_uniformity",
    "gray_level_non_uniformity_normalized": "gray_level_non_uniformity_normalized",
    "size_non_uniformity": "size_zone_non_uniformity",
    "size_non_uniformity_normalized": "size_zone_non_uniformity_normalized",
    "percentage": "zone_percentage",
    "low_gray_level_emphasis": "low_gray_level_zone_emphasis",
    "high_gray_level_emphasis": "high_gray_level_zone_emphasis",
    "entropy": "zone_entropy",
    "gray_level_variance": "gray_level_variance",
    "size_variance": "zone_variance",
}


def size_zone_matrix(levels: np.ndarray, n_levels: int) -> np.ndarray:
    """GLSZM ``(Ng, largest zone)``: ``[i - 1, j - 1]`` counts zones of level ``i`` and
    ``j`` voxels.

    A zone is a connected component of one gray level with full connectivity (8 neighbours
    in 2D, 26 in 3D, as IBSI and pyradiomics), found with ``scipy.ndimage.label``.
    """
    structure = ndimage.generate_binary_structure(levels.ndim, levels.ndim)
    sizes = {}
    for level in np.unique(levels[levels > 0]):
        labelled, _ = ndimage.label(levels == level, structure=structure)
        sizes[int(level)] = np.bincount(labelled.ravel())[1:]
    return count_by_size(sizes, n_levels)


def glszm_features(levels: np.ndarray, n_levels: int) -> dict[str, float]:
    """GLSZM features of a quantised ROI (one matrix: zones have no direction).

    Returns:
        ``glszm_*``: small_area_emphasis, large_area_emphasis, gray_level_non_uniformity(
        _normalized), size_zone_non_uniformity(_normalized), zone_percentage (zones / ROI
        voxels), low/high_gray_level_zone_emphasis, zone_entropy (bits), gray_level_variance,
        zone_variance.
    """
    features = size_matrix_features(
        size_zone_matrix(levels, n_levels), int(np.count_nonzero(levels))
    )
    return {f"glszm_{name}": float(features[key]) for key, name in _NAMES.items()}
