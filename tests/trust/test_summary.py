"""The test split's class mix a run records (``prior_shift_summary``) is estimated from the
cases ``medlens predict --adapt-prior`` uses: those not flagged out of distribution."""

from __future__ import annotations

from pathlib import Path

import numpy as np
import pytest
from scipy.special import expit

from medlens.errors import InputError
from medlens.inference.classify import _adapt_rows
from medlens.metrics.calibration import brier, ece
from medlens.trust.label_shift import adapt_to_prior
from medlens.trust.summary import adapt_batch, prior_shift_cases, prior_shift_summary

NAMES = ["normal", "pneumonia"]
PRIOR = np.array([0.5, 0.5])


def _batch(rng: np.random.Generator, n: int = 400, flagged: int = 80):
    """Calibrated probabilities of a binary task with a 30% pneumonia mix, and the first
    ``flagged`` cases flagged out of distribution: confident pneumonia, so that counting them
    would move the estimate well above the mix of the others."""
    y = (rng.uniform(size=n) < 0.3).astype(int)
    p1 = expit(rng.normal(size=n) + np.where(y == 1, 1.5, -1.5))
    ood = np.zeros(n, dtype=bool)
    ood[:flagged] = True
    p1[ood] = rng.uniform(0.95, 0.99, size=flagged)
    probs = np.column_stack([1 - p1, p1])
    return y, probs, (p1 >= 0.5).astype(int), ood


def _rows(probs: np.ndarray, ood: np.ndarray) -> list[dict[str, object]]:
    """The rows ``medlens predict`` builds: calibrated probabilities and the 0/1 flag."""
    return [
        {"prob_normal": float(p[0]), "prob_pneumonia": float(p[1]), "ood": int(f)}
        for p, f in zip(probs, ood, strict=True)
    ]


def test_flagged_cases_are_left_out_as_predict_leaves_them_out(rng) -> None:
    y, probs, preds, ood = _batch(rng)
    record = prior_shift_summary(y, probs, preds, PRIOR, NAMES, 0, ood=ood)
    predicted = _adapt_rows(_rows(probs, ood), NAMES, PRIOR, Path("batch.csv"))
    inside = ~ood
    assert record["n_cases"] == predicted["n_cases"] == inside.sum()
    assert record["out_of_distribution_left_out"] == ood.sum()
    assert predicted["out_of_distribution_left_out"] == ood.sum()
    # the same cases and the same bootstrap seed: the same estimate and interval
    assert record["target_prior"] == pytest.approx(predicted["target_prior"])
    for name in NAMES:
        assert record["target_prior_95ci"][name] == pytest.approx(
            predicted["target_prior_95ci"][name]
        )
    # counting the flagged cases would have moved it (what the run used to record)
    everything = prior_shift_summary(y, probs, preds, PRIOR, NAMES, 0, ood=None)
    assert everything["n_cases"] == len(y) and everything["out_of_distribution_left_out"] == 0
    assert everything["target_prior"]["pneumonia"] > record["target_prior"]["pneumonia"] + 0.1
    # truth, ECE and Brier over the cases used; the calibrated ones beside them, like for like
    target = [record["target_prior"][n] for n in NAMES]
    adapted = adapt_to_prior(probs[inside], PRIOR, target)
    assert record["true_prior"]["pneumonia"] == pytest.approx(y[inside].mean())
    assert record["ece_adapted"] == pytest.approx(ece(y[inside], adapted, preds[inside]))
    assert record["brier_adapted"] == pytest.approx(brier(y[inside], adapted, preds[inside]))
    assert record["ece_calibrated"] == pytest.approx(ece(y[inside], probs[inside], preds[inside]))
    assert record["brier_calibrated"] == pytest.approx(
        brier(y[inside], probs[inside], preds[inside])
    )


def test_adapt_batch_leaves_flagged_cases_unadapted(rng) -> None:
    _, probs, _, ood = _batch(rng)
    batch = adapt_batch(probs, PRIOR, ood)
    assert np.isnan(batch.adapted[ood]).all() and np.isfinite(batch.adapted[~ood]).all()
    rows = _rows(probs, ood)
    _adapt_rows(rows, NAMES, PRIOR, Path("batch.csv"))
    from_predict = np.array([[r["adapted_prob_normal"], r["adapted_prob_pneumonia"]] for r in rows])
    np.testing.assert_allclose(batch.adapted, from_predict, equal_nan=True)
    assert batch.to_dict(NAMES)["out_of_distribution_left_out"] == ood.sum()


def test_every_case_flagged_records_no_estimate_and_why(rng) -> None:
    y, probs, preds, _ = _batch(rng, n=100, flagged=0)
    every = np.ones(len(y), dtype=bool)
    record = prior_shift_summary(y, probs, preds, PRIOR, NAMES, 0, ood=every)
    assert set(record) == {"skipped", "n_cases", "out_of_distribution_left_out"}
    assert "all 100 cases were flagged out of distribution" in record["skipped"]
    assert record["n_cases"] == 0 and record["out_of_distribution_left_out"] == 100
    with pytest.raises(InputError, match="batch.csv: all 100 cases were flagged"):
        adapt_batch(probs, PRIOR, every, what="batch.csv")
    with pytest.raises(InputError, match="0 cases are too few"):  # no case at all
        adapt_batch(np.empty((0, 2)), PRIOR, None)


def test_too_few_left_once_flagged_cases_are_left_out(rng) -> None:
    y, probs, preds, ood = _batch(rng, n=40, flagged=15)
    record = prior_shift_summary(y, probs, preds, PRIOR, NAMES, 0, ood=ood)
    assert "25 cases are too few" in record["skipped"]
    assert "15 flagged out of distribution" in record["skipped"]
    assert record["n_cases"] == 25 and record["out_of_distribution_left_out"] == 15
    # without the score the same 40 cases are enough
    assert prior_shift_summary(y, probs, preds, PRIOR, NAMES, 0, ood=None)["n_cases"] == 40


def test_prior_shift_cases() -> None:
    assert prior_shift_cases(3, None).tolist() == [True, True, True]
    assert prior_shift_cases(3, np.array([0, 1, 0])).tolist() == [True, False, True]
    with pytest.raises(InputError, match="expected 3 flags"):
        prior_shift_cases(3, np.array([0, 1]))
