"""Fréchet distance and the classifier two-sample test, against independent computations."""

from __future__ import annotations

import warnings

import numpy as np
import pytest
from scipy import linalg

from medlens.errors import InputError
from medlens.metrics.fid import c2st_auc, frechet_distance


def test_one_dimensional_distance_is_the_closed_form() -> None:
    rng = np.random.default_rng(0)
    a, b = rng.normal(1.0, 2.0, (400, 1)), rng.normal(-0.5, 0.5, (300, 1))
    m1, m2 = a.mean(), b.mean()
    s1, s2 = a.std(ddof=1), b.std(ddof=1)
    assert frechet_distance(a, b) == pytest.approx((m1 - m2) ** 2 + (s1 - s2) ** 2, rel=1e-9)


def test_matches_scipy_sqrtm_on_full_rank_features() -> None:
    rng = np.random.default_rng(1)
    mix = rng.normal(size=(6, 6))
    a = rng.normal(size=(500, 6)) @ mix
    b = rng.normal(0.3, 1.5, size=(400, 6))
    ca, cb = np.cov(a, rowvar=False), np.cov(b, rowvar=False)
    diff = a.mean(0) - b.mean(0)
    expected = diff @ diff + np.trace(ca + cb - 2 * np.real(linalg.sqrtm(ca @ cb)))
    assert frechet_distance(a, b) == pytest.approx(expected, rel=1e-8)
    assert frechet_distance(a, b) == pytest.approx(frechet_distance(b, a), rel=1e-8)


def test_identical_sets_are_at_distance_zero() -> None:
    a = np.random.default_rng(2).normal(size=(200, 5))
    assert frechet_distance(a, a) == pytest.approx(0.0, abs=1e-9)


def test_singular_covariances_give_a_finite_distance_without_warning() -> None:
    rng = np.random.default_rng(3)
    a, b = rng.normal(size=(10, 20)), rng.normal(size=(12, 20))
    a[:, :5] = 0.0  # dead features, as a ReLU network gives
    with warnings.catch_warnings():
        warnings.simplefilter("error")
        value = frechet_distance(a, b)
    assert np.isfinite(value) and value > 0


@pytest.mark.parametrize(
    ("a", "b", "match"),
    [
        (np.zeros(10), np.zeros((10, 1)), r"\(N, D\)"),
        (np.zeros((10, 2)), np.zeros((10, 3)), "features per row"),
        (np.zeros((1, 2)), np.zeros((10, 2)), "at least 2"),
        (np.full((10, 2), np.nan), np.zeros((10, 2)), "NaN"),
    ],
)
def test_bad_features_are_input_errors(a: np.ndarray, b: np.ndarray, match: str) -> None:
    with pytest.raises(InputError, match=match):
        frechet_distance(a, b)


def test_c2st_is_chance_for_one_distribution_and_one_for_separated_ones() -> None:
    rng = np.random.default_rng(4)
    a, b = rng.normal(size=(300, 8)), rng.normal(size=(300, 8))
    assert 0.4 < c2st_auc(a, b, seed=0) < 0.6
    assert c2st_auc(a, b + 3.0, seed=0) > 0.99


def test_c2st_needs_a_row_per_fold() -> None:
    with pytest.raises(InputError, match="folds"):
        c2st_auc(np.zeros((3, 2)), np.ones((10, 2)), folds=5)
