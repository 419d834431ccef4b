"""The cases of a classification run (deep or classical): the source opened, bad files
checked, the splits drawn; and the ``data_summary.json`` that records them."""

from __future__ import annotations

from dataclasses import dataclass
from typing import Any

from medlens.config import RunConfig
from medlens.data.case import Case, CaseSet
from medlens.errors import InputError

SPLITS = ("train", "val", "test")


@dataclass
class PreparedData:
    case_set: CaseSet
    splits: dict[str, list[Case]]
    skipped: list[dict[str, str]]


def prepare_data(config: RunConfig) -> PreparedData:
    """Open the source, drop (and list) bad files when ``skip_bad``, and split the cases."""
    from medlens.data.sources import check_cases, open_source
    from medlens.data.splits import subsample_train, with_kfold_split

    case_set = open_source(config.data)
    cases = list(case_set.cases)
    skipped: list[dict[str, str]] = []
    if config.data.format != "medmnist":
        # Read every file once before training, so a bad file stops the run now (or, with
        # skip_bad, is listed) rather than in the middle of epoch 7. MedMNIST arrays are
        # validated when the .npz is opened.
        good, bad = check_cases(case_set, fail_fast=not config.data.skip_bad)
        cases = list(good)
        skipped = [{"file": c.source or c.case_id, "reason": reason} for c, reason in bad]
    if config.data.folds is not None:
        cases = with_kfold_split(
            cases, config.data.folds, config.data.fold, config.data.val_fraction, seed=0
        )
    splits = {name: [c for c in cases if c.split == name] for name in SPLITS}
    for name in SPLITS:
        if not splits[name]:
            raise InputError(config.data.path, f"the {name} split is empty")
    unlabelled = [c for c in cases if c.label is None]
    if unlabelled:
        raise InputError(unlabelled[0].source or config.data.path, "case has no label")
    if config.data.train_fraction_used < 1.0:
        splits["train"] = subsample_train(
            splits["train"], config.data.train_fraction_used, config.seed
        )
    return PreparedData(case_set=case_set, splits=splits, skipped=skipped)


def data_summary(config: RunConfig, data: PreparedData, class_names: list[str]) -> dict[str, Any]:
    """``data_summary.json``: cases and class counts per split, the source, the skipped files."""
    splits = {
        name: {
            "n": len(cases),
            "class_counts": {
                cn: sum(1 for c in cases if c.label == k) for k, cn in enumerate(class_names)
            },
        }
        for name, cases in data.splits.items()
    }
    return {"splits": splits, "source": str(config.data.path), "skipped_files": data.skipped}
