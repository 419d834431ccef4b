"""Calibration slope and intercept by logistic recalibration."""

from __future__ import annotations

import numpy as np
import pytest
from scipy.special import expit, logit
from sklearn.linear_model import LogisticRegression

from medlens.audit.calibration_fit import calibration_slope_intercept


def test_calibrated_probabilities_give_slope_one_intercept_zero(rng) -> None:
    p = rng.uniform(0.02, 0.98, 40_000)
    slope, intercept = calibration_slope_intercept(rng.uniform(size=p.size) < p, p)
    assert slope == pytest.approx(1.0, abs=0.05)
    assert intercept == pytest.approx(0.0, abs=0.05)


def test_known_miscalibration_is_recovered(rng) -> None:
    """Outcomes drawn from logit P = -0.5 + 0.5 logit(p): predictions too extreme (slope 0.5)."""
    p = rng.uniform(0.02, 0.98, 40_000)
    y = rng.uniform(size=p.size) < expit(-0.5 + 0.5 * logit(p))
    slope, intercept = calibration_slope_intercept(y, p)
    assert slope == pytest.approx(0.5, abs=0.05)
    # The slope is the maximum-likelihood logistic coefficient (scikit-learn, unpenalised).
    reference = LogisticRegression(C=np.inf, tol=1e-10, max_iter=1000).fit(logit(p)[:, None], y)
    assert slope == pytest.approx(reference.coef_[0, 0], abs=1e-4)
    # With the slope fixed at 1, the intercept is the mean log-odds shift, fitted directly.
    from scipy.optimize import minimize_scalar

    def loss(a: float) -> float:
        q = expit(a + logit(p))
        return -float(np.mean(y * np.log(q) + (1 - y) * np.log(1 - q)))

    assert intercept == pytest.approx(minimize_scalar(loss).x, abs=1e-4)
    assert intercept < 0  # risks over-estimated on average


def test_too_few_cases_or_separated_classes_give_no_slope() -> None:
    y = np.array([0] * 50 + [1] * 5)
    slope, intercept = calibration_slope_intercept(y, np.linspace(0.1, 0.9, 55))
    assert np.isnan(slope) and np.isnan(intercept)
    y = np.array([0] * 20 + [1] * 20)
    p = np.r_[np.full(20, 0.2), np.full(20, 0.8)]
    slope, intercept = calibration_slope_intercept(y, p)
    assert np.isnan(slope)
    assert intercept == pytest.approx(0.0, abs=1e-6)  # mean log-odds already right
