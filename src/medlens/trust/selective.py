"""Selective prediction: keep the cases a model is most confident about, refer the rest.

A confidence score orders the cases; keeping the top share ``c`` (the coverage) gives the
kept cases' risk and balanced accuracy. The risk-coverage curve runs over every coverage;
its area (AURC, Geifman and El-Yaniv 2017) is lower for a better ordering.

Risk: ``error`` is the error rate of the kept cases (the usual AURC); ``balanced`` is one
minus their balanced accuracy (the mean recall over the classes present), the risk the
run's threshold rule weighs (Youden's J = 2 balanced accuracy - 1) and the one that counts
when one class is rare; ``weighted`` is the class-weighted error rate of the kept cases,
each case weighted by the inverse of its class's count among all the cases: the same
weighing of the classes, but defined from the first kept case on (``balanced`` is undefined
or jumps to 0.5 while the kept cases hold one class only).

Confidence scores:
    stratified (the default order): cases are ranked within the class they were decided to
        be, by the probability of that decision, and a case's score is its rank as a share of
        that class (1 = the most probable of its class). Keeping the top share ``c`` keeps
        about the share ``c`` of every decided class, so referring cannot trade one class's
        recall for another's: the order the run's balanced threshold rule (Youden's J) calls
        for, where one class is rare or the threshold is far from 0.5. It depends only on the
        order of each class's probabilities, so it is the same before and after a monotone
        calibration and wherever the threshold lies.
    decision: the calibrated probability of the class the run decided (at its threshold):
        the probability that the decision is right, the score whose order minimises the
        expected error of the kept cases when the probabilities are calibrated. It differs
        from max-softmax only for two classes and a threshold away from 0.5: a case between
        the threshold and 0.5 is decided class 1 with p(class 1) < 0.5, which max-softmax
        counts as a confident class 0.
    margin: two classes, the distance of a case's log-odds from the log-odds of the
        threshold (the decision's probability under balanced priors); recorded beside it.
    max_softmax: the largest probability, whatever the decision rule (the plain baseline).
"""

from __future__ import annotations

from collections.abc import Sequence
from typing import Any

import numpy as np
from numpy.typing import ArrayLike

from medlens.trust.calibrators import binary_log_odds

#: The risks a risk-coverage curve can count (see the module's docstring).
RISKS = ("error", "balanced", "weighted")
#: The coverages of the report's table (shares of cases kept).
COVERAGES = (1.0, 0.95, 0.9, 0.8, 0.7, 0.5)


def margin_confidence(probs: ArrayLike, threshold: float | None) -> np.ndarray:
    """``(N,)``: ``|log-odds(p1) - log-odds(threshold)|`` for two classes, else max p."""
    p = np.asarray(probs, dtype=float)
    if p.shape[1] == 2 and threshold is not None:
        return np.abs(binary_log_odds(p[:, 1]) - binary_log_odds(np.asarray(threshold)))
    return p.max(axis=1)


def decision_confidence(probs: ArrayLike, preds: ArrayLike) -> np.ndarray:
    """``(N,)``: each case's probability of the class it was decided to be."""
    p = np.asarray(probs, dtype=float)
    return p[np.arange(len(p)), np.asarray(preds, dtype=int)]


def stratified_confidence(probs: ArrayLike, preds: ArrayLike) -> np.ndarray:
    """``(N,)`` in (0, 1]: each case's rank among the cases decided the same class, by the
    probability of its decision, divided by that class's count (ties keep case order)."""
    decided = np.asarray(preds, dtype=int)
    confidence = decision_confidence(probs, decided)
    share = np.zeros(len(decided), dtype=float)
    for k in np.unique(decided):
        members = np.flatnonzero(decided == k)
        rank = np.empty(len(members), dtype=float)
        # ascending confidence; among ties the later case ranks lower, so that the earlier
        # one is kept first, as ``_order`` keeps it
        ascending = np.lexsort((-np.arange(len(members)), confidence[members]))
        rank[ascending] = np.arange(1, len(members) + 1)
        share[members] = rank / len(members)
    return share


def max_softmax(probs: ArrayLike) -> np.ndarray:
    """``(N,)``: the largest class probability of each case."""
    return np.asarray(probs, dtype=float).max(axis=1)


def _order(confidence: ArrayLike) -> np.ndarray:
    """Case indices, most confident first (ties kept in case order)."""
    return np.argsort(-np.asarray(confidence, dtype=float), kind="mergesort")


def risk_coverage(
    labels: ArrayLike, preds: ArrayLike, confidence: ArrayLike, risk: str = "error"
) -> tuple[np.ndarray, np.ndarray]:
    """``(coverage, risk)``, both ``(N,)``: the risk of the ``k`` most confident cases
    (coverage ``k / N``, k = 1..N): their error rate (``risk="error"``), one minus their
    balanced accuracy (``risk="balanced"``) or their class-weighted error rate
    (``risk="weighted"``)."""
    if risk not in RISKS:
        raise ValueError(f"unknown risk {risk!r}; use {', '.join(RISKS)}")
    order = _order(confidence)
    y, p = np.asarray(labels)[order], np.asarray(preds)[order]
    k = np.arange(1, len(order) + 1)
    if risk == "error":
        return k / len(order), np.cumsum(y != p) / k
    if risk == "weighted":
        _, index, counts = np.unique(y, return_inverse=True, return_counts=True)
        weight = 1.0 / counts[index]
        return k / len(order), np.cumsum(weight * (y != p)) / np.cumsum(weight)
    recalls = []
    for c in np.unique(y):
        seen = np.cumsum(y == c)
        right = np.cumsum((y == c) & (p == c))
        recalls.append(np.where(seen > 0, right / np.maximum(seen, 1), np.nan))
    balanced = np.nanmean(np.vstack(recalls), axis=0) if recalls else np.full(len(k), np.nan)
    return k / len(order), 1.0 - balanced


def aurc(labels: ArrayLike, preds: ArrayLike, confidence: ArrayLike, risk: str = "error") -> float:
    """Area under the risk-coverage curve: the mean risk over k = 1..N kept cases (lower is
    better; about the risk of all cases when the ordering is random)."""
    _, values = risk_coverage(labels, preds, confidence, risk)
    return float(values.mean()) if values.size else float("nan")


def balanced_accuracy(labels: ArrayLike, preds: ArrayLike) -> float:
    """The mean recall over the classes present in ``labels`` (NaN with no case)."""
    y, p = np.asarray(labels), np.asarray(preds)
    recalls = [float((p[y == c] == c).mean()) for c in np.unique(y)]
    return float(np.mean(recalls)) if recalls else float("nan")


def kept_cases(confidence: ArrayLike, coverage: float) -> np.ndarray:
    """``(N,)`` bool: the ``ceil(coverage * N)`` most confident cases."""
    order = _order(confidence)
    keep = np.zeros(len(order), dtype=bool)
    keep[order[: int(np.ceil(coverage * len(order) - 1e-9))]] = True
    return keep


def coverage_table(
    labels: ArrayLike,
    preds: ArrayLike,
    confidence: ArrayLike,
    coverages: Sequence[float] = COVERAGES,
) -> list[dict[str, Any]]:
    """One row per coverage: ``coverage``, ``kept`` (cases), ``balanced_accuracy`` and
    ``risk`` (error rate) of the kept cases."""
    y, p = np.asarray(labels), np.asarray(preds)
    rows = []
    for c in coverages:
        keep = kept_cases(confidence, c)
        rows.append(
            {
                "coverage": float(c),
                "kept": int(keep.sum()),
                "balanced_accuracy": balanced_accuracy(y[keep], p[keep]),
                "risk": float((y[keep] != p[keep]).mean()) if keep.any() else float("nan"),
            }
        )
    return rows
