"""The deformable stage: a dense displacement field (or a stationary velocity field, for a
diffeomorphic result) on the fixed image's grid, fitted by Adam coarse to fine.

The field is kept in full-resolution voxel units on a lattice ``field_step`` times coarser
than each level, so it carries over from level to level by interpolation alone; at each level
it is interpolated onto the level's grid and converted to the level's voxel units before it
warps the moving image (MONAI's ``DVF2DDF`` integrates a velocity field by scaling and
squaring, on the field's own lattice).

With the ``ncc`` similarity each level works in a box of the fixed image (``crop``, on by
default): the windows where the fixed image is textured, plus half a window. Flat windows
(a skull-stripped template's background) add nothing to the loss, so the loss and its
gradient inside the box are those of the whole image, at a fraction of the cost; outside the
box the displacement is held at its value on the box's faces.
"""

from __future__ import annotations

from collections.abc import Sequence
from dataclasses import dataclass

import torch

from medlens.registration.geometry import map_grid, sample
from medlens.registration.linear import cosine_lr
from medlens.registration.losses import FixedWindows, regulariser, similarity_loss, windowed_ncc
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
    crop: bool = True


@dataclass(frozen=True)
class Lattice:
    """Regular points in full-resolution voxel coordinates: point ``i`` at ``origin + i *
    step`` (per axis), ``shape`` points per axis."""

    origin: tuple[float, ...]
    step: tuple[float, ...]
    shape: tuple[int, ...]

    def spans_like(self, other: Lattice) -> bool:
        """Whether both lattices cover the same extent (then interpolation is
        ``interpolate_field``)."""
        return all(
            abs(a - b) < 1e-6 and abs((n - 1) * s - (m - 1) * t) < 1e-6
            for a, b, n, s, m, t in zip(
                self.origin,
                other.origin,
                self.shape,
                self.step,
                other.shape,
                other.step,
                strict=True,
            )
        )


def resample_field(field: torch.Tensor, source: Lattice, target: Lattice) -> torch.Tensor:
    """A field ``(1, d, *source.shape)`` on ``source`` interpolated linearly onto ``target``
    (vectors unchanged), held at its edge values beyond ``source``."""
    if source.spans_like(target):
        return interpolate_field(field, target.shape)
    axes = []
    for o, s, n, to, ts, tn in zip(
        source.origin,
        source.step,
        source.shape,
        target.origin,
        target.step,
        target.shape,
        strict=True,
    ):
        points = to + ts * torch.arange(tn, dtype=field.dtype)
        index = (points - o) / s
        axes.append(2 * index / max(n - 1, 1) - 1 if n > 1 else torch.zeros_like(index))
    grid = torch.stack(torch.meshgrid(*axes, indexing="ij")[::-1], dim=-1)
    return sample(field, grid[None].to(field.device), padding="border")


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
    lattice: Lattice,
    shape: Sequence[int],
    scale: Sequence[float],
    settings: DeformableSettings,
) -> torch.Tensor:
    """The displacement ``(1, d, *shape)`` in a level's voxel units (``scale``: full voxels
    per level voxel) on the level's grid over the extent of ``lattice``, from the stage's
    field on ``lattice`` in full-resolution voxel units.

    A velocity field (``diffeomorphic``) is integrated on its own lattice, which is coarser
    than the image by ``field_step`` (VoxelMorph integrates at half resolution for the same
    reason: each squaring warps the whole field), then interpolated.
    """
    if settings.diffeomorphic:
        own = per_axis(lattice.step, field)
        field = integrate(field / own, settings.integration_steps) * own
    return interpolate_field(field, shape) / per_axis(scale, field)


def crop_box(windows: FixedWindows) -> tuple[slice, ...]:
    """The box (slices of the spatial axes) of the windows where the fixed image is
    textured, widened by half a window so each of those windows lies inside it; the whole
    grid when nothing is textured."""
    textured = windows.textured().flatten(0, 1).any(0)
    shape = tuple(textured.shape)
    if not bool(textured.any()):
        return tuple(slice(0, n) for n in shape)
    half = windows.kernel // 2
    box = []
    for axis, n in enumerate(shape):
        others = tuple(a for a in range(len(shape)) if a != axis)
        hits = torch.nonzero(textured.any(dim=others) if others else textured)[:, 0]
        low = max(int(hits.min()) - half, 0)
        high = min(int(hits.max()) + half + 1, n)
        short = windows.kernel - (high - low)  # at least one whole window a side
        if short > 0:
            low, high = max(low - short, 0), min(max(low - short, 0) + windows.kernel, n)
        box.append(slice(low, high))
    return tuple(box)


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
    windowed = settings.loss == "ncc"
    similarity = similarity_loss(settings.loss, dims, settings.ncc_kernel)
    penalty = regulariser(settings.regulariser)
    field: torch.Tensor | None = None
    lattice: Lattice | None = None
    history: list[float] = []
    for factor, steps in zip(problem.factors, settings.iterations, strict=True):
        fixed_level = problem.fixed_level(factor)
        scale = fixed_level.scale
        windows = FixedWindows.of(fixed_level.image, settings.ncc_kernel) if windowed else None
        if windows is not None and settings.crop:
            box = crop_box(windows)
        else:
            box = tuple(slice(0, n) for n in fixed_level.shape)
        shape = tuple(b.stop - b.start for b in box)
        param_shape = level_shape(shape, field_step(settings))
        new = Lattice(
            tuple(b.start * s for b, s in zip(box, scale, strict=True)),
            tuple(
                (n - 1) / max(m - 1, 1) * s
                for n, m, s in zip(shape, param_shape, scale, strict=True)
            ),
            param_shape,
        )
        if field is None or lattice is None:
            field = torch.zeros(1, dims, *param_shape)
        else:
            field = resample_field(field.detach(), lattice, new)
        field, lattice = field.detach().contiguous().requires_grad_(True), new
        if steps == 0:
            history.append(float("nan"))
            continue
        numel = fixed_level.image.shape[1] * _count(shape)
        fixed = fixed_level.image[(slice(None), slice(None), *box)]
        if windows is not None:
            windows = windows.cropped(box, numel)
        left, right = problem.sides(factor)
        matrix = (left @ linear @ right).float()
        base = map_grid(problem.grid(factor)[box], matrix).contiguous()
        to_moving = matrix[:dims, :dims].T.contiguous()
        moving = problem.moving_level(factor).image
        lr0 = settings.lr * float(sum(scale) / dims)
        # Adam divides each voxel's step by its gradient's size; eps makes a gradient below
        # that of an intensity change of GRADIENT_FLOOR per voxel moved (of the mean loss)
        # take a proportionally smaller step, so noise in flat regions does not move them.
        eps = GRADIENT_FLOOR / numel
        optimiser = torch.optim.Adam([field], lr=lr0, eps=eps, fused=True)
        value = float("nan")
        for step in range(steps):
            optimiser.param_groups[0]["lr"] = cosine_lr(step, steps, lr0)
            ddf = level_displacement(field, lattice, shape, scale, settings)
            coords = base + ddf[0].movedim(0, -1) @ to_moving
            warped = sample(moving, coords[None], padding="border")
            if windows is not None:
                objective = windowed_ncc(warped, windows)
            else:
                objective = similarity(warped, fixed)
            if settings.regulariser_weight > 0:
                objective = objective + settings.regulariser_weight * penalty(ddf)
            optimiser.zero_grad()
            objective.backward()
            optimiser.step()
            value = float(objective.detach())
        history.append(value)
    assert field is not None and lattice is not None
    with torch.no_grad():
        full_shape = problem.fixed_shape
        if settings.diffeomorphic:
            own = per_axis(lattice.step, field)
            field = integrate(field.detach() / own, settings.integration_steps) * own
        everywhere = Lattice((0.0,) * dims, (1.0,) * dims, full_shape)
        full = resample_field(field.detach(), lattice, everywhere)
    return full, history


def _count(shape: Sequence[int]) -> int:
    total = 1
    for n in shape:
        total *= int(n)
    return total
