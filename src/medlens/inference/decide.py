"""A classification run's decisions for prepared inputs: calibrated probabilities, the class
at its threshold, the refer band, the out-of-distribution flag, and (on request) sampled
uncertainty. ``RunPredictor`` is what ``medlens predict`` asks of a single run;
``medlens.inference.ensemble_run.EnsemblePredictor`` answers the same for an ensemble."""

from __future__ import annotations

from collections.abc import Sequence
from typing import Any

import numpy as np
import torch

from medlens.data.image import Image
from medlens.errors import ConfigError
from medlens.inference.loaded_run import LoadedRun, predict_with_features, prepare_input
from medlens.trust.decisions import Decisions, decide


def decisions_of(run: LoadedRun, probs: np.ndarray, features: np.ndarray | None) -> Decisions:
    """The run's decisions for calibrated ``probs`` ``(N, K)``, flagging out-of-distribution
    cases from their ``features`` ``(N, D)`` when the run has the score."""
    scores = flags = None
    if run.trust.ood is not None and features is not None:
        scores, flags = run.trust.ood.flags(features)
    threshold = run.threshold if len(run.class_names) == 2 else None
    return decide(probs, threshold, run.trust.band, scores, flags)


def ood_features(
    run: LoadedRun, arrays: list[np.ndarray], feature_model: torch.nn.Module | None = None
) -> np.ndarray | None:
    """The pooled penultimate features ``(N, D)`` the run's out-of-distribution score reads
    (from ``feature_model``, default the run's network), or None when it has no score."""
    from medlens.features.deep import extract_deep_features

    if run.trust.ood is None:
        return None
    model = feature_model if feature_model is not None else run.model
    return extract_deep_features(model, arrays, device=run.device, progress=False)


class RunPredictor:
    """One run applied to prepared inputs.

    Args:
        run: the loaded run.
        feature_model: the PyTorch network for the out-of-distribution features when
            ``run.model`` is another engine.
    """

    def __init__(self, run: LoadedRun, feature_model: torch.nn.Module | None = None) -> None:
        self.run = run
        self.feature_model = feature_model

    @property
    def class_names(self) -> list[str]:
        return list(self.run.class_names)

    @property
    def volumes(self) -> bool:
        """Whether the run reads volumes (a DICOM folder is then one series)."""
        return self.run.input_shape is not None and len(self.run.input_shape) == 4

    def prepare(self, image: Image) -> np.ndarray:
        """The run's preprocessing replayed on ``image`` (``prepare_input``)."""
        return prepare_input(self.run, image)

    def decisions(
        self, prepared: list[Any], batch_size: int = 64, sources: Sequence[str] | None = None
    ) -> Decisions:
        """Calibrated probabilities, decisions, refer band and out-of-distribution flags.
        ``sources`` name the inputs in errors (default: their position)."""
        probs, features = predict_with_features(
            self.run, prepared, batch_size, feature_model=self.feature_model, sources=sources
        )
        return decisions_of(self.run, probs, features)

    def check_uncertainty(self, method: str) -> None:
        """Refuse an uncertainty method the run cannot give.

        Raises:
            ConfigError: ``ensemble`` (a single run is an ensemble of one member), or
                ``mc_dropout`` for a network without dropout.
        """
        from medlens.inference.uncertainty import check_mc_dropout, check_method

        check_method(method)
        if method == "ensemble":
            raise ConfigError(
                "--uncertainty",
                f"ensemble needs an ensemble run folder (made by medlens ensemble) of 2+ "
                f"members; {self.run.run_dir} is a single run, an ensemble of one member, "
                "whose members cannot disagree (use tta or mc_dropout)",
            )
        if method == "mc_dropout":
            check_mc_dropout(self.run.model, self.run.run_dir)

    def samples(self, prepared: list[Any], method: str, batch_size: int = 64) -> np.ndarray:
        """``(S, N, K)`` calibrated probabilities of the ``method``'s samples."""
        from medlens.inference.uncertainty import sample_probabilities

        self.check_uncertainty(method)
        return sample_probabilities(
            self.run.model,
            prepared,
            method,
            self.run.device,
            self.run.trust.calibrator.transform,
            batch_size,
        )
