"""Decision thresholds (Youden, max-F1, fixed) and predicted labels."""

from __future__ import annotations

import numpy as np
import pytest
from sklearn.metrics import f1_score, recall_score

from medlens.errors import ConfigError, InputError
from medlens.metrics import choose_threshold, predict_labels


def test_youden_on_a_constructed_case() -> None:
    y = np.array([0, 0, 0, 0, 1, 1, 1, 1])
    p = np.array([0.1, 0.2, 0.3, 0.6, 0.4, 0.5, 0.7, 0.8])
    # t = 0.4 catches every positive with one false positive: J = 1 - 0.25, the unique maximum.
    assert choose_threshold(y, p, "youden") == 0.4


def test_youden_tie_goes_to_the_threshold_closest_to_half() -> None:
    y = np.array([0, 0, 0, 0, 1, 1, 1, 1])
    p = np.array([0.05, 0.15, 0.25, 0.55, 0.45, 0.65, 0.75, 0.85])
    # J = 0.75 both at t = 0.65 (3/4 TPR, 0 FPR) and at t = 0.45 (4/4 TPR, 1/4 FPR).
    assert choose_threshold(y, p, "youden") == 0.45


def _every_cut(p: np.ndarray) -> np.ndarray:
    """Predictions (T, N) at every observed score used as the threshold."""
    return (p[None, :] >= np.unique(p)[:, None]).astype(int)


def _best_j(y: np.ndarray, p: np.ndarray) -> float:
    pred = _every_cut(p)
    return float((pred[:, y == 1].mean(axis=1) + (1 - pred[:, y == 0]).mean(axis=1) - 1).max())


def _best_f1(y: np.ndarray, p: np.ndarray) -> float:
    pred = _every_cut(p)
    tp = pred[:, y == 1].sum(axis=1)
    return float((2 * tp / (pred.sum(axis=1) + (y == 1).sum())).max())


def _youden_j(y: np.ndarray, pred: np.ndarray) -> float:
    return recall_score(y, pred) + recall_score(y, pred, pos_label=0) - 1


def test_youden_maximises_j_on_real_predictions(pneumonia_predictions) -> None:
    y, prob, _ = pneumonia_predictions
    t = choose_threshold(y, prob[:, 1], "youden")
    assert _youden_j(y, (prob[:, 1] >= t).astype(int)) == pytest.approx(_best_j(y, prob[:, 1]))


def test_max_f1_maximises_f1(pneumonia_predictions) -> None:
    y, prob, _ = pneumonia_predictions
    t = choose_threshold(y, prob[:, 1], "max_f1")
    assert f1_score(y, prob[:, 1] >= t) == pytest.approx(_best_f1(y, prob[:, 1]))


def test_max_f1_on_a_constructed_case() -> None:
    y = np.array([0, 0, 0, 1, 1, 0, 1, 1])
    p = np.array([0.1, 0.2, 0.3, 0.35, 0.4, 0.6, 0.7, 0.9])
    # t = 0.35: TP 4, FP 1 -> F1 = 8/9, higher than at any other observed score.
    assert choose_threshold(y, p, "max_f1") == 0.35


def test_fixed_threshold_and_bad_settings() -> None:
    y, p = np.array([0, 1]), np.array([0.2, 0.7])
    assert choose_threshold(y, p, "fixed", fixed=0.3) == 0.3
    with pytest.raises(ConfigError, match="fixed_threshold"):
        choose_threshold(y, p, "fixed", fixed=1.5)
    with pytest.raises(ConfigError, match="unknown method"):
        choose_threshold(y, p, "median")  # type: ignore[arg-type]


def test_tuned_threshold_needs_both_classes() -> None:
    with pytest.raises(InputError, match="both classes"):
        choose_threshold(np.ones(5, dtype=int), np.linspace(0.1, 0.9, 5), "youden")


def test_predict_labels_binary_is_inclusive_at_the_threshold() -> None:
    prob = np.array([[0.7, 0.3], [0.6, 0.4], [0.2, 0.8]])
    np.testing.assert_array_equal(predict_labels(prob, 0.4), [0, 1, 1])
    np.testing.assert_array_equal(predict_labels(prob[:, 1], 0.35), [0, 1, 1])  # 1-D = p(class 1)


def test_predict_labels_multiclass_is_argmax_whatever_the_threshold() -> None:
    prob = np.array([[0.2, 0.5, 0.3], [0.1, 0.1, 0.8], [0.4, 0.35, 0.25]])
    np.testing.assert_array_equal(predict_labels(prob, 0.9), [1, 2, 0])
