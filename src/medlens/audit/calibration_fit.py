"""Logistic recalibration: the calibration slope and intercept of binary probabilities.

Following Van Calster et al. (2016, "A calibration hierarchy for risk models"):
- calibration slope b: logistic regression ``logit P(y=1) = a + b * logit(p)``; 1 is ideal,
  below 1 means predictions too extreme (over-fitting), above 1 too modest;
- calibration intercept a (calibration-in-the-large): the same model with the slope fixed at
  1, ``logit P(y=1) = a + logit(p)``; 0 is ideal, negative means risks over-estimated.

Both are fitted by maximum likelihood. They are reported only when each class has at least
``MIN_CASES_PER_CLASS`` cases and the fit converges to a finite slope; otherwise ``nan``
(a small subgroup separates perfectly and the slope runs to infinity).
"""

from __future__ import annotations

import numpy as np
from numpy.typing import ArrayLike
from scipy.optimize import brentq, minimize
from scipy.special import expit, logit

#: Fewer cases than this in either class gives no slope or intercept.
MIN_CASES_PER_CLASS = 10

#: Probabilities are clipped to [EPS, 1 - EPS] before the logit, so 0 and 1 stay finite.
EPS = 1e-6

#: A fitted slope beyond this magnitude means (quasi-)separation, not a calibration estimate.
MAX_SLOPE = 50.0


def calibration_slope_intercept(y_true: ArrayLike, p_pos: ArrayLike) -> tuple[float, float]:
    """Calibration slope and intercept (see the module docstring) of binary predictions.

    Args:
        y_true: 0/1 outcomes ``(N,)``.
        p_pos: predicted probabilities of class 1 ``(N,)``.

    Returns:
        ``(slope, intercept)``; ``(nan, nan)`` when either class has fewer than
        ``MIN_CASES_PER_CLASS`` cases; the slope alone is ``nan`` when the scores separate
        the classes or the fit does not give a finite, bounded slope.

    Example:
        >>> rng = np.random.default_rng(0); p = rng.uniform(0.05, 0.95, 20000)
        >>> slope, intercept = calibration_slope_intercept(rng.uniform(size=p.size) < p, p)
        >>> round(slope, 1), round(intercept, 1)
        (1.0, 0.0)
    """
    y = np.asarray(y_true).astype(float)
    lp = logit(np.clip(np.asarray(p_pos, dtype=float), EPS, 1.0 - EPS))
    n_pos = int(y.sum())
    if min(n_pos, len(y) - n_pos) < MIN_CASES_PER_CLASS:
        return float("nan"), float("nan")
    # Intercept with offset logit(p): the score equation sum(y - expit(a + lp)) = 0 is
    # monotone in a, and has a root because both classes are present.
    intercept = brentq(lambda a: float(np.sum(y - expit(a + lp))), -60.0, 60.0)
    positive, negative = lp[y == 1], lp[y == 0]
    if positive.min() >= negative.max() or negative.min() >= positive.max():
        return float("nan"), float(intercept)  # separated classes: the slope MLE is infinite
    slope = _logistic_slope(y, lp)
    if not (np.isfinite(slope) and abs(slope) <= MAX_SLOPE):
        return float("nan"), float(intercept)
    return float(slope), float(intercept)


def _logistic_slope(y: np.ndarray, lp: np.ndarray) -> float:
    """Maximum-likelihood slope of ``logit P(y=1) = a + b * lp`` (exact Newton trust region).

    Two parameters only: scipy's ``trust-exact`` with the analytic gradient and Hessian
    converges in a few steps, where a general-purpose solver iterates for tens of milliseconds.
    """
    design = np.column_stack([np.ones_like(lp), lp])

    def negative_log_likelihood(beta: np.ndarray) -> float:
        eta = design @ beta
        return float(np.sum(np.logaddexp(0.0, eta) - y * eta))

    def gradient(beta: np.ndarray) -> np.ndarray:
        return design.T @ (expit(design @ beta) - y)

    def hessian(beta: np.ndarray) -> np.ndarray:
        p = expit(design @ beta)
        return (design * (p * (1.0 - p))[:, None]).T @ design

    fit = minimize(
        negative_log_likelihood,
        np.array([0.0, 1.0]),
        jac=gradient,
        hess=hessian,
        method="trust-exact",
    )
    return float(fit.x[1]) if fit.success else float("nan")
