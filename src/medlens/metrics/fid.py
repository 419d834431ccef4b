"""Sample quality of a generative model, measured on feature vectors of two image sets.

``frechet_distance`` is the Fréchet distance between Gaussians fitted to the two sets of
features (FID, Heusel et al. 2017, when the features are Inception's); ``c2st_auc`` is a
classifier two-sample test (Lopez-Paz & Oquab 2017): the cross-validated ROC AUC of a
logistic regression telling the sets apart, 0.5 when they are indistinguishable and 1.0 when
they are separable. Both take features, not images: which network gives the features is the
caller's choice (see ``medlens.train.gan.quality``).
"""

from __future__ import annotations

import numpy as np
from numpy.typing import ArrayLike
from scipy import linalg

from medlens.errors import InputError


def _features(values: ArrayLike, name: str) -> np.ndarray:
    array = np.asarray(values, dtype=np.float64)
    if array.ndim != 2:
        raise InputError(f"<{name}>", f"features must be (N, D), got shape {array.shape}")
    if len(array) < 2:
        raise InputError(f"<{name}>", f"needs at least 2 feature vectors, got {len(array)}")
    if not np.isfinite(array).all():
        raise InputError(f"<{name}>", "features hold NaN or infinite values")
    return array


def _pair(a: ArrayLike, b: ArrayLike) -> tuple[np.ndarray, np.ndarray]:
    x, y = _features(a, "features_a"), _features(b, "features_b")
    if x.shape[1] != y.shape[1]:
        raise InputError("<features_b>", f"has {y.shape[1]} features per row, not {x.shape[1]}")
    return x, y


def frechet_distance(features_a: ArrayLike, features_b: ArrayLike) -> float:
    """``|mu_a - mu_b|^2 + Tr(S_a + S_b - 2 (S_a S_b)^(1/2))`` of the two feature sets.

    Units are those of the features squared; 0 for identical distributions. The value is
    biased upwards for small sets, so compare distances computed on sets of equal size.

    Args:
        features_a: ``(N, D)`` features of the first set (the real images).
        features_b: ``(M, D)`` features of the second set (the synthetic images).

    Raises:
        InputError: arrays that are not 2D, with fewer than 2 rows, different widths, or
            non-finite values.

    Example:
        >>> a = np.random.default_rng(0).normal(size=(500, 4))
        >>> round(frechet_distance(a, a), 6)
        0.0
    """
    x, y = _pair(features_a, features_b)
    mu_diff = x.mean(axis=0) - y.mean(axis=0)
    cov_x = np.atleast_2d(np.cov(x, rowvar=False))
    cov_y = np.atleast_2d(np.cov(y, rowvar=False))
    distance = float(
        mu_diff @ mu_diff
        + np.trace(cov_x)
        + np.trace(cov_y)
        - 2.0 * _trace_sqrt_product(cov_x, cov_y)
    )
    return max(distance, 0.0)


def _trace_sqrt_product(cov_a: np.ndarray, cov_b: np.ndarray) -> float:
    """``Tr((A B)^(1/2))`` for covariance matrices, through the symmetric ``A^(1/2) B A^(1/2)``
    (same eigenvalues as ``A B``), which stays exact for singular covariances (fewer samples
    than features, dead features) where ``scipy.linalg.sqrtm(A @ B)`` warns and drifts."""
    values, vectors = linalg.eigh(cov_a)
    root_a = (vectors * np.sqrt(np.clip(values, 0.0, None))) @ vectors.T
    middle = root_a @ cov_b @ root_a
    return float(np.sqrt(np.clip(linalg.eigvalsh((middle + middle.T) / 2.0), 0.0, None)).sum())


def c2st_auc(features_a: ArrayLike, features_b: ArrayLike, folds: int = 5, seed: int = 0) -> float:
    """Cross-validated ROC AUC of a logistic regression telling set ``b`` from set ``a``.

    Standardised features, an L2-regularised logistic regression, stratified ``folds``-fold
    cross-validation (shuffled with ``seed``); the AUC is computed once on the pooled
    out-of-fold probabilities. About 0.5 means the sets cannot be told apart; values below
    0.5 are chance too.

    Raises:
        InputError: as ``frechet_distance``, or fewer than ``folds`` rows in either set.
    """
    from sklearn.linear_model import LogisticRegression
    from sklearn.metrics import roc_auc_score
    from sklearn.model_selection import StratifiedKFold, cross_val_predict
    from sklearn.pipeline import make_pipeline
    from sklearn.preprocessing import StandardScaler

    x, y = _pair(features_a, features_b)
    if min(len(x), len(y)) < folds:
        raise InputError("<features>", f"needs at least {folds} rows in each set for {folds} folds")
    data = np.concatenate([x, y])
    target = np.concatenate([np.zeros(len(x), dtype=int), np.ones(len(y), dtype=int)])
    model = make_pipeline(StandardScaler(), LogisticRegression(max_iter=2000))
    splitter = StratifiedKFold(n_splits=folds, shuffle=True, random_state=seed)
    prob = cross_val_predict(model, data, target, cv=splitter, method="predict_proba")[:, 1]
    return float(roc_auc_score(target, prob))
