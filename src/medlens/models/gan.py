"""A class-conditional DCGAN for 2D images of 28 to 64 px, 1 or 3 channels.

The generator follows DCGAN (Radford et al. 2016): the latent vector ``z`` joined with a
learned label embedding is projected to a ``s0 x s0`` map, then doubled in size by
4x4 stride-2 transposed convolutions with batch norm and ReLU, and ends in ``tanh`` (pixel
values in [-1, 1]). The discriminator mirrors it with 4x4 stride-2 convolutions and
LeakyReLU(0.2) and is conditioned by projection (Miyato & Koyama 2018): its score is
``linear(h) + <embed(y), h>`` for the sum-pooled features ``h``.

Spectral normalisation (Miyato et al. 2018) is applied to every discriminator layer by
default: it bounds the discriminator's Lipschitz constant, which keeps the adversarial game
stable on the few hundred images of a small medical data set without tuning. The
discriminator then has no batch norm (spectral norm replaces it, as in SN-GAN); with
``spectral_norm=False`` it uses batch norm after every convolution but the first (DCGAN).

The GAN is not a classifier and is not in the classifier registry; ``build_gan`` builds it.
"""

from __future__ import annotations

from dataclasses import asdict, dataclass
from typing import cast

import torch
from torch import nn
from torch.nn.utils.parametrizations import spectral_norm as _spectral_norm
from torch.nn.utils.parametrize import is_parametrized

from medlens.errors import ConfigError

MIN_SIZE, MAX_SIZE = 28, 64


@dataclass(frozen=True)
class GanSpec:
    """What rebuilds a generator and discriminator pair (stored in ``generator.pt``).

    Attributes:
        image_size: side of the square images, in pixels: a multiple of 4 in 28..64.
        channels: 1 (grey) or 3 (RGB).
        num_classes: number of class labels the GAN is conditioned on.
        latent_dim: length of the noise vector ``z``.
        embed_dim: length of the generator's label embedding.
        g_width: channels of the generator's last hidden layer (doubled at each coarser level).
        d_width: channels of the discriminator's first layer (doubled at each coarser level).
        spectral_norm: spectral normalisation on every discriminator layer.
    """

    image_size: int = 28
    channels: int = 1
    num_classes: int = 2
    latent_dim: int = 100
    embed_dim: int = 32
    g_width: int = 64
    d_width: int = 64
    spectral_norm: bool = True

    def as_dict(self) -> dict[str, int | bool]:
        return asdict(self)


def upsampling_plan(image_size: int) -> tuple[int, int]:
    """``(s0, n)``: the start side in pixels and the number of stride-2 levels,
    ``image_size = s0 * 2**n`` with ``s0`` >= 4 (28 -> (7, 2), 32 -> (4, 3), 64 -> (4, 4)).

    Raises:
        ConfigError: a size outside 28..64 or not a multiple of 4.
    """
    if not MIN_SIZE <= image_size <= MAX_SIZE or image_size % 4:
        raise ConfigError(
            "image_size", f"must be a multiple of 4 in {MIN_SIZE}..{MAX_SIZE} px, got {image_size}"
        )
    n = 2
    while image_size % 2 ** (n + 1) == 0 and image_size // 2 ** (n + 1) >= 4:
        n += 1
    return image_size // 2**n, n


class ConditionalGenerator(nn.Module):
    """``G(z, y)``: noise ``(N, latent_dim)`` and labels ``(N,)`` -> images ``(N, C, S, S)``
    with values in [-1, 1].

    Example:
        >>> g = ConditionalGenerator(GanSpec(image_size=32, channels=3))
        >>> g(torch.randn(4, 100), torch.tensor([0, 1, 0, 1])).shape
        torch.Size([4, 3, 32, 32])
    """

    def __init__(self, spec: GanSpec) -> None:
        super().__init__()
        self.spec = spec
        s0, n = upsampling_plan(spec.image_size)
        self.start_side = s0
        self.start_channels = spec.g_width * 2 ** (n - 1)
        self.label_embedding = nn.Embedding(spec.num_classes, spec.embed_dim)
        self.project = nn.Sequential(
            nn.Linear(spec.latent_dim + spec.embed_dim, self.start_channels * s0 * s0, bias=False),
            nn.BatchNorm1d(self.start_channels * s0 * s0),
            nn.ReLU(),
        )
        layers: list[nn.Module] = []
        channels = self.start_channels
        for _ in range(n - 1):
            layers += [
                nn.ConvTranspose2d(channels, channels // 2, 4, 2, 1, bias=False),
                nn.BatchNorm2d(channels // 2),
                nn.ReLU(),
            ]
            channels //= 2
        layers += [nn.ConvTranspose2d(channels, spec.channels, 4, 2, 1), nn.Tanh()]
        self.upsample = nn.Sequential(*layers)
        _dcgan_init(self)

    def forward(self, z: torch.Tensor, labels: torch.Tensor) -> torch.Tensor:
        h = torch.cat([z, self.label_embedding(labels)], dim=1)
        h = self.project(h).view(-1, self.start_channels, self.start_side, self.start_side)
        return self.upsample(h)


class ProjectionDiscriminator(nn.Module):
    """``D(x, y)``: images ``(N, C, S, S)`` in [-1, 1] and labels ``(N,)`` -> logits ``(N,)``
    (real > 0 > fake).

    Example:
        >>> d = ProjectionDiscriminator(GanSpec(image_size=64))
        >>> d(torch.randn(2, 1, 64, 64), torch.tensor([0, 1])).shape
        torch.Size([2])
    """

    def __init__(self, spec: GanSpec) -> None:
        super().__init__()
        self.spec = spec
        _, n = upsampling_plan(spec.image_size)
        norm = _spectral_norm if spec.spectral_norm else _identity
        layers: list[nn.Module] = []
        channels_in, channels = spec.channels, spec.d_width
        for level in range(n):
            layers.append(norm(nn.Conv2d(channels_in, channels, 4, 2, 1)))
            if level > 0 and not spec.spectral_norm:
                layers.append(nn.BatchNorm2d(channels))
            layers.append(nn.LeakyReLU(0.2))
            channels_in, channels = channels, channels * 2
        self.features = nn.Sequential(*layers)
        self.num_features = channels_in
        self.linear = norm(nn.Linear(channels_in, 1))
        self.label_projection = norm(nn.Embedding(spec.num_classes, channels_in))
        _dcgan_init(self)

    def forward(self, images: torch.Tensor, labels: torch.Tensor) -> torch.Tensor:
        h = self.features(images).sum(dim=(2, 3))
        projection = (self.label_projection(labels) * h).sum(dim=1)
        return self.linear(h).squeeze(1) + projection


def _identity(module: nn.Module) -> nn.Module:
    return module


def _dcgan_init(module: nn.Module) -> None:
    """DCGAN's initialisation: convolution weights ~ N(0, 0.02), batch-norm scales ~ N(1, 0.02)."""
    for m in module.modules():
        if isinstance(m, nn.Conv2d | nn.ConvTranspose2d | nn.Linear | nn.Embedding):
            # a spectrally normalised layer keeps the trainable weight as ``original``
            weight = (
                cast(torch.Tensor, getattr(m, "parametrizations").weight.original)  # noqa: B009
                if is_parametrized(m, "weight")
                else m.weight
            )
            nn.init.normal_(weight, 0.0, 0.02)
            bias = getattr(m, "bias", None)
            if isinstance(bias, torch.Tensor):
                nn.init.zeros_(bias)
        elif isinstance(m, nn.BatchNorm1d | nn.BatchNorm2d):
            nn.init.normal_(m.weight, 1.0, 0.02)
            nn.init.zeros_(m.bias)


def build_gan(spec: GanSpec) -> tuple[ConditionalGenerator, ProjectionDiscriminator]:
    """The generator and discriminator for ``spec``.

    Raises:
        ConfigError: an image size outside 28..64 px or not a multiple of 4, a channel count
            other than 1 or 3, fewer than 1 class, or a non-positive width or dimension.
    """
    upsampling_plan(spec.image_size)
    if spec.channels not in (1, 3):
        raise ConfigError("channels", f"the GAN makes 1- or 3-channel images, not {spec.channels}")
    for key in ("num_classes", "latent_dim", "embed_dim", "g_width", "d_width"):
        if getattr(spec, key) < 1:
            raise ConfigError(key, f"must be at least 1, got {getattr(spec, key)}")
    return ConditionalGenerator(spec), ProjectionDiscriminator(spec)
