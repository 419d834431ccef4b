"""Subgroup labels for auditing: categorical columns as strings, continuous ones binned.

An audit compares groups of cases, so a continuous attribute (age in years, BMI) must first
be cut into bins. ``age_bin`` does it either at given edges or at quantiles of the values.
Missing values form their own group, ``"(missing)"``: a case is never dropped silently.
"""

from __future__ import annotations

from collections.abc import Sequence

import numpy as np
import pandas as pd
from numpy.typing import ArrayLike

from medlens.errors import InputError

#: The group of cases whose attribute is empty or NaN.
MISSING_GROUP = "(missing)"

#: Quantile bins used when no edges are given (quartiles).
DEFAULT_QUANTILES = 4


def _edge(value: float) -> str:
    if np.isinf(value):
        return "inf" if value > 0 else "-inf"
    return f"{value:g}"


def age_bin(
    values: ArrayLike | pd.Series,
    bins: Sequence[float] | None = None,
    n_quantiles: int = DEFAULT_QUANTILES,
    name: str = "age",
) -> pd.Series:
    """Cut a continuous attribute (age in years, or any number) into labelled bins.

    Bins are half-open, ``[low, high)``, labelled ``"[40, 65)"``. With ``bins`` the edges are
    used as given (add ``-inf``/``inf`` at the ends to catch every value); without, the edges
    are the ``n_quantiles``-quantiles of the values (equal-count bins; edges that coincide
    because of ties are merged, so fewer bins may result), with the top edge widened so the
    largest value falls inside. The result is an ordered categorical, so tables and plots list
    the bins from youngest to oldest; missing values become ``"(missing)"``.

    Args:
        values: the attribute, one value per case (numbers, numeric strings, NaN or empty).
        bins: increasing bin edges in the attribute's unit (years for age); ``None`` for quantiles.
        n_quantiles: number of quantile bins when ``bins`` is ``None``.
        name: the attribute's name, for error messages.

    Returns:
        The bin label of each case as an ordered ``pd.Series`` of strings, same length and index.

    Raises:
        InputError: a value that is not a number, a value outside the given edges, edges that
            do not increase, or fewer than two distinct values to cut into quantiles.

    Example:
        >>> list(age_bin([30, 50, 70], bins=[0, 40, 65, float("inf")]))
        ['[0, 40)', '[40, 65)', '[65, inf)']
    """
    series = values if isinstance(values, pd.Series) else pd.Series(np.asarray(values))
    text = series.astype("string").str.strip()
    missing = series.isna().to_numpy() | (text.fillna("") == "").to_numpy()
    numbers = pd.to_numeric(series.where(~missing), errors="coerce")
    bad = ~missing & numbers.isna().to_numpy()
    if bad.any():
        example = series[bad].iloc[0]
        raise InputError(name, f"cannot bin non-numeric value {example!r} of column {name!r}")
    observed = numbers[~missing].to_numpy(dtype=float)
    if bins is None:
        if np.unique(observed).size < 2:
            raise InputError(name, f"column {name!r} needs two distinct values to cut quantiles")
        edges = np.unique(np.quantile(observed, np.linspace(0.0, 1.0, n_quantiles + 1)))
        edges[-1] = np.nextafter(edges[-1], np.inf)
    else:
        edges = np.asarray(bins, dtype=float)
        if edges.ndim != 1 or edges.size < 2 or (np.diff(edges) <= 0).any():
            raise InputError(name, f"bin edges for {name!r} must increase, got {list(bins)}")
        outside = (observed < edges[0]) | (observed >= edges[-1])
        if outside.any():
            raise InputError(
                name,
                f"value {observed[outside][0]:g} of {name!r} lies outside the bin edges "
                f"[{_edge(edges[0])}, {_edge(edges[-1])}); add -inf/inf edges",
            )
    labels = [f"[{_edge(lo)}, {_edge(hi)})" for lo, hi in zip(edges[:-1], edges[1:], strict=True)]
    if bins is None:  # the widened top edge prints as the largest value, closed
        labels[-1] = f"[{_edge(edges[-2])}, {_edge(observed.max())}]"
    cut = pd.cut(numbers, edges, right=False, labels=labels)
    out = cut.cat.add_categories([MISSING_GROUP]).fillna(MISSING_GROUP)
    categories = [*labels, MISSING_GROUP] if missing.any() else labels
    return pd.Series(
        pd.Categorical(out.astype(str), categories=categories, ordered=True),
        index=series.index,
        name=f"{name}_bin",
    )


def group_labels(column: pd.Series) -> pd.Series:
    """One attribute column as group labels (strings), keeping a categorical's order.

    Empty cells and NaN become ``"(missing)"``. Whole floats print as integers (``1.0 -> "1"``)
    so a column read from CSV keeps the labels the manifest had.
    """
    if isinstance(column.dtype, pd.CategoricalDtype):
        order = [str(c) for c in column.cat.categories]
        text = column.astype(object).where(column.notna(), MISSING_GROUP).astype(str)
    else:

        def as_text(value: object) -> str:
            if value is None or (isinstance(value, float) and np.isnan(value)):
                return MISSING_GROUP
            if isinstance(value, float) and value.is_integer():
                return str(int(value))
            return str(value).strip() or MISSING_GROUP

        text = column.map(as_text)
        order = sorted(set(text) - {MISSING_GROUP})
    present = set(text)
    categories = [g for g in order if g in present]
    if MISSING_GROUP in present and MISSING_GROUP not in categories:
        categories.append(MISSING_GROUP)
    return pd.Series(
        pd.Categorical(text, categories=categories, ordered=True),
        index=column.index,
        name=column.name,
    )
