"""A batch of cases decided: the class at the run's threshold, and whether a human should
decide instead — because the case lies in the refer band (``uncertain``) or outside the
training distribution (``out_of_distribution``, which wins when both hold).

Every output that lists cases (``predictions.csv`` of a run, ``medlens predict``'s CSV and
Parquet, the service's JSON, the DICOM SR) takes its columns from ``Decisions``, so a
flagged case is marked the same way everywhere and never reads as an ordinary decision.
"""

from __future__ import annotations

from collections.abc import Sequence
from dataclasses import dataclass
from typing import Any

import numpy as np

from medlens.metrics.threshold import predict_labels
from medlens.trust.refer import ReferBand

#: The ``decision`` of a referred case.
REFER = "refer"
UNCERTAIN = "uncertain"
OUT_OF_DISTRIBUTION = "out_of_distribution"


@dataclass(frozen=True)
class Decisions:
    """What a run decides for ``N`` cases.

    Attributes:
        probs: ``(N, K)`` calibrated probabilities.
        preds: ``(N,)`` the class at the run's threshold (arg-max for more classes).
        in_band: ``(N,)`` inside the refer band.
        ood_scores: ``(N,)`` the out-of-distribution score, or None when the run has none.
        ood: ``(N,)`` flagged out of distribution, or None.
    """

    probs: np.ndarray
    preds: np.ndarray
    in_band: np.ndarray
    ood_scores: np.ndarray | None = None
    ood: np.ndarray | None = None

    @property
    def referred(self) -> np.ndarray:
        """``(N,)`` bool: referred to a human, for either reason."""
        return self.in_band if self.ood is None else (self.in_band | self.ood)

    def reason(self, k: int) -> str:
        """Why case ``k`` is referred (``out_of_distribution`` or ``uncertain``), or ``""``."""
        if self.ood is not None and self.ood[k]:
            return OUT_OF_DISTRIBUTION
        return UNCERTAIN if self.in_band[k] else ""

    def decision(self, k: int, class_names: Sequence[str]) -> str:
        """Case ``k``'s decision: a class name, or ``refer``."""
        return REFER if self.referred[k] else class_names[int(self.preds[k])]

    def row(self, k: int, class_names: Sequence[str]) -> dict[str, Any]:
        """Case ``k``'s trust columns: ``decision``, ``refer`` (0/1), ``refer_reason`` and,
        when the run has an out-of-distribution score, ``ood_score`` and ``ood`` (0/1)."""
        row: dict[str, Any] = {
            "decision": self.decision(k, class_names),
            "refer": int(self.referred[k]),
            "refer_reason": self.reason(k),
        }
        if self.ood is not None and self.ood_scores is not None:
            row["ood_score"] = float(self.ood_scores[k])
            row["ood"] = int(self.ood[k])
        return row

    def counts(self) -> dict[str, int]:
        """``{"referred": ..., "out_of_distribution": ...}`` over the batch."""
        return {
            "referred": int(self.referred.sum()),
            "out_of_distribution": 0 if self.ood is None else int(self.ood.sum()),
        }


def decide(
    probs: np.ndarray,
    threshold: float | None,
    band: ReferBand,
    ood_scores: np.ndarray | None = None,
    ood_flags: np.ndarray | None = None,
) -> Decisions:
    """The decisions for calibrated ``probs`` ``(N, K)``: the class at ``threshold`` (two
    classes) or the arg-max, the refer band, and the out-of-distribution flags if given."""
    p = np.asarray(probs, dtype=float)
    preds = predict_labels(p, threshold) if len(p) else np.zeros(0, dtype=np.intp)
    in_band = band.refers(p) if len(p) else np.zeros(0, dtype=bool)
    return Decisions(p, preds, in_band, ood_scores, ood_flags)
