"""The deformable stage: a dense displacement field (or a stationary velocity field, for a
diffeomorphic result) on the fixed image's grid, fitted by Adam coarse to fine.

The field is kept in full-resolution voxel units on a grid ``field_step`` times coarser than
each level, so it carries over from level to level by interpolation alone; at each level it
is interpolated onto the level's grid and converted to the level's voxel units before it
warps the moving image (MONAI's ``DVF2DDF`` integrates a velocity field by scaling and
squaring, on the field's own grid).
"""

from __future__ import annotations

from collections.abc import Sequence
from dataclasses import dataclass

import torch

from medlens.registration.geometry import map_grid, sample
from medlens.registration.linear import cosine_lr
from medlens.registration.losses import regulariser, similarity_loss
from medlens.registration.problem import Problem
from medlens.registration.pyramid import interpolate_field, level_shape, per_axis

#: Intensity change (of images scaled to [0, 1]) per voxel of displacement below which the
#: optimiser treats a voxel's gradient as noise.
GRADIENT_FLOOR = 1e-2


@dataclass(frozen=True)
class DeformableSettings:
    """The deformable stage's choices (see ``medlens.config.RegistrationConfig``)."""

    iterations: Sequence[int]
    loss: str = "ncc"
    ncc_kernel: int = 7
    regulariser: str = "diffusion"
    regulariser_weight: float = 1.0
    diffeomorphic: bool = False
    integration_steps: int = 7
    lr: float = 0.5
    field_step: int = 1


def field_step(settings: DeformableSettings) -> int:
    """Voxels between the field's grid points: ``settings.field_step``, and at least 2 for a
    velocity field (VoxelMorph's ``int_downsize``: each squaring warps the whole field)."""
    return max(settings.field_step, 2) if settings.diffeomorphic else settings.field_step


def integrate(velocity: torch.Tensor, steps: int) -> torch.Tensor:
    """The displacement of a stationary velocity field ``(N, d, *spatial)`` (voxel units),
    by scaling and squaring in ``steps`` squarings (MONAI ``DVF2DDF``)."""
    from monai.networks.blocks import DVF2DDF

    return DVF2DDF(num_steps=steps)(velocity)


def level_displacement(
    field: torch.Tensor,
    full_shape: Sequence[int],
    shape: Sequence[int],
    scale: Sequence[float],
    settings: DeformableSettings,
) -> torch.Tensor:
    """The displacement ``(1, d, *shape)`` in a level's voxel units (``scale``: full voxels
    per level voxel), from the stage's field in full-resolution voxel units.

    A velocity field (``diffeomorphic``) is integrated on its own grid, which is coarser than
    the image by ``field_step`` (VoxelMorph integrates at half resolution for the same reason:
    each squaring warps the whole field), then interpolated.
    """
    if settings.diffeomorphic:
        own = [(n - 1) / max(m - 1, 1) for n, m in zip(full_shape, field.shape[2:], strict=True)]
        ddf = integrate(field / per_axis(own, field), settings.integration_steps)
        field = ddf * per_axis(own, field)
    return interpolate_field(field, shape) / per_axis(scale, field)


def fit_deformable(
    problem: Problem, linear: torch.Tensor, settings: DeformableSettings
) -> tuple[torch.Tensor, list[float]]:
    """Fit the field after the linear world transform ``linear`` (``(d + 1, d + 1)``).

    Returns:
        The displacement ``(1, d, *fixed_shape)`` in fixed voxels (the moving image is
        sampled at ``linear`` applied to ``voxel + displacement``), and the objective after
        each level (NaN when a level was skipped).
    """
    dims = problem.dims
    similarity = similarity_loss(settings.loss, dims, settings.ncc_kernel)
    penalty = regulariser(settings.regulariser)
    field: torch.Tensor | None = None
    history: list[float] = []
    for factor, steps in zip(problem.factors, settings.iterations, strict=True):
        fixed_level = problem.fixed_level(factor)
        param_shape = level_shape(fixed_level.shape, field_step(settings))
        if field is None:
            field = torch.zeros(1, dims, *param_shape)
        field = interpolate_field(field.detach(), param_shape).requires_grad_(True)
        if steps == 0:
            history.append(float("nan"))
            continue
        left, right = problem.sides(factor)
        matrix = (left @ linear @ right).float()
        grid = problem.grid(factor)
        moving = problem.moving_level(factor).image
        lr0 = settings.lr * float(sum(fixed_level.scale) / dims)
        # Adam divides each voxel's step by its gradient's size; eps makes a gradient below
        # that of an intensity change of GRADIENT_FLOOR per voxel moved (of the mean loss)
        # take a proportionally smaller step, so noise in flat regions does not move them.
        eps = GRADIENT_FLOOR / fixed_level.image.numel()
        optimiser = torch.optim.Adam([field], lr=lr0, eps=eps)
        value = float("nan")
        for step in range(steps):
            optimiser.param_groups[0]["lr"] = cosine_lr(step, steps, lr0)
            ddf = level_displacement(
                field, problem.fixed_shape, fixed_level.shape, fixed_level.scale, settings
            )
            coords = map_grid(grid + ddf[0].movedim(0, -1), matrix)
            warped = sample(moving, coords[None], padding="border")
            objective = similarity(warped, fixed_level.image)
            if settings.regulariser_weight > 0:
                objective = objective + settings.regulariser_weight * penalty(ddf)
            optimiser.zero_grad()
            objective.backward()
            optimiser.step()
            value = float(objective.detach())
        history.append(value)
    assert field is not None
    with torch.no_grad():
        full_shape = problem.fixed_shape
        full = level_displacement(field.detach(), full_shape, full_shape, (1.0,) * dims, settings)
    return full, history
