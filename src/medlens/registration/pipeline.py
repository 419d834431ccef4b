"""``register_images``: a fixed and a moving image in, the fitted transform chain out.

The chain maps a fixed-image world point ``x`` (mm) into the moving image:
``T(x + u(x))``, with ``T`` the linear (initial alignment, rigid, affine) world transform and
``u`` the deformable stage's displacement, defined on the fixed grid. Sampling the moving
image through it gives the moving image on the fixed grid (``medlens.registration.warp``).
"""

from __future__ import annotations

import time
from collections.abc import Callable
from dataclasses import dataclass
from typing import Any

import numpy as np
import torch
from scipy import ndimage

from medlens.config import RegistrationConfig
from medlens.data.image import Image
from medlens.registration.chain import TransformChain
from medlens.registration.checks import check_overlap, check_pair
from medlens.registration.deformable import DeformableSettings, fit_deformable
from medlens.registration.geometry import (
    apply_matrix,
    centre_world,
    has_world_geometry,
    translation,
    voxel_to_world,
)
from medlens.registration.linear import fit_linear
from medlens.registration.problem import Problem
from medlens.registration.transforms import LinearParameters

#: Percentiles mapped to 0 and 1 before registration (robust to a few extreme voxels).
INTENSITY_PERCENTILES = (0.5, 99.5)

#: ``field_provider(problem, linear)``: the deformable stage's displacement ``(1, d,
#: *fixed_shape)`` in fixed voxels, e.g. a trained network's instead of the optimisation.
FieldProvider = Callable[[Problem, torch.Tensor], torch.Tensor]


@dataclass
class RegistrationResult:
    """A fitted registration: the images as read, the chain, and the wall time (s)."""

    fixed: Image
    moving: Image
    chain: TransformChain
    seconds: float = 0.0


def normalised_intensities(image: Image) -> torch.Tensor:
    """``(1, 1, *spatial)`` float32: the channel mean mapped from its 0.5th-99.5th
    percentiles to [0, 1], clipped."""
    values = image.array.astype(np.float32).mean(0)
    low, high = np.percentile(values, INTENSITY_PERCENTILES)
    if high <= low:
        low, high = float(values.min()), float(values.max())
    scaled = np.clip((values - low) / max(high - low, 1e-12), 0.0, 1.0)
    return torch.from_numpy(np.ascontiguousarray(scaled, dtype=np.float32))[None, None]


def centre_of_mass(intensities: torch.Tensor, to_world: np.ndarray) -> np.ndarray:
    """The intensity-weighted centre (world mm) of ``(1, 1, *spatial)`` intensities."""
    values = intensities[0, 0].numpy()
    if float(values.sum()) <= 0:
        centre = (np.asarray(values.shape, dtype=np.float64) - 1) / 2
    else:
        centre = np.asarray(ndimage.center_of_mass(values), dtype=np.float64)
    return apply_matrix(to_world, centre[None])[0]


def geometric_alignment(fixed: Image, moving: Image) -> tuple[np.ndarray, str]:
    """The world transform that trusts the files: identity when both images say where they
    lie in the scanner, else the translation that aligns their grid centres; and its name."""
    if has_world_geometry(fixed) and has_world_geometry(moving):
        return np.eye(fixed.spatial_dims + 1), "scanner coordinates"
    offset = centre_world(moving) - centre_world(fixed)
    return translation(offset), "image centres aligned"


def overlap_fraction(fixed: Image, moving: Image, world: np.ndarray) -> float:
    """Share of the fixed grid (every 4th voxel per axis) that ``world`` maps inside the
    moving image's grid."""
    grid = np.stack(
        np.meshgrid(*[np.arange(0, n, 4) for n in fixed.spatial_shape], indexing="ij"), -1
    ).reshape(-1, fixed.spatial_dims)
    to_moving = np.linalg.inv(voxel_to_world(moving)) @ world @ voxel_to_world(fixed)
    points = apply_matrix(to_moving, grid.astype(np.float64))
    upper = np.asarray(moving.spatial_shape) - 1
    inside = np.all((points >= -0.5) & (points <= upper + 0.5), axis=1)
    return float(inside.mean())


def register_images(
    fixed: Image,
    moving: Image,
    config: RegistrationConfig | None = None,
    seed: int = 0,
    field_provider: FieldProvider | None = None,
) -> RegistrationResult:
    """Register ``moving`` to ``fixed``: initial alignment, then ``config.stages``.

    Args:
        fixed: the image whose grid the results live on.
        moving: the image that is warped.
        config: stages, losses, pyramid and iterations (defaults: ``RegistrationConfig()``).
        seed: seeds the linear stages' voxel samples (same seed, same result).
        field_provider: replaces the deformable optimisation (a trained network).

    Returns:
        The fitted chain.

    Raises:
        InputError: images of different dimensionality, non-finite or constant intensities,
            or no overlap after the initial alignment.
    """
    config = config or RegistrationConfig()
    check_pair(fixed, moving)
    start = time.perf_counter()
    torch.manual_seed(seed)
    fixed_to_world, moving_to_world = voxel_to_world(fixed), voxel_to_world(moving)
    fixed_values, moving_values = normalised_intensities(fixed), normalised_intensities(moving)
    initial, how = geometric_alignment(fixed, moving)
    check_overlap(overlap_fraction(fixed, moving, initial), fixed, moving, how)
    centre = centre_of_mass(fixed_values, fixed_to_world)
    if config.init == "com":
        offset = centre_of_mass(moving_values, moving_to_world) - centre
        how = "intensity centres of mass aligned"
    else:
        offset = initial[: fixed.spatial_dims, fixed.spatial_dims]
    params = LinearParameters.identity(centre, offset)
    stages: list[dict[str, Any]] = [
        {"kind": "initial", "method": how, "matrix": params.matrix().numpy()}
    ]
    problem = Problem(
        fixed_values, moving_values, fixed_to_world, moving_to_world, tuple(config.levels)
    )
    for kind in ("rigid", "affine"):
        if kind not in config.stages:
            continue
        t0 = time.perf_counter()
        params, losses = fit_linear(
            problem,
            params,
            kind,
            config.linear_iterations,
            config.linear_loss,
            config.linear_lr,
            seed=seed,
        )
        stages.append(
            {
                "kind": kind,
                "parameters": params.as_dict(),
                "matrix": params.matrix().numpy(),
                "loss": config.linear_loss,
                "loss_per_level": losses,
                "seconds": time.perf_counter() - t0,
            }
        )
    linear = params.matrix()
    displacement = None
    if "deformable" in config.stages:
        t0 = time.perf_counter()
        if field_provider is not None:
            field_tensor, losses, method = field_provider(problem, linear), [], "network"
        else:
            settings = deformable_settings(config)
            field_tensor, losses = fit_deformable(problem, linear, settings)
            method = "optimisation"
        displacement = field_tensor[0].detach().numpy().astype(np.float32)
        stages.append(
            {
                "kind": "deformable",
                "method": method,
                "loss": config.loss,
                "regulariser": config.regulariser,
                "regulariser_weight": config.regulariser_weight,
                "diffeomorphic": config.diffeomorphic,
                "loss_per_level": losses,
                "seconds": time.perf_counter() - t0,
            }
        )
    chain = TransformChain(
        fixed_shape=fixed.spatial_shape,
        moving_shape=moving.spatial_shape,
        fixed_to_world=fixed_to_world,
        moving_to_world=moving_to_world,
        initial=initial,
        linear=linear.detach().numpy(),
        displacement=displacement,
        stages=stages,
    )
    return RegistrationResult(fixed, moving, chain, time.perf_counter() - start)


def deformable_settings(config: RegistrationConfig) -> DeformableSettings:
    """The deformable stage's settings from a ``registration`` config section."""
    return DeformableSettings(
        iterations=tuple(config.deformable_iterations),
        loss=config.loss,
        ncc_kernel=config.ncc_kernel,
        regulariser=config.regulariser,
        regulariser_weight=config.regulariser_weight,
        diffeomorphic=config.diffeomorphic,
        integration_steps=config.integration_steps,
        lr=config.deformable_lr,
        field_step=config.field_step,
    )
