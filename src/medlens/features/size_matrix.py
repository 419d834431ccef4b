"""Features shared by the run-length (GLRLM) and size-zone (GLSZM) matrices (IBSI 3.7, 3.8).

Both matrices count groups of voxels of one gray level ``i`` (rows, ``1..Ng``) by their
size ``j`` in voxels (columns, ``1..``): runs along a direction, or connected zones. The
same formulas then give short/small emphasis, non-uniformities, percentages and so on.
"""

from __future__ import annotations

import numpy as np


def size_matrix_features(matrix: np.ndarray, n_voxels: int) -> dict[str, float]:
    """Generic features of a gray level x size count matrix (IBSI/pyradiomics formulas).

    Args:
        matrix: ``M[i - 1, j - 1]`` = number of groups of gray level ``i`` and size ``j``.
        n_voxels: voxels in the ROI (``Np``), for the percentage.

    Returns:
        Keys ``small_emphasis`` (sum M/j² / N), ``large_emphasis`` (sum M j² / N),
        ``gray_level_non_uniformity`` (sum_i (sum_j M)² / N) and ``..._normalized`` (/ N²),
        ``size_non_uniformity`` (sum_j (sum_i M)² / N) and ``..._normalized``,
        ``percentage`` (N / Np), ``low_gray_level_emphasis`` (sum M/i² / N),
        ``high_gray_level_emphasis`` (sum M i² / N), ``entropy`` (bits),
        ``gray_level_variance`` and ``size_variance``; N is the number of groups.
    """
    m = np.asarray(matrix, dtype=np.float64)
    total = float(m.sum())
    i = np.arange(1, m.shape[0] + 1, dtype=np.float64)[:, None]
    j = np.arange(1, m.shape[1] + 1, dtype=np.float64)[None, :]
    p = m / total
    by_level = m.sum(axis=1)
    by_size = m.sum(axis=0)
    mean_level = float((p * i).sum())
    mean_size = float((p * j).sum())
    nonzero = p[p > 0]
    return {
        "small_emphasis": float((m / j**2).sum() / total),
        "large_emphasis": float((m * j**2).sum() / total),
        "gray_level_non_uniformity": float((by_level**2).sum() / total),
        "gray_level_non_uniformity_normalized": float((by_level**2).sum() / total**2),
        "size_non_uniformity": float((by_size**2).sum() / total),
        "size_non_uniformity_normalized": float((by_size**2).sum() / total**2),
        "percentage": total / float(n_voxels),
        "low_gray_level_emphasis": float((m / i**2).sum() / total),
        "high_gray_level_emphasis": float((m * i**2).sum() / total),
        "entropy": float(-(nonzero * np.log2(nonzero)).sum()),
        "gray_level_variance": float((p * (i - mean_level) ** 2).sum()),
        "size_variance": float((p * (j - mean_size) ** 2).sum()),
    }


def count_by_size(sizes_per_level: dict[int, np.ndarray], n_levels: int) -> np.ndarray:
    """The ``(Ng, max size)`` count matrix from the group sizes found for each gray level."""
    longest = max((int(s.max()) for s in sizes_per_level.values() if s.size), default=1)
    out = np.zeros((n_levels, longest), dtype=np.int64)
    for level, sizes in sizes_per_level.items():
        out[level - 1] = np.bincount(sizes, minlength=longest + 1)[1:]
    return out
