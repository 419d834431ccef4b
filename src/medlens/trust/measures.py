"""How uncertain a prediction is: entropy and mutual information of sampled probabilities
(test-time augmentation, MC dropout or ensemble members), and the Dice a probability map
expects of its own mask.

Entropies are in nats (natural logarithm): 0 for a certain prediction, ``log K`` at most.
"""

from __future__ import annotations

import numpy as np
from numpy.typing import ArrayLike

from medlens.errors import InputError


def entropy(probs: ArrayLike, axis: int = -1) -> np.ndarray:
    """Shannon entropy ``-sum p log p`` over ``axis`` (nats); ``0 log 0 = 0``."""
    p = np.asarray(probs, dtype=np.float64)
    with np.errstate(divide="ignore", invalid="ignore"):
        terms = np.where(p > 0, p * np.log(p), 0.0)
    return np.maximum(-terms.sum(axis=axis), 0.0)


def predictive_entropy(samples: ArrayLike, axis: int = -1) -> np.ndarray:
    """Entropy of the mean over samples (axis 0) of ``samples`` ``(S, ..., K, ...)``: the
    total uncertainty, in nats. ``axis`` is the class axis of ``samples`` (counting the
    sample axis as 0; -1 when classes come last)."""
    s = np.asarray(samples, dtype=np.float64)
    class_axis = axis if axis < 0 else axis - 1
    return entropy(s.mean(axis=0), axis=class_axis)


def mutual_information(samples: ArrayLike, axis: int = -1) -> np.ndarray:
    """The part of the predictive entropy on which the samples disagree (the epistemic part,
    BALD): ``H(mean p) - mean H(p)``, in nats, >= 0. One sample gives 0.

    Args:
        samples: ``(S, ..., K, ...)`` probabilities, samples on axis 0.
        axis: the class axis of ``samples`` (counting the sample axis as 0; -1 when classes
            come last), e.g. 1 for ``(S, K, H, W)``.
    """
    s = np.asarray(samples, dtype=np.float64)
    if s.ndim < 2 or s.shape[0] < 1:
        raise InputError("samples", f"expected (S, ..., K) with S >= 1, got {s.shape}")
    class_axis = axis if axis < 0 else axis - 1
    total = entropy(s.mean(axis=0), axis=class_axis)
    expected = entropy(s, axis=axis).mean(axis=0)
    return np.maximum(total - expected, 0.0)


def expected_dice(probs: ArrayLike, mask: ArrayLike) -> float:
    """The Dice a calibrated foreground probability map expects of the binary ``mask`` made
    from it: ``2 sum(p * m) / (sum(m) + sum(p))``, every voxel an independent Bernoulli
    draw (a first-order estimate). 1 when both are empty.

    Args:
        probs: foreground probability per voxel.
        mask: the predicted foreground (bool), same shape.
    """
    p = np.asarray(probs, dtype=np.float64)
    m = np.asarray(mask, dtype=bool)
    if p.shape != m.shape:
        raise InputError("mask", f"shape {m.shape} differs from the probabilities' {p.shape}")
    denominator = float(m.sum()) + float(p.sum())
    return 1.0 if denominator == 0 else float(2.0 * p[m].sum() / denominator)
