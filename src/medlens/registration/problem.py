"""One registration problem: the two images as pyramids, and where their voxels lie.

Every stage samples the moving image through one matrix chain, from a voxel of the fixed
image's level grid to ``grid_sample``'s normalised coordinates in the moving image's level:
``moving_level_normalised <- moving_level_voxel <- moving world <- T <- fixed world <-
fixed voxel <- fixed level voxel``, where ``T`` is the linear transform being fitted.
"""

from __future__ import annotations

from collections.abc import Sequence
from dataclasses import dataclass

import numpy as np
import torch

from medlens.registration.geometry import as_tensor, normalised_from_voxel, voxel_grid
from medlens.registration.pyramid import Level, build_level


@dataclass
class Problem:
    """A fixed and a moving image on pyramids of the same factors.

    Attributes:
        fixed: ``(1, C, *shape)`` full-resolution intensities in [0, 1].
        moving: the same for the moving image (its own grid).
        fixed_to_world: ``(d + 1, d + 1)`` voxel -> world of the fixed image.
        moving_to_world: the same for the moving image.
        factors: the pyramid's down-sampling factors, coarse to fine.
    """

    fixed: torch.Tensor
    moving: torch.Tensor
    fixed_to_world: np.ndarray
    moving_to_world: np.ndarray
    factors: Sequence[int]

    def __post_init__(self) -> None:
        self._levels: dict[tuple[str, int], Level] = {}

    @property
    def dims(self) -> int:
        return self.fixed.ndim - 2

    @property
    def fixed_shape(self) -> tuple[int, ...]:
        return tuple(self.fixed.shape[2:])

    def _level(self, which: str, factor: int) -> Level:
        key = (which, factor)
        if key not in self._levels:
            image = self.fixed if which == "fixed" else self.moving
            self._levels[key] = build_level(image, factor)
        return self._levels[key]

    def fixed_level(self, factor: int) -> Level:
        """The fixed image ``factor`` times coarser (built once, on first use)."""
        return self._level("fixed", factor)

    def moving_level(self, factor: int) -> Level:
        """The moving image ``factor`` times coarser (built once, on first use)."""
        return self._level("moving", factor)

    def fixed_spacing(self) -> np.ndarray:
        """The fixed image's voxel size along each axis, mm."""
        d = self.dims
        return np.linalg.norm(self.fixed_to_world[:d, :d], axis=0)

    def sides(self, factor: int) -> tuple[torch.Tensor, torch.Tensor]:
        """``(left, right)`` with ``left @ T @ right`` the matrix from the fixed level's voxels
        to the moving level's normalised coordinates, for any world transform ``T``."""
        fixed_level, moving_level = self.fixed_level(factor), self.moving_level(factor)
        moving_voxels = self.moving_to_world @ moving_level.to_full()
        left = normalised_from_voxel(moving_level.shape) @ np.linalg.inv(moving_voxels)
        right = self.fixed_to_world @ fixed_level.to_full()
        return as_tensor(left), as_tensor(right)

    def grid(self, factor: int) -> torch.Tensor:
        """Voxel indices of the fixed level's grid, ``(*shape, d)``."""
        return voxel_grid(self.fixed_level(factor).shape)
