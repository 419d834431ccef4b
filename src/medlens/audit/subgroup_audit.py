"""``audit_predictions``: per-group performance and between-group gaps on the test cases.

Resampling (seeded, the same resamples for the group intervals and the gap intervals):
- TPR, FNR, specificity, FPR and AUC are rates given the true class, so each resample draws,
  within every (group, class) cell, as many cases as the cell holds, with replacement
  (``medlens.metrics.bootstrap.stratified_resample_counts`` with the cell as stratum), as
  ``medlens.metrics.bootstrap`` does per class: they stay defined in every resample;
- selection rate, PPV and ECE depend on the group's prevalence, so they are resampled within
  groups only: holding prevalences fixed would hide the noise of the prevalence and flag
  chance differences in selection rate far too often.

Gaps are compared only between groups with at least ``min_group_size`` cases; smaller groups
are still reported (status ``"too small"``), never dropped. A flagged gap is one whose
interval excludes 0 (``medlens.audit.gaps``: valid for any number of groups). Nothing is
corrected for the number of attributes and criteria tested: with several of them, expect the
occasional flag by chance (about 1 in 20 per criterion and attribute at a 95% level).
"""

from __future__ import annotations

from collections.abc import Iterator, Sequence
from pathlib import Path

import numpy as np
import pandas as pd

from medlens.audit.binning import group_labels
from medlens.audit.calibration_fit import calibration_slope_intercept
from medlens.audit.gaps import between_group_gap
from medlens.audit.group_metrics import (
    CLASS_CONDITIONAL,
    GROUP_METRICS,
    MIX_DEPENDENT,
    percentile_interval,
    point_metrics,
    resampled_metrics,
)
from medlens.audit.result import (
    GAP_METRICS,
    OK,
    TOO_SMALL,
    AuditResult,
    Estimate,
    Gap,
    GroupMetrics,
)
from medlens.errors import ConfigError, InputError
from medlens.metrics.bootstrap import stratified_resample_counts

#: Groups with fewer audited cases are reported as "too small" and left out of the gaps.
DEFAULT_MIN_GROUP_SIZE = 30

#: Cap on the cells of one block of resample counts (B x N), bounding memory.
_BLOCK_CELLS = 4_000_000


def _missing_column(source: str | Path, column: str, df: pd.DataFrame, role: str) -> InputError:
    return InputError(
        source, f"has no {role} column {column!r} (columns: {', '.join(map(str, df.columns))})"
    )


def _audited_rows(df: pd.DataFrame, split: str | None, source: str | Path) -> pd.DataFrame:
    if split is None or "split" not in df.columns:
        rows = df
    else:
        rows = df[df["split"].astype(str) == split]
    if rows.empty:
        where = f" with split == {split!r}" if split is not None and "split" in df.columns else ""
        raise InputError(source, f"has no rows{where} to audit")
    return rows


def _outcomes(
    rows: pd.DataFrame,
    label_col: str,
    prob_col: str,
    threshold: float | None,
    pred_col: str,
    positive_label: int,
    source: str | Path,
) -> tuple[np.ndarray, np.ndarray, np.ndarray]:
    """``(y, p_pos, pred)``: 0/1 outcome, p(positive class), 0/1 decision per row."""
    labels = pd.to_numeric(rows[label_col], errors="coerce").to_numpy(dtype=float)
    if not np.isfinite(labels).all():
        raise InputError(source, f"column {label_col!r} must hold class indices")
    p_pos = pd.to_numeric(rows[prob_col], errors="coerce").to_numpy(dtype=float)
    if not np.isfinite(p_pos).all() or p_pos.min() < 0.0 or p_pos.max() > 1.0:
        raise InputError(source, f"column {prob_col!r} must hold probabilities in [0, 1]")
    y = (labels == positive_label).astype(np.intp)
    if threshold is not None:
        if not 0.0 <= threshold <= 1.0:
            raise ConfigError("audit.threshold", f"must lie in [0, 1], got {threshold}")
        pred = (p_pos >= threshold).astype(np.intp)
    else:
        decisions = pd.to_numeric(rows[pred_col], errors="coerce").to_numpy(dtype=float)
        if not np.isfinite(decisions).all():
            raise InputError(source, f"column {pred_col!r} must hold class indices")
        pred = (decisions == positive_label).astype(np.intp)
    return y, p_pos, pred


def _resample_blocks(strata: np.ndarray, n_bootstrap: int, seed: int) -> Iterator[np.ndarray]:
    rng = np.random.default_rng(seed)
    block = max(1, min(n_bootstrap, _BLOCK_CELLS // len(strata)))
    for start in range(0, n_bootstrap, block):
        yield stratified_resample_counts(strata, min(block, n_bootstrap - start), rng)


def audit_predictions(
    df: pd.DataFrame,
    groups: Sequence[str],
    label_col: str = "label",
    prob_col: str = "prob_1",
    threshold: float | None = 0.5,
    n_bootstrap: int = 1000,
    ci_level: float = 0.95,
    seed: int = 0,
    min_group_size: int = DEFAULT_MIN_GROUP_SIZE,
    *,
    positive_label: int = 1,
    positive_class: str | None = None,
    pred_col: str = "pred",
    split: str | None = "test",
    source: str | Path = "predictions",
) -> AuditResult:
    """Audit a classifier's test predictions group by group (see the module docstring).

    Binary tasks audit class 1. Multi-class tasks are audited one-vs-rest for one chosen
    class: pass its index as ``positive_label`` and its probability column as ``prob_col``;
    every other class counts as negative.

    Args:
        df: predictions in the run-folder format (``predictions.csv``): a label column, the
            positive class's probability column, the decision column, the group columns and,
            optionally, ``split``.
        groups: the attribute columns to audit (``sex``, ``age_bin``, ``site``); missing
            values form a ``"(missing)"`` group. Bin continuous columns first (``age_bin``).
        label_col: column of true class indices.
        prob_col: column of p(positive class).
        threshold: decision rule ``p >= threshold`` (the run's validation-chosen threshold);
            ``None`` to audit the decisions in ``pred_col`` (arg-max of a multi-class run).
        n_bootstrap: resamples for the intervals (0: no intervals, nothing flagged).
        ci_level: coverage of the intervals, in (0, 1).
        seed: seed of the resampling (each attribute resamples from this seed).
        min_group_size: groups with fewer cases are reported as "too small" and not compared.
        positive_label: class index audited as positive.
        positive_class: its name, for the report (default ``str(positive_label)``).
        pred_col: column of predicted class indices, used when ``threshold`` is ``None``.
        split: rows whose ``split`` column equals this are audited (all rows when ``None``
            or when there is no ``split`` column).
        source: the file the table came from, named in errors.

    Returns:
        The ``AuditResult``.

    Raises:
        InputError: a missing column (listing those available), no rows to audit, labels or
            probabilities that are not numbers.
        ConfigError: an out-of-range ``ci_level``, ``n_bootstrap``, ``min_group_size`` or
            ``threshold``.

    Example:
        >>> result = audit_predictions(df, ["sex"], "label", "prob_pneumonia", 0.42)  # doctest: +SKIP
        >>> result.gap("sex", "equal_opportunity").flagged  # doctest: +SKIP
    """
    if not 0.0 < ci_level < 1.0:
        raise ConfigError("audit.ci_level", f"must lie in (0, 1), got {ci_level}")
    if n_bootstrap < 0:
        raise ConfigError("audit.n_bootstrap", f"must be >= 0, got {n_bootstrap}")
    if min_group_size < 1:
        raise ConfigError("audit.min_group_size", f"must be >= 1, got {min_group_size}")
    if not groups:
        raise ConfigError("audit.groups", "name at least one attribute column to audit")
    needed = [(label_col, "label"), (prob_col, "probability")]
    if threshold is None:
        needed.append((pred_col, "prediction"))
    needed += [(g, "group") for g in groups]
    for column, role in needed:
        if column not in df.columns:
            raise _missing_column(source, column, df, role)
    rows = _audited_rows(df, split, source)
    y, p_pos, pred = _outcomes(
        rows, label_col, prob_col, threshold, pred_col, positive_label, source
    )
    group_entries: list[GroupMetrics] = []
    gaps: list[Gap] = []
    for attribute in groups:
        found, found_gaps = _audit_attribute(
            attribute,
            group_labels(rows[attribute]),
            y,
            p_pos,
            pred,
            n_bootstrap,
            ci_level,
            seed,
            min_group_size,
        )
        group_entries += found
        gaps += found_gaps
    return AuditResult(
        attributes=list(groups),
        positive_class=positive_class if positive_class is not None else str(positive_label),
        threshold=None if threshold is None else float(threshold),
        split=split if split is not None and "split" in df.columns else "all",
        n_cases=len(rows),
        n_bootstrap=int(n_bootstrap),
        ci_level=float(ci_level),
        seed=int(seed),
        min_group_size=int(min_group_size),
        groups=group_entries,
        gaps=gaps,
    )


def _audit_attribute(
    attribute: str,
    labels: pd.Series,
    y: np.ndarray,
    p_pos: np.ndarray,
    pred: np.ndarray,
    n_bootstrap: int,
    ci_level: float,
    seed: int,
    min_group_size: int,
) -> tuple[list[GroupMetrics], list[Gap]]:
    names = [str(c) for c in labels.cat.categories]
    codes = labels.cat.codes.to_numpy()
    members = [np.flatnonzero(codes == k) for k in range(len(names))]
    samples: list[dict[str, list[np.ndarray]]] = [{m: [] for m in GROUP_METRICS} for _ in names]
    schemes = ((codes * 2 + y, CLASS_CONDITIONAL), (codes, MIX_DEPENDENT))
    for strata, metric_names in schemes if n_bootstrap > 0 else ():
        for counts in _resample_blocks(strata, n_bootstrap, seed):
            for k, idx in enumerate(members):
                weights = counts[:, idx].astype(float)
                values = resampled_metrics(weights, y[idx], p_pos[idx], pred[idx], metric_names)
                for metric, v in values.items():
                    samples[k][metric].append(v)
    resamples = [
        {m: np.concatenate(v) if v else np.empty(0) for m, v in s.items()} for s in samples
    ]
    entries = []
    points = []
    for k, idx in enumerate(members):
        point = point_metrics(y[idx], p_pos[idx], pred[idx])
        points.append(point)
        slope, intercept = calibration_slope_intercept(y[idx], p_pos[idx])
        entries.append(
            GroupMetrics(
                attribute=attribute,
                group=names[k],
                n=len(idx),
                n_positive=int(y[idx].sum()),
                status=OK if len(idx) >= min_group_size else TOO_SMALL,
                metrics={
                    m: Estimate(point[m], *percentile_interval(resamples[k][m], ci_level))
                    for m in GROUP_METRICS
                },
                calibration_slope=slope,
                calibration_intercept=intercept,
            )
        )
    eligible = [k for k, e in enumerate(entries) if e.status == OK]
    gaps = [
        between_group_gap(attribute, name, metrics, names, eligible, points, resamples, ci_level)
        for name, metrics in GAP_METRICS.items()
    ]
    return entries, gaps
