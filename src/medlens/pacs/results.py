"""A run's model applied to downloaded DICOM, and its results as DICOM objects to store back.

Segmentation runs give a DICOM SEG referencing the source series. Classification runs give
a Basic Text SR (probabilities, decision, model and weights hash, references to the source
instances) and a Secondary Capture of the Grad-CAM overlay. Every object keeps the source's
patient and study, gets a new series, and carries Manufacturer "medlens" — the mark by which
``medlens pacs watch`` recognises its own results.
"""

from __future__ import annotations

import hashlib
import io
from dataclasses import dataclass
from pathlib import Path

import highdicom as hd
import numpy as np
from pydicom.dataset import Dataset

from medlens.data.dicom import read_dicom_dataset, read_dicom_file
from medlens.data.dicom_seg import sorted_series_datasets, write_dicom_seg
from medlens.data.dicom_series import read_dicom_series
from medlens.data.image import Image
from medlens.errors import InputError
from medlens.inference.loaded_run import LoadedRun
from medlens.pacs.secondary_capture import overlay_secondary_capture, read_rgb
from medlens.pacs.sr import ClassificationFinding, ModelIdentity, classification_report
from medlens.run_folder import layout

EXPLANATION_METHOD = "gradcam"


@dataclass
class ResultObject:
    """One DICOM object made from a model's output, ready to store.

    Attributes:
        kind: ``"segmentation"`` (SEG), ``"report"`` (Basic Text SR) or ``"overlay"`` (SC).
        data: the DICOM Part 10 file.
        sop_class_uid, series_instance_uid, sop_instance_uid: the new object's UIDs.
        source_series_uid: the series it was made from.
        finding: the classification it reports (``report`` and ``overlay`` only).
    """

    kind: str
    data: bytes
    sop_class_uid: str
    series_instance_uid: str
    sop_instance_uid: str
    source_series_uid: str
    finding: ClassificationFinding | None = None


def model_identity(run: LoadedRun) -> ModelIdentity:
    """The run's model name, run name and the SHA-256 of its ``model.pt``."""
    digest = hashlib.sha256()
    with open(run.run_dir / layout.MODEL, "rb") as handle:
        for block in iter(lambda: handle.read(1 << 20), b""):
            digest.update(block)
    return ModelIdentity(
        name=run.config.model.name, run_name=run.config.name, weights_sha256=digest.hexdigest()
    )


@dataclass
class OutputSeries:
    """The series the results made from one source series go into (SR and SC: one series
    each, one instance per classified image; a SEG makes its own series)."""

    report_uid: str
    overlay_uid: str

    @classmethod
    def new(cls) -> OutputSeries:
        return cls(report_uid=str(hd.UID()), overlay_uid=str(hd.UID()))


def results_for_volume(
    run: LoadedRun, model: ModelIdentity, folder: Path, work: Path
) -> list[ResultObject]:
    """Results for the one series in ``folder`` read as a volume (a 3D run).

    Raises:
        InputError: the series is no regular volume, or does not fit the run.
    """
    image = read_dicom_series(folder)
    headers = sorted_series_datasets(folder)
    if run.task.predicts_masks:
        return [_segmentation(run, model, image, folder, headers, work)]
    return _classification(run, model, image, headers, work, OutputSeries.new(), 1)


def results_for_images(
    run: LoadedRun, model: ModelIdentity, files: list[Path], work: Path
) -> tuple[list[ResultObject], list[str]]:
    """Results for each single-frame image of one series (a 2D run).

    Returns:
        The objects, and one ``"instance <SOPInstanceUID>: <reason>"`` line per image left out
        (a multi-frame file, a non-image, one that does not fit the run).
    """
    series = OutputSeries.new()
    objects: list[ResultObject] = []
    skipped: list[str] = []
    for file in files:
        name = file.name
        try:
            header = read_dicom_dataset(file, header_only=True)
            name = f"instance {header.get('SOPInstanceUID', file.name)}"
            frames = int(header.get("NumberOfFrames", 1) or 1)
            if frames > 1:
                raise InputError(file, f"holds {frames} frames; a 2D run takes single frames")
            image = read_dicom_file(file)
            if run.task.predicts_masks:
                objects.append(_segmentation(run, model, image, [header], [header], work))
            else:
                number = len(objects) // 2 + 1
                objects += _classification(run, model, image, [header], work, series, number)
        except InputError as exc:
            skipped.append(f"{name}: {exc.reason}")
    return objects, skipped


def _segmentation(
    run: LoadedRun,
    model: ModelIdentity,
    image: Image,
    source: Path | list[Dataset],
    headers: list[Dataset],
    work: Path,
) -> ResultObject:
    from medlens.inference.segment import predict_mask

    labels, _ = predict_mask(run, image)
    path = write_dicom_seg(
        image.with_array(labels[None].astype(np.uint8)),
        source,
        list(run.class_names[1:]),
        work / f"seg_{headers[0].SeriesInstanceUID}_{headers[0].SOPInstanceUID}.dcm",
        algorithm_name=model.algorithm_name,
    )
    data = path.read_bytes()
    ds = read_dicom_dataset(path, header_only=True)
    return ResultObject(
        kind="segmentation",
        data=data,
        sop_class_uid=str(ds.SOPClassUID),
        series_instance_uid=str(ds.SeriesInstanceUID),
        sop_instance_uid=str(ds.SOPInstanceUID),
        source_series_uid=str(headers[0].SeriesInstanceUID),
    )


def _classification(
    run: LoadedRun,
    model: ModelIdentity,
    image: Image,
    headers: list[Dataset],
    work: Path,
    series: OutputSeries,
    instance_number: int,
) -> list[ResultObject]:
    from medlens.explain.overlay import save_overlay
    from medlens.explain.run_cases import explain_prepared
    from medlens.inference.loaded_run import prepare_input

    x = prepare_input(run, image)
    explained = explain_prepared(run, [x], EXPLANATION_METHOD)
    names = run.class_names
    probabilities = explained.probabilities[0]
    decided = int(explained.predicted[0])
    finding = ClassificationFinding(
        probabilities={name: float(p) for name, p in zip(names, probabilities, strict=True)},
        decision=names[decided],
        threshold=run.threshold if len(names) == 2 else None,
    )
    png = save_overlay(
        x,
        explained.heatmaps[0],
        work / f"overlay_{headers[0].SOPInstanceUID}.png",
        title=f"{model.algorithm_name}: Grad-CAM for {names[decided]} "
        f"(p = {probabilities[decided]:.2f})",
    )
    report = classification_report(
        headers,
        finding,
        model,
        series_instance_uid=series.report_uid,
        instance_number=instance_number,
    )
    overlay = overlay_secondary_capture(
        headers[0],
        read_rgb(png),
        model,
        "Grad-CAM overlay",
        series_instance_uid=series.overlay_uid,
        instance_number=instance_number,
    )
    source_series = str(headers[0].SeriesInstanceUID)
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
        for kind, ds in (("report", report), ("overlay", overlay))
    ]


def _part10(ds: Dataset) -> bytes:
    buffer = io.BytesIO()
    ds.save_as(buffer, enforce_file_format=True)
    return buffer.getvalue()
