"""Reading (and checking) the run folder that ``medlens train`` writes.

Required: ``metrics.json`` (and ``predictions.csv`` for the figures). Optional, reported as
"not recorded" when absent: ``config.yaml``, ``labels.json``, ``history.csv``,
``data_summary.json``, ``preprocessing.json``; and the later ``audit.json`` and
``explanations.json`` written by the audit and explain verbs.
"""

from __future__ import annotations

import math
from dataclasses import dataclass
from datetime import datetime
from pathlib import Path
from typing import Any

import numpy as np
import pandas as pd

from medlens.errors import InputError
from medlens.metrics.inputs import ROW_SUM_TOLERANCE
from medlens.run_folder import layout
from medlens.run_folder.files import (
    read_config_yaml,
    read_json,
    read_json_object,
    read_labels,
    read_preprocessing,
)

PREDICTION_COLUMNS = ("case_id", "split", "label", "pred")
#: The columns a run's decision rule writes beside each case (``medlens.trust.decisions``),
#: and the prefix of the probabilities before calibration: not attributes of the case.
TRUST_COLUMNS = ("decision", "refer", "refer_reason", "ood_score", "ood")
RAW_PROB_PREFIX = "raw_prob_"
HISTORY_COLUMNS = ("epoch", "train_loss", "val_loss", "val_auc", "lr")


def _check_metrics(path: Path, metrics: Any) -> None:
    if not isinstance(metrics, dict):
        raise InputError(path, "expected a JSON object")
    names = metrics.get("class_names")
    if not (isinstance(names, list) and len(names) >= 2 and all(isinstance(n, str) for n in names)):
        raise InputError(path, "'class_names' must list at least two class names")
    splits = metrics.get("splits")
    if not isinstance(splits, dict) or not splits:
        raise InputError(path, "'splits' must map split names (val, test) to their evaluations")
    for split, result in splits.items():
        if (
            not isinstance(result, dict)
            or not isinstance(result.get("metrics"), dict)
            or "n" not in result
        ):
            raise InputError(path, f"splits.{split} must hold 'n' and a 'metrics' object")


@dataclass(frozen=True)
class RunFolder:
    """The parsed contents of a run folder (JSON and YAML files; tables are read on demand)."""

    path: Path
    metrics: dict[str, Any]
    config: dict[str, Any]
    labels: dict[str, Any] | None
    data_summary: dict[str, Any] | None
    preprocessing: list[Any] | None
    audit: dict[str, Any] | None
    explanations: dict[str, Any] | None

    @property
    def name(self) -> str:
        return str(self.config.get("name") or self.path.name)

    @property
    def class_names(self) -> list[str]:
        return list(self.metrics["class_names"])

    @property
    def threshold(self) -> float | None:
        value = self.metrics.get("threshold")
        return None if value is None else float(value)

    @property
    def threshold_method(self) -> str | None:
        return self.metrics.get("threshold_method")

    @property
    def finished(self) -> datetime:
        """When metrics.json was written: the end of the run."""
        return datetime.fromtimestamp((self.path / layout.METRICS).stat().st_mtime)

    def split_names(self) -> list[str]:
        """The evaluated splits, validation first and test last."""
        order = {"train": 0, "val": 1, "test": 3}
        return sorted(self.metrics["splits"], key=lambda s: order.get(s, 2))

    def predictions(self) -> pd.DataFrame:
        """``predictions.csv`` checked: columns, class indices in range, probabilities in [0, 1]."""
        path = self.path / layout.PREDICTIONS
        if not path.is_file():
            raise InputError(path, "predictions.csv not found; the run folder is incomplete")
        try:
            table = pd.read_csv(path, dtype={"case_id": str, "split": str})
        except (pd.errors.ParserError, pd.errors.EmptyDataError, UnicodeDecodeError) as exc:
            raise InputError(path, f"not a readable CSV table ({type(exc).__name__})") from None
        prob_columns = [f"prob_{name}" for name in self.class_names]
        missing = [c for c in (*PREDICTION_COLUMNS, *prob_columns) if c not in table.columns]
        if missing:
            raise InputError(path, f"missing column(s) {', '.join(missing)}")
        k = len(self.class_names)
        for column in ("label", "pred"):
            values = pd.to_numeric(table[column], errors="coerce").to_numpy()
            if not (np.isfinite(values).all() and (values == np.round(values)).all()):
                raise InputError(path, f"column {column} must hold whole class indices")
            if ((values < 0) | (values >= k)).any():
                raise InputError(path, f"column {column} must hold class indices in [0, {k - 1}]")
        probs = table[prob_columns].apply(pd.to_numeric, errors="coerce").to_numpy()
        if not np.isfinite(probs).all() or probs.min() < 0 or probs.max() > 1:
            raise InputError(path, "probability columns must hold numbers in [0, 1]")
        worst = float(np.abs(probs.sum(axis=1) - 1.0).max())
        if worst > ROW_SUM_TOLERANCE:
            raise InputError(
                path, f"probabilities of a case must sum to 1; worst row is off by {worst:.3g}"
            )
        table["label"] = table["label"].astype(int)
        table["pred"] = table["pred"].astype(int)
        return table

    def history(self) -> pd.DataFrame | None:
        """``history.csv`` (one row per epoch), or ``None`` when the run did not write one."""
        path = self.path / layout.HISTORY
        if not path.is_file():
            return None
        try:
            table = pd.read_csv(path)
        except (pd.errors.ParserError, pd.errors.EmptyDataError, UnicodeDecodeError) as exc:
            raise InputError(path, f"not a readable CSV table ({type(exc).__name__})") from None
        if "epoch" not in table.columns:
            raise InputError(path, "missing column epoch")
        for column in HISTORY_COLUMNS:
            if column in table.columns:
                table[column] = pd.to_numeric(table[column], errors="coerce")
        return table


def read_run_folder(run_dir: str | Path) -> RunFolder:
    """Read the JSON/YAML files of a run folder; raises ``InputError`` naming a bad file."""
    path = Path(run_dir)
    if not path.is_dir():
        raise InputError(path, "run folder not found")
    metrics_path = path / layout.METRICS
    metrics = read_json(metrics_path, required=True)
    _check_metrics(metrics_path, metrics)
    labels = read_labels(path / layout.LABELS, metrics["class_names"])
    if labels is not None:
        a, b = labels.get("threshold"), metrics.get("threshold")
        if a is not None and b is not None and not math.isclose(float(a), float(b)):
            raise InputError(
                path / layout.LABELS, f"threshold {a} differs from {b} in metrics.json"
            )
    return RunFolder(
        path=path,
        metrics=metrics,
        config=read_config_yaml(path / layout.CONFIG),
        labels=labels,
        data_summary=read_json_object(path / layout.DATA_SUMMARY),
        preprocessing=read_preprocessing(path / layout.PREPROCESSING),
        audit=read_json_object(path / layout.AUDIT),
        explanations=read_json_object(path / layout.EXPLANATIONS),
    )
