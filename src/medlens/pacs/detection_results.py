"""A detection run applied to one downloaded DICOM image: its findings (each class at the
score threshold the run chose on validation) on the image's own pixels, as the TID 1500 SR
that ``medlens.pacs.results`` stores back."""

from __future__ import annotations

from collections.abc import Sequence

import numpy as np
from pydicom.dataset import Dataset

from medlens.data.image import Image
from medlens.errors import InputError
from medlens.inference.detect import detect_inputs, network_input
from medlens.inference.detection_run import DetectionRunModel
from medlens.metrics.detection.objects import DetectedObjects
from medlens.pacs.sr import ModelIdentity
from medlens.pacs.sr_detection import BoxFinding, check_source, detection_report


def box_findings(
    found: DetectedObjects, class_names: Sequence[str], thresholds: Sequence[float]
) -> list[BoxFinding]:
    """The detections scoring at least their class's threshold, by descending score, each
    with its instance mask when ``found`` has masks (on the image's pixels)."""
    if not len(found.scores):
        return []
    keep = np.flatnonzero(found.scores >= np.asarray(thresholds, dtype=np.float64)[found.labels])
    keep = keep[np.argsort(-found.scores[keep], kind="stable")]
    return [
        BoxFinding(
            label=str(class_names[int(found.labels[k])]),
            class_index=int(found.labels[k]),
            score=float(found.scores[k]),
            box=(
                float(found.boxes[k, 0]),
                float(found.boxes[k, 1]),
                float(found.boxes[k, 2]),
                float(found.boxes[k, 3]),
            ),
            mask=None if found.masks is None else found.masks[k],
        )
        for k in keep
    ]


def find_boxes(run: DetectionRunModel, image: Image, image_id: str) -> list[BoxFinding]:
    """The run's findings on ``image``, boxes (and a Mask R-CNN run's masks) in its own
    pixels.

    Raises:
        InputError: a volume, or an image whose channels the detector does not take.
    """
    item = network_input(image, run.preprocess, image_id)
    channels = getattr(run.model, "config", {}).get("in_channels")
    if channels is not None and item.image.array.shape[0] != int(channels):
        raise InputError(
            image_id,
            f"has {item.image.array.shape[0]} channels after the run's preprocessing; the "
            f"detector takes {channels}",
        )
    (found,) = detect_inputs(run.model, [item], run.device, run.mask_threshold)
    return box_findings(found, run.class_names, run.thresholds)


def detection_sr(
    run: DetectionRunModel,
    model: ModelIdentity,
    image: Image,
    header: Dataset,
    series_instance_uid: str,
    sop_instance_uid: str,
    instance_number: int,
) -> tuple[Dataset, list[BoxFinding]]:
    """The SR of the run's findings on one DICOM image (``header`` its header), and the
    findings.

    Raises:
        InputError: the image is not one the run or an SR can take.
    """
    check_source(header, f"instance {header.get('SOPInstanceUID', '')}")
    findings = find_boxes(run, image, str(header.SOPInstanceUID))
    report = detection_report(
        header,
        findings,
        run.class_names,
        model,
        series_instance_uid=series_instance_uid,
        sop_instance_uid=sop_instance_uid,
        instance_number=instance_number,
    )
    return report, findings
