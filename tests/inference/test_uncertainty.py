"""Sampled predictions of one network: MC dropout and test-time augmentation."""

from __future__ import annotations

import numpy as np
import pytest
import torch
from torch import nn

from medlens.errors import ConfigError
from medlens.inference.uncertainty import sample_probabilities


def _net(dropout: float = 0.5) -> nn.Module:
    torch.manual_seed(0)
    return nn.Sequential(
        nn.Flatten(), nn.Linear(16, 32), nn.ReLU(), nn.Dropout(dropout), nn.Linear(32, 2)
    ).eval()


def _cases(n: int) -> list[np.ndarray]:
    rng = np.random.default_rng(0)
    return [rng.normal(size=(1, 4, 4)).astype(np.float32) for _ in range(n)]


def _identity(p: np.ndarray) -> np.ndarray:
    return p


def _samples(model: nn.Module, arrays: list[np.ndarray], **kw: int) -> np.ndarray:
    return sample_probabilities(model, arrays, "mc_dropout", torch.device("cpu"), _identity, **kw)


def test_a_cases_mc_dropout_samples_do_not_depend_on_its_batch() -> None:
    model, cases = _net(), _cases(9)
    alone = _samples(model, [cases[4]])[:, 0]
    in_folder = _samples(model, cases)[:, 4]
    small_batches = _samples(model, cases, batch_size=3)[:, 4]
    reordered = _samples(model, cases[::-1])[:, 4]
    assert alone.shape == (20, 2)
    np.testing.assert_allclose(in_folder, alone, atol=1e-6)
    np.testing.assert_allclose(small_batches, alone, atol=1e-6)
    np.testing.assert_allclose(reordered, alone, atol=1e-6)


def test_mc_dropout_samples_differ_and_leave_the_network_as_it_was() -> None:
    model, cases = _net(), _cases(3)
    state = torch.random.get_rng_state()
    samples = _samples(model, cases)
    assert samples.shape == (20, 3, 2)
    assert np.ptp(samples[:, :, 1], axis=0).min() > 1e-4  # the passes disagree
    assert torch.equal(torch.random.get_rng_state(), state)
    assert not any(m.training for m in model.modules())
    single = torch.softmax(model(torch.from_numpy(np.stack(cases))), dim=1).detach().numpy()
    np.testing.assert_allclose(single.sum(axis=1), 1.0, atol=1e-6)


def test_mc_dropout_on_a_network_without_dropout_is_refused() -> None:
    with pytest.raises(ConfigError, match="mc_dropout needs a network with dropout"):
        _samples(_net(dropout=0.0), _cases(2))


def test_tta_gives_ten_views_of_every_case() -> None:
    model, cases = _net(), _cases(5)
    views = sample_probabilities(model, cases, "tta", torch.device("cpu"), _identity, 2)
    assert views.shape == (10, 5, 2)
    direct = torch.softmax(model(torch.from_numpy(np.stack(cases))), dim=1).detach().numpy()
    np.testing.assert_allclose(views[0], direct, atol=1e-6)  # the first view is the image
