"""What an audit finds: per-group metrics with intervals, and the gaps between groups."""

from __future__ import annotations

import math
from dataclasses import asdict, dataclass, field
from typing import Any

import pandas as pd

from medlens.audit.group_metrics import GROUP_METRICS

#: A group with fewer cases than the audit's ``min_group_size`` is reported with this status
#: and left out of the gaps: its rates are too noisy to compare.
TOO_SMALL = "too small"
OK = "ok"

#: Fairness criterion -> the group metric(s) whose spread between groups measures it.
GAP_METRICS: dict[str, tuple[str, ...]] = {
    "equal_opportunity": ("tpr",),
    "equalised_odds": ("tpr", "fpr"),
    "demographic_parity": ("selection_rate",),
    "auc": ("auc",),
}

GAP_TITLES = {
    "equal_opportunity": "Equal opportunity (TPR gap)",
    "equalised_odds": "Equalised odds (max of TPR and FPR gaps)",
    "demographic_parity": "Demographic parity (selection-rate gap)",
    "auc": "AUC gap",
}


def _float(value: Any) -> float:
    return float("nan") if value is None else float(value)


def _json(value: float) -> float | None:
    return float(value) if math.isfinite(value) else None


def _gap_from_dict(data: dict[str, Any]) -> Gap:
    floats: dict[str, Any] = {
        key: _float(data.get(key))
        for key in ("difference", "ci_low", "ci_high", "ratio", "ratio_ci_low", "ratio_ci_high")
    }
    return Gap(
        attribute=str(data["attribute"]),
        name=str(data["name"]),
        higher_group=data.get("higher_group"),
        lower_group=data.get("lower_group"),
        flagged=bool(data["flagged"]),
        note=str(data.get("note") or ""),
        **floats,
        p_value=_float(data.get("p_value")),
    )


@dataclass(frozen=True)
class Estimate:
    """A value with its percentile bootstrap interval (``nan`` where undefined)."""

    value: float
    ci_low: float = float("nan")
    ci_high: float = float("nan")


@dataclass(frozen=True)
class GroupMetrics:
    """One group (one value of one attribute) on the audited cases.

    Attributes:
        attribute: the column (``sex``, ``age_bin``, ``site``).
        group: the value of the column (``"F"``, ``"[40, 65)"``, ``"(missing)"``).
        n: cases in the group; n_positive: of them, cases of the positive class.
        status: ``"ok"``, or ``"too small"`` (fewer than ``min_group_size`` cases: reported
            but left out of the gaps).
        metrics: ``GROUP_METRICS`` name -> estimate with interval.
        calibration_slope, calibration_intercept: logistic recalibration (``nan`` where not
            estimable; see ``medlens.audit.calibration_fit``).
    """

    attribute: str
    group: str
    n: int
    n_positive: int
    status: str
    metrics: dict[str, Estimate]
    calibration_slope: float = float("nan")
    calibration_intercept: float = float("nan")

    @property
    def prevalence(self) -> float:
        """Fraction of the group's cases in the positive class."""
        return self.n_positive / self.n if self.n else float("nan")

    def row(self) -> dict[str, Any]:
        """Flat table row: ``metric``, ``metric_ci_low``, ``metric_ci_high`` per metric."""
        out: dict[str, Any] = {
            "attribute": self.attribute,
            "group": self.group,
            "n": self.n,
            "n_positive": self.n_positive,
            "prevalence": self.prevalence,
            "status": self.status,
        }
        for name in GROUP_METRICS:
            est = self.metrics[name]
            out.update(
                {name: est.value, f"{name}_ci_low": est.ci_low, f"{name}_ci_high": est.ci_high}
            )
        out["calibration_slope"] = self.calibration_slope
        out["calibration_intercept"] = self.calibration_intercept
        return out


@dataclass(frozen=True)
class Gap:
    """The spread of one fairness metric between the groups of one attribute.

    ``difference`` is max - min over the eligible groups (status ``ok``, metric defined) and
    ``ratio`` min / max, as fairlearn's ``MetricFrame.difference()`` / ``.ratio()``; for
    equalised odds the larger TPR/FPR difference and the smaller ratio (fairlearn's
    ``equalized_odds_difference`` / ``_ratio``). ``higher_group`` and ``lower_group`` are the
    two groups that set the gap. The interval comes from the same within-group stratified
    resamples as the group metrics and accounts for every group, not only the two extremes
    (``medlens.audit.gaps``); ``flagged`` means it excludes 0, i.e. the gap is larger than
    resampling noise explains, and ``p_value`` is the matching bootstrap test of equal values
    in every group.
    """

    attribute: str
    name: str
    difference: float
    ci_low: float
    ci_high: float
    ratio: float
    ratio_ci_low: float
    ratio_ci_high: float
    higher_group: str | None
    lower_group: str | None
    flagged: bool
    note: str = ""
    p_value: float = float("nan")

    @property
    def title(self) -> str:
        return GAP_TITLES.get(self.name, self.name)


@dataclass
class AuditResult:
    """The outcome of ``audit_predictions`` / ``audit_run``.

    Attributes:
        attributes: the audited columns, in order.
        positive_class: name of the class whose rates are audited.
        threshold: decision threshold on p(positive class); ``None`` when the run's own
            decisions (``pred``) were audited (multi-class arg-max).
        split: the audited split (``"test"``).
        n_cases: audited cases.
        n_bootstrap, ci_level, seed: the resampling.
        min_group_size: groups with fewer cases are reported as "too small".
        groups: one entry per (attribute, group).
        gaps: one entry per (attribute, fairness criterion).
        plots: attribute -> figure paths relative to the output folder.
        mitigations: JSON-ready before/after records of threshold mitigations.
    """

    attributes: list[str]
    positive_class: str
    threshold: float | None
    split: str
    n_cases: int
    n_bootstrap: int
    ci_level: float
    seed: int
    min_group_size: int
    groups: list[GroupMetrics]
    gaps: list[Gap]
    plots: dict[str, list[str]] = field(default_factory=dict)
    mitigations: list[dict[str, Any]] = field(default_factory=list)

    def group_table(self) -> pd.DataFrame:
        """One row per (attribute, group), metrics with interval columns (audit.csv)."""
        return pd.DataFrame([g.row() for g in self.groups])

    def gap_table(self) -> pd.DataFrame:
        """One row per (attribute, fairness criterion)."""
        return pd.DataFrame([asdict(g) for g in self.gaps])

    def group(self, attribute: str, group: str) -> GroupMetrics:
        """The entry of one group; ``KeyError`` when it was not audited."""
        for entry in self.groups:
            if entry.attribute == attribute and entry.group == group:
                return entry
        raise KeyError(f"{attribute}={group}")

    def gap(self, attribute: str, name: str) -> Gap:
        """The gap of one attribute and criterion; ``KeyError`` when absent."""
        for entry in self.gaps:
            if entry.attribute == attribute and entry.name == name:
                return entry
        raise KeyError(f"{attribute}:{name}")

    def flagged(self) -> list[Gap]:
        return [g for g in self.gaps if g.flagged]

    @property
    def summary(self) -> str:
        """One paragraph: what was audited and which gaps were flagged."""
        level = f"{100 * self.ci_level:g}%"
        head = (
            f"Subgroup audit of {self.n_cases} {self.split} cases by {', '.join(self.attributes)} "
            f"(positive class '{self.positive_class}', {level} bootstrap intervals)."
        )
        small = [f"{g.attribute}={g.group} (n={g.n})" for g in self.groups if g.status == TOO_SMALL]
        tail = (
            f" Groups too small to compare (< {self.min_group_size} cases): {', '.join(small)}."
            if small
            else ""
        )
        flagged = self.flagged()
        if not flagged:
            return f"{head} No gap between groups exceeds resampling noise.{tail}"
        items = [
            f"{g.attribute}: {g.title} {g.difference:.3f} ({level} CI {g.ci_low:.3f} to "
            f"{g.ci_high:.3f}), {g.higher_group} vs {g.lower_group}"
            for g in flagged
        ]
        return f"{head} Flagged gaps: {'; '.join(items)}.{tail}"

    def to_dict(self) -> dict[str, Any]:
        """JSON-ready (NaN as ``None``); the content of audit.json."""
        groups = []
        for g in self.groups:
            entry = {k: v for k, v in asdict(g).items() if k != "metrics"}
            entry["prevalence"] = g.prevalence
            entry["metrics"] = {
                name: {
                    "value": _json(e.value),
                    "ci_low": _json(e.ci_low),
                    "ci_high": _json(e.ci_high),
                }
                for name, e in g.metrics.items()
            }
            for key in ("calibration_slope", "calibration_intercept", "prevalence"):
                entry[key] = _json(entry[key])
            groups.append(entry)
        gaps = [
            {k: (_json(v) if isinstance(v, float) else v) for k, v in asdict(g).items()}
            for g in self.gaps
        ]
        return {
            "summary": self.summary,
            "attributes": list(self.attributes),
            "positive_class": self.positive_class,
            "threshold": self.threshold,
            "split": self.split,
            "n_cases": self.n_cases,
            "n_bootstrap": self.n_bootstrap,
            "ci_level": self.ci_level,
            "seed": self.seed,
            "min_group_size": self.min_group_size,
            "groups": groups,
            "gaps": gaps,
            "plots": self.plots,
            "mitigations": self.mitigations,
        }

    @classmethod
    def from_dict(cls, data: dict[str, Any]) -> AuditResult:
        """The inverse of ``to_dict`` (what ``read_audit`` uses)."""
        groups = [
            GroupMetrics(
                attribute=g["attribute"],
                group=g["group"],
                n=int(g["n"]),
                n_positive=int(g["n_positive"]),
                status=g["status"],
                metrics={
                    name: Estimate(_float(e["value"]), _float(e["ci_low"]), _float(e["ci_high"]))
                    for name, e in g["metrics"].items()
                },
                calibration_slope=_float(g.get("calibration_slope")),
                calibration_intercept=_float(g.get("calibration_intercept")),
            )
            for g in data["groups"]
        ]
        gaps = [_gap_from_dict(g) for g in data["gaps"]]
        threshold = data.get("threshold")
        return cls(
            attributes=list(data["attributes"]),
            positive_class=str(data["positive_class"]),
            threshold=None if threshold is None else float(threshold),
            split=str(data["split"]),
            n_cases=int(data["n_cases"]),
            n_bootstrap=int(data["n_bootstrap"]),
            ci_level=float(data["ci_level"]),
            seed=int(data["seed"]),
            min_group_size=int(data["min_group_size"]),
            groups=groups,
            gaps=gaps,
            plots={k: list(v) for k, v in (data.get("plots") or {}).items()},
            mitigations=list(data.get("mitigations") or []),
        )
