"""Prediction sets for the metric tests: random ones and real-ish ones from fitted models."""

from __future__ import annotations

from pathlib import Path
from typing import NamedTuple

import numpy as np
import pytest


class Predictions(NamedTuple):
    y_true: np.ndarray
    y_prob: np.ndarray
    y_pred: np.ndarray


def _pooled(images: np.ndarray) -> np.ndarray:
    """28x28 images -> 7x7 mean-pooled features in [0, 1]."""
    return (
        images.reshape(len(images), 7, 4, 7, 4).mean(axis=(2, 4)).reshape(len(images), -1) / 255.0
    )


@pytest.fixture(scope="session")
def pneumonia_predictions(pneumonia_npz: Path) -> Predictions:
    """A logistic regression on pooled PneumoniaMNIST pixels, on the 624 test cases, with the
    Youden threshold chosen on the validation cases."""
    from sklearn.linear_model import LogisticRegression

    from medlens.metrics import choose_threshold

    data = np.load(pneumonia_npz)
    model = LogisticRegression(max_iter=500).fit(
        _pooled(data["train_images"]), data["train_labels"][:, 0]
    )
    p_val = model.predict_proba(_pooled(data["val_images"]))[:, 1]
    threshold = choose_threshold(data["val_labels"][:, 0], p_val, "youden")
    prob = model.predict_proba(_pooled(data["test_images"]))
    return Predictions(
        data["test_labels"][:, 0].astype(int), prob, (prob[:, 1] >= threshold).astype(int)
    )


@pytest.fixture(scope="session")
def digits_predictions() -> Predictions:
    """A 3-class problem (digits 3, 5, 8 with pixel noise) and a regularised logistic regression."""
    from sklearn.datasets import load_digits
    from sklearn.linear_model import LogisticRegression

    x, y = load_digits(return_X_y=True)
    keep = np.isin(y, [3, 5, 8])
    x, y = x[keep], np.searchsorted([3, 5, 8], y[keep])
    rng = np.random.default_rng(0)
    x = x + rng.normal(0.0, 6.0, x.shape)
    order = rng.permutation(len(y))
    train, test = order[:250], order[250:]
    prob = LogisticRegression(max_iter=500, C=0.01).fit(x[train], y[train]).predict_proba(x[test])
    return Predictions(y[test], prob, prob.argmax(axis=1))


def random_predictions(n: int, k: int, seed: int, separation: float = 1.0) -> Predictions:
    """Labels with class-dependent Dirichlet probabilities (``separation`` > 0: informative)."""
    rng = np.random.default_rng(seed)
    y = rng.integers(0, k, n)
    alpha = np.ones((n, k))
    alpha[np.arange(n), y] += separation
    prob = np.vstack([rng.dirichlet(a) for a in alpha])
    pred = (prob[:, 1] >= 0.5).astype(int) if k == 2 else prob.argmax(axis=1)
    return Predictions(y, prob, pred)


@pytest.fixture(scope="session")
def random_binary() -> Predictions:
    return random_predictions(300, 2, seed=1)


@pytest.fixture(scope="session")
def random_3class() -> Predictions:
    return random_predictions(300, 3, seed=2)


@pytest.fixture(
    params=["random_binary", "random_3class", "pneumonia_predictions", "digits_predictions"]
)
def predictions(request: pytest.FixtureRequest) -> Predictions:
    """Each prediction set in turn: random and real-ish, binary and 3-class."""
    return request.getfixturevalue(request.param)


@pytest.fixture(scope="session")
def make_predictions():
    """The random prediction-set factory ``(n, k, seed, separation) -> Predictions``."""
    return random_predictions
