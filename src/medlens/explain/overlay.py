"""Heatmap overlays as PNG: the image beside it with the map on top; 3D as three slices.

Figures are built on ``matplotlib.figure.Figure`` with an Agg canvas, never through pyplot,
so nothing stays open and drawing is thread-safe.
"""

from __future__ import annotations

import io
from collections.abc import Sequence
from pathlib import Path

import numpy as np
from matplotlib.axes import Axes
from matplotlib.backends.backend_agg import FigureCanvasAgg
from matplotlib.figure import Figure

from medlens.io_utils import write_atomic

DPI = 110
AXIS_NAMES = ("axis 0", "axis 1", "axis 2")


def display_image(image: np.ndarray) -> np.ndarray:
    """``(C, *spatial)`` -> what ``imshow`` draws: RGB ``(*spatial, 3)`` for 3 channels, else
    channel 0, scaled to [0, 1] by its own min and max."""
    pixels = np.moveaxis(image[:3], 0, -1) if image.shape[0] == 3 else image[0]
    pixels = pixels.astype(np.float32)
    low, high = float(pixels.min()), float(pixels.max())
    return (pixels - low) / (high - low) if high > low else np.zeros_like(pixels)


def peak_slices(image: np.ndarray, heatmap: np.ndarray) -> list[tuple[str, np.ndarray, np.ndarray]]:
    """The three orthogonal slices of a volume through the heatmap's maximum.

    Args:
        image: ``(C, D, H, W)``.
        heatmap: ``(D, H, W)``.

    Returns:
        ``(title, image slice (C, a, b), heatmap slice (a, b))`` for axes 0, 1 and 2.
    """
    peak = np.unravel_index(int(np.argmax(heatmap)), heatmap.shape)
    out = []
    for axis, index in enumerate(peak):
        title = f"{AXIS_NAMES[axis]} = {int(index)}"
        out.append(
            (title, np.take(image, index, axis=axis + 1), np.take(heatmap, index, axis=axis))
        )
    return out


def draw_overlay(
    ax: Axes, image: np.ndarray, heatmap: np.ndarray, cmap: str = "jet", alpha: float = 0.45
) -> None:
    """One 2D panel: the image in grey (or RGB) and the heatmap in ``cmap`` on top."""
    shown = display_image(image)
    ax.imshow(shown, cmap=None if shown.ndim == 3 else "gray", interpolation="nearest")
    ax.imshow(heatmap, cmap=cmap, alpha=alpha, vmin=0.0, vmax=1.0, interpolation="bilinear")
    ax.set_axis_off()


def overlay_panels(
    image: np.ndarray, heatmap: np.ndarray
) -> list[tuple[str, np.ndarray, np.ndarray | None]]:
    """The panels of one case: 2D ``input`` and ``overlay``; 3D the three peak slices."""
    if heatmap.ndim == 2:
        return [("input", image, None), ("overlay", image, heatmap)]
    return [(title, im, hm) for title, im, hm in peak_slices(image, heatmap)]


def save_overlay(
    image: np.ndarray,
    heatmap: np.ndarray,
    path: str | Path,
    title: str | None = None,
    cmap: str = "jet",
    alpha: float = 0.45,
) -> Path:
    """Write one PNG: a 2D image beside its overlay, or a volume's three peak slices overlaid.

    Args:
        image: the preprocessed input ``(C, H, W)`` or ``(C, D, H, W)``.
        heatmap: ``(H, W)`` or ``(D, H, W)`` in [0, 1].
        path: the PNG to write (atomically).
        title: drawn above the panels.
        cmap: a matplotlib colormap (``jet``, ``inferno``, ...).
        alpha: opacity of the heatmap, 0..1.
    """
    if image.shape[1:] != heatmap.shape:
        raise ValueError(f"image {image.shape} and heatmap {heatmap.shape} grids differ")
    return save_overlay_grid([image], [heatmap], path, [title or ""], cmap=cmap, alpha=alpha)


def save_overlay_grid(
    images: Sequence[np.ndarray],
    heatmaps: Sequence[np.ndarray],
    path: str | Path,
    row_titles: Sequence[str],
    cmap: str = "jet",
    alpha: float = 0.45,
    title: str | None = None,
) -> Path:
    """One PNG with a row of panels per case (see ``overlay_panels``) and a colorbar."""
    rows = [overlay_panels(im, hm) for im, hm in zip(images, heatmaps, strict=True)]
    n_cols = max(len(r) for r in rows)
    fig = Figure(figsize=(2.4 * n_cols + 0.6, 2.5 * len(rows) + 0.3), layout="constrained")
    FigureCanvasAgg(fig)
    axes = np.atleast_2d(fig.subplots(len(rows), n_cols, squeeze=False))
    mappable = None
    for r, (panels, row_title) in enumerate(zip(rows, row_titles, strict=True)):
        for c, (panel_title, im, hm) in enumerate(panels):
            ax = axes[r, c]
            if hm is None:
                shown = display_image(im)
                ax.imshow(shown, cmap=None if shown.ndim == 3 else "gray")
                ax.set_axis_off()
            else:
                draw_overlay(ax, im, hm, cmap=cmap, alpha=alpha)
                mappable = ax.images[-1]
            ax.set_title(
                f"{row_title}\n{panel_title}" if c == 0 and row_title else panel_title, fontsize=8
            )
    if mappable is not None:
        fig.colorbar(mappable, ax=axes.ravel().tolist(), shrink=0.8, label="relevance")
    if title:
        fig.suptitle(title, fontsize=10)
    buffer = io.BytesIO()
    fig.savefig(buffer, format="png", dpi=DPI)
    return write_atomic(path, buffer.getvalue())
