"""Detections of images on their own grid: preprocess (recording each step), run the
detector, and map boxes (and instance masks) back through the steps.

``medlens predict`` for detection runs (``detect_files``) writes ``detections.csv`` (one row
per detection: the image, class, score, box in the image's pixels, and whether it is a
finding at the class's threshold), ``detections.json`` (the same, with instance masks as
COCO RLE) and one overlay PNG per image with its findings.
"""

from __future__ import annotations

import json
from collections.abc import Sequence
from dataclasses import dataclass
from pathlib import Path
from typing import Any

import numpy as np
import pandas as pd
import torch

from medlens.data.image import Image
from medlens.errors import InputError
from medlens.io_utils import write_atomic
from medlens.metrics.detection.objects import DetectedObjects
from medlens.preprocess.boxes import Step, map_points_through, run_with_steps, unmap_boxes

CSV_NAME = "detections.csv"
JSON_NAME = "detections.json"
OVERLAYS = "overlays"


@dataclass(frozen=True)
class NetworkInput:
    """One image as the detector sees it, and how to map its outputs back.

    Attributes:
        image: the preprocessed image.
        steps: the preprocessing steps as they ran (``unmap_boxes``).
        size: ``(height, width)`` of the original image, in pixels.
        image_id: names it in tables and errors.
    """

    image: Image
    steps: list[Step]
    size: tuple[int, int]
    image_id: str


def network_input(image: Image, preprocess: Any, image_id: str = "") -> NetworkInput:
    """``image`` preprocessed for the detector, its steps recorded.

    Raises:
        InputError: a volume, or non-finite values after preprocessing.
    """
    if image.spatial_dims != 2:
        raise InputError(image.source or image_id, "detection takes 2D images, not volumes")
    out, steps = run_with_steps(preprocess, image)
    if not np.isfinite(out.array).all():
        raise InputError(image.source or image_id, "image holds NaN or infinite values")
    size = (int(image.spatial_shape[0]), int(image.spatial_shape[1]))
    return NetworkInput(out, steps, size, image_id or image.source)


def _masks_back(probabilities: np.ndarray, item: NetworkInput, threshold: float) -> np.ndarray:
    """``(N, h, w)`` mask probabilities on the network's grid as ``(N, H, W)`` boolean masks
    on the original image: each original pixel centre looked up through the steps."""
    from scipy import ndimage

    height, width = item.size
    rows, cols = np.mgrid[0:height, 0:width]
    centres = np.stack([rows.ravel() + 0.5, cols.ravel() + 0.5], axis=1)
    where = map_points_through(centres, item.steps) - 0.5  # voxel-centre coordinates
    out = np.zeros((len(probabilities), height, width), dtype=bool)
    for k, prob in enumerate(probabilities):
        sampled = ndimage.map_coordinates(prob, where.T, order=1, mode="constant", cval=0.0)
        out[k] = sampled.reshape(height, width) > threshold
    return out


@torch.no_grad()
def detect_inputs(
    model: Any,
    items: Sequence[NetworkInput],
    device: torch.device,
    mask_threshold: float = 0.5,
    batch_size: int = 4,
) -> list[DetectedObjects]:
    """The detections of each input on its original image (labels 0-based).

    Args:
        model: a ``Detector`` (put in eval mode here).
        items: preprocessed inputs (``network_input``).
        device: where the detector runs.
        mask_threshold: mask probability above which a pixel is in an instance mask.
        batch_size: images per forward pass.
    """
    model.eval()
    out: list[DetectedObjects] = []
    for start in range(0, len(items), batch_size):
        chunk = items[start : start + batch_size]
        tensors = [
            torch.from_numpy(np.ascontiguousarray(i.image.array, dtype=np.float32)).to(device)
            for i in chunk
        ]
        for item, raw in zip(chunk, model(tensors), strict=True):
            boxes = unmap_boxes(raw["boxes"].float().cpu().numpy(), item.steps)
            masks = None
            if "masks" in raw:
                probabilities = raw["masks"][:, 0].float().cpu().numpy()
                masks = _masks_back(probabilities, item, mask_threshold)
            out.append(
                DetectedObjects.of(
                    boxes,
                    raw["scores"].float().cpu().numpy(),
                    raw["labels"].cpu().numpy() - 1,
                    masks,
                    image_id=item.image_id,
                )
            )
    return out


def detection_rows(
    detections: DetectedObjects, class_names: Sequence[str], thresholds: Sequence[float]
) -> list[dict[str, Any]]:
    """One table row per detection: class, score, box (pixels), finding."""
    rows = []
    for box, score, label in zip(
        detections.boxes, detections.scores, detections.labels, strict=True
    ):
        rows.append(
            {
                "image_id": detections.image_id,
                "class": class_names[int(label)],
                "score": float(score),
                "x1": float(box[0]),
                "y1": float(box[1]),
                "x2": float(box[2]),
                "y2": float(box[3]),
                "finding": bool(score >= thresholds[int(label)]),
            }
        )
    return rows


def detection_entries(
    detections: DetectedObjects, class_names: Sequence[str], thresholds: Sequence[float]
) -> list[dict[str, Any]]:
    """The detections of one image for ``detections.json`` (masks as COCO RLE)."""
    from medlens.data.boxes.rle import encode_mask

    entries = []
    for k, row in enumerate(detection_rows(detections, class_names, thresholds)):
        entry = {
            "class": row["class"],
            "score": row["score"],
            "box": [row["x1"], row["y1"], row["x2"], row["y2"]],
            "finding": row["finding"],
        }
        if detections.masks is not None:
            entry["mask"] = encode_mask(detections.masks[k])
        entries.append(entry)
    return entries


def _overlay_name(out_dir: Path, image_id: str, used: set[str]) -> Path:
    stem = Path(image_id).name.split(".")[0] or "image"
    name, n = stem, 1
    while name in used:
        n += 1
        name = f"{stem}_{n}"
    used.add(name)
    return out_dir / OVERLAYS / f"{name}.png"


def detect_files(
    run_dir: Path,
    inputs: list[Path],
    out_dir: Path,
    skip_bad: bool = False,
    progress: bool = True,
) -> tuple[int, int]:
    """Detect objects in every input image; write ``detections.csv``, ``detections.json``
    and ``overlays/<image>.png`` (the findings drawn) into ``out_dir``.

    Args:
        run_dir: a finished detection run.
        inputs: images or folders of them.
        out_dir: the output folder (created).
        skip_bad: list unreadable inputs in the CSV (an ``error`` row) and go on.
        progress: show a progress bar.

    Returns:
        (images detected, inputs skipped).

    Raises:
        InputError: an unreadable input (without ``skip_bad``) or run folder.
    """
    from tqdm.auto import tqdm

    from medlens.data.boxes.overlay import render_boxes, write_png
    from medlens.inference.detection_run import load_detection_run
    from medlens.inference.discovery import iter_input_cases

    run = load_detection_run(run_dir)
    out_dir = Path(out_dir)
    cases = list(iter_input_cases(list(inputs), volumes=False))
    rows: list[dict[str, Any]] = []
    images: list[dict[str, Any]] = []
    used: set[str] = set()
    n_ok = n_bad = 0
    for case_id, file, load in tqdm(cases, desc="detect", disable=not progress or len(cases) < 2):
        try:
            image = load()
            item = network_input(image, run.preprocess, case_id)
            (found,) = detect_inputs(run.model, [item], run.device, run.mask_threshold)
        except InputError as exc:
            if not skip_bad:
                raise
            rows.append({"image_id": case_id, "path": str(file), "error": exc.reason})
            n_bad += 1
            continue
        overlay = _overlay_name(out_dir, case_id, used)
        findings = (
            found.scores >= np.asarray(run.thresholds)[found.labels] if len(found.labels) else []
        )
        write_png(
            overlay,
            render_boxes(
                image.array,
                found.boxes[findings],
                [
                    f"{run.class_names[k]} {s:.2f}"
                    for k, s in zip(found.labels[findings], found.scores[findings], strict=True)
                ],
                found.labels[findings],
            ),
        )
        for row in detection_rows(found, run.class_names, run.thresholds):
            rows.append({**row, "path": str(file), "error": ""})
        images.append(
            {
                "image_id": case_id,
                "path": str(file),
                "size": list(item.size),
                "overlay": str(overlay),
                "detections": detection_entries(found, run.class_names, run.thresholds),
            }
        )
        n_ok += 1
    columns = ["image_id", "path", "class", "score", "x1", "y1", "x2", "y2", "finding", "error"]
    write_atomic(out_dir / CSV_NAME, pd.DataFrame(rows, columns=columns).to_csv(index=False))
    document = {
        "run": str(run_dir),
        "class_names": run.class_names,
        "thresholds": dict(zip(run.class_names, run.thresholds, strict=True)),
        "images": images,
    }
    write_atomic(out_dir / JSON_NAME, json.dumps(document, indent=1) + "\n")
    return n_ok, n_bad
