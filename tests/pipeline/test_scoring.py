"""The pipeline's figures: class metrics with CIs (overall and per class), Dice per region,
and the split of errors between masks and classifier."""

from __future__ import annotations

import numpy as np
import pytest

from medlens.pipeline.scoring import class_metrics, mask_error_sources, region_dice


def test_class_metrics_have_intervals_overall_and_per_class() -> None:
    truth = np.array([0] * 20 + [1] * 20 + [2] * 10)
    pred = truth.copy()
    pred[:5] = 1  # five neutrophils called lymphocytes
    probs = np.eye(3)[pred] * 0.8 + 0.2 / 3
    m = class_metrics(truth, probs, ["a", "b", "c"], n_bootstrap=200, seed=0)
    assert m["balanced_accuracy"]["value"] == pytest.approx((15 / 20 + 1 + 1) / 3)
    assert (
        m["balanced_accuracy"]["ci_low"]
        < m["balanced_accuracy"]["value"]
        <= m["balanced_accuracy"]["ci_high"]
    )
    assert m["per_class"]["c"]["recall_ci"] == (1.0, 1.0)
    low, high = m["per_class"]["a"]["recall_ci"]
    assert low < 0.75 < high
    assert m["confusion"] == [[15, 5, 0], [0, 20, 0], [0, 0, 10]]


def test_region_dice_counts_each_region_and_the_whole_cell() -> None:
    reference = np.zeros((10, 10), np.uint8)
    reference[2:8, 2:8] = 1
    reference[4:6, 4:6] = 2
    found = reference.copy()
    found[4:6, 4:6] = 1  # the nucleus called cytoplasm
    dice = region_dice(found, reference, ["cytoplasm", "nucleus"])
    assert dice["cell"] == 1.0 and dice["nucleus"] == 0.0
    assert dice["cytoplasm"] == pytest.approx(2 * 32 / (36 + 32))


def test_errors_are_split_between_masks_and_classifier() -> None:
    truth = np.array([0, 0, 1, 1, 1])
    with_predicted = np.array([0, 1, 1, 0, 0])
    with_reference = np.array([0, 0, 1, 1, 0])
    assert mask_error_sources(truth, with_predicted, with_reference) == {
        "right_both": 2,
        "right_reference_only": 2,
        "right_predicted_only": 0,
        "wrong_both": 1,
    }
