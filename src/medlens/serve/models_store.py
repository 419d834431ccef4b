"""The models a service serves: loaded once at start-up, shared by every request.

Each run folder becomes one model named after the folder: a ``ServedModel`` for
classification and segmentation runs, a ``ServedDetector`` (``serve.detection_model``) for
detection runs, a ``ServedEnsemble`` (``serve.ensemble_model``) for ensemble run folders
made by ``medlens ensemble``. Predictions run on the chosen engine (PyTorch, or onnxruntime
on the run's exported ``model.onnx``); Grad-CAM and MC dropout always run on PyTorch, on a
private copy of the network behind a lock, because Grad-CAM's hooks would otherwise catch
the activations of concurrent predictions, and switched-on dropout would change them.

Every network is warmed up at start-up with one forward pass on a blank input, and its
output checked: weights that give NaN or infinite outputs stop the service from starting,
naming the run's weights file, instead of failing every request later.
"""

from __future__ import annotations

import copy
import dataclasses
import json
import logging
import threading
import time
from dataclasses import dataclass, field
from pathlib import Path
from typing import Any

import torch

from medlens.errors import ConfigError
from medlens.inference.ensemble_run import is_ensemble
from medlens.inference.loaded_run import LoadedRun, load_run
from medlens.inference.onnx import export_onnx, onnx_metadata, weights_sha256
from medlens.run_folder import layout
from medlens.run_folder.reader import read_run_task
from medlens.run_folder.trust import shown_record
from medlens.serve.detection_model import ServedDetector, load_detector
from medlens.serve.ensemble_model import ServedEnsemble, load_ensemble
from medlens.serve.warm_up import warm_up
from medlens.tasks import Task

log = logging.getLogger(__name__)
ENGINES = ("torch", "onnx", "onnx-int8")


@dataclass
class ServedModel:
    """One served run.

    Attributes:
        name: the run folder's name; requests choose the model by it.
        run: the run with its PyTorch network (preprocessing, labels, threshold, config).
        predictor: the same run whose ``model`` is the engine's network.
        engine: ``torch`` or ``onnx``.
        weights_sha256: SHA-256 of the run's ``model.pt``.
        explainer: a private copy of the PyTorch network for Grad-CAM and MC dropout, used
            under ``explain_lock`` (the shared network itself for a segmenter without
            dropout, which needs neither).
        load_seconds: time to load, build and warm the model up at start-up (s).
    """

    name: str
    run: LoadedRun
    predictor: LoadedRun
    engine: str
    weights_sha256: str
    explainer: torch.nn.Module
    load_seconds: float = 0.0
    explain_lock: threading.Lock = field(default_factory=threading.Lock)

    @property
    def task(self) -> Task:
        return self.run.task

    @property
    def spatial_dims(self) -> int:
        shape = self.run.input_shape
        return len(shape) - 1 if shape else 2

    def describe(self) -> dict[str, Any]:
        """What ``GET /v1/models`` says about the model."""
        binary = not self.task.predicts_masks and len(self.run.class_names) == 2
        return {
            "name": self.name,
            "task": self.task.name,
            "route": self.task.route,
            "class_names": list(self.run.class_names),
            "threshold": self.run.threshold if binary else None,
            "input_shape": list(self.run.input_shape) if self.run.input_shape else None,
            "spatial_dims": self.spatial_dims,
            "engine": self.engine,
            "weights_sha256": self.weights_sha256,
            "model": self.run.config.model.name,
            **self._trust(),
        }

    def uncertainty_methods(self) -> list[str]:
        """The ``uncertainty=`` values the model answers: ``tta``, and ``mc_dropout`` when
        its network has dropout (for classification and segmentation alike)."""
        from medlens.inference.uncertainty import dropout_layers

        return ["tta"] + (["mc_dropout"] if dropout_layers(self.explainer) else [])

    def _trust(self) -> dict[str, Any]:
        """What the model says about trusting its answers: its calibration, its refer band,
        whether it flags inputs out of distribution, the uncertainty it can give."""
        if self.task.predicts_masks:
            return {
                "calibration": self.run.trust.calibrator.method,
                "uncertainty": self.uncertainty_methods(),
            }
        return {
            "calibration": self.run.trust.calibrator.method,
            "refer_band": self.run.trust.band.public(),
            "ood_threshold": None if self.run.trust.ood is None else self.run.trust.ood.threshold,
            "uncertainty": self.uncertainty_methods(),
        }


#: What the service serves: a classifier or segmenter, a detector, or an ensemble.
Served = ServedModel | ServedDetector | ServedEnsemble


def load_models(
    run_dirs: list[Path], engine: str = "torch", onnx_cache: Path | None = None
) -> dict[str, Served]:
    """Load every run (and warm its engine up with one forward pass).

    Args:
        run_dirs: finished run folders; their names must differ.
        engine: ``torch``, ``onnx`` or ``onnx-int8``. With ``onnx`` the run's ``model.onnx``
            is used when it was exported from the current ``model.pt`` (its recorded SHA-256
            matches) and records the calibrator of the run's ``calibration.json``; when the
            weights differ (or there is no ``model.onnx``) the network is exported into
            ``onnx_cache`` and the reason logged, and when only the calibrator differs the
            start is refused (``check_onnx_calibration``). ``onnx-int8`` needs the run's
            ``model.int8.onnx`` from ``medlens export --quantize int8`` of the current
            weights.
        onnx_cache: a private folder for exports made at start-up (required for ``onnx``).
            Detection runs are served with ``torch`` only.

    Raises:
        ConfigError: no runs, an unknown engine, two runs with one name, a detection run
            or an ensemble with an engine other than ``torch``, a stale ``model.int8.onnx``,
            or a ``model.onnx`` of the current weights whose recorded calibrator is not the
            run's ``calibration.json`` (naming both files: export again).
        InputError: a run folder that cannot be loaded or exported, or a network that gives
            NaN or infinite outputs at the warm-up (naming its weights file).
    """
    if engine not in ENGINES:
        raise ConfigError("--engine", f"must be one of {', '.join(ENGINES)}, not {engine!r}")
    if not run_dirs:
        raise ConfigError("run_dirs", "give at least one run folder to serve")
    models: dict[str, Served] = {}
    for run_dir in map(Path, run_dirs):
        name = run_dir.resolve().name
        if name in models:
            raise ConfigError("run_dirs", f"two run folders are named {name!r}; rename one")
        if is_ensemble(run_dir):
            models[name] = load_ensemble(run_dir, name, engine)
        elif read_run_task(run_dir).predicts_boxes:
            models[name] = load_detector(run_dir, name, engine)
        else:
            models[name] = _load_one(run_dir, name, engine, onnx_cache)
        log.info("loaded model %s (%s, %s engine)", name, models[name].task.name, engine)
    return models


def _load_one(run_dir: Path, name: str, engine: str, onnx_cache: Path | None) -> ServedModel:
    started = time.perf_counter()
    run = load_run(run_dir, device="cpu" if engine != "torch" else None)  # names a missing file
    sha = weights_sha256(run_dir)
    predictor = run
    warm_up(run, run_dir / layout.MODEL)  # PyTorch first: broken weights name model.pt
    if engine != "torch":
        from medlens.serve.onnx_engine import OnnxModule

        path = (
            _current_onnx(run, name, sha, onnx_cache)
            if engine == "onnx"
            else _current_int8(run, sha)
        )
        module = OnnxModule(path, like=run.model, threads=torch.get_num_threads())
        predictor = dataclasses.replace(run, model=module)
        warm_up(predictor, path)  # then the engine's own file
    if run.task.predicts_masks:  # predict_mask imports these (MONAI) on first use
        import monai.inferers  # noqa: F401

        import medlens.inference.postprocess  # noqa: F401
        import medlens.inference.resample  # noqa: F401
        import medlens.inference.sliding_window  # noqa: F401
    return ServedModel(
        name=name,
        run=run,
        predictor=predictor,
        engine=engine,
        weights_sha256=sha,
        explainer=_private_copy(run),
        load_seconds=time.perf_counter() - started,
    )


def _private_copy(run: LoadedRun) -> torch.nn.Module:
    """A copy of the network for Grad-CAM (classifiers) and MC dropout (any network with
    dropout); a segmenter without dropout needs neither and shares the run's network."""
    from medlens.inference.uncertainty import dropout_layers

    if run.task.explainable or dropout_layers(run.model):
        return copy.deepcopy(run.model).eval()
    return run.model


def _current_int8(run: LoadedRun, sha: str) -> Path:
    """The run's int8 file, made by ``medlens export --quantize int8`` from these weights and
    recording the run's calibrator (it is not made at start-up: its int8 calibration images
    come from the training data)."""
    run_dir = run.run_dir
    path = run_dir / layout.ONNX_INT8
    if not path.is_file():
        raise ConfigError(
            "--engine",
            f"{run_dir} has no {layout.ONNX_INT8}; make it with `medlens export {run_dir} "
            "--quantize int8`",
        )
    if onnx_metadata(path).get("weights_sha256") != sha:
        raise ConfigError(
            "--engine",
            f"{path} was quantised from other weights than model.pt; export it again with "
            "--quantize int8",
        )
    check_onnx_calibration(path, onnx_metadata(path), run, again="--quantize int8")
    return path


def _current_onnx(run: LoadedRun, name: str, sha: str, onnx_cache: Path | None) -> Path:
    """The run's ``model.onnx`` when it is current (same weights, same calibrator), else an
    export of the current run into ``onnx_cache`` (no ``model.onnx``, or other weights).

    Raises:
        ConfigError: ``model.onnx`` is of the current weights but records another calibrator
            (``check_onnx_calibration``), or an export is needed and ``onnx_cache`` is None.
    """
    run_dir = run.run_dir
    existing = run_dir / layout.ONNX
    if existing.is_file():
        metadata = onnx_metadata(existing)
        if metadata.get("weights_sha256") == sha:
            check_onnx_calibration(existing, metadata, run)
            return existing
        reason = "its model.onnx was exported from other weights"
    else:
        reason = "it has no model.onnx"
    if onnx_cache is None:
        raise ConfigError("onnx_cache", "the onnx engine needs a folder for start-up exports")
    log.info("exporting %s to ONNX at start-up: %s", name, reason)
    return export_onnx(run_dir, out=onnx_cache / f"{name}.onnx")


def check_onnx_calibration(
    onnx_path: Path, metadata: dict[str, str], run: LoadedRun, again: str = ""
) -> None:
    """Refuse an ONNX export whose recorded calibrator is not the run's.

    The ONNX graph holds the raw network (logits): the service applies the run's calibrator
    (``calibration.json``, read by ``load_run``) to either engine's softmax, and the export
    records that calibrator in its ``calibration`` metadata for readers of the file alone.
    The two must agree; when they do not, one of them was changed after the export, and
    serving would quietly answer with probabilities the exported file does not describe.
    A file exported before calibration existed records none, which agrees with an
    uncalibrated run (``{"method": "none"}``) only.

    Args:
        onnx_path: the run's ``model.onnx`` or ``model.int8.onnx`` (named in the error).
        metadata: its ``metadata_props`` (``onnx_metadata``).
        run: the loaded run whose ``trust.calibrator`` is compared.
        again: the ``medlens export`` options that make the file again (``--quantize int8``).

    Raises:
        ConfigError: the recorded calibrator differs from ``calibration.json``'s, or is not
            readable JSON; the message names both files and says to export again.
    """
    # as JSON gives it back (tuples become lists; floats round-trip exactly)
    current = json.loads(json.dumps(run.trust.calibrator.to_dict()))
    text = metadata.get("calibration")
    recorded: object = None
    if text is None:
        recorded, said = {"method": "none"}, "records no calibration"
    else:
        try:
            recorded = json.loads(text)
            said = f"records calibration {shown_record(recorded)}"
        except ValueError:
            said = "records an unreadable calibration"
    if recorded == current:
        return
    calibration = run.run_dir / layout.CALIBRATION
    raise ConfigError(
        "--engine",
        f"{onnx_path} {said}, but {calibration} holds {shown_record(current)}; the service "
        f"applies {layout.CALIBRATION}'s calibrator to the network's output, so "
        f"{onnx_path.name} no longer describes what would be served: export it again with "
        f"`medlens export {run.run_dir}{' ' + again if again else ''}` (or restore "
        f"{layout.CALIBRATION})",
    )
