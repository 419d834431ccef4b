"""The registration side of the one trainer: (moving, fixed) batches -> similarity of the
warped moving image to the fixed one plus the field's regulariser; validation: the mean
correlation of the warped pairs (higher is better)."""

from __future__ import annotations

from collections.abc import Sequence
from typing import Any

import numpy as np
import torch
from torch import nn
from torch.utils.data import Dataset

from medlens.registration.learned import displacement_of, warp


class PairDataset(Dataset):
    """Ordered pairs of prepared images: item ``k`` is ``{"moving", "fixed"}`` tensors
    ``(C, *spatial)`` (and their label maps when every image has one).

    Args:
        images: the normalised images ``(C, *spatial)``.
        pairs: ``(moving index, fixed index)`` per item.
        labels: label maps ``(1, *spatial)`` per image, or None.
    """

    def __init__(
        self,
        images: Sequence[torch.Tensor],
        pairs: Sequence[tuple[int, int]],
        labels: Sequence[torch.Tensor] | None = None,
    ) -> None:
        self.images = list(images)
        self.pairs = list(pairs)
        self.labels = list(labels) if labels is not None else None

    def __len__(self) -> int:
        return len(self.pairs)

    def __getitem__(self, index: int) -> dict[str, Any]:
        m, f = self.pairs[index]
        item = {"moving": self.images[m], "fixed": self.images[f]}
        if self.labels is not None:
            item["moving_labels"], item["fixed_labels"] = self.labels[m], self.labels[f]
        return item


def batch_correlation(a: torch.Tensor, b: torch.Tensor) -> torch.Tensor:
    """Pearson correlation of each pair of images in a batch, ``(N,)``."""
    x = a.flatten(1) - a.flatten(1).mean(1, keepdim=True)
    y = b.flatten(1) - b.flatten(1).mean(1, keepdim=True)
    return (x * y).sum(1) / torch.sqrt((x * x).sum(1) * (y * y).sum(1) + 1e-8)


class RegistrationTrainingTask:
    """What the trainer asks of a registration run.

    Args:
        similarity: ``loss(warped, fixed)``.
        penalty: ``penalty(ddf)``, weighed by ``weight``.
        val_pairs: the validation pairs.
        diffeomorphic: integrate the flow by scaling and squaring in ``steps`` squarings.
    """

    score_name = "val_ncc"

    def __init__(
        self,
        similarity: nn.Module,
        penalty: nn.Module,
        weight: float,
        val_pairs: PairDataset,
        diffeomorphic: bool,
        steps: int,
    ) -> None:
        self.similarity = similarity
        self.penalty = penalty
        self.weight = weight
        self.val_pairs = val_pairs
        self.diffeomorphic = diffeomorphic
        self.steps = steps

    def displacement(
        self, model: nn.Module, moving: torch.Tensor, fixed: torch.Tensor
    ) -> torch.Tensor:
        """The displacement (voxels) the network predicts for a batch of pairs."""
        flow = model(torch.cat([moving, fixed], dim=1))
        return displacement_of(flow.float(), self.diffeomorphic, self.steps)

    def batch_loss(
        self, model: nn.Module, batch: Any, device: torch.device
    ) -> tuple[torch.Tensor, int]:
        moving = batch["moving"].to(device, non_blocking=True)
        fixed = batch["fixed"].to(device, non_blocking=True)
        ddf = self.displacement(model, moving, fixed)
        loss = self.similarity(warp(moving, ddf), fixed) + self.weight * self.penalty(ddf)
        return loss, int(moving.shape[0])

    @torch.no_grad()
    def validate(self, model: nn.Module, device: torch.device) -> tuple[float, float]:
        if len(self.val_pairs) == 0:
            return float("nan"), float("nan")
        model.eval()
        scores, losses = [], []
        for index in range(len(self.val_pairs)):
            item = self.val_pairs[index]
            moving, fixed = item["moving"][None].to(device), item["fixed"][None].to(device)
            ddf = self.displacement(model, moving, fixed)
            warped = warp(moving, ddf)
            scores.append(float(batch_correlation(warped, fixed)[0]))
            losses.append(float(self.similarity(warped, fixed) + self.weight * self.penalty(ddf)))
        model.train()
        return float(np.mean(scores)), float(np.mean(losses))
