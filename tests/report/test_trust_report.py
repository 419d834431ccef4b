"""The report and the model card say when not to trust a prediction: calibration before and
after, the refer band and what it kept, AURC, and the out-of-distribution flags."""

from __future__ import annotations

import shutil
from pathlib import Path

from medlens.report.html import write_report
from medlens.report.model_card import write_model_card


def test_report_and_model_card_have_the_trust_section(pneumonia_run: Path, tmp_path: Path):
    run = shutil.copytree(pneumonia_run, tmp_path / "pneumonia")
    html = write_report(run).read_text()
    assert '<section id="trust">' in html
    for text in ("ECE before", "temperature scaling", "Refer to a human", "AURC, class-stratified",
                 "Out-of-distribution score: mahalanobis"):  # fmt: skip
        assert text in html, text
    for name in ("calibration_test.png", "risk_coverage_test.png", "calibration_val.png"):
        assert (run / "plots" / name).is_file(), name
    card = write_model_card(run).read_text()
    assert "## When not to trust a prediction" in card and "| test |" in card
    assert "middle of the thresholds whose Youden's J" in card
