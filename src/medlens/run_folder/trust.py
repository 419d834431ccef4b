"""Reading what a run fitted on validation to say when not to trust a prediction: its
calibrator (``calibration.json``, with the class mix its probabilities assume), its refer
band (in ``labels.json``) and its out-of-distribution score (``ood.npz``). A run made before
them reads as uncalibrated, referring nothing, flagging nothing; a run made since records
its calibration (``{"method": "none"}`` when switched off), and its ``calibration.json`` must
be there and valid. Only adapting to a new class mix needs the recorded mix."""

from __future__ import annotations

from dataclasses import dataclass
from pathlib import Path
from typing import Any

import numpy as np

from medlens.errors import InputError
from medlens.run_folder import layout
from medlens.run_folder.files import read_json_object
from medlens.trust.calibrators import Calibrator, Uncalibrated, calibrator_from_dict
from medlens.trust.label_shift import check_prior
from medlens.trust.ood import MahalanobisDetector
from medlens.trust.refer import ReferBand


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
    """``calibration.json``'s calibrator, checked against the run's ``n_classes`` when given.

    The threshold and refer band of ``labels.json`` are chosen on calibrated probabilities,
    so a run that records a calibration (``metrics.json`` ``trust.calibration``, or a refer
    band in ``labels.json``: both came with calibration) must have its ``calibration.json``;
    only a run made before calibration existed, which records neither, reads as
    ``Uncalibrated`` without one. An uncalibrated run's file says ``{"method": "none"}``.

    Raises:
        InputError: naming the file when it is missing from a calibrated run, unreadable,
            records no method, or holds malformed parameters (naming the field).
    """
    path = Path(run_dir) / layout.CALIBRATION
    record = read_json_object(path)
    if record is None:
        evidence = _calibration_evidence(Path(run_dir))
        if evidence:
            raise InputError(
                path,
                f"missing, but {evidence}: its threshold and refer band were chosen on "
                "calibrated probabilities, and predicting without the calibrator would "
                "silently change probabilities and decisions; restore the file or train the "
                "run again",
            )
        return Uncalibrated()
    try:
        return calibrator_from_dict(record, n_classes)
    except InputError as exc:
        raise InputError(path, exc.reason) from None


def _calibration_evidence(run_dir: Path) -> str:
    """What in the run folder says it was made with calibration (``""`` when nothing does:
    a run from before calibration existed)."""
    metrics = read_json_object(run_dir / layout.METRICS) or {}
    trust = metrics.get("trust")
    calibration = trust.get("calibration") if isinstance(trust, dict) else None
    if isinstance(calibration, dict):
        method = calibration.get("method")
        return f"{layout.METRICS} records calibration method {method!r} (trust.calibration)"
    labels = read_json_object(run_dir / layout.LABELS) or {}
    if "refer" in labels:
        return f"{layout.LABELS} records a refer band, which came with calibration"
    return ""


def calibration_record(calibrator: Calibrator, source_prior: np.ndarray | None) -> dict[str, Any]:
    """What ``calibration.json`` holds: the calibrator's parameters, ``fitted_on: val`` and
    (when given) ``source_prior``, the class shares its probabilities assume
    (``medlens.trust.label_shift``), in class order."""
    record = {**calibrator.to_dict(), "fitted_on": "val"}
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
