"""Mitigation by per-group decision thresholds: fairlearn's ``ThresholdOptimizer``.

The trained model is kept; only the decision rule changes. The optimizer sees the model's
positive-class probability on the VALIDATION cases (wrapped as an already fitted estimator,
``prefit=True``) and picks, per group, a threshold rule that maximises the objective
(balanced accuracy by default, which is what the run's Youden threshold maximises) subject to
the fairness constraint. The rules are then applied, unchanged, to the TEST cases and the test
cases are audited again: before and after are measured on the same cases, which no choice has
looked at.

Rules may be randomised: to equalise rates exactly, a group's rule can mix two thresholds
(predict positive above t1, and with probability q between t0 and t1). The draws are seeded
(``seed``), and ``p_positive_mitigated`` records each case's probability of a positive
decision.
"""

from __future__ import annotations

from dataclasses import dataclass
from pathlib import Path
from typing import Any

import numpy as np
import pandas as pd
from sklearn.base import BaseEstimator, ClassifierMixin

from medlens.audit.binning import group_labels
from medlens.audit.result import AuditResult
from medlens.audit.subgroup_audit import DEFAULT_MIN_GROUP_SIZE, audit_predictions
from medlens.errors import ConfigError, InputError
from medlens.metrics.registry import METRICS

CONSTRAINTS = ("equalized_odds", "true_positive_rate_parity")

#: Overall metrics reported before and after, to show what the mitigation costs.
OVERALL_METRICS = ("balanced_accuracy", "sensitivity", "specificity", "accuracy")


class ProbabilityScore(ClassifierMixin, BaseEstimator):
    """An "estimator" whose score is its single input column: a model's stored probability.

    It lets ``ThresholdOptimizer(prefit=True, predict_method="predict")`` tune thresholds on
    probabilities already computed by a run, without the model.
    """

    def fit(self, X: np.ndarray, y: np.ndarray) -> ProbabilityScore:
        self.classes_ = np.unique(y)
        self.n_features_in_ = 1
        return self

    def predict(self, X: Any) -> np.ndarray:
        return np.asarray(X, dtype=float)[:, 0]


@dataclass
class ThresholdMitigation:
    """Per-group thresholds fitted on validation and their effect on the test cases.

    Attributes:
        attribute: the group column.
        constraint: the fairlearn constraint.
        objective: the fairlearn objective maximised under it.
        n_val: validation cases the rules were fitted on.
        rules: group -> the fitted rule (thresholds on p(positive) and mixing probabilities).
        before: the audit of the test cases with the run's decisions.
        after: the audit of the test cases with the per-group decisions.
        overall: metric -> ``{"before", "after"}`` on all test cases.
    """

    attribute: str
    constraint: str
    objective: str
    n_val: int
    rules: dict[str, dict[str, Any]]
    before: AuditResult
    after: AuditResult
    overall: dict[str, dict[str, float]]

    def gap_changes(self) -> pd.DataFrame:
        """One row per fairness criterion: the gap and its interval before and after."""
        rows = []
        for old, new in zip(self.before.gaps, self.after.gaps, strict=True):
            rows.append(
                {
                    "gap": old.name,
                    "before": old.difference,
                    "before_ci_low": old.ci_low,
                    "before_ci_high": old.ci_high,
                    "before_flagged": old.flagged,
                    "after": new.difference,
                    "after_ci_low": new.ci_low,
                    "after_ci_high": new.ci_high,
                    "after_flagged": new.flagged,
                }
            )
        return pd.DataFrame(rows)

    def to_dict(self) -> dict[str, Any]:
        """JSON-ready record (stored under ``mitigations`` in audit.json)."""
        groups = []
        for old, new in zip(self.before.groups, self.after.groups, strict=True):
            entry: dict[str, Any] = {"group": old.group, "n": old.n, "status": old.status}
            for metric in ("tpr", "fpr", "ppv", "selection_rate"):
                entry[f"{metric}_before"] = old.metrics[metric].value
                entry[f"{metric}_after"] = new.metrics[metric].value
            groups.append(entry)
        return {
            "method": "per-group thresholds (fairlearn ThresholdOptimizer)",
            "attribute": self.attribute,
            "constraint": self.constraint,
            "objective": self.objective,
            "fitted_on": "val",
            "n_val": self.n_val,
            "applied_to": self.before.split,
            "rules": self.rules,
            "gaps": self.gap_changes().to_dict(orient="records"),
            "groups": groups,
            "overall": self.overall,
        }


def _rule(interpolation: Any) -> dict[str, Any]:
    """fairlearn's interpolation bunch as plain numbers."""
    rule = {
        "p0": float(interpolation.p0),
        "rule0": f"p {interpolation.operation0.operator} {interpolation.operation0.threshold:.6g}",
        "p1": float(interpolation.p1),
        "rule1": f"p {interpolation.operation1.operator} {interpolation.operation1.threshold:.6g}",
    }
    if "p_ignore" in interpolation:
        rule["p_ignore"] = float(interpolation.p_ignore)
        rule["prediction_constant"] = float(interpolation.prediction_constant)
    return rule


def mitigate_thresholds(
    df: pd.DataFrame,
    group: str,
    constraint: str = "true_positive_rate_parity",
    *,
    label_col: str = "label",
    prob_col: str = "prob_1",
    threshold: float | None = 0.5,
    objective: str = "balanced_accuracy_score",
    positive_label: int = 1,
    positive_class: str | None = None,
    pred_col: str = "pred",
    n_bootstrap: int = 1000,
    ci_level: float = 0.95,
    seed: int = 0,
    min_group_size: int = DEFAULT_MIN_GROUP_SIZE,
    source: str | Path = "predictions",
) -> tuple[pd.DataFrame, ThresholdMitigation]:
    """Fit per-group thresholds on the validation rows, apply them to the test rows, re-audit.

    Args:
        df: predictions with a ``split`` column holding ``val`` and ``test`` rows.
        group: the attribute whose groups get their own thresholds.
        constraint: ``"true_positive_rate_parity"`` (equal opportunity) or
            ``"equalized_odds"`` (equal TPR and FPR).
        label_col, prob_col, threshold, positive_label, positive_class, pred_col: as in
            ``audit_predictions`` (``threshold`` is the run's own rule, audited as "before").
        objective: fairlearn objective maximised under the constraint.
        n_bootstrap, ci_level, seed, min_group_size: as in ``audit_predictions``; ``seed``
            also seeds the randomised decisions.
        source: the file the table came from, named in errors.

    Returns:
        ``(test rows with columns pred_mitigated (0/1: positive class or not) and
        p_positive_mitigated, the ThresholdMitigation)``.

    Raises:
        InputError: no ``split`` column or no val/test rows, a missing column, a test group
            absent from the validation rows, or a validation group lacking one class.
        ConfigError: an unknown constraint.
    """
    from fairlearn.postprocessing import ThresholdOptimizer

    if constraint not in CONSTRAINTS:
        raise ConfigError(
            "audit.mitigate", f"unknown constraint {constraint!r}; use {' or '.join(CONSTRAINTS)}"
        )
    for column in ("split", label_col, prob_col, group):
        if column not in df.columns:
            raise InputError(
                source, f"has no column {column!r} (columns: {', '.join(map(str, df.columns))})"
            )
    before = audit_predictions(
        df, [group], label_col, prob_col, threshold, n_bootstrap, ci_level, seed, min_group_size,
        positive_label=positive_label, positive_class=positive_class, pred_col=pred_col,
        split="test", source=source,
    )  # fmt: skip
    split = df["split"].astype(str).to_numpy()
    val, test = df[split == "val"], df[split == "test"].copy()
    if val.empty:
        raise InputError(source, "has no val rows: per-group thresholds are fitted on validation")
    labels_all = group_labels(df[group]).astype(str).to_numpy()
    val_groups, test_groups = labels_all[split == "val"], labels_all[split == "test"]
    unseen = sorted(set(test_groups) - set(val_groups))
    if unseen:
        raise InputError(
            source,
            f"group(s) {', '.join(unseen)} of {group!r} have test rows but no val rows, "
            "so no threshold can be fitted for them",
        )
    y_val = (pd.to_numeric(val[label_col]) == positive_label).astype(int).to_numpy()
    for g in sorted(set(val_groups)):
        present = np.unique(y_val[val_groups == g])
        if present.size < 2:
            raise InputError(
                source,
                f"val rows of {group}={g} hold only class {'positive' if present[0] else 'negative'}"
                " cases; a threshold needs both",
            )
    x_val = val[[prob_col]].to_numpy(dtype=float)
    optimizer = ThresholdOptimizer(
        estimator=ProbabilityScore().fit(x_val, y_val),
        constraints=constraint,
        objective=objective,
        prefit=True,
        predict_method="predict",
    )
    try:
        optimizer.fit(x_val, y_val, sensitive_features=val_groups)
    except ValueError as exc:
        raise ConfigError("audit.mitigate", f"ThresholdOptimizer cannot fit: {exc}") from None
    x_test = test[[prob_col]].to_numpy(dtype=float)
    sensitive = test_groups
    # fairlearn's own probability of a positive decision (what predict() draws from).
    test["p_positive_mitigated"] = optimizer._pmf_predict(x_test, sensitive_features=sensitive)[
        :, 1
    ]
    test["pred_mitigated"] = optimizer.predict(
        x_test, sensitive_features=sensitive, random_state=seed
    )
    after = audit_predictions(
        test.assign(_y=(pd.to_numeric(test[label_col]) == positive_label).astype(int)),
        [group], "_y", prob_col, None, n_bootstrap, ci_level, seed, min_group_size,
        positive_label=1, positive_class=before.positive_class, pred_col="pred_mitigated",
        split="test", source=source,
    )  # fmt: skip
    mitigation = ThresholdMitigation(
        attribute=group,
        constraint=constraint,
        objective=objective,
        n_val=len(val),
        rules={
            str(g): _rule(rule)
            for g, rule in optimizer.interpolated_thresholder_.interpolation_dict.items()
        },
        before=before,
        after=after,
        overall=_overall(test, label_col, prob_col, threshold, pred_col, positive_label),
    )
    return test, mitigation


def _overall(
    test: pd.DataFrame,
    label_col: str,
    prob_col: str,
    threshold: float | None,
    pred_col: str,
    positive_label: int,
) -> dict[str, dict[str, float]]:
    y = (pd.to_numeric(test[label_col]) == positive_label).astype(int).to_numpy()
    p = test[prob_col].to_numpy(dtype=float)
    prob = np.column_stack([1.0 - p, p])
    if threshold is not None:
        old = (p >= threshold).astype(int)
    else:
        old = (pd.to_numeric(test[pred_col]) == positive_label).astype(int).to_numpy()
    new = test["pred_mitigated"].to_numpy(dtype=int)
    return {
        name: {
            "before": float(METRICS.get(name)(y, prob, old)),
            "after": float(METRICS.get(name)(y, prob, new)),
        }
        for name in OVERALL_METRICS
    }
