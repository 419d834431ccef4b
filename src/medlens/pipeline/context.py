"""What every stage of a pipeline run shares: the run folder, the cases, and the training of
the ordinary medlens runs a stage is made of (one run folder per network, inside the
stage's folder)."""

from __future__ import annotations

import copy
from collections.abc import Callable
from dataclasses import dataclass
from pathlib import Path
from typing import Any

import numpy as np
import PIL.Image

from medlens.config import RunConfig, parse_config
from medlens.data.image import Image
from medlens.errors import ConfigError, InputError
from medlens.pipeline.cells import CellCase, CellSet, load_image, load_regions
from medlens.pipeline.config import CellData

#: keys of a stage's run fragment that the pipeline sets itself
PIPELINE_KEYS = ("name", "task", "seed", "output_dir", "data")


@dataclass
class StageContext:
    """One pipeline run's shared state.

    Attributes:
        run_dir: the pipeline's run folder; stage ``s`` keeps its files in ``stages/<s>/``.
        cells: the cases and their class and region names.
        data: the data section (mask grey levels, validation share).
        seed: the pipeline's seed; each network's seed derives from it.
        progress: show progress bars.
        train_run: trains one network's run config (with progress bars or not) and returns
            its run folder: ``medlens train``'s ``train_and_report``, handed down by the
            command layer so this package stays below it.
        output_dir: where found masks are written (``stages/<s>/masks``): the run folder
            while training, the ``--out`` folder of ``medlens predict``.
    """

    run_dir: Path
    cells: CellSet
    data: CellData
    seed: int
    progress: bool = False
    output_dir: Path | None = None
    train_run: Callable[[RunConfig, bool], Path] | None = None

    def mask_dir(self, stage: str) -> Path:
        return self.output_path(stage) / "masks"

    def output_path(self, stage: str) -> Path:
        """Where stage ``stage`` writes what it found (masks, crops, boxes, features)."""
        return (self.output_dir or self.run_dir) / "stages" / stage

    def stage_dir(self, name: str) -> Path:
        path = self.run_dir / "stages" / name
        path.mkdir(parents=True, exist_ok=True)
        return path

    def image(self, case: CellCase) -> Image:
        return load_image(case)

    def regions(self, case: CellCase, image: Image | None = None) -> np.ndarray:
        """The reference region label map ``(H, W)`` of ``case``."""
        return load_regions(case, self.data, image if image is not None else self.image(case))


def child_config(
    stage: str, fragment: dict[str, Any], task: str, data: dict[str, Any], name: str,
    out_dir: Path, seed: int,
) -> RunConfig:  # fmt: skip
    """The run config of one network of stage ``stage``: its fragment with the pipeline's keys.

    Raises:
        ConfigError: the fragment sets a key the pipeline sets, or fails the schema (the key is
            named as ``stages.<stage>.run.<key>``).
    """
    from medlens.tasks import check_config

    clash = [k for k in PIPELINE_KEYS if k in fragment]
    if clash:
        raise ConfigError(
            f"stages.{stage}.run.{clash[0]}", "is set by the pipeline; leave it out of the stage"
        )
    raw = {
        **copy.deepcopy(fragment),
        "name": name,
        "task": task,
        "seed": seed,
        "output_dir": str(out_dir),
        "data": data,
    }
    raw.setdefault("evaluate", {}).setdefault("n_bootstrap", 0)
    try:
        config = parse_config(raw)
    except ConfigError as exc:
        raise ConfigError(f"stages.{stage}.run.{exc.key}", exc.reason) from None
    try:
        return check_config(config)
    except ConfigError as exc:
        raise ConfigError(f"stages.{stage}.run.{exc.key}", exc.reason) from None


def train_child(ctx: StageContext, config: RunConfig) -> Path:
    """Train one network of a stage with the context's trainer (``medlens train``'s, handed
    down by the command layer) and return its finished run folder.

    Raises:
        ConfigError: a context without a trainer (one that only applies fitted stages).
    """
    if ctx.train_run is None:
        raise ConfigError("stages", "this pipeline context applies fitted stages; it cannot train")
    return ctx.train_run(config, ctx.progress)


def write_png(array: np.ndarray, path: Path) -> Path:
    """An 8-bit image ``(C, H, W)`` (C = 1 or 3) or a label map ``(H, W)`` as PNG.

    Raises:
        InputError: values that are not whole numbers in 0..255 (a crop of a 16-bit or CT
            image: such crops are not written as PNG).
    """
    values = np.asarray(array)
    if values.ndim == 3:
        if values.shape[0] not in (1, 3):
            raise InputError(path, f"has {values.shape[0]} channels; PNG crops take 1 or 3")
        values = values[0] if values.shape[0] == 1 else np.moveaxis(values, 0, -1)
    rounded = np.rint(values)
    if values.size and (rounded.min() < 0 or rounded.max() > 255):
        raise InputError(
            path, "values outside 0..255: crops are written as 8-bit PNG (8-bit images only)"
        )
    path.parent.mkdir(parents=True, exist_ok=True)
    PIL.Image.fromarray(rounded.astype(np.uint8)).save(path)
    return path
