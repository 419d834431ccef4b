"""Overlays of the best, median and worst test images (by object-wise F1): the reference
boxes (thin, white) and the findings (each class's colour, with its score) on the image.

The images and reference boxes are read again from the data of config.yaml; when that is
gone, the report says so and shows everything else.
"""

from __future__ import annotations

from dataclasses import dataclass, field
from pathlib import Path

import numpy as np
import pandas as pd

from medlens.errors import MedlensError
from medlens.run_folder.detection import DetectionRun

GROUPS = ("best", "median", "worst")
PER_GROUP = 2


@dataclass
class Overlays:
    """Drawn overlays (group, image id, F1, PNG path) and notes on what could not be drawn."""

    items: list[tuple[str, str, float, Path]] = field(default_factory=list)
    notes: list[str] = field(default_factory=list)


def pick_images(images: pd.DataFrame, per_group: int = PER_GROUP) -> dict[str, list[str]]:
    """Test image ids with the highest, middle and lowest F1 (ties by image id), without
    repeats; images without reference objects and without findings are skipped."""
    test = images[(images["split"] == "test") & ((images["n_reference"] > 0) | (images["fp"] > 0))]
    ranked = test.assign(f1=test["f1"].fillna(0.0)).sort_values(
        ["f1", "image_id"], ascending=[False, True]
    )
    ids = list(ranked["image_id"])
    if not ids:
        return {g: [] for g in GROUPS}
    middle = max(0, len(ids) // 2 - per_group // 2)
    picks = {
        "best": ids[:per_group],
        "median": ids[middle : middle + per_group],
        "worst": ids[-per_group:][::-1],
    }
    seen: set[str] = set()
    out = {}
    for group in GROUPS:
        out[group] = [i for i in picks[group] if not (i in seen or seen.add(i))]  # type: ignore[func-returns-value]
    return out


def draw_overlays(run: DetectionRun, plots: Path) -> Overlays:
    """Draw the chosen test images into ``plots/overlay_<group>_<n>.png``."""
    from medlens.data.boxes import open_detection_source
    from medlens.data.boxes.overlay import render_boxes, write_png
    from medlens.data.readers import read_image
    from medlens.run_folder import layout

    result = Overlays()
    images = run.table(layout.DETECTION_IMAGES)
    detections = run.table(layout.DETECTIONS)
    if images is None or detections is None:
        result.notes.append("detection_images.csv or detections.csv was not recorded: no overlays.")
        return result
    data = run.section("data")
    try:
        source = open_detection_source(
            data.get("path", ""),
            data.get("layout", "auto"),
            run.class_names,
            skip_bad=True,
            path_column=data.get("path_column", "path"),
            label_column=data.get("label_column", "label"),
        )
    except MedlensError as exc:
        result.notes.append(f"The data could not be read again ({exc}); no overlays are drawn.")
        return result
    cases = {c.case_id: c for c in source.cases}
    index = {name: k for k, name in enumerate(run.class_names)}
    f1 = dict(zip(images["image_id"], images["f1"], strict=True))
    for group, ids in pick_images(images).items():
        for n, image_id in enumerate(ids, start=1):
            case = cases.get(image_id)
            if case is None:
                result.notes.append(f"{image_id} is no longer in the data; not drawn.")
                continue
            try:
                image = read_image(case.source)
            except MedlensError as exc:
                result.notes.append(f"{image_id} could not be read ({exc}); not drawn.")
                continue
            found = detections[
                (detections["split"] == "test")
                & (detections["image_id"] == image_id)
                & detections["finding"].astype(bool)
            ]
            boxes = found[["x1", "y1", "x2", "y2"]].to_numpy(dtype=float)
            labels = [index.get(c, 0) for c in found["class"]]
            captions = [f"{c} {s:.2f}" for c, s in zip(found["class"], found["score"], strict=True)]
            size = (int(image.spatial_shape[-2]), int(image.spatial_shape[-1]))
            reference = source.targets(case, size).boxes
            rgb = render_boxes(image.array, boxes, captions, labels, reference)
            path = write_png(plots / f"overlay_{group}_{n}.png", rgb)
            value = float(f1.get(image_id, np.nan))
            result.items.append((group, image_id, value, path))
    return result
