"""Neighbour directions for texture matrices: 4 in 2D, 13 in 3D (IBSI section 3.6)."""

from __future__ import annotations

import itertools

import numpy as np


def directions(spatial_dims: int) -> list[tuple[int, ...]]:
    """One offset of each pair of opposite neighbour directions, in voxel steps.

    2D ``(row, col)``: ``(0, 1)`` 0°, ``(1, 1)`` 45°, ``(1, 0)`` 90°, ``(1, -1)`` 135° (the
    image's row axis pointing down). 3D ``(z, y, x)``: the 13 offsets of the 26-neighbourhood
    whose first nonzero component is positive.
    """
    if spatial_dims == 2:
        return [(0, 1), (1, 1), (1, 0), (1, -1)]
    out = []
    for offset in itertools.product((-1, 0, 1), repeat=spatial_dims):
        nonzero = [o for o in offset if o != 0]
        if nonzero and nonzero[0] > 0:
            out.append(offset)
    return sorted(out, key=lambda o: (-o[0], -o[1], -o[2]))


def shifted_pairs(array: np.ndarray, offset: tuple[int, ...]) -> tuple[np.ndarray, np.ndarray]:
    """``(a, b)`` views of ``array`` where ``b[k]`` is the voxel at ``a[k]``'s position + offset."""
    first, second = [], []
    for step, size in zip(offset, array.shape, strict=True):
        if step >= 0:
            first.append(slice(0, max(size - step, 0)))
            second.append(slice(min(step, size), size))
        else:
            first.append(slice(min(-step, size), size))
            second.append(slice(0, max(size + step, 0)))
    return array[tuple(first)], array[tuple(second)]
