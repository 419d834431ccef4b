"""Per-group thresholds (fairlearn ThresholdOptimizer) on synthetic predictions."""

from __future__ import annotations

import numpy as np
import pandas as pd
import pytest

from medlens.audit import mitigate_thresholds
from medlens.errors import ConfigError, InputError


def _predictions(rng: np.random.Generator, n: int) -> pd.DataFrame:
    """Group "b" gets scores shifted down: at one threshold its TPR is much lower."""
    group = rng.choice(["a", "b"], n)
    label = (rng.uniform(size=n) < 0.5).astype(int)
    score = rng.normal(size=n) + 2.0 * label - 1.0 * (group == "b")
    prob = 1 / (1 + np.exp(-score))
    split = rng.choice(["val", "test"], n)
    return pd.DataFrame({"split": split, "label": label, "prob_1": prob, "g": group})


def test_tpr_parity_equalises_test_tpr_when_val_and_test_agree(rng) -> None:
    df = _predictions(rng, 20_000)
    rows, mitigation = mitigate_thresholds(
        df, "g", "true_positive_rate_parity", threshold=0.5, n_bootstrap=100
    )
    before = mitigation.before.gap("g", "equal_opportunity")
    after = mitigation.after.gap("g", "equal_opportunity")
    assert before.difference > 0.1 and before.flagged  # TPR 0.98 (a) vs 0.84 (b)
    assert after.difference < 0.03
    # The decisions respect the fitted rules: a higher probability never lowers p(positive).
    for group in ("a", "b"):
        part = rows[rows["g"] == group].sort_values("prob_1")
        assert np.all(np.diff(part["p_positive_mitigated"].to_numpy()) >= -1e-12)
    assert mitigation.overall["balanced_accuracy"]["after"] > 0.6
    table = mitigation.gap_changes()
    assert table.set_index("gap").loc["equal_opportunity", "after"] == after.difference


def test_randomised_decisions_repeat_with_the_seed(rng) -> None:
    df = _predictions(rng, 2000)
    first, _ = mitigate_thresholds(df, "g", "equalized_odds", n_bootstrap=0, seed=5)
    again, _ = mitigate_thresholds(df, "g", "equalized_odds", n_bootstrap=0, seed=5)
    pd.testing.assert_frame_equal(first, again)


def test_groups_without_validation_cases_are_refused(rng) -> None:
    df = _predictions(rng, 2000)
    df.loc[(df["split"] == "test").to_numpy().nonzero()[0][:40], "g"] = "new"
    with pytest.raises(InputError, match="new of 'g' have test rows but no val rows"):
        mitigate_thresholds(df, "g", n_bootstrap=0, source="predictions.csv")


def test_validation_groups_need_both_classes(rng) -> None:
    df = _predictions(rng, 2000)
    df.loc[(df["split"] == "val") & (df["g"] == "b"), "label"] = 1
    with pytest.raises(InputError, match="val rows of g=b hold only class positive"):
        mitigate_thresholds(df, "g", n_bootstrap=0)


def test_unknown_constraint_and_missing_split(rng) -> None:
    df = _predictions(rng, 500)
    with pytest.raises(ConfigError, match="unknown constraint 'demographic'"):
        mitigate_thresholds(df, "g", "demographic")
    with pytest.raises(InputError, match="no column 'split'"):
        mitigate_thresholds(df.drop(columns="split"), "g")
