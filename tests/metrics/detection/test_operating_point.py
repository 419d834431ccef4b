"""FROC, object-wise F1, counts, the F1-optimal threshold and the bootstrap, on cases small
enough to count by hand."""

from __future__ import annotations

import numpy as np
import pytest

from medlens.errors import InputError
from medlens.metrics.detection import (
    DetectedObjects,
    ReferenceObjects,
    best_f1_threshold,
    evaluate_detections,
    froc,
    match_images,
)

BOX = [0.0, 0.0, 10.0, 10.0]
FAR = [50.0, 50.0, 60.0, 60.0]


def _scene() -> tuple[list[DetectedObjects], list[ReferenceObjects]]:
    """Image 0: two cells, found at 0.9 and missed, and a false positive at 0.8.
    Image 1: one cell found at 0.6, a crowd region with a detection on it at 0.95.
    Image 2: no objects; a false positive at 0.3."""
    refs = [
        ReferenceObjects.of([BOX, [20, 20, 30, 30]], [0, 0], image_id="a"),
        ReferenceObjects.of([BOX, FAR], [0, 0], [False, True], image_id="b"),
        ReferenceObjects.of([], [], image_id="c"),
    ]
    dets = [
        DetectedObjects.of([BOX, FAR], [0.9, 0.8], [0, 0], image_id="a"),
        DetectedObjects.of([BOX, FAR], [0.6, 0.95], [0, 0], image_id="b"),
        DetectedObjects.of([FAR], [0.3], [0], image_id="c"),
    ]
    return dets, refs


def test_froc_by_hand() -> None:
    dets, refs = _scene()
    matches = match_images(dets, refs, 1, [0.5])
    curve = froc(matches, [0], 0, at=(1 / 3, 2 / 3, 1.0))
    # in score order (crowd detection ignored): 0.9 TP, 0.8 FP, 0.6 TP, 0.3 FP; 3 cells
    np.testing.assert_allclose(curve.sensitivity, [0, 1 / 3, 1 / 3, 2 / 3, 2 / 3])
    np.testing.assert_allclose(curve.fps_per_image, [0, 0, 1 / 3, 1 / 3, 2 / 3])
    assert curve.sensitivity_at == pytest.approx((2 / 3, 2 / 3, 2 / 3))


def test_f1_counts_and_threshold_by_hand() -> None:
    dets, refs = _scene()
    result = evaluate_detections(dets, refs, ["cell"], thresholds=[0.5], n_bootstrap=0)
    cell = result["per_class"]["cell"]
    # findings >= 0.5: 0.9 TP, 0.8 FP, 0.6 TP (0.95 on the crowd region: neither)
    assert cell["precision"]["value"] == pytest.approx(2 / 3)
    assert cell["recall"]["value"] == pytest.approx(2 / 3)
    assert cell["f1"]["value"] == pytest.approx(2 / 3)
    assert cell["n_reference"] == 3 and cell["n_findings"] == 4
    # per image: found 2 vs 2, 2 (the crowd one counts) vs 1, 0 vs 0
    assert cell["count"]["mae"] == pytest.approx(1 / 3) and cell["count"]["bias"] == pytest.approx(
        1 / 3
    )
    assert [r["predicted"] for r in result["counts"]] == [2, 2, 0]
    matches = match_images(dets, refs, 1, [0.5])
    # F1 by threshold: 0.95 -> 0 (the crowd match), 0.9 -> 1/2, 0.8 -> 2/5, 0.6 -> 2/3, 0.3 -> 4/7
    assert best_f1_threshold(matches, 0) == 0.6


def test_bootstrap_is_reproducible_and_brackets_the_value() -> None:
    dets, refs = _scene()
    first = evaluate_detections(dets, refs, ["cell"], n_bootstrap=50, seed=3)
    again = evaluate_detections(dets, refs, ["cell"], n_bootstrap=50, seed=3)
    assert first["metrics"] == again["metrics"]
    entry = first["metrics"]["map50"]
    assert entry["ci_low"] <= entry["value"] <= entry["ci_high"]


def test_mismatched_inputs_are_refused() -> None:
    dets, refs = _scene()
    with pytest.raises(InputError, match="3 references"):
        evaluate_detections(dets[:2], refs, ["cell"])
    with pytest.raises(InputError, match="outside 0..0"):
        evaluate_detections(
            [DetectedObjects.of([BOX], [0.5], [3], image_id="a")], refs[:1], ["cell"]
        )
