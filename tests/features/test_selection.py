"""Selectors on real handcrafted features with noise columns appended."""

from __future__ import annotations

import numpy as np
import pytest
from sklearn.feature_selection import RFE, RFECV, SelectFromModel, SelectKBest
from sklearn.model_selection import GridSearchCV, StratifiedKFold

from medlens.errors import ConfigError, UnknownNameError
from medlens.features import SELECTORS, make_feature_pipeline, make_selector

N_NOISE = 20


@pytest.fixture(scope="module")
def with_noise(pneumonia_sample, handcrafted_matrix) -> tuple[np.ndarray, np.ndarray, int]:
    """Real features (standardised) followed by N_NOISE columns of pure noise."""
    features, _ = handcrafted_matrix
    x = (features - features.mean(0)) / features.std(0)
    noise = np.random.default_rng(0).normal(size=(len(x), N_NOISE))
    return np.hstack([x, noise]), pneumonia_sample.labels, x.shape[1]


@pytest.mark.parametrize(
    ("name", "params", "kind"),
    [
        ("anova", {"k": 10}, SelectKBest),
        ("mutual_info", {"k": 10}, SelectKBest),
        ("rfe", {"k": 10, "step": 2}, RFE),
        ("l1", {"k": 10, "C": 0.5}, SelectFromModel),
    ],
)
def test_selectors_keep_k_features_and_prefer_real_ones(with_noise, name, params, kind) -> None:
    x, y, n_real = with_noise
    selector = make_selector(name, seed=0, **params)
    assert isinstance(selector, kind)
    kept = np.flatnonzero(selector.fit(x, y).get_support())
    assert len(kept) == 10
    assert np.sum(kept < n_real) >= 8, f"{name} kept noise columns {kept[kept >= n_real]}"


def test_l1_without_k_keeps_the_nonzero_coefficients(with_noise) -> None:
    x, y, _ = with_noise
    sparse = make_selector("l1", C=0.05).fit(x, y)
    dense = make_selector("l1", C=10.0).fit(x, y)
    coef = sparse.estimator_.coef_.ravel()
    np.testing.assert_array_equal(sparse.get_support(), np.abs(coef) > 1e-5)
    assert 0 < sparse.get_support().sum() < dense.get_support().sum()


def test_variance_threshold_drops_constant_columns(with_noise) -> None:
    x, y, _ = with_noise
    x = np.hstack([x, np.ones((len(x), 2))])
    kept = make_selector("variance_threshold").fit(x, y).get_support()
    np.testing.assert_array_equal(kept, [True] * (x.shape[1] - 2) + [False, False])


def test_rfecv_chooses_a_number_of_features(with_noise) -> None:
    x, y, _ = with_noise
    selector = make_selector("rfecv", min_features=3, step=5, cv=3)
    assert isinstance(selector, RFECV)
    selector.fit(x, y)
    assert 3 <= selector.n_features_ <= x.shape[1]
    assert selector.get_support().sum() == selector.n_features_


def test_selector_k_is_tuned_in_a_grid_search(with_noise) -> None:
    x, y, _ = with_noise
    pipe = make_feature_pipeline({"name": "anova", "k": 5}, "logistic_regression")
    folds = StratifiedKFold(3, shuffle=True, random_state=0)
    grid = GridSearchCV(pipe, {"select__k": [2, 8]}, cv=folds, scoring="roc_auc").fit(x, y)
    assert grid.best_params_["select__k"] in (2, 8)
    assert (
        grid.best_estimator_.named_steps["select"].get_support().sum()
        == grid.best_params_["select__k"]
    )


def test_unknown_selector_and_parameter() -> None:
    assert SELECTORS.names() == sorted(
        ["anova", "l1", "mutual_info", "rfe", "rfecv", "variance_threshold"]
    )
    with pytest.raises(UnknownNameError, match="lasso"):
        make_selector("lasso")
    with pytest.raises(ConfigError, match="anova.*n_features"):
        make_selector("anova", n_features=3)
