"""Probabilities mapped from the preprocessed grid back onto an image's own grid."""

from __future__ import annotations

from collections.abc import Sequence

import numpy as np
import torch


def resample_probabilities(probs: np.ndarray, shape: Sequence[int]) -> np.ndarray:
    """Probabilities ``(K, *spatial)`` resampled linearly onto another grid of the same extent
    (the preprocessed grid back onto the image's own), so that metrics and saved masks refer to
    the input as given. Returned unchanged when the grids already agree."""
    target = tuple(int(n) for n in shape)
    if probs.shape[1:] == target:
        return probs
    tensor = torch.from_numpy(np.ascontiguousarray(probs, dtype=np.float32))[None]
    mode = "bilinear" if len(target) == 2 else "trilinear"
    out = torch.nn.functional.interpolate(tensor, size=target, mode=mode, align_corners=False)
    return out[0].numpy()
