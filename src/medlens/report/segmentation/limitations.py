"""The limitations a reader of a segmentation run must know, worked out from its own numbers."""

from __future__ import annotations

from medlens.report.segmentation.data import DataFacts
from medlens.report.segmentation.formatting import (
    PIXEL,
    SEGMENTATION_METRIC_LABELS,
    distance_unit,
)
from medlens.run_folder.segmentation import SegmentationRun

#: Fewer test cases than this make a mean over cases an unstable estimate.
SMALL_TEST_SPLIT = 30


def _split_size(run: SegmentationRun, split: str) -> int | None:
    """Cases of ``split``: data_summary.json, else the ``n`` of the test metric summaries."""
    recorded = ((run.data_summary or {}).get("splits") or {}).get(split, {}).get("n")
    if recorded is not None:
        return int(recorded)
    per_class = run.metrics["splits"].get(split) or {}
    counts = [s.get("n") for metrics in per_class.values() for s in metrics.values()]
    return max((int(c) for c in counts if c is not None), default=None)


def _undefined(run: SegmentationRun, split: str) -> list[str]:
    notes = []
    for class_name, metrics in (run.metrics["splits"].get(split) or {}).items():
        for metric, summary in metrics.items():
            nan, inf = int(summary.get("n_nan") or 0), int(summary.get("n_inf") or 0)
            if nan or inf:
                label = SEGMENTATION_METRIC_LABELS.get(metric, metric)
                notes.append(f"{label} of {class_name}: {nan} NaN, {inf} infinite")
    return notes


def _field_of_view(facts: DataFacts) -> str:
    if facts.field_of_view is True:
        return (
            "Metrics were computed inside the field of view only: pixels outside it were not "
            "counted, so the numbers are not comparable with ones computed on the whole image."
        )
    if facts.field_of_view is False:
        return (
            "No field of view was given: metrics count the whole image, so specificity is "
            "dominated by the easy background."
        )
    return "Whether the metrics were restricted to a field of view could not be checked (the data are not available)."


def segmentation_limitations(run: SegmentationRun, facts: DataFacts) -> list[str]:
    """Plain-language limitations of a segmentation run, most important first.

    Args:
        facts: what the re-opened data say about the field of view and the pixel spacing.
    """
    notes = [
        "Research use only: this model is not a medical device and was not validated for "
        "clinical decisions.",
    ]
    train, test = _split_size(run, "train"), _split_size(run, "test")
    if train is not None:
        notes.append(f"The model was trained on {train} images.")
    if test is None:
        notes.append("No test split was evaluated: the reported numbers are validation numbers.")
    else:
        text = f"The test split holds {test} images"
        if test < SMALL_TEST_SPLIT:
            text += "; a mean over so few cases is uncertain, read it with the per-case spread"
        notes.append(text + ".")
    notes.append(_field_of_view(facts))
    if distance_unit(run.metrics, facts.physical_spacing) == PIXEL:
        notes.append(
            "The images carry no pixel spacing in their files (1.0 per axis was assumed): "
            "HD, HD95, ASSD and the surface Dice tolerance are in pixels (px), not mm, and "
            "cannot be compared with distances measured in mm."
        )
    undefined = _undefined(run, "test")
    if undefined:
        notes.append(
            "Some test metrics are undefined for some cases (an empty reference or prediction): "
            + "; ".join(undefined)
            + ". Means and medians leave these cases out; the counts are in the tables."
        )
    post = run.section("segmentation").get("postprocess") or {}
    if post:
        what = (
            f"The probability threshold ({post.get('threshold')}) and the post-processing were"
            if len(run.class_names) <= 2
            else "The post-processing was"
        )
        notes.append(f"{what} set in the config, not tuned on the test split.")
    source = (run.data_summary or {}).get("source") or run.section("data").get("path")
    notes.append(
        f"All images come from one source{f' ({source})' if source else ''}. Performance on "
        "other sites, devices, acquisition protocols and populations is unknown."
    )
    notes.append(
        "No subgroup (fairness) audit was run: performance may differ between patient groups."
    )
    return notes
