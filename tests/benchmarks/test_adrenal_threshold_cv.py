"""benchmarks/adrenal_threshold_cv.py: the rule needs a difference whose whole interval is
above zero; the report holds what the committed rows give, and the recipe the threshold rule
recorded beside it."""

from __future__ import annotations

import json
import sys
from pathlib import Path

import yaml

REPO = Path(__file__).resolve().parents[2]
sys.path.insert(0, str(REPO / "benchmarks"))
import adrenal_threshold_cv as tcv  # noqa: E402


def test_a_clear_gain_at_half_chooses_the_fixed_threshold() -> None:
    assert tcv.decide([0.02, 0.01, 0.03, 0.02, 0.015, 0.025] * 5)["chosen"] == "fixed"


def test_a_gain_whose_interval_reaches_zero_or_a_loss_keeps_the_plateau_rule() -> None:
    noisy = tcv.decide([0.10, -0.09, 0.05, -0.04, 0.01, -0.02])
    assert noisy["mean_difference"] > 0 and noisy["ci95"][0] < 0
    assert noisy["chosen"] == "youden_plateau"
    assert tcv.decide([-0.02, -0.01, -0.03] * 5)["chosen"] == "youden_plateau"


def test_the_bootstrap_interval_is_seeded_and_holds_the_mean() -> None:
    values = [0.05, -0.01, 0.02, 0.0, 0.03]
    low, high = tcv.bootstrap_interval(values)
    assert (low, high) == tcv.bootstrap_interval(values)
    assert low < sum(values) / len(values) < high


def test_the_report_holds_the_rules_choice_and_the_recipe_the_recorded_decision() -> None:
    rows = [json.loads(line) for line in tcv.ROWS.read_text().splitlines() if line.strip()]
    decision = tcv.decide(tcv.paired_differences(rows))
    report = json.loads((REPO / "benchmarks/results/adrenal_threshold_cv.json").read_text())
    assert report["chosen"] == decision["chosen"]
    assert report["recipe_threshold"] == tcv.RECIPE_THRESHOLD
    recipe = yaml.safe_load((REPO / "configs/adrenalmnist3d_small_cnn.yaml").read_text())
    assert recipe["train"]["threshold"] == tcv.RECIPE_THRESHOLD
