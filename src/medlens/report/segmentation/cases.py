"""Which test cases a report shows: the best, the median and the worst by Dice."""

from __future__ import annotations

from dataclasses import dataclass

import numpy as np
import pandas as pd

#: Cases shown per group (best, median, worst).
CASES_PER_GROUP = 3
GROUPS = ("best", "median", "worst")


@dataclass(frozen=True)
class RankedCase:
    """A case with its Dice (the mean over the evaluated classes, NaN classes left out)."""

    case_id: str
    dice: float


def rank_by_dice(per_case: pd.DataFrame, split: str = "test") -> tuple[list[RankedCase], list[str]]:
    """The cases of ``split`` from the highest Dice to the lowest (ties by case id).

    Returns:
        The ranked cases, and the ids of the cases whose Dice is undefined in every class
        (empty reference and prediction); those cannot be ranked.
    """
    rows = per_case[per_case["split"] == split]
    if rows.empty or "dice" not in rows:
        return [], []
    dice = rows.groupby("case_id")["dice"].agg(
        lambda v: float(np.nanmean(v)) if np.isfinite(v).any() else float("nan")
    )
    unranked = sorted(str(c) for c, d in dice.items() if not np.isfinite(d))
    ranked = sorted(
        (RankedCase(str(c), float(d)) for c, d in dice.items() if np.isfinite(d)),
        key=lambda r: (-r.dice, r.case_id),
    )
    return ranked, unranked


def pick_cases(
    ranked: list[RankedCase], per_group: int = CASES_PER_GROUP
) -> dict[str, list[RankedCase]]:
    """Up to ``per_group`` best, median and worst cases, no case in two groups.

    With fewer than ``3 * per_group`` cases the groups shrink evenly (three cases: one each;
    two cases: a best and a worst; one: a best).
    """
    n = len(ranked)
    k = max(1, min(per_group, n // 3)) if n else 0
    best = ranked[:k]
    worst = ranked[max(k, n - k) :]
    rest = ranked[k : max(k, n - k)]
    start = max(0, (len(rest) - k) // 2)
    median = rest[start : start + k]
    return {"best": best, "median": median, "worst": worst}
