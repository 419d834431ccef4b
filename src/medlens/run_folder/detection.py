"""Reading (and checking) the run folder that ``medlens train`` writes for ``task: detection``.

Required: ``metrics.json`` (per split: COCO AP/AR, FROC, F1, counts, their CIs, the curves).
Optional, reported as "not recorded" when absent: ``config.yaml``, ``labels.json``,
``history.csv``, ``data_summary.json``, ``preprocessing.json``, ``detections.csv``,
``detection_images.csv`` and ``counts.csv``.
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
from medlens.tasks import DETECTION

#: The columns each table must have.
TABLE_COLUMNS = {
    layout.DETECTIONS: ("split", "image_id", "class", "score", "x1", "y1", "x2", "y2", "finding"),
    layout.DETECTION_IMAGES: ("split", "image_id", "path", "n_reference", "tp", "fp", "fn", "f1"),
    layout.COUNTS: ("split", "image_id", "class", "reference", "predicted"),
    layout.HISTORY: ("epoch",),
}


def _check_metrics(path: Path, metrics: Any) -> None:
    if not isinstance(metrics, dict):
        raise InputError(path, "expected a JSON object")
    if metrics.get("task") != DETECTION.name:
        raise InputError(path, f"task is {metrics.get('task')!r}, not {DETECTION.name!r}")
    names = metrics.get("class_names")
    if not (isinstance(names, list) and names and all(isinstance(n, str) for n in names)):
        raise InputError(path, "'class_names' must list the object classes")
    splits = metrics.get("splits")
    if not isinstance(splits, dict) or not splits:
        raise InputError(path, "'splits' must map split names (val, test) to their metrics")
    for split, result in splits.items():
        if not (
            isinstance(result, dict)
            and isinstance(result.get("metrics"), dict)
            and isinstance(result.get("per_class"), dict)
        ):
            raise InputError(path, f"splits.{split} needs 'metrics' and 'per_class'")


@dataclass(frozen=True)
class DetectionRun(TaskRunFiles):
    """The parsed contents of a detection run folder (tables are read on demand)."""

    @property
    def thresholds(self) -> dict[str, float]:
        """Each class's operating threshold (score)."""
        return {str(k): float(v) for k, v in (self.metrics.get("thresholds") or {}).items()}

    def split(self, name: str) -> dict[str, Any] | None:
        """The metrics of one split, or None."""
        return self.metrics["splits"].get(name)

    def table(self, name: str) -> pd.DataFrame | None:
        """One of the run's CSV tables (``layout.DETECTIONS``...), or None when absent.

        Raises:
            InputError: an unreadable table or one without its columns.
        """
        path = self.path / name
        if not path.is_file():
            return None
        table = read_csv_table(path, ("image_id", "split", "class"))
        missing = [c for c in TABLE_COLUMNS.get(name, ()) if c not in table.columns]
        if missing:
            raise InputError(path, f"missing column(s) {', '.join(missing)}")
        return table


def read_detection_run(run_dir: str | Path) -> DetectionRun:
    """Read the JSON/YAML files of a detection run folder.

    Raises:
        InputError: naming the missing or malformed file.
    """
    path = Path(run_dir)
    if not path.is_dir():
        raise InputError(path, "run folder not found")
    metrics_path = path / layout.METRICS
    metrics = read_json(metrics_path, required=True)
    _check_metrics(metrics_path, metrics)
    return DetectionRun(
        path=path,
        metrics=metrics,
        config=read_config_yaml(path / layout.CONFIG),
        labels=read_labels(path / layout.LABELS, metrics["class_names"]),
        data_summary=read_json_object(path / layout.DATA_SUMMARY),
        preprocessing=read_preprocessing(path / layout.PREPROCESSING),
    )
