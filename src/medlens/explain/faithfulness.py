"""Deletion and insertion curves (Petsiuk et al. 2018, RISE): does the map rank what matters?

Deletion replaces the most salient pixels (voxels) first with a baseline and tracks the
target-class probability: a faithful map makes it fall fast (low area under the curve).
Insertion starts from the baseline and puts the most salient pixels back first: a faithful
map makes the probability rise fast (high area). Pixels go in steps of ``step_fraction`` of
the image; a pixel is all its channels at one location; ties in the map are broken at random
(seeded), so a flat map behaves like a random one rather than like a raster scan.

Baselines (what a removed pixel becomes), chosen per curve:
    ``"mean"``: each channel's mean intensity over the image; the paper's deletion uses
        black, but after medlens preprocessing black may be an extreme value while the mean
        is a neutral one.
    ``"blur"``: the image blurred with a Gaussian of ``blur_sigma`` pixels (voxels), default
        an eighth of the shortest side; the paper's insertion substrate, which keeps the
        coarse intensity layout and removes the detail.
    ``"zeros"``: 0 everywhere.
"""

from __future__ import annotations

from dataclasses import dataclass

import numpy as np
import torch
from scipy.ndimage import gaussian_filter

from medlens.errors import ConfigError


@dataclass(frozen=True)
class PerturbationCurve:
    """Target probability against the fraction of pixels perturbed.

    Attributes:
        fractions: ``(S,)`` fraction of the pixels (voxels) removed or inserted, 0 to 1.
        probabilities: ``(S,)`` softmax probability of the target class.
        auc: trapezoidal area under the curve; in [0, 1] since both axes are.
    """

    fractions: np.ndarray
    probabilities: np.ndarray
    auc: float


def baseline_image(image: np.ndarray, kind: str, blur_sigma: float | None = None) -> np.ndarray:
    """The image a removed pixel takes its value from, same shape ``(C, *spatial)``."""
    if kind == "mean":
        axes = tuple(range(1, image.ndim))
        return np.broadcast_to(image.mean(axis=axes, keepdims=True), image.shape).copy()
    if kind == "blur":
        sigma = blur_sigma if blur_sigma is not None else min(image.shape[1:]) / 8
        return np.stack([gaussian_filter(channel, sigma=sigma) for channel in image])
    if kind == "zeros":
        return np.zeros_like(image)
    raise ConfigError("faithfulness.baseline", f"must be mean, blur or zeros, got {kind!r}")


def salience_rank(heatmap: np.ndarray, seed: int = 0) -> np.ndarray:
    """Each pixel's rank in the map, flattened: 0 for the most salient; ties in random order."""
    flat = np.asarray(heatmap, dtype=np.float64).ravel()
    tie_break = np.random.default_rng(seed).random(flat.size)
    order = np.lexsort((tie_break, -flat))
    rank = np.empty(flat.size, dtype=np.int64)
    rank[order] = np.arange(flat.size)
    return rank


def perturbation_curve(
    model: torch.nn.Module,
    start: np.ndarray,
    end: np.ndarray,
    rank: np.ndarray,
    target: int,
    step_fraction: float = 0.05,
    batch_size: int = 64,
) -> PerturbationCurve:
    """Move pixels from ``start`` to ``end`` in the order of ``rank``, scoring each step.

    Args:
        model: a classifier giving logits ``(N, K)``.
        start, end: ``(C, *spatial)`` images.
        rank: ``salience_rank`` of the map.
        target: the class whose softmax probability is tracked.
        step_fraction: the share of pixels moved per step (0.05: 21 points, 0 to 100%).
    """
    if not 0 < step_fraction <= 1:
        raise ConfigError("faithfulness.step_fraction", f"must be in (0, 1], got {step_fraction}")
    channels, n_pixels = start.shape[0], rank.size
    n_steps = int(np.ceil(1.0 / step_fraction - 1e-9))
    counts = np.round(np.linspace(0, n_pixels, n_steps + 1)).astype(np.int64)
    flat_start = start.reshape(channels, n_pixels)
    flat_end = end.reshape(channels, n_pixels)
    device = next(model.parameters()).device
    probabilities = []
    was_training = model.training
    model.eval()
    try:
        for first in range(0, len(counts), batch_size):
            moved = rank[None, None, :] < counts[first : first + batch_size, None, None]
            batch = np.where(moved, flat_end[None], flat_start[None])
            batch = batch.reshape((-1,) + start.shape).astype(np.float32)
            with torch.no_grad():
                logits = model(torch.from_numpy(batch).to(device))
            probabilities.append(torch.softmax(logits.float(), dim=1)[:, target].cpu().numpy())
    finally:
        model.train(was_training)
    fractions = counts / n_pixels
    probs = np.concatenate(probabilities).astype(np.float64)
    return PerturbationCurve(fractions, probs, float(np.trapezoid(probs, fractions)))


def deletion_curve(
    model: torch.nn.Module,
    image: np.ndarray,
    heatmap: np.ndarray,
    target: int,
    step_fraction: float = 0.05,
    baseline: str = "mean",
    blur_sigma: float | None = None,
    seed: int = 0,
) -> PerturbationCurve:
    """Remove the most salient pixels first (set them to ``baseline``); lower AUC is better.

    Args:
        image: the preprocessed input ``(C, *spatial)``.
        heatmap: ``(*spatial)``, larger = more relevant.
        target: the explained class.
        seed: breaks ties in the map.
    """
    rank = salience_rank(heatmap, seed)
    substitute = baseline_image(image, baseline, blur_sigma)
    return perturbation_curve(model, image, substitute, rank, target, step_fraction)


def insertion_curve(
    model: torch.nn.Module,
    image: np.ndarray,
    heatmap: np.ndarray,
    target: int,
    step_fraction: float = 0.05,
    baseline: str = "blur",
    blur_sigma: float | None = None,
    seed: int = 0,
) -> PerturbationCurve:
    """Start from ``baseline`` and insert the most salient pixels first; higher AUC is better.

    Args: as ``deletion_curve``.
    """
    rank = salience_rank(heatmap, seed)
    substrate = baseline_image(image, baseline, blur_sigma)
    return perturbation_curve(model, substrate, image, rank, target, step_fraction)


def random_heatmaps(shape: tuple[int, ...], n: int, seed: int = 0) -> np.ndarray:
    """``n`` maps of uniform noise ``(n, *shape)``, the baseline a method must beat."""
    return np.random.default_rng(seed).random((n,) + tuple(shape)).astype(np.float32)
