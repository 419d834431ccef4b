"""What the run folders of the task kinds that write their own reader (segmentation,
detection) have in common: the files every run writes, parsed, and a checked CSV reader."""

from __future__ import annotations

from dataclasses import dataclass
from datetime import datetime
from pathlib import Path
from typing import Any

import pandas as pd

from medlens.errors import InputError
from medlens.run_folder import layout


def read_csv_table(path: Path, text_columns: tuple[str, ...]) -> pd.DataFrame:
    """A run's CSV table, ``text_columns`` read as strings.

    Raises:
        InputError: naming the file, when it is not a readable CSV table.
    """
    try:
        return pd.read_csv(path, dtype=dict.fromkeys(text_columns, str))
    except (pd.errors.ParserError, pd.errors.EmptyDataError, UnicodeDecodeError) as exc:
        raise InputError(path, f"not a readable CSV table ({type(exc).__name__})") from None


@dataclass(frozen=True)
class TaskRunFiles:
    """The parsed files of a run folder (tables are read on demand by the subclasses)."""

    path: Path
    metrics: dict[str, Any]
    config: dict[str, Any]
    labels: dict[str, Any] | None
    data_summary: dict[str, Any] | None
    preprocessing: list[Any] | None

    @property
    def name(self) -> str:
        return str(self.config.get("name") or self.path.name)

    @property
    def class_names(self) -> list[str]:
        """The classes of metrics.json, in label order."""
        return list(self.metrics["class_names"])

    @property
    def finished(self) -> datetime:
        """When metrics.json was written: the end of the run."""
        return datetime.fromtimestamp((self.path / layout.METRICS).stat().st_mtime)

    def section(self, key: str) -> dict[str, Any]:
        """A mapping section of config.yaml (``data``, ``model``, the task's own), or ``{}``."""
        value = self.config.get(key)
        return value if isinstance(value, dict) else {}
