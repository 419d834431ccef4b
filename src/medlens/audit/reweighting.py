"""Group reweighting for training: every (group, class) cell gets the same total weight.

A model trained on a site that supplies 90% of the cases, or on a group whose positives are
rare, learns that majority best. Weighting each case by the inverse frequency of its
(group, class) cell (Kamiran & Calders 2012, "reweighing") gives every cell the same total
weight, so a weighted sampler (``torch.utils.data.WeightedRandomSampler``) draws every cell
equally often in expectation, and every group equally often when each group holds every
class.
"""

from __future__ import annotations

from collections.abc import Sequence

import numpy as np
import pandas as pd

from medlens.audit.binning import group_labels
from medlens.data.case import Case
from medlens.errors import InputError


def _from_cases(cases: Sequence[Case], group: str) -> tuple[np.ndarray, np.ndarray]:
    if not any(group in case.attributes for case in cases):
        available = sorted({key for case in cases for key in case.attributes})
        raise InputError(
            "cases",
            f"no case has the attribute {group!r} (attributes: {', '.join(available) or 'none'})",
        )
    unlabelled = [case.case_id for case in cases if case.label is None]
    if unlabelled:
        raise InputError(unlabelled[0], "is unlabelled; group weights need every case's class")
    groups = pd.Series([case.attributes.get(group) for case in cases], dtype=object)
    labels = np.array([case.label for case in cases])
    return group_labels(groups).astype(str).to_numpy(), labels


def _from_frame(df: pd.DataFrame, group: str, label: str) -> tuple[np.ndarray, np.ndarray]:
    for column in (group, label):
        if column not in df.columns:
            raise InputError(
                "cases", f"has no column {column!r} (columns: {', '.join(map(str, df.columns))})"
            )
    if df[label].isna().any():
        raise InputError("cases", f"column {label!r} has empty cells; every case needs a class")
    return group_labels(df[group]).astype(str).to_numpy(), df[label].to_numpy()


def group_sample_weights(
    cases_or_df: Sequence[Case] | pd.DataFrame, group: str, label: str = "label"
) -> np.ndarray:
    """Per-case weights: inverse frequency of the case's (group, class) cell, mean 1.

    ``w_i = N / (C * n_cell(i))`` with ``N`` cases and ``C`` non-empty cells, so the weights
    average to 1 and every cell's weights sum to ``N / C``. Cases whose attribute is missing
    form the group ``"(missing)"`` (weighted like any other, never dropped).

    Args:
        cases_or_df: training cases (``Case.attributes[group]``, ``Case.label``) or a table
            with the group and label columns.
        group: the attribute (``site``, ``sex``, ``age_bin``).
        label: the label column of a table (ignored for cases).

    Returns:
        Float weights ``(N,)`` in case order, for ``WeightedRandomSampler(weights, N)``.

    Raises:
        InputError: no cases, a missing column or attribute, or an unlabelled case.

    Example:
        >>> df = pd.DataFrame({"site": ["A", "A", "A", "B"], "label": [0, 1, 1, 0]})
        >>> group_sample_weights(df, "site").round(3).tolist()
        [1.333, 0.667, 0.667, 1.333]
    """
    if len(cases_or_df) == 0:
        raise InputError("cases", "there are no cases to weight")
    if isinstance(cases_or_df, pd.DataFrame):
        groups, labels = _from_frame(cases_or_df, group, label)
    else:
        groups, labels = _from_cases(list(cases_or_df), group)
    cells = pd.Series(list(zip(groups, labels.tolist(), strict=True)))
    counts = cells.map(cells.value_counts()).to_numpy(dtype=float)
    n_cells = cells.nunique()
    return len(cells) / (n_cells * counts)
