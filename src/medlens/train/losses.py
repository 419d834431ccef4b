"""Classification losses and class-imbalance weights."""

from __future__ import annotations

from collections.abc import Sequence

import numpy as np
import torch
from torch import nn


def inverse_frequency_weights(labels: Sequence[int], num_classes: int) -> torch.Tensor:
    """Per-class weights ``n / (K * n_k)``: 1.0 for every class of a balanced set.

    A class absent from ``labels`` gets weight 0 (it cannot be learned from this split).
    """
    counts = np.bincount(np.asarray(labels, dtype=np.int64), minlength=num_classes).astype(float)
    weights = np.where(counts > 0, counts.sum() / (num_classes * np.maximum(counts, 1)), 0.0)
    return torch.as_tensor(weights, dtype=torch.float32)


def classification_loss(
    class_weights: torch.Tensor | None = None, label_smoothing: float = 0.0
) -> nn.Module:
    """Cross-entropy on logits, optionally class-weighted and label-smoothed."""
    return nn.CrossEntropyLoss(weight=class_weights, label_smoothing=label_smoothing)
