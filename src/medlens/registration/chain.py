"""The transform chain: everything needed to map points and resample images between a fixed
and a moving grid, with or without the images themselves (it is what ``transform.json`` and
``displacement.nii.gz`` hold)."""

from __future__ import annotations

from dataclasses import dataclass, field
from typing import Any

import numpy as np


@dataclass
class TransformChain:
    """A fitted fixed -> moving mapping: ``x -> T(x + u(x))`` in world mm.

    Attributes:
        fixed_shape, moving_shape: the two spatial grids (voxels).
        fixed_to_world, moving_to_world: their ``(d + 1, d + 1)`` voxel -> world matrices.
        initial: the world transform before registration (the files' geometry, or centres
            aligned when a file has none): the "before" of the report and of the metrics.
        linear: the final linear world transform ``T`` (initial alignment, rigid, affine).
        displacement: the deformable stage's ``(d, *fixed_shape)`` displacement in fixed
            voxels (None without a deformable stage).
        stages: one record per stage (kind, parameters, matrix, loss per level, seconds).
    """

    fixed_shape: tuple[int, ...]
    moving_shape: tuple[int, ...]
    fixed_to_world: np.ndarray
    moving_to_world: np.ndarray
    initial: np.ndarray
    linear: np.ndarray
    displacement: np.ndarray | None = None
    stages: list[dict[str, Any]] = field(default_factory=list)

    @property
    def dims(self) -> int:
        return len(self.fixed_shape)
