"""Patient-aware, stratified splitting when a source has no official split.

No patient ever appears in two splits: cases are grouped by ``Case.patient_id`` and whole
groups are assigned, with scikit-learn's ``StratifiedGroupKFold`` keeping the class
proportions of every split close to those of the whole set.
"""

from __future__ import annotations

import warnings
from collections.abc import Sequence
from dataclasses import replace

import numpy as np
from sklearn.model_selection import StratifiedGroupKFold

from medlens.data.case import Case
from medlens.errors import ConfigError

_MAX_FOLDS = 20  # split fractions are honoured to 1/20 = 5 %


def _groups_and_labels(cases: Sequence[Case]) -> tuple[np.ndarray, np.ndarray]:
    groups = np.array([c.patient_id or c.case_id for c in cases])
    labels = np.array([-1 if c.label is None else int(c.label) for c in cases])
    return groups, labels


def _fold_limit(cases: Sequence[Case]) -> tuple[int, int]:
    """``(patients, cases of the largest class)``: ``StratifiedGroupKFold`` cannot make more
    folds than either."""
    groups, labels = _groups_and_labels(cases)
    largest_class = int(np.unique(labels, return_counts=True)[1].max()) if len(labels) else 0
    return len(set(groups.tolist())), largest_class


def _fold_of_each_case(cases: Sequence[Case], n_folds: int, seed: int) -> np.ndarray:
    groups, labels = _groups_and_labels(cases)
    folds = np.empty(len(cases), dtype=np.int64)
    splitter = StratifiedGroupKFold(n_splits=n_folds, shuffle=True, random_state=seed)
    with warnings.catch_warnings():
        # a class rarer than n_folds cannot reach every fold; that is expected, not news
        warnings.filterwarnings("ignore", message="The least populated class", category=UserWarning)
        for fold, (_, held_out) in enumerate(splitter.split(np.zeros(len(cases)), labels, groups)):
            folds[held_out] = fold
    return folds


def assign_splits(
    cases: Sequence[Case], val_fraction: float = 0.15, test_fraction: float = 0.15, seed: int = 0
) -> list[Case]:
    """Copies of ``cases`` with ``split`` set to ``train``/``val``/``test``.

    The cases are dealt into up to 20 patient-disjoint stratified folds (fewer when there are
    fewer patients, or fewer cases in the largest class); the first
    ``round(test_fraction * folds)`` folds form the test split, the next
    ``round(val_fraction * folds)`` the validation split (each at least one fold).
    Deterministic for a given ``seed`` and case order.

    Raises:
        ConfigError: fewer than 3 patients (or 3 cases in the largest class), or fractions
            that leave no training fold.
    """
    n_patients, largest_class = _fold_limit(cases)
    n_folds = min(_MAX_FOLDS, n_patients, largest_class)
    if n_folds < 3:
        raise ConfigError(
            "data.split",
            "a random train/val/test split needs at least 3 patients and 3 cases in the largest "
            f"class; got {n_patients} patients",
        )
    n_test = max(1, round(test_fraction * n_folds))
    n_val = max(1, round(val_fraction * n_folds))
    if n_test + n_val >= n_folds:
        raise ConfigError(
            "data.val_fraction",
            f"val {val_fraction} + test {test_fraction} leave no training data "
            f"among {n_patients} patients",
        )
    folds = _fold_of_each_case(cases, n_folds, seed)
    names = np.where(folds < n_test, "test", np.where(folds < n_test + n_val, "val", "train"))
    return [replace(case, split=str(name)) for case, name in zip(cases, names, strict=True)]


def carve_validation(cases: Sequence[Case], val_fraction: float, seed: int = 0) -> list[Case]:
    """Copies of ``cases`` where a patient-disjoint, stratified ``val_fraction`` of the
    ``train`` cases becomes ``val`` (for official splits that have no validation set).

    Raises:
        ConfigError: fewer than 2 training patients (or cases in the largest class).
    """
    train_idx = [i for i, c in enumerate(cases) if c.split == "train"]
    train = [cases[i] for i in train_idx]
    n_patients, largest_class = _fold_limit(train)
    n_folds = min(_MAX_FOLDS, n_patients, largest_class)
    if n_folds < 2:
        raise ConfigError(
            "data.split", f"cannot carve a validation split from {n_patients} training patient(s)"
        )
    n_val = min(max(1, round(val_fraction * n_folds)), n_folds - 1)
    folds = _fold_of_each_case(train, n_folds, seed)
    out = list(cases)
    for i, fold in zip(train_idx, folds, strict=True):
        if fold < n_val:
            out[i] = replace(cases[i], split="val")
    return out


def kfold(
    cases: Sequence[Case], n_folds: int = 5, seed: int = 0
) -> list[tuple[list[int], list[int]]]:
    """Patient-aware stratified k-fold: ``(train indices, validation indices)`` into ``cases``.

    Raises:
        ConfigError: more folds than patients or than cases of the largest class, or fewer
            than 2 folds.
    """
    n_patients, largest_class = _fold_limit(cases)
    if not 2 <= n_folds <= min(n_patients, largest_class):
        raise ConfigError(
            "n_folds",
            f"{n_folds} folds need 2 <= folds <= patients ({n_patients}) and <= cases of the "
            f"largest class ({largest_class})",
        )
    folds = _fold_of_each_case(cases, n_folds, seed)
    return [
        ([int(i) for i in np.flatnonzero(folds != k)], [int(i) for i in np.flatnonzero(folds == k)])
        for k in range(n_folds)
    ]


def subsample_train(cases: Sequence[Case], fraction: float, seed: int = 0) -> list[Case]:
    """A stratified random ``fraction`` of ``cases`` (each class keeps at least one case),
    in their original order. ``fraction`` 1.0 returns every case.

    Raises:
        ConfigError: ``fraction`` outside (0, 1].
    """
    if not 0 < fraction <= 1:
        raise ConfigError("data.train_fraction_used", f"must be in (0, 1], got {fraction}")
    if fraction == 1:
        return list(cases)
    rng = np.random.default_rng(seed)
    _, labels = _groups_and_labels(cases)
    keep: list[int] = []
    for label in np.unique(labels):
        members = np.flatnonzero(labels == label)
        n_keep = max(1, round(fraction * len(members)))
        keep.extend(int(i) for i in rng.permutation(members)[:n_keep])
    return [cases[i] for i in sorted(keep)]


def with_kfold_split(
    cases: Sequence[Case], n_folds: int, fold: int, val_fraction: float = 0.15, seed: int = 0
) -> list[Case]:
    """Copies of ``cases`` split for fold ``fold`` of a patient-aware stratified k-fold:
    that fold is ``test``, a stratified ``val_fraction`` of the other patients is ``val``,
    the rest ``train``. Any split the source had is replaced.

    Raises:
        ConfigError: when ``fold`` is not in ``0 .. n_folds - 1``.
    """
    if not 0 <= fold < n_folds:
        raise ConfigError("data.fold", f"must be in 0..{n_folds - 1}, got {fold}")
    _, test_idx = kfold(cases, n_folds, seed)[fold]
    test = set(test_idx)
    out = [replace(c, split="test" if i in test else "train") for i, c in enumerate(cases)]
    return carve_validation(out, val_fraction, seed)
