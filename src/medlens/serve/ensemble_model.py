"""An ensemble run folder (``medlens ensemble``) served: its members loaded once at start-up,
shared by every ``/v1/predict`` request.

The ensemble answers as ``medlens predict ENSEMBLE_DIR`` does
(``medlens.inference.ensemble_run.EnsemblePredictor``): each member replays its own
preprocessing and calibrator, the members' probabilities are combined as the ensemble was
fitted, then the ensemble's calibrator, threshold and refer band apply, and a case is out of
distribution when any member flags it. Its uncertainty is the members' disagreement
(``uncertainty=ensemble``). It gives no Grad-CAM: there is no single network to explain.

Members run on PyTorch only; their forward passes keep no state, so concurrent requests
share them without a lock.
"""

from __future__ import annotations

import hashlib
import time
from dataclasses import dataclass, field
from pathlib import Path
from typing import Any

from medlens.errors import ConfigError
from medlens.inference.decide import RunPredictor
from medlens.inference.ensemble_run import EnsemblePredictor, load_predictor
from medlens.inference.loaded_run import LoadedRun
from medlens.inference.onnx import weights_sha256
from medlens.run_folder import layout
from medlens.serve.warm_up import warm_up
from medlens.tasks import Task

#: Why an ensemble's answer has no heatmap (``heatmap_omitted`` in its JSON).
NO_HEATMAP = (
    "an ensemble has no single network to explain: Grad-CAM is given for single runs only "
    "(ask one of its member runs for it)"
)


@dataclass
class ServedEnsemble:
    """One served ensemble run folder.

    Attributes:
        name: the ensemble folder's name; requests choose the model by it.
        predictor: the ensemble with its loaded members.
        weights_sha256: SHA-256 of ``ensemble.json`` and the members' weights digests, in
            order: it changes when the combination or any member's weights change.
        members: each member's name (its folder's) and weights digest.
        engine: always ``torch``.
        load_seconds: time to load and warm every member up at start-up (s).
    """

    name: str
    predictor: EnsemblePredictor
    weights_sha256: str
    members: list[dict[str, str]] = field(default_factory=list)
    engine: str = "torch"
    load_seconds: float = 0.0

    @property
    def leaf_runs(self) -> list[LoadedRun]:
        """The single runs the ensemble is made of (the members of nested ensembles too)."""
        return _leaf_runs(self.predictor)

    @property
    def task(self) -> Task:
        return self.leaf_runs[0].task

    @property
    def spatial_dims(self) -> int:
        shape = self.leaf_runs[0].input_shape
        return len(shape) - 1 if shape else 2

    def uncertainty_methods(self) -> list[str]:
        """The ``uncertainty=`` values the ensemble answers: its members' disagreement."""
        return ["ensemble"]

    def describe(self) -> dict[str, Any]:
        """What ``GET /v1/models`` says about the ensemble."""
        ensemble = self.predictor
        names = ensemble.class_names
        shape = self.leaf_runs[0].input_shape
        method = ensemble.record.get("method", "")
        return {
            "name": self.name,
            "task": self.task.name,
            "route": self.task.route,
            "class_names": names,
            "threshold": ensemble.threshold if len(names) == 2 else None,
            "input_shape": list(shape) if shape else None,
            "spatial_dims": self.spatial_dims,
            "engine": self.engine,
            "weights_sha256": self.weights_sha256,
            "model": f"{method} ensemble of {len(ensemble.members)} runs".strip(),
            "ensemble": {"method": method, "members": [dict(m) for m in self.members]},
            "heatmap": False,
            "calibration": ensemble.trust.calibrator.method,
            "refer_band": ensemble.trust.band.public(),
            "ood_threshold": None,
            "uncertainty": self.uncertainty_methods(),
        }


def _leaf_runs(predictor: RunPredictor | EnsemblePredictor) -> list[LoadedRun]:
    if isinstance(predictor, RunPredictor):
        return [predictor.run]
    return [run for member in predictor.members for run in _leaf_runs(member)]


def _folder(predictor: RunPredictor | EnsemblePredictor) -> Path:
    return Path(predictor.run.run_dir if isinstance(predictor, RunPredictor) else predictor.run_dir)


def _digest(predictor: RunPredictor | EnsemblePredictor) -> str:
    """A single run's ``model.pt`` digest; an ensemble's over ``ensemble.json`` and its
    members' digests."""
    if isinstance(predictor, RunPredictor):
        return weights_sha256(predictor.run.run_dir)
    digest = hashlib.sha256((Path(predictor.run_dir) / layout.ENSEMBLE).read_bytes())
    for member in predictor.members:
        digest.update(_digest(member).encode("ascii"))
    return digest.hexdigest()


def load_ensemble(run_dir: Path, name: str, engine: str = "torch") -> ServedEnsemble:
    """Load an ensemble run folder's members and warm each up with one forward pass.

    Args:
        run_dir: a folder made by ``medlens ensemble``.
        name: the name it is served under.
        engine: must be ``torch``.

    Raises:
        ConfigError: another engine.
        InputError: a member that is no longer where ``ensemble.json`` recorded it, that
            cannot be loaded, or whose network gives NaN or infinite outputs (naming its
            ``model.pt``).
    """
    if engine != "torch":
        raise ConfigError(
            "--engine",
            f"{name} is an ensemble: ensembles are served with --engine torch, not {engine}",
        )
    started = time.perf_counter()
    predictor = load_predictor(run_dir)
    assert isinstance(predictor, EnsemblePredictor)  # is_ensemble(run_dir) chose this loader
    for run in _leaf_runs(predictor):
        warm_up(run, run.run_dir / layout.MODEL)
    members = [
        {"name": _folder(member).name, "weights_sha256": _digest(member)}
        for member in predictor.members
    ]
    return ServedEnsemble(
        name=name,
        predictor=predictor,
        weights_sha256=_digest(predictor),
        members=members,
        load_seconds=time.perf_counter() - started,
    )
