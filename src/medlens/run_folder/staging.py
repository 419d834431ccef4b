"""A run is built in ``<output_dir>/<name>.partial/`` and renamed to ``<name>/`` only once
every file is written, so a folder without ``.partial`` is always whole and a killed run
never looks finished."""

from __future__ import annotations

import os
import shutil
from pathlib import Path

from medlens.errors import ConfigError
from medlens.run_folder.layout import STAGING_SUFFIX


def staging_dir(final_dir: Path) -> Path:
    """Where the run of ``final_dir`` is built: ``<final_dir>.partial`` beside it."""
    return final_dir.with_name(final_dir.name + STAGING_SUFFIX)


def check_free(final_dir: Path, overwrite: bool, key: str = "name") -> None:
    """Refuse to build over a finished run unless ``overwrite`` (``--overwrite``).

    Raises:
        ConfigError: keyed ``key`` (the config key or option that named the folder).
    """
    if final_dir.exists() and not overwrite:
        raise ConfigError(
            key, f"run folder {final_dir} already exists (use --overwrite or another name)"
        )


def open_stage(final_dir: Path, resume: bool = False, clear: bool = True) -> Path:
    """The empty staging folder of ``final_dir`` (a stale one from a killed run is removed,
    unless ``resume`` keeps it for its ``last.pt``; ``clear=False`` leaves removal to the
    caller, as a distributed run's main process does)."""
    stage = staging_dir(final_dir)
    if stage.exists() and clear and not resume:
        shutil.rmtree(stage)
    stage.mkdir(parents=True, exist_ok=True)
    return stage


def publish_run(stage: Path, final_dir: Path) -> Path:
    """Rename the complete staging folder ``stage`` to ``final_dir``; an existing
    ``final_dir`` (``--overwrite``) is removed only now, once the new run is whole."""
    if final_dir.exists():
        shutil.rmtree(final_dir)
    os.replace(stage, final_dir)
    return final_dir
