"""The figures of a GAN run: losses per epoch and grids of samples (one row per class).

Built on ``matplotlib.figure.Figure`` with an Agg canvas, never pyplot, and written
atomically, like the classification report's figures.
"""

from __future__ import annotations

import io
from collections.abc import Sequence
from pathlib import Path

import numpy as np
import pandas as pd
import torch
from matplotlib.backends.backend_agg import FigureCanvasAgg
from matplotlib.figure import Figure

from medlens.io_utils import write_atomic

DPI = 120


def _save(fig: Figure, path: str | Path) -> Path:
    buffer = io.BytesIO()
    fig.savefig(buffer, format="png", dpi=DPI)
    fig.clear()
    return write_atomic(path, buffer.getvalue())


def save_loss_curves(history: pd.DataFrame, path: str | Path) -> Path:
    """Discriminator and generator losses (left) and the discriminator's mean probability
    of 'real' for real and generated images (right), per epoch."""
    fig = Figure(figsize=(9.0, 3.6), layout="constrained")
    FigureCanvasAgg(fig)
    losses, probs = fig.subplots(1, 2)
    losses.plot(history["epoch"], history["d_loss"], label="discriminator")
    losses.plot(history["epoch"], history["g_loss"], label="generator")
    losses.set(xlabel="epoch", ylabel="loss (BCE)", title="Adversarial losses")
    losses.legend()
    probs.plot(history["epoch"], history["d_real"], label="D(real)")
    probs.plot(history["epoch"], history["d_fake"], label="D(generated)")
    probs.set(xlabel="epoch", ylabel="mean P(real)", ylim=(0.0, 1.0), title="Discriminator")
    probs.axhline(0.5, color="grey", lw=0.8, ls="--")
    probs.legend()
    return _save(fig, path)


def tile(images: torch.Tensor, columns: int) -> np.ndarray:
    """Images ``(R * columns, C, S, S)`` in [-1, 1] -> one ``(R*S, columns*S[, 3])`` array in
    [0, 1], row by row, with no gap."""
    x = ((images.detach().float().cpu().clamp(-1, 1) + 1) / 2).numpy()
    n, c, s, _ = x.shape
    rows = n // columns
    grid = x[: rows * columns].reshape(rows, columns, c, s, s).transpose(0, 3, 1, 4, 2)
    grid = grid.reshape(rows * s, columns * s, c)
    return grid[..., 0] if c == 1 else grid


def save_sample_grid(
    images: torch.Tensor,
    class_names: Sequence[str],
    columns: int,
    path: str | Path,
    title: str = "",
) -> Path:
    """A grid of generated images, row ``k`` holding ``columns`` samples of class ``k``."""
    grid = tile(images, columns)
    side = images.shape[-1]
    rows = len(class_names)
    fig = Figure(figsize=(1.2 + 0.6 * columns, 0.4 + 0.6 * rows), layout="constrained")
    FigureCanvasAgg(fig)
    ax = fig.subplots()
    ax.imshow(grid, cmap="gray" if grid.ndim == 2 else None, vmin=0.0, vmax=1.0)
    ax.set_yticks([side * (k + 0.5) for k in range(rows)], list(class_names))
    ax.set_xticks([])
    if title:
        ax.set_title(title)
    return _save(fig, path)
