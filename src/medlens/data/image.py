"""The in-memory image every reader returns and every transform takes."""

from __future__ import annotations

from dataclasses import dataclass, field, replace
from typing import Any

import numpy as np


@dataclass
class Image:
    """A channel-first image with its geometry.

    Attributes:
        array: ``(C, *spatial)`` array; 2D images are ``(C, H, W)``, volumes ``(C, D, H, W)``
            (for NIfTI the spatial axes are the file's own i, j, k axes).
        spacing: physical size of one voxel along each spatial axis, in millimetres, in the
            same order as the array's spatial axes. ``1.0`` per axis when the source has none.
        affine: optional 4x4 matrix mapping (spatial) voxel indices to world coordinates in mm
            (RAS for NIfTI, LPS for DICOM), kept so outputs can be written back in place.
        source: the file (or ``file#key``) the image came from, used in error messages.
        meta: free-form reader metadata (modality, window centre/width, ...).
    """

    array: np.ndarray
    spacing: tuple[float, ...]
    affine: np.ndarray | None = None
    source: str = ""
    meta: dict[str, Any] = field(default_factory=dict)

    def __post_init__(self) -> None:
        if self.array.ndim < 3:
            raise ValueError(
                f"{self.source}: Image.array must be (C, *spatial), got {self.array.shape}"
            )
        if len(self.spacing) != self.array.ndim - 1:
            raise ValueError(
                f"{self.source}: {len(self.spacing)} spacings for {self.array.ndim - 1} spatial axes"
            )

    @property
    def spatial_dims(self) -> int:
        """2 for images, 3 for volumes."""
        return self.array.ndim - 1

    @property
    def spatial_shape(self) -> tuple[int, ...]:
        return tuple(self.array.shape[1:])

    @property
    def num_channels(self) -> int:
        return int(self.array.shape[0])

    def with_array(self, array: np.ndarray, spacing: tuple[float, ...] | None = None) -> Image:
        """A copy holding ``array`` (and optionally a new spacing); the affine is kept only when
        the spatial grid is unchanged."""
        same_grid = array.shape[1:] == self.array.shape[1:] and spacing in (None, self.spacing)
        return replace(
            self,
            array=array,
            spacing=tuple(spacing) if spacing is not None else self.spacing,
            affine=self.affine if same_grid else None,
            meta=dict(self.meta),
        )
