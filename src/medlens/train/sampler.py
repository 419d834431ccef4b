"""Epoch samplers that are reproducible by (seed, epoch) and shard across DDP ranks."""

from __future__ import annotations

from collections.abc import Iterator, Sequence

import numpy as np
import torch
from torch.utils.data import Sampler


def cell_balanced_weights(groups: Sequence[str], labels: Sequence[int]) -> np.ndarray:
    """Per-case weights that give every (group, class) cell the same total weight, mean 1
    ("reweighing", Kamiran & Calders 2012): ``w_i = N / (C * n_cell(i))`` for ``N`` cases in
    ``C`` non-empty cells.

    Example:
        >>> cell_balanced_weights(["A", "A", "A", "B"], [0, 1, 1, 0]).round(3).tolist()
        [1.333, 0.667, 0.667, 1.333]
    """
    cells = [f"{g}\x00{y}" for g, y in zip(groups, labels, strict=True)]
    if not cells:
        return np.zeros(0)
    _, inverse, counts = np.unique(cells, return_inverse=True, return_counts=True)
    return len(cells) / (len(counts) * counts[inverse].astype(float))


class EpochSampler(Sampler[int]):
    """Shuffles (or draws class-balanced or weighted indices) anew each epoch from
    ``(seed, epoch)``.

    With ``balanced=True`` every class is drawn with equal probability (sampling with
    replacement), which is the "balanced sampler" answer to class imbalance; with ``weights``
    case ``i`` is drawn with probability proportional to ``weights[i]`` (e.g.
    :func:`cell_balanced_weights` for subgroup reweighting). Under DDP each
    rank takes every ``world_size``-th index of the same global order, so the ranks together
    see one epoch exactly once.

    Args:
        labels: class index of each training case.
        seed: the run's seed.
        balanced: draw classes with equal probability instead of shuffling.
        weights: per-case sampling weights (with replacement); overrides ``balanced``.
        rank: this process's rank; world_size: the number of processes.
    """

    def __init__(
        self,
        labels: Sequence[int],
        seed: int,
        balanced: bool = False,
        rank: int = 0,
        world_size: int = 1,
        weights: Sequence[float] | np.ndarray | None = None,
    ) -> None:
        self.labels = np.asarray(labels, dtype=np.int64)
        self.weights = None if weights is None else np.asarray(weights, dtype=float)
        if self.weights is not None and self.weights.shape != self.labels.shape:
            raise ValueError(f"{len(self.weights)} weights for {len(self.labels)} cases")
        self.seed = seed
        self.balanced = balanced
        self.rank = rank
        self.world_size = world_size
        self.epoch = 0

    def set_epoch(self, epoch: int) -> None:
        self.epoch = epoch

    def _global_order(self) -> torch.Tensor:
        generator = torch.Generator().manual_seed(self.seed * 100_003 + self.epoch)
        n = len(self.labels)
        if self.weights is not None:
            weights = self.weights
        elif self.balanced:
            weights = 1.0 / np.bincount(self.labels)[self.labels]
        else:
            return torch.randperm(n, generator=generator)
        return torch.multinomial(
            torch.as_tensor(weights, dtype=torch.double), n, replacement=True, generator=generator
        )

    def __iter__(self) -> Iterator[int]:
        order = self._global_order()
        per_rank = -(-len(order) // self.world_size)
        padded = torch.cat([order, order[: per_rank * self.world_size - len(order)]])
        return iter(padded[self.rank :: self.world_size].tolist())

    def __len__(self) -> int:
        return -(-len(self.labels) // self.world_size)
