"""Calibration, threshold, refer band and out-of-distribution score are fitted on validation
only: changing the test labels changes none of them, and calibration keeps the ranking."""

from __future__ import annotations

import numpy as np
import pytest
from scipy.special import expit
from sklearn.metrics import roc_auc_score

from medlens.config import parse_config
from medlens.data.case import Case
from medlens.errors import ConfigError, InputError
from medlens.train.classification_results import (
    OodFeatures,
    check_trust_config,
    score_classification,
)
from medlens.trust.calibrators import TemperatureScaling


def _split(rng: np.random.Generator, name: str, n: int):
    """Over-confident probabilities of a binary task: labels drawn from sigmoid(z), reported
    as sigmoid(2 z)."""
    logits = rng.normal(size=n) * 2.0 + 0.8
    y = (rng.uniform(size=n) < expit(logits)).astype(int)
    p1 = expit(2.0 * logits)
    cases = [Case(f"{name}/{i:04d}", int(label), name) for i, label in enumerate(y)]
    return cases, np.column_stack([1 - p1, p1])


@pytest.fixture
def inputs(rng):
    (val_cases, val_probs), (test_cases, test_probs) = (
        _split(rng, "val", 800),
        _split(rng, "test", 600),
    )
    cases = {"val": val_cases, "test": test_cases}
    probs = {"val": val_probs, "test": test_probs}
    features = OodFeatures(
        train=rng.normal(size=(400, 6)),
        train_labels=rng.integers(0, 2, 400),
        val=rng.normal(size=(800, 6)),
        test=rng.normal(size=(600, 6)),
    )
    return cases, probs, features


def test_nothing_is_fitted_on_the_test_labels(inputs) -> None:
    cases, probs, features = inputs
    config = parse_config({"data": {"path": "x.npz"}, "evaluate": {"n_bootstrap": 0}})
    first = score_classification(config, cases, probs, ["normal", "pneumonia"], features)
    flipped = {
        "val": cases["val"],
        "test": [Case(c.case_id, 1 - int(c.label), "test") for c in cases["test"]],  # type: ignore[arg-type]
    }
    second = score_classification(config, flipped, probs, ["normal", "pneumonia"], features)
    assert isinstance(first.calibrator, TemperatureScaling)
    assert first.calibrator == second.calibrator  # the same temperature
    assert first.calibrator.temperature == pytest.approx(2.0, rel=0.15)
    assert first.threshold == second.threshold and first.band == second.band
    assert first.ood is not None and second.ood is not None
    assert first.ood.threshold == second.ood.threshold
    assert (
        first.trust["calibration"]["splits"]["val"] == second.trust["calibration"]["splits"]["val"]
    )


def test_calibration_keeps_the_auc_and_lowers_the_ece(inputs) -> None:
    cases, probs, features = inputs
    config = parse_config({"data": {"path": "x.npz"}, "evaluate": {"n_bootstrap": 0}})
    results = score_classification(config, cases, probs, ["normal", "pneumonia"], features)
    y = np.array([c.label for c in cases["test"]])
    auc = results.splits["test"]["metrics"]["auc"]["value"]
    assert auc == roc_auc_score(y, probs["test"][:, 1])  # the raw ranking, unchanged
    test = results.trust["calibration"]["splits"]["test"]
    assert test["ece_after"] < 0.7 * test["ece_before"]
    rows = [r for r in results.rows if r["split"] == "test"]
    assert {"decision", "refer", "refer_reason", "ood", "ood_score", "raw_prob_pneumonia"} <= set(
        rows[0]
    )
    referred = sum(r["refer"] for r in rows)
    assert referred == results.trust["refer"]["splits"]["test"]["referred"] > 0
    assert all(r["decision"] == "refer" for r in rows if r["refer"])


def test_sens_spec_refuses_more_than_two_classes_before_training() -> None:
    config = parse_config({"data": {"path": "x.npz"}, "refer": {"rule": "sens_spec"}})
    with pytest.raises(ConfigError, match="refer.rule"):
        check_trust_config(config, ["a", "b", "c"])
    check_trust_config(config, ["a", "b"])


@pytest.mark.parametrize(
    ("settings", "named"),
    [
        ({}, ["temperature calibration", "youden_plateau threshold"]),
        ({"calibration": {"method": "none"}}, ["youden_plateau threshold"]),
        (
            {
                "calibration": {"method": "none"},
                "train": {"threshold": "fixed"},
                "refer": {"rule": "sens_spec"},
            },
            ["sens_spec refer band"],
        ),
    ],
)
def test_a_validation_split_without_a_class_is_refused_before_training(
    settings: dict, named: list[str]
) -> None:
    config = parse_config({"data": {"path": "cases.npz"}, **settings})
    with pytest.raises(InputError, match="cases.npz") as error:
        check_trust_config(config, ["normal", "pneumonia"], [1, 1, 1])
    message = str(error.value)
    assert "no case of class 'normal'" in message
    assert all(name in message for name in named)
    check_trust_config(config, ["normal", "pneumonia"], [0, 1, 1])  # both classes: accepted


def test_nothing_fitted_per_class_needs_no_validation_case_of_every_class() -> None:
    config = parse_config(
        {
            "data": {"path": "cases.npz"},
            "calibration": {"method": "none"},
            "train": {"threshold": "fixed"},
            "refer": {"rule": "coverage"},
        }
    )
    check_trust_config(config, ["normal", "pneumonia"], [1, 1, 1])


def test_the_test_mix_is_estimated_from_the_cases_predict_would_use(inputs, tmp_path) -> None:
    """The run's estimate of the test split's class mix leaves out the cases flagged out of
    distribution, as ``medlens predict --adapt-prior`` does with the same probabilities."""
    from medlens.inference.classify import _adapt_rows

    cases, probs, features = inputs
    names = ["normal", "pneumonia"]
    config = parse_config({"data": {"path": "x.npz"}, "evaluate": {"n_bootstrap": 0}})
    results = score_classification(config, cases, probs, names, features)
    shift = results.trust["calibration"]["prior_shift"]
    rows = [dict(r) for r in results.rows if r["split"] == "test"]
    flagged = np.array([r["ood"] for r in rows]) > 0
    assert 0 < flagged.sum() == results.trust["ood"]["splits"]["test"]["flagged"]
    assert shift["n_cases"] == (~flagged).sum()
    assert shift["out_of_distribution_left_out"] == flagged.sum()
    predicted = _adapt_rows(rows, names, results.source_prior, tmp_path / "test.csv")
    assert predicted["n_cases"] == shift["n_cases"]
    assert shift["target_prior"] == pytest.approx(predicted["target_prior"])
    y = np.array([c.label for c in cases["test"]])
    assert shift["true_prior"]["pneumonia"] == pytest.approx(y[~flagged].mean())
    # a run without the score uses every case, as before
    plain = score_classification(config, cases, probs, names, None)
    assert "ood" not in plain.trust
    everything = plain.trust["calibration"]["prior_shift"]
    assert everything["n_cases"] == len(y) and everything["out_of_distribution_left_out"] == 0
