"""The plots/ folder of a segmentation run: learning curves, per-case spread, and overlays of
the best, median and worst test cases.

A figure that cannot be drawn (data folder gone, masks not saved, a file that no longer
reads) does not stop the others; each such gap becomes one sentence in ``notes``.
"""

from __future__ import annotations

from dataclasses import dataclass, field
from pathlib import Path

import pandas as pd

from medlens.errors import MedlensError
from medlens.report.figures import RunFigure
from medlens.report.plots import plot_learning_curves
from medlens.report.segmentation.cases import GROUPS, RankedCase, pick_cases, rank_by_dice
from medlens.report.segmentation.data import (
    DataFacts,
    RunData,
    data_facts,
    load_case_arrays,
    open_run_data,
)
from medlens.report.segmentation.formatting import distance_unit, format_number
from medlens.report.segmentation.overlays import plot_segmentation_overlay
from medlens.report.segmentation.plots import plot_case_distribution
from medlens.run_folder.segmentation import SegmentationRun


@dataclass(frozen=True)
class CaseOverlay:
    """The overlay of one shown test case."""

    group: str  # best | median | worst
    case_id: str
    dice: float
    path: Path


@dataclass
class SegmentationFigures:
    """Every figure written for the report, and a sentence for each one that could not be."""

    curves: RunFigure | None = None
    distribution: RunFigure | None = None
    overlays: list[CaseOverlay] = field(default_factory=list)
    shown: dict[str, list[RankedCase]] = field(default_factory=dict)
    facts: DataFacts = field(default_factory=lambda: DataFacts(None, None))
    notes: list[str] = field(default_factory=list)


def _safe_name(case_id: str) -> str:
    return "".join(ch if ch.isalnum() or ch in "-_." else "_" for ch in case_id)


def _overlays_unavailable(run: SegmentationRun) -> str | None:
    save_masks = run.section("segmentation").get("save_masks")
    if save_masks == "none":
        return (
            "Predicted masks were not saved (segmentation.save_masks: none), so no overlays "
            "could be drawn."
        )
    if not (run.path / "masks").is_dir():
        return "The run folder holds no masks/ folder, so no overlays could be drawn."
    return None


def _draw_overlays(
    run: SegmentationRun,
    data: RunData,
    shown: dict[str, list[RankedCase]],
    out: SegmentationFigures,
) -> None:
    for group in GROUPS:
        for ranked in shown[group]:
            arrays = load_case_arrays(run, data, ranked.case_id)
            if isinstance(arrays, str):
                out.notes.append(f"No overlay for the {group} case {ranked.case_id}: {arrays}")
                continue
            path = run.path / "plots" / f"overlay_{group}_{_safe_name(ranked.case_id)}.png"
            title = f"{ranked.case_id}: Dice {format_number(ranked.dice)} ({group})"
            try:
                plot_segmentation_overlay(
                    arrays.image, arrays.reference, arrays.prediction, path, arrays.spacing, title
                )
            except MedlensError as exc:
                out.notes.append(f"No overlay for the {group} case {ranked.case_id}: {exc}.")
                continue
            out.overlays.append(CaseOverlay(group, ranked.case_id, ranked.dice, path))


def write_segmentation_figures(
    run: SegmentationRun, per_case: pd.DataFrame | None, history: pd.DataFrame | None
) -> SegmentationFigures:
    """Write ``plots/learning_curves.png``, ``plots/case_distribution.png`` and
    ``plots/overlay_<group>_<case>.png`` for the best, median and worst test cases by Dice.

    Returns:
        The written figures, the cases shown, what the data say about the field of view and
        the spacing, and one note per figure that could not be drawn.
    """
    out = SegmentationFigures()
    plots = run.path / "plots"
    if history is not None and not history.empty:
        path = plot_learning_curves(
            history, plots / "learning_curves.png", best_epoch=run.metrics.get("best_epoch")
        )
        out.curves = RunFigure(None, "learning_curves", "Learning curves", path)
    else:
        out.notes.append("history.csv was not recorded, so there are no learning curves.")
    if per_case is None or per_case.empty:
        out.notes.append(
            "segmentation_metrics.csv was not recorded, so there is no per-case table, spread "
            "or overlay."
        )
        return out
    ranked, unranked = rank_by_dice(per_case, "test")
    data = open_run_data(run)
    out.facts = data_facts(data, ranked[0].case_id if ranked else None)
    splits = [s for s in run.split_names() if (per_case["split"] == s).any()]
    classes = [c for c in run.class_names if (per_case["class"] == c).any()]
    unit = distance_unit(run.metrics, out.facts.physical_spacing)
    title = "Per-case Dice and HD95 (each dot is one case)"
    path = plot_case_distribution(
        per_case, plots / "case_distribution.png", splits, classes, unit, title
    )
    out.distribution = RunFigure(None, "case_distribution", title, path)
    if unranked:
        out.notes.append(
            f"{len(unranked)} test case(s) have no defined Dice (empty reference and prediction) "
            f"and are not ranked: {', '.join(unranked)}."
        )
    out.shown = pick_cases(ranked)
    if not ranked:
        out.notes.append("The test split has no ranked case, so there are no overlays.")
        return out
    unavailable = _overlays_unavailable(run) or data.note
    if unavailable is not None:
        out.notes.append(unavailable)
        return out
    _draw_overlays(run, data, out.shown, out)
    return out
