"""Percentile bootstrap confidence intervals, stratified by class.

Each resample draws, within every class, as many cases as that class has, with replacement.
So every resample keeps the class counts of the original cases: AUC and sensitivity stay
defined in every resample, and the interval reflects the uncertainty of the case sample
rather than that of the class balance.
"""

from __future__ import annotations

from collections.abc import Iterator, Sequence

import numpy as np
from numpy.typing import ArrayLike

from medlens.errors import ConfigError
from medlens.metrics.inputs import check_predictions
from medlens.metrics.registry import METRICS
from medlens.metrics.resampled import RESAMPLED

#: Cap on the cells of one block of resample counts (B x N float64: 32 MB), bounding memory.
_BLOCK_CELLS = 4_000_000


def stratified_resample_counts(
    y_true: np.ndarray, n_resamples: int, rng: np.random.Generator
) -> np.ndarray:
    """How often each case is drawn in each of ``n_resamples`` class-stratified resamples.

    Returns:
        Integer counts of shape ``(n_resamples, N)``; every row sums, within each class, to
        that class's number of cases.
    """
    n_cases = len(y_true)
    rows = np.arange(n_resamples)[:, None] * n_cases
    flat = []
    for cls in np.unique(y_true):
        members = np.flatnonzero(y_true == cls)
        drawn = members[rng.integers(0, len(members), size=(n_resamples, len(members)))]
        flat.append((rows + drawn).ravel())
    counts = np.bincount(np.concatenate(flat), minlength=n_resamples * n_cases)
    return counts.reshape(n_resamples, n_cases)


def _count_blocks(y_true: np.ndarray, n_bootstrap: int, seed: int) -> Iterator[np.ndarray]:
    rng = np.random.default_rng(seed)
    block = max(1, min(n_bootstrap, _BLOCK_CELLS // len(y_true)))
    for start in range(0, n_bootstrap, block):
        yield stratified_resample_counts(y_true, min(block, n_bootstrap - start), rng)


def _loop_metric(
    name: str, counts: np.ndarray, y_true: np.ndarray, y_prob: np.ndarray, y_pred: np.ndarray
) -> np.ndarray:
    """A metric without a vectorised twin: call it on each resample's cases."""
    metric = METRICS.get(name)
    cases = np.arange(len(y_true))
    out = np.empty(len(counts))
    for b, row in enumerate(counts):
        idx = np.repeat(cases, row)
        out[b] = metric(y_true[idx], y_prob[idx], y_pred[idx])
    return out


def bootstrap_samples(
    y_true: ArrayLike,
    y_prob: ArrayLike,
    y_pred: ArrayLike,
    metric_names: Sequence[str],
    n_bootstrap: int = 1000,
    seed: int = 0,
) -> dict[str, np.ndarray]:
    """Each metric on ``n_bootstrap`` class-stratified resamples of the cases.

    The resamples depend only on ``y_true``, ``n_bootstrap`` and ``seed`` (not on which
    metrics are asked for), so the same seed gives the same numbers.

    Returns:
        ``{name: values (n_bootstrap,)}``; ``nan`` where a metric is undefined on a resample.
    """
    truth, prob, pred = check_predictions(y_true, y_prob, y_pred)
    assert pred is not None
    for name in metric_names:
        METRICS.get(name)  # unknown names fail before any work
    if n_bootstrap < 0:
        raise ConfigError("evaluate.n_bootstrap", f"must be >= 0, got {n_bootstrap}")
    parts: dict[str, list[np.ndarray]] = {name: [] for name in metric_names}
    for counts in _count_blocks(truth, n_bootstrap, seed):
        weights = counts.astype(float)
        for name in metric_names:
            if name in RESAMPLED:
                parts[name].append(RESAMPLED[name](weights, truth, prob, pred))
            else:
                parts[name].append(_loop_metric(name, counts, truth, prob, pred))
    return {name: np.concatenate(v) if v else np.empty(0) for name, v in parts.items()}


def bootstrap_ci(
    y_true: ArrayLike,
    y_prob: ArrayLike,
    y_pred: ArrayLike,
    metric_names: Sequence[str],
    n_bootstrap: int = 1000,
    level: float = 0.95,
    seed: int = 0,
) -> dict[str, tuple[float, float]]:
    """Percentile bootstrap confidence intervals of metrics, resampling cases within classes.

    Args:
        y_true: true class indices ``(N,)``.
        y_prob: predicted probabilities ``(N, K)``.
        y_pred: predicted class indices ``(N,)`` (after the decision threshold, which is
            held fixed: the interval does not include the uncertainty of choosing it).
        metric_names: names registered in ``METRICS``.
        n_bootstrap: number of resamples; 0 gives ``(nan, nan)`` intervals.
        level: coverage of the interval, in (0, 1).
        seed: seed of the resampling.

    Returns:
        ``{name: (low, high)}``; ``(nan, nan)`` when the metric is undefined on every resample.
        Resamples where the metric is undefined are left out of the percentiles.

    Example:
        >>> ci = bootstrap_ci(y, p, (p[:, 1] >= 0.5).astype(int), ["auc"], seed=0)  # doctest: +SKIP
    """
    if not 0.0 < level < 1.0:
        raise ConfigError("evaluate.ci_level", f"must lie in (0, 1), got {level}")
    samples = bootstrap_samples(y_true, y_prob, y_pred, metric_names, n_bootstrap, seed)
    tails = [100.0 * (1.0 - level) / 2.0, 100.0 * (1.0 + level) / 2.0]
    out: dict[str, tuple[float, float]] = {}
    for name, values in samples.items():
        defined = values[np.isfinite(values)]
        if defined.size == 0:
            out[name] = (float("nan"), float("nan"))
        else:
            low, high = np.percentile(defined, tails)
            out[name] = (float(low), float(high))
    return out
