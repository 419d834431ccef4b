"""The similarity measures and regularisers of the optimisation.

Similarities (lower is better, as losses): ``ncc`` local normalised cross-correlation in a
window of ``kernel`` voxels (``LocalNCCLoss``), ``mi`` global mutual information with Parzen
windows (MONAI ``GlobalMutualInformationLoss``), ``mse``.

``LocalNCCLoss`` is the squared local correlation of VoxelMorph and MONAI, with one change:
windows where the fixed image is flat (standard deviation under ``FLAT_STD``) are left out,
instead of keeping them with a small constant added to the denominator (MONAI's
``smooth_dr``). With that constant, identical images are not the optimum: the loss still
pays for raising the moving image's variance in nearly flat windows, so an identical pair
drifts, and float32 cancellation in those windows adds noise.
The linear stages score a random sample of voxels (``sampled_similarity``), where a local
window has no meaning: there ``ncc`` is the global correlation of the sample.

Regularisers of a voxel-unit displacement field: ``diffusion`` (squared first derivatives)
and ``bending`` (squared second derivatives). ``bending`` computes exactly MONAI's
``BendingEnergyLoss`` (mean over interior voxels and components). ``diffusion`` uses forward
differences, as VoxelMorph's ``Grad('l2')`` does, not MONAI ``DiffusionLoss``'s central ones:
a central difference cannot see a field that alternates from voxel to voxel, and an optimiser
that moves every voxel on its own (Adam) grows exactly such checkerboards, which fold. Both
index with tuples; MONAI 1.6 indexes with lists, which PyTorch copies through its slower
advanced-indexing path.
"""

from __future__ import annotations

import torch
from torch import nn

SIMILARITIES = ("ncc", "mi", "mse")
REGULARISERS = ("diffusion", "bending")


def similarity_loss(name: str, spatial_dims: int, kernel: int = 7) -> nn.Module:
    """The loss ``loss(warped, fixed)`` on whole images called ``name`` (intensities in
    [0, 1]).

    Raises:
        ValueError: an unknown name.
    """
    from monai.losses import GlobalMutualInformationLoss

    if name == "ncc":
        return LocalNCCLoss(kernel)
    if name == "mi":
        return GlobalMutualInformationLoss(num_bins=32)
    if name == "mse":
        return nn.MSELoss()
    raise ValueError(f"unknown similarity {name!r}; choose from {', '.join(SIMILARITIES)}")


#: Windows whose fixed intensities (in [0, 1]) vary less than this standard deviation carry
#: no correlation and are left out of ``LocalNCCLoss``.
FLAT_STD = 0.01


def box_mean(x: torch.Tensor, kernel: int) -> torch.Tensor:
    """The mean of ``x`` ``(N, C, *spatial)`` over a cube of ``kernel`` voxels around each
    voxel, counting only the voxels inside the image (as ``avg_pool`` with
    ``count_include_pad=False``), by running sums along each axis: the cost does not grow
    with the window, and it is several times faster than ``avg_pool3d`` on a CPU."""
    half = kernel // 2
    for axis in range(2, x.ndim):
        n = x.shape[axis]
        pad = [0, 0] * (x.ndim - 2)
        pad[2 * (x.ndim - 1 - axis)] = half + 1  # one more zero before: the running sum's 0
        pad[2 * (x.ndim - 1 - axis) + 1] = half
        sums = torch.nn.functional.pad(x, pad).cumsum(axis)
        window = sums.narrow(axis, kernel, n) - sums.narrow(axis, 0, n)
        index = torch.arange(n, dtype=x.dtype, device=x.device)
        count = (index + half).clamp(max=n - 1) - (index - half).clamp(min=0) + 1
        x = window / count.view(-1, *([1] * (x.ndim - 1 - axis)))
    return x


class LocalNCCLoss(nn.Module):
    """Minus the mean over windows of the squared local correlation of ``warped`` and
    ``fixed`` (``(N, C, *spatial)``, 2D or 3D), in cubes of ``kernel`` voxels (shrunk at the
    border), leaving out windows where ``fixed`` is flat (see the module docstring)."""

    def __init__(self, kernel: int = 7) -> None:
        super().__init__()
        self.kernel = kernel

    def _mean(self, x: torch.Tensor) -> torch.Tensor:
        return box_mean(x, self.kernel)

    def forward(self, warped: torch.Tensor, fixed: torch.Tensor) -> torch.Tensor:
        mean_p, mean_t = self._mean(warped), self._mean(fixed)
        var_t = self._mean(fixed * fixed) - mean_t * mean_t
        var_p = (self._mean(warped * warped) - mean_p * mean_p).clamp_min(FLAT_STD**2)
        cross = self._mean(warped * fixed) - mean_p * mean_t
        textured = var_t > FLAT_STD**2
        cc = cross * cross / (var_t.clamp_min(FLAT_STD**2) * var_p)
        return -torch.where(textured, cc, torch.zeros_like(cc)).mean()


class GlobalNCCLoss(nn.Module):
    """Minus the Pearson correlation of two intensity samples (any shape, same size)."""

    def forward(self, warped: torch.Tensor, fixed: torch.Tensor) -> torch.Tensor:
        a = warped.flatten() - warped.mean()
        b = fixed.flatten() - fixed.mean()
        return -(a * b).sum() / torch.sqrt((a * a).sum() * (b * b).sum() + 1e-8)


def sampled_similarity(name: str) -> nn.Module:
    """The loss of the linear stages on intensity samples ``(1, 1, N)``: ``mi`` (MONAI's),
    ``ncc`` (global correlation) or ``mse``.

    Raises:
        ValueError: an unknown name.
    """
    from monai.losses import GlobalMutualInformationLoss

    if name == "mi":
        return GlobalMutualInformationLoss(num_bins=32)
    if name == "ncc":
        return GlobalNCCLoss()
    if name == "mse":
        return nn.MSELoss()
    raise ValueError(f"unknown similarity {name!r}; choose from {', '.join(SIMILARITIES)}")


def _shifted(x: torch.Tensor, shifts: dict[int, int]) -> torch.Tensor:
    """The interior ``[1:-1]`` of every spatial axis of ``x``, moved by ``shifts[axis]``
    (-1, 0 or +1) voxels along the given axes."""
    index: list[slice] = [slice(None), slice(None)]
    for axis in range(2, x.ndim):
        shift = shifts.get(axis, 0)
        index.append(slice(1 + shift, x.shape[axis] - 1 + shift))
    return x[tuple(index)]


def diffusion_energy(ddf: torch.Tensor) -> torch.Tensor:
    """Mean over voxels and components of the squared forward differences of ``ddf``
    ``(N, d, *spatial)``, summed over the axes (VoxelMorph's ``Grad('l2')`` times d)."""
    total = torch.zeros((), dtype=ddf.dtype, device=ddf.device)
    for axis in range(2, ddf.ndim):
        total = total + torch.diff(ddf, dim=axis).pow(2).mean()
    return total


def bending_energy(ddf: torch.Tensor) -> torch.Tensor:
    """Mean over voxels and components of the squared second differences of ``ddf``
    (pure and, counted twice, mixed; MONAI ``BendingEnergyLoss``)."""
    centre = _shifted(ddf, {})
    energy = torch.zeros_like(centre)
    axes = range(2, ddf.ndim)
    for a in axes:
        pure = _shifted(ddf, {a: 1}) - 2 * centre + _shifted(ddf, {a: -1})
        energy = energy + pure**2
        for b in range(a + 1, ddf.ndim):
            mixed = (
                _shifted(ddf, {a: 1, b: 1})
                - _shifted(ddf, {a: 1, b: -1})
                - _shifted(ddf, {a: -1, b: 1})
                + _shifted(ddf, {a: -1, b: -1})
            ) / 4.0
            energy = energy + 2 * mixed**2
    return energy.mean()


class Regulariser(nn.Module):
    """``diffusion_energy`` or ``bending_energy`` as a module."""

    def __init__(self, name: str) -> None:
        super().__init__()
        if name not in REGULARISERS:
            raise ValueError(f"unknown regulariser {name!r}; choose from {', '.join(REGULARISERS)}")
        self.name = name

    def forward(self, ddf: torch.Tensor) -> torch.Tensor:
        return diffusion_energy(ddf) if self.name == "diffusion" else bending_energy(ddf)


def regulariser(name: str) -> nn.Module:
    """The smoothness penalty ``penalty(ddf)`` called ``name`` (``ddf`` ``(N, d, *spatial)``,
    every side above 2 voxels).

    Raises:
        ValueError: an unknown name.
    """
    return Regulariser(name)
