"""The linear stages' transforms: rigid (rotation + translation) and affine (+ scales and
shears), each a small parameter vector about a centre, turned into a world -> world matrix.

A linear transform maps a fixed-image world point ``x`` (mm) to the moving image:
``T(x) = L (x - c) + c + t``, where ``c`` is the rotation centre (the fixed image's centre
of mass), ``t`` a translation in mm and ``L = R(rotation) diag(exp(log_scale)) (I + shear)``
with ``shear`` strictly upper triangular. Rigid leaves ``log_scale`` and ``shear`` at zero.
"""

from __future__ import annotations

from dataclasses import dataclass

import numpy as np
import torch

#: Parameters each linear stage optimises, by stage.
STAGE_PARAMETERS = {
    "rigid": ("rotation", "translation"),
    "affine": ("rotation", "translation", "log_scale", "shear"),
}


def n_rotations(dims: int) -> int:
    """Rotation angles in ``dims`` dimensions: 1 in 2D, 3 in 3D."""
    return dims * (dims - 1) // 2


def _skew(angles: torch.Tensor, dims: int) -> torch.Tensor:
    """The skew-symmetric matrix of the rotation vector ``angles`` (radians)."""
    skew = torch.zeros(dims, dims, dtype=angles.dtype)
    rows, cols = torch.triu_indices(dims, dims, offset=1)
    skew = skew.index_put((rows, cols), -angles).index_put((cols, rows), angles)
    return skew


#: Below this squared angle (radians) the rotation's coefficients use their Taylor series.
SMALL_ANGLE2 = 1e-6


def rotation_matrix(angles: torch.Tensor, dims: int) -> torch.Tensor:
    """The matrix exponential of ``_skew(angles)`` in closed form (Rodrigues:
    ``I + sin(t)/t K + (1 - cos(t))/t^2 K^2``, ``t^2`` the sum of the squared angles, which
    holds for every 2D and 3D skew-symmetric ``K``), with finite gradients at zero."""
    skew = _skew(angles, dims)
    if dims not in (2, 3):
        return torch.linalg.matrix_exp(skew)
    theta2 = (angles * angles).sum()
    theta = torch.sqrt(theta2.clamp(min=SMALL_ANGLE2))
    small = theta2 < SMALL_ANGLE2
    a = torch.where(small, 1 - theta2 / 6, torch.sin(theta) / theta)
    b = torch.where(small, 0.5 - theta2 / 24, (1 - torch.cos(theta)) / theta**2)
    eye = torch.eye(dims, dtype=angles.dtype)
    return eye + a * skew + b * (skew @ skew)


@dataclass
class LinearParameters:
    """The parameters of a linear transform, as tensors that can take gradients.

    Attributes:
        rotation: rotation vector (radians), 1 value in 2D, 3 in 3D (the matrix exponential
            of its skew-symmetric matrix is the rotation).
        translation: mm per world axis.
        log_scale: natural log of the scale along each axis (0: no scaling).
        shear: the strictly upper-triangular entries of the shear matrix.
        centre: the rotation centre in world mm (not optimised).
    """

    rotation: torch.Tensor
    translation: torch.Tensor
    log_scale: torch.Tensor
    shear: torch.Tensor
    centre: torch.Tensor

    @classmethod
    def identity(cls, centre: np.ndarray, offset: np.ndarray | None = None) -> LinearParameters:
        """No rotation, scaling or shear; a translation of ``offset`` mm (default none)."""
        d = len(centre)
        t = torch.zeros(d, dtype=torch.float64)
        if offset is not None:
            t = torch.as_tensor(np.asarray(offset, dtype=np.float64))
        return cls(
            rotation=torch.zeros(n_rotations(d), dtype=torch.float64),
            translation=t,
            log_scale=torch.zeros(d, dtype=torch.float64),
            shear=torch.zeros(n_rotations(d), dtype=torch.float64),
            centre=torch.as_tensor(np.asarray(centre, dtype=np.float64)),
        )

    @property
    def dims(self) -> int:
        return int(self.centre.shape[0])

    def linear(self) -> torch.Tensor:
        """``L``: rotation @ scale @ (identity + shear), ``(d, d)``."""
        d = self.dims
        rotation = rotation_matrix(self.rotation, d)
        rows, cols = torch.triu_indices(d, d, offset=1)
        shear = torch.eye(d, dtype=torch.float64).index_put((rows, cols), self.shear)
        return rotation @ torch.diag(torch.exp(self.log_scale)) @ shear

    def matrix(self) -> torch.Tensor:
        """The homogeneous ``(d + 1, d + 1)`` world -> world matrix (fixed to moving)."""
        d = self.dims
        linear = self.linear()
        out = torch.eye(d + 1, dtype=torch.float64)
        out = out.index_put((torch.arange(d)[:, None], torch.arange(d)[None, :]), linear)
        offset = self.centre + self.translation - linear @ self.centre
        return out.index_put((torch.arange(d), torch.full((d,), d)), offset)

    def detached(self) -> LinearParameters:
        """A copy without gradients."""
        return LinearParameters(
            rotation=self.rotation.detach().clone(),
            translation=self.translation.detach().clone(),
            log_scale=self.log_scale.detach().clone(),
            shear=self.shear.detach().clone(),
            centre=self.centre.detach().clone(),
        )

    def as_dict(self) -> dict[str, list[float]]:
        """JSON-ready values: radians, mm, log scales, shears, centre in mm."""
        return {
            "rotation_rad": self.rotation.tolist(),
            "translation_mm": self.translation.tolist(),
            "log_scale": self.log_scale.tolist(),
            "shear": self.shear.tolist(),
            "centre_mm": self.centre.tolist(),
        }
