"""Gray-level co-occurrence matrix (GLCM) texture features, 2D and 3D (IBSI section 3.6).

The matrices are counted here with numpy rather than with ``skimage.feature.graycomatrix``
for two reasons: scikit-image is 2D only, and it rounds diagonal offsets (distance 2 at 45°
becomes the offset (1, 1)), whereas IBSI and pyradiomics step ``distance`` voxels along
each axis (offset (2, 2)). At distance 1 the two agree exactly (tested). The properties
themselves come from ``skimage.feature.graycoprops``.
"""

from __future__ import annotations

import numpy as np
from skimage.feature import graycoprops

from medlens.errors import ConfigError, InputError
from medlens.features.directions import directions, shifted_pairs

_PROPERTIES = {
    "contrast": "contrast",
    "correlation": "correlation",
    "energy": "energy",
    "homogeneity": "homogeneity",
    "dissimilarity": "dissimilarity",
    "asm": "ASM",
}


def cooccurrence_matrix(
    levels: np.ndarray,
    n_levels: int,
    distances: tuple[int, ...] = (1,),
    symmetric: bool = True,
) -> np.ndarray:
    """GLCM counts ``(Ng, Ng, len(distances), n_directions)``.

    Entry ``[i-1, j-1, d, k]`` counts the voxel pairs where a voxel of gray level ``i`` has a
    voxel of level ``j`` at ``distances[d]`` steps along ``directions(ndim)[k]``. Pairs with
    a voxel outside the ROI (level 0) are not counted. ``symmetric`` adds the transpose
    (each pair counted both ways), as IBSI and pyradiomics do.

    Args:
        levels: gray levels ``1..Ng`` inside the ROI, 0 outside (see ``quantize``).
        n_levels: ``Ng``.
        distances: neighbour distances in voxels (Chebyshev: steps along every axis).
        symmetric: count each pair in both directions.
    """
    if not distances or any(int(d) < 1 for d in distances):
        raise ConfigError("features.distances", f"must be positive integers, got {distances}")
    offsets = directions(levels.ndim)
    out = np.zeros((n_levels, n_levels, len(distances), len(offsets)), dtype=np.int64)
    for d, distance in enumerate(distances):
        for k, direction in enumerate(offsets):
            a, b = shifted_pairs(levels, tuple(int(distance) * s for s in direction))
            both = (a > 0) & (b > 0)
            pair = (a[both].astype(np.int64) - 1) * n_levels + (b[both] - 1)
            counts = np.bincount(pair, minlength=n_levels * n_levels)
            out[:, :, d, k] = counts.reshape(n_levels, n_levels)
    if symmetric:
        out = out + out.transpose(1, 0, 2, 3)
    return out


def glcm_features_from_matrix(matrix: np.ndarray, source: str = "") -> dict[str, float]:
    """GLCM features averaged over the distances and directions that hold any pair.

    Args:
        matrix: counts ``(Ng, Ng, n_distances, n_directions)`` from ``cooccurrence_matrix``.
        source: the image, for the error message.

    Returns:
        ``glcm_contrast``, ``glcm_correlation`` (1 where a matrix has no variance),
        ``glcm_energy`` (sqrt of ASM), ``glcm_homogeneity`` (1/(1+(i-j)²) weights: IBSI's
        inverse difference moment), ``glcm_dissimilarity``, ``glcm_asm`` (angular second
        moment, IBSI joint energy), ``glcm_joint_entropy`` (bits).

    Raises:
        InputError: the ROI has no pair of voxels at any of the distances.
    """
    n = matrix.shape[0]
    flat = matrix.reshape(n, n, 1, -1).astype(np.float64)
    flat = flat[..., flat.sum(axis=(0, 1))[0] > 0]
    if flat.shape[-1] == 0:
        raise InputError(
            source or "<image>", "the ROI has no neighbouring voxel pairs, so GLCM is undefined"
        )
    out = {
        f"glcm_{name}": float(graycoprops(flat, prop).mean()) for name, prop in _PROPERTIES.items()
    }
    out["glcm_joint_entropy"] = float(graycoprops(flat, "entropy").mean() / np.log(2.0))
    return out


def glcm_features(
    levels: np.ndarray, n_levels: int, distances: tuple[int, ...] = (1,), source: str = ""
) -> dict[str, float]:
    """GLCM features of a quantised ROI: symmetric matrices at each distance and direction
    (4 in 2D, 13 in 3D), one feature value per matrix, averaged (pyradiomics' default)."""
    return glcm_features_from_matrix(cooccurrence_matrix(levels, n_levels, distances), source)
