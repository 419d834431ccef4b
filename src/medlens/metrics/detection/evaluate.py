"""Every detection metric of a set of images, with percentile bootstrap CIs over images.

COCO AP (mAP@[.5:.95], AP@0.5, AP@0.75) and AR@100 per class and over classes, equal to
pycocotools on the same detections; FROC sensitivity at fixed false positives per image;
object-wise precision, recall and F1 at one IoU and each class's operating threshold; and
per-image count errors per class. With instance masks, the same AP from mask IoU. Images
are the resampling unit of the bootstrap: an image's objects stay together.
"""

from __future__ import annotations

from collections.abc import Callable, Sequence
from typing import Any

import numpy as np

from medlens.errors import ConfigError, InputError
from medlens.metrics.detection.average_precision import (
    RECALL_POINTS,
    average_precision,
    average_recall,
    class_curves,
    nanmean,
)
from medlens.metrics.detection.froc import DEFAULT_FPS, froc
from medlens.metrics.detection.matching import COCO_IOUS, ClassMatches, match_images
from medlens.metrics.detection.objects import DetectedObjects, ReferenceObjects
from medlens.metrics.detection.operating_point import class_operating, count_errors, pooled

Matches = list[list[ClassMatches]]
_AP50 = int(np.flatnonzero(np.isclose(COCO_IOUS, 0.5))[0])
_AP75 = int(np.flatnonzero(np.isclose(COCO_IOUS, 0.75))[0])


def _thresholds(match_iou: float) -> tuple[np.ndarray, int]:
    """COCO's IoU thresholds, with ``match_iou`` appended unless it is one of them, and the
    index of ``match_iou``."""
    close = np.flatnonzero(np.isclose(COCO_IOUS, match_iou))
    if close.size:
        return COCO_IOUS, int(close[0])
    return np.append(COCO_IOUS, match_iou), len(COCO_IOUS)


def ap_metrics(
    matches: Matches, num_classes: int, images: np.ndarray | None = None
) -> dict[str, Any]:
    """COCO AP / AR per class (``ap``, ``ap50``, ``ap75``, ``ar100``) and their means over the
    classes with reference objects (``map``, ``map50``, ``map75``, ``ar100``)."""
    n = len(COCO_IOUS)
    per_class = []
    for k in range(num_classes):
        curves = class_curves([m[k] for m in matches], n, images)
        curves = type(curves)(curves.precision[:n], curves.recall[:n], curves.n_reference)
        per_class.append(
            {
                "ap": average_precision(curves),
                "ap50": average_precision(curves, _AP50),
                "ap75": average_precision(curves, _AP75),
                "ar100": average_recall(curves),
            }
        )
    overall = {
        "map": nanmean([c["ap"] for c in per_class]),
        "map50": nanmean([c["ap50"] for c in per_class]),
        "map75": nanmean([c["ap75"] for c in per_class]),
        "ar100": nanmean([c["ar100"] for c in per_class]),
    }
    return {"overall": overall, "per_class": per_class}


def _scalars(
    box: Matches,
    mask: Matches | None,
    num_classes: int,
    thresholds: Sequence[float],
    match_index: int,
    fps: Sequence[float],
    images: np.ndarray | None,
) -> dict[str, float]:
    """Every scalar metric on one (re)sample of images, flat: ``map``, ``WBC/ap50``, ..."""
    out: dict[str, float] = {}
    aps = ap_metrics(box, num_classes, images)
    out.update(aps["overall"])
    for k, values in enumerate(aps["per_class"]):
        out.update({f"{k}/{name}": v for name, v in values.items()})
    if mask is not None:
        masks = ap_metrics(mask, num_classes, images)
        out.update({f"mask_{name}": v for name, v in masks["overall"].items()})
        for k, values in enumerate(masks["per_class"]):
            out.update({f"{k}/mask_{name}": v for name, v in values.items()})
    ops = [class_operating(box, k, thresholds[k], match_index, images) for k in range(num_classes)]
    for k, op in enumerate(ops):
        out.update({f"{k}/precision": op.precision, f"{k}/recall": op.recall, f"{k}/f1": op.f1})
    total = pooled(ops)
    out.update({"precision": total.precision, "recall": total.recall, "f1": total.f1})
    out["froc_mean_sensitivity"] = froc(
        box, range(num_classes), match_index, fps, images
    ).mean_sensitivity
    for k in range(num_classes):
        out[f"{k}/froc_mean_sensitivity"] = froc(
            box, [k], match_index, fps, images
        ).mean_sensitivity
        predicted, reference = _counts(box, k, thresholds[k], images)
        errors = count_errors(predicted, reference)
        out[f"{k}/count_mae"], out[f"{k}/count_bias"] = errors["mae"], errors["bias"]
    return out


def _counts(
    matches: Matches, k: int, threshold: float, images: np.ndarray | None = None
) -> tuple[np.ndarray, np.ndarray]:
    order = np.arange(len(matches)) if images is None else np.asarray(images)
    predicted = np.array([int((matches[i][k].scores >= threshold).sum()) for i in order])
    reference = np.array([matches[i][k].n_reference for i in order])
    return predicted, reference


def _bootstrap(
    compute: Callable[[np.ndarray | None], dict[str, float]],
    n_images: int,
    n_bootstrap: int,
    level: float,
    seed: int,
) -> dict[str, tuple[float, float]]:
    """Percentile intervals of every value of ``compute`` over image resamples."""
    if n_bootstrap == 0 or n_images == 0:
        return {}
    rng = np.random.default_rng(seed)
    draws: dict[str, list[float]] = {}
    for _ in range(n_bootstrap):
        for name, value in compute(rng.integers(0, n_images, size=n_images)).items():
            draws.setdefault(name, []).append(value)
    tails = [100.0 * (1.0 - level) / 2.0, 100.0 * (1.0 + level) / 2.0]
    out = {}
    for name, values in draws.items():
        finite = np.asarray(values)[np.isfinite(values)]
        out[name] = (
            tuple(float(v) for v in np.percentile(finite, tails))
            if finite.size
            else (float("nan"), float("nan"))
        )
    return out  # type: ignore[return-value]


def _entry(name: str, values: dict[str, float], ci: dict[str, tuple[float, float]]) -> dict:
    low, high = ci.get(name, (float("nan"), float("nan")))
    return {"value": values[name], "ci_low": low, "ci_high": high}


def evaluate_detections(
    detections: Sequence[DetectedObjects],
    references: Sequence[ReferenceObjects],
    class_names: Sequence[str],
    thresholds: Sequence[float] | None = None,
    match_iou: float = 0.5,
    froc_fps: Sequence[float] = DEFAULT_FPS,
    max_detections: int = 100,
    masks: bool = False,
    n_bootstrap: int = 1000,
    ci_level: float = 0.95,
    seed: int = 0,
) -> dict[str, Any]:
    """Score detections against reference objects, image by image.

    Args:
        detections: one entry per image (an image without detections has an empty one).
        references: the same images' reference objects (an image without objects counts:
            its detections are false positives).
        class_names: names of the class indices.
        thresholds: each class's operating threshold (score) for F1 and counts; None: 0.5.
        match_iou: the IoU at which a finding matches for F1, FROC and counts.
        froc_fps: false positives per image at which FROC sensitivity is read.
        max_detections: the best-scoring detections per image and class that count (COCO: 100).
        masks: also score the instance masks (mask AP); both sides need masks.
        n_bootstrap: image resamples for the CIs (0: none).
        ci_level: coverage of the intervals.
        seed: seed of the resampling.

    Returns:
        ``{"n_images", "metrics": {name: {value, ci_low, ci_high}}, "per_class": {class:
        {name: {...}, "n_reference", "n_findings", "threshold"}}, "froc": {...}, "curves":
        {...}, "counts": [{image_id, class, reference, predicted}]}``; NaN where a metric is
        undefined (no reference object of a class).

    Raises:
        InputError: the two lists differ in length, a label outside the classes, or masks
            asked for and missing.
        ConfigError: a bad ``ci_level`` or ``thresholds`` of the wrong length.
    """
    if len(detections) != len(references):
        raise InputError(
            "detections", f"{len(detections)} images of detections for {len(references)} references"
        )
    if not 0.0 < ci_level < 1.0:
        raise ConfigError("evaluate.ci_level", f"must lie in (0, 1), got {ci_level}")
    num_classes = len(class_names)
    thresholds = [0.5] * num_classes if thresholds is None else [float(t) for t in thresholds]
    if len(thresholds) != num_classes:
        raise ConfigError("thresholds", f"{len(thresholds)} thresholds for {num_classes} classes")
    for d, r in zip(detections, references, strict=True):
        for what, labels in (("detection", d.labels), ("reference", r.labels)):
            if labels.size and (labels.min() < 0 or labels.max() >= num_classes):
                raise InputError(
                    r.image_id or d.image_id, f"a {what} label is outside 0..{num_classes - 1}"
                )
        if masks and (d.masks is None or r.masks is None):
            raise InputError(r.image_id or d.image_id, "mask AP needs instance masks on both sides")
    ious, match_index = _thresholds(match_iou)
    box = match_images(detections, references, num_classes, ious, max_detections)
    mask = (
        match_images(detections, references, num_classes, ious, max_detections, True)
        if masks
        else None
    )

    def compute(images: np.ndarray | None) -> dict[str, float]:
        return _scalars(box, mask, num_classes, thresholds, match_index, froc_fps, images)

    values = compute(None)
    ci = _bootstrap(compute, len(references), n_bootstrap, ci_level, seed)
    overall = [n for n in values if "/" not in n]
    per_class: dict[str, Any] = {}
    count_rows = []
    for k, name in enumerate(class_names):
        entry: dict[str, Any] = {
            key.split("/", 1)[1]: _entry(key, values, ci)
            for key in values
            if key.startswith(f"{k}/")
        }
        predicted, reference = _counts(box, k, thresholds[k])
        entry["n_reference"] = int(reference.sum())
        entry["n_findings"] = int(predicted.sum())
        entry["threshold"] = thresholds[k]
        entry["count"] = count_errors(predicted, reference)
        per_class[name] = entry
        count_rows += [
            {
                "image_id": r.image_id,
                "class": name,
                "reference": int(n_ref),
                "predicted": int(n_pred),
            }
            for r, n_ref, n_pred in zip(references, reference, predicted, strict=True)
        ]
    curve = froc(box, range(num_classes), match_index, froc_fps)
    per_class_froc = {
        name: list(froc(box, [k], match_index, froc_fps).sensitivity_at)
        for k, name in enumerate(class_names)
    }
    n = len(COCO_IOUS)
    pr = {
        name: class_curves([m[k] for m in box], n).precision[_AP50].tolist()
        for k, name in enumerate(class_names)
    }
    return {
        "n_images": len(references),
        "match_iou": match_iou,
        "ci_level": ci_level,
        "n_bootstrap": n_bootstrap,
        "metrics": {name: _entry(name, values, ci) for name in overall},
        "per_class": per_class,
        "froc": {
            "fps_per_image": list(curve.at),
            "sensitivity": list(curve.sensitivity_at),
            "per_class": per_class_froc,
            "curve": {
                "fps_per_image": curve.fps_per_image.tolist(),
                "sensitivity": curve.sensitivity.tolist(),
            },
        },
        "curves": {"recall": RECALL_POINTS.tolist(), "precision_at_iou50": pr},
        "counts": count_rows,
    }
