"""Label shift: the class mix of a batch of cases from a new site, estimated without its
labels, and the probabilities adapted to it (Saerens, Latinne & Decaestecker 2002).

A calibrator fitted on validation gives probabilities for validation's class mix. At a site
where the disease is rarer or commoner, the same image should get another probability:
with ``p_s(y | x)`` the calibrated probabilities, ``pi_s`` the class mix they assume and
``pi_t`` the new site's,

    p_t(y | x) = p_s(y | x) * pi_t(y) / pi_s(y) / sum_k p_s(k | x) * pi_t(k) / pi_s(k).

``pi_t`` is unknown; the EM algorithm estimates it by maximum likelihood from the batch's
calibrated probabilities alone (repeat: adapt with the current ``pi_t``, set ``pi_t`` to the
mean adapted probability). Alexandari et al. (2020) found this hard to beat when the
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
#: EM stops when no class share moves by more than this between iterations.
TOLERANCE = 1e-8
MAX_ITERATIONS = 10_000
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


def em_prior(
    probs: np.ndarray, source_prior: np.ndarray, tol: float = TOLERANCE
) -> tuple[np.ndarray, int]:
    """The maximum-likelihood class mix of the cases behind ``probs`` by EM, and the
    iterations it took. Starts at ``source_prior``."""
    pi = source_prior.copy()
    for iteration in range(1, MAX_ITERATIONS + 1):
        updated = adapt_to_prior(probs, source_prior, pi).mean(axis=0)
        moved = float(np.abs(updated - pi).max())
        pi = updated
        if moved <= tol:
            return pi, iteration
    return pi, MAX_ITERATIONS


@dataclass(frozen=True)
class PriorShift:
    """The class mix of a batch, estimated from its calibrated probabilities.

    Attributes:
        source_prior: the class shares the calibrated probabilities assume (validation's).
        target_prior: the batch's estimated class shares (EM).
        interval: per class, the 2.5th and 97.5th percentiles of the estimate over
            bootstrap resamples of the batch (``(K, 2)``).
        n_cases: the cases the estimate used.
        iterations: EM iterations (``MAX_ITERATIONS``: it did not settle).

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
            "method": "em",
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
    target, iterations = em_prior(p, pi_s)
    if n_bootstrap > 0:
        rng = np.random.default_rng(seed)
        draws = np.stack(
            [em_prior(p[rng.integers(0, len(p), len(p))], pi_s)[0] for _ in range(n_bootstrap)]
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
