"""The report's sentence on the refer band, for each kind of band a run may have recorded."""

from __future__ import annotations

from medlens.report.trust_section import (
    describe_band,
    describe_ood,
    describe_prior_shift,
    describe_referral,
)


def test_a_two_class_band_is_given_as_its_interval() -> None:
    band = {"rule": "coverage", "low": 0.2, "high": 0.45, "targets": {"coverage": 0.9}}
    text = describe_band(band, ["normal", "pneumonia"])
    assert "p(pneumonia) in [0.2, 0.45)" in text and "coverage 0.9" in text


def test_a_many_class_band_names_each_class_cut() -> None:
    band = {
        "rule": "coverage",
        "class_min_confidence": [0.61, 0.5, 1.0000000000000002],
        "targets": {"coverage": 0.9},
    }
    text = describe_band(band, ["neutrophil", "lymphocyte", "monocyte"])
    assert "p(neutrophil) < 0.61" in text and "p(lymphocyte) < 0.5" in text
    assert "p(monocyte) < 1" in text  # every monocyte decision referred, said without 1.0000…


def test_a_band_recorded_before_the_class_cuts_keeps_its_single_cut() -> None:
    band = {"rule": "coverage", "min_confidence": 0.55, "targets": {"coverage": 0.9}}
    assert "largest probability is below 0.55" in describe_band(band, ["a", "b", "c"])


def test_the_prior_shift_sentence_gives_estimate_interval_truth_and_ece() -> None:
    shift = {
        "source_prior": {"normal": 0.26, "pneumonia": 0.74},
        "target_prior": {"normal": 0.4, "pneumonia": 0.6},
        "target_prior_95ci": {"normal": [0.35, 0.45], "pneumonia": [0.55, 0.65]},
        "true_prior": {"normal": 0.375, "pneumonia": 0.625},
        "ece_adapted": 0.0312,
        "brier_adapted": 0.08,
    }
    text = describe_prior_shift(shift, ["normal", "pneumonia"])
    assert "estimated at pneumonia 60.0%" in text and "55.0-65.0%" in text
    assert "truly is pneumonia 62.5%" in text and "assume pneumonia 74.0%" in text
    assert "ECE is 0.0312" in text and "relied on" not in text
    warned = describe_prior_shift({**shift, "warning": "a class share went to the edge"},
                                  ["normal", "pneumonia"])  # fmt: skip
    assert warned.endswith("not to be relied on: a class share went to the edge.")
    # the demo's test split: 69.1% estimated (64.5-73.1%), 62.5% true
    outside = {**shift, "target_prior_95ci": {"normal": [0.27, 0.35], "pneumonia": [0.65, 0.73]}}
    assert "interval misses the true mix" in describe_prior_shift(outside, ["normal", "pneumonia"])
    assert "misses" not in text
    assert describe_prior_shift(None, ["a", "b"]) == ""
    assert "too few" in describe_prior_shift({"skipped": "12 cases are too few"}, ["a", "b"])


def test_the_referral_sentence_mentions_the_flag_only_for_a_run_that_has_one() -> None:
    names = ["normal", "pneumonia"]
    band = {"rule": "coverage", "low": 0.2, "high": 0.45, "targets": {"coverage": 0.9}}
    none = {"rule": "none", "low": None, "high": None, "targets": {}}
    assert describe_referral(band, names, True) == (
        describe_band(band, names) + " A case flagged out of distribution is referred too."
    )
    assert describe_referral(band, names, False) == describe_band(band, names)
    assert describe_referral(none, names, False) == (
        "No refer band: every case gets the model's decision."
    )
    flagged = describe_referral(none, names, True)
    assert "unless it is flagged out of distribution" in flagged
    assert "every case gets the model's decision." not in flagged  # no contradiction


def test_an_ensemble_ood_record_names_the_rule_and_each_member_threshold() -> None:
    record = {
        "score": "any_member",
        "members": [
            {"name": "a", "score": "mahalanobis", "threshold": 37.8476, "false_alarm_rate": 0.05},
            {"name": "b", "score": "mahalanobis", "threshold": 12.5, "false_alarm_rate": 0.1},
        ],
        "members_without_score": ["handcrafted"],
        "splits": {},
    }
    text = describe_ood(record)
    assert "when any member run flags it" in text
    assert "a (mahalanobis) flags a case above 37.8476" in text and "5% of its validation" in text
    assert "b (mahalanobis) flags a case above 12.5000" in text and "10% of its validation" in text
    assert text.endswith("Without an out-of-distribution score: handcrafted.")
    single = {"score": "mahalanobis", "threshold": 3.0, "false_alarm_rate": 0.05, "dims": 8}
    assert describe_ood(single).startswith("Out-of-distribution score: mahalanobis")


def test_the_comparison_sentence_names_a_better_calibrator_and_leaves_the_choice() -> None:
    from medlens.report.trust_section import describe_comparison

    scores = {m: {"log_loss": v} for m, v in (("none", 0.9), ("temperature", 0.52), ("bcts", 0.21))}
    better = {"compared_on_val": {"scores": scores, "best": "bcts", "configured": "temperature"}}
    text = describe_comparison(better)
    assert "temperature 0.52" in text and "bcts 0.21" in text
    assert "bcts is lower than the temperature this run applies" in text
    assert "calibration.method: bcts" in text
    same = {"compared_on_val": {"scores": scores, "best": "bcts", "configured": "bcts"}}
    assert "is lower than" not in describe_comparison(same)
    assert describe_comparison({"method": "temperature"}) == ""  # a run from before
    skipped = {"compared_on_val": {"skipped": "too few", "configured": "temperature"}}
    assert describe_comparison(skipped) == "Calibrators were not compared on validation: too few."


def _compared(best: str, configured: str, **losses: float) -> dict:
    scores = {method: {"log_loss": value} for method, value in losses.items()}
    return {"compared_on_val": {"scores": scores, "best": best, "configured": configured}}


def test_the_comparison_says_why_only_of_the_calibrator_that_won() -> None:
    from medlens.report.trust_section import describe_comparison

    isotonic = describe_comparison(
        _compared("isotonic", "temperature", none=0.4, temperature=0.3, isotonic=0.2)
    )
    assert "isotonic is lower than the temperature this run applies (a monotone" in isotonic
    assert "bcts" not in isotonic  # the old sentence praised bcts whichever calibrator won
    # a run with calibration off is not "the none this run applies"
    off = describe_comparison(_compared("bcts", "none", none=0.4, bcts=0.2))
    assert "bcts is lower than this run's uncalibrated probabilities (its bias per" in off
    assert "the none" not in off
    # a gap the table cannot show is level, not "lower"
    level = describe_comparison(
        _compared("dirichlet", "temperature", temperature=0.5712, dirichlet=0.5710)
    )
    assert "is lower than" not in level
    assert "The temperature this run applies is level with the lowest (dirichlet)" in level


def test_the_calibrator_sentence_warns_of_a_fit_on_its_bound_and_tells_ensembles_apart() -> None:
    from medlens.report.trust_section import describe_calibrator

    stuck = {"method": "bcts", "temperature": 0.01, "bias": [-185.4], "at_bound": ["temperature"]}
    assert "ended on the bound of its search for temperature" in describe_calibrator(stuck)
    assert "bound" not in describe_calibrator({"method": "temperature", "temperature": 1.2})
    # an ensemble's members are calibrated before combining, even when it adds nothing
    members = describe_calibrator({"method": "none"}, ensemble=True)
    assert "not calibrated after training" not in members
    assert "Each member's probabilities are calibrated by that member's own calibrator" in members
    assert "not calibrated again (--calibration none)" in members
    again = describe_calibrator({"method": "temperature", "temperature": 1.3}, ensemble=True)
    assert "calibrated again by temperature scaling (T = 1.300)" in again


def test_the_model_card_carries_the_risk_coverage_tables_and_the_band_coverage(
    pneumonia_run, tmp_path
) -> None:
    import json
    import shutil

    from medlens.report.formatting import format_value
    from medlens.report.model_card import write_model_card

    run = shutil.copytree(pneumonia_run, tmp_path / "run")
    card = write_model_card(run).read_text()
    trust = json.loads((run / "metrics.json").read_text())["trust"]
    test = trust["selective"]["test"]
    aurc = f"{format_value(test['aurc'], 4)} ({format_value(test['aurc_balanced'], 4)})"
    assert f"| test | {aurc} |" in card
    assert "| Coverage | Cases kept | Balanced accuracy |" in card
    for row in test["coverage"]:
        kept = f"| {100 * row['coverage']:.0f}% | {row['kept']} | "
        assert kept + f"{format_value(row['balanced_accuracy'])} |" in card
    band = trust["refer"]["splits"]["test"]
    assert f"| {band['referred']} | {format_value(band['coverage'])} |" in card


def test_the_prior_shift_sentence_names_the_cases_it_used_and_what_they_assume() -> None:
    shift = {
        "source_prior": {"normal": 0.26, "pneumonia": 0.74},
        "target_prior": {"normal": 0.4, "pneumonia": 0.6},
        "target_prior_95ci": {"normal": [0.35, 0.45], "pneumonia": [0.55, 0.65]},
        "true_prior": {"normal": 0.375, "pneumonia": 0.625},
        "n_cases": 581,
        "out_of_distribution_left_out": 43,
        "ece_adapted": 0.0312,
        "brier_adapted": 0.08,
        "ece_calibrated": 0.0401,
        "brier_calibrated": 0.0822,
    }
    text = describe_prior_shift(shift, ["normal", "pneumonia"])
    assert "from its 581 cases not flagged out of distribution (43 flagged, left out)" in text
    assert "among them it truly is pneumonia 62.5%" in text
    assert "ECE is 0.0312 and Brier 0.0800 (before adapting: 0.0401 and 0.0822)" in text
    assert "the calibrated probabilities assume" in text
    off = describe_prior_shift(shift, ["normal", "pneumonia"], calibrated=False)
    assert "the run's probabilities (uncalibrated) assume" in off
    # nothing flagged: the sentence is as before
    plain = describe_prior_shift(
        {**shift, "out_of_distribution_left_out": 0}, ["normal", "pneumonia"]
    )
    assert "flagged" not in plain and "; it truly is" in plain
