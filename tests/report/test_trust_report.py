"""The report and the model card say when not to trust a prediction: calibration before and
after, the refer band and what it kept, AURC, and the out-of-distribution flags."""

from __future__ import annotations

import shutil
from html import unescape
from pathlib import Path

import pytest

from medlens.report.html import write_report
from medlens.report.model_card import write_model_card


def test_report_and_model_card_have_the_trust_section(pneumonia_run: Path, tmp_path: Path):
    run = shutil.copytree(pneumonia_run, tmp_path / "pneumonia")
    html = write_report(run).read_text()
    assert '<section id="trust">' in html
    for text in ("ECE before", "temperature scaling", "Refer to a human", "AURC, class-stratified",
                 "Out-of-distribution score: mahalanobis"):  # fmt: skip
        assert text in html, text
    # the test split read as a batch from a new site: its mix estimated without labels
    assert "the test split's class mix is estimated at pneumonia" in unescape(html)
    for name in ("calibration_test.png", "risk_coverage_test.png", "calibration_val.png"):
        assert (run / "plots" / name).is_file(), name
    # the run's calibrator beside the others, each scored on validation cases it did not see
    assert "Log loss of each calibrator on validation cases it was not fitted on" in html
    card = write_model_card(run).read_text()
    assert "## When not to trust a prediction" in card and "| test |" in card
    assert "Log loss of each calibrator" in card
    assert "middle of the thresholds whose Youden's J" in card


def test_the_run_records_the_test_mix_estimated_without_labels(pneumonia_run: Path) -> None:
    import json

    import pandas as pd

    metrics = json.loads((pneumonia_run / "metrics.json").read_text())
    shift = metrics["trust"]["calibration"]["prior_shift"]
    table = pd.read_csv(pneumonia_run / "predictions.csv")
    test = table[table["split"] == "test"]
    # the cases predict --adapt-prior would use: those not flagged out of distribution
    inside = test["ood"] == 0
    assert 0 < (~inside).sum() == shift["out_of_distribution_left_out"]
    assert shift["n_cases"] == inside.sum() and shift["converged"]
    assert shift["true_prior"]["pneumonia"] == (test.loc[inside, "label"] == 1).mean()
    from medlens.inference.classify import _adapt_rows
    from medlens.run_folder.trust import read_source_prior

    names = ["normal", "pneumonia"]
    rows = test[["prob_normal", "prob_pneumonia", "ood"]].to_dict("records")
    predicted = _adapt_rows(rows, names, read_source_prior(pneumonia_run, 2), pneumonia_run)
    assert predicted["n_cases"] == shift["n_cases"]
    assert shift["target_prior"] == pytest.approx(predicted["target_prior"])
    low, high = shift["target_prior_95ci"]["pneumonia"]
    assert low <= shift["target_prior"]["pneumonia"] <= high
    # the source mix is the mean calibrated validation probability, and calibration.json has it
    val = table[table["split"] == "val"]
    assert shift["source_prior"]["pneumonia"] == pytest.approx(val["prob_pneumonia"].mean())
    record = json.loads((pneumonia_run / "calibration.json").read_text())
    assert record["source_prior"][1] == pytest.approx(shift["source_prior"]["pneumonia"])
    assert 0 <= shift["ece_adapted"] <= 1


def _edit_metrics(run: Path, edit) -> None:
    import json

    path = run / "metrics.json"
    metrics = json.loads(path.read_text())
    edit(metrics["trust"])
    path.write_text(json.dumps(metrics))


def test_a_run_with_the_score_says_flagged_cases_are_referred_and_counts_them(
    pneumonia_run: Path, tmp_path: Path
) -> None:
    import json

    run = shutil.copytree(pneumonia_run, tmp_path / "pneumonia")
    html = unescape(write_report(run).read_text())
    assert "A case flagged out of distribution is referred too." in html
    assert "no out-of-distribution score" not in html
    card = write_model_card(run).read_text()
    assert "A case flagged out of distribution is referred too." in card
    ood = json.loads((run / "metrics.json").read_text())["trust"]["ood"]["splits"]
    for split, title in (("val", "validation"), ("test", "test")):
        row = f"| {title} | {ood[split]['n']} | {ood[split]['flagged']} |"
        assert row in card, row


def test_a_run_without_the_score_never_says_flagged_cases_are_referred(
    pneumonia_run: Path, tmp_path: Path
) -> None:
    """ood.score: none and refer.rule: none (the audit's run): one consistent story."""

    def no_score_no_band(trust: dict) -> None:
        del trust["ood"]
        trust["refer"]["band"] = {"rule": "none", "low": None, "high": None, "targets": {}}

    run = shutil.copytree(pneumonia_run, tmp_path / "pneumonia")
    _edit_metrics(run, no_score_no_band)
    html = unescape(write_report(run).read_text())
    card = write_model_card(run).read_text()
    for text in (html, card):
        assert "No refer band: every case gets the model's decision." in text
        assert "This run has no out-of-distribution score" in text
        assert "flagged out of distribution is referred" not in text
