"""The middle of the optimal-J plateau: stable where J is flat, blind to monotone rescaling."""

from __future__ import annotations

import numpy as np
import pytest
from scipy.special import expit, logit

from medlens.metrics.threshold import choose_threshold


def _near_separable(rng: np.random.Generator, n: int = 600):
    """Validation AUC about 0.99, as PneumoniaMNIST's: J is flat near its best."""
    y = (rng.uniform(size=n) < 0.7).astype(int)
    p = expit(rng.normal(size=n) * 1.5 + 2.8 * (2 * y - 1))
    return y, p


def test_the_plateau_threshold_lies_between_two_cases_with_near_best_j(rng) -> None:
    y, p = _near_separable(rng)
    t = choose_threshold(y, p, "youden_plateau")
    below, above = p[p < t].max(), p[p >= t].min()
    assert logit(t) == pytest.approx((logit(below) + logit(above)) / 2)

    def j(th: float) -> float:
        pred = p >= th
        return pred[y == 1].mean() - pred[y == 0].mean()

    best = j(choose_threshold(y, p, "youden"))
    assert j(t) >= best - 0.05


def test_temperature_scaling_the_scores_moves_the_threshold_with_them(rng) -> None:
    y, p = _near_separable(rng)
    t = choose_threshold(y, p, "youden_plateau")
    sharpened = expit(3.0 * logit(p) + 0.5)
    t2 = choose_threshold(y, sharpened, "youden_plateau")
    assert t2 == pytest.approx(expit(3.0 * logit(t) + 0.5))
    assert ((sharpened >= t2) == (p >= t)).all()


def test_the_plateau_moves_less_than_the_arg_max_across_resamples() -> None:
    """Bootstrap resamples of one near-separable validation set: the arg-max of J wanders
    over the flat region; the plateau's middle moves less (in log-odds)."""
    rng = np.random.default_rng(3)
    y, p = _near_separable(rng, 500)
    argmax, middle = [], []
    for _ in range(60):
        i = rng.integers(0, len(y), len(y))
        argmax.append(logit(choose_threshold(y[i], p[i], "youden")))
        middle.append(logit(choose_threshold(y[i], p[i], "youden_plateau")))
    assert np.std(middle) < np.std(argmax)
