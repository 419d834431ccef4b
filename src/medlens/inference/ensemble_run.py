"""An ensemble run folder (``medlens ensemble``) applied to new images.

Each member run is loaded from the path its ``ensemble.json`` recorded and applied with its
own preprocessing and calibrator; the members' probabilities are combined as the ensemble
was fitted (``soft`` and ``weighted``: their weights; ``stacking``: the logistic regression's
coefficients), then the ensemble's own calibrator, threshold and refer band apply. A case is
out of distribution when any member flags it (``ood_score``: how many do). ``--uncertainty ensemble`` reads the
members' disagreement.
"""

from __future__ import annotations

from collections.abc import Sequence
from pathlib import Path
from typing import Any

import numpy as np
from scipy.special import expit, softmax

from medlens.data.image import Image
from medlens.errors import ConfigError, InputError
from medlens.inference.decide import RunPredictor
from medlens.run_folder import layout
from medlens.run_folder.files import read_json
from medlens.run_folder.reader import read_decision_labels
from medlens.run_folder.trust import TrustRule, read_trust_rule
from medlens.trust.decisions import Decisions, decide

_EPS = 1e-6


def stacking_features(probs: Sequence[np.ndarray]) -> np.ndarray:
    """Log-odds of class 1 per member (binary), or log probabilities of every class."""
    clipped = [np.clip(p, _EPS, 1 - _EPS) for p in probs]
    if clipped[0].shape[1] == 2:
        return np.column_stack([np.log(p[:, 1]) - np.log1p(-p[:, 1]) for p in clipped])
    return np.column_stack([np.log(p) for p in clipped])


def combine_recorded(record: dict[str, Any], probs: Sequence[np.ndarray]) -> np.ndarray:
    """The ensemble's probabilities ``(N, K)`` from its members' ``probs``, as ``record``
    (``ensemble.json``) says it was fitted.

    Raises:
        InputError: a record without the combiner's numbers (key ``ensemble.json``).
    """
    combiner = record.get("combiner") or {}
    k = probs[0].shape[1]
    try:
        if "weights" in combiner:
            weights = np.asarray(combiner["weights"], dtype=float)
            return np.tensordot(weights, np.stack(probs), axes=1)
        coef = np.asarray(combiner["coef"], dtype=float)
        intercept = np.asarray(combiner["intercept"], dtype=float)
        classes = combiner.get("classes", list(range(k)))
        z = stacking_features(probs) @ coef.T + intercept
    except (KeyError, TypeError, ValueError):
        raise InputError(
            layout.ENSEMBLE, "the combiner's weights or coefficients are malformed"
        ) from None
    out = np.zeros((len(probs[0]), k))
    if z.shape[1] == 1:
        p1 = expit(z[:, 0])
        out[:, classes[0]], out[:, classes[1]] = 1.0 - p1, p1
    else:
        out[:, classes] = softmax(z, axis=1)
    return out


class EnsemblePredictor:
    """An ensemble run applied to images (the interface of ``RunPredictor``).

    Attributes:
        members: one predictor per member run, in the recorded order.
        record: ``ensemble.json``.
    """

    def __init__(
        self,
        run_dir: Path,
        members: list[RunPredictor | EnsemblePredictor],
        record: dict[str, Any],
        class_names: list[str],
        threshold: float,
        trust: TrustRule,
    ) -> None:
        self.run_dir = run_dir
        self.members = members
        self.record = record
        self._class_names = class_names
        self.threshold = threshold
        self.trust = trust

    @property
    def class_names(self) -> list[str]:
        return list(self._class_names)

    @property
    def volumes(self) -> bool:
        return self.members[0].volumes

    def prepare(self, image: Image) -> list[Any]:
        """The image prepared by each member's own preprocessing."""
        return [member.prepare(image) for member in self.members]

    def _member_decisions(
        self, prepared: list[Any], batch_size: int, sources: Sequence[str] | None = None
    ) -> list[Decisions]:
        return [
            member.decisions([case[m] for case in prepared], batch_size, sources)
            for m, member in enumerate(self.members)
        ]

    def decisions(
        self, prepared: list[Any], batch_size: int = 64, sources: Sequence[str] | None = None
    ) -> Decisions:
        """The combined, calibrated probabilities and the ensemble's decisions; a case is
        out of distribution when a member flags it (``ood_score``: how many members flag
        it), as in the ensemble's own ``predictions.csv``. ``sources`` name the inputs in
        errors."""
        members = self._member_decisions(prepared, batch_size, sources)
        combined = combine_recorded(self.record, [d.probs for d in members])
        probs = self.trust.calibrator.transform(combined) if len(combined) else combined
        scores = flags = None
        flagging = [d.ood for d in members if d.ood is not None]
        if flagging:
            flags = np.any(flagging, axis=0)
            scores = np.sum(flagging, axis=0).astype(float)
        threshold = self.threshold if len(self._class_names) == 2 else None
        return decide(probs, threshold, self.trust.band, scores, flags)

    def check_uncertainty(self, method: str) -> None:
        """Only ``ensemble`` applies: the members' disagreement.

        Raises:
            ConfigError: ``tta`` or ``mc_dropout`` (they sample one network).
        """
        from medlens.inference.uncertainty import check_method

        check_method(method)
        if method != "ensemble":
            raise ConfigError(
                "--uncertainty",
                f"{method} samples one network; {self.run_dir} is an ensemble of "
                f"{len(self.members)} runs: use --uncertainty ensemble",
            )

    def samples(self, prepared: list[Any], method: str, batch_size: int = 64) -> np.ndarray:
        """``(M, N, K)``: each member's calibrated probabilities."""
        self.check_uncertainty(method)
        return np.stack([d.probs for d in self._member_decisions(prepared, batch_size)])


def is_ensemble(run_dir: str | Path) -> bool:
    """Whether ``run_dir`` is an ensemble run folder (it has ``ensemble.json``)."""
    return (Path(run_dir) / layout.ENSEMBLE).is_file()


def load_predictor(
    run_dir: str | Path, device: str | None = None
) -> RunPredictor | EnsemblePredictor:
    """A run folder, single or ensemble, ready to apply to images.

    Raises:
        InputError: an incomplete folder, an ensemble with fewer than two members, or a
            member run that is no longer where the ensemble recorded it.
    """
    from medlens.inference.loaded_run import load_run

    run_dir = Path(run_dir)
    if not is_ensemble(run_dir):
        return RunPredictor(load_run(run_dir, device))
    record = read_json(run_dir / layout.ENSEMBLE, required=True)
    paths = [m.get("run") for m in record.get("members", []) if isinstance(m, dict)]
    if len(paths) < 2:
        raise InputError(
            run_dir / layout.ENSEMBLE, f"an ensemble needs 2+ member runs, it records {len(paths)}"
        )
    members = []
    for path in paths:
        if not path or not Path(path).is_dir():
            raise InputError(
                run_dir / layout.ENSEMBLE,
                f"member run {path} is not there any more (an ensemble keeps its members' paths)",
            )
        members.append(load_predictor(path, device))
    labels = read_decision_labels(run_dir)
    return EnsemblePredictor(
        run_dir,
        members,
        record,
        list(labels["class_names"]),
        float(labels["threshold"]),
        read_trust_rule(run_dir, labels),
    )
