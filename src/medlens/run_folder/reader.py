"""Reading the files of a finished run folder that inference needs, each failure one
``InputError`` naming the file. (The report's fuller views are ``classification`` and
``segmentation``.)"""

from __future__ import annotations

from pathlib import Path
from typing import Any

import yaml

from medlens.config import RunConfig, parse_config
from medlens.errors import ConfigError, InputError
from medlens.run_folder import layout
from medlens.run_folder.files import read_config_yaml, read_json
from medlens.tasks import CLASSIFICATION, TASKS, Task, task_named


def require_files(run_dir: Path, names: tuple[str, ...]) -> None:
    """Refuse a missing run folder, or one without each of ``names``.

    Raises:
        InputError: naming the folder or the first missing file.
    """
    if not run_dir.is_dir():
        raise InputError(run_dir, "run folder not found")
    for name in names:
        if not (run_dir / name).is_file():
            raise InputError(run_dir / name, "missing from the run folder (did training finish?)")


def read_run_config(run_dir: str | Path) -> RunConfig:
    """The run's resolved ``config.yaml``, validated against the schema.

    Raises:
        InputError: the file is missing, not YAML, or not a valid run config.
    """
    path = Path(run_dir) / layout.CONFIG
    require_files(Path(run_dir), (layout.CONFIG,))
    try:
        return parse_config(yaml.safe_load(path.read_text(encoding="utf-8")), path)
    except (yaml.YAMLError, UnicodeDecodeError):
        raise InputError(path, "not valid YAML") from None
    except ConfigError as exc:
        raise InputError(path, f"{exc.key}: {exc.reason}") from None


def read_run_task(run_dir: str | Path) -> Task:
    """The task of a run folder: its ``config.yaml``'s ``task`` (classification when the
    file or the key is absent). Any run folder answers, ensembles included, whose config is
    not a training config.

    Raises:
        InputError: an unreadable ``config.yaml``, or an unknown task name in it.
    """
    path = Path(run_dir) / layout.CONFIG
    name = read_config_yaml(path).get("task", CLASSIFICATION.name)
    if name not in TASKS:
        raise InputError(path, f"unknown task {name!r}; known: {', '.join(TASKS.names())}")
    return task_named(name)


def read_decision_labels(run_dir: str | Path) -> dict[str, Any]:
    """``labels.json``: the class names and the decision threshold (both required).

    Raises:
        InputError: the file is missing, unreadable, or lacks either key.
    """
    path = Path(run_dir) / layout.LABELS
    labels = read_json(path, required=True)
    if not isinstance(labels, dict) or "class_names" not in labels or "threshold" not in labels:
        raise InputError(path, "needs 'class_names' and 'threshold'")
    return labels
