"""Differentiable augmentation (DiffAugment, Zhao et al. 2020) for GANs trained on few images.

The same random colour, translation and cutout transforms are applied to every image the
discriminator sees, real and generated, and gradients flow through them to the generator.
The discriminator cannot then memorise the few hundred real images, which is what otherwise
makes a GAN collapse on small medical data sets; the generator is not taught the
augmentations, because real images are augmented the same way. The parameters are drawn
from a CPU ``torch.Generator`` so a seeded run draws the same ones on any device.
"""

from __future__ import annotations

import torch
import torch.nn.functional as F

TRANSLATION_RATIO = 0.125  # largest shift, as a fraction of the image side
CUTOUT_RATIO = 0.5  # side of the erased square, as a fraction of the image side


def _uniform(n: int, generator: torch.Generator, device: torch.device) -> torch.Tensor:
    return torch.rand((n, 1, 1, 1), generator=generator).to(device)


def _colour(x: torch.Tensor, generator: torch.Generator) -> torch.Tensor:
    n, dev = x.shape[0], x.device
    x = x + (_uniform(n, generator, dev) - 0.5)  # brightness, +-0.5 on the [-1, 1] scale
    if x.shape[1] == 3:  # saturation, RGB only
        grey = x.mean(dim=1, keepdim=True)
        x = (x - grey) * (_uniform(n, generator, dev) * 2.0) + grey
    mean = x.mean(dim=(1, 2, 3), keepdim=True)
    return (x - mean) * (_uniform(n, generator, dev) + 0.5) + mean  # contrast x0.5..1.5


def _translation(x: torch.Tensor, generator: torch.Generator) -> torch.Tensor:
    """Shift each image by whole pixels (up to 1/8 of its side); the border fills with 0."""
    n, _, h, w = x.shape
    limit_h, limit_w = int(h * TRANSLATION_RATIO + 0.5), int(w * TRANSLATION_RATIO + 0.5)
    shift_h = torch.randint(-limit_h, limit_h + 1, (n, 1, 1), generator=generator).to(x.device)
    shift_w = torch.randint(-limit_w, limit_w + 1, (n, 1, 1), generator=generator).to(x.device)
    batch, rows, cols = torch.meshgrid(
        torch.arange(n, device=x.device),
        torch.arange(h, device=x.device),
        torch.arange(w, device=x.device),
        indexing="ij",
    )
    rows = torch.clamp(rows + shift_h + 1, 0, h + 1)
    cols = torch.clamp(cols + shift_w + 1, 0, w + 1)
    padded = F.pad(x, [1, 1, 1, 1]).permute(0, 2, 3, 1)
    return padded[batch, rows, cols].permute(0, 3, 1, 2)


def _cutout(x: torch.Tensor, generator: torch.Generator) -> torch.Tensor:
    """Erase (set to 0) one square of half the image side per image, anywhere."""
    n, _, h, w = x.shape
    size_h, size_w = int(h * CUTOUT_RATIO + 0.5), int(w * CUTOUT_RATIO + 0.5)
    centre_h = torch.randint(0, h, (n, 1, 1), generator=generator).to(x.device)
    centre_w = torch.randint(0, w, (n, 1, 1), generator=generator).to(x.device)
    rows = torch.arange(h, device=x.device).view(1, h, 1)
    cols = torch.arange(w, device=x.device).view(1, 1, w)
    inside = ((rows - centre_h).abs() <= size_h // 2) & ((cols - centre_w).abs() <= size_w // 2)
    return x * (~inside).unsqueeze(1).to(x.dtype)


def diff_augment(x: torch.Tensor, generator: torch.Generator) -> torch.Tensor:
    """Colour, translation and cutout on a batch ``(N, C, H, W)`` in [-1, 1], differentiably.

    Args:
        x: the images the discriminator is about to see.
        generator: a CPU generator; its state decides every drawn parameter.

    Returns:
        The augmented batch, same shape, device and dtype (values may leave [-1, 1]).
    """
    return _cutout(_translation(_colour(x, generator), generator), generator)
