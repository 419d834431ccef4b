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
    stratified_confidence,
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


def test_summary_headline_aurc_is_the_error_rate_of_the_class_stratified_order() -> None:
    """The headline AURC orders by the class-stratified score and counts errors (Geifman and
    El-Yaniv); the balanced-risk, decision's-probability and margin AURCs are beside it."""
    from medlens.trust.summary import selective_summary

    p1 = np.array([0.99, 0.98, 0.97, 0.02, 0.05, 0.3, 0.7, 0.4])
    labels = np.array([1, 0, 1, 0, 0, 0, 1, 1])
    preds = (p1 >= 0.25).astype(int)
    probs = np.c_[1 - p1, p1]
    summary = selective_summary(labels, preds, probs, 0.25)
    ours = stratified_confidence(probs, preds)
    assert summary["confidence"] == "stratified"
    assert summary["aurc"] == pytest.approx(aurc(labels, preds, ours, "error"))
    assert summary["aurc_balanced"] == pytest.approx(aurc(labels, preds, ours, "balanced"))
    decided = np.where(preds == 1, p1, 1 - p1)
    assert summary["aurc_decision"] == pytest.approx(aurc(labels, preds, decided, "error"))
    margin = margin_confidence(probs, 0.25)
    assert summary["aurc_margin"] == pytest.approx(aurc(labels, preds, margin, "error"))
    kept = coverage_table(labels, preds, ours, coverages=(0.5,))[0]
    assert kept["kept"] == 4


def test_stratified_score_is_the_rank_share_within_each_decided_class() -> None:
    p1 = np.array([0.9, 0.3, 0.6, 0.1, 0.2, 0.05])
    preds = (p1 >= 0.25).astype(int)  # class 1: 0.9, 0.3, 0.6; class 0: 0.1, 0.2, 0.05
    score = stratified_confidence(np.c_[1 - p1, p1], preds)
    np.testing.assert_allclose(score, [1.0, 1 / 3, 2 / 3, 2 / 3, 1 / 3, 1.0])
    # a monotone recalibration and another threshold with the same decisions change nothing
    squashed = p1**3
    again = stratified_confidence(np.c_[1 - squashed, squashed], preds)
    np.testing.assert_allclose(again, score)


def test_tied_cases_are_kept_in_case_order_by_both_orders() -> None:
    from medlens.trust.selective import kept_cases

    p1 = np.array([0.8, 0.8, 0.8, 0.8])  # four tied decisions of class 1
    probs, preds = np.c_[1 - p1, p1], np.ones(4, dtype=int)
    for confidence in (stratified_confidence(probs, preds), max_softmax(probs)):
        np.testing.assert_array_equal(kept_cases(confidence, 0.5), [True, True, False, False])


@pytest.mark.parametrize("threshold", [0.1, 0.2, 0.3])
def test_stratified_order_raises_balanced_accuracy_wherever_the_threshold_lies(
    threshold: float,
) -> None:
    """A rare class 1 (20%), calibrated probabilities, a threshold on either side of the
    balanced optimum (about the prevalence). Keeping the same share of each decided class
    raises the kept cases' balanced accuracy at 80% coverage at every threshold. The
    decision's probability does not: above the optimum most class-1 decisions have
    p(class 1) < 0.5, so it refers them first, true positives with them, and the kept
    cases' balanced accuracy falls."""
    rng = np.random.default_rng(0)
    n = 6000
    labels = (rng.uniform(size=n) < 0.2).astype(int)
    log_odds = np.where(labels == 1, 1.2, -1.2) + rng.normal(0, 1.2, n) + np.log(0.25)
    p1 = 1 / (1 + np.exp(-log_odds))
    preds = (p1 >= threshold).astype(int)
    probs = np.c_[1 - p1, p1]
    everyone = balanced_accuracy(labels, preds)

    def gain_at_80(score: np.ndarray) -> float:
        kept = coverage_table(labels, preds, score, coverages=(0.8,))[0]
        return kept["balanced_accuracy"] - everyone

    ours = stratified_confidence(probs, preds)
    assert gain_at_80(ours) > 0.02
    for k in (0, 1):  # about 80% of each decided class is kept
        assert (ours[preds == k] > 0.2).mean() == pytest.approx(0.8, abs=0.002)
    if threshold == 0.3:
        assert gain_at_80(decision_confidence(probs, preds)) < -0.05


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


def test_weighted_risk_weighs_each_class_by_its_count_among_all_cases() -> None:
    """Class-weighted error: 9 class-0 cases, 1 class-1 case, the class-1 case wrong. Its
    weight (1/1) equals the nine class-0 weights together (9 x 1/9), so the risk of all the
    cases is 0.5 (the error rate is 0.1); it is defined from the first kept case on."""
    y = np.array([1] + [0] * 9)
    pred = np.zeros(10, dtype=int)
    first_the_rare_mistake = np.arange(10, 0, -1)
    _, weighted = risk_coverage(y, pred, first_the_rare_mistake, "weighted")
    assert weighted[0] == pytest.approx(1.0) and weighted[-1] == pytest.approx(0.5)
    _, last = risk_coverage(y, pred, first_the_rare_mistake[::-1], "weighted")
    assert last[:9].max() == 0 and last[-1] == pytest.approx(0.5)
    assert aurc(y, pred, first_the_rare_mistake[::-1], "weighted") < aurc(
        y, pred, first_the_rare_mistake, "weighted"
    )


def test_an_unknown_risk_is_refused_not_counted_as_another() -> None:
    with pytest.raises(ValueError, match="unknown risk 'weigthed'"):
        risk_coverage([0, 1], [0, 1], [1.0, 0.5], "weigthed")
