"""Regularisers: bending energy is MONAI's; diffusion uses forward differences, which see
checkerboards."""

from __future__ import annotations

import pytest
import torch

from medlens.registration.losses import (
    bending_energy,
    diffusion_energy,
    regulariser,
    sampled_similarity,
    similarity_loss,
)


@pytest.mark.parametrize("shape", [(1, 2, 9, 11), (2, 3, 6, 7, 8)])
def test_bending_energy_equals_monai(shape: tuple[int, ...]) -> None:
    from monai.losses import BendingEnergyLoss

    field = torch.randn(*shape, generator=torch.Generator().manual_seed(0))
    assert float(bending_energy(field)) == pytest.approx(float(BendingEnergyLoss()(field)))


def test_diffusion_is_zero_for_a_translation_and_sees_a_checkerboard() -> None:
    constant = torch.ones(1, 2, 8, 8) * 3.0
    assert float(diffusion_energy(constant)) == 0.0
    checker = (torch.arange(8)[:, None] + torch.arange(8)[None, :]) % 2 * 2.0 - 1.0
    field = checker.expand(1, 2, 8, 8).clone()
    from monai.losses import DiffusionLoss

    assert float(DiffusionLoss()(field)) == 0.0  # central differences are blind to it
    assert float(diffusion_energy(field)) == pytest.approx(8.0)  # 2 axes x 2^2


def test_similarities_are_lowest_for_identical_images() -> None:
    a = torch.rand(1, 1, 16, 16, generator=torch.Generator().manual_seed(1))
    b = torch.rand(1, 1, 16, 16, generator=torch.Generator().manual_seed(2))
    for name in ("ncc", "mi", "mse"):
        loss = similarity_loss(name, 2, kernel=5)
        assert float(loss(a, a)) < float(loss(b, a)), name
        sampled = sampled_similarity(name)
        assert float(sampled(a.reshape(1, 1, -1), a.reshape(1, 1, -1))) < float(
            sampled(b.reshape(1, 1, -1), a.reshape(1, 1, -1))
        ), name


def test_unknown_names_are_refused() -> None:
    with pytest.raises(ValueError, match="choose from"):
        similarity_loss("cc", 2)
    with pytest.raises(ValueError, match="choose from"):
        regulariser("elastic")
