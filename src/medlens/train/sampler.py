"""Epoch samplers that are reproducible by (seed, epoch) and shard across DDP ranks."""

from __future__ import annotations

from collections.abc import Iterator, Sequence

import numpy as np
import torch
from torch.utils.data import Sampler


class EpochSampler(Sampler[int]):
    """Shuffles (or draws class-balanced indices) anew each epoch from ``(seed, epoch)``.

    With ``balanced=True`` every class is drawn with equal probability (sampling with
    replacement), which is the "balanced sampler" answer to class imbalance. Under DDP each
    rank takes every ``world_size``-th index of the same global order, so the ranks together
    see one epoch exactly once.

    Args:
        labels: class index of each training case.
        seed: the run's seed.
        balanced: draw classes with equal probability instead of shuffling.
        rank: this process's rank; world_size: the number of processes.
    """

    def __init__(
        self,
        labels: Sequence[int],
        seed: int,
        balanced: bool = False,
        rank: int = 0,
        world_size: int = 1,
    ) -> None:
        self.labels = np.asarray(labels, dtype=np.int64)
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
        if not self.balanced:
            return torch.randperm(n, generator=generator)
        counts = np.bincount(self.labels)
        weights = 1.0 / counts[self.labels]
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
