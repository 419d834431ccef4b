"""The class-conditional DCGAN: shapes, conditioning, spectral norm, bad sizes."""

from __future__ import annotations

import pytest
import torch

from medlens.errors import ConfigError
from medlens.models.gan import GanSpec, build_gan, upsampling_plan

torch.set_num_threads(1)


@pytest.mark.parametrize("size", [28, 32, 64])
@pytest.mark.parametrize("channels", [1, 3])
def test_generator_and_discriminator_shapes(size: int, channels: int) -> None:
    spec = GanSpec(image_size=size, channels=channels, num_classes=3, g_width=8, d_width=8)
    generator, discriminator = build_gan(spec)
    labels = torch.tensor([0, 1, 2, 1])
    images = generator(torch.randn(4, spec.latent_dim), labels)
    assert images.shape == (4, channels, size, size)
    assert images.min() >= -1.0 and images.max() <= 1.0  # tanh output
    logits = discriminator(images, labels)
    assert logits.shape == (4,)
    assert torch.isfinite(logits).all()


@pytest.mark.parametrize(("size", "plan"), [(28, (7, 2)), (32, (4, 3)), (48, (6, 3)), (64, (4, 4))])
def test_upsampling_plan_rebuilds_the_size(size: int, plan: tuple[int, int]) -> None:
    s0, n = upsampling_plan(size)
    assert (s0, n) == plan
    assert s0 * 2**n == size


@pytest.mark.parametrize("size", [26, 30, 68, 128])
def test_unsupported_sizes_are_config_errors(size: int) -> None:
    with pytest.raises(ConfigError, match="image_size"):
        build_gan(GanSpec(image_size=size))


def test_two_channels_are_refused() -> None:
    with pytest.raises(ConfigError, match="channels"):
        build_gan(GanSpec(channels=2))


def test_the_label_changes_both_networks_outputs() -> None:
    generator, discriminator = build_gan(GanSpec(num_classes=2, g_width=8, d_width=8))
    generator.eval()
    z = torch.randn(3, 100)
    as_0 = generator(z, torch.zeros(3, dtype=torch.long))
    as_1 = generator(z, torch.ones(3, dtype=torch.long))
    assert (as_0 - as_1).abs().max() > 1e-4
    x = torch.rand(3, 1, 28, 28) * 2 - 1
    d_0 = discriminator(x, torch.zeros(3, dtype=torch.long))
    d_1 = discriminator(x, torch.ones(3, dtype=torch.long))
    assert (d_0 - d_1).abs().max() > 1e-6


def test_generator_gradients_reach_the_label_embedding() -> None:
    generator, _ = build_gan(GanSpec(g_width=8))
    generator(torch.randn(4, 100), torch.tensor([0, 1, 0, 1])).mean().backward()
    assert generator.label_embedding.weight.grad.abs().sum() > 0


def test_spectral_norm_bounds_every_discriminator_layer() -> None:
    _, discriminator = build_gan(GanSpec(d_width=8, spectral_norm=True))
    x, y = torch.randn(8, 1, 28, 28), torch.randint(0, 2, (8,))
    for _ in range(30):  # power iterations converge over forward passes in train mode
        discriminator(x, y)
    discriminator.eval()
    layers = [m for m in discriminator.modules() if isinstance(m, torch.nn.Conv2d)]
    layers.append(discriminator.linear)
    for layer in layers:
        sigma = torch.linalg.matrix_norm(layer.weight.detach().flatten(1), ord=2)
        assert sigma == pytest.approx(1.0, abs=0.05)


def test_without_spectral_norm_the_discriminator_uses_batch_norm() -> None:
    _, plain = build_gan(GanSpec(d_width=8, spectral_norm=False))
    assert any(isinstance(m, torch.nn.BatchNorm2d) for m in plain.modules())
    assert not any(hasattr(m, "parametrizations") for m in plain.modules())
