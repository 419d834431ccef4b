"""The calibration part of a segmentation run's report.html and model_card.md, read from
``metrics.json``'s ``trust.calibration`` (what ``medlens.train.segmentation.calibration``
records): the method and temperature, the voxels it was fitted on, and the voxel ECE and
Brier score before and after, per split.

A run from before calibration existed records no ``trust`` and gets no calibration part. No
reliability diagram is drawn: the run folder keeps no voxel probabilities.
"""

from __future__ import annotations

from dataclasses import dataclass, field
from typing import Any

from medlens.metrics.calibration import N_BINS
from medlens.report.figures import SPLIT_TITLES
from medlens.report.formatting import MISSING, format_value
from medlens.report.markdown import escape_markdown, markdown_table
from medlens.run_folder.segmentation import SegmentationRun

#: Decimals of ECE and Brier (as the classification report); the temperature gets three.
DIGITS = 4
_SPLIT_ORDER = {"val": 0, "test": 1}


@dataclass(frozen=True)
class CalibrationRow:
    """One split of the table: its title and the formatted cells after the split."""

    split: str
    is_test: bool
    cells: list[str]


@dataclass(frozen=True)
class SegmentationCalibration:
    """What both documents say about the voxel calibration of a run.

    Attributes:
        off: ``calibration.method: none``.
        sentences: what was fitted, on what, and what it changes, one sentence each.
        definitions: (term, definition with its unit) for each column's measure.
        columns: the table's header, ``Split`` first.
    """

    off: bool
    sentences: list[str]
    definitions: list[tuple[str, str]]
    columns: list[str]
    rows: list[CalibrationRow] = field(default_factory=list)


def _where(run: SegmentationRun) -> str:
    """Where in each image the voxels were drawn, from data_summary.json's field of view."""
    field_of_view = (run.data_summary or {}).get("field_of_view")
    if field_of_view is True:
        return "inside each image's field of view"
    if field_of_view is False:
        return "anywhere in the image (the data give no field of view)"
    return "inside the field of view where the data give one"


def _fitted_on(run: SegmentationRun, record: dict[str, Any], off: bool) -> str:
    seed = run.config.get("seed", MISSING)
    if off:
        return (
            f"The table measures them on a seeded sample (seed {seed}) of each split's voxels, "
            f"drawn {_where(run)}."
        )
    voxels = (record.get("voxels") or {}).get("val")
    images = ((run.data_summary or {}).get("splits") or {}).get("val", {}).get("n")
    count = MISSING if voxels is None else f"{int(voxels):,}"
    source = "" if images is None else f" of {images} image{'s' if images != 1 else ''}"
    return (
        f"It was fitted on a seeded sample (seed {seed}) of {count} validation voxels{source}, "
        f"drawn {_where(run)}; the test split played no part in it."
    )


def _direction(temperature: Any) -> str:
    """What the temperature does to the network's probabilities, as a clause."""
    if temperature is None or float(temperature) == 1.0:
        return ""
    if float(temperature) < 1.0:
        return "; below 1, it sharpens the network's probabilities (they were under-confident)"
    return "; above 1, it softens the network's probabilities (they were over-confident)"


def _method(run: SegmentationRun, record: dict[str, Any]) -> list[str]:
    method = record.get("method", "none")
    if method == "none":
        return [
            "Calibration is off (calibration.method: none): the voxel probabilities are the "
            "network's own, and the uncertainty maps of medlens predict --uncertainty read them "
            "as they are."
        ]
    if method != "temperature":
        return [f"The voxel probabilities are calibrated by {method}."]
    temperature = record.get("temperature")
    sentences = [
        f"The voxel probabilities are calibrated by temperature scaling, T = "
        f"{format_value(temperature)}: one temperature for every voxel and class, p becomes "
        f"softmax(log p / T){_direction(temperature)}."
    ]
    if run.section("segmentation").get("tta_flip"):
        sentences.append(
            "With flip test-time augmentation T was fitted on flip-averaged probabilities, while "
            "medlens predict --uncertainty applies it to each view before averaging, which "
            "leaves those views a little too sharp (see docs/uncertainty.md)."
        )
    return sentences


def _definitions(run: SegmentationRun, top_label: bool, off: bool) -> list[tuple[str, str]]:
    names = run.class_names
    if len(names) == 2:
        p = f"p({names[1]})"
        ece = (
            f"expected calibration error of {p}, no unit, from 0 (calibrated) to 1: the voxels "
            f"are put in {N_BINS} equal-width bins of {p}, and ECE is the voxel-weighted mean "
            f"over the bins of the gap between the mean {p} and the share of {names[1]} voxels "
            "in the bin."
        )
        brier = (
            f"no unit, from 0 to 1, lower is better: the mean over voxels of ({p} \u2212 y)\u00b2, "
            f"y = 1 for a {names[1]} voxel and 0 otherwise."
        )
    else:
        ece = (
            "expected calibration error of the most probable class (top-label), no unit, from "
            f"0 (calibrated) to 1: the voxels are put in {N_BINS} equal-width bins of their "
            "most probable class's probability, and ECE is the voxel-weighted mean over the "
            "bins of the gap between that mean probability and the share of voxels whose most "
            "probable class is right."
        )
        brier = (
            "no unit, from 0 to 2, lower is better: the mean over voxels of the squared "
            "differences between the class probabilities and the reference class (one-hot), "
            "summed over the classes."
        )
    definitions = [("ECE", ece), ("Brier score", brier)]
    if top_label:
        definitions.append(
            (
                "Top-label ECE",
                f"the same {N_BINS} bins over the probability of each voxel's most probable "
                f"class ({' or '.join(names)}) against whether that class is right.",
            )
        )
    voxels = "the sampled voxels each row is measured on"
    if not off:
        voxels += (
            "; the validation voxels are the ones the temperature was fitted on, so the test "
            "row is the held-out check"
        )
    definitions.append(("Voxels", voxels + "."))
    return definitions


def _rows(splits: dict[str, Any], keys: list[str], voxels: dict[str, Any]) -> list[CalibrationRow]:
    rows = []
    for split in sorted(splits, key=lambda s: _SPLIT_ORDER.get(s, 2)):
        values = splits[split] if isinstance(splits[split], dict) else {}
        count = voxels.get(split)
        rows.append(
            CalibrationRow(
                SPLIT_TITLES.get(split, split).capitalize(),
                split == "test",
                [MISSING if count is None else f"{int(count):,}"]
                + [format_value(values.get(key), DIGITS) for key in keys],
            )
        )
    return rows


def segmentation_calibration(run: SegmentationRun) -> SegmentationCalibration | None:
    """The calibration part of ``run``'s documents, or ``None`` for a run whose metrics.json
    records no ``trust.calibration`` (one from before calibration existed)."""
    trust = run.metrics.get("trust")
    record = trust.get("calibration") if isinstance(trust, dict) else None
    if not isinstance(record, dict):
        return None
    off = record.get("method", "none") == "none"
    recorded = record.get("splits")
    splits: dict[str, Any] = recorded if isinstance(recorded, dict) else {}
    top_label = len(run.class_names) == 2 and any(
        isinstance(v, dict) and "ece_top_label_before" in v for v in splits.values()
    )
    measures = [("ECE", "ece"), ("Brier", "brier")]
    if top_label:
        measures.append(("Top-label ECE", "ece_top_label"))
    stages = [("", "_before")] if off else [(" before", "_before"), (" after", "_after")]
    columns = ["Split", "Voxels"] + [f"{m}{s}" for m, _ in measures for s, _ in stages]
    keys = [f"{k}{suffix}" for _, k in measures for _, suffix in stages]
    sentences = [*_method(run, record), _fitted_on(run, record, off)]
    if not off:
        sentences.append(
            "Calibration changes no mask and no segmentation metric: masks are made from the "
            "network's own probabilities. The calibrated probabilities feed the uncertainty "
            "maps of medlens predict --uncertainty."
        )
    return SegmentationCalibration(
        off=off,
        sentences=sentences,
        definitions=_definitions(run, top_label, off),
        columns=columns,
        rows=_rows(splits, keys, record.get("voxels") or {}),
    )


def calibration_markdown(run: SegmentationRun) -> list[str]:
    """The model card's ``## Calibration`` section, or no lines for a run without one."""
    part = segmentation_calibration(run)
    if part is None:
        return []
    lines = ["## Calibration", "", " ".join(escape_markdown(s) for s in part.sentences), ""]
    lines += markdown_table(part.columns, [[r.split, *r.cells] for r in part.rows])
    lines += [""] + [
        f"- {escape_markdown(term)}: {escape_markdown(text)}" for term, text in part.definitions
    ]
    return lines
