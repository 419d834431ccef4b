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


def test_cell_balanced_weights_draw_every_group_and_class_cell_equally() -> None:
    import pandas as pd

    from medlens.audit import group_sample_weights
    from medlens.train.sampler import EpochSampler, cell_balanced_weights

    rng = np.random.default_rng(0)
    groups = np.where(rng.random(1000) < 0.9, "site_a", "site_b")  # site B is rare
    labels = (rng.random(1000) < np.where(groups == "site_a", 0.7, 0.2)).astype(int)
    weights = cell_balanced_weights(groups.tolist(), labels.tolist())
    assert weights.mean() == pytest.approx(1.0)
    frame = pd.DataFrame({"site": groups, "label": labels})
    np.testing.assert_allclose(weights, group_sample_weights(frame, "site"))
    sampler = EpochSampler(labels.tolist(), seed=0, weights=weights)
    drawn = np.concatenate([np.array(list(sampler)) for _ in range(5)])
    cells = pd.Series([f"{groups[i]}/{labels[i]}" for i in drawn]).value_counts(normalize=True)
    assert len(cells) == 4
    assert cells.min() > 0.2 and cells.max() < 0.3  # 0.25 each in expectation
    with pytest.raises(ValueError, match="3 weights for 1000 cases"):
        EpochSampler(labels.tolist(), seed=0, weights=[1.0, 1.0, 1.0])


def test_the_budgeted_schedule_is_refitted_to_the_mean_epoch_time() -> None:
    from types import SimpleNamespace

    from medlens.config import TrainConfig
    from medlens.train.trainer import Trainer

    trainer = SimpleNamespace(config=TrainConfig(epochs=200, max_minutes=10))
    plan = Trainer._epochs_in_budget
    assert plan(trainer, 1, 3.0) == 194  # 3 s epochs: 582 s of budget hold 194
    assert plan(trainer, 10, 300.0) == 19  # epochs slowed to 30 s: 9 more fit
    assert plan(trainer, 30, 590.0) == 30  # out of time: never below the epochs done
    assert plan(SimpleNamespace(config=TrainConfig(epochs=5, max_minutes=10)), 1, 1.0) == 5
