"""Risk-coverage curves and AURC."""

from __future__ import annotations

import numpy as np
import pytest

from medlens.trust.selective import (
    aurc,
    balanced_accuracy,
    coverage_table,
    decision_confidence,
    margin_confidence,
    max_softmax,
    risk_coverage,
)


def test_an_ordering_that_puts_the_errors_last_beats_one_that_puts_them_first() -> None:
    y = np.array([0, 1, 0, 1, 0, 1])
    pred = np.array([0, 1, 0, 1, 1, 0])  # the last two are wrong
    good = np.array([6, 5, 4, 3, 2, 1.0])
    bad = good[::-1]
    coverage, risk = risk_coverage(y, pred, good)
    assert coverage[-1] == 1.0 and risk[-1] == pytest.approx(2 / 6)
    assert risk[:4].max() == 0
    assert aurc(y, pred, good) < aurc(y, pred, bad)
    assert aurc(y, pred, good, "balanced") < aurc(y, pred, bad, "balanced")


def test_balanced_risk_weighs_each_class_alike() -> None:
    y = np.array([0] * 9 + [1])
    pred = np.zeros(10, dtype=int)
    _, error = risk_coverage(y, pred, np.arange(10, 0, -1))
    _, balanced = risk_coverage(y, pred, np.arange(10, 0, -1), "balanced")
    assert error[-1] == pytest.approx(0.1) and balanced[-1] == pytest.approx(0.5)
    assert balanced_accuracy(y, pred) == pytest.approx(0.5)


def test_margin_is_the_distance_from_the_decision_in_log_odds() -> None:
    probs = np.array([[0.5, 0.5], [0.2, 0.8], [0.05, 0.95]])
    margin = margin_confidence(probs, 0.8)
    assert margin[1] == pytest.approx(0.0) and margin[0] > 0 and margin[2] > 0
    table = coverage_table([1, 1, 1], [1, 1, 1], margin, coverages=(1.0, 0.5))
    assert [row["kept"] for row in table] == [3, 2]


def test_summary_headline_aurc_is_the_error_rate_of_the_decisions_probability() -> None:
    """The headline AURC orders by the probability of the decided class and counts errors
    (Geifman and El-Yaniv); the balanced-risk and margin AURCs are recorded beside it."""
    from medlens.trust.summary import selective_summary

    p1 = np.array([0.99, 0.98, 0.97, 0.02, 0.05, 0.3, 0.7, 0.4])
    labels = np.array([1, 0, 1, 0, 0, 0, 1, 1])
    preds = (p1 >= 0.25).astype(int)
    probs = np.c_[1 - p1, p1]
    summary = selective_summary(labels, preds, probs, 0.25)
    decided = np.where(preds == 1, p1, 1 - p1)
    assert summary["aurc"] == pytest.approx(aurc(labels, preds, decided, "error"))
    assert summary["aurc_balanced"] == pytest.approx(aurc(labels, preds, decided, "balanced"))
    margin = margin_confidence(probs, 0.25)
    assert summary["aurc_margin"] == pytest.approx(aurc(labels, preds, margin, "error"))


def test_the_decisions_probability_beats_max_softmax_off_a_half_threshold() -> None:
    """Calibrated cases decided class 1 at a threshold of 0.2 with p(class 1) in (0.2, 0.5)
    are mostly wrong; max-softmax calls them confident class-0 cases and keeps them early,
    the decision's probability refers them first. At a 0.5 threshold both orders agree."""
    rng = np.random.default_rng(0)
    p1 = rng.uniform(0, 1, 4000)
    labels = (rng.uniform(0, 1, 4000) < p1).astype(int)  # calibrated by construction
    probs = np.c_[1 - p1, p1]
    preds = (p1 >= 0.2).astype(int)
    ours = aurc(labels, preds, decision_confidence(probs, preds))
    baseline = aurc(labels, preds, max_softmax(probs))
    assert ours < baseline - 0.01
    half = (p1 >= 0.5).astype(int)
    np.testing.assert_allclose(decision_confidence(probs, half), max_softmax(probs))
