"""Registration metrics: TRE (mm), propagated-label overlap, Jacobian statistics."""

from __future__ import annotations

import numpy as np
import pytest

from medlens.errors import InputError
from medlens.metrics.registration import (
    distance_summary,
    folded_percentage,
    jacobian_statistics,
    propagated_label_metrics,
    target_registration_error,
)


def test_tre_is_the_euclidean_distance_in_mm() -> None:
    mapped = np.array([[0.0, 0.0, 0.0], [1.0, 1.0, 1.0]])
    reference = np.array([[3.0, 4.0, 0.0], [1.0, 1.0, 1.0]])
    np.testing.assert_allclose(target_registration_error(mapped, reference), [5.0, 0.0])
    summary = distance_summary([5.0, 0.0, 1.0])
    assert summary["n"] == 3 and summary["median"] == 1.0 and summary["max"] == 5.0


def test_tre_refuses_landmark_sets_that_do_not_match() -> None:
    with pytest.raises(InputError, match="differ in shape"):
        target_registration_error(np.zeros((3, 3)), np.zeros((4, 3)))


def test_propagated_labels_give_dice_and_hd95_per_label_in_mm() -> None:
    reference = np.zeros((20, 20), int)
    reference[5:15, 5:15] = 1
    reference[1:3, 1:3] = 2
    warped = np.roll(reference, 2, axis=0)
    scores = propagated_label_metrics(warped, reference, spacing=(0.5, 1.0))
    assert sorted(scores) == [1, 2]
    assert scores[1]["dice"] == pytest.approx(0.8)
    assert scores[1]["hausdorff_distance_95"] == pytest.approx(1.0)  # 2 rows x 0.5 mm
    assert scores[2]["dice"] == 0.0
    with pytest.raises(InputError, match="differ in shape"):
        propagated_label_metrics(warped[:10], reference)


def test_jacobian_statistics_count_folds() -> None:
    det = np.array([[-0.5, 0.0], [1.0, 2.0]])
    assert folded_percentage(det) == 50.0
    stats = jacobian_statistics(det)
    assert stats["folded_voxels"] == 2 and stats["min"] == -0.5 and stats["max"] == 2.0
    assert stats["mean"] == pytest.approx(0.625)
    assert stats["std_log"] == pytest.approx(np.log([1.0, 2.0]).std())
    assert jacobian_statistics(det, mask=det > 0)["folded_pct"] == 0.0
