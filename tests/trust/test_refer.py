"""The refer band: validation targets met, its share referred, the threshold inside it."""

from __future__ import annotations

import numpy as np
import pytest

from medlens.errors import ConfigError, InputError
from medlens.trust.refer import ReferBand, choose_band


def _scores(rng: np.random.Generator, n: int = 2000):
    y = (rng.uniform(size=n) < 0.3).astype(int)
    p1 = 1 / (1 + np.exp(-(rng.normal(size=n) + 2.0 * (2 * y - 1))))
    return y, np.column_stack([1 - p1, p1])


def test_sens_spec_band_meets_both_targets_on_validation(rng) -> None:
    y, probs = _scores(rng)
    band = choose_band("sens_spec", y, probs, 0.5, sensitivity=0.99, specificity=0.99)
    p = probs[:, 1]
    called_negative, called_positive = p < band.low, p >= band.high
    assert (~called_negative[y == 1]).mean() >= 0.99  # few positives ruled out
    assert (~called_positive[y == 0]).mean() >= 0.99  # few negatives ruled in
    assert band.low <= 0.5 < band.high
    assert band.refers(probs).mean() > 0


def test_a_full_sensitivity_target_rules_out_no_validation_positive(rng) -> None:
    from medlens.config import parse_config

    config = parse_config(
        {
            "data": {"path": "x.npz"},
            "refer": {"rule": "sens_spec", "sensitivity": 1.0, "specificity": 1.0},
        }
    )
    y, probs = _scores(rng)
    band = choose_band(
        "sens_spec",
        y,
        probs,
        0.5,
        sensitivity=config.refer.sensitivity,
        specificity=config.refer.specificity,
    )
    p = probs[:, 1]
    assert not (p[y == 1] < band.low).any()  # no positive decided negative and kept
    assert not (p[y == 0] >= band.high).any()  # no negative decided positive and kept
    assert band.low == p[y == 1].min()


def test_coverage_band_refers_its_share_around_the_threshold(rng) -> None:
    y, probs = _scores(rng)
    band = choose_band("coverage", y, probs, 0.4, coverage=0.8)
    referred = band.refers(probs)
    assert referred.mean() == pytest.approx(0.2, abs=0.002)
    assert band.low <= 0.4 <= band.high
    kept = ~referred
    pred = (probs[:, 1] >= 0.4).astype(int)
    recall = [np.mean(pred[kept & (y == c)] == c) for c in (0, 1)]
    all_recall = [np.mean(pred[y == c] == c) for c in (0, 1)]
    assert np.mean(recall) > np.mean(all_recall)


def test_coverage_band_refers_the_same_share_of_each_decided_class(rng) -> None:
    """Class by class, as the selective order keeps cases, and from the scores alone: the
    labels do not move the band."""
    y, probs = _scores(rng)
    band = choose_band("coverage", y, probs, 0.4, coverage=0.8)
    p, referred = probs[:, 1], band.refers(probs)
    for side in (p < 0.4, p >= 0.4):
        assert referred[side].mean() == pytest.approx(0.2, abs=0.001)
        distance = np.abs(p[side] - 0.4)
        assert distance[referred[side]].max() < distance[~referred[side]].min()
    assert choose_band("coverage", rng.permutation(y), probs, 0.4, coverage=0.8) == band


def test_coverage_band_with_every_case_on_one_side(rng) -> None:
    y, probs = _scores(rng, 200)
    band = choose_band("coverage", y, probs, 0.0, coverage=0.9)
    assert band.low == 0.0
    assert band.refers(probs).sum() == 20
    assert probs[band.refers(probs), 1].max() < probs[~band.refers(probs), 1].min()


def test_full_coverage_and_none_refer_nothing(rng) -> None:
    y, probs = _scores(rng, 200)
    assert not choose_band("coverage", y, probs, 0.5, coverage=1.0).refers(probs).any()
    assert not choose_band("none", y, probs, 0.5).refers(probs).any()


def test_more_classes_refer_the_same_share_of_each_decided_class(rng) -> None:
    """Three classes, one decided with much lower probabilities: a single cut on the largest
    probability would refer nearly only its cases; the band refers 10% of each."""
    confident = rng.dirichlet([8, 1, 1], size=600)
    also_confident = rng.dirichlet([1, 8, 1], size=300)
    hesitant = rng.dirichlet([1, 1, 2.2], size=300)
    probs = np.concatenate([confident, also_confident, hesitant])
    decided = probs.argmax(1)
    y = rng.permutation(decided)  # the labels play no part
    band = choose_band("coverage", y, probs, 0.5, coverage=0.9)
    referred = band.refers(probs)
    assert band.class_min_confidence is not None and band.min_confidence is None
    for k in range(3):
        mine = decided == k
        assert referred[mine].sum() == int(np.floor(0.1 * mine.sum() + 1e-9))
        p_k = probs[mine, k]
        assert p_k[referred[mine]].max() <= p_k[~referred[mine]].min()
    single_cut = np.sort(probs.max(1))[int(0.1 * len(probs))]
    assert (probs.max(1) < single_cut)[decided == 2].mean() > 0.2  # what the band avoids
    assert ReferBand.from_dict(band.to_dict()) == band
    assert "class_min_confidence" in band.public() and "targets" not in band.public()
    with pytest.raises(InputError, match="thresholds for 3 classes"):
        band.refers(probs[:, :2])
    with pytest.raises(ConfigError, match="sens_spec needs two classes"):
        choose_band("sens_spec", y, probs, 0.5)


def test_a_class_never_decided_on_validation_gets_the_overall_cut(rng) -> None:
    probs = rng.dirichlet([3, 1, 0.2], size=400)
    probs = probs[probs.argmax(1) != 2]
    band = choose_band("coverage", probs.argmax(1), probs, 0.5, coverage=0.8)
    assert band.class_min_confidence is not None
    overall = np.sort(probs.max(1))[int(np.floor(0.2 * len(probs) + 1e-9))]
    assert band.class_min_confidence[2] == pytest.approx(overall)


def test_an_old_many_class_band_still_refers_by_its_single_cut() -> None:
    old = ReferBand.from_dict(
        {"rule": "coverage", "low": None, "high": None, "min_confidence": 0.6, "targets": {}}
    )
    probs = np.array([[0.5, 0.3, 0.2], [0.7, 0.2, 0.1]])
    assert old.refers(probs).tolist() == [True, False]


def test_band_round_trips_and_an_old_run_refers_nothing(rng) -> None:
    y, probs = _scores(rng, 300)
    band = choose_band("sens_spec", y, probs, 0.5)
    assert ReferBand.from_dict(band.to_dict()) == band
    assert ReferBand.from_dict(None) == ReferBand()
