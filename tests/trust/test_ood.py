"""The Mahalanobis out-of-distribution score: a shifted cloud separated, the false-alarm rate
held on validation, the arrays read back."""

from __future__ import annotations

import numpy as np
import pytest
from sklearn.metrics import roc_auc_score

from medlens.errors import ConfigError, InputError
from medlens.trust.ood import MahalanobisDetector, fit_mahalanobis


def _clouds(rng: np.random.Generator, n: int, shift: float = 0.0) -> tuple[np.ndarray, np.ndarray]:
    labels = rng.integers(0, 2, n)
    mixing = np.random.default_rng(7).normal(size=(8, 8))
    x = rng.normal(size=(n, 8)) @ mixing + 3.0 * labels[:, None] + shift
    return x, labels


def test_a_shifted_cloud_is_flagged_and_validation_false_alarms_are_the_target(rng) -> None:
    train, y = _clouds(rng, 2000)
    val, _ = _clouds(rng, 1000)
    detector = fit_mahalanobis(train, y, val, false_alarm_rate=0.05, max_dims=6)
    _, flagged = detector.flags(val)
    assert flagged.mean() <= 0.05 and flagged.mean() > 0.03
    test, _ = _clouds(rng, 500)
    shifted, _ = _clouds(rng, 500, shift=12.0)
    scores = np.r_[detector.score(test), detector.score(shifted)]
    assert roc_auc_score(np.r_[np.zeros(500), np.ones(500)], scores) > 0.95
    assert detector.components.shape == (6, 8)


def test_the_arrays_read_back_to_the_same_scores(rng, tmp_path) -> None:
    train, y = _clouds(rng, 300)
    detector = fit_mahalanobis(train, y, train[:50], standardize=True)
    np.savez(tmp_path / "ood.npz", **detector.arrays())
    with np.load(tmp_path / "ood.npz") as arrays:
        again = MahalanobisDetector.from_arrays(arrays)
    np.testing.assert_allclose(again.score(train[:20]), detector.score(train[:20]))
    assert again.threshold == detector.threshold


def test_bad_input_is_one_clear_error(rng) -> None:
    train, y = _clouds(rng, 100)
    with pytest.raises(ConfigError, match="false_alarm_rate"):
        fit_mahalanobis(train, y, train, false_alarm_rate=1.5)
    detector = fit_mahalanobis(train, y, train)
    with pytest.raises(InputError, match=r"\(N, 8\)"):
        detector.score(train[:, :5])
    with pytest.raises(InputError, match="malformed"):
        MahalanobisDetector.from_arrays({"center": np.zeros(3)})
