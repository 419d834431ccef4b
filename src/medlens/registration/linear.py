"""The rigid and affine stages: a few parameters fitted by Adam, coarse to fine.

Steps are sized by what they do to the image: at first a translation step moves every voxel
by ``lr`` voxels of the level, and a rotation, scaling or shear step moves the voxels at the
image's mean radius by the same amount; a cosine schedule then shrinks them 20-fold, so the
last steps of each level are sub-voxel. Each step scores a fresh random sample of
``SAMPLES`` voxels of the level (seeded), as elastix's random sampler does: the linear
stages' cost no longer grows with the image.
"""

from __future__ import annotations

import math
from collections.abc import Sequence

import numpy as np
import torch

from medlens.registration.geometry import map_grid, sample
from medlens.registration.losses import sampled_similarity
from medlens.registration.problem import Problem
from medlens.registration.transforms import STAGE_PARAMETERS, LinearParameters

#: The last step of a level is this fraction of its first.
FINAL_LR_FRACTION = 0.05
#: Voxels scored per step of a linear stage.
SAMPLES = 4096


def cosine_lr(step: int, total: int, lr: float) -> float:
    """Cosine decay from ``lr`` to ``FINAL_LR_FRACTION * lr`` over ``total`` steps."""
    fraction = FINAL_LR_FRACTION + (1 - FINAL_LR_FRACTION) * 0.5 * (
        1 + math.cos(math.pi * step / max(total, 1))
    )
    return lr * fraction


def fit_linear(
    problem: Problem,
    start: LinearParameters,
    stage: str,
    iterations: Sequence[int],
    loss: str,
    lr: float,
    seed: int = 0,
) -> tuple[LinearParameters, list[float]]:
    """Fit the ``rigid`` or ``affine`` parameters, starting from ``start``.

    Args:
        problem: the images and their geometry.
        start: the parameters to start from (the previous stage's, or the initial alignment).
        stage: ``rigid`` (rotation, translation) or ``affine`` (also scales and shears).
        iterations: optimiser steps per pyramid level (``problem.factors``); 0 skips a level.
        loss: ``mi``, ``ncc`` (global correlation) or ``mse``.
        lr: the first step, in voxels of each level (see the module docstring).
        seed: seeds the voxel samples.

    Returns:
        The fitted parameters (detached) and the loss after each level (NaN when skipped).
    """
    params = start.detached()
    names = STAGE_PARAMETERS[stage]
    for name in names:
        getattr(params, name).requires_grad_(True)
    spacing = float(np.mean(problem.fixed_spacing()))
    extent = np.asarray(problem.fixed_shape) * problem.fixed_spacing()
    radius = float(np.mean(extent)) / 2.0
    similarity = sampled_similarity(loss)
    generator = torch.Generator().manual_seed(seed)
    history: list[float] = []
    for factor, steps in zip(problem.factors, iterations, strict=True):
        if steps == 0:
            history.append(float("nan"))
            continue
        fixed = problem.fixed_level(factor).image.mean(1).reshape(-1)
        moving = problem.moving_level(factor).image.mean(1, keepdim=True)
        left, right = problem.sides(factor)
        grid = problem.grid(factor).reshape(-1, problem.dims)
        count = min(SAMPLES, grid.shape[0])
        point_shape = (1, count) + (1,) * (problem.dims - 1) + (problem.dims,)
        step_mm = lr * spacing * factor
        groups = [
            {
                "params": [getattr(params, n)],
                "lr0": step_mm if n == "translation" else step_mm / radius,
            }
            for n in names
        ]
        optimiser = torch.optim.Adam([dict(g, lr=g["lr0"]) for g in groups])
        value = float("nan")
        for step in range(steps):
            for group in optimiser.param_groups:
                group["lr"] = cosine_lr(step, steps, group["lr0"])
            picked = torch.randint(grid.shape[0], (count,), generator=generator)
            coords = map_grid(grid[picked], (left @ params.matrix() @ right).float())
            warped = sample(moving, coords.reshape(point_shape), padding="border")
            objective = similarity(warped.reshape(1, 1, -1), fixed[picked].reshape(1, 1, -1))
            optimiser.zero_grad()
            objective.backward()
            optimiser.step()
            value = float(objective.detach())
        history.append(value)
    return params.detached(), history
