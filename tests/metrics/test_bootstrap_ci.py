"""Stratified percentile bootstrap: resampling, vectorised metrics, intervals."""

from __future__ import annotations

import numpy as np
import pytest

from medlens.errors import ConfigError, UnknownNameError
from medlens.metrics import METRICS, bootstrap_ci
from medlens.metrics import resampled as resampled_module
from medlens.metrics.bootstrap import bootstrap_samples, stratified_resample_counts
from medlens.metrics.resampled import RESAMPLED


def test_every_resample_keeps_the_class_counts() -> None:
    y = np.array([0] * 7 + [1] * 3 + [2] * 5)
    counts = stratified_resample_counts(y, 200, np.random.default_rng(0))
    assert counts.shape == (200, 15)
    for cls in range(3):
        np.testing.assert_array_equal(counts[:, y == cls].sum(axis=1), (y == cls).sum())
    assert (counts == 0).any() and (counts > 1).any()  # with replacement


def test_every_registered_metric_has_a_vectorised_twin() -> None:
    assert set(RESAMPLED) == set(METRICS.names())


@pytest.mark.parametrize("name", sorted(RESAMPLED))
def test_vectorised_twin_equals_the_metric_on_the_resampled_cases(predictions, name: str) -> None:
    y, prob, pred = predictions
    counts = stratified_resample_counts(y, 12, np.random.default_rng(3))
    fast = RESAMPLED[name](counts.astype(float), y, prob, pred)
    cases = np.arange(len(y))
    for b, row in enumerate(counts):
        idx = np.repeat(cases, row)
        assert fast[b] == pytest.approx(METRICS.get(name)(y[idx], prob[idx], pred[idx]), abs=1e-10)


def test_looping_fallback_gives_the_same_values(monkeypatch, random_binary) -> None:
    y, prob, pred = random_binary
    fast = bootstrap_samples(y, prob, pred, ["auc", "ece"], n_bootstrap=30, seed=5)
    monkeypatch.delitem(resampled_module.RESAMPLED, "auc")
    monkeypatch.delitem(resampled_module.RESAMPLED, "ece")
    slow = bootstrap_samples(y, prob, pred, ["auc", "ece"], n_bootstrap=30, seed=5)
    for name in ("auc", "ece"):
        np.testing.assert_allclose(fast[name], slow[name], atol=1e-12)


@pytest.mark.parametrize("fixture", ["pneumonia_predictions", "digits_predictions"])
def test_intervals_contain_the_point_estimate(request, fixture: str) -> None:
    y, prob, pred = request.getfixturevalue(fixture)
    intervals = bootstrap_ci(y, prob, pred, METRICS.names(), n_bootstrap=500, seed=0)
    for name, (low, high) in intervals.items():
        value = METRICS.get(name)(y, prob, pred)
        assert low <= value <= high, name
        assert low < high, name


def test_intervals_shrink_with_more_cases(make_predictions) -> None:
    small = make_predictions(100, 2, seed=7)
    large = make_predictions(2000, 2, seed=7)
    names = ["auc", "accuracy", "brier"]
    ci_small = bootstrap_ci(*small, names, n_bootstrap=400, seed=0)
    ci_large = bootstrap_ci(*large, names, n_bootstrap=400, seed=0)
    for name in names:
        width_small = ci_small[name][1] - ci_small[name][0]
        width_large = ci_large[name][1] - ci_large[name][0]
        assert width_large < 0.5 * width_small, name  # ~ 1/sqrt(20) expected


def test_same_seed_same_intervals_other_seed_other_intervals(random_3class) -> None:
    names = ["auc", "f1", "ece"]
    first = bootstrap_ci(*random_3class, names, n_bootstrap=200, seed=11)
    again = bootstrap_ci(*random_3class, names, n_bootstrap=200, seed=11)
    other = bootstrap_ci(*random_3class, names, n_bootstrap=200, seed=12)
    assert first == again
    assert first != other


def test_resamples_do_not_depend_on_the_metrics_asked_for(random_binary) -> None:
    alone = bootstrap_samples(*random_binary, ["auc"], n_bootstrap=50, seed=1)
    together = bootstrap_samples(*random_binary, ["f1", "auc"], n_bootstrap=50, seed=1)
    np.testing.assert_array_equal(alone["auc"], together["auc"])


def test_wider_level_gives_wider_interval(random_binary) -> None:
    narrow = bootstrap_ci(*random_binary, ["auc"], n_bootstrap=300, level=0.5, seed=0)["auc"]
    wide = bootstrap_ci(*random_binary, ["auc"], n_bootstrap=300, level=0.99, seed=0)["auc"]
    assert wide[0] < narrow[0] and narrow[1] < wide[1]


def test_zero_resamples_and_bad_arguments(random_binary) -> None:
    low, high = bootstrap_ci(*random_binary, ["auc"], n_bootstrap=0)["auc"]
    assert np.isnan(low) and np.isnan(high)
    with pytest.raises(ConfigError, match="ci_level"):
        bootstrap_ci(*random_binary, ["auc"], level=95)
    with pytest.raises(UnknownNameError, match="unknown metric 'dice'"):
        bootstrap_ci(*random_binary, ["dice"])
