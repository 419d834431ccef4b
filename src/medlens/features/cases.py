"""The cases a feature extraction reads: a data source with the same splits a run sees."""

from __future__ import annotations

from collections.abc import Callable, Sequence

import numpy as np
import torch
from torch.utils.data import Dataset

from medlens.config import DataConfig
from medlens.data.case import Case, CaseSet
from medlens.data.image import Image
from medlens.errors import InputError


def open_cases(
    data: DataConfig, splits: Sequence[str] | None = None
) -> tuple[CaseSet, list[Case], list[dict[str, str]]]:
    """Open ``data`` and list its cases with the split each would have in a run.

    Every case is kept (a run's ``train_fraction_used`` subsample is not applied); k-fold
    configs get the same fold assignment as training (``with_kfold_split`` with seed 0).

    Args:
        data: the data section of a run config.
        splits: keep only the cases of these splits; None keeps all.

    Returns:
        ``(case_set, cases, skipped)``; with ``data.skip_bad`` unreadable files are dropped
        and listed in ``skipped`` as ``{"file", "reason"}``, otherwise the first raises.

    Raises:
        InputError: the source's own errors, or no case left in ``splits``.
    """
    from medlens.data.sources import check_cases, open_source
    from medlens.data.splits import with_kfold_split

    case_set = open_source(data)
    cases = list(case_set.cases)
    if data.folds is not None:
        cases = with_kfold_split(cases, data.folds, data.fold, data.val_fraction, seed=0)
    if splits:
        cases = [c for c in cases if c.split in set(splits)]
    if not cases:
        raise InputError(data.path, f"no cases in split(s) {', '.join(splits or ())}")
    skipped: list[dict[str, str]] = []
    if data.skip_bad:
        cases, bad = check_cases(case_set, cases)
        skipped = [{"file": c.source or c.case_id, "reason": reason} for c, reason in bad]
        if not cases:
            raise InputError(data.path, "every file is unreadable")
    return case_set, cases, skipped


def case_columns(cases: Sequence[Case]) -> tuple[list[str], np.ndarray, list[str]]:
    """``(case_ids, labels with -1 for unlabelled, splits with "" for none)``."""
    labels = np.array([-1 if c.label is None else int(c.label) for c in cases], dtype=np.int64)
    return [c.case_id for c in cases], labels, [c.split or "" for c in cases]


class PreparedCases(Dataset):
    """Cases as float32 tensors ``(C, *spatial)`` after a deterministic preparation.

    Args:
        case_set: loads the pixels.
        cases: the cases, in order.
        prepare: ``Image -> array`` (the preprocessing; raises ``InputError`` on bad input).
    """

    def __init__(
        self, case_set: CaseSet, cases: Sequence[Case], prepare: Callable[[Image], np.ndarray]
    ) -> None:
        self.case_set = case_set
        self.cases = list(cases)
        self.prepare = prepare

    def __len__(self) -> int:
        return len(self.cases)

    def __getitem__(self, index: int) -> torch.Tensor:
        array = self.prepare(self.case_set.load(self.cases[index]))
        return torch.from_numpy(np.ascontiguousarray(array, dtype=np.float32))
