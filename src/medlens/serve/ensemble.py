"""What ``/v1/predict`` computes for an ensemble (``serve.ensemble_model``): the answer of a
single run's ``analysis.classify``, from the ensemble's combined probabilities and decisions,
without a heatmap (``heatmap_omitted`` says why). Run in a worker thread."""

from __future__ import annotations

import time
from collections.abc import Callable
from typing import Any

import numpy as np

from medlens.errors import InputError
from medlens.run_folder import layout
from medlens.serve.analysis import decision_fields, sampled_uncertainty
from medlens.serve.ensemble_model import NO_HEATMAP, ServedEnsemble
from medlens.serve.inputs import Upload, for_model_dims
from medlens.serve.service_errors import model_stage
from medlens.trust.decisions import Decisions


def _no_checkpoint() -> None:
    return None


def _ood(decisions: Decisions) -> dict[str, Any] | None:
    """An ensemble's out-of-distribution flag: how many members flag the case (``score``),
    flagged when any does (above 0); null when no member has the score."""
    if decisions.ood is None or decisions.ood_scores is None:
        return None
    flagging = int(decisions.ood_scores[0])
    return {
        "score": float(flagging),
        "threshold": 0.0,
        "flagged": bool(decisions.ood[0]),
        "members_flagging": flagging,
    }


def classify_ensemble(
    model: ServedEnsemble,
    upload: Upload,
    heatmap: bool = True,
    checkpoint: Callable[[], None] = _no_checkpoint,
    uncertainty: str | None = None,
) -> dict[str, Any]:
    """The ensemble's calibrated probabilities, its decision (the class, or ``refer``), the
    model's class at its threshold (``predicted_class``), whether to refer the case (the
    ensemble's refer band, any member's out-of-distribution flag) and, with
    ``uncertainty="ensemble"``, the entropy and mutual information (nats) of the members'
    probabilities. The same numbers as ``medlens predict ENSEMBLE_DIR``.

    Raises:
        InputError: the image does not fit a member after its preprocessing (answered 422).
        ServiceError: 500 when a member or the ensemble's folder fails once the image
            fitted (``model_stage``).
    """
    started = time.perf_counter()
    ensemble = model.predictor
    prepared = [ensemble.prepare(for_model_dims(upload.image, model.spatial_dims))]
    checkpoint()
    folders = [ensemble.run_dir, *(run.run_dir for run in model.leaf_runs)]
    with model_stage(model.name, folders):
        decisions = ensemble.decisions(prepared, batch_size=1)
        probs = decisions.probs[0]
        if not np.all(np.isfinite(probs)):
            raise InputError(
                ensemble.run_dir / layout.ENSEMBLE,
                "the members give non-finite outputs (NaN or inf) for this image",
            )
        checkpoint()
        names = ensemble.class_names
        result: dict[str, Any] = {
            "model": model.name,
            "weights_sha256": model.weights_sha256,
            "engine": model.engine,
            "class_names": names,
            "probabilities": [float(p) for p in probs],
            **decision_fields(decisions, names),
            "refer_band": ensemble.trust.band.public(),
            "ood": _ood(decisions),
            "calibration": ensemble.trust.calibrator.method,
            "threshold": ensemble.threshold if len(names) == 2 else None,
            "uncertainty": None,
            "heatmap_png_base64": None,
        }
        if heatmap:
            result["heatmap_omitted"] = NO_HEATMAP
        if uncertainty is not None:
            samples = ensemble.samples(prepared, uncertainty, batch_size=1)
            result["uncertainty"] = sampled_uncertainty(uncertainty, samples)
            checkpoint()
    result["seconds"] = round(time.perf_counter() - started, 4)  # preprocessing to answer
    return result
