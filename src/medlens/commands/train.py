"""The whole job a user asks for with ``medlens train``: the config checked, the model
trained by the run module of its kind, then the documents a person reads (report.html,
model_card.md) written into the run folder before it is published. Lives above train/ and
report/ so neither imports the other."""

from __future__ import annotations

from collections.abc import Callable, Sequence
from pathlib import Path
from typing import Any

from medlens.config import RunConfig
from medlens.tasks import (
    CLASSIFICATION,
    DETECTION,
    REGISTRATION,
    SEGMENTATION,
    check_config,
    task_of,
)
from medlens.train.trainer import EpochCallback

RunModule = Callable[..., Path]


def _deep_classification() -> RunModule:
    from medlens.train.deep.run import train_from_config

    return train_from_config


def _segmentation() -> RunModule:
    from medlens.train.segmentation.run import train_segmentation_from_config

    return train_segmentation_from_config


def _registration() -> RunModule:
    from medlens.train.registration.run import train_registration_from_config

    return train_registration_from_config


def _detection() -> RunModule:
    from medlens.train.detection.run import train_detection_from_config

    return train_detection_from_config


def _classical() -> RunModule:
    from medlens.train.classical.run import train_classical

    def run(config: RunConfig, resume: bool, callbacks: Sequence[Any], **kwargs: Any) -> Path:
        # Resume and callbacks concern epochs; a classical run fits once.
        return train_classical(config, **kwargs)

    return run


#: task name -> the run module that trains its networks; every registered task has one.
RUN_MODULES: dict[str, Callable[[], RunModule]] = {
    CLASSIFICATION.name: _deep_classification,
    SEGMENTATION.name: _segmentation,
    REGISTRATION.name: _registration,
    DETECTION.name: _detection,
}


def run_module(config: RunConfig) -> RunModule:
    """The training of ``config``: classical when it has a ``features`` section (features ->
    scikit-learn), else the deep run module of its task."""
    if config.features is not None:
        return _classical()
    return RUN_MODULES[task_of(config).name]()


def train_command(
    config_path: Path,
    overrides: dict[str, Any] | None = None,
    skip_bad: bool = False,
    resume: bool = False,
    overwrite: bool = False,
    progress: bool = True,
) -> Path:
    """``medlens train CONFIG [--set key=value] [--skip-bad] [--resume] [--overwrite]``: read
    and check the YAML config, then ``train_and_report`` it.

    Returns:
        The finished run folder.
    """
    from medlens.tasks import load_config

    overrides = dict(overrides or {})
    if skip_bad:
        overrides["data.skip_bad"] = True
    config = load_config(config_path, overrides)
    return train_and_report(config, resume=resume, overwrite=overwrite, progress=progress)


def train_and_report(
    config: RunConfig,
    resume: bool = False,
    overwrite: bool = False,
    callbacks: Sequence[EpochCallback] = (),
    progress: bool = True,
) -> Path:
    """Check ``config`` in full, train it and write its complete run folder, report and model
    card included.

    Returns:
        The finished run folder ``<output_dir>/<name>``.

    Raises:
        ConfigError: a config its task cannot run (see ``medlens.tasks.check_config``), or an
            existing run folder without ``overwrite``.
    """
    from medlens.report.documents import write_documents
    from medlens.train.distributed import shutdown

    check_config(config)
    try:
        return run_module(config)(
            config,
            resume=resume,
            overwrite=overwrite,
            callbacks=callbacks,
            progress=progress,
            finalize=write_documents,
        )
    finally:
        shutdown()  # under torchrun every rank leaves the process group before it exits
