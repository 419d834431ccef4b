from __future__ import annotations

import numpy as np
import pytest

from medlens.train.losses import inverse_frequency_weights
from medlens.train.sampler import EpochSampler


def test_shuffle_is_reproducible_per_epoch_and_shards_cover_the_epoch() -> None:
    labels = [0] * 10 + [1] * 90
    a, b = EpochSampler(labels, seed=1), EpochSampler(labels, seed=1)
    assert list(a) == list(b)
    a.set_epoch(1)
    assert list(a) != list(b)
    ranks = [EpochSampler(labels, seed=1, rank=r, world_size=2) for r in (0, 1)]
    seen = sorted(list(ranks[0]) + list(ranks[1]))
    assert seen == list(range(100))


def test_balanced_sampler_draws_classes_equally() -> None:
    labels = np.array([0] * 50 + [1] * 950)
    drawn = labels[list(EpochSampler(labels, seed=0, balanced=True))]
    assert 0.4 < drawn.mean() < 0.6


def test_inverse_frequency_weights() -> None:
    w = inverse_frequency_weights([0, 1, 1, 1], 3)
    assert w.tolist() == pytest.approx([4 / 3, 4 / 9, 0.0])
