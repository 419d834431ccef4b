"""Label shift: the class mix of a batch of cases from a new site, estimated without its
labels, and the probabilities adapted to it (Saerens, Latinne & Decaestecker 2002).

A calibrator fitted on validation gives probabilities for validation's class mix. At a site
where the disease is rarer or commoner, the same image should get another probability:
with ``p_s(y | x)`` the calibrated probabilities, ``pi_s`` the class mix they assume and
``pi_t`` the new site's,

    p_t(y | x) = p_s(y | x) * pi_t(y) / pi_s(y) / sum_k p_s(k | x) * pi_t(k) / pi_s(k).

``pi_t`` is unknown; the EM algorithm estimates it by maximum likelihood from the batch's
calibrated probabilities alone (repeat: adapt with the current ``pi_t``, set ``pi_t`` to the
mean adapted probability); for two classes the same maximum is found by bisection, which
also lands on a maximum at the edge that EM only creeps towards. Alexandari et al. (2020) found this hard to beat when the
probabilities are calibrated first, as medlens does.

``pi_s`` is the mean calibrated probability over the validation cases, not validation's label
frequencies: then EM run on the validation cases themselves finds no shift at all, whatever
bias the calibrator left (temperature scaling has no intercept).

Only the probabilities change. For two classes the adaptation multiplies the odds by one
constant, so the ranking (AUC) and the run's decisions at its threshold (mapped with them)
are unchanged; medlens keeps the run's decisions and reports the adapted probabilities
beside the calibrated ones.

Assumption: only the class mix changed, not what each class looks like (``p(x | y)``). A
batch from another modality or scanner breaks it; the out-of-distribution flag is there for
that, and flagged cases are left out of the estimate.

Example:
    >>> shift = estimate_prior_shift(test_probs, source_prior)  # doctest: +SKIP
    >>> shift.target_prior, shift.transform(test_probs)  # doctest: +SKIP
"""

from __future__ import annotations

from dataclasses import dataclass, field
from typing import Any

import numpy as np
from numpy.typing import ArrayLike

from medlens.errors import InputError

#: Fewest cases whose class mix is estimated: below it the estimate is mostly noise.
MIN_CASES = 30
#: EM stops when no class share moves by more than this between iterations (share units,
#: 0-1: far below any precision the batch can give).
TOLERANCE = 1e-6
#: EM gives up here. A flat likelihood (a model that barely tells the classes apart) creeps
#: towards the edge this slowly; the estimate then carries a warning.
MAX_ITERATIONS = 1000
#: Halvings of [0, 1] that place a two-class share: 2**-40 is far below any precision.
_BISECTIONS = 40
#: Bootstrap resamples run through EM together, at most this many probabilities at once.
_CHUNK_VALUES = 4_000_000
#: Bootstrap resamples of the batch for the 95% interval of each class share.
N_BOOTSTRAP = 200
#: A class share estimated below this sits at the edge of what EM can return: the
#: likelihood kept rising towards "this class is absent", which a weak or miscalibrated
#: model produces as readily as a batch without the class.
EDGE_SHARE = 1e-3
#: A 95% interval wider than this (share units, 0-1) says the batch cannot pin its mix down.
MAX_INTERVAL_WIDTH = 0.5


def _probabilities(probs: ArrayLike, what: str = "probabilities") -> np.ndarray:
    p = np.asarray(probs, dtype=float)
    if p.ndim != 2 or p.shape[1] < 2:
        raise InputError(what, f"expected shape (N, K) with K >= 2, got {p.shape}")
    if not np.isfinite(p).all() or p.min() < 0 or p.max() > 1:
        raise InputError(what, "must be finite numbers in [0, 1]")
    off = np.abs(p.sum(axis=1) - 1.0)
    if len(p) and off.max() > 1e-3:
        raise InputError(
            what, f"each case's probabilities must sum to 1 (case {int(off.argmax())} does not)"
        )
    return p


def check_prior(prior: ArrayLike, n_classes: int, what: str = "class mix") -> np.ndarray:
    """``prior`` as a float array of ``n_classes`` positive shares summing to 1.

    Raises:
        InputError: a wrong length, a share that is not a positive finite number, or shares
            that do not sum to 1 (within 1e-6).
    """
    pi = np.asarray(prior, dtype=float)
    if pi.shape != (n_classes,):
        raise InputError(what, f"expected {n_classes} class shares, got shape {pi.shape}")
    if not np.isfinite(pi).all() or (pi <= 0).any():
        raise InputError(what, f"every class share must be a positive number, got {pi.tolist()}")
    if abs(pi.sum() - 1.0) > 1e-6:
        raise InputError(what, f"class shares must sum to 1, got {pi.sum():.6f}")
    return pi


def adapt_to_prior(
    probs: ArrayLike, source_prior: ArrayLike, target_prior: ArrayLike
) -> np.ndarray:
    """Probabilities ``(N, K)`` for the class mix ``target_prior`` instead of
    ``source_prior`` (Bayes' rule with ``p(x | y)`` unchanged)."""
    p = _probabilities(probs)
    weights = np.asarray(target_prior, dtype=float) / check_prior(source_prior, p.shape[1])
    adapted = p * weights
    total = adapted.sum(axis=1, keepdims=True)
    # a row that is 0 wherever the weight is positive keeps its (degenerate) probabilities
    return np.divide(adapted, total, out=p.copy(), where=total > 0)


def ml_prior(
    probs: np.ndarray, source_prior: np.ndarray, tol: float = TOLERANCE
) -> tuple[np.ndarray, int]:
    """The maximum-likelihood class mix of the cases behind ``probs`` (EM started at
    ``source_prior``; bisection for two classes), and the iterations it took
    (``MAX_ITERATIONS``: EM did not settle)."""
    priors, iterations = _ml_priors(probs[None], source_prior, tol)
    return priors[0], int(iterations[0])


def _ml_priors(
    probs: np.ndarray, source_prior: np.ndarray, tol: float = TOLERANCE
) -> tuple[np.ndarray, np.ndarray]:
    """The maximum-likelihood class mixes ``(B, K)`` of ``B`` batches at once (``probs``
    ``(B, N, K)``) and the iterations each took.

    More than two classes: EM; a batch stops once no share moves by more than ``tol``. Two
    classes: the same maximum by bisection on the log-likelihood's derivative, which is
    decreasing in the share of class 1. EM creeps towards an edge maximum (a flat likelihood,
    from a model that barely tells the classes apart, can take thousands of iterations);
    bisection lands on it in ``_BISECTIONS`` steps."""
    ratio = probs / source_prior
    if probs.shape[2] == 2:
        return _two_class_mle(ratio)
    pi = np.repeat(source_prior[None], len(probs), axis=0)
    iterations = np.full(len(probs), MAX_ITERATIONS)
    active = np.arange(len(probs))
    for iteration in range(1, MAX_ITERATIONS + 1):
        adapted = ratio[active] * pi[active, None, :]
        total = adapted.sum(axis=2, keepdims=True)
        # a row that is 0 wherever the weight is positive keeps its (degenerate) probabilities
        adapted = np.divide(adapted, total, out=probs[active].copy(), where=total > 0)
        updated = adapted.mean(axis=1)
        settled = np.abs(updated - pi[active]).max(axis=1) <= tol
        pi[active] = updated
        iterations[active[settled]] = iteration
        active = active[~settled]
        if len(active) == 0:
            break
    return pi, iterations


def _two_class_mle(ratio: np.ndarray) -> tuple[np.ndarray, np.ndarray]:
    """``ratio`` ``(B, N, 2)``: p_s(k | x) / pi_s(k). With ``f = ratio[..., 1] / ratio[..., 0]``
    the log-likelihood of a share ``q`` of class 1 is ``sum log(1 + q (f - 1))`` up to a
    constant; its derivative ``sum (f - 1) / (1 + q (f - 1))`` decreases in ``q``."""
    with np.errstate(divide="ignore", invalid="ignore"):
        excess = ratio[..., 1] / ratio[..., 0] - 1.0  # f - 1, +inf where p_s(0 | x) = 0
    low, high = np.zeros(len(ratio)), np.ones(len(ratio))
    for _ in range(_BISECTIONS):
        q = (low + high) / 2
        with np.errstate(divide="ignore", invalid="ignore"):
            terms = excess / (1.0 + q[:, None] * excess)
        # a case certain of class 1 (f infinite) contributes 1 / q > 0
        terms = np.where(np.isinf(excess), 1.0 / q[:, None], terms)
        rising = terms.sum(axis=1) > 0
        low, high = np.where(rising, q, low), np.where(rising, high, q)
    share = (low + high) / 2
    return np.stack([1 - share, share], axis=1), np.full(len(ratio), _BISECTIONS)


@dataclass(frozen=True)
class PriorShift:
    """The class mix of a batch, estimated from its calibrated probabilities.

    Attributes:
        source_prior: the class shares the calibrated probabilities assume (validation's).
        target_prior: the batch's estimated class shares (EM).
        interval: per class, the 2.5th and 97.5th percentiles of the estimate over
            bootstrap resamples of the batch (``(K, 2)``).
        n_cases: the cases the estimate used.
        iterations: EM iterations (``MAX_ITERATIONS``: it did not settle); for two classes
            the bisection's steps.

    ``warning`` says, in words, why the estimate should not be relied on (None when nothing
    is wrong with it that the batch itself shows).
    """

    source_prior: np.ndarray
    target_prior: np.ndarray
    interval: np.ndarray = field(repr=False)
    n_cases: int
    iterations: int

    @property
    def warning(self) -> str | None:
        """Why the estimate should not be relied on, or None: EM did not settle, a class
        share went to the edge (below ``EDGE_SHARE``), or a 95% interval is wider than
        ``MAX_INTERVAL_WIDTH``."""
        reasons = []
        if self.iterations >= MAX_ITERATIONS:
            reasons.append(f"EM did not settle in {MAX_ITERATIONS} iterations")
        if self.target_prior.min() < EDGE_SHARE:
            reasons.append(
                "a class share went to the edge (near 0), which a weak or miscalibrated "
                "model produces as readily as a batch without that class"
            )
        width = float((self.interval[:, 1] - self.interval[:, 0]).max())
        if width > MAX_INTERVAL_WIDTH:
            reasons.append(f"a 95% interval is {100 * width:.0f} points wide")
        return "; ".join(reasons) or None

    def transform(self, probs: ArrayLike) -> np.ndarray:
        """``probs`` (calibrated) adapted to the batch's estimated class mix."""
        return adapt_to_prior(probs, self.source_prior, self.target_prior)

    def to_dict(self, class_names: list[str] | None = None) -> dict[str, Any]:
        """Plain numbers, per class name when ``class_names`` is given (else index)."""
        names = class_names or [str(k) for k in range(len(self.source_prior))]
        warning = self.warning
        return {
            **({"warning": warning} if warning else {}),
            # the same maximum: EM for more than two classes, bisection for two
            "method": "em" if len(self.source_prior) > 2 else "bisection",
            "n_cases": self.n_cases,
            "iterations": self.iterations,
            "converged": self.iterations < MAX_ITERATIONS,
            "source_prior": dict(zip(names, map(float, self.source_prior), strict=True)),
            "target_prior": dict(zip(names, map(float, self.target_prior), strict=True)),
            "target_prior_95ci": {
                name: [float(lo), float(hi)]
                for name, (lo, hi) in zip(names, self.interval, strict=True)
            },
        }


def estimate_prior_shift(
    probs: ArrayLike,
    source_prior: ArrayLike,
    n_bootstrap: int = N_BOOTSTRAP,
    seed: int = 0,
    what: str = "probabilities",
) -> PriorShift:
    """Estimate the class mix of the cases behind ``probs`` (calibrated, ``(N, K)``).

    Args:
        source_prior: the class shares ``probs`` assume (``read_source_prior`` of the run).
        n_bootstrap: resamples of the cases for the interval (0: the interval is the
            estimate itself).
        seed: of the bootstrap.
        what: names the input in errors (a file, a split).

    Raises:
        InputError: fewer than ``MIN_CASES`` cases, or malformed probabilities or shares.
    """
    p = _probabilities(probs, what)
    if len(p) < MIN_CASES:
        raise InputError(
            what,
            f"{len(p)} cases are too few to estimate their class mix (at least {MIN_CASES})",
        )
    pi_s = check_prior(source_prior, p.shape[1])
    target, iterations = ml_prior(p, pi_s)
    if n_bootstrap > 0:
        rng = np.random.default_rng(seed)
        resamples = rng.integers(0, len(p), (n_bootstrap, len(p)))
        per_chunk = max(1, _CHUNK_VALUES // p.size)
        draws = np.concatenate(
            [
                _ml_priors(p[resamples[start : start + per_chunk]], pi_s)[0]
                for start in range(0, n_bootstrap, per_chunk)
            ]
        )
        interval = np.percentile(draws, [2.5, 97.5], axis=0).T
    else:
        interval = np.stack([target, target], axis=1)
    return PriorShift(pi_s, target, interval, len(p), iterations)


def source_prior(calibrated_val_probs: ArrayLike) -> np.ndarray:
    """The class shares a run's calibrated probabilities assume: their mean over the
    validation cases (see the module docstring)."""
    p = _probabilities(calibrated_val_probs, "validation probabilities")
    if len(p) == 0:
        raise InputError("validation probabilities", "no validation cases")
    pi = p.mean(axis=0)
    return pi / pi.sum()
