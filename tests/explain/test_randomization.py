"""Adebayo et al.'s model-randomisation check: maps of random weights must differ."""

from __future__ import annotations

import copy

import numpy as np
import pytest
import torch

from medlens.explain import cascading_randomization, explain, randomization_check
from medlens.explain.randomization import map_similarity, randomize_weights


def test_randomized_maps_are_far_from_the_trained_ones(square_task) -> None:
    model, x = square_task.model, square_task.images[:4]
    before = copy.deepcopy(model.state_dict())
    methods = ["gradcam", "saliency", "smoothgrad"]
    ssim = randomization_check(model, x, methods, target=1, seed=0)
    assert set(ssim) == set(methods)
    for method in methods:
        trained = explain(model, x, 1, method)
        again = explain(model, x, 1, method)
        same = np.mean([map_similarity(a, b) for a, b in zip(trained, again, strict=True)])
        assert same == pytest.approx(1.0)
        assert ssim[method] < 0.6, method
    for key, value in model.state_dict().items():  # the check works on a copy
        assert torch.equal(value, before[key]), key


def test_randomize_weights_redraws_every_parameter_reproducibly(square_task) -> None:
    first, second = copy.deepcopy(square_task.model), copy.deepcopy(square_task.model)
    n_params = len(list(first.parameters()))
    assert randomize_weights(first.modules(), seed=3) == n_params
    randomize_weights(second.modules(), seed=3)
    for a, b, trained in zip(
        first.parameters(), second.parameters(), square_task.model.parameters(), strict=True
    ):
        assert torch.equal(a, b) and not torch.equal(a, trained)


def test_cascading_randomization_goes_from_the_head_down(square_task) -> None:
    table = cascading_randomization(
        square_task.model, square_task.images[:2], ["gradcam"], target=1
    )
    assert list(table["randomized_down_to"]) == ["head", "stage 1", "stage 0"]
    assert table["ssim"].iloc[-1] < 0.6
    assert (table["ssim"] <= 1.0 + 1e-9).all()


def test_ssim_of_identical_maps_is_one_and_of_unrelated_maps_is_low() -> None:
    rng = np.random.default_rng(0)
    a, b = rng.random((16, 16, 16)), rng.random((16, 16, 16))
    assert map_similarity(a, a) == pytest.approx(1.0)
    assert map_similarity(a, b) < 0.2
    assert map_similarity(a[:5, :5, 0], a[:5, :5, 0]) == pytest.approx(1.0)  # small maps too
