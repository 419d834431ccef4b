"""Overlap metrics (Dice, Jaccard, precision, sensitivity, specificity, pixel AUC) against
MONAI, scikit-learn and hand-computed cases, including empty masks and a field of view."""

from __future__ import annotations

import warnings

import numpy as np
import pytest
import torch
from monai.metrics import DiceMetric, compute_iou
from scipy import ndimage
from sklearn.metrics import precision_score, recall_score, roc_auc_score

from medlens.errors import InputError
from medlens.metrics.overlap import (
    dice,
    jaccard,
    overlap_counts,
    pixel_auc,
    precision,
    sensitivity,
    specificity,
)


def random_pair(shape: tuple[int, ...], seed: int) -> tuple[np.ndarray, np.ndarray, np.ndarray]:
    """(prediction, reference, probability) from smooth noise: overlapping but not equal."""
    rng = np.random.default_rng(seed)
    field = ndimage.gaussian_filter(rng.standard_normal(shape), 2.0)
    field /= field.std()
    prob = 1.0 / (1.0 + np.exp(-(field + 0.7 * rng.standard_normal(shape))))
    return prob > 0.5, field > 0.3, prob


def monai_dice_iou(pred: np.ndarray, ref: np.ndarray, ignore_empty: bool) -> tuple[float, float]:
    y_pred = torch.from_numpy(pred[None, None].astype(np.float32))
    y = torch.from_numpy(ref[None, None].astype(np.float32))
    metric = DiceMetric(include_background=True, ignore_empty=ignore_empty)
    with warnings.catch_warnings():
        warnings.simplefilter("ignore")
        value = metric(y_pred, y).item()
        iou = compute_iou(y_pred, y, include_background=True, ignore_empty=ignore_empty).item()
    return value, iou


@pytest.mark.parametrize("shape", [(48, 40), (20, 24, 16)], ids=["2d", "3d"])
def test_dice_and_jaccard_match_monai(shape):
    pred, ref, _ = random_pair(shape, seed=len(shape))
    monai_dice, monai_iou = monai_dice_iou(pred, ref, ignore_empty=True)
    assert 0.2 < dice(pred, ref) < 0.95
    assert dice(pred, ref) == pytest.approx(monai_dice, rel=1e-6)
    assert jaccard(pred, ref) == pytest.approx(monai_iou, rel=1e-6)


@pytest.mark.parametrize("shape", [(48, 40), (20, 24, 16)], ids=["2d", "3d"])
def test_ratios_match_scikit_learn(shape):
    pred, ref, _ = random_pair(shape, seed=10 + len(shape))
    truth, guess = ref.ravel(), pred.ravel()
    assert precision(pred, ref) == pytest.approx(precision_score(truth, guess))
    assert sensitivity(pred, ref) == pytest.approx(recall_score(truth, guess))
    assert specificity(pred, ref) == pytest.approx(recall_score(~truth, ~guess))


def test_hand_computed_counts():
    pred = np.array([[1, 1, 1, 0], [0, 0, 0, 0]])
    ref = np.array([[0, 1, 1, 1], [1, 0, 0, 0]])
    counts = overlap_counts(pred, ref)
    assert (counts.tp, counts.fp, counts.fn, counts.tn) == (2, 1, 2, 3)
    assert dice(pred, ref) == pytest.approx(4 / 7)
    assert jaccard(pred, ref) == pytest.approx(2 / 5)
    assert precision(pred, ref) == pytest.approx(2 / 3)
    assert sensitivity(pred, ref) == pytest.approx(2 / 4)
    assert specificity(pred, ref) == pytest.approx(3 / 4)


EMPTY = np.zeros((6, 6, 6), bool)
CUBE = np.zeros((6, 6, 6), bool)
CUBE[1:4, 1:4, 1:4] = True


@pytest.mark.parametrize("ignore_empty", [True, False])
@pytest.mark.parametrize(
    ("pred", "ref"), [(EMPTY, EMPTY), (CUBE, EMPTY), (EMPTY, CUBE)], ids=["both", "ref", "pred"]
)
def test_empty_masks_follow_monai_ignore_empty(pred, ref, ignore_empty):
    monai_dice, monai_iou = monai_dice_iou(pred, ref, ignore_empty)
    np.testing.assert_equal(dice(pred, ref, ignore_empty=ignore_empty), monai_dice)
    np.testing.assert_equal(jaccard(pred, ref, ignore_empty=ignore_empty), monai_iou)


def test_empty_masks_give_nan_ratios_never_zero():
    assert np.isnan(precision(EMPTY, CUBE))  # nothing predicted
    assert np.isnan(sensitivity(CUBE, EMPTY))  # nothing to find
    assert np.isnan(specificity(np.ones_like(CUBE), np.ones_like(CUBE)))  # no background
    assert dice(EMPTY, EMPTY, ignore_empty=False) == 1.0
    assert dice(CUBE, EMPTY, ignore_empty=False) == 0.0
    assert sensitivity(EMPTY, CUBE) == 0.0


def test_field_of_view_counts_only_voxels_inside():
    pred, ref, _ = random_pair((40, 40), seed=3)
    fov = np.zeros_like(pred)
    fov[5:35, 8:30] = True
    expected = overlap_counts(pred[5:35, 8:30], ref[5:35, 8:30])
    assert overlap_counts(pred, ref, fov_mask=fov) == expected
    assert dice(pred, ref, fov_mask=fov) == pytest.approx(expected.dice())
    assert dice(pred, ref, fov_mask=fov) != pytest.approx(dice(pred, ref))


def test_pixel_auc_matches_scikit_learn_inside_the_fov():
    _, ref, prob = random_pair((20, 24, 16), seed=4)
    fov = np.zeros_like(ref)
    fov[2:18, :, 3:] = True
    assert pixel_auc(prob, ref) == pytest.approx(roc_auc_score(ref.ravel(), prob.ravel()))
    inside = roc_auc_score(ref[fov], prob[fov])
    assert pixel_auc(prob, ref, fov_mask=fov) == pytest.approx(inside)
    assert 0.6 < inside < 0.99


def test_pixel_auc_is_nan_with_one_class():
    prob = np.random.default_rng(0).random((8, 8))
    assert np.isnan(pixel_auc(prob, np.zeros((8, 8), bool)))
    assert np.isnan(pixel_auc(prob, np.ones((8, 8), bool)))


@pytest.mark.parametrize(
    ("call", "message"),
    [
        (lambda: dice(np.full((4, 4), 3), np.zeros((4, 4))), "not binary"),
        (lambda: dice(np.zeros((4, 4)), np.zeros((4, 5))), "differs"),
        (lambda: dice(np.zeros(4), np.zeros(4)), "2D or 3D"),
        (lambda: dice(np.zeros((4, 4)), np.zeros((4, 4)), fov_mask=np.ones((3, 3))), "fov_mask"),
        (lambda: pixel_auc(np.full((4, 4), np.nan), np.eye(4)), "NaN"),
        (lambda: pixel_auc(np.zeros((4, 5)), np.eye(4)), "differs"),
        (lambda: dice(np.array([["a"]]), np.zeros((1, 1))), "dtype"),
    ],
)
def test_bad_input_raises_input_error(call, message):
    with pytest.raises(InputError, match=message):
        call()
