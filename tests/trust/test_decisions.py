"""Decisions: the class at the threshold, and why a case is referred."""

from __future__ import annotations

import numpy as np

from medlens.trust.decisions import OUT_OF_DISTRIBUTION, REFER, UNCERTAIN, decide
from medlens.trust.refer import ReferBand


def test_out_of_distribution_wins_over_the_band_and_both_are_referred() -> None:
    probs = np.array([[0.9, 0.1], [0.45, 0.55], [0.45, 0.55], [0.1, 0.9]])
    band = ReferBand("coverage", low=0.5, high=0.6)
    decisions = decide(
        probs, 0.5, band, np.array([1.0, 2.0, 9.0, 9.0]), np.array([False, False, True, True])
    )
    names = ["normal", "pneumonia"]
    rows = [decisions.row(k, names) for k in range(4)]
    assert [r["decision"] for r in rows] == ["normal", REFER, REFER, REFER]
    assert [r["refer_reason"] for r in rows] == [
        "",
        UNCERTAIN,
        OUT_OF_DISTRIBUTION,
        OUT_OF_DISTRIBUTION,
    ]
    assert [r["ood"] for r in rows] == [0, 0, 1, 1]
    assert list(decisions.preds) == [0, 1, 1, 1]  # the class at the threshold stays recorded
    assert decisions.counts() == {"referred": 3, "out_of_distribution": 2}


def test_a_run_without_score_or_band_refers_nothing() -> None:
    decisions = decide(np.array([[0.2, 0.3, 0.5]]), None, ReferBand())
    assert decisions.row(0, ["a", "b", "c"]) == {"decision": "c", "refer": 0, "refer_reason": ""}
