"""The JSON-ready evaluation of one split, as stored in metrics.json."""

from __future__ import annotations

import json

import numpy as np
import pytest
from sklearn.metrics import confusion_matrix

from medlens.errors import InputError
from medlens.metrics import METRICS, evaluate_predictions, predict_labels


def test_binary_evaluation_is_complete_and_json_ready(pneumonia_predictions) -> None:
    y, prob, _ = pneumonia_predictions
    result = evaluate_predictions(y, prob, ["normal", "pneumonia"], threshold=0.7, n_bootstrap=200)
    json.dumps(result, allow_nan=False)  # strict JSON: no NaN, no numpy types

    pred = predict_labels(prob, 0.7)
    assert result["n"] == 624
    assert result["class_counts"] == {"normal": 234, "pneumonia": 390}
    assert result["threshold"] == 0.7
    assert set(result["metrics"]) == set(METRICS.names())
    for name, entry in result["metrics"].items():
        assert entry["value"] == pytest.approx(METRICS.get(name)(y, prob, pred))
        assert entry["ci_low"] <= entry["value"] <= entry["ci_high"]
    at_half = result["metrics_at_0.5"]
    assert set(at_half) == {"accuracy", "sensitivity", "specificity", "f1"}
    assert at_half["accuracy"] == pytest.approx(np.mean((prob[:, 1] >= 0.5) == y))
    assert at_half["sensitivity"] != result["metrics"]["sensitivity"]["value"]  # 0.7 != 0.5
    assert result["confusion_matrix"] == confusion_matrix(y, pred).tolist()
    assert result["per_class"]["pneumonia"]["support"] == 390
    assert result["per_class"]["pneumonia"]["recall"] == pytest.approx(
        result["metrics"]["sensitivity"]["value"]
    )


def test_multiclass_evaluation_uses_argmax(digits_predictions) -> None:
    y, prob, _ = digits_predictions
    result = evaluate_predictions(
        y, prob, ["three", "five", "eight"], threshold=0.9, n_bootstrap=100
    )
    json.dumps(result, allow_nan=False)
    assert result["threshold"] is None
    assert result["decision_rule"] == "argmax"
    assert "metrics_at_0.5" not in result
    assert result["metrics"]["accuracy"]["value"] == pytest.approx(
        np.mean(prob.argmax(axis=1) == y)
    )
    assert np.array(result["confusion_matrix"]).shape == (3, 3)


def test_single_class_split_reports_nulls_with_notes() -> None:
    y = np.ones(8, dtype=int)
    p1 = np.linspace(0.2, 0.9, 8)
    result = evaluate_predictions(
        y, np.column_stack([1 - p1, p1]), ["normal", "pneumonia"], 0.5, n_bootstrap=50
    )
    json.dumps(result, allow_nan=False)
    auc = result["metrics"]["auc"]
    assert auc["value"] is None and auc["ci_low"] is None and auc["ci_high"] is None
    assert "no 'normal' case" in auc["note"]
    assert result["metrics"]["specificity"]["value"] is None
    assert result["metrics"]["sensitivity"]["value"] == pytest.approx(5 / 8)
    assert result["per_class"]["normal"]["recall"] is None  # no normal case
    assert result["per_class"]["normal"]["precision"] == 0.0  # 3 predicted normal, all wrong
    assert result["metrics_at_0.5"]["specificity"] is None


def test_no_bootstrap_gives_values_without_intervals(random_binary) -> None:
    y, prob, _ = random_binary
    result = evaluate_predictions(y, prob, ["a", "b"], 0.5, n_bootstrap=0)
    assert result["metrics"]["auc"]["value"] is not None
    assert result["metrics"]["auc"]["ci_low"] is None
    assert "n_bootstrap = 0" in result["metrics"]["auc"]["note"]


def test_same_seed_same_result(random_3class) -> None:
    y, prob, _ = random_3class
    names = ["a", "b", "c"]
    assert evaluate_predictions(y, prob, names, None, 100, seed=3) == evaluate_predictions(
        y, prob, names, None, 100, seed=3
    )


def test_class_names_must_match_the_probability_columns(random_binary) -> None:
    y, prob, _ = random_binary
    with pytest.raises(InputError, match="2 probability columns"):
        evaluate_predictions(y, prob, ["a", "b", "c"], 0.5)
