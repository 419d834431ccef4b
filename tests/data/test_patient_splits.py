"""Splits: no patient in two splits, class proportions kept, same seed -> same split."""

from __future__ import annotations

from collections import Counter, defaultdict
from pathlib import Path

import numpy as np
import pytest

from medlens.data.case import Case
from medlens.data.medmnist import load_medmnist_npz
from medlens.data.splits import assign_splits, carve_validation, kfold, subsample_train
from medlens.errors import ConfigError


@pytest.fixture(scope="module")
def pneumonia_cases(pneumonia_npz: Path) -> list[Case]:
    """Real, imbalanced labels (PneumoniaMNIST val+test, 1148 images) grouped into patients of
    1-4 images each, as in a hospital export with several views per patient."""
    arrays = load_medmnist_npz(pneumonia_npz)
    labels = np.concatenate([arrays.labels["val"], arrays.labels["test"]])
    rng = np.random.default_rng(1)
    cases: list[Case] = []
    patient = 0
    # one patient = up to 4 consecutive images of the same class
    for label in (0, 1):
        members = np.flatnonzero(labels == label)
        sizes = rng.integers(1, 5, size=len(members))
        start = 0
        while start < len(members):
            for index in members[start : start + sizes[start]]:
                cases.append(
                    Case(case_id=f"img{index:04d}", label=int(label), patient_id=f"p{patient}")
                )
            start += sizes[start]
            patient += 1
    return cases


def _patients_by_split(cases: list[Case]) -> dict[str, set[str]]:
    found: dict[str, set[str]] = defaultdict(set)
    for case in cases:
        found[case.split or ""].add(case.patient_id)
    return found


def _positive_rate(cases: list[Case]) -> float:
    return float(np.mean([c.label for c in cases]))


def test_assign_splits_keeps_patients_whole_and_classes_balanced(
    pneumonia_cases: list[Case],
) -> None:
    split = assign_splits(pneumonia_cases, val_fraction=0.15, test_fraction=0.2, seed=3)
    assert [c.case_id for c in split] == [c.case_id for c in pneumonia_cases]  # order kept
    patients = _patients_by_split(split)
    assert set(patients) == {"train", "val", "test"}
    assert not (patients["train"] & patients["val"] or patients["train"] & patients["test"])
    assert not patients["val"] & patients["test"]
    overall = _positive_rate(pneumonia_cases)
    sizes = Counter(c.split for c in split)
    n = len(split)
    assert sizes["test"] / n == pytest.approx(0.20, abs=0.03)
    assert sizes["val"] / n == pytest.approx(0.15, abs=0.03)
    for name in ("train", "val", "test"):
        assert _positive_rate([c for c in split if c.split == name]) == pytest.approx(
            overall, abs=0.03
        )


def test_assign_splits_is_deterministic_by_seed(pneumonia_cases: list[Case]) -> None:
    first = [c.split for c in assign_splits(pneumonia_cases, 0.15, 0.15, seed=0)]
    again = [c.split for c in assign_splits(pneumonia_cases, 0.15, 0.15, seed=0)]
    other = [c.split for c in assign_splits(pneumonia_cases, 0.15, 0.15, seed=1)]
    assert first == again
    assert first != other


def test_assign_splits_needs_patients() -> None:
    two = [Case(case_id=str(i), label=i % 2, patient_id=f"p{i % 2}") for i in range(10)]
    with pytest.raises(ConfigError, match="at least 3 patients"):
        assign_splits(two, 0.2, 0.2)


def test_kfold_every_case_validated_once_without_leakage(pneumonia_cases: list[Case]) -> None:
    folds = kfold(pneumonia_cases, n_folds=5, seed=0)
    assert len(folds) == 5
    validated = np.concatenate([val for _, val in folds])
    assert sorted(validated.tolist()) == list(range(len(pneumonia_cases)))
    overall = _positive_rate(pneumonia_cases)
    for train, val in folds:
        assert sorted(train + val) == list(range(len(pneumonia_cases)))
        train_patients = {pneumonia_cases[i].patient_id for i in train}
        assert not train_patients & {pneumonia_cases[i].patient_id for i in val}
        assert _positive_rate([pneumonia_cases[i] for i in val]) == pytest.approx(overall, abs=0.04)
    assert kfold(pneumonia_cases, 5, seed=0) == folds


def test_carve_validation_takes_patients_from_train_only(pneumonia_cases: list[Case]) -> None:
    official = [
        Case(c.case_id, c.label, "test" if i % 5 == 0 else "train", c.patient_id)
        for i, c in enumerate(pneumonia_cases)
    ]
    carved = carve_validation(official, val_fraction=0.2, seed=0)
    assert [c.split for c in carved if c.split == "test"] == [
        c.split for c in official if c.split == "test"
    ]
    val = [c for c in carved if c.split == "val"]
    train_before = [c for c in official if c.split == "train"]
    assert len(val) / len(train_before) == pytest.approx(0.2, abs=0.03)
    assert not {c.patient_id for c in val} & {c.patient_id for c in carved if c.split == "train"}


def test_subsample_train_is_stratified_and_deterministic(pneumonia_cases: list[Case]) -> None:
    part = subsample_train(pneumonia_cases, 0.25, seed=5)
    assert len(part) == pytest.approx(0.25 * len(pneumonia_cases), abs=2)
    assert _positive_rate(part) == pytest.approx(_positive_rate(pneumonia_cases), abs=0.01)
    assert [c.case_id for c in part] == [
        c.case_id for c in subsample_train(pneumonia_cases, 0.25, seed=5)
    ]
    assert [c.case_id for c in part] != [
        c.case_id for c in subsample_train(pneumonia_cases, 0.25, seed=6)
    ]
    order = {c.case_id: i for i, c in enumerate(pneumonia_cases)}
    assert [order[c.case_id] for c in part] == sorted(order[c.case_id] for c in part)


def test_subsample_keeps_every_class() -> None:
    cases = [Case(str(i), 0 if i else 1) for i in range(50)]  # one case of class 1
    part = subsample_train(cases, 0.1, seed=0)
    assert Counter(c.label for c in part) == {0: 5, 1: 1}
    assert subsample_train(cases, 1.0) == cases


def test_kfold_split_for_training_keeps_patients_together_and_covers_every_case() -> None:
    from medlens.data.case import Case
    from medlens.data.splits import with_kfold_split

    cases = [Case(f"c{i}", label=i % 2, patient_id=f"p{i // 2}") for i in range(60)]
    tested: list[str] = []
    for fold in range(3):
        split = with_kfold_split(cases, 3, fold, val_fraction=0.2)
        by_split = {
            s: {c.patient_id for c in split if c.split == s} for s in ("train", "val", "test")
        }
        assert by_split["train"] and by_split["val"] and by_split["test"]
        assert not (by_split["train"] & by_split["test"]) and not (
            by_split["val"] & by_split["test"]
        )
        assert not (by_split["train"] & by_split["val"])
        tested += [c.case_id for c in split if c.split == "test"]
    assert sorted(tested) == sorted(c.case_id for c in cases)
