"""The detect stage: the box of the one object of interest in each image (a white cell, an
organ), from detectors cross-fitted like the segment stage's networks.

The detectors train on ``images/`` + ``masks/`` (the union of the stage's regions, one object
per image) in ``stages/<name>/data``, each with the data's k-fold split (``data.folds`` of the
network's run): network ``j`` holds out fold ``j`` as its test split and finds the boxes of
those cases for later stages. Test and new cases get the score-weighted mean of every
network's top box. ``crossfit.json`` records who trained on what.
"""

from __future__ import annotations

import csv
import os
from pathlib import Path
from typing import Any

import numpy as np

from medlens.errors import InputError
from medlens.io_utils import write_json_atomic
from medlens.pipeline.cells import CellCase
from medlens.pipeline.config import DetectStage
from medlens.pipeline.context import StageContext, child_config, train_child, write_png
from medlens.pipeline.stages.crop import region_box
from medlens.run_folder.files import read_json

CROSSFIT = "crossfit.json"
Box = tuple[float, float, float, float] | None


def _object_labels(ctx: StageContext, stage: DetectStage) -> list[int]:
    names = stage.regions or ctx.cells.regions
    return [ctx.cells.region_label(r, f"stages.{stage.name}.regions") for r in names]


def reference_boxes(ctx: StageContext, stage: DetectStage, cases: list[CellCase]) -> dict[str, Box]:
    """The box ``(y0, x0, y1, x1)`` of the stage's regions in each case's reference mask."""
    values = _object_labels(ctx, stage)
    return {c.case_id: region_box(ctx.regions(c), values) for c in cases}


def _materialise(
    ctx: StageContext, stage: DetectStage, cases: list[CellCase], folder: Path
) -> None:
    values = _object_labels(ctx, stage)
    (folder / "images").mkdir(parents=True, exist_ok=True)
    rows = []
    for case in cases:
        link = folder / "images" / f"{case.case_id}{case.image.suffix}"
        if not link.exists():
            os.symlink(case.image.resolve(), link)
        mask = _one_object(np.isin(ctx.regions(case), values))
        if not mask.any():
            raise InputError(case.mask or case.image, "the mask holds none of the stage's regions")
        write_png(mask, folder / "masks" / f"{case.case_id}.png")
        rows.append({"path": link.name, "label": stage.object})
    with open(folder / "labels.csv", "w", newline="", encoding="utf-8") as handle:
        writer = csv.DictWriter(handle, fieldnames=["path", "label"])
        writer.writeheader()
        writer.writerows(rows)


def _one_object(mask: np.ndarray) -> np.ndarray:
    """The largest 8-connected component of ``mask`` as 0/255: the layout splits a binary
    mask into its components, and the stage looks for one object per image."""
    from skimage.measure import label

    components = label(mask, connectivity=2)
    if components.max() > 1:
        sizes = np.bincount(components.ravel())
        sizes[0] = 0
        mask = components == int(sizes.argmax())
    return mask.astype(np.uint8) * 255


def _held_out(run_dir: Path) -> list[str]:
    """The image stems of a detection run's test split (``detection_images.csv``)."""
    path = run_dir / "detection_images.csv"
    with open(path, newline="", encoding="utf-8") as handle:
        return [Path(r["path"]).stem for r in csv.DictReader(handle) if r["split"] == "test"]


def fit_detect(ctx: StageContext, stage: DetectStage, cases: list[CellCase]) -> dict[str, Box]:
    """Train the stage's detectors on ``cases``; return their cross-fitted boxes."""
    if stage.source == "ground_truth":
        return reference_boxes(ctx, stage, cases)
    folder = ctx.stage_dir(stage.name)
    if stage.from_run is not None:  # trained outside: used as it is, not cross-fitted
        used: dict[str, Any] = {"networks": [{"run": str(stage.from_run.resolve()), "trained_on": None,
                                "predicted": [c.case_id for c in cases]}]}  # fmt: skip
        write_json_atomic(folder / CROSSFIT, used)
        network = _load(stage.from_run)
        return {c.case_id: _mean_top_box([network], ctx.image(c)) for c in cases}
    data_dir = folder / "data"
    _materialise(ctx, stage, cases, data_dir)
    by_id = {c.case_id: c for c in cases}
    k = min(stage.crossfit_folds, len(cases))
    boxes: dict[str, Box] = {}
    record: dict[str, Any] = {"networks": []}
    for j in range(k):
        config = child_config(
            stage.name, stage.run, "detection",
            {"format": "boxes", "layout": "instance_masks", "path": str(data_dir), "folds": k,
             "fold": j, "val_fraction": ctx.data.val_fraction},
            f"crossfit{j}", folder, ctx.seed + j,
        )  # fmt: skip
        run_dir = train_child(ctx, config)
        held = _held_out(run_dir)
        network = _load(run_dir)
        for case_id in held:
            boxes[case_id] = _mean_top_box([network], ctx.image(by_id[case_id]))
        record["networks"].append(
            {
                "run": run_dir.name,
                "trained_on": sorted(set(by_id) - set(held)),
                "predicted": held,
            }
        )
    missing = sorted(set(by_id) - set(boxes))
    if missing:
        raise InputError(data_dir, f"no detector held out the cases {', '.join(missing[:5])}")
    write_json_atomic(folder / CROSSFIT, record)
    return boxes


def detect_cases(ctx: StageContext, stage: DetectStage, cases: list[CellCase]) -> dict[str, Box]:
    """Boxes of new cases: the score-weighted mean of every network's top box."""
    folder = ctx.run_dir / "stages" / stage.name
    record = read_json(folder / CROSSFIT, required=True)
    networks = [_load(folder / entry["run"]) for entry in record["networks"]]
    return {c.case_id: _mean_top_box(networks, ctx.image(c)) for c in cases}


def _load(run_dir: Path) -> Any:
    from medlens.inference.detection_run import load_detection_run

    if not run_dir.is_dir():
        raise InputError(run_dir, "the detector's run folder is missing")
    return load_detection_run(run_dir)


def _mean_top_box(networks: list[Any], image: Any) -> Box:
    """``(y0, x0, y1, x1)``: the score-weighted mean of each network's highest-scoring box,
    or None when no network found anything."""
    from medlens.inference.detect import detect_inputs, network_input

    found: list[tuple[float, np.ndarray]] = []
    for net in networks:
        item = network_input(image, net.preprocess)
        objects = detect_inputs(net.model, [item], net.device, net.mask_threshold)[0]
        if len(objects.scores):
            top = int(np.argmax(objects.scores))
            found.append((float(objects.scores[top]), objects.boxes[top]))
    if not found:
        return None
    weights = np.array([s for s, _ in found])
    x0, y0, x1, y1 = (np.array([b for _, b in found]) * weights[:, None]).sum(0) / weights.sum()
    height, width = image.spatial_shape
    y0, x0 = max(0.0, float(y0)), max(0.0, float(x0))  # a detector's box may overhang by a
    y1, x1 = min(float(height), float(y1)), min(float(width), float(x1))  # fraction of a pixel
    return (y0, x0, y1, x1) if y1 > y0 and x1 > x0 else None
