"""audit_predictions on synthetic predictions, checked against fairlearn and scikit-learn."""

from __future__ import annotations

import numpy as np
import pandas as pd
import pytest
from fairlearn.metrics import (
    MetricFrame,
    demographic_parity_difference,
    demographic_parity_ratio,
    equalized_odds_difference,
    equalized_odds_ratio,
    false_positive_rate,
    selection_rate,
    true_positive_rate,
)
from sklearn.metrics import precision_score, recall_score, roc_auc_score

from medlens.audit import audit_predictions
from medlens.errors import ConfigError, InputError


def _predictions(rng: np.random.Generator, n: int = 600, bias: float = 0.0) -> pd.DataFrame:
    """Binary predictions; in group "b" of ``site`` the classes are separated ``1 - bias`` as
    well as elsewhere (bias 1: b's scores are noise)."""
    site = rng.choice(["a", "b", "c"], n, p=[0.5, 0.3, 0.2])
    label = (rng.uniform(size=n) < 0.4).astype(int)
    score = rng.normal(size=n) + 1.5 * label * np.where(site == "b", 1.0 - bias, 1.0)
    prob = 1.0 / (1.0 + np.exp(-score))
    sex = rng.choice(["F", "M"], n)
    split = np.where(np.arange(n) < n // 5, "val", "test")
    return pd.DataFrame({"split": split, "label": label, "prob_1": prob, "site": site, "sex": sex})


@pytest.fixture
def predictions(rng: np.random.Generator) -> pd.DataFrame:
    return _predictions(rng)


def test_group_metrics_and_gaps_match_fairlearn(predictions: pd.DataFrame) -> None:
    threshold = 0.45
    result = audit_predictions(predictions, ["site"], "label", "prob_1", threshold, 200, seed=0)
    test = predictions[predictions["split"] == "test"]
    y, p, g = test["label"], test["prob_1"], test["site"]
    pred = (p >= threshold).astype(int)
    frame = MetricFrame(
        metrics={
            "tpr": true_positive_rate,
            "fpr": false_positive_rate,
            "selection_rate": selection_rate,
            "ppv": precision_score,
        },
        y_true=y,
        y_pred=pred,
        sensitive_features=g,
    )
    for site in ("a", "b", "c"):
        entry = result.group("site", site)
        for metric in ("tpr", "fpr", "selection_rate", "ppv"):
            assert entry.metrics[metric].value == pytest.approx(frame.by_group.loc[site, metric])
        rows = test[test["site"] == site]
        assert entry.n == len(rows) and entry.n_positive == rows["label"].sum()
        auc = roc_auc_score(rows["label"], rows["prob_1"])
        assert entry.metrics["auc"].value == pytest.approx(auc)
        assert entry.metrics["fnr"].value == pytest.approx(1 - entry.metrics["tpr"].value)
    eo = result.gap("site", "equalised_odds")
    assert eo.difference == pytest.approx(equalized_odds_difference(y, pred, sensitive_features=g))
    assert eo.ratio == pytest.approx(equalized_odds_ratio(y, pred, sensitive_features=g))
    dp = result.gap("site", "demographic_parity")
    assert dp.difference == pytest.approx(
        demographic_parity_difference(y, pred, sensitive_features=g)
    )
    assert dp.ratio == pytest.approx(demographic_parity_ratio(y, pred, sensitive_features=g))
    eop = result.gap("site", "equal_opportunity")
    assert eop.difference == pytest.approx(frame.difference()["tpr"])
    assert eop.ratio == pytest.approx(frame.ratio()["tpr"])
    aucs = test.groupby("site").apply(lambda r: roc_auc_score(r["label"], r["prob_1"]))
    assert result.gap("site", "auc").difference == pytest.approx(aucs.max() - aucs.min())
    assert result.gap("site", "auc").higher_group == aucs.idxmax()


def test_intervals_bracket_the_values_and_repeat_with_the_seed(predictions) -> None:
    first = audit_predictions(predictions, ["site"], "label", "prob_1", 0.5, 300, seed=3)
    again = audit_predictions(predictions, ["site"], "label", "prob_1", 0.5, 300, seed=3)
    other = audit_predictions(predictions, ["site"], "label", "prob_1", 0.5, 300, seed=4)
    assert first.to_dict() == again.to_dict()
    assert first.to_dict() != other.to_dict()
    for entry in first.groups:
        for metric in ("tpr", "fpr", "auc", "selection_rate"):
            est = entry.metrics[metric]
            assert est.ci_low <= est.value <= est.ci_high
            assert est.ci_high - est.ci_low > 0
    for gap in first.gaps:
        assert 0.0 <= gap.ci_low <= gap.difference <= gap.ci_high
        assert gap.ratio_ci_low <= gap.ratio <= gap.ratio_ci_high <= 1.0


def test_a_real_difference_is_flagged_and_its_absence_is_not(rng) -> None:
    biased = _predictions(rng, n=3000, bias=0.8)
    result = audit_predictions(biased, ["site", "sex"], "label", "prob_1", 0.5, 500, seed=0)
    for name in ("equal_opportunity", "auc", "equalised_odds"):
        gap = result.gap("site", name)
        assert gap.flagged and gap.p_value < 0.05
        assert "b" in (gap.lower_group, gap.higher_group)
    assert result.gap("site", "auc").lower_group == "b"
    assert not any(g.flagged for g in result.gaps if g.attribute == "sex")
    assert "site" in result.summary and "Flagged" in result.summary


def test_null_flag_rate_stays_near_the_nominal_level() -> None:
    """Random groups, no true gap: each criterion is flagged about 1 time in 20.

    Holding each group's prevalence fixed in the resamples would flag demographic parity
    about one time in four here; the audit resamples selection rate within groups only.
    """
    rng = np.random.default_rng(11)
    flags = {}
    reps = 60
    for rep in range(reps):
        n = 300
        label = (rng.uniform(size=n) < 0.5).astype(int)
        prob = 1.0 / (1.0 + np.exp(-(rng.normal(size=n) + 3.0 * (label - 0.5))))
        df = pd.DataFrame({"label": label, "prob": prob, "g": rng.choice(["x", "y"], n)})
        result = audit_predictions(df, ["g"], "label", "prob", 0.5, 200, seed=rep)
        for gap in result.gaps:
            flags[gap.name] = flags.get(gap.name, 0) + gap.flagged
    assert max(flags.values()) / reps <= 0.12, flags


def test_small_groups_are_reported_but_not_compared(predictions) -> None:
    df = predictions.copy()
    test_rows = df.index[df["split"] == "test"]
    df.loc[test_rows[:12], "site"] = "tiny"
    df.loc[test_rows[:12], "prob_1"] = 0.01  # the tiny site misses every positive
    df.loc[test_rows[12:15], "site"] = np.nan  # a missing attribute is a group of its own
    result = audit_predictions(df, ["site"], "label", "prob_1", 0.5, 100, min_group_size=30)
    tiny = result.group("site", "tiny")
    assert tiny.status == "too small" and tiny.n == 12
    assert tiny.metrics["selection_rate"].value == 0.0
    missing = result.group("site", "(missing)")
    assert missing.n == 3 and missing.status == "too small"
    assert sum(g.n for g in result.groups) == len(test_rows)  # nothing dropped
    for gap in result.gaps:
        assert {gap.higher_group, gap.lower_group} <= {"a", "b", "c"}
    assert "too small" in result.summary and "tiny" in result.summary


def test_a_gap_needs_two_comparable_groups(predictions) -> None:
    result = audit_predictions(
        predictions, ["site"], "label", "prob_1", 0.5, 50, min_group_size=200
    )
    gap = result.gap("site", "auc")
    assert np.isnan(gap.difference) and not gap.flagged and "fewer than two" in gap.note


def test_no_resamples_means_no_interval_and_no_flag(rng) -> None:
    biased = _predictions(rng, n=2000, bias=0.8)
    result = audit_predictions(biased, ["site"], "label", "prob_1", 0.5, n_bootstrap=0)
    assert all(not g.flagged and np.isnan(g.ci_low) for g in result.gaps)
    assert all(np.isnan(g.metrics["auc"].ci_low) for g in result.groups)


def test_multiclass_is_audited_one_vs_rest_with_the_run_decisions(rng) -> None:
    n = 400
    prob = rng.dirichlet([1.0, 1.0, 1.0], n)
    label = np.array([rng.choice(3, p=row) for row in prob])
    df = pd.DataFrame(
        {
            "label": label,
            "prob_c": prob[:, 2],
            "pred": prob.argmax(1),
            "g": rng.choice(["u", "v"], n),
        }
    )
    result = audit_predictions(df, ["g"], "label", "prob_c", None, 100, positive_label=2)
    for group in ("u", "v"):
        rows = df[df["g"] == group]
        tpr = recall_score(rows["label"] == 2, rows["pred"] == 2)
        assert result.group("g", group).metrics["tpr"].value == pytest.approx(tpr)
        auc = roc_auc_score(rows["label"] == 2, rows["prob_c"])
        assert result.group("g", group).metrics["auc"].value == pytest.approx(auc)
    assert result.threshold is None and result.split == "all"


def test_bad_input_is_named(predictions) -> None:
    with pytest.raises(InputError, match=r"preds\.csv: has no group column 'age' \(columns: split"):
        audit_predictions(predictions, ["age"], "label", "prob_1", 0.5, source="preds.csv")
    with pytest.raises(InputError, match="probabilities"):
        audit_predictions(predictions.assign(prob_1=2.0), ["site"], "label", "prob_1", 0.5)
    with pytest.raises(InputError, match="no rows with split == 'test'"):
        audit_predictions(predictions.assign(split="val"), ["site"], "label", "prob_1", 0.5)
    with pytest.raises(ConfigError, match="ci_level"):
        audit_predictions(predictions, ["site"], "label", "prob_1", 0.5, ci_level=95)
