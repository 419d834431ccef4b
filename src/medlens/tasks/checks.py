"""A run config checked in full before anything runs: the task's own rules, every transform
built, every estimator of a ``features`` section built.

The schema (``medlens.config``) knows types and keys; these checks need the transforms and
the estimators, so they live here, above ``preprocess`` and ``features``.
"""

from __future__ import annotations

from pathlib import Path
from typing import Any

from medlens.config import FeaturesConfig, RunConfig, read_config
from medlens.errors import ConfigError, MedlensError
from medlens.tasks.registry import TASKS, task_of


def check_config(config: RunConfig, source: str | Path | None = None) -> RunConfig:
    """Check what the schema cannot, so a bad config fails at load time, not mid-run.

    Returns:
        ``config`` unchanged.

    Raises:
        ConfigError: naming the key (``preprocess[2].name``, ``features``, ``data.format``).
    """
    task = task_of(config)
    if config.data.format not in task.data_formats:
        owners = [
            TASKS.get(n).name for n in TASKS if config.data.format in TASKS.get(n).data_formats
        ]
        raise ConfigError(
            "data.format",
            f"task: {task.name} trains on data.format {' or '.join(sorted(task.data_formats))}, "
            f"not {config.data.format!r}"
            + (f"; data.format {config.data.format} needs task: {owners[0]}" if owners else ""),
            source,
        )
    task.check_config(config, source)
    _check_model_task(config, source)
    _check_transforms(config, source)
    if config.features is not None:
        try:
            check_estimators(config.features)
        except ValueError as exc:
            raise ConfigError("features", str(exc), source) from None
    return config


def load_config(path: str | Path, overrides: dict[str, Any] | None = None) -> RunConfig:
    """Read a YAML config (see ``medlens.config.read_config``) and check it in full."""
    return check_config(read_config(path, overrides), source=Path(path))


def _check_model_task(config: RunConfig, source: str | Path | None) -> None:
    """A registered network trained for another task is refused (an unknown name is the
    model factory's error, with the list of names)."""
    from medlens.models import MODELS
    from medlens.models.registry import model_names

    if config.features is not None or config.model.name not in MODELS:
        return
    entry = MODELS.get(config.model.name)
    if entry.task != config.task:
        raise ConfigError(
            "model.name",
            f"{config.model.name} is a {entry.task} model; task: {config.task} needs one of "
            f"{', '.join(model_names(task=config.task))}",
            source,
        )


def _check_transforms(config: RunConfig, source: str | Path | None) -> None:
    from medlens.preprocess.base import RandomTransform
    from medlens.preprocess.pipeline import build_pipeline

    preprocess = build_pipeline(config.preprocess, section="preprocess", source=source)
    for i, transform in enumerate(preprocess.transforms):
        if isinstance(transform, RandomTransform):
            raise ConfigError(
                f"preprocess[{i}].name",
                f"{config.preprocess[i].name} is random; random transforms belong under augment",
                source,
            )
    build_pipeline(config.augment, section="augment", source=source)


def check_estimators(features: FeaturesConfig) -> None:
    """Build the feature pipeline now, so a wrong name, parameter or grid key fails at load.

    Raises:
        ValueError: an unknown family, estimator or parameter, or a grid key that is not a
            parameter of the pipeline.
    """
    from medlens.features.classical import make_feature_pipeline
    from medlens.features.handcrafted import FAMILIES

    unknown = sorted(set(features.families or ()) - set(FAMILIES))
    if unknown:
        raise ValueError(f"unknown families {unknown}; choose from {', '.join(FAMILIES)}")
    selector = features.selector.as_dict() if features.selector is not None else None
    try:
        pipeline = make_feature_pipeline(selector, features.classifier.as_dict(), features.scale)
    except MedlensError as exc:
        raise ValueError(str(exc)) from None
    for key, values in (features.grid or {}).items():
        try:
            pipeline.set_params(**{key: values[0]})
        except ValueError:
            raise ValueError(
                f"grid key {key!r} is not a parameter of the pipeline (step__parameter, "
                "steps scale, select, classify)"
            ) from None
