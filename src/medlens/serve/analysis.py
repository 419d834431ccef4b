"""What the service computes for one upload: class probabilities with a Grad-CAM overlay, a
mask file (with, on request, its uncertainty: a per-case summary and per-voxel maps), or a
preview PNG of the image. Plain functions, run in a worker thread.

Each takes a ``checkpoint`` and calls it between its stages (inference, explanation,
writing): it raises when the request has timed out, so abandoned work stops early.

Everything they need is imported with this module (at start-up), not on the first request."""

from __future__ import annotations

import base64
import dataclasses
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
from medlens.errors import ConfigError, InputError
from medlens.explain import explain, save_overlay
from medlens.explain.overlay import display_image
from medlens.inference.decide import decisions_of
from medlens.inference.loaded_run import predict_with_features, prepare_input
from medlens.inference.segment import predict_mask
from medlens.inference.segment_uncertainty import (
    UncertaintyMaps,
    on_image_grid,
    sample_maps,
    write_map,
)
from medlens.inference.uncertainty import sample_probabilities
from medlens.run_folder import layout
from medlens.serve.ensemble_model import ServedEnsemble
from medlens.serve.inputs import Upload, for_model_dims
from medlens.serve.models_store import ServedModel
from medlens.serve.service_errors import ServiceError, model_fault, model_stage
from medlens.trust.decisions import Decisions
from medlens.trust.measures import mutual_information, predictive_entropy

MASK_FORMATS = ("auto", "png", "nifti", "dicom-seg")
_MEDIA_TYPES = {"png": "image/png", "nifti": "application/gzip", "dicom-seg": "application/dicom"}
_FILE_NAMES = {"png": "mask.png", "nifti": "mask.nii.gz", "dicom-seg": "mask.dcm"}
UNCERTAINTY_MAPS = ("entropy", "mutual_information")
_MAP_MEDIA_TYPES = {".png": "image/png", ".nii.gz": "application/gzip"}
Checkpoint = Callable[[], None]


def _no_checkpoint() -> None:
    return None


@dataclass
class MapFile:
    """One per-voxel uncertainty map of a mask, as the JSON answer carries it: the file
    ``medlens predict --uncertainty`` writes (``segment_uncertainty.write_map``).

    Attributes:
        content: the file's bytes: a 16-bit greyscale PNG beside a PNG mask, else a gzipped
            float32 NIfTI in nats with the image's affine. Either is on the image's own grid.
        media_type: ``image/png`` or ``application/gzip``.
        filename: ``entropy.png``, ``mutual_information.nii.gz``, ...
        max_nats: for a PNG, the nats that 65535 stands for (log K, K the run's classes; 0
            stands for 0 nats, linearly in between); None for a NIfTI, whose values are nats.
    """

    content: bytes
    media_type: str
    filename: str
    max_nats: float | None

    def as_json(self) -> dict[str, Any]:
        """``filename``, ``media_type``, ``units`` (nats), ``max_nats`` and ``base64``."""
        return {
            "filename": self.filename,
            "media_type": self.media_type,
            "units": "nats",
            "max_nats": self.max_nats,
            "base64": base64.b64encode(self.content).decode("ascii"),
        }


@dataclass
class MaskFile:
    """A mask as the response carries it.

    Attributes:
        content: the file's bytes.
        media_type: its MIME type.
        filename: a server-chosen name (``mask.png``, ``mask.nii.gz``, ``mask.dcm``).
        voxels: non-background class name -> voxels (pixels) of that class.
        mask_format: ``png``, ``nifti`` or ``dicom-seg``.
        uncertainty: the per-case summary of ``uncertainty=`` (``segment_uncertainty``), or
            None when none was asked for.
        uncertainty_maps: ``entropy`` and ``mutual_information`` (``UNCERTAINTY_MAPS``) ->
            the map's file, or None when no uncertainty was asked for or the maps were not
            wanted (a file response).
    """

    content: bytes
    media_type: str
    filename: str
    voxels: dict[str, int]
    mask_format: str = "png"
    uncertainty: dict[str, Any] | None = None
    uncertainty_maps: dict[str, MapFile] | None = None

    def as_json(self, model: ServedModel) -> dict[str, Any]:
        """The mask as ``/v1/segment`` answers for ``format=json`` or ``Accept:
        application/json``: the voxel counts per class, the uncertainty summary and maps
        (each null when not asked for) and the file, base64."""
        maps = None
        if self.uncertainty_maps is not None:
            maps = {name: file.as_json() for name, file in self.uncertainty_maps.items()}
        return {
            "model": model.name,
            "weights_sha256": model.weights_sha256,
            "engine": model.engine,
            "class_voxels": dict(self.voxels),
            "uncertainty": None if self.uncertainty is None else dict(self.uncertainty),
            "uncertainty_maps": maps,
            "mask_format": self.mask_format,
            "media_type": self.media_type,
            "filename": self.filename,
            "mask_base64": base64.b64encode(self.content).decode("ascii"),
        }

    def voxels_header(self) -> str:
        """``name=count;...`` for the ``x-class-voxels`` header, each name percent-encoded
        (UTF-8), so that the header is ASCII whatever the class names are."""
        return ";".join(f"{quote(name, safe='')}={count}" for name, count in self.voxels.items())

    def uncertainty_header(self) -> str | None:
        """``key=value;...`` of the uncertainty summary for the ``x-uncertainty`` header of
        a file response (None when none was asked for)."""
        if self.uncertainty is None:
            return None
        return ";".join(f"{key}={value}" for key, value in self.uncertainty.items())


def check_uncertainty(model: ServedModel | ServedEnsemble, method: str | None) -> None:
    """Refuse, before the upload is read, an uncertainty the served model cannot give
    (``uncertainty_methods()``: tta, mc_dropout with dropout layers, ensemble for an
    ensemble).

    Raises:
        ServiceError: 422 naming what the model answers; the value sent is not repeated.
    """
    if method is None:
        return
    methods = model.uncertainty_methods()
    if method in methods:
        return
    if isinstance(model, ServedEnsemble):
        raise ServiceError(
            422,
            "this model is an ensemble: it answers uncertainty=ensemble only (its members' "
            "disagreement)",
        )
    if method == "mc_dropout":
        raise ServiceError(422, "this model has no dropout layers; ask for uncertainty=tta")
    raise ServiceError(422, f"uncertainty must be {' or '.join(methods)} for this model")


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
    return sampled_uncertainty(method, samples)


def decision_fields(decisions: Decisions, class_names: list[str]) -> dict[str, Any]:
    """The first case's decision as the service's JSON carries it, the same columns as
    ``medlens predict``'s CSV (``Decisions.row``):

    - ``decision``: the class, or ``refer`` when a human should decide;
    - ``predicted_class``, ``predicted_index``: the model's class at the run's threshold
      (arg-max for more classes), kept for a referred case too (the model's leaning);
    - ``refer``, ``refer_reason`` (``uncertain``, ``out_of_distribution`` or null).
    """
    row = decisions.row(0, class_names)
    index = int(decisions.preds[0])
    return {
        "decision": row["decision"],
        "predicted_class": class_names[index],
        "predicted_index": index,
        "refer": bool(row["refer"]),
        "refer_reason": row["refer_reason"] or None,
    }


def trust_fields(
    model: ServedModel, probs: np.ndarray, features: np.ndarray | None
) -> dict[str, Any]:
    """The decision and whether to refer it (``decision_fields``), with ``refer_band``,
    ``ood`` (score, threshold, flagged; null for a run without the score) and
    ``calibration`` (the calibrator's method).

    Args:
        probs: the calibrated probabilities ``(K,)`` of one image.
        features: its pooled penultimate features ``(1, D)`` (None for a run without the
            out-of-distribution score).
    """
    run = model.run
    decisions = decisions_of(run, probs[None], features)
    ood = None
    if run.trust.ood is not None and decisions.ood is not None:
        assert decisions.ood_scores is not None
        ood = {
            "score": float(decisions.ood_scores[0]),
            "threshold": run.trust.ood.threshold,
            "flagged": bool(decisions.ood[0]),
        }
    return {
        **decision_fields(decisions, run.class_names),
        "refer_band": run.trust.band.public(),
        "ood": ood,
        "calibration": run.trust.calibrator.method,
    }


def sampled_uncertainty(method: str, samples: np.ndarray) -> dict[str, Any]:
    """``uncertainty`` of an answer: the predictive entropy and mutual information (nats) of
    one case's calibrated ``samples`` ``(S, 1, K)``."""
    return {
        "method": method,
        "samples": int(samples.shape[0]),
        "entropy": float(predictive_entropy(samples)[0]),
        "mutual_information": float(mutual_information(samples)[0]),
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
    threshold (chosen on validation); a multi-class run takes the most probable class. That
    class is ``predicted_class``; ``decision`` is it, or ``refer`` for a case referred to a
    human. The heatmap explains the predicted class.

    Raises:
        InputError: the image does not fit the model after preprocessing (answered 422).
        ServiceError: 500 when the model or its run folder fails once the image fitted
            (``model_stage``), e.g. non-finite outputs.
    """

    started = time.perf_counter()
    run = model.run
    x = prepare_input(run, for_model_dims(upload.image, model.spatial_dims))
    checkpoint()
    with model_stage(model.name, [run.run_dir]):
        # one forward pass gives the probabilities and the features the ood score reads (a
        # second pass, through the PyTorch network, only behind an ONNX engine)
        batch_probs, features = predict_with_features(model.predictor, [x], feature_model=run.model)
        probs = batch_probs[0]
        if not np.all(np.isfinite(probs)):
            raise InputError(
                run.run_dir / layout.MODEL,
                "the network gives non-finite outputs (NaN or inf) for this image",
            )
        checkpoint()
        binary = len(run.class_names) == 2
        decided = trust_fields(model, probs, features)
        index = decided["predicted_index"]
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
            png = save_overlay(x, maps[0], work / "heatmap.png", title=_heatmap_title(result))
            result["heatmap_png_base64"] = base64.b64encode(png.read_bytes()).decode("ascii")
    result["seconds"] = round(time.perf_counter() - started, 4)  # preprocessing to answer
    return result


def _heatmap_title(result: dict[str, Any]) -> str:
    """The overlay's title: the class it explains, and the referral when there is one."""
    k = result["predicted_index"]
    title = f"Grad-CAM: {result['predicted_class']} (p = {result['probabilities'][k]:.2f})"
    if result["refer"]:
        reason = (result["refer_reason"] or "").replace("_", " ")
        return f"Referred ({reason})\n{title}"
    return title


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
    uncertainty: str | None = None,
    maps: bool = True,
) -> MaskFile:
    """The model's mask on the upload's own grid, as PNG, NIfTI or DICOM SEG, and with
    ``uncertainty`` (``tta`` or ``mc_dropout``) the per-case summary ``medlens predict
    --uncertainty`` writes to ``segmentations.csv``: ``mean_entropy`` and
    ``mean_mutual_information`` (nats, over the image), ``expected_dice`` and
    ``uncertainty = 1 - expected_dice`` (``medlens.inference.segment_uncertainty``).

    With ``uncertainty`` and ``maps``, also the per-voxel entropy and mutual-information
    maps that ``predict`` writes beside the mask, written into ``work``: 16-bit PNG (65535
    = log K nats) beside a PNG mask, float32 NIfTI in nats otherwise (``_write_maps``).

    Raises:
        ServiceError: 422 for a format the upload cannot have (``resolve_mask_format``), or a
            series a DICOM SEG cannot be made from; 500 when the model or its run folder
            fails once the image fitted (``model_stage``).
        InputError, ConfigError: the image does not fit the model after preprocessing.
    """

    image = for_model_dims(upload.image, model.spatial_dims)
    fmt = resolve_mask_format(mask_format, upload, image)
    labels = _mask_labels(model, image)
    checkpoint()
    summary = map_files = None
    if uncertainty is not None:
        with model_stage(model.name, [model.run.run_dir]):
            sampled = _mask_uncertainty(model, image, uncertainty)
            summary = {"method": uncertainty, **sampled.summary(labels)}
        checkpoint()
        if maps:
            map_files = _write_maps(sampled, image, fmt, len(model.run.class_names), work)
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
    return MaskFile(
        target.read_bytes(), _MEDIA_TYPES[fmt], _FILE_NAMES[fmt], voxels, fmt, summary, map_files
    )


def _mask_labels(model: ServedModel, image: Image) -> np.ndarray:
    """``predict_mask`` on the served engine. An ``InputError`` naming the image, or a
    ``ConfigError`` (a size the sliding window cannot take), is the image's (422); any other
    error is the model's (500, ``model_stage``)."""
    try:
        return predict_mask(model.predictor, image)
    except ConfigError:
        raise
    except InputError as exc:
        if exc.path == str(image.source):
            raise
        raise model_fault(model.name, exc, [model.run.run_dir]) from None


def _mask_uncertainty(model: ServedModel, image: Image, method: str) -> UncertaintyMaps:
    """``segment_uncertainty``'s sampled maps (nats) on ``image``'s grid: test-time flips
    through the served engine, or MC dropout on the private PyTorch copy (dropout switched
    on there only)."""
    run = model.run
    x = run.preprocess(image).array.astype(np.float32, copy=False)
    if method == "mc_dropout":
        with model.explain_lock:
            maps = sample_maps(dataclasses.replace(run, model=model.explainer), x, method)
    else:
        maps = sample_maps(model.predictor, x, method)
    return on_image_grid(maps, image)


def _write_maps(
    maps: UncertaintyMaps, image: Image, mask_format: str, classes: int, work: Path
) -> dict[str, MapFile]:
    """The entropy and mutual-information maps written into ``work`` as ``medlens predict
    --uncertainty`` writes them beside a mask of ``mask_format``: a 16-bit PNG beside a PNG
    mask (65535 = log ``classes`` nats, the most entropy K classes can have), else a float32
    NIfTI in nats with the image's affine."""
    suffix = ".png" if mask_format == "png" else ".nii.gz"
    top = float(np.log(classes))
    files = {}
    for name in UNCERTAINTY_MAPS:
        path = write_map(getattr(maps, name), image, work / f"{name}{suffix}", top)
        scale = top if suffix == ".png" else None
        files[name] = MapFile(path.read_bytes(), _MAP_MEDIA_TYPES[suffix], path.name, scale)
    return files


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
