"""The similarity measures and regularisers of the optimisation.

Similarities (lower is better, as losses): ``ncc`` local normalised cross-correlation in a
window of ``kernel`` voxels (``LocalNCCLoss``), ``mi`` global mutual information with Gaussian
Parzen windows (``MutualInformation``: MONAI's ``GlobalMutualInformationLoss``, faster), ``mse``.

``LocalNCCLoss`` is the squared local correlation of VoxelMorph and MONAI, with one change:
windows where the fixed image is flat (standard deviation under ``FLAT_STD``) are left out,
instead of keeping them with a small constant added to the denominator (MONAI's
``smooth_dr``). With that constant, identical images are not the optimum: the loss still
pays for raising the moving image's variance in nearly flat windows, so an identical pair
drifts, and float32 cancellation in those windows adds noise. Its gradient is written out
(``WindowedNCC``): three window sums forward and three back, with nothing else kept for
autograd; the fixed image's window statistics can be computed once (``FixedWindows``) and
reused for every step of an optimisation.
The linear stages score a random sample of voxels (``sampled_similarity``), where a local
window has no meaning: there ``ncc`` is the global correlation of the sample.

Regularisers of a voxel-unit displacement field: ``diffusion`` (squared first derivatives)
and ``bending`` (squared second derivatives). ``bending`` computes exactly MONAI's
``BendingEnergyLoss`` (mean over interior voxels and components). ``diffusion`` uses forward
differences, as VoxelMorph's ``Grad('l2')`` does, not MONAI ``DiffusionLoss``'s central ones:
a central difference cannot see a field that alternates from voxel to voxel, and an optimiser
that moves every voxel on its own (Adam) grows exactly such checkerboards, which fold. Its
gradient is written out too (minus twice the discrete Laplacian). Both index with tuples;
MONAI 1.6 indexes with lists, which PyTorch copies through its slower advanced-indexing path.
"""

from __future__ import annotations

from dataclasses import dataclass
from typing import Any

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
    if name == "ncc":
        return LocalNCCLoss(kernel)
    if name == "mi":
        return MutualInformation()
    if name == "mse":
        return nn.MSELoss()
    raise ValueError(f"unknown similarity {name!r}; choose from {', '.join(SIMILARITIES)}")


#: Windows whose fixed intensities (in [0, 1]) vary less than this standard deviation carry
#: no correlation and are left out of ``LocalNCCLoss``.
FLAT_STD = 0.01


def box_sum(x: torch.Tensor, kernel: int) -> torch.Tensor:
    """The sum of ``x`` ``(N, C, *spatial)`` over a cube of ``kernel`` voxels around each
    voxel, zero outside the image, by running sums along each axis: the cost does not grow
    with the window, and it is several times faster than ``avg_pool3d`` on a CPU. The
    operator is its own adjoint."""
    half = kernel // 2
    for axis in range(2, x.ndim):
        n = x.shape[axis]
        shape = list(x.shape)
        shape[axis] = n + kernel
        # half + 1 zeros before (the running sum's 0), half after
        sums = x.new_zeros(shape)
        sums.narrow(axis, half + 1, n).copy_(x)
        torch.cumsum(sums, axis, out=sums)
        x = sums.narrow(axis, kernel, n) - sums.narrow(axis, 0, n)
    return x


def window_count(shape: tuple[int, ...], kernel: int, like: torch.Tensor) -> torch.Tensor:
    """Voxels of each ``kernel`` window that lie inside a grid of ``shape``, ``(1, 1,
    *shape)`` (the window shrinks at the border)."""
    half = kernel // 2
    count = torch.ones((1, 1) + (1,) * len(shape), dtype=like.dtype, device=like.device)
    for axis, n in enumerate(shape):
        index = torch.arange(n, dtype=like.dtype, device=like.device)
        along = (index + half).clamp(max=n - 1) - (index - half).clamp(min=0) + 1
        count = count * along.view(-1, *([1] * (len(shape) - 1 - axis)))
    return count


@dataclass(frozen=True)
class FixedWindows:
    """The fixed image's window statistics, computed once for ``WindowedNCC``.

    Attributes:
        fixed: ``(N, C, *spatial)`` intensities.
        kernel: the window's side (voxels).
        count: voxels per window, ``(1, 1, *spatial)``.
        mean: the window means of ``fixed``.
        variance: their variances, at least ``FLAT_STD ** 2``.
        weight: ``1 / fixed.numel()`` where the window is textured (variance above
            ``FLAT_STD ** 2``), else 0: the loss is minus the weighted sum of the squared
            correlations.
    """

    fixed: torch.Tensor
    kernel: int
    count: torch.Tensor
    mean: torch.Tensor
    variance: torch.Tensor
    weight: torch.Tensor

    @classmethod
    def of(cls, fixed: torch.Tensor, kernel: int, numel: int | None = None) -> FixedWindows:
        """The statistics of ``fixed``; ``numel`` (default ``fixed.numel()``) divides the sum
        of the correlations (the loss is their mean over the voxels)."""
        fixed = fixed.detach()
        count = window_count(tuple(fixed.shape[2:]), kernel, fixed)
        sums = box_sum(torch.cat([fixed, fixed * fixed], 1), kernel) / count
        channels = fixed.shape[1]
        mean, square = sums[:, :channels], sums[:, channels:]
        variance = square - mean * mean
        textured = variance > FLAT_STD**2
        weight = textured.to(fixed.dtype) / float(numel or fixed.numel())
        return cls(fixed, kernel, count, mean, variance.clamp_min(FLAT_STD**2), weight)

    def textured(self) -> torch.Tensor:
        """Where a window counts: ``(N, C, *spatial)`` booleans."""
        return self.weight > 0

    def cropped(self, box: tuple[slice, ...], numel: int) -> FixedWindows:
        """The statistics inside ``box`` (slices of the spatial axes), the loss divided by
        ``numel``. Exact for every textured window whose whole cube lies inside the box."""
        index = (slice(None), slice(None), *box)
        weight = (self.weight[index] > 0).to(self.weight.dtype) / float(numel)
        return FixedWindows(
            self.fixed[index].contiguous(),
            self.kernel,
            self.count[index].contiguous(),
            self.mean[index].contiguous(),
            self.variance[index].contiguous(),
            weight.contiguous(),
        )


class WindowedNCC(torch.autograd.Function):
    """Minus the weighted sum of the squared local correlations of ``warped`` with the fixed
    image of ``windows``; the gradient (``warped`` only) is written out."""

    @staticmethod
    def forward(ctx: Any, warped: torch.Tensor, windows: FixedWindows) -> torch.Tensor:
        fixed, count, kernel = windows.fixed, windows.count, windows.kernel
        c = warped.shape[1]
        sums = box_sum(torch.cat([warped, warped * warped, warped * fixed], 1), kernel) / count
        mean_p = sums[:, :c]
        var_p = sums[:, c : 2 * c] - mean_p * mean_p
        cross = sums[:, 2 * c :] - mean_p * windows.mean
        var_pc = var_p.clamp_min(FLAT_STD**2)
        ratio = cross / (windows.variance * var_pc)
        cc = cross * ratio
        # d(cc)/d(cross) = 2 ratio, d(cc)/d(var_p) = -cc / var_p; per voxel of the window,
        # d(cross) = (fixed - mean_t) / count and d(var_p) = 2 (warped - mean_p) / count.
        a = windows.weight * 2 * ratio / count
        b = windows.weight * (var_p > FLAT_STD**2) * (-2 * cc / var_pc) / count
        ctx.save_for_backward(warped, a, b, a * windows.mean + b * mean_p)
        ctx.windows = windows
        return -(windows.weight * cc).sum()

    @staticmethod
    def backward(ctx: Any, grad: torch.Tensor) -> tuple[torch.Tensor, None]:
        warped, a, b, g = ctx.saved_tensors
        c = warped.shape[1]
        sums = box_sum(torch.cat([a, b, g], 1), ctx.windows.kernel)
        out = ctx.windows.fixed * sums[:, :c] + warped * sums[:, c : 2 * c] - sums[:, 2 * c :]
        return -grad * out, None


def windowed_ncc(warped: torch.Tensor, windows: FixedWindows) -> torch.Tensor:
    """``WindowedNCC`` applied: the local NCC loss of ``warped`` against ``windows.fixed``."""
    out = WindowedNCC.apply(warped, windows)
    assert isinstance(out, torch.Tensor)
    return out


class LocalNCCLoss(nn.Module):
    """Minus the mean over windows of the squared local correlation of ``warped`` and
    ``fixed`` (``(N, C, *spatial)``, 2D or 3D), in cubes of ``kernel`` voxels (shrunk at the
    border), leaving out windows where ``fixed`` is flat (see the module docstring). The
    gradient reaches ``warped`` only (``fixed`` is data)."""

    def __init__(self, kernel: int = 7) -> None:
        super().__init__()
        self.kernel = kernel

    def forward(self, warped: torch.Tensor, fixed: torch.Tensor) -> torch.Tensor:
        return windowed_ncc(warped, FixedWindows.of(fixed, self.kernel))


#: Exponents of the Parzen windows are capped here: weights that small (e^-30) are zero to
#: every sum they enter, and the cap keeps float32 out of denormal numbers, which a CPU
#: computes a hundred times slower.
PARZEN_CAP = 30.0


class MutualInformation(nn.Module):
    """Minus the mutual information of two images or samples ``(B, ...)`` in [0, 1], with
    Gaussian Parzen windows on ``num_bins`` bins: MONAI's ``GlobalMutualInformationLoss``
    (same bins, width and smoothing constants; values agree to 1e-6) with fewer operations
    and no denormal numbers, several times faster on a CPU."""

    centres: torch.Tensor

    def __init__(self, num_bins: int = 32, sigma_ratio: float = 0.5) -> None:
        super().__init__()
        centres = torch.linspace(0.0, 1.0, num_bins)
        sigma = float(centres[1] - centres[0]) * sigma_ratio
        self.preterm = 1.0 / (2.0 * sigma**2)
        self.register_buffer("centres", centres, persistent=False)
        self.smooth = 1e-7

    def _weights(self, x: torch.Tensor) -> torch.Tensor:
        x = x.clamp(0, 1).reshape(x.shape[0], -1, 1)
        centres = self.centres.to(x)
        exponent = ((x - centres) ** 2 * self.preterm).clamp(max=PARZEN_CAP)
        weight = torch.exp(-exponent)
        return weight / weight.sum(-1, keepdim=True)

    def forward(self, pred: torch.Tensor, target: torch.Tensor) -> torch.Tensor:
        if pred.shape != target.shape:
            raise ValueError(f"shapes differ: {tuple(pred.shape)} and {tuple(target.shape)}")
        wa, wb = self._weights(pred), self._weights(target)
        joint = torch.bmm(wa.transpose(1, 2), wb) / wa.shape[1]
        product = wa.mean(1)[:, :, None] * wb.mean(1)[:, None, :]
        s = self.smooth
        mi = (joint * torch.log((joint + s) / (product + s) + s)).sum((1, 2))
        return -mi.mean()


class GlobalNCCLoss(nn.Module):
    """Minus the Pearson correlation of two intensity samples (any shape, same size)."""

    def forward(self, warped: torch.Tensor, fixed: torch.Tensor) -> torch.Tensor:
        a = warped.flatten() - warped.mean()
        b = fixed.flatten() - fixed.mean()
        return -(a * b).sum() / torch.sqrt((a * a).sum() * (b * b).sum() + 1e-8)


def sampled_similarity(name: str) -> nn.Module:
    """The loss of the linear stages on intensity samples ``(1, 1, N)``: ``mi``, ``ncc``
    (global correlation) or ``mse``.

    Raises:
        ValueError: an unknown name.
    """
    if name == "mi":
        return MutualInformation()
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


class DiffusionEnergy(torch.autograd.Function):
    """``diffusion_energy`` with its gradient written out: along each axis, twice the
    forward difference behind a voxel minus the one ahead of it, over the differences'
    count."""

    @staticmethod
    def forward(ctx: Any, ddf: torch.Tensor) -> torch.Tensor:
        ctx.save_for_backward(ddf)
        total = torch.zeros((), dtype=ddf.dtype, device=ddf.device)
        for axis in range(2, ddf.ndim):
            total = total + torch.diff(ddf, dim=axis).pow(2).mean()
        return total

    @staticmethod
    def backward(ctx: Any, grad: torch.Tensor) -> torch.Tensor:
        (ddf,) = ctx.saved_tensors
        out = torch.zeros_like(ddf)
        for axis in range(2, ddf.ndim):
            n = ddf.shape[axis]
            if n < 2:
                continue
            step = torch.diff(ddf, dim=axis)
            scale = 2.0 / max(step.numel(), 1)
            out.narrow(axis, 1, n - 1).add_(step, alpha=scale)
            out.narrow(axis, 0, n - 1).sub_(step, alpha=scale)
        return out * grad


def diffusion_energy(ddf: torch.Tensor) -> torch.Tensor:
    """Mean over voxels and components of the squared forward differences of ``ddf``
    ``(N, d, *spatial)``, summed over the axes (VoxelMorph's ``Grad('l2')`` times d)."""
    out = DiffusionEnergy.apply(ddf)
    assert isinstance(out, torch.Tensor)
    return out


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
