"""A detection run served: loaded once at start-up, shared by every ``/v1/detect`` request.

A detector runs on PyTorch only (its boxes are post-processed in Python, so there is no ONNX
engine for it); its forward pass keeps no state between calls, so concurrent requests share
one network without a lock.
"""

from __future__ import annotations

import time
from dataclasses import dataclass
from pathlib import Path
from typing import Any

import torch

from medlens.errors import ConfigError
from medlens.inference.detection_run import DetectionRunModel, load_detection_run
from medlens.inference.onnx import weights_sha256
from medlens.tasks import Task, task_of

#: The side of the blank square image the detector is warmed up on at start-up, in pixels.
WARM_UP_SIZE = 64


@dataclass
class ServedDetector:
    """One served detection run.

    Attributes:
        name: the run folder's name; requests choose the model by it.
        run: the detector, its preprocessing, classes and per-class score thresholds.
        weights_sha256: SHA-256 of the run's ``model.pt``.
        engine: always ``torch``.
        load_seconds: time to load and warm the detector up at start-up (s).
    """

    name: str
    run: DetectionRunModel
    weights_sha256: str
    engine: str = "torch"
    load_seconds: float = 0.0

    @property
    def task(self) -> Task:
        return task_of(self.run.config)

    @property
    def spatial_dims(self) -> int:
        return 2

    @property
    def in_channels(self) -> int | None:
        """The image channels the detector takes (None when its config does not say)."""
        value = getattr(self.run.model, "config", {}).get("in_channels")
        return int(value) if value is not None else None

    @property
    def predicts_masks(self) -> bool:
        """Whether the detector also predicts instance masks (Mask R-CNN), which ``/v1/detect``
        then answers with each detection."""
        return bool(getattr(self.run.model, "predicts_masks", False))

    def describe(self) -> dict[str, Any]:
        """What ``GET /v1/models`` says about the model: its classes and the score from which
        a detection of each class is a finding."""
        return {
            "name": self.name,
            "task": self.task.name,
            "route": self.task.route,
            "class_names": list(self.run.class_names),
            "thresholds": dict(zip(self.run.class_names, self.run.thresholds, strict=True)),
            "threshold": None,
            "input_shape": None,
            "spatial_dims": self.spatial_dims,
            "engine": self.engine,
            "weights_sha256": self.weights_sha256,
            "model": self.run.config.model.name,
            "predicts_masks": self.predicts_masks,
        }


def load_detector(run_dir: Path, name: str, engine: str = "torch") -> ServedDetector:
    """Load a detection run and warm it up with one forward pass on a blank image.

    Args:
        run_dir: a finished detection run folder.
        name: the name it is served under.
        engine: must be ``torch``.

    Raises:
        ConfigError: another engine.
        InputError: a run folder that cannot be loaded.
    """
    if engine != "torch":
        raise ConfigError(
            "--engine",
            f"{name} is a detection run: detectors are served with --engine torch, not {engine}",
        )
    started = time.perf_counter()
    sha = weights_sha256(run_dir)
    run = load_detection_run(run_dir)
    served = ServedDetector(name=name, run=run, weights_sha256=sha)
    channels = served.in_channels or 3
    with torch.no_grad():  # a broken model fails at start-up, not on a request
        run.model([torch.zeros(channels, WARM_UP_SIZE, WARM_UP_SIZE, device=run.device)])
    served.load_seconds = time.perf_counter() - started
    return served
