"""Group reweighting: inverse (group, class) frequency, and what a weighted sampler then draws."""

from __future__ import annotations

from pathlib import Path

import numpy as np
import pandas as pd
import pytest
import torch
from torch.utils.data import WeightedRandomSampler

from medlens.audit import group_sample_weights
from medlens.data.case import Case
from medlens.data.medmnist import load_medmnist_npz
from medlens.errors import InputError


def test_weights_by_hand() -> None:
    df = pd.DataFrame({"site": ["A", "A", "A", "B", "B", "A"], "label": [0, 1, 1, 0, 1, 1]})
    # Cells: (A,0) x1, (A,1) x3, (B,0) x1, (B,1) x1 -> C = 4, N = 6, w = N / (C n_cell).
    expected = [6 / 4, 6 / 12, 6 / 12, 6 / 4, 6 / 4, 6 / 12]
    weights = group_sample_weights(df, "site")
    np.testing.assert_allclose(weights, expected)
    assert weights.mean() == pytest.approx(1.0)


def test_cases_and_tables_agree_and_missing_attributes_form_a_group() -> None:
    cases = [
        Case("c1", 0, attributes={"site": "A"}),
        Case("c2", 1, attributes={"site": "A"}),
        Case("c3", 1, attributes={"site": "A"}),
        Case("c4", 1, attributes={}),
    ]
    table = pd.DataFrame({"site": ["A", "A", "A", None], "label": [0, 1, 1, 1]})
    np.testing.assert_allclose(
        group_sample_weights(cases, "site"), group_sample_weights(table, "site")
    )
    np.testing.assert_allclose(group_sample_weights(cases, "site"), [4 / 3, 2 / 3, 2 / 3, 4 / 3])


def test_weighted_sampler_draws_groups_equally(pneumonia_npz: Path) -> None:
    """Real PneumoniaMNIST training labels (90% pneumonia), a site holding 80% of the cases."""
    labels = load_medmnist_npz(pneumonia_npz).labels["train"]
    rng = np.random.default_rng(0)
    site = np.where(rng.uniform(size=len(labels)) < 0.8, "big", "small")
    weights = group_sample_weights(pd.DataFrame({"site": site, "label": labels}), "site")
    # In expectation: each group's share of the total weight is 1/2, each cell's 1/4.
    for group in ("big", "small"):
        assert weights[site == group].sum() / weights.sum() == pytest.approx(0.5)
        for cls in (0, 1):
            share = weights[(site == group) & (labels == cls)].sum() / weights.sum()
            assert share == pytest.approx(0.25)
    sampler = WeightedRandomSampler(
        torch.as_tensor(weights),
        40_000,
        replacement=True,
        generator=torch.Generator().manual_seed(0),
    )
    drawn = np.fromiter(sampler, dtype=np.int64)
    assert (site[drawn] == "small").mean() == pytest.approx(0.5, abs=0.01)
    assert (labels[drawn] == 0).mean() == pytest.approx(0.5, abs=0.01)
    assert (site == "small").mean() == pytest.approx(0.2, abs=0.02)  # unweighted: 1 in 5


def test_bad_input_is_named() -> None:
    with pytest.raises(InputError, match="no case has the attribute 'sex'"):
        group_sample_weights([Case("c1", 0, attributes={"site": "A"})], "sex")
    with pytest.raises(InputError, match="unlabelled"):
        group_sample_weights([Case("c1", None, attributes={"site": "A"})], "site")
    with pytest.raises(InputError, match="no column 'site'"):
        group_sample_weights(pd.DataFrame({"label": [0]}), "site")
    with pytest.raises(InputError, match="no cases"):
        group_sample_weights([], "site")
