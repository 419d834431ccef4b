"""Gaps between groups: max - min of a metric, with an interval valid for any number of groups.

Let ``v_k`` be the metric of group k on the audited cases and ``r_bk`` on resample b. The
error of the observed range ``R = max_k v_k - min_k v_k`` is bounded by the range of the
groups' errors: ``|R - R_true| <= max_k e_k - min_k e_k`` with ``e_k = v_k - true_k``. The
resamples estimate the distribution of that error range by the centred range
``E_b = max_k (r_bk - v_k) - min_k (r_bk - v_k)``; with ``q`` its ``ci_level`` quantile,

    interval = [max(0, R - q), R + q]

covers the true gap with (at least) the stated probability, and ``R > q`` (the interval
excludes 0) is a bootstrap test that all groups have the same value. With two groups this is
the symmetric basic bootstrap interval of their difference; with more groups the centred
range accounts for picking the highest and lowest groups after the fact (comparing only those
two would flag chance differences far more often than 1 in 20).

Ratios (min / max) use the same construction on the log scale: ``-log(ratio)`` is the range of
``log v_k``. Equalised odds combines TPR and FPR: its gap is the larger of the two ranges
(fairlearn's ``equalized_odds_difference``), its ratio the smaller ratio, and ``q`` the quantile
of the larger of the two centred ranges, so the interval covers both at once.
"""

from __future__ import annotations

import numpy as np

from medlens.audit.result import Gap


def _valid_rows(matrix: np.ndarray) -> np.ndarray:
    return np.isfinite(matrix).all(axis=1)


def _quantile(values: np.ndarray, level: float) -> float:
    return float(np.quantile(values, level)) if values.size else float("nan")


def between_group_gap(
    attribute: str,
    name: str,
    metrics: tuple[str, ...],
    names: list[str],
    eligible: list[int],
    points: list[dict[str, float]],
    resamples: list[dict[str, np.ndarray]],
    ci_level: float,
) -> Gap:
    """The gap of one fairness criterion between the eligible groups (module docstring).

    Args:
        attribute, name: what the gap is of.
        metrics: the group metric(s) the criterion compares (TPR and FPR for equalised odds).
        names: group names by index.
        eligible: indices of the groups large enough to compare.
        points: per group, metric -> value on the audited cases.
        resamples: per group, metric -> values on the resamples ``(B,)`` (empty: no interval).
        ci_level: coverage of the interval.
    """
    nan = float("nan")
    ranges, log_ranges, errors, log_errors, pairs = [], [], [], [], []
    for metric in metrics:
        groups = [k for k in eligible if np.isfinite(points[k][metric])]
        if len(groups) < 2:
            why = (
                f"fewer than two groups with a defined {'/'.join(metrics)} and enough cases "
                "to compare"
            )
            return Gap(attribute, name, nan, nan, nan, nan, nan, nan, None, None, False, why)
        values = np.array([points[k][metric] for k in groups])
        samples = np.column_stack([resamples[k][metric] for k in groups])
        high, low = groups[int(values.argmax())], groups[int(values.argmin())]
        pairs.append((high, low))
        ranges.append(values.max() - values.min())
        centred = samples - values
        errors.append(centred.max(axis=1, initial=-np.inf) - centred.min(axis=1, initial=np.inf))
        if values.min() > 0:
            with np.errstate(divide="ignore", invalid="ignore"):  # a zero rate: row dropped
                logs = np.log(samples) - np.log(values)
                spread = logs.max(axis=1, initial=-np.inf) - logs.min(axis=1, initial=np.inf)
            log_ranges.append(np.log(values.max()) - np.log(values.min()))
            log_errors.append(spread)
        else:
            log_ranges.append(np.inf)  # a zero rate: ratio 0, without an interval
            log_errors.append(np.full(len(samples), np.nan))
    worst = int(np.argmax(ranges))
    difference = float(ranges[worst])
    error = np.column_stack(errors)
    error = error[_valid_rows(error)].max(axis=1)
    q = _quantile(error, ci_level)
    log_range = float(max(log_ranges))
    log_error = np.column_stack(log_errors)
    log_error = log_error[_valid_rows(log_error)].max(axis=1)
    q_log = _quantile(log_error, ci_level) if np.isfinite(log_range) else nan
    note = f"the larger gap is in {metrics[worst].upper()}" if len(metrics) > 1 else ""
    if not np.isfinite(q):
        note = "; ".join(filter(None, [note, "no interval (no bootstrap resamples)"]))
    if not np.isfinite(q_log):
        ratio_ci = (nan, nan)
    else:
        ratio_ci = (
            float(np.exp(-(log_range + q_log))),
            float(min(1.0, np.exp(-(log_range - q_log)))),
        )
    return Gap(
        attribute=attribute,
        name=name,
        difference=difference,
        ci_low=max(0.0, difference - q) if np.isfinite(q) else nan,
        ci_high=difference + q,
        ratio=float(np.exp(-log_range)),
        ratio_ci_low=ratio_ci[0],
        ratio_ci_high=ratio_ci[1],
        higher_group=names[pairs[worst][0]],
        lower_group=names[pairs[worst][1]],
        flagged=bool(np.isfinite(q) and difference > q),
        note=note,
        p_value=float((error >= difference).mean()) if error.size else nan,
    )
