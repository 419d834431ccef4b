"""A run's model applied to downloaded DICOM, and its results as DICOM objects to store back.

Segmentation runs give a DICOM SEG referencing the source series. Classification runs give
a Basic Text SR (probabilities, decision, model and weights hash, references to the source
instances) and a Secondary Capture of the Grad-CAM overlay. Detection runs give, per image, a
Comprehensive 3D SR (TID 1500) with one planar ROI per finding (``medlens.pacs.sr_detection``).
Every object keeps the source's
patient and study and goes into a series of its own kind per source series.

The UIDs of a result are derived from the model's weights hash, the result kind and the
source's UIDs (``medlens.pacs.uids``): the same model on the same source always makes the
same UIDs. That is how ``medlens pacs`` recognises its own results (not by Manufacturer,
which anyone can write) and how a re-run after a kill stores only what is missing.

UIDs read from the downloaded files are checked against the DICOM UI grammar before use, and
every scratch file is named by a counter, never by a UID.
"""

from __future__ import annotations

import io
from collections.abc import Iterable
from dataclasses import dataclass, field
from pathlib import Path

import numpy as np
import pydicom
from pydicom.dataset import Dataset

from medlens.data.dicom import read_dicom_dataset, read_dicom_file
from medlens.data.dicom_seg import sorted_series_datasets, write_dicom_seg
from medlens.data.dicom_series import read_dicom_series
from medlens.data.image import Image
from medlens.errors import InputError
from medlens.inference.detection_run import DetectionRunModel
from medlens.inference.loaded_run import LoadedRun
from medlens.inference.onnx import weights_sha256
from medlens.pacs.secondary_capture import overlay_secondary_capture, read_rgb
from medlens.pacs.sr import ClassificationFinding, ModelIdentity, classification_report
from medlens.pacs.uids import check_uid, result_instance_uid, result_series_uid

EXPLANATION_METHOD = "gradcam"
SEGMENTATION = "segmentation"
REPORT = "report"
OVERLAY = "overlay"
DETECTIONS = "detections"
RESULT_KINDS = (SEGMENTATION, REPORT, OVERLAY, DETECTIONS)
#: A run ``medlens pacs`` applies: a classifier or segmenter, or a detector.
PacsRun = LoadedRun | DetectionRunModel
_CHECKED_UIDS = ("StudyInstanceUID", "SeriesInstanceUID", "SOPInstanceUID", "SOPClassUID")


@dataclass
class ResultObject:
    """One DICOM object made from a model's output, ready to store.

    Attributes:
        kind: ``"segmentation"`` (SEG), ``"report"`` (Basic Text SR), ``"overlay"`` (SC) or
            ``"detections"`` (Comprehensive 3D SR).
        data: the DICOM Part 10 file.
        sop_class_uid, series_instance_uid, sop_instance_uid: the new object's UIDs.
        source_series_uid: the series it was made from.
        finding: the classification it reports (``report`` and ``overlay`` only).
        counts: class name -> objects found (``detections`` only).
    """

    kind: str
    data: bytes
    sop_class_uid: str
    series_instance_uid: str
    sop_instance_uid: str
    source_series_uid: str
    finding: ClassificationFinding | None = None
    counts: dict[str, int] = field(default_factory=dict)


@dataclass
class Scratch:
    """A folder for intermediate files, named ``result_00001.dcm``, ... by a counter."""

    folder: Path
    count: int = 0

    def path(self, suffix: str) -> Path:
        self.count += 1
        return self.folder / f"result_{self.count:05d}{suffix}"


@dataclass
class ImageResults:
    """What ``results_for_images`` made of one series.

    Attributes:
        objects: the results made.
        skipped: one ``"instance <SOPInstanceUID>: <reason>"`` line per image left out.
        present: SOPInstanceUIDs of results that were in Orthanc already (not made again).
    """

    objects: list[ResultObject] = field(default_factory=list)
    skipped: list[str] = field(default_factory=list)
    present: list[str] = field(default_factory=list)


def model_identity(run: PacsRun) -> ModelIdentity:
    """The run's model name, run name and the SHA-256 of its ``model.pt``."""
    return ModelIdentity(
        name=run.config.model.name,
        run_name=run.config.name,
        weights_sha256=weights_sha256(run.run_dir),
    )


def result_kinds(run: PacsRun) -> tuple[str, ...]:
    """The kinds of result the run makes per source: a SEG, an SR and an overlay, or a
    detection SR."""
    if isinstance(run, DetectionRunModel):
        return (DETECTIONS,)
    return (SEGMENTATION,) if run.task.predicts_masks else (REPORT, OVERLAY)


def expected_instance_uids(
    model: ModelIdentity, kinds: Iterable[str], source_series_uid: str, source_sop_uid: str = ""
) -> list[str]:
    """The SOPInstanceUIDs of the results the model makes from one source image (or, with
    ``source_sop_uid`` "", from one series read as a volume)."""
    return [
        result_instance_uid(model.weights_sha256, kind, source_series_uid, source_sop_uid)
        for kind in kinds
    ]


def medlens_series_uids(model: ModelIdentity, source_series_uids: Iterable[str]) -> set[str]:
    """The SeriesInstanceUIDs the model's results made from these series would have."""
    return {
        result_series_uid(model.weights_sha256, kind, uid)
        for uid in source_series_uids
        for kind in RESULT_KINDS
    }


def checked_header(header: Dataset, where: str | Path) -> Dataset:
    """``header`` when its Study, Series, SOP Instance and SOP Class UIDs are DICOM UIDs.

    Raises:
        InvalidUidError: one of them is not.
    """
    for keyword in _CHECKED_UIDS:
        check_uid(header.get(keyword), keyword, str(where))
    return header


def results_for_volume(
    run: PacsRun, model: ModelIdentity, folder: Path, scratch: Scratch
) -> list[ResultObject]:
    """Results for the one series in ``folder`` read as a volume (a 3D run).

    Raises:
        InputError: the series is no regular volume, does not fit the run, or carries a UID
            that is not one; a detection run (it takes 2D images).
    """
    if isinstance(run, DetectionRunModel):
        raise InputError(folder, "a detection run takes 2D images, not a volume")
    headers = [checked_header(h, folder) for h in sorted_series_datasets(folder)]
    image = read_dicom_series(folder)
    if run.task.predicts_masks:
        return [_segmentation(run, model, image, folder, headers, scratch, "", 1)]
    return _classification(run, model, image, headers, scratch, "", 1)


def results_for_images(
    run: PacsRun,
    model: ModelIdentity,
    files: list[Path],
    scratch: Scratch,
    present: frozenset[str] | set[str] = frozenset(),
) -> ImageResults:
    """Results for each single-frame image of one series (a 2D run).

    Args:
        present: SOPInstanceUIDs already in Orthanc: an image whose results are all there is
            not processed again.

    Returns:
        The objects made, a line per image left out (a multi-frame file, a non-image, a bad
        UID, one that does not fit the run), and the results found present.
    """
    out = ImageResults()
    kinds = result_kinds(run)
    for index, file in enumerate(files):
        name = f"image {index + 1}"
        try:
            header = read_dicom_dataset(file, header_only=True)
            checked_header(header, name)
            name = f"instance {header.SOPInstanceUID}"
            expected = expected_instance_uids(
                model, kinds, str(header.SeriesInstanceUID), str(header.SOPInstanceUID)
            )
            if all(uid in present for uid in expected):
                out.present += expected
                continue
            frames = int(header.get("NumberOfFrames", 1) or 1)
            if frames > 1:
                raise InputError(file, f"holds {frames} frames; a 2D run takes single frames")
            image = read_dicom_file(file)
            number = _instance_number(header, index + 1)
            sop = str(header.SOPInstanceUID)
            if isinstance(run, DetectionRunModel):
                out.objects.append(_detections(run, model, image, header, sop, number))
            elif run.task.predicts_masks:
                out.objects.append(
                    _segmentation(run, model, image, [header], [header], scratch, sop, number)
                )
            else:
                out.objects += _classification(run, model, image, [header], scratch, sop, number)
        except InputError as exc:
            out.skipped.append(f"{name}: {exc.reason}")
    return out


def _instance_number(header: Dataset, default: int) -> int:
    try:
        number = int(header.get("InstanceNumber", default))
    except (TypeError, ValueError):
        return default
    return number if 0 < number < 2**31 else default


def _segmentation(
    run: LoadedRun,
    model: ModelIdentity,
    image: Image,
    source: Path | list[Dataset],
    headers: list[Dataset],
    scratch: Scratch,
    source_sop_uid: str,
    instance_number: int,
) -> ResultObject:
    from medlens.inference.segment import predict_mask

    labels = predict_mask(run, image)
    path = write_dicom_seg(
        image.with_array(labels[None].astype(np.uint8)),
        source,
        list(run.class_names[1:]),
        scratch.path(".dcm"),
        algorithm_name=model.algorithm_name,
    )
    # write_dicom_seg gives new random UIDs: the result's own, derived ones replace them
    source_series = str(headers[0].SeriesInstanceUID)
    ds = pydicom.dcmread(path)
    ds.SeriesInstanceUID = result_series_uid(model.weights_sha256, SEGMENTATION, source_series)
    ds.SOPInstanceUID = result_instance_uid(
        model.weights_sha256, SEGMENTATION, source_series, source_sop_uid
    )
    ds.file_meta.MediaStorageSOPInstanceUID = ds.SOPInstanceUID
    ds.InstanceNumber = instance_number
    return ResultObject(
        kind=SEGMENTATION,
        data=_part10(ds),
        sop_class_uid=str(ds.SOPClassUID),
        series_instance_uid=str(ds.SeriesInstanceUID),
        sop_instance_uid=str(ds.SOPInstanceUID),
        source_series_uid=source_series,
    )


def _detections(
    run: DetectionRunModel,
    model: ModelIdentity,
    image: Image,
    header: Dataset,
    source_sop_uid: str,
    instance_number: int,
) -> ResultObject:
    from medlens.pacs.detection_results import detection_sr

    source_series = str(header.SeriesInstanceUID)
    weights = model.weights_sha256
    report, findings = detection_sr(
        run,
        model,
        image,
        header,
        series_instance_uid=result_series_uid(weights, DETECTIONS, source_series),
        sop_instance_uid=result_instance_uid(weights, DETECTIONS, source_series, source_sop_uid),
        instance_number=instance_number,
    )
    counts = dict.fromkeys(run.class_names, 0)
    for found in findings:
        counts[found.label] += 1
    return ResultObject(
        kind=DETECTIONS,
        data=_part10(report),
        sop_class_uid=str(report.SOPClassUID),
        series_instance_uid=str(report.SeriesInstanceUID),
        sop_instance_uid=str(report.SOPInstanceUID),
        source_series_uid=source_series,
        counts=counts,
    )


def _classification(
    run: LoadedRun,
    model: ModelIdentity,
    image: Image,
    headers: list[Dataset],
    scratch: Scratch,
    source_sop_uid: str,
    instance_number: int,
) -> list[ResultObject]:
    from medlens.explain.overlay import save_overlay
    from medlens.explain.run_cases import explain_prepared
    from medlens.inference.decide import decisions_of, ood_features
    from medlens.inference.loaded_run import prepare_input

    x = prepare_input(run, image)
    explained = explain_prepared(run, [x], EXPLANATION_METHOD)
    names = run.class_names
    probabilities = explained.probabilities[0]
    predicted = int(explained.predicted[0])
    decisions = decisions_of(run, explained.probabilities[:1], ood_features(run, [x]))
    band = run.trust.band
    finding = ClassificationFinding(
        probabilities={name: float(p) for name, p in zip(names, probabilities, strict=True)},
        predicted_class=names[predicted],
        threshold=run.threshold if len(names) == 2 else None,
        refer_reason=decisions.reason(0) or None,
        refer_band=(band.low, band.high)
        if band.low is not None and band.high is not None
        else None,
        ood_score=(
            (float(decisions.ood_scores[0]), run.trust.ood.threshold)
            if decisions.ood_scores is not None and run.trust.ood is not None
            else None
        ),
    )
    caption = overlay_caption(finding)
    png = save_overlay(
        x,
        explained.heatmaps[0],
        scratch.path(".png"),
        title=f"{model.algorithm_name}\n{caption}",
    )
    source_series = str(headers[0].SeriesInstanceUID)
    weights = model.weights_sha256
    report = classification_report(
        headers,
        finding,
        model,
        series_instance_uid=result_series_uid(weights, REPORT, source_series),
        sop_instance_uid=result_instance_uid(weights, REPORT, source_series, source_sop_uid),
        instance_number=instance_number,
    )
    overlay = overlay_secondary_capture(
        headers[0],
        read_rgb(png),
        model,
        "Grad-CAM overlay",
        series_instance_uid=result_series_uid(weights, OVERLAY, source_series),
        sop_instance_uid=result_instance_uid(weights, OVERLAY, source_series, source_sop_uid),
        instance_number=instance_number,
        caption=caption,
    )
    return [
        ResultObject(
            kind=kind,
            data=_part10(ds),
            sop_class_uid=str(ds.SOPClassUID),
            series_instance_uid=str(ds.SeriesInstanceUID),
            sop_instance_uid=str(ds.SOPInstanceUID),
            source_series_uid=source_series,
            finding=finding,
        )
        for kind, ds in ((REPORT, report), (OVERLAY, overlay))
    ]


def overlay_caption(finding: ClassificationFinding) -> str:
    """What the Grad-CAM overlay shows, as its title says (ASCII, for the DICOM text too):
    ``Grad-CAM for <class> (p = 0.49)``, led by ``Referred (<reason>) -`` for a case referred
    to a human reader, so the picture never reads as an ordinary decision."""
    name = finding.predicted_class
    text = f"Grad-CAM for {name} (p = {finding.probabilities[name]:.2f})"
    if finding.refer_reason:
        return f"Referred ({finding.refer_reason.replace('_', ' ')}) - {text}"
    return text


def _part10(ds: Dataset) -> bytes:
    buffer = io.BytesIO()
    ds.save_as(buffer, enforce_file_format=True)
    return buffer.getvalue()
