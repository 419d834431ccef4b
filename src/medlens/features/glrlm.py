"""Gray-level run-length matrix (GLRLM) features, 2D and 3D (IBSI section 3.7)."""

from __future__ import annotations

import numpy as np
from scipy import ndimage

from medlens.features.directions import directions
from medlens.features.size_matrix import count_by_size, size_matrix_features

_NAMES = {
    "small_emphasis": "short_run_emphasis",
    "large_emphasis": "long_run_emphasis",
    "gray_level_non_uniformity": "gray_level_non_uniformity",
    "gray_level_non_uniformity_normalized": "gray_level_non_uniformity_normalized",
    "size_non_uniformity": "run_length_non_uniformity",
    "size_non_uniformity_normalized": "run_length_non_uniformity_normalized",
    "percentage": "run_percentage",
    "low_gray_level_emphasis": "low_gray_level_run_emphasis",
    "high_gray_level_emphasis": "high_gray_level_run_emphasis",
    "entropy": "run_entropy",
    "gray_level_variance": "gray_level_variance",
    "size_variance": "run_variance",
}


def run_length_matrix(levels: np.ndarray, n_levels: int, direction: tuple[int, ...]) -> np.ndarray:
    """GLRLM ``(Ng, longest run)``: ``[i - 1, j - 1]`` counts runs of level ``i``, length ``j``.

    A run is a maximal line of voxels of one gray level along ``direction`` (either way);
    voxels outside the ROI (level 0) end a run. Runs are found as the connected components
    of each level under a connectivity that links a voxel only to its two neighbours along
    ``direction`` (``scipy.ndimage.label``).

    Args:
        levels: gray levels ``1..Ng`` inside the ROI, 0 outside (see ``quantize``).
        n_levels: ``Ng``.
        direction: a voxel offset such as ``(0, 1)`` (2D rows) or ``(1, 1, 0)`` (3D).
    """
    structure = np.zeros((3,) * levels.ndim, dtype=bool)
    centre = np.ones(levels.ndim, dtype=int)
    for point in (centre, centre + direction, centre - direction):
        structure[tuple(point)] = True
    sizes = {}
    for level in np.unique(levels[levels > 0]):
        labelled, _ = ndimage.label(levels == level, structure=structure)
        sizes[int(level)] = np.bincount(labelled.ravel())[1:]
    return count_by_size(sizes, n_levels)


def glrlm_features(levels: np.ndarray, n_levels: int) -> dict[str, float]:
    """GLRLM features computed per direction (4 in 2D, 13 in 3D) and averaged, as
    pyradiomics does by default.

    Returns:
        ``glrlm_*``: short_run_emphasis, long_run_emphasis, gray_level_non_uniformity(
        _normalized), run_length_non_uniformity(_normalized), run_percentage (runs / ROI
        voxels), low/high_gray_level_run_emphasis, run_entropy (bits), gray_level_variance,
        run_variance (see ``size_matrix_features`` for the formulas).
    """
    n_voxels = int(np.count_nonzero(levels))
    per_direction = [
        size_matrix_features(run_length_matrix(levels, n_levels, d), n_voxels)
        for d in directions(levels.ndim)
    ]
    return {
        f"glrlm_{name}": float(np.mean([f[key] for f in per_direction]))
        for key, name in _NAMES.items()
    }
