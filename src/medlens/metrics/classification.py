"""Classification metrics computed by scikit-learn, registered in ``METRICS``.

Binary tasks (K = 2) report the positive class (index 1): sensitivity is its recall,
specificity the recall of class 0, precision/F1 are those of class 1, AUC and average
precision rank p(class 1). Multi-class tasks report macro averages (one-vs-rest for
specificity, AUC and average precision).

A ratio with a zero denominator (precision when no case is predicted positive, sensitivity
when there are no positive cases) is undefined and returned as ``nan``, never silently as 0;
macro averages skip undefined classes, as scikit-learn does with ``zero_division=np.nan``.
"""

from __future__ import annotations

from collections.abc import Callable, Sequence

import numpy as np
from numpy.typing import ArrayLike
from sklearn import metrics as skm

from medlens.metrics.inputs import as_labels, check_predictions
from medlens.metrics.registry import METRICS


def _prepared(
    y_true: ArrayLike, y_prob: ArrayLike, y_pred: ArrayLike
) -> tuple[np.ndarray, np.ndarray, np.ndarray, list[int]]:
    truth, prob, pred = check_predictions(y_true, y_prob, y_pred)
    assert pred is not None
    return truth, prob, pred, list(range(prob.shape[1]))


def _label_scores(
    truth: np.ndarray, pred: np.ndarray, labels: list[int], score: Callable[..., float]
) -> float:
    """A precision/recall/F1 score: of class 1 for binary tasks, macro otherwise."""
    if len(labels) == 2:
        return float(
            score(truth, pred, labels=labels, pos_label=1, average="binary", zero_division=np.nan)
        )
    return float(score(truth, pred, labels=labels, average="macro", zero_division=np.nan))


@METRICS.register("accuracy")
def accuracy(y_true: ArrayLike, y_prob: ArrayLike, y_pred: ArrayLike) -> float:
    """Fraction of cases whose predicted class is the true class."""
    truth, _, pred, _ = _prepared(y_true, y_prob, y_pred)
    return float(skm.accuracy_score(truth, pred))


@METRICS.register("balanced_accuracy")
def balanced_accuracy(y_true: ArrayLike, y_prob: ArrayLike, y_pred: ArrayLike) -> float:
    """Mean recall over the classes present in ``y_true``."""
    truth, _, pred, _ = _prepared(y_true, y_prob, y_pred)
    return float(skm.balanced_accuracy_score(truth, pred))


@METRICS.register("sensitivity")
def sensitivity(y_true: ArrayLike, y_prob: ArrayLike, y_pred: ArrayLike) -> float:
    """Recall (true-positive rate) of class 1; macro recall for multi-class tasks."""
    truth, _, pred, labels = _prepared(y_true, y_prob, y_pred)
    return _label_scores(truth, pred, labels, skm.recall_score)


def specificity_per_class(y_true: ArrayLike, y_pred: ArrayLike, n_classes: int) -> np.ndarray:
    """One-vs-rest specificity TN / (TN + FP) per class; ``nan`` for a class without negatives."""
    labels = list(range(n_classes))
    truth = as_labels(y_true, n_classes, len(np.asarray(y_true)), "y_true")
    pred = as_labels(y_pred, n_classes, len(truth), "y_pred")
    per_class = skm.multilabel_confusion_matrix(truth, pred, labels=labels)  # (K, 2, 2)
    tn, fp = per_class[:, 0, 0].astype(float), per_class[:, 0, 1].astype(float)
    negatives = tn + fp
    return np.divide(tn, negatives, out=np.full(n_classes, np.nan), where=negatives > 0)


@METRICS.register("specificity")
def specificity(y_true: ArrayLike, y_prob: ArrayLike, y_pred: ArrayLike) -> float:
    """True-negative rate of class 1 (= recall of class 0); macro one-vs-rest for multi-class."""
    truth, _, pred, labels = _prepared(y_true, y_prob, y_pred)
    per_class = specificity_per_class(truth, pred, len(labels))
    if len(labels) == 2:
        return float(per_class[1])
    defined = per_class[np.isfinite(per_class)]
    return float(defined.mean()) if defined.size else float("nan")


@METRICS.register("precision")
def precision(y_true: ArrayLike, y_prob: ArrayLike, y_pred: ArrayLike) -> float:
    """Positive predictive value of class 1; macro precision for multi-class tasks."""
    truth, _, pred, labels = _prepared(y_true, y_prob, y_pred)
    return _label_scores(truth, pred, labels, skm.precision_score)


@METRICS.register("f1")
def f1(y_true: ArrayLike, y_prob: ArrayLike, y_pred: ArrayLike) -> float:
    """F1 score of class 1; macro F1 for multi-class tasks."""
    truth, _, pred, labels = _prepared(y_true, y_prob, y_pred)
    return _label_scores(truth, pred, labels, skm.f1_score)


@METRICS.register("auc")
def auc(y_true: ArrayLike, y_prob: ArrayLike, y_pred: ArrayLike) -> float:
    """Area under the ROC curve of p(class 1); macro one-vs-rest for multi-class tasks.

    ``nan`` unless every class has at least one case.
    """
    truth, prob, _, labels = _prepared(y_true, y_prob, y_pred)
    if np.unique(truth).size < len(labels):
        return float("nan")
    if len(labels) == 2:
        return float(skm.roc_auc_score(truth, prob[:, 1]))
    return float(skm.roc_auc_score(truth, prob, multi_class="ovr", average="macro", labels=labels))


@METRICS.register("average_precision")
def average_precision(y_true: ArrayLike, y_prob: ArrayLike, y_pred: ArrayLike) -> float:
    """Area under the precision-recall curve (step-wise, no interpolation) of p(class 1).

    Multi-class: macro mean over one-vs-rest problems. ``nan`` when a class (binary: class 1)
    has no case.
    """
    truth, prob, _, labels = _prepared(y_true, y_prob, y_pred)
    if len(labels) == 2:
        if not (truth == 1).any():
            return float("nan")
        return float(skm.average_precision_score(truth, prob[:, 1]))
    if np.unique(truth).size < len(labels):
        return float("nan")
    return float(skm.average_precision_score(truth, prob, average="macro"))


def per_class_scores(
    y_true: ArrayLike, y_pred: ArrayLike, class_names: Sequence[str]
) -> dict[str, dict[str, float | int]]:
    """Precision, recall, F1 (``nan`` where undefined) and support (cases) of every class."""
    labels = list(range(len(class_names)))
    truth = as_labels(y_true, len(labels), len(np.asarray(y_true)), "y_true")
    pred = as_labels(y_pred, len(labels), len(truth), "y_pred")
    prec, rec, f1s, support = skm.precision_recall_fscore_support(
        truth, pred, labels=labels, zero_division=np.nan
    )
    return {
        name: {
            "precision": float(prec[k]),
            "recall": float(rec[k]),
            "f1": float(f1s[k]),
            "support": int(support[k]),
        }
        for k, name in enumerate(class_names)
    }


def confusion(y_true: ArrayLike, y_pred: ArrayLike, n_classes: int) -> np.ndarray:
    """Confusion matrix ``(K, K)`` of case counts: rows are true classes, columns predicted."""
    truth = as_labels(y_true, n_classes, len(np.asarray(y_true)), "y_true")
    pred = as_labels(y_pred, n_classes, len(truth), "y_pred")
    return skm.confusion_matrix(truth, pred, labels=list(range(n_classes)))
