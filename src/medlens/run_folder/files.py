"""Reading the JSON and YAML files of a run folder, each failure one ``InputError`` that names
the file (shared by the classification and segmentation run-folder readers)."""

from __future__ import annotations

import json
from pathlib import Path
from typing import Any

import yaml

from medlens.errors import InputError


def read_json(path: Path, required: bool) -> Any:
    """The parsed JSON file; ``None`` when it is absent and not ``required``."""
    if not path.is_file():
        if required:
            raise InputError(
                path, f"{path.name} not found; the run folder is incomplete (did training finish?)"
            )
        return None
    try:
        return json.loads(path.read_text(encoding="utf-8"))
    except json.JSONDecodeError as exc:
        raise InputError(path, f"not valid JSON (line {exc.lineno}: {exc.msg})") from None
    except UnicodeDecodeError:
        raise InputError(path, "not a UTF-8 text file") from None


def read_json_object(path: Path) -> dict[str, Any] | None:
    """An optional JSON file that must hold an object; ``None`` when absent."""
    data = read_json(path, required=False)
    if data is not None and not isinstance(data, dict):
        raise InputError(path, "expected a JSON object")
    return data


def read_config_yaml(path: Path) -> dict[str, Any]:
    """The run's resolved config (a YAML mapping); ``{}`` when it was not recorded."""
    if not path.is_file():
        return {}
    try:
        data = yaml.safe_load(path.read_text(encoding="utf-8"))
    except (yaml.YAMLError, UnicodeDecodeError):
        raise InputError(path, "not valid YAML") from None
    if not isinstance(data, dict):
        raise InputError(path, "expected a YAML mapping (the resolved run config)")
    return data


def read_labels(path: Path, class_names: list[str]) -> dict[str, Any] | None:
    """The optional ``labels.json``; its class names must be ``class_names`` (metrics.json's)."""
    labels = read_json_object(path)
    if labels is not None and labels.get("class_names", class_names) != class_names:
        raise InputError(path, "class_names differ from those in metrics.json")
    return labels


def read_preprocessing(path: Path) -> list[Any] | None:
    """The transform configs of ``preprocessing.json`` (the document ``save_pipeline`` writes,
    or a bare list); ``None`` when it was not recorded."""
    preprocessing = read_json(path, required=False)
    if isinstance(preprocessing, dict) and "transforms" in preprocessing:
        preprocessing = preprocessing["transforms"]
    if preprocessing is not None and not isinstance(preprocessing, list):
        raise InputError(path, "expected a JSON list of transform configs")
    return preprocessing
