"""evaluate_segmentation per class, the segmentation metric registry, and summarize()."""

from __future__ import annotations

import math

import numpy as np
import pytest
from sklearn.metrics import roc_auc_score

from medlens.errors import InputError
from medlens.metrics.overlap import dice
from medlens.metrics.segmentation import SEGMENTATION_METRICS, evaluate_segmentation, summarize
from medlens.metrics.surface import surface_metrics

SPACING = (1.5, 0.8, 0.8)


@pytest.fixture
def label_maps() -> tuple[np.ndarray, np.ndarray]:
    """Two classes in a 3D map; the prediction shifts class 1 and misses part of class 2."""
    ref = np.zeros((16, 20, 20), np.uint8)
    ref[3:10, 4:12, 4:12] = 1
    ref[8:14, 12:18, 10:16] = 2
    pred = np.zeros_like(ref)
    pred[4:11, 5:13, 4:12] = 1
    pred[8:12, 12:18, 10:16] = 2
    return pred, ref


def test_each_class_equals_the_binary_metrics(label_maps):
    pred, ref = label_maps
    results = evaluate_segmentation(pred, ref, SPACING, tolerance_mm=1.2)
    assert sorted(results) == [1, 2]
    for label, row in results.items():
        p, r = pred == label, ref == label
        assert row["dice"] == pytest.approx(dice(p, r))
        for name, value in surface_metrics(p, r, SPACING, tolerance_mm=1.2).items():
            assert row[name] == pytest.approx(value), name
        assert row["pred_voxels"] == p.sum() and row["ref_voxels"] == r.sum()
    assert results[1]["dice"] != pytest.approx(results[2]["dice"])


def test_every_registered_metric_is_in_the_evaluation(label_maps):
    pred, ref = label_maps
    prob = np.stack([pred == c for c in range(3)]).astype(float)
    row = evaluate_segmentation(pred, ref, SPACING, prob=prob)[2]
    for name in SEGMENTATION_METRICS:
        metric = SEGMENTATION_METRICS.get(name)
        first = prob[2] if name == "pixel_auc" else pred == 2
        assert row[name] == pytest.approx(metric(first, ref == 2, SPACING)), name


@pytest.mark.parametrize("name", SEGMENTATION_METRICS.names())
@pytest.mark.parametrize("pair", ["both_empty", "pred_empty", "ref_empty", "fov_empty"])
def test_every_metric_answers_empty_masks_without_crashing(name, pair):
    cube = np.zeros((10, 10, 10), bool)
    cube[2:6, 2:6, 2:6] = True
    empty = np.zeros_like(cube)
    pred, ref = {
        "both_empty": (empty, empty),
        "pred_empty": (empty, cube),
        "ref_empty": (cube, empty),
        "fov_empty": (cube, cube),
    }[pair]
    fov = empty if pair == "fov_empty" else None
    value = SEGMENTATION_METRICS.get(name)(pred, ref, SPACING, fov_mask=fov)
    assert isinstance(value, float)


def test_labels_default_and_explicit(label_maps):
    pred, ref = label_maps
    assert sorted(evaluate_segmentation(pred, ref, labels=[2])) == [2]
    empty = np.zeros((8, 8), int)
    row = evaluate_segmentation(empty, empty)[1]  # an empty pair is reported, not skipped
    assert math.isnan(row["dice"]) and math.isnan(row["hausdorff_distance"])
    assert row["pred_voxels"] == row["ref_voxels"] == 0
    extra = evaluate_segmentation(pred, np.where(ref == 2, 0, ref), labels=[1, 2, 3])
    assert math.isinf(extra[2]["hausdorff_distance"])  # class 2 only predicted
    assert math.isnan(extra[3]["dice"])


def test_boolean_masks_and_fov(label_maps):
    pred, ref = label_maps
    fov = np.zeros(pred.shape, bool)
    fov[:, :12] = True
    row = evaluate_segmentation(pred == 1, ref == 1, SPACING, fov_mask=fov)[1]
    assert row["dice"] == pytest.approx(dice(pred == 1, ref == 1, fov_mask=fov))
    assert row["pred_voxels"] == np.count_nonzero((pred == 1) & fov)


def test_probability_map_for_one_class(label_maps):
    pred, ref = label_maps
    rng = np.random.default_rng(0)
    prob = (ref == 1) * 0.3 + rng.random(ref.shape) * 0.5
    row = evaluate_segmentation(pred == 1, ref == 1, prob=prob)[1]
    assert row["pixel_auc"] == pytest.approx(roc_auc_score((ref == 1).ravel(), prob.ravel()))
    assert 0.8 < row["pixel_auc"] < 1.0
    with pytest.raises(InputError, match="one probability map"):
        evaluate_segmentation(pred, ref, prob=prob)


@pytest.mark.parametrize(
    ("kwargs", "message"),
    [
        ({"pred": np.zeros((16, 20, 19), np.uint8)}, "differs"),
        ({"pred": np.full((16, 20, 20), 0.5)}, "whole numbers"),
        ({"pred": np.full((16, 20, 20), -1)}, ">= 0"),
        ({"labels": [0]}, "labels >= 1"),
        ({"spacing": (1.0, 1.0)}, "expected 3 values"),
        ({"prob": np.zeros((2, 16, 20, 20))}, "expected shape"),
    ],
)
def test_bad_input_raises_input_error(label_maps, kwargs, message):
    pred, ref = label_maps
    args = {"pred": pred, "ref": ref, **kwargs}
    with pytest.raises(InputError, match=message):
        evaluate_segmentation(**args)


def test_summarize_counts_nan_and_inf_apart():
    summary = summarize([1.0, 2.0, 6.0, math.inf, math.nan, math.nan])
    assert summary["mean"] == pytest.approx(3.0)
    assert summary["median"] == 2.0 and summary["max"] == 6.0
    assert (summary["n"], summary["n_finite"], summary["n_nan"], summary["n_inf"]) == (6, 3, 2, 1)


def test_summarize_with_no_finite_value():
    summary = summarize([math.inf, math.nan])
    assert math.isnan(summary["mean"]) and summary["n_finite"] == 0
    assert summarize([])["n"] == 0
