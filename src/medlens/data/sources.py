"""Build the case source a ``DataConfig`` describes, with its train/val/test split."""

from __future__ import annotations

from medlens.config import DataConfig
from medlens.data.case import Case, CaseSet
from medlens.data.folder import ImageFolderSource
from medlens.data.manifest import ManifestSource
from medlens.data.medmnist import MedMNISTSource
from medlens.data.splits import assign_splits, carve_validation
from medlens.errors import InputError


def open_source(cfg: DataConfig, seed: int = 0) -> CaseSet:
    """The ``CaseSet`` of ``cfg.format`` with every case's ``split`` set.

    ``cfg.split == "random"``, or a source without an official split, gets a patient-aware
    stratified split (``assign_splits`` with ``cfg.val_fraction``/``cfg.test_fraction``); an
    official split without a validation set gets one carved from its training patients. The
    split depends only on the data, the fractions and ``seed`` (not on the training seed), so
    ``evaluate`` re-opening the source sees the same test cases.

    Raises:
        InputError: a missing path, a partly labelled split, or the source's own errors.
    """
    if not cfg.path.exists():
        raise InputError(cfg.path, "not found")
    source = _build(cfg)
    splits = {c.split for c in source.cases}
    if cfg.split == "random" or splits == {None}:
        source.cases = assign_splits(source.cases, cfg.val_fraction, cfg.test_fraction, seed)
    elif None in splits:
        unsplit = next(c for c in source.cases if c.split is None)
        raise InputError(unsplit.source or cfg.path, "has no split while other cases have one")
    elif "val" not in splits:
        source.cases = carve_validation(source.cases, cfg.val_fraction, seed)
    return source


def _build(cfg: DataConfig) -> ImageFolderSource | ManifestSource | MedMNISTSource:
    class_names = list(cfg.class_names) if cfg.class_names is not None else None
    if cfg.format == "medmnist":
        return MedMNISTSource(cfg.path, class_names)
    if cfg.format in ("folder", "dicom"):
        return ImageFolderSource(cfg.path, class_names, read_patient_ids=cfg.format == "dicom")
    return ManifestSource(
        cfg.path,
        path_column=cfg.path_column,
        label_column=cfg.label_column,
        patient_column=cfg.patient_column,
        subgroup_columns=cfg.subgroup_columns,
        class_names=class_names,
    )


def check_cases(
    case_set: CaseSet, cases: list[Case] | None = None, fail_fast: bool = False
) -> tuple[list[Case], list[tuple[Case, str]]]:
    """Load every case once; return the good cases and ``(case, reason)`` for the bad ones.

    Used with ``data.skip_bad``: the trainer trains on the good cases and writes the bad ones
    to the run folder. Only ``InputError`` marks a case as bad; other exceptions propagate.

    Args:
        case_set: the source.
        cases: the cases to check (default: all of ``case_set.cases``).
        fail_fast: raise the first ``InputError`` instead of collecting it.
    """
    good: list[Case] = []
    bad: list[tuple[Case, str]] = []
    for case in case_set.cases if cases is None else cases:
        try:
            case_set.load(case)
        except InputError as exc:
            if fail_fast:
                raise
            bad.append((case, exc.reason))
        else:
            good.append(case)
    return good, bad
