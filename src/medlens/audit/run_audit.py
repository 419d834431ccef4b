"""``audit_run``: audit a run folder's test predictions and write the audit beside them.

Reads ``predictions.csv`` and ``labels.json`` of a run folder (see ../shared/DESIGN.md) and
writes, into the run folder or ``out_dir``:

    audit.json              the AuditResult (summary, groups, gaps, mitigations), written last
    audit.csv               one row per (attribute, group) with every metric and interval
    plots/audit_<attribute>_rates.png   TPR, FPR, AUC per group with interval error bars
    plots/audit_<attribute>_roc.png     ROC curve per group

A group name ``<column>_bin`` that is not a column of predictions.csv is derived from the
numeric ``<column>`` with ``age_bin`` (quartiles of all val and test rows, or the edges given
in ``bins``), so ``--groups age_bin`` works on a run whose manifest had an ``age`` column.
"""

from __future__ import annotations

import json
import logging
import re
from collections.abc import Mapping, Sequence
from pathlib import Path
from typing import Any

import pandas as pd

from medlens.audit.binning import age_bin, group_labels
from medlens.audit.plots import plot_group_rates, plot_group_roc
from medlens.audit.result import AuditResult
from medlens.audit.subgroup_audit import DEFAULT_MIN_GROUP_SIZE, audit_predictions
from medlens.audit.threshold_mitigation import CONSTRAINTS, mitigate_thresholds
from medlens.errors import ConfigError, InputError, MedlensError
from medlens.io_utils import write_atomic, write_json_atomic
from medlens.run_folder import layout

logger = logging.getLogger(__name__)

BIN_SUFFIX = "_bin"


def _read_labels(run_dir: Path) -> tuple[list[str], float | None]:
    path = run_dir / layout.LABELS
    if not path.is_file():
        raise InputError(path, "labels.json not found; the run folder is incomplete")
    try:
        labels = json.loads(path.read_text(encoding="utf-8"))
    except (json.JSONDecodeError, UnicodeDecodeError):
        raise InputError(path, "not valid JSON") from None
    names = labels.get("class_names") if isinstance(labels, dict) else None
    if not (isinstance(names, list) and len(names) >= 2):
        raise InputError(path, "needs 'class_names' listing at least two classes")
    threshold = labels.get("threshold")
    return [str(n) for n in names], None if threshold is None else float(threshold)


def _read_predictions(path: Path) -> pd.DataFrame:
    if not path.is_file():
        raise InputError(path, "predictions.csv not found; the run folder is incomplete")
    try:
        return pd.read_csv(path, dtype={"case_id": str, "split": str, "patient_id": str})
    except (pd.errors.ParserError, pd.errors.EmptyDataError, UnicodeDecodeError) as exc:
        raise InputError(path, f"not a readable CSV table ({type(exc).__name__})") from None


def _add_group_columns(
    df: pd.DataFrame,
    groups: Sequence[str],
    bins: Mapping[str, Sequence[float]],
    path: Path,
) -> pd.DataFrame:
    """Check every group column exists, deriving ``<column>_bin`` from ``<column>`` if needed."""
    df = df.copy()
    for name in groups:
        if name in df.columns:
            continue
        base = name[: -len(BIN_SUFFIX)] if name.endswith(BIN_SUFFIX) else None
        if base and base in df.columns:
            df[name] = age_bin(df[base], bins.get(base), name=base)
            continue
        raise InputError(
            path,
            f"has no column {name!r} to audit (columns: {', '.join(map(str, df.columns))}); "
            "subgroup columns come from the manifest's data.columns.subgroup_columns",
        )
    return df


def _slug(name: str) -> str:
    return re.sub(r"[^A-Za-z0-9_.-]+", "_", name).strip("_") or "attribute"


def audit_run(
    run_dir: str | Path,
    groups: Sequence[str],
    out_dir: str | Path | None = None,
    *,
    positive_class: str | None = None,
    n_bootstrap: int = 1000,
    ci_level: float = 0.95,
    seed: int = 0,
    min_group_size: int = DEFAULT_MIN_GROUP_SIZE,
    bins: Mapping[str, Sequence[float]] | None = None,
    mitigate: Sequence[str] = (),
    plots: bool = True,
) -> AuditResult:
    """Audit the test predictions of a run folder by subgroup; write audit.json/csv and plots.

    Args:
        run_dir: the run folder (``predictions.csv``, ``labels.json``).
        groups: attribute columns of predictions.csv (``sex``, ``site``); ``<col>_bin`` bins
            a numeric ``<col>`` (see the module docstring).
        out_dir: where to write; default the run folder.
        positive_class: class audited as positive; default the second class of a binary run.
            Required for a multi-class run, audited one-vs-rest with its arg-max decisions.
        n_bootstrap, ci_level, seed, min_group_size: as in ``audit_predictions``.
        bins: column -> bin edges (years for age) for derived ``_bin`` groups; default quartiles.
        mitigate: ThresholdOptimizer constraints (``true_positive_rate_parity``,
            ``equalized_odds``) to try per attribute, fitted on val and measured on test. A
            mitigation that cannot be fitted (a val group with one class) is recorded with
            its reason, not raised.
        plots: draw the figures.

    Returns:
        The ``AuditResult`` (also written as audit.json).

    Raises:
        InputError: a missing or malformed predictions.csv/labels.json, or a group column
            missing from predictions.csv (the message lists the available columns).
        ConfigError: a positive class that is not a class of the run, or none for a
            multi-class run; an unknown mitigation constraint.

    Example:
        >>> result = audit_run("runs/pneumonia", ["sex", "age_bin", "site"])  # doctest: +SKIP
        >>> print(result.summary)  # doctest: +SKIP
    """
    run_dir = Path(run_dir)
    if not run_dir.is_dir():
        raise InputError(run_dir, "run folder not found")
    for constraint in mitigate:
        if constraint not in CONSTRAINTS:
            raise ConfigError(
                "audit.mitigate", f"unknown constraint {constraint!r}; use {', '.join(CONSTRAINTS)}"
            )
    class_names, threshold = _read_labels(run_dir)
    if positive_class is None:
        if len(class_names) > 2:
            raise ConfigError(
                "audit.positive_class",
                f"a multi-class run is audited one-vs-rest: choose one of {', '.join(class_names)}",
            )
        positive_class = class_names[1]
    if positive_class not in class_names:
        raise ConfigError(
            "audit.positive_class",
            f"{positive_class!r} is not a class of this run ({', '.join(class_names)})",
        )
    positive = class_names.index(positive_class)
    binary = len(class_names) == 2
    if binary and threshold is None:
        raise InputError(run_dir / layout.LABELS, "a binary run needs its decision 'threshold'")
    path = run_dir / layout.PREDICTIONS
    df = _add_group_columns(_read_predictions(path), groups, bins or {}, path)
    options: dict[str, Any] = {
        "label_col": "label",
        "prob_col": f"prob_{positive_class}",
        "threshold": threshold if binary else None,
        "n_bootstrap": n_bootstrap,
        "ci_level": ci_level,
        "seed": seed,
        "min_group_size": min_group_size,
    }
    identity: dict[str, Any] = {
        "positive_label": positive,
        "positive_class": positive_class,
        "source": path,
    }
    result = audit_predictions(df, list(groups), **options, **identity)
    for constraint in mitigate:
        for attribute in groups:
            try:
                _, mitigation = mitigate_thresholds(
                    df,
                    attribute,
                    constraint,
                    **options,
                    **identity,
                )
                result.mitigations.append(mitigation.to_dict())
            except MedlensError as exc:
                logger.warning("mitigation %s for %s not run: %s", constraint, attribute, exc)
                result.mitigations.append(
                    {"attribute": attribute, "constraint": constraint, "error": str(exc)}
                )
    out = Path(out_dir) if out_dir is not None else run_dir
    if plots:
        test = df[df["split"].astype(str) == "test"] if "split" in df.columns else df
        y = (pd.to_numeric(test["label"]) == positive).astype(int).to_numpy()
        p_pos = test[f"prob_{positive_class}"].to_numpy(dtype=float)
        for attribute in groups:
            stem = f"plots/audit_{_slug(attribute)}"
            plot_group_rates(result, attribute, out / f"{stem}_rates.png")
            plot_group_roc(
                y, p_pos, group_labels(test[attribute]), attribute, out / f"{stem}_roc.png"
            )
            result.plots[attribute] = [f"{stem}_rates.png", f"{stem}_roc.png"]
    write_atomic(out / "audit.csv", result.group_table().to_csv(index=False))
    write_json_atomic(out / layout.AUDIT, result.to_dict())
    return result


def read_audit(path: str | Path) -> AuditResult:
    """An audit written by ``audit_run``: ``audit.json`` or the folder holding it."""
    path = Path(path)
    if path.is_dir():
        path = path / layout.AUDIT
    if not path.is_file():
        raise InputError(path, "audit.json not found; run `medlens audit` first")
    try:
        return AuditResult.from_dict(json.loads(path.read_text(encoding="utf-8")))
    except (json.JSONDecodeError, UnicodeDecodeError, KeyError, TypeError, ValueError) as exc:
        raise InputError(path, f"not an audit written by medlens ({type(exc).__name__})") from None
