"""Reading what a run fitted on validation to say when not to trust a prediction: its
calibrator (``calibration.json``, with the class mix its probabilities assume), its refer
band (in ``labels.json``) and its out-of-distribution score (``ood.npz``). A run made before
them reads as uncalibrated, referring nothing, flagging nothing; a run made since records
its calibration (``{"method": "none"}`` when switched off) in ``config.yaml`` and
``metrics.json`` too, and its ``calibration.json`` must be there, valid, of a method its task
fits and the run records, fitted on validation. Only adapting to a new class mix needs the
recorded mix."""

from __future__ import annotations

from dataclasses import dataclass
from pathlib import Path
from typing import Any

import numpy as np

from medlens.config import CalibrationConfig
from medlens.errors import InputError
from medlens.run_folder import layout
from medlens.run_folder.files import read_config_yaml, read_json_object
from medlens.run_folder.reader import read_run_task
from medlens.tasks import SEGMENTATION, Task
from medlens.trust.calibrators import METHODS, Calibrator, Uncalibrated, calibrator_from_dict
from medlens.trust.label_shift import check_prior
from medlens.trust.ood import MahalanobisDetector
from medlens.trust.refer import ReferBand

#: What a task's calibrated probabilities feed: why predicting without the calibrator is wrong.
_WHAT_CALIBRATION_FEEDS: dict[str, str] = {
    SEGMENTATION.name: (
        "the uncertainty maps and scores of predict --uncertainty read its calibrated "
        "per-voxel probabilities (its masks and threshold keep their raw meaning), and "
        "predicting without the calibrator would silently change them"
    ),
}
_CALIBRATION_FEEDS = (
    "its threshold and refer band were chosen on calibrated probabilities, and predicting "
    "without the calibrator would silently change probabilities and decisions"
)
#: The split medlens fits every calibrator on (``fitted_on`` in ``calibration.json``).
FITTED_ON = "val"
_AGAIN = "restore the run's own file or train the run again"


@dataclass(frozen=True)
class TrustRule:
    """How a run's probabilities become decisions it stands by.

    Attributes:
        calibrator: applied to the engine's probabilities before anything else.
        band: the cases referred to a human (on the calibrated probabilities).
        ood: the out-of-distribution score and its threshold, or None.
    """

    calibrator: Calibrator = Uncalibrated()
    band: ReferBand = ReferBand()
    ood: MahalanobisDetector | None = None


def read_calibrator(run_dir: str | Path, n_classes: int | None = None) -> Calibrator:
    """``calibration.json``'s calibrator, checked against the run's ``n_classes`` when given
    and against what the rest of the run folder records.

    A classification run's threshold and refer band were chosen on calibrated probabilities;
    a segmentation run's uncertainty maps read them. So a run that records a calibration
    (``metrics.json`` ``trust.calibration``, ``calibration.method`` in the ``config.yaml``
    of a task that calibrates, or a refer band in ``labels.json``: all came with
    calibration) must have its ``calibration.json``, and the file must agree with them;
    only a run made before calibration existed, which records none of them (its
    ``config.yaml`` has no ``calibration`` key: read raw, not with the schema's default),
    reads as ``Uncalibrated`` without one. An uncalibrated run's file says
    ``{"method": "none"}``.

    Raises:
        InputError: naming the file when it is missing from a calibrated run, unreadable,
            records no method, a method the run's task does not fit (segmentation:
            temperature or none), malformed parameters (naming the field), a ``fitted_on``
            other than ``val``, or a method other than the one ``metrics.json`` or
            ``config.yaml`` records (naming that file).
    """
    run_dir = Path(run_dir)
    path = run_dir / layout.CALIBRATION
    record = read_json_object(path)
    recorded = _recorded_calibration(run_dir)
    if record is None:
        evidence = recorded.evidence()
        if evidence:
            feeds = _WHAT_CALIBRATION_FEEDS.get(recorded.task.name, _CALIBRATION_FEEDS)
            raise InputError(path, f"missing, but {evidence}: {feeds}; {_AGAIN}")
        return Uncalibrated()
    _check_method_fits_task(record, recorded.task, path)
    try:
        calibrator = calibrator_from_dict(record, n_classes)
    except InputError as exc:
        raise InputError(path, exc.reason) from None
    contradiction = recorded.contradiction(record) or recorded.other_parameters(
        calibrator, n_classes
    )
    if contradiction:
        raise InputError(path, f"{contradiction}; {_AGAIN}")
    return calibrator


@dataclass(frozen=True)
class _RecordedCalibration:
    """What a run folder records about its calibration outside ``calibration.json``.

    Attributes:
        task: the run's task (``config.yaml``).
        metrics: ``metrics.json``'s ``trust.calibration``, or None.
        config_method: ``calibration.method`` of the raw ``config.yaml`` of a task that
            calibrates, or None when it has no ``calibration`` key (a run from before).
        refer: ``labels.json`` records a refer band (which came with calibration).
    """

    task: Task
    metrics: dict[str, Any] | None
    config_method: Any
    refer: bool

    def evidence(self) -> str:
        """What says the run was made with calibration (``""`` when nothing does)."""
        if self.metrics is not None:
            method = self.metrics.get("method")
            return f"{layout.METRICS} records calibration method {method!r} (trust.calibration)"
        if self.config_method is not None:
            return f"{layout.CONFIG} records calibration.method {self.config_method!r}"
        if self.refer:
            return f"{layout.LABELS} records a refer band, which came with calibration"
        return ""

    def contradiction(self, record: dict[str, Any]) -> str:
        """How ``calibration.json``'s ``record`` contradicts the run's own record (its
        method, or where it was fitted), or ``""``."""
        method = record["method"]
        in_metrics = (self.metrics or {}).get("method", method)
        if in_metrics != method:
            return (
                f"records method {method!r}, but {layout.METRICS} records calibration "
                f"method {in_metrics!r} (trust.calibration.method)"
            )
        if self.config_method is not None and self.config_method != method:
            return (
                f"records method {method!r}, but {layout.CONFIG} records calibration.method "
                f"{self.config_method!r}"
            )
        fitted_on = record.get("fitted_on", FITTED_ON)
        if fitted_on != FITTED_ON:
            return (
                f"records fitted_on {fitted_on!r}, but medlens fits calibration on the "
                f"validation split only (fitted_on {FITTED_ON!r}): a calibrator fitted on "
                "other cases was not made by training this run"
            )
        return ""

    def other_parameters(self, calibrator: Calibrator, n_classes: int | None) -> str:
        """How ``calibrator`` (``calibration.json``'s) differs from the one ``metrics.json``
        records with its scores (``trust.calibration`` holds the same parameters), or ``""``
        when they agree or ``metrics.json`` records no readable parameters."""
        if self.metrics is None or self.metrics.get("method") != calibrator.method:
            return ""
        try:
            scored = calibrator_from_dict(self.metrics, n_classes)
        except InputError:  # a record without parameters: nothing to compare
            return ""
        if scored == calibrator:
            return ""
        held, recorded = calibrator.parameters(), scored.parameters()
        fields = sorted(k for k in {*held, *recorded} if held.get(k) != recorded.get(k))
        detail = (
            f" ({', '.join(fields)}: {shown_record({k: held.get(k) for k in fields}, 80)} against "
            f"{shown_record({k: recorded.get(k) for k in fields}, 80)})"
            if fields
            else ""
        )
        return (
            f"holds other {calibrator.method} parameters than the calibrator "
            f"{layout.METRICS} records with its scores (trust.calibration){detail}"
        )


def _recorded_calibration(run_dir: Path) -> _RecordedCalibration:
    """What ``metrics.json``, ``config.yaml`` and ``labels.json`` record about calibration."""
    task = read_run_task(run_dir)
    metrics = read_json_object(run_dir / layout.METRICS) or {}
    trust = metrics.get("trust")
    calibration = trust.get("calibration") if isinstance(trust, dict) else None
    config_method = None
    if "calibration" in task.trust_sections:  # other tasks' configs hold the unused default
        section = read_config_yaml(run_dir / layout.CONFIG).get("calibration")
        if isinstance(section, dict):  # the raw key: a run from before has none
            config_method = section.get("method", CalibrationConfig().method)
    labels = read_json_object(run_dir / layout.LABELS) or {}
    return _RecordedCalibration(
        task=task,
        metrics=calibration if isinstance(calibration, dict) else None,
        config_method=config_method,
        refer="refer" in labels,
    )


def _check_method_fits_task(record: dict[str, Any], task: Task, path: Path) -> None:
    """Refuse a known calibration method that ``task``'s runs never fit (segmentation:
    temperature or none), before its parameters are read.

    Raises:
        InputError: naming ``path`` and the methods the task fits.
    """
    method = record.get("method")
    fits = task.calibration_methods or METHODS
    if isinstance(method, str) and method in METHODS and method not in fits:
        raise InputError(
            path,
            f"records method {method!r}, but {task.name} runs fit only "
            f"{' or '.join(fits)} (calibration.method), so training did not write it; "
            f"{_AGAIN}",
        )


def calibration_record(calibrator: Calibrator, source_prior: np.ndarray | None) -> dict[str, Any]:
    """What ``calibration.json`` holds: the calibrator's parameters, ``fitted_on: val`` and
    (when given) ``source_prior``, the class shares its probabilities assume
    (``medlens.trust.label_shift``), in class order."""
    record = {**calibrator.to_dict(), "fitted_on": FITTED_ON}
    if source_prior is not None:
        record["source_prior"] = [float(share) for share in source_prior]
    return record


def read_source_prior(run_dir: str | Path, n_classes: int) -> np.ndarray:
    """The class shares recorded in ``calibration.json`` (``calibration_record``).

    Raises:
        InputError: naming the file when it is absent, has no ``source_prior`` (a run made
            before it was recorded: train it again) or holds malformed shares.
    """
    path = Path(run_dir) / layout.CALIBRATION
    record = read_json_object(path)
    if record is None or "source_prior" not in record:
        raise InputError(
            path,
            "records no source_prior (the class mix the calibrated probabilities assume), "
            "which adapting to a new class mix needs; runs made before it was recorded must "
            "be trained again",
        )
    try:
        return check_prior(record["source_prior"], n_classes)
    except (InputError, TypeError, ValueError) as exc:
        reason = exc.reason if isinstance(exc, InputError) else "malformed class shares"
        raise InputError(path, f"source_prior: {reason}") from None


def read_refer_band(labels: dict[str, Any], run_dir: str | Path) -> ReferBand:
    """The refer band recorded under ``refer`` in ``labels.json`` (none when absent)."""
    try:
        return ReferBand.from_dict(labels.get("refer"))
    except InputError as exc:
        raise InputError(Path(run_dir) / layout.LABELS, exc.reason) from None


def read_ood_detector(run_dir: str | Path) -> MahalanobisDetector | None:
    """``ood.npz``'s detector; None when the file is absent.

    Raises:
        InputError: naming the file when it is unreadable or malformed.
    """
    path = Path(run_dir) / layout.OOD
    if not path.is_file():
        return None
    try:
        with np.load(path, allow_pickle=False) as arrays:
            return MahalanobisDetector.from_arrays(arrays)
    except InputError as exc:
        raise InputError(path, exc.reason) from None
    except (OSError, ValueError) as exc:
        raise InputError(path, f"not a readable .npz file ({type(exc).__name__})") from None


def _class_count(labels: dict[str, Any]) -> int | None:
    names = labels.get("class_names")
    return len(names) if isinstance(names, list) else None


def read_trust_rule(run_dir: str | Path, labels: dict[str, Any]) -> TrustRule:
    """The run's calibrator (checked against the class names of its ``labels.json`` document
    ``labels``), refer band (from ``labels``) and out-of-distribution detector."""
    return TrustRule(
        calibrator=read_calibrator(run_dir, _class_count(labels)),
        band=read_refer_band(labels, run_dir),
        ood=read_ood_detector(run_dir),
    )


def shown_record(record: object, limit: int = 160) -> str:
    """A calibrator record (or some of its parameters) for an error message: its JSON, cut
    to ``limit`` characters when longer (an isotonic step function, a Dirichlet matrix)."""
    import json

    text = json.dumps(record)
    return text if len(text) <= limit else text[: limit - 3] + "..."
