"""What the service computes for one upload: class probabilities with a Grad-CAM overlay, a
mask file, or a preview PNG of the image. Plain functions, run in a worker thread.

Each takes a ``checkpoint`` and calls it between its stages (inference, explanation,
writing): it raises when the request has timed out, so abandoned work stops early.

Everything they need is imported with this module (at start-up), not on the first request."""

from __future__ import annotations

import base64
import io
import re
import time
from collections.abc import Callable
from dataclasses import dataclass
from pathlib import Path
from typing import Any
from urllib.parse import quote

import numpy as np
import PIL.Image
import torch
from pydicom.datadict import tag_for_keyword

from medlens.data.dicom_seg import write_dicom_seg
from medlens.data.image import Image
from medlens.data.masks import write_mask
from medlens.errors import InputError
from medlens.explain import explain, save_overlay
from medlens.explain.overlay import display_image
from medlens.inference.decide import decisions_of
from medlens.inference.loaded_run import predict_with_features, prepare_input
from medlens.inference.segment import predict_mask
from medlens.inference.uncertainty import dropout_layers, sample_probabilities
from medlens.serve.inputs import Upload, for_model_dims
from medlens.serve.models_store import ServedModel
from medlens.serve.service_errors import ServiceError
from medlens.trust.measures import mutual_information, predictive_entropy

MASK_FORMATS = ("auto", "png", "nifti", "dicom-seg")
_MEDIA_TYPES = {"png": "image/png", "nifti": "application/gzip", "dicom-seg": "application/dicom"}
_FILE_NAMES = {"png": "mask.png", "nifti": "mask.nii.gz", "dicom-seg": "mask.dcm"}
Checkpoint = Callable[[], None]


def _no_checkpoint() -> None:
    return None


@dataclass
class MaskFile:
    """A mask as the response carries it.

    Attributes:
        content: the file's bytes.
        media_type: its MIME type.
        filename: a server-chosen name (``mask.png``, ``mask.nii.gz``, ``mask.dcm``).
        voxels: non-background class name -> voxels (pixels) of that class.
        mask_format: ``png``, ``nifti`` or ``dicom-seg``.
    """

    content: bytes
    media_type: str
    filename: str
    voxels: dict[str, int]
    mask_format: str = "png"

    def as_json(self, model: ServedModel) -> dict[str, Any]:
        """The mask as ``/v1/segment`` answers for ``format=json`` or ``Accept:
        application/json``: the voxel counts per class and the file, base64."""
        return {
            "model": model.name,
            "weights_sha256": model.weights_sha256,
            "engine": model.engine,
            "class_voxels": dict(self.voxels),
            "mask_format": self.mask_format,
            "media_type": self.media_type,
            "filename": self.filename,
            "mask_base64": base64.b64encode(self.content).decode("ascii"),
        }

    def voxels_header(self) -> str:
        """``name=count;...`` for the ``x-class-voxels`` header, each name percent-encoded
        (UTF-8), so that the header is ASCII whatever the class names are."""
        return ";".join(f"{quote(name, safe='')}={count}" for name, count in self.voxels.items())


UNCERTAINTY_METHODS = ("tta", "mc_dropout")


def check_uncertainty(model: ServedModel, method: str | None) -> None:
    """Refuse, before the upload is read, an uncertainty the served model cannot give.

    Raises:
        ServiceError: 422 for an unknown method, or mc_dropout without dropout layers.
    """
    if method is None:
        return
    if method not in UNCERTAINTY_METHODS:
        raise ServiceError(422, "uncertainty must be tta or mc_dropout")
    if method == "mc_dropout" and not dropout_layers(model.explainer):
        raise ServiceError(422, "this model has no dropout layers; ask for uncertainty=tta")


def _uncertainty(model: ServedModel, x: np.ndarray, method: str) -> dict[str, Any]:
    """Predictive entropy and mutual information (nats) of ``method``'s samples: test-time
    views through the served engine, or MC dropout on the private PyTorch copy."""
    run = model.run
    calibrate = run.trust.calibrator.transform
    if method == "mc_dropout":  # dropout switched on in the private copy only
        with model.explain_lock:
            samples = sample_probabilities(model.explainer, [x], method, run.device, calibrate)
    else:
        net = model.predictor.model
        samples = sample_probabilities(net, [x], method, model.predictor.device, calibrate)
    return {
        "method": method,
        "samples": int(samples.shape[0]),
        "entropy": float(predictive_entropy(samples)[0]),
        "mutual_information": float(mutual_information(samples)[0]),
    }


def trust_fields(
    model: ServedModel, probs: np.ndarray, features: np.ndarray | None
) -> dict[str, Any]:
    """The decision and whether to refer it: ``decision``, ``decision_index``, ``refer``,
    ``refer_reason`` (``uncertain``, ``out_of_distribution`` or null), ``refer_band``,
    ``ood`` (score, threshold, flagged; null for a run without the score) and
    ``calibration`` (the calibrator's method).

    Args:
        probs: the calibrated probabilities ``(K,)`` of one image.
        features: its pooled penultimate features ``(1, D)`` (None for a run without the
            out-of-distribution score).
    """
    run = model.run
    decisions = decisions_of(run, probs[None], features)
    row = decisions.row(0, run.class_names)
    index = int(decisions.preds[0])
    ood = None
    if run.trust.ood is not None:
        ood = {
            "score": row["ood_score"],
            "threshold": run.trust.ood.threshold,
            "flagged": bool(row["ood"]),
        }
    return {
        "decision": run.class_names[index],
        "decision_index": index,
        "refer": bool(row["refer"]),
        "refer_reason": row["refer_reason"] or None,
        "refer_band": run.trust.band.public(),
        "ood": ood,
        "calibration": run.trust.calibrator.method,
    }


def classify(
    model: ServedModel,
    upload: Upload,
    work: Path,
    heatmap: bool = True,
    checkpoint: Checkpoint = _no_checkpoint,
    uncertainty: str | None = None,
) -> dict[str, Any]:
    """Calibrated class probabilities, the decision at the run's threshold, whether to refer
    the case to a human (the run's refer band, the out-of-distribution flag), optionally its
    uncertainty (``tta`` or ``mc_dropout``), and a Grad-CAM overlay.

    A binary run decides for ``class_names[1]`` when its probability is at least the run's
    threshold (chosen on validation); a multi-class run takes the most probable class. The
    heatmap explains the decided class.

    Raises:
        InputError: the image does not fit the model after preprocessing.
    """

    started = time.perf_counter()
    run = model.run
    x = prepare_input(run, for_model_dims(upload.image, model.spatial_dims))
    checkpoint()
    # one forward pass gives the probabilities and the features the ood score reads (a
    # second pass, through the PyTorch network, only behind an ONNX engine)
    batch_probs, features = predict_with_features(model.predictor, [x], feature_model=run.model)
    probs = batch_probs[0]
    checkpoint()
    binary = len(run.class_names) == 2
    decided = trust_fields(model, probs, features)
    index = decided["decision_index"]
    result: dict[str, Any] = {
        "model": model.name,
        "weights_sha256": model.weights_sha256,
        "engine": model.engine,
        "class_names": list(run.class_names),
        "probabilities": [float(p) for p in probs],
        **decided,
        "threshold": run.threshold if binary else None,
        "uncertainty": None,
        "heatmap_png_base64": None,
    }
    if uncertainty is not None:
        result["uncertainty"] = _uncertainty(model, x, uncertainty)
        checkpoint()
    if heatmap:
        with model.explain_lock:
            maps = explain(
                model.explainer, torch.from_numpy(x[None]), target=index, method="gradcam"
            )
        checkpoint()
        png = save_overlay(
            x, maps[0], work / "heatmap.png", title=f"Grad-CAM: {run.class_names[index]}"
        )
        result["heatmap_png_base64"] = base64.b64encode(png.read_bytes()).decode("ascii")
    result["seconds"] = round(time.perf_counter() - started, 4)  # preprocessing to answer
    return result


def resolve_mask_format(requested: str, upload: Upload, image: Image) -> str:
    """``auto`` becomes DICOM SEG for a zipped series, PNG for 2D, NIfTI for volumes.

    Raises:
        ServiceError: 422 for DICOM SEG without a zipped series, or PNG for a volume.
    """
    if requested == "auto":
        if upload.series_dir is not None:
            return "dicom-seg"
        return "png" if image.spatial_dims == 2 else "nifti"
    if requested == "dicom-seg" and upload.series_dir is None:
        raise ServiceError(
            422, "a DICOM SEG needs a DICOM series as input: send the series as a zip"
        )
    if requested == "png" and image.spatial_dims != 2:
        raise ServiceError(422, "a volume's mask cannot be a PNG; ask for format=nifti")
    return requested


def segment(
    model: ServedModel,
    upload: Upload,
    mask_format: str,
    work: Path,
    checkpoint: Checkpoint = _no_checkpoint,
) -> MaskFile:
    """The model's mask on the upload's own grid, as PNG, NIfTI or DICOM SEG.

    Raises:
        ServiceError: 422 for a format the upload cannot have (``resolve_mask_format``), or a
            series a DICOM SEG cannot be made from.
        InputError: the image does not fit the model after preprocessing.
    """

    image = for_model_dims(upload.image, model.spatial_dims)
    fmt = resolve_mask_format(mask_format, upload, image)
    labels = predict_mask(model.predictor, image)
    checkpoint()
    label_map = image.with_array(labels[None].astype(np.uint8))
    target = work / _FILE_NAMES[fmt]
    if fmt == "dicom-seg":
        assert upload.series_dir is not None
        try:
            write_dicom_seg(label_map, upload.series_dir, list(model.run.class_names[1:]), target)
        except (AttributeError, InputError) as exc:  # a source lacking what highdicom copies
            missing = _missing_keyword(exc)
            if missing is None:  # the reason may quote the series: it stays on the server
                raise ServiceError(
                    422, "a DICOM SEG cannot be made from this series; ask for format=nifti"
                ) from None
            raise ServiceError(
                422, f"the series lacks {missing}, which a DICOM SEG copies from its source"
            ) from None
    else:
        write_mask(label_map, target, reference=image)
    voxels = {
        name: int(np.count_nonzero(labels == k))
        for k, name in enumerate(model.run.class_names[1:], start=1)
    }
    return MaskFile(target.read_bytes(), _MEDIA_TYPES[fmt], _FILE_NAMES[fmt], voxels, fmt)


def _missing_keyword(exc: Exception) -> str | None:
    """The attribute a DICOM SEG needed and the series lacks, when it is a DICOM keyword (a
    fixed vocabulary, never a value from the upload); None otherwise."""
    names = [getattr(exc, "name", None)]
    names += re.findall(r"'([A-Za-z][A-Za-z0-9]*)'", getattr(exc, "reason", "") or "")
    for name in names:
        if isinstance(name, str) and tag_for_keyword(name) is not None:
            return name
    return None


def preview_png(upload: Upload) -> bytes:
    """The uploaded image as an 8-bit PNG for display (a volume: its middle slice along the
    first axis), scaled to its own minimum and maximum, on its own pixel grid."""

    array = upload.image.array
    if upload.image.spatial_dims == 3:
        array = array[:, array.shape[1] // 2]
    pixels = np.round(display_image(array) * 255).astype(np.uint8)
    buffer = io.BytesIO()
    PIL.Image.fromarray(pixels).save(buffer, format="PNG")
    return buffer.getvalue()
