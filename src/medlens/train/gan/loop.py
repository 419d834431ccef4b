"""The adversarial training loop: DCGAN's alternating updates with the non-saturating loss.

Each step updates the discriminator once on a real batch and a generated batch (generated
for the real batch's labels), then the generator once. Every random draw (batches, noise,
augmentations) comes from one CPU ``torch.Generator`` seeded with the run's seed, so a
seeded run on the CPU repeats exactly.
"""

from __future__ import annotations

import time
from collections.abc import Callable
from dataclasses import dataclass, field
from typing import TYPE_CHECKING, Any

import numpy as np
import torch
import torch.nn.functional as F
from torch import nn

from medlens.train.gan.data import GanData
from medlens.train.gan.diffaugment import diff_augment

if TYPE_CHECKING:
    from medlens.train.gan.config import GanConfig


@dataclass
class GanFit:
    """What the loop did.

    Attributes:
        history: one row per epoch: ``epoch``, ``steps``, ``d_loss``, ``g_loss``,
            ``d_real`` and ``d_fake`` (the discriminator's mean probability that real and
            generated images are real), ``seconds`` since the start.
        epochs_run: epochs begun (the last may be cut short by the time budget).
        train_seconds: wall-clock time of the loop, s.
        stopped_by_budget: the time budget ended the loop before ``epochs``.
    """

    history: list[dict[str, Any]] = field(default_factory=list)
    epochs_run: int = 0
    train_seconds: float = 0.0
    stopped_by_budget: bool = False


def epoch_batches(
    labels: torch.Tensor, batch_size: int, balanced: bool, rng: torch.Generator
) -> list[torch.Tensor]:
    """Index batches for one epoch: ``max(1, N // batch_size)`` full batches (a batch of one
    would break batch norm); with ``balanced``, drawn with replacement with every class
    equally likely, else a permutation."""
    n = len(labels)
    size = min(batch_size, n)
    steps = max(1, n // size)
    if balanced:
        counts = torch.bincount(labels).double()
        weights = 1.0 / counts[labels]
        order = torch.multinomial(weights, steps * size, replacement=True, generator=rng)
    else:
        order = torch.randperm(n, generator=rng)[: steps * size]
    return list(order.view(steps, size))


def _adversarial_step(
    generator: nn.Module,
    discriminator: nn.Module,
    optimizers: tuple[torch.optim.Optimizer, torch.optim.Optimizer],
    real: torch.Tensor,
    labels: torch.Tensor,
    latent_dim: int,
    rng: torch.Generator,
    augment: bool,
) -> dict[str, float]:
    opt_g, opt_d = optimizers
    seen = (lambda x: diff_augment(x, rng)) if augment else (lambda x: x)
    z = torch.randn((len(real), latent_dim), generator=rng).to(real.device)
    fake = generator(z, labels)

    opt_d.zero_grad(set_to_none=True)
    logit_real = discriminator(seen(real), labels)
    logit_fake = discriminator(seen(fake.detach()), labels)
    d_loss = F.binary_cross_entropy_with_logits(
        logit_real, torch.ones_like(logit_real)
    ) + F.binary_cross_entropy_with_logits(logit_fake, torch.zeros_like(logit_fake))
    d_loss.backward()
    opt_d.step()

    opt_g.zero_grad(set_to_none=True)
    logit_g = discriminator(seen(fake), labels)
    g_loss = F.binary_cross_entropy_with_logits(logit_g, torch.ones_like(logit_g))
    g_loss.backward()
    opt_g.step()
    return {
        "d_loss": float(d_loss.detach()),
        "g_loss": float(g_loss.detach()),
        "d_real": float(torch.sigmoid(logit_real.detach()).mean()),
        "d_fake": float(torch.sigmoid(logit_fake.detach()).mean()),
    }


def fit_gan(
    generator: nn.Module,
    discriminator: nn.Module,
    data: GanData,
    config: GanConfig,
    device: torch.device,
    on_epoch_end: Callable[[int, bool], None] | None = None,
) -> GanFit:
    """Train ``generator`` and ``discriminator`` on ``data`` for ``config.epochs`` epochs or
    until ``config.max_minutes`` have passed (checked after every step).

    Args:
        generator, discriminator: from ``build_gan``; moved to ``device`` and left in train mode.
        data: the real training images, values in [-1, 1].
        config: ``epochs``, ``batch_size``, ``lr``, ``betas``, ``max_minutes``, ``seed``,
            ``latent_dim``, ``diff_augment``, ``class_balanced``.
        device: where to train.
        on_epoch_end: called with ``(epoch, is_last)`` after each epoch (1-based).

    Returns:
        The per-epoch history and how the loop ended.
    """
    rng = torch.Generator().manual_seed(config.seed)
    generator.to(device).train()
    discriminator.to(device).train()
    optimizers = (
        torch.optim.Adam(generator.parameters(), lr=config.lr, betas=config.betas),
        torch.optim.Adam(discriminator.parameters(), lr=config.lr, betas=config.betas),
    )
    images, labels = data.images.to(device), data.labels.to(device)
    budget = config.max_minutes * 60.0 if config.max_minutes is not None else float("inf")
    fit = GanFit()
    start = time.perf_counter()
    for epoch in range(1, config.epochs + 1):
        steps = []
        for batch in epoch_batches(data.labels, config.batch_size, config.class_balanced, rng):
            batch = batch.to(device)
            steps.append(
                _adversarial_step(
                    generator,
                    discriminator,
                    optimizers,
                    images[batch],
                    labels[batch],
                    config.latent_dim,
                    rng,
                    config.diff_augment,
                )  # fmt: skip
            )
            if time.perf_counter() - start > budget:
                fit.stopped_by_budget = True
                break
        fit.epochs_run = epoch
        row: dict[str, Any] = {"epoch": epoch, "steps": len(steps)}
        row.update({k: float(np.mean([s[k] for s in steps])) for k in steps[0]})
        row["seconds"] = time.perf_counter() - start
        fit.history.append(row)
        last = fit.stopped_by_budget or epoch == config.epochs
        if on_epoch_end is not None:
            on_epoch_end(epoch, last)
        if last:
            break
    fit.train_seconds = time.perf_counter() - start
    return fit
