"""Where voxels are: the voxel -> world matrix of an image, regular voxel grids, and the
matrix that turns voxel indices into ``grid_sample``'s normalised coordinates.

Conventions used by every registration module:

- A voxel index lists the array's spatial axes in order (``(i, j)`` for ``(H, W)``,
  ``(i, j, k)`` for ``(D, H, W)``), the order of ``Image.array[0]``.
- World coordinates are millimetres: the image's own affine (NIfTI RAS, DICOM LPS) where it
  has one and is 3D; otherwise ``index * spacing`` (origin at the first voxel).
- Matrices are homogeneous, ``(d + 1, d + 1)``, acting on column vectors.
"""

from __future__ import annotations

from collections.abc import Sequence

import numpy as np
import torch

from medlens.data.image import Image


def voxel_to_world(image: Image) -> np.ndarray:
    """The ``(d + 1, d + 1)`` matrix from voxel indices to world mm of ``image``.

    A 3D image keeps its 4x4 affine; a 2D image, or one without an affine, is
    ``diag(spacing)`` with the origin at voxel 0.
    """
    d = image.spatial_dims
    affine = image.affine
    if affine is not None and d == 3 and np.shape(affine) == (4, 4):
        return np.asarray(affine, dtype=np.float64)
    matrix = np.eye(d + 1)
    matrix[:d, :d] = np.diag(np.asarray(image.spacing, dtype=np.float64))
    return matrix


def has_world_geometry(image: Image) -> bool:
    """Whether ``image`` says where it lies in the scanner (a 3D affine from its file)."""
    return image.affine is not None and image.spatial_dims == 3


def translation(offset: Sequence[float]) -> np.ndarray:
    """The homogeneous matrix of a translation by ``offset`` (mm)."""
    d = len(offset)
    matrix = np.eye(d + 1)
    matrix[:d, d] = np.asarray(offset, dtype=np.float64)
    return matrix


def centre_world(image: Image) -> np.ndarray:
    """The world position (mm) of the geometric centre of ``image``'s grid."""
    centre = (np.asarray(image.spatial_shape, dtype=np.float64) - 1.0) / 2.0
    return apply_matrix(voxel_to_world(image), centre[None])[0]


def apply_matrix(matrix: np.ndarray, points: np.ndarray) -> np.ndarray:
    """``points`` ``(N, d)`` mapped by the homogeneous ``matrix`` ``(d + 1, d + 1)``."""
    d = points.shape[1]
    return points @ matrix[:d, :d].T + matrix[:d, d]


def normalised_from_voxel(shape: Sequence[int]) -> np.ndarray:
    """The matrix from voxel indices of a grid of ``shape`` to ``grid_sample``'s normalised
    coordinates (``align_corners=True``): -1 at the first voxel, +1 at the last, and the axes
    reversed (``grid_sample`` lists x = the last axis first)."""
    d = len(shape)
    matrix = np.zeros((d + 1, d + 1))
    for axis, size in enumerate(shape):
        row = d - 1 - axis
        matrix[row, axis] = 2.0 / max(int(size) - 1, 1)
        matrix[row, d] = -1.0
    matrix[d, d] = 1.0
    return matrix


def voxel_grid(shape: Sequence[int], device: torch.device | None = None) -> torch.Tensor:
    """The voxel indices of a grid, ``(*shape, d)`` float32 (``[..., k]`` along axis k)."""
    axes = [torch.arange(int(n), dtype=torch.float32, device=device) for n in shape]
    return torch.stack(torch.meshgrid(*axes, indexing="ij"), dim=-1)


def map_grid(grid: torch.Tensor, matrix: torch.Tensor) -> torch.Tensor:
    """Every point of ``grid`` ``(..., d)`` mapped by the homogeneous ``matrix``."""
    d = grid.shape[-1]
    return grid @ matrix[:d, :d].T.to(grid.dtype) + matrix[:d, d].to(grid.dtype)


def sample(
    image: torch.Tensor, coords: torch.Tensor, mode: str = "bilinear", padding: str = "zeros"
) -> torch.Tensor:
    """``image`` ``(N, C, *spatial)`` sampled at normalised coordinates ``coords``
    ``(N, *out, d)`` (see ``normalised_from_voxel``); linear or ``nearest`` interpolation."""
    return torch.nn.functional.grid_sample(
        image, coords, mode=mode, padding_mode=padding, align_corners=True
    )


def as_tensor(matrix: np.ndarray) -> torch.Tensor:
    """A float64 torch copy of a numpy matrix."""
    return torch.as_tensor(np.asarray(matrix, dtype=np.float64))
