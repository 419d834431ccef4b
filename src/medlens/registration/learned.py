"""A VoxelMorph-style network as the deformable stage: the flow of a (moving, fixed) pair
turned into a displacement (integrated when diffeomorphic), the moving image warped with
MONAI's ``Warp``, and a finished ``task: registration`` run loaded as a ``FieldProvider``."""

from __future__ import annotations

from pathlib import Path
from typing import Any

import torch
import torch.nn.functional as F
from torch import nn

from medlens.config import RegistrationConfig
from medlens.registration.deformable import integrate
from medlens.registration.geometry import map_grid, sample
from medlens.registration.pipeline import FieldProvider
from medlens.registration.problem import Problem
from medlens.registration.pyramid import interpolate_field, per_axis


def displacement_of(flow: torch.Tensor, diffeomorphic: bool, steps: int) -> torch.Tensor:
    """The network's flow ``(N, d, *spatial)`` as a displacement in voxels: integrated by
    scaling and squaring when ``diffeomorphic``, else as it is."""
    return integrate(flow, steps) if diffeomorphic else flow


def warp(image: torch.Tensor, ddf: torch.Tensor, nearest: bool = False) -> torch.Tensor:
    """``image`` ``(N, C, *spatial)`` sampled at ``voxel + ddf`` (MONAI ``Warp``; zeros
    outside)."""
    from monai.networks.blocks import Warp

    return Warp(mode="nearest" if nearest else "bilinear", padding_mode="zeros")(image, ddf)


def predict_displacement(
    model: nn.Module,
    moving: torch.Tensor,
    fixed: torch.Tensor,
    shape: tuple[int, ...],
    diffeomorphic: bool,
    steps: int,
) -> torch.Tensor:
    """The displacement ``(1, d, *fixed.shape)`` (fixed voxels) that the network predicts for
    two images on one grid, run at the network's input ``shape`` (resampled there and back)."""
    full = tuple(fixed.shape[2:])
    mode = "bilinear" if len(full) == 2 else "trilinear"
    pair = torch.cat([moving, fixed], dim=1)
    if full != shape:
        pair = F.interpolate(pair, size=shape, mode=mode, align_corners=True)
    with torch.no_grad():
        ddf = displacement_of(model(pair), diffeomorphic, steps)
    ratio = [(n - 1) / max(m - 1, 1) for n, m in zip(full, shape, strict=True)]
    return interpolate_field(ddf, full) * per_axis(ratio, ddf)


def load_registration_run(run_dir: Path) -> tuple[nn.Module, Any, tuple[int, ...]]:
    """The network, resolved config and training grid of a ``task: registration`` run.

    Raises:
        InputError: an incomplete run folder, or one of another task.
    """
    from medlens.errors import InputError
    from medlens.models.factory import model_from_config
    from medlens.run_folder import layout
    from medlens.run_folder.checkpoint import load_checkpoint
    from medlens.run_folder.reader import read_run_config, require_files

    require_files(run_dir, (layout.CONFIG, layout.MODEL))
    from medlens.run_folder.reader import read_run_task
    from medlens.tasks import REGISTRATION

    task = read_run_task(run_dir)
    if task is not REGISTRATION:
        raise InputError(run_dir, f"is a {task.name} run, not a registration run")
    config = read_run_config(run_dir)
    state = load_checkpoint(run_dir / layout.MODEL)
    model = model_from_config(state["model_config"])
    model.load_state_dict(state["model"])
    model.eval()
    shape = tuple(int(s) for s in state["input_shape"][1:])
    return model, config, shape


def network_field_provider(
    run_dir: Path, config: RegistrationConfig
) -> tuple[FieldProvider, RegistrationConfig]:
    """A ``FieldProvider`` from a finished run, and ``config`` with a deformable stage and
    the run's integration settings.

    The moving image is first resampled onto the fixed grid through the linear stages; the
    network then predicts the remaining displacement on its training grid.
    """
    model, run_config, shape = load_registration_run(Path(run_dir))
    learned = run_config.registration
    stages = [s for s in config.stages if s != "deformable"] + ["deformable"]
    config = config.model_copy(
        update={
            "stages": stages,
            "diffeomorphic": learned.diffeomorphic,
            "integration_steps": learned.integration_steps,
        }
    )

    def provider(problem: Problem, linear: torch.Tensor) -> torch.Tensor:
        left, right = problem.sides(1)
        coords = map_grid(problem.grid(1), (left @ linear @ right).float())
        moved = sample(problem.moving, coords[None])
        return predict_displacement(
            model, moved, problem.fixed, shape, learned.diffeomorphic, learned.integration_steps
        )

    return provider, config
