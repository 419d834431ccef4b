"""Binning continuous attributes (age) into audit groups."""

from __future__ import annotations

import numpy as np
import pandas as pd
import pytest

from medlens.audit.binning import MISSING_GROUP, age_bin, group_labels
from medlens.errors import InputError


def test_given_edges_are_half_open_and_ordered() -> None:
    bins = age_bin([17.9, 18, 40, 64.9, 65, 101], bins=[0, 18, 65, float("inf")])
    assert list(bins) == ["[0, 18)", "[18, 65)", "[18, 65)", "[18, 65)", "[65, inf)", "[65, inf)"]
    assert list(bins.cat.categories) == ["[0, 18)", "[18, 65)", "[65, inf)"]
    assert bins.cat.ordered and bins.name == "age_bin"


def test_quantile_bins_hold_equal_counts(rng) -> None:
    ages = pd.Series(rng.uniform(20, 90, 400))
    bins = age_bin(ages, n_quantiles=4)
    assert bins.value_counts().tolist() == [100, 100, 100, 100]
    # The same cases as pandas' quartiles.
    reference = pd.qcut(ages, 4, labels=False)
    assert (bins.cat.codes.to_numpy() == reference.to_numpy()).all()
    assert bins.cat.categories[-1].endswith(f"{ages.max():g}]")  # the oldest case is inside


def test_missing_ages_form_their_own_group_and_text_numbers_are_read() -> None:
    bins = age_bin(pd.Series(["34", "", None, "71.5", np.nan]), bins=[0, 50, 100])
    assert list(bins) == ["[0, 50)", MISSING_GROUP, MISSING_GROUP, "[50, 100)", MISSING_GROUP]


def test_bad_values_are_named() -> None:
    with pytest.raises(InputError, match="non-numeric value 'old'"):
        age_bin(["30", "old"], bins=[0, 100])
    with pytest.raises(InputError, match="outside the bin edges"):
        age_bin([30, 120], bins=[0, 100])
    with pytest.raises(InputError, match="must increase"):
        age_bin([30], bins=[50, 10])
    with pytest.raises(InputError, match="two distinct values"):
        age_bin([30, 30, 30])


def test_group_labels_keep_manifest_spelling() -> None:
    labels = group_labels(pd.Series([1.0, 2.0, np.nan, 1.0]))
    assert list(labels.astype(str)) == ["1", "2", MISSING_GROUP, "1"]
    assert list(labels.cat.categories) == ["1", "2", MISSING_GROUP]
