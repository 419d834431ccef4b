"""After training: each class's operating threshold chosen on validation, validation and
test scored once, and the run folder's detection files written."""

from __future__ import annotations

import json
from collections.abc import Sequence
from typing import Any

import numpy as np

from medlens.config import RunConfig
from medlens.metrics.detection.objects import DetectedObjects
from medlens.train.detection.data import PreparedImage


def choose_thresholds(
    config: RunConfig,
    detections: Sequence[DetectedObjects],
    val: Sequence[PreparedImage],
    num_classes: int,
) -> list[float]:
    """Each class's operating threshold: the validation score of best object-wise F1 at
    ``detection.match_iou`` (``threshold: max_f1``), or ``detection.fixed_threshold``."""
    from medlens.metrics.detection import best_f1_threshold, match_images

    dcfg = config.detection
    if dcfg.threshold == "fixed":
        return [dcfg.fixed_threshold] * num_classes
    matches = match_images(
        detections, [p.reference for p in val], num_classes, [dcfg.match_iou], dcfg.max_detections
    )
    return [best_f1_threshold(matches, k) for k in range(num_classes)]


def score_split(
    config: RunConfig,
    detections: Sequence[DetectedObjects],
    images: Sequence[PreparedImage],
    class_names: Sequence[str],
    thresholds: Sequence[float],
    n_bootstrap: int,
    masks: bool,
) -> dict[str, Any]:
    """``evaluate_detections`` of one split with the run's settings."""
    from medlens.metrics.detection import evaluate_detections

    dcfg = config.detection
    return evaluate_detections(
        detections,
        [p.reference for p in images],
        class_names,
        thresholds,
        match_iou=dcfg.match_iou,
        froc_fps=dcfg.froc_fps,
        max_detections=dcfg.max_detections,
        masks=masks,
        n_bootstrap=n_bootstrap,
        ci_level=config.evaluate.ci_level,
        seed=config.seed,
    )


def image_rows(
    split: str,
    detections: Sequence[DetectedObjects],
    images: Sequence[PreparedImage],
    thresholds: Sequence[float],
    match_iou: float,
    max_detections: int,
) -> list[dict[str, Any]]:
    """One row per image: its file, reference objects and findings, and their object-wise
    TP / FP / FN and F1 at ``match_iou`` (the report picks its best, median and worst)."""
    from medlens.metrics.detection import match_images
    from medlens.metrics.detection.operating_point import class_operating, pooled

    num_classes = len(thresholds)
    matches = match_images(
        detections, [p.reference for p in images], num_classes, [match_iou], max_detections
    )
    rows = []
    for i, (p, found) in enumerate(zip(images, detections, strict=True)):
        ops = [
            class_operating(matches, k, thresholds[k], 0, np.array([i])) for k in range(num_classes)
        ]
        total = pooled(ops)
        rows.append(
            {
                "split": split,
                "image_id": p.case.case_id,
                "path": p.case.source,
                "n_reference": int((~p.reference.crowd).sum()),
                "n_findings": int((found.scores >= np.asarray(thresholds)[found.labels]).sum())
                if len(found.labels)
                else 0,
                "tp": total.tp,
                "fp": total.fp,
                "fn": total.fn,
                "f1": total.f1,
            }
        )
    return rows


def detection_table(
    split: str,
    detections: Sequence[DetectedObjects],
    class_names: Sequence[str],
    thresholds: Sequence[float],
) -> list[dict[str, Any]]:
    """``detections.csv`` rows of one split."""
    from medlens.inference.detect import detection_rows

    return [
        {"split": split, **row}
        for found in detections
        for row in detection_rows(found, class_names, thresholds)
    ]


def detection_document(
    per_split: dict[str, tuple[Sequence[DetectedObjects], Sequence[PreparedImage]]],
    class_names: Sequence[str],
    thresholds: Sequence[float],
) -> str:
    """``detections.json``: every validation and test image with its detections (and their
    instance masks as COCO RLE)."""
    from medlens.inference.detect import detection_entries

    images = []
    for split, (found, prepared) in per_split.items():
        for d, p in zip(found, prepared, strict=True):
            images.append(
                {
                    "image_id": p.case.case_id,
                    "split": split,
                    "path": p.case.source,
                    "size": list(p.item.size),
                    "detections": detection_entries(d, class_names, thresholds),
                }
            )
    document = {
        "class_names": list(class_names),
        "thresholds": dict(zip(class_names, thresholds, strict=True)),
        "images": images,
    }
    return json.dumps(document, indent=1) + "\n"
