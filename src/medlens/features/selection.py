"""Feature selection: scikit-learn selectors by name, ready for ``Pipeline``/``GridSearchCV``.

Nothing is re-written: each name returns a configured scikit-learn object.

========================  =============================================================
name                      scikit-learn object (parameter names to tune in a grid)
========================  =============================================================
``variance_threshold``    ``VarianceThreshold(threshold)``
``anova``                 ``SelectKBest(f_classif, k)``
``mutual_info``           ``SelectKBest(mutual_info_classif, k)`` (seeded)
``rfe``                   ``RFE(LinearSVC(C), n_features_to_select=k, step)``
``rfecv``                 ``RFECV(LinearSVC(C), step, min_features_to_select, cv, scoring)``
``l1``                    ``SelectFromModel(LogisticRegression(l1_ratio=1, C), max_features=k)``
========================  =============================================================
"""

from __future__ import annotations

from collections.abc import Callable
from functools import partial
from typing import Any

import numpy as np
from sklearn.base import BaseEstimator
from sklearn.feature_selection import (
    RFE,
    RFECV,
    SelectFromModel,
    SelectKBest,
    VarianceThreshold,
    f_classif,
    mutual_info_classif,
)
from sklearn.linear_model import LogisticRegression
from sklearn.model_selection import StratifiedKFold
from sklearn.svm import LinearSVC

from medlens.features.named import build_named
from medlens.registry import Registry

SELECTORS: Registry[Callable[..., BaseEstimator]] = Registry("feature selector")


@SELECTORS.register("variance_threshold")
def variance_threshold(threshold: float = 0.0) -> VarianceThreshold:
    """Drop features whose training variance is at most ``threshold`` (constant ones by default)."""
    return VarianceThreshold(threshold=threshold)


@SELECTORS.register("anova")
def anova(k: int | str = 10) -> SelectKBest:
    """The ``k`` features with the largest ANOVA F statistic between classes."""
    return SelectKBest(f_classif, k=k)


@SELECTORS.register("mutual_info")
def mutual_info(k: int | str = 10, n_neighbors: int = 3, seed: int = 0) -> SelectKBest:
    """The ``k`` features with the largest estimated mutual information with the label."""
    score = partial(mutual_info_classif, n_neighbors=n_neighbors, random_state=seed)
    return SelectKBest(score, k=k)


def _linear_svm(C: float, seed: int) -> LinearSVC:
    return LinearSVC(C=C, max_iter=20000, random_state=seed)


@SELECTORS.register("rfe")
def rfe(k: int = 10, step: int | float = 0.1, C: float = 1.0, seed: int = 0) -> RFE:
    """Recursive feature elimination with a linear SVM down to ``k`` features.

    ``step``: features dropped per round (an int), or that fraction of the starting number.
    """
    return RFE(_linear_svm(C, seed), n_features_to_select=k, step=step)


@SELECTORS.register("rfecv")
def rfecv(
    min_features: int = 1,
    step: int | float = 0.1,
    C: float = 1.0,
    cv: int = 5,
    scoring: str = "roc_auc",
    seed: int = 0,
) -> RFECV:
    """Recursive feature elimination with a linear SVM, the number of features chosen by a
    seeded stratified ``cv``-fold cross-validation of ``scoring`` (``n_features_`` after fit)."""
    folds = StratifiedKFold(n_splits=cv, shuffle=True, random_state=seed)
    return RFECV(
        _linear_svm(C, seed),
        step=step,
        min_features_to_select=min_features,
        cv=folds,
        scoring=scoring,
        n_jobs=1,
    )


@SELECTORS.register("l1")
def l1(C: float = 1.0, k: int | None = None, seed: int = 0) -> SelectFromModel:
    """Features with a nonzero coefficient in an L1-penalised logistic regression (smaller
    ``C``: fewer features); with ``k``, the ``k`` largest absolute coefficients."""
    model = LogisticRegression(
        l1_ratio=1.0, C=C, solver="liblinear", max_iter=5000, random_state=seed
    )
    if k is None:
        return SelectFromModel(model, threshold=1e-5)
    return SelectFromModel(model, threshold=-np.inf, max_features=k)


def make_selector(name: str, seed: int = 0, **params: Any) -> BaseEstimator:
    """The scikit-learn selector registered as ``name`` (see the module table).

    Args:
        name: ``variance_threshold``, ``anova``, ``mutual_info``, ``rfe``, ``rfecv``, ``l1``.
        seed: seeds the randomised ones (mutual information, SVMs, CV folds).
        **params: the builder's parameters (``k``, ``C``, ``step``...).

    Raises:
        UnknownNameError: an unknown name.
        ConfigError: a parameter the selector does not take.

    Example:
        >>> make_selector("anova", k=20).fit(X, y).get_support().sum()
        20
    """
    return build_named(SELECTORS, name, params, "features.selector", seed=seed)
