"""What ``/v1/detect`` computes for one upload: the detector's boxes on the image's own
pixels, their classes and scores, and how many objects of each class it found. A plain
function, run in a worker thread.

Boxes are ``x1, y1, x2, y2`` in the uploaded image's pixels, with (0, 0) the top left corner
of the top left pixel and (width, height) the bottom right corner of the bottom right pixel
(the convention of DICOM's spatial coordinates), so a box always lies inside the image.
A detector that predicts instance masks (Mask R-CNN) also gives each detection its mask on
the same pixel grid, as COCO RLE (as in ``detections.json``).

Everything it needs is imported with this module (at start-up), not on the first request."""

from __future__ import annotations

import time
from collections.abc import Callable
from typing import Any

import numpy as np

from medlens.data.boxes.rle import encode_mask
from medlens.errors import InputError
from medlens.inference.detect import detect_inputs, network_input
from medlens.metrics.detection.objects import DetectedObjects
from medlens.serve.detection_model import ServedDetector
from medlens.serve.inputs import Upload, for_model_dims

Checkpoint = Callable[[], None]


def _no_checkpoint() -> None:
    return None


def listed(found: DetectedObjects, thresholds: list[float], min_score: float | None) -> np.ndarray:
    """Indices of the detections to list, by descending score: those scoring at least their
    class's threshold, or at least ``min_score`` when it is given."""
    if not len(found.scores):
        return np.zeros(0, dtype=int)
    if min_score is None:
        keep = found.scores >= np.asarray(thresholds, dtype=np.float64)[found.labels]
    else:
        keep = found.scores >= min_score
    indices = np.flatnonzero(keep)
    return indices[np.argsort(-found.scores[indices], kind="stable")]


def detection_answer(
    found: DetectedObjects,
    class_names: list[str],
    thresholds: list[float],
    min_score: float | None = None,
) -> dict[str, Any]:
    """The ``detections`` and ``counts`` of an answer.

    Each detection: ``class``, ``class_index`` (0-based, in ``class_names``), ``score``,
    ``x1, y1, x2, y2`` (pixels) and ``finding`` (its score reaches its class's threshold).
    When ``found`` has instance masks (a Mask R-CNN run), every detection also has ``mask``,
    its mask as compressed COCO RLE (``{"size": [height, width], "counts": str}``, on the
    uploaded image's pixel grid, as in ``detections.json``), and ``mask_area_px``, the
    number of pixels in it; a boxes-only detector's detections never have these two keys.
    ``counts``: class name -> number of detections listed, every class present (0 when none).
    """
    detections = []
    counts = dict.fromkeys(class_names, 0)
    for k in listed(found, thresholds, min_score):
        label = int(found.labels[k])
        x1, y1, x2, y2 = (float(v) for v in found.boxes[k])
        score = float(found.scores[k])
        name = class_names[label]
        counts[name] += 1
        detection: dict[str, Any] = {
            "class": name,
            "class_index": label,
            "score": score,
            "x1": x1,
            "y1": y1,
            "x2": x2,
            "y2": y2,
            "finding": bool(score >= thresholds[label]),
        }
        if found.masks is not None:
            detection["mask"] = encode_mask(found.masks[k])
            detection["mask_area_px"] = int(found.masks[k].sum())
        detections.append(detection)
    return {"detections": detections, "counts": counts}


def detect(
    model: ServedDetector,
    upload: Upload,
    checkpoint: Checkpoint = _no_checkpoint,
    min_score: float | None = None,
) -> dict[str, Any]:
    """The detections of one uploaded 2D image.

    Args:
        model: the served detection run.
        upload: the image, read.
        checkpoint: raises when the request has timed out.
        min_score: list every detection scoring at least this (0 to 1); None lists the
            findings: the detections scoring at least their class's threshold (chosen on
            validation).

    Returns:
        ``model``, ``weights_sha256``, ``engine``, ``class_names``, ``thresholds`` (class ->
        score), ``min_score``, ``image_size`` (``width``, ``height`` in pixels),
        ``detections``, ``counts`` (see ``detection_answer``: with ``mask`` and
        ``mask_area_px`` per detection when ``model.predicts_masks``) and ``seconds``.

    Raises:
        InputError: a volume, or an image whose channels the detector does not take.
    """
    started = time.perf_counter()
    run = model.run
    image = for_model_dims(upload.image, 2)
    item = network_input(image, run.preprocess, "upload")
    channels = model.in_channels
    if channels is not None and item.image.array.shape[0] != channels:
        raise InputError(
            image.source or "upload",
            f"has {item.image.array.shape[0]} channels after preprocessing; "
            f"the detector takes {channels}",
        )
    checkpoint()
    (found,) = detect_inputs(run.model, [item], run.device, run.mask_threshold)
    checkpoint()
    height, width = item.size
    return {
        "model": model.name,
        "weights_sha256": model.weights_sha256,
        "engine": model.engine,
        "class_names": list(run.class_names),
        "thresholds": dict(zip(run.class_names, run.thresholds, strict=True)),
        "min_score": min_score,
        "image_size": {"width": width, "height": height},
        **detection_answer(found, run.class_names, run.thresholds, min_score),
        "seconds": round(time.perf_counter() - started, 4),
    }
