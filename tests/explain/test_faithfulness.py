"""Deletion and insertion curves: a hand-computed case, then real models against random maps."""

from __future__ import annotations

import numpy as np
import pytest
import torch
from torch import nn

from medlens.explain import (
    deletion_curve,
    faithfulness_scores,
    insertion_curve,
    random_heatmaps,
    summarize_faithfulness,
)
from medlens.explain.faithfulness import baseline_image, salience_rank


class SumModel(nn.Module):
    """logits (0, sum of the pixels): p(class 1) = sigmoid(sum)."""

    def __init__(self) -> None:
        super().__init__()
        self.scale = nn.Parameter(torch.ones(()))

    def forward(self, x: torch.Tensor) -> torch.Tensor:
        total = self.scale * x.flatten(1).sum(dim=1)
        return torch.stack([torch.zeros_like(total), total], dim=1)


def _sigmoid(v: np.ndarray) -> np.ndarray:
    return 1 / (1 + np.exp(-v))


def test_curves_match_a_hand_computed_case() -> None:
    """Pixels 1, 2, 3, 4 (2x2), map = the pixels, steps of 25%, baseline 0: deletion removes
    4, 3, 2, 1 in turn (sums 10, 6, 3, 1, 0); insertion adds them (0, 4, 7, 9, 10)."""
    image = np.array([[[1.0, 2.0], [3.0, 4.0]]], dtype=np.float32)
    heatmap = image[0] / 4
    fractions = np.array([0, 0.25, 0.5, 0.75, 1.0])
    deletion = deletion_curve(SumModel(), image, heatmap, 1, 0.25, baseline="zeros")
    insertion = insertion_curve(SumModel(), image, heatmap, 1, 0.25, baseline="zeros")
    expected_del = _sigmoid(np.array([10, 6, 3, 1, 0.0]))
    expected_ins = _sigmoid(np.array([0, 4, 7, 9, 10.0]))
    np.testing.assert_allclose(deletion.fractions, fractions)
    np.testing.assert_allclose(deletion.probabilities, expected_del, rtol=1e-6)
    np.testing.assert_allclose(insertion.probabilities, expected_ins, rtol=1e-6)
    # trapezoid rule by hand: 0.25 * (half the end points + the inner points)
    by_hand = 0.25 * (expected_del[0] / 2 + expected_del[1:4].sum() + expected_del[4] / 2)
    assert deletion.auc == pytest.approx(by_hand)
    assert 0 <= deletion.auc <= insertion.auc <= 1


def test_baselines_and_ties() -> None:
    rng = np.random.default_rng(0)
    image = rng.random((2, 8, 8)).astype(np.float32)
    mean = baseline_image(image, "mean")
    np.testing.assert_allclose(mean[:, 3, 5], image.mean(axis=(1, 2)), rtol=1e-6)
    blurred = baseline_image(image, "blur")
    assert blurred.shape == image.shape and blurred.std() < image.std()
    # a flat map is taken in a random (seeded) order, not row by row
    rank = salience_rank(np.zeros((8, 8)), seed=1)
    assert sorted(rank) == list(range(64)) and not np.array_equal(rank, np.arange(64))
    np.testing.assert_array_equal(rank, salience_rank(np.zeros((8, 8)), seed=1))
    maps = random_heatmaps((4, 4), 3, seed=2)
    assert maps.shape == (3, 4, 4) and not np.array_equal(maps[0], maps[1])


def test_trained_cnn_maps_beat_random_maps_on_both_curves(square_task) -> None:
    """RISE's criterion on a CNN that learned a pasted square in real radiographs: deleting
    by the map drops p(square) faster than random deletion, inserting raises it faster."""
    scores = faithfulness_scores(
        square_task.model, square_task.images.numpy(), ["gradcam", "saliency"], targets=[1] * 6
    )
    assert len(scores) == 12 and set(scores["case_id"]) == {str(k) for k in range(6)}
    auc_columns = ["deletion_auc", "insertion_auc", "deletion_auc_random", "insertion_auc_random"]
    assert ((scores[auc_columns] >= 0) & (scores[auc_columns] <= 1)).all().all()
    summary = summarize_faithfulness(scores).set_index("method")
    for method in ("gradcam", "saliency"):
        row = summary.loc[method]
        assert row["deletion_auc"] < row["deletion_auc_random"] - 0.1, method
        assert row["insertion_auc"] > row["insertion_auc_random"] + 0.05, method
        assert row["deletion_auc"] < row["insertion_auc"]


def test_faithfulness_in_3d_on_a_region_model(region_task_3d) -> None:
    scores = faithfulness_scores(
        region_task_3d.model, region_task_3d.images.numpy(), ["gradcam"], targets=[1, 1]
    )
    assert (scores["deletion_auc"] < scores["deletion_auc_random"]).all()
    assert (scores["insertion_auc"] > scores["insertion_auc_random"]).all()
