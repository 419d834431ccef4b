"""How segmentation metrics read in report.html and model_card.md (one place, so they agree)."""

from __future__ import annotations

import math
from typing import Any

from medlens.report.formatting import MISSING

#: Reader-facing names, in the order the tables list them; unknown names are shown as they are.
SEGMENTATION_METRIC_LABELS = {
    "dice": "Dice",
    "jaccard": "Jaccard (IoU)",
    "precision": "Precision (PPV)",
    "sensitivity": "Sensitivity (recall)",
    "specificity": "Specificity",
    "pixel_auc": "Pixel ROC AUC",
    "hausdorff_distance": "Hausdorff distance",
    "hausdorff_distance_95": "Hausdorff distance, 95th percentile (HD95)",
    "average_symmetric_surface_distance": "Average symmetric surface distance (ASSD)",
    "normalized_surface_dice": "Normalised surface Dice (NSD)",
}

#: Metrics measured in ``distance_unit`` (mm, or px); lower is better for these.
DISTANCE_METRICS = {
    "hausdorff_distance",
    "hausdorff_distance_95",
    "average_symmetric_surface_distance",
}

#: Short column titles for the per-case table.
SHORT_LABELS = {
    "dice": "Dice",
    "jaccard": "IoU",
    "precision": "PPV",
    "sensitivity": "Sens.",
    "specificity": "Spec.",
    "pixel_auc": "AUC",
    "hausdorff_distance": "HD",
    "hausdorff_distance_95": "HD95",
    "average_symmetric_surface_distance": "ASSD",
    "normalized_surface_dice": "NSD",
    "pred_voxels": "pred. voxels",
    "ref_voxels": "ref. voxels",
}

INFINITY = "\u221e"

MILLIMETRE = "mm"
#: The unit of distances on images whose files carry no spacing (1.0 per axis assumed).
PIXEL = "px"


def distance_unit(metrics: dict[str, Any], physical_spacing: bool | None = None) -> str:
    """The unit of the run's distances (HD, HD95, ASSD, the NSD tolerance): ``"mm"`` or
    ``"px"``.

    Args:
        metrics: the run's metrics.json; its ``distance_unit`` says where the spacing of the
            scored images came from (``"px"``: assumed for at least one image).
        physical_spacing: whether the re-opened data carry a spacing in their files
            (``None``: unknown). ``False`` gives ``"px"`` whatever metrics.json says, since
            runs before medlens recorded the unit wrote ``"mm"`` for every image.
    """
    recorded = str(metrics.get("distance_unit") or MILLIMETRE)
    if physical_spacing is False or recorded != MILLIMETRE:
        return PIXEL
    return MILLIMETRE


def ordered_metrics(names: list[str]) -> list[str]:
    """``names`` in the order of ``SEGMENTATION_METRIC_LABELS``, unknown ones after."""
    known = [n for n in SEGMENTATION_METRIC_LABELS if n in names]
    return known + [n for n in names if n not in known]


def segmentation_metric_label(name: str, unit: str = "mm") -> str:
    """``"hausdorff_distance_95" -> "Hausdorff distance, 95th percentile (HD95), mm"``."""
    label = SEGMENTATION_METRIC_LABELS.get(name, name)
    return f"{label}, {unit}" if name in DISTANCE_METRICS else label


def digits_for(name: str) -> int:
    """Distances get two decimals (mm or px), ratios three."""
    return 2 if name in DISTANCE_METRICS else 3


def format_number(value: Any, digits: int = 3) -> str:
    """A per-case value: ``0.81234 -> "0.812"``, ``inf -> "∞"``, ``nan``/``None -> "NaN"``.

    NaN is written out (not a dash) because it is a result: the metric is undefined for that
    case, e.g. a surface distance when both masks are empty.
    """
    if value is None:
        return "NaN"
    number = float(value)
    if math.isnan(number):
        return "NaN"
    if math.isinf(number):
        return INFINITY if number > 0 else f"-{INFINITY}"
    return f"{number:.{digits}f}"


def format_summary(summary: dict[str, Any], digits: int = 3) -> dict[str, str]:
    """The cells of one metric's summary: mean ± sd, median, range, and the case counts.

    ``None`` statistics (no finite value) read as an em dash; the NaN and infinite counts are
    always shown, as numbers, so an undefined case is never hidden by the mean.
    """

    def number(key: str) -> str:
        value = summary.get(key)
        return (
            MISSING if value is None or not math.isfinite(float(value)) else f"{value:.{digits}f}"
        )

    mean, std = number("mean"), number("std")
    return {
        "mean_sd": MISSING if mean == MISSING else f"{mean} \u00b1 {std}",
        "median": number("median"),
        "range": MISSING if mean == MISSING else f"{number('min')}\u2013{number('max')}",
        "n": str(summary.get("n", MISSING)),
        "n_finite": str(summary.get("n_finite", MISSING)),
        "n_nan": str(summary.get("n_nan", MISSING)),
        "n_inf": str(summary.get("n_inf", MISSING)),
    }
