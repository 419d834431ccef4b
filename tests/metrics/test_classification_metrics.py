"""Every registered classification metric equals scikit-learn's on the same inputs."""

from __future__ import annotations

import numpy as np
import pytest
from sklearn import metrics as skm

from medlens.errors import InputError
from medlens.metrics import METRICS
from medlens.metrics.classification import confusion, per_class_scores, specificity_per_class


def _reference(name: str, y: np.ndarray, prob: np.ndarray, pred: np.ndarray) -> float:
    """The metric computed directly with scikit-learn, the way a reader would write it."""
    k = prob.shape[1]
    binary = k == 2
    avg = "binary" if binary else "macro"
    if name == "accuracy":
        return skm.accuracy_score(y, pred)
    if name == "balanced_accuracy":
        return skm.balanced_accuracy_score(y, pred)
    if name == "sensitivity":
        return skm.recall_score(y, pred, average=avg)
    if name == "specificity":  # recall of "not class c" in each one-vs-rest problem
        if binary:
            return skm.recall_score(y, pred, pos_label=0)
        return np.mean([skm.recall_score(y != c, pred != c) for c in range(k)])
    if name == "precision":
        return skm.precision_score(y, pred, average=avg)
    if name == "f1":
        return skm.f1_score(y, pred, average=avg)
    if name == "auc":
        return (
            skm.roc_auc_score(y, prob[:, 1])
            if binary
            else skm.roc_auc_score(y, prob, multi_class="ovr")
        )
    if name == "average_precision":
        if binary:
            return skm.average_precision_score(y, prob[:, 1])
        return np.mean([skm.average_precision_score(y == c, prob[:, c]) for c in range(k)])
    if name == "brier":
        if binary:
            return skm.brier_score_loss(y, prob[:, 1])
        return skm.brier_score_loss(y, prob, labels=list(range(k)))
    raise KeyError(name)


SKLEARN_METRICS = [
    "accuracy",
    "balanced_accuracy",
    "sensitivity",
    "specificity",
    "precision",
    "f1",
    "auc",
    "average_precision",
    "brier",
]


def test_the_standard_metrics_are_registered() -> None:
    assert set(SKLEARN_METRICS) | {"ece"} <= set(METRICS.names())


@pytest.mark.parametrize("name", SKLEARN_METRICS)
def test_metric_equals_sklearn(predictions, name: str) -> None:
    y, prob, pred = predictions
    value = METRICS.get(name)(y, prob, pred)
    assert isinstance(value, float)
    assert value == pytest.approx(_reference(name, y, prob, pred), abs=1e-12)


def test_binary_rates_read_off_the_confusion_matrix(pneumonia_predictions) -> None:
    y, prob, pred = pneumonia_predictions
    (tn, fp), (fn, tp) = confusion(y, pred, 2)
    assert METRICS.get("sensitivity")(y, prob, pred) == pytest.approx(tp / (tp + fn))
    assert METRICS.get("specificity")(y, prob, pred) == pytest.approx(tn / (tn + fp))
    assert METRICS.get("precision")(y, prob, pred) == pytest.approx(tp / (tp + fp))
    assert confusion(y, pred, 2).sum() == len(y)


def test_per_class_scores_match_sklearn(digits_predictions) -> None:
    y, _, pred = digits_predictions
    names = ["three", "five", "eight"]
    scores = per_class_scores(y, pred, names)
    prec, rec, f1, support = skm.precision_recall_fscore_support(y, pred)
    for c, name in enumerate(names):
        assert scores[name]["precision"] == pytest.approx(prec[c])
        assert scores[name]["recall"] == pytest.approx(rec[c])
        assert scores[name]["f1"] == pytest.approx(f1[c])
        assert scores[name]["support"] == support[c]


def test_specificity_per_class_of_a_known_matrix() -> None:
    y = np.array([0, 0, 0, 1, 1, 2])
    pred = np.array([0, 1, 2, 1, 1, 2])
    # class 0: no false positives; class 1: 1 FP of 4 negatives; class 2: 1 FP of 5 negatives.
    np.testing.assert_allclose(specificity_per_class(y, pred, 3), [1.0, 0.75, 0.8])


def test_undefined_metrics_are_nan_not_zero() -> None:
    y = np.zeros(6, dtype=int)
    prob = np.column_stack([np.full(6, 0.8), np.full(6, 0.2)])
    pred = np.zeros(6, dtype=int)
    assert np.isnan(METRICS.get("auc")(y, prob, pred))  # one class only
    assert np.isnan(METRICS.get("average_precision")(y, prob, pred))
    assert np.isnan(METRICS.get("sensitivity")(y, prob, pred))  # no positive case
    assert np.isnan(METRICS.get("precision")(y, prob, pred))  # nothing predicted positive
    assert METRICS.get("specificity")(y, prob, pred) == 1.0
    assert METRICS.get("accuracy")(y, prob, pred) == 1.0


def test_multiclass_auc_is_nan_when_a_class_is_absent(digits_predictions) -> None:
    y, prob, pred = digits_predictions
    keep = y != 2
    assert np.isnan(METRICS.get("auc")(y[keep], prob[keep], pred[keep]))


@pytest.mark.parametrize(
    ("prob", "labels", "fragment"),
    [
        ([[0.7, 0.7], [0.5, 0.5]], [0, 1], "sum to 1"),
        ([[np.nan, 1.0], [0.5, 0.5]], [0, 1], "NaN"),
        ([[2.0, -1.0], [0.5, 0.5]], [0, 1], "[0, 1]"),
        ([[0.3, 0.7], [0.5, 0.5]], [0, 2], "class indices"),
        ([[0.3, 0.7], [0.5, 0.5]], [0, 1, 1], "expected 2"),
    ],
)
def test_bad_inputs_raise_input_error(prob, labels, fragment: str) -> None:
    with pytest.raises(InputError) as info:
        METRICS.get("accuracy")(labels, prob, [0, 1])
    assert fragment in str(info.value)
