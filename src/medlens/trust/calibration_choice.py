"""Which calibrator suits a run, judged on the validation split alone.

Each candidate is cross-fitted on the validation cases: fitted on k - 1 stratified folds and
applied to the held-out fold, so every validation case gets a probability from a calibrator
that did not see it. The pooled out-of-fold probabilities are scored by log loss (a proper
scoring rule: the one to choose by), ECE and Brier. In-sample validation figures would
favour the most flexible calibrator; the held-out ones do not.

Example:
    >>> table = cross_fitted_scores(val_probs, val_labels)  # doctest: +SKIP
    >>> best_by_log_loss(table)  # doctest: +SKIP
    'bcts'
"""

from __future__ import annotations

from collections.abc import Sequence
from typing import Any

import numpy as np
from numpy.typing import ArrayLike

from medlens.errors import InputError
from medlens.metrics.calibration import brier, ece
from medlens.trust.calibrators import fit_calibrator

#: The calibrators compared by default (``none`` is scored too, as the reference).
CANDIDATES: tuple[str, ...] = ("none", "temperature", "bcts", "dirichlet", "isotonic")
DEFAULT_FOLDS = 5
#: Probabilities are clipped to [EPS, 1] inside the log loss (isotonic steps reach 0).
EPS = 1e-6


def log_loss(labels: np.ndarray, probs: np.ndarray) -> float:
    """Mean negative log-likelihood of the true class (nats), probabilities clipped at
    ``EPS``."""
    return float(-np.mean(np.log(np.clip(probs[np.arange(len(labels)), labels], EPS, 1.0))))


def cross_fitted_scores(
    probs: ArrayLike,
    labels: ArrayLike,
    methods: Sequence[str] = CANDIDATES,
    folds: int = DEFAULT_FOLDS,
    seed: int = 0,
) -> dict[str, dict[str, Any]]:
    """Per method: ``log_loss``, ``ece`` and ``brier`` of its out-of-fold validation
    probabilities, and ``folds``.

    Args:
        probs: validation probabilities as the model gave them ``(N, K)``.
        labels: validation labels ``(N,)``.
        folds: at most this many (fewer when the rarest class has fewer cases).

    Raises:
        InputError: a class with fewer than 2 validation cases (nothing to hold out).
        ConfigError: an unknown method.
    """
    from sklearn.model_selection import StratifiedKFold

    p = np.asarray(probs, dtype=float)
    y = np.asarray(labels).astype(int).reshape(-1)
    counts = np.bincount(y, minlength=p.shape[1])
    if counts.min() < 2:
        raise InputError(
            "val",
            f"class {int(counts.argmin())} has {int(counts.min())} validation cases; "
            "cross-fitting a calibrator holds out at least one of each class",
        )
    k = int(min(folds, counts.min()))
    splits = list(StratifiedKFold(k, shuffle=True, random_state=seed).split(p, y))
    preds = p.argmax(axis=1)
    table: dict[str, dict[str, Any]] = {}
    for method in methods:
        held_out = np.empty_like(p)
        for fit_rows, out_rows in splits:
            calibrator = fit_calibrator(method, p[fit_rows], y[fit_rows], warn=False)
            held_out[out_rows] = calibrator.transform(p[out_rows])
        table[method] = {
            "log_loss": log_loss(y, held_out),
            "ece": ece(y, held_out, preds),
            "brier": brier(y, held_out, preds),
            "folds": k,
        }
    return table


def best_by_log_loss(table: dict[str, dict[str, Any]]) -> str:
    """The method with the lowest cross-fitted log loss (ties: the earlier in ``table``)."""
    return min(table, key=lambda method: table[method]["log_loss"])


def compared_on_validation(
    probs: ArrayLike, labels: ArrayLike, configured: str, seed: int = 0
) -> dict[str, Any]:
    """What a run records beside its calibrator: every candidate's cross-fitted validation
    scores (``scores``), the one with the lowest log loss (``best``) and the one the run
    applies (``configured``); or ``skipped`` with the reason when the validation split is
    too small to hold cases out. Nothing is switched: a user reads it, and chooses."""
    try:
        scores = cross_fitted_scores(probs, labels, seed=seed)
    except InputError as exc:
        return {"skipped": exc.reason, "configured": configured}
    return {"scores": scores, "best": best_by_log_loss(scores), "configured": configured}
