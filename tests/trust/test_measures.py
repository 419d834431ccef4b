"""Entropy, mutual information and expected Dice."""

from __future__ import annotations

import numpy as np
import pytest

from medlens.trust.measures import entropy, expected_dice, mutual_information, predictive_entropy


def test_entropy_in_nats_from_certain_to_uniform() -> None:
    assert entropy([[1.0, 0.0], [0.5, 0.5]]) == pytest.approx([0.0, np.log(2)])
    assert entropy(np.full((1, 4), 0.25)) == pytest.approx([np.log(4)])


def test_mutual_information_is_the_disagreement_of_the_samples() -> None:
    agree = np.array([[[0.5, 0.5]], [[0.5, 0.5]]])  # (S=2, N=1, K=2): unsure, but alike
    disagree = np.array([[[1.0, 0.0]], [[0.0, 1.0]]])  # each sure, of opposite classes
    assert mutual_information(agree) == pytest.approx([0.0])
    assert predictive_entropy(agree) == pytest.approx([np.log(2)])
    assert mutual_information(disagree) == pytest.approx([np.log(2)])


def test_per_voxel_maps_take_the_class_axis() -> None:
    samples = np.random.default_rng(0).dirichlet([1, 1, 1], size=(5, 4, 6)).transpose(0, 3, 1, 2)
    mi = mutual_information(samples, axis=1)  # (S, K, H, W) -> (H, W)
    expected = mutual_information(samples.transpose(0, 2, 3, 1))
    np.testing.assert_allclose(mi, expected)


def test_expected_dice_of_certain_maps_is_their_dice() -> None:
    probs = np.array([1.0, 1.0, 0.0, 0.0])
    assert expected_dice(probs, probs > 0.5) == 1.0
    assert expected_dice(np.array([0.5, 0.5, 0.0]), np.array([True, True, False])) == pytest.approx(
        2 * 1.0 / (2 + 1.0)
    )
    assert expected_dice(np.zeros(3), np.zeros(3, dtype=bool)) == 1.0
