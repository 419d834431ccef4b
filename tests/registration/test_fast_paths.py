"""The registration's hand-written fast paths equal what they replace: the NCC and diffusion
gradients equal autograd's of the plain formulas, the MI equals MONAI's, the Gaussian equals
MONAI's filter, the closed-form rotation equals the matrix exponential, and a cropped level
keeps the loss of the whole image."""

from __future__ import annotations

import pytest
import torch

from medlens.registration.losses import (
    FLAT_STD,
    FixedWindows,
    MutualInformation,
    diffusion_energy,
    windowed_ncc,
)
from medlens.registration.pyramid import gaussian_smooth
from medlens.registration.transforms import _skew, rotation_matrix


def box_mean(x: torch.Tensor, kernel: int) -> torch.Tensor:
    """The window mean by average pooling (padding not counted), which autograd follows."""
    pool = torch.nn.functional.avg_pool2d if x.ndim == 4 else torch.nn.functional.avg_pool3d
    return pool(x, kernel, stride=1, padding=kernel // 2, count_include_pad=False)


def _plain_ncc(warped: torch.Tensor, fixed: torch.Tensor, kernel: int) -> torch.Tensor:
    """The loss written the obvious way, for autograd (the module docstring's definition)."""
    mean_p, mean_t = box_mean(warped, kernel), box_mean(fixed, kernel)
    var_t = box_mean(fixed * fixed, kernel) - mean_t * mean_t
    var_p = (box_mean(warped * warped, kernel) - mean_p * mean_p).clamp_min(FLAT_STD**2)
    cross = box_mean(warped * fixed, kernel) - mean_p * mean_t
    textured = var_t > FLAT_STD**2
    cc = cross * cross / (var_t.clamp_min(FLAT_STD**2) * var_p)
    return -torch.where(textured, cc, torch.zeros_like(cc)).mean()


def _pair(shape: tuple[int, ...], seed: int) -> tuple[torch.Tensor, torch.Tensor]:
    g = torch.Generator().manual_seed(seed)
    fixed = torch.rand(1, 1, *shape, generator=g, dtype=torch.float64)
    fixed[..., : shape[-1] // 3] = 0.5  # a flat region: windows left out
    warped = (fixed + 0.3 * torch.rand(1, 1, *shape, generator=g, dtype=torch.float64)).clamp(0, 1)
    return warped, fixed


@pytest.mark.parametrize("shape", [(12, 15), (7, 8, 9)])
def test_windowed_ncc_value_and_gradient_equal_the_plain_formula(shape) -> None:
    warped, fixed = _pair(shape, 0)
    a = warped.clone().requires_grad_(True)
    b = warped.clone().requires_grad_(True)
    fast = windowed_ncc(a, FixedWindows.of(fixed, 5))
    plain = _plain_ncc(b, fixed, 5)
    fast.backward()
    plain.backward()
    assert float(fast) == pytest.approx(float(plain), rel=1e-10)
    assert a.grad is not None and b.grad is not None
    torch.testing.assert_close(a.grad, b.grad, rtol=1e-8, atol=1e-12)


def test_a_crop_keeps_the_loss_of_the_textured_windows() -> None:
    """Inside a box that holds every textured window whole, the cropped loss (divided by the
    whole image's voxel count) is the whole image's."""
    g = torch.Generator().manual_seed(3)
    fixed = torch.zeros(1, 1, 20, 24, dtype=torch.float64)
    fixed[..., 6:13, 8:17] = torch.rand(7, 9, generator=g, dtype=torch.float64)
    warped = (fixed + 0.2 * torch.rand(1, 1, 20, 24, generator=g, dtype=torch.float64)).clamp(0, 1)
    warped[..., :3, :] = 0.7  # changes outside the box, where fixed is flat, count for nothing
    whole = FixedWindows.of(fixed, 5)
    box = (slice(2, 17), slice(4, 21))
    cropped = whole.cropped(box, fixed.numel())
    inside = warped[(slice(None), slice(None), *box)]
    assert float(windowed_ncc(inside.contiguous(), cropped)) == pytest.approx(
        float(windowed_ncc(warped, whole)), rel=1e-10
    )


def test_diffusion_gradient_equals_autograd() -> None:
    field = torch.randn(1, 3, 5, 6, 7, generator=torch.Generator().manual_seed(4))
    field = field.double().requires_grad_(True)
    diffusion_energy(field).backward()
    fast = field.grad
    plain = field.detach().clone().requires_grad_(True)
    total = sum(torch.diff(plain, dim=axis).pow(2).mean() for axis in range(2, 5))
    total.backward()
    torch.testing.assert_close(fast, plain.grad)


def test_mutual_information_equals_monai() -> None:
    from monai.losses import GlobalMutualInformationLoss

    g = torch.Generator().manual_seed(5)
    a = torch.rand(1, 1, 2000, generator=g)
    b = (0.6 * a + 0.4 * torch.rand(1, 1, 2000, generator=g)).clamp(0, 1)
    ours = float(MutualInformation()(a, b))
    theirs = float(GlobalMutualInformationLoss(num_bins=32)(a, b))
    assert ours == pytest.approx(theirs, rel=1e-5, abs=1e-6)
    assert ours < float(MutualInformation()(a, torch.rand(1, 1, 2000, generator=g)))


@pytest.mark.parametrize("sigma", [0.7, 1.5, 3.0])
def test_gaussian_smooth_equals_monai(sigma: float) -> None:
    from monai.networks.layers import GaussianFilter

    image = torch.rand(1, 1, 11, 13, 9, generator=torch.Generator().manual_seed(6))
    expected = GaussianFilter(3, sigma, truncated=3.0)(image)
    torch.testing.assert_close(gaussian_smooth(image, sigma), expected, rtol=1e-5, atol=1e-6)


@pytest.mark.parametrize("dims", [2, 3])
@pytest.mark.parametrize("scale", [0.0, 1e-5, 0.3, 2.0])
def test_closed_form_rotation_equals_the_matrix_exponential(dims: int, scale: float) -> None:
    n = 1 if dims == 2 else 3
    angles = scale * torch.tensor([0.8, -0.5, 0.3][:n], dtype=torch.float64)
    torch.testing.assert_close(
        rotation_matrix(angles, dims), torch.linalg.matrix_exp(_skew(angles, dims))
    )
    angles = angles.clone().requires_grad_(True)
    rotation_matrix(angles, dims).sum().backward()
    assert angles.grad is not None and bool(torch.isfinite(angles.grad).all())
