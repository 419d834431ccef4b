"""A fitted registration applied: images and label maps resampled onto the fixed grid,
points mapped from the fixed image into the moving one, the displacement in world mm."""

from __future__ import annotations

import numpy as np
import torch
from scipy import ndimage

from medlens.registration.chain import TransformChain
from medlens.registration.geometry import (
    apply_matrix,
    as_tensor,
    map_grid,
    normalised_from_voxel,
    sample,
    voxel_grid,
)


def _fixed_voxel_to_moving_normalised(chain: TransformChain, linear: np.ndarray) -> np.ndarray:
    to_moving = np.linalg.inv(chain.moving_to_world) @ linear @ chain.fixed_to_world
    return normalised_from_voxel(chain.moving_shape) @ to_moving


def _coordinates(chain: TransformChain, linear: np.ndarray, deformable: bool) -> torch.Tensor:
    grid = voxel_grid(chain.fixed_shape)
    if deformable and chain.displacement is not None:
        grid = grid + torch.from_numpy(np.moveaxis(chain.displacement, 0, -1))
    matrix = as_tensor(_fixed_voxel_to_moving_normalised(chain, linear)).float()
    return map_grid(grid, matrix)[None]


def warp_array(
    chain: TransformChain,
    array: np.ndarray,
    nearest: bool = False,
    stage: str = "final",
) -> np.ndarray:
    """``array`` ``(C, *moving_shape)`` resampled onto the fixed grid ``(C, *fixed_shape)``.

    Args:
        nearest: nearest-neighbour interpolation (label maps) instead of linear.
        stage: ``final`` (the whole chain), ``linear`` (without the deformable stage) or
            ``before`` (the initial geometric alignment only).

    Outside the moving image the result is 0.
    """
    linear = chain.initial if stage == "before" else chain.linear
    coords = _coordinates(chain, linear, deformable=stage == "final")
    source = torch.from_numpy(np.ascontiguousarray(array, dtype=np.float32))[None]
    out = sample(source, coords, mode="nearest" if nearest else "bilinear")[0].numpy()
    return out.astype(array.dtype) if nearest else out


def map_points(chain: TransformChain, points: np.ndarray) -> np.ndarray:
    """Fixed-image world points ``(N, d)`` (mm) mapped into the moving image's world (mm):
    ``T(x + u(x))``, the displacement interpolated linearly (held constant past the grid)."""
    points = np.asarray(points, dtype=np.float64)
    voxels = apply_matrix(np.linalg.inv(chain.fixed_to_world), points)
    if chain.displacement is not None:
        shift = np.stack(
            [
                ndimage.map_coordinates(component, voxels.T, order=1, mode="nearest")
                for component in chain.displacement
            ],
            axis=1,
        )
        voxels = voxels + shift
    return apply_matrix(chain.linear @ chain.fixed_to_world, voxels)


def displacement_mm(chain: TransformChain) -> np.ndarray | None:
    """The deformable displacement as world vectors in mm, ``(d, *fixed_shape)``."""
    if chain.displacement is None:
        return None
    d = chain.dims
    linear = chain.fixed_to_world[:d, :d]
    return np.einsum("ij,j...->i...", linear, chain.displacement).astype(np.float32)
