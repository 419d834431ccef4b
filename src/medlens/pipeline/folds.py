"""Stratified folds of a pipeline: the outer folds that hold out its test cases, the inner
folds that cross-fit a stage's predictions on the training cases, and the validation carve
that chooses each network's epoch. Every split is seeded and stratified by class."""

from __future__ import annotations

import numpy as np
from sklearn.model_selection import StratifiedKFold, train_test_split


def fold_indices(labels: np.ndarray, folds: int, seed: int) -> list[np.ndarray]:
    """The test indices of each of ``folds`` stratified folds (a partition of the cases).

    Classes smaller than ``folds`` are spread as far as they go (scikit-learn warns; the
    small-class rule of ``open_cells`` keeps them out of pipelines).
    """
    splitter = StratifiedKFold(n_splits=folds, shuffle=True, random_state=seed)
    dummy = np.zeros(len(labels))
    return [test for _, test in splitter.split(dummy, labels)]


def outer_split(
    labels: np.ndarray, folds: int, fold: int, seed: int
) -> tuple[np.ndarray, np.ndarray]:
    """(training indices, test indices) of outer fold ``fold``, both sorted."""
    test = np.sort(fold_indices(labels, folds, seed)[fold])
    train = np.setdiff1d(np.arange(len(labels)), test)
    return train, test


def validation_carve(labels: np.ndarray, fraction: float, seed: int) -> np.ndarray:
    """A boolean mask over ``labels`` marking a stratified ``fraction`` as validation: at least
    one case of every class when each class has two or more (calibration and the threshold
    are fitted on validation), else at least one case, drawn plainly at random."""
    n = len(labels)
    index = np.arange(n)
    counts = np.bincount(labels)
    present = counts[counts > 0]
    size = max(1, round(fraction * n))
    stratify = None
    if present.min() >= 2 and n - len(present) >= len(present):
        size = max(size, len(present))
        stratify = labels
    _, val = train_test_split(index, test_size=size, random_state=seed, stratify=stratify)
    mask = np.zeros(n, dtype=bool)
    mask[val] = True
    return mask
