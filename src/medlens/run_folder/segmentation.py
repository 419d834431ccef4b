"""Reading (and checking) the run folder that ``medlens train`` writes for ``task: segmentation``.

Required: ``metrics.json`` (per split and class, the summary of each metric over cases).
Optional, reported as "not recorded" when absent: ``config.yaml``, ``labels.json``,
``history.csv``, ``data_summary.json``, ``preprocessing.json``, ``segmentation_metrics.csv``
(one row per case, split and class) and ``masks/`` (the predicted label maps of the test cases).
"""

from __future__ import annotations

from dataclasses import dataclass
from pathlib import Path
from typing import Any

import pandas as pd

from medlens.errors import InputError
from medlens.run_folder import layout
from medlens.run_folder.files import (
    read_config_yaml,
    read_json,
    read_json_object,
    read_labels,
    read_preprocessing,
)
from medlens.run_folder.task_run import TaskRunFiles, read_csv_table
from medlens.tasks import SEGMENTATION

PER_CASE_COLUMNS = ("case_id", "split", "class")
TEXT_COLUMNS = ("case_id", "split", "class")
#: The summary fields every metric entry of metrics.json holds (``summarize``'s output).
SUMMARY_FIELDS = ("mean", "std", "median", "min", "max", "n", "n_finite", "n_nan", "n_inf")
MASK_SUFFIXES = (".png", ".nii.gz")


def _check_metrics(path: Path, metrics: Any) -> None:
    if not isinstance(metrics, dict):
        raise InputError(path, "expected a JSON object")
    if metrics.get("task") != SEGMENTATION.name:
        raise InputError(path, f"task is {metrics.get('task')!r}, not {SEGMENTATION.name!r}")
    names = metrics.get("class_names")
    if not (isinstance(names, list) and len(names) >= 2 and all(isinstance(n, str) for n in names)):
        raise InputError(path, "'class_names' must list the background and at least one class")
    splits = metrics.get("splits")
    if not isinstance(splits, dict) or not splits:
        raise InputError(path, "'splits' must map split names (val, test) to per-class metrics")
    for split, per_class in splits.items():
        if not isinstance(per_class, dict) or not all(
            isinstance(m, dict) and all(isinstance(s, dict) for s in m.values())
            for m in per_class.values()
        ):
            raise InputError(path, f"splits.{split} must map each class to its metric summaries")


def _numeric(table: pd.DataFrame, skip: tuple[str, ...]) -> pd.DataFrame:
    for column in table.columns:
        if column not in skip:
            table[column] = pd.to_numeric(table[column], errors="coerce")
    return table


@dataclass(frozen=True)
class SegmentationRun(TaskRunFiles):
    """The parsed contents of a segmentation run folder (tables are read on demand); the
    class names start with the background (label 0)."""

    def split_names(self) -> list[str]:
        """The evaluated splits, validation first and test last."""
        order = {"train": 0, "val": 1, "test": 3}
        return sorted(self.metrics["splits"], key=lambda s: order.get(s, 2))

    def evaluated_classes(self, split: str) -> list[str]:
        """The classes scored on ``split``, in label order."""
        scored = self.metrics["splits"][split]
        known = [c for c in self.class_names if c in scored]
        return known + [c for c in scored if c not in known]

    def per_case(self) -> pd.DataFrame | None:
        """``segmentation_metrics.csv`` with numeric metric columns (``nan``/``inf`` kept), or
        ``None`` when the run did not write one."""
        path = self.path / layout.SEGMENTATION_METRICS
        if not path.is_file():
            return None
        table = read_csv_table(path, TEXT_COLUMNS)
        missing = [c for c in PER_CASE_COLUMNS if c not in table.columns]
        if missing:
            raise InputError(path, f"missing column(s) {', '.join(missing)}")
        return _numeric(table, PER_CASE_COLUMNS)

    def history(self) -> pd.DataFrame | None:
        """``history.csv`` (one row per epoch), or ``None`` when the run did not write one."""
        path = self.path / layout.HISTORY
        if not path.is_file():
            return None
        table = read_csv_table(path, TEXT_COLUMNS)
        if "epoch" not in table.columns:
            raise InputError(path, "missing column epoch")
        return _numeric(table, ())

    def mask_path(self, case_id: str) -> Path | None:
        """The saved predicted label map of a test case (``masks/<case id, / -> _>.png`` or
        ``.nii.gz``), or ``None`` when it was not saved."""
        safe = case_id.replace("/", "_").replace("\\", "_")
        for suffix in MASK_SUFFIXES:
            candidate = self.path / "masks" / f"{safe}{suffix}"
            if candidate.is_file():
                return candidate
        return None


def read_segmentation_run(run_dir: str | Path) -> SegmentationRun:
    """Read the JSON/YAML files of a segmentation run folder.

    Raises:
        InputError: naming the missing or malformed file (metrics.json, labels.json, ...).
    """
    path = Path(run_dir)
    if not path.is_dir():
        raise InputError(path, "run folder not found")
    metrics_path = path / layout.METRICS
    metrics = read_json(metrics_path, required=True)
    _check_metrics(metrics_path, metrics)
    return SegmentationRun(
        path=path,
        metrics=metrics,
        config=read_config_yaml(path / layout.CONFIG),
        labels=read_labels(path / layout.LABELS, metrics["class_names"]),
        data_summary=read_json_object(path / layout.DATA_SUMMARY),
        preprocessing=read_preprocessing(path / layout.PREPROCESSING),
    )
