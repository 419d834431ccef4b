"""Detections on one image as a DICOM Comprehensive 3D SR: a TID 1500 Measurement Report
with one planar ROI per detected object, filed in the study of its source image.

The content tree (highdicom's ``MeasurementReport``)::

    CONTAINER (DCM 126000) Imaging Measurement Report
      observation context: the device "medlens" (model name: "<model> (run <name>)")
      CODE      (DCM 121058) Procedure reported         (SCT 363679005) Imaging
      CONTAINER (DCM 111028) Image Library              the source image
      CONTAINER (DCM 126010) Imaging Measurements
        CONTAINER (DCM 125007) Measurement Group        one per detection
          TEXT    (DCM 112039) Tracking Identifier      "<class> <n>"
          UIDREF  (DCM 112040) Tracking Unique Identifier
          CODE    (DCM 121071) Finding                  (99MEDLENS <code>) "<class>"
          CODE    (DCM 111001) Algorithm Name ...       "<model> (run <name>)", medlens version,
                                                        "weights-sha256=<hash>"
          SCOORD  (DCM 111030) Image Region             POLYLINE, the closed outline of the
                                                        instance mask (Mask R-CNN) or else of
                                                        the box, referencing the source image
          NUM     (99MEDLENS DET-SCORE) Detection score the detector's score (UCUM "1")
          NUM     (99MEDLENS MASK-PIXELS) Mask pixel count  with a mask: its pixels (UCUM
                                                        "{pixels}")
          NUM     (SCT 42798000) Area                   with a mask and PixelSpacing: its area
                                                        (UCUM "mm2")
        CONTAINER (DCM 125007) Measurement Group        one per class (TID 1501), after the
                                                        ROIs: "<class> count"
          CODE    (DCM 121071) Finding                  the class
          NUM     (99MEDLENS OBJ-COUNT) Number of objects  how many ROIs have it (UCUM
                                                        "{count}"); a source image reference

Coordinates are the source image's pixels as DICOM defines SCOORD image coordinates: (0, 0)
is the top left corner of the top left pixel and (Columns, Rows) the bottom right corner of
the bottom right pixel; each point is (column, row) = (x, y), so the centre of the top left
pixel is (0.5, 0.5). A box ``x1, y1, x2, y2`` is the outline (x1, y1), (x2, y1), (x2, y2),
(x1, y2), (x1, y1); a mask's outline is traced around its largest connected part (see
``mask_outline``).
"""

from __future__ import annotations

import re
import warnings
from collections.abc import Sequence
from dataclasses import dataclass, field
from pathlib import Path

import highdicom as hd
import numpy as np
from highdicom.coding_schemes import CodingSchemeIdentificationItem
from pydicom.dataset import Dataset
from pydicom.sr.codedict import codes

from medlens import __version__
from medlens.errors import InputError
from medlens.pacs.outlines import box_outline, mask_outline
from medlens.pacs.sr import (
    MANUFACTURER,
    MEDLENS_SCHEME,
    SERIES_DESCRIPTION_PREFIX,
    ModelIdentity,
    with_patient_study_defaults,
)
from medlens.pacs.uids import derived_uid

DETECTION_SCORE = hd.sr.CodedConcept("DET-SCORE", MEDLENS_SCHEME, "Detection score")
MASK_PIXELS = hd.sr.CodedConcept("MASK-PIXELS", MEDLENS_SCHEME, "Mask pixel count")
MASK_AREA = hd.sr.CodedConcept("42798000", "SCT", "Area")
PIXELS_UNIT = hd.sr.CodedConcept("{pixels}", "UCUM", "pixels")
SQUARE_MM = hd.sr.CodedConcept("mm2", "UCUM", "square millimeter")
IMAGING_PROCEDURE = hd.sr.CodedConcept("363679005", "SCT", "Imaging")
OBJECT_COUNT = hd.sr.CodedConcept("OBJ-COUNT", MEDLENS_SCHEME, "Number of objects")
UNITLESS = hd.sr.CodedConcept("1", "UCUM", "no units")
COUNT_UNIT = hd.sr.CodedConcept("{count}", "UCUM", "count")
_SAFE_CODE = re.compile(r"^[A-Za-z0-9._-]{1,16}$")
_REQUIRED = ("SOPClassUID", "SOPInstanceUID", "StudyInstanceUID", "SeriesInstanceUID")


@dataclass(frozen=True)
class BoxFinding:
    """One detected object on the source image.

    Attributes:
        label: the class name (the finding type).
        class_index: the class's 0-based index in the run's classes.
        score: the detector's score (0 to 1).
        box: ``(x1, y1, x2, y2)`` in the source image's pixels (see the module doc).
        mask: the ``(Rows, Columns)`` boolean instance mask on the source image's pixels
            (Mask R-CNN), or None (a boxes-only detector). Not compared: two findings are
            equal when their class, score and box are.
    """

    label: str
    class_index: int
    score: float
    box: tuple[float, float, float, float]
    mask: np.ndarray | None = field(default=None, compare=False, repr=False)


def class_concept(label: str, class_index: int) -> hd.sr.CodedConcept:
    """The finding type of a class: code ``label`` when it is a short plain word (at most 16
    letters, digits, ``.``, ``_``, ``-``), else ``CLASS-<index>``; the meaning is the label."""
    value = label if _SAFE_CODE.match(label) else f"CLASS-{class_index}"
    return hd.sr.CodedConcept(value, MEDLENS_SCHEME, label[:64])


def check_source(source: object, where: str | Path = "source image") -> Dataset:
    """``source`` when it is the header of a single-frame DICOM image a detection SR can
    reference: SOP Class, SOP Instance, Study and Series UIDs, Rows and Columns.

    Raises:
        InputError: anything else (a PNG's pixels, a header without those attributes, a
            multi-frame image), naming ``where``.
    """
    if not isinstance(source, Dataset):
        raise InputError(
            where,
            "is not a DICOM image: a detection SR references its source image's SOP instance, "
            "so detections on PNG, JPEG or NIfTI images cannot be filed as SR",
        )
    missing = [k for k in (*_REQUIRED, "Rows", "Columns") if source.get(k) in (None, "")]
    if missing:
        raise InputError(
            where, f"is not a DICOM image a detection SR can reference: no {', '.join(missing)}"
        )
    frames = int(source.get("NumberOfFrames", 1) or 1)
    if frames > 1:
        raise InputError(where, f"holds {frames} frames; a detection SR takes a single frame")
    return source


def read_source_header(path: str | Path) -> Dataset:
    """The header of the DICOM image at ``path`` (see ``check_source``).

    Raises:
        InputError: the file is not DICOM, or not an image an SR can reference.
    """
    from medlens.data.dicom import read_dicom_dataset

    try:
        header = read_dicom_dataset(path, header_only=True)
    except InputError:
        raise InputError(
            path,
            "is not a DICOM image: a detection SR references its source image's SOP instance, "
            "so detections on PNG, JPEG or NIfTI images cannot be filed as SR",
        ) from None
    return check_source(header, path)


def _region_outline(finding: BoxFinding, rows: int, columns: int) -> np.ndarray:
    """The finding's mask outline when it has a mask that is not empty, else its box's."""
    if finding.mask is not None:
        if finding.mask.shape != (rows, columns):
            raise InputError(
                "detections",
                f"a mask of shape {finding.mask.shape} is not on the source image's "
                f"{rows} x {columns} pixels",
            )
        outline = mask_outline(finding.mask)
        if outline is not None:
            return outline
    return box_outline(finding.box, rows, columns)


def _pixel_area_mm2(source: Dataset) -> float | None:
    """The area of one pixel (mm²) from PixelSpacing; None without a usable one."""
    try:
        row_mm, column_mm = (float(v) for v in source.PixelSpacing)
    except (AttributeError, TypeError, ValueError):
        return None
    area = row_mm * column_mm
    return area if np.isfinite(area) and area > 0 else None


def _mask_measurements(
    mask: np.ndarray, source: Dataset, algorithm: hd.sr.AlgorithmIdentification
) -> list[hd.sr.Measurement]:
    """A mask's pixel count, and its area in mm² when the source has PixelSpacing."""
    pixels = int(np.count_nonzero(mask))
    out = [
        hd.sr.Measurement(
            name=MASK_PIXELS, value=float(pixels), unit=PIXELS_UNIT, algorithm_id=algorithm
        )
    ]
    pixel_mm2 = _pixel_area_mm2(source)
    if pixel_mm2 is not None:
        out.append(
            hd.sr.Measurement(
                name=MASK_AREA, value=pixels * pixel_mm2, unit=SQUARE_MM, algorithm_id=algorithm
            )
        )
    return out


def _roi(
    finding: BoxFinding,
    number: int,
    source: Dataset,
    algorithm: hd.sr.AlgorithmIdentification,
    report_uid: str,
) -> hd.sr.PlanarROIMeasurementsAndQualitativeEvaluations:
    region = hd.sr.ImageRegion(
        graphic_type=hd.sr.GraphicTypeValues.POLYLINE,
        graphic_data=_region_outline(finding, int(source.Rows), int(source.Columns)),
        source_image=hd.sr.SourceImageForRegion.from_source_image(source),
    )
    mask_measurements = (
        [] if finding.mask is None else _mask_measurements(finding.mask, source, algorithm)
    )
    return hd.sr.PlanarROIMeasurementsAndQualitativeEvaluations(
        tracking_identifier=hd.sr.TrackingIdentifier(
            uid=derived_uid("medlens-detection", report_uid, str(number)),
            identifier=f"{finding.label} {number}"[:64],
        ),
        referenced_region=region,
        finding_type=class_concept(finding.label, finding.class_index),
        algorithm_id=algorithm,
        measurements=[
            hd.sr.Measurement(
                name=DETECTION_SCORE,
                value=float(finding.score),
                unit=UNITLESS,
                algorithm_id=algorithm,
            ),
            *mask_measurements,
        ],
    )


def _count_group(
    label: str,
    class_index: int,
    count: int,
    source: Dataset,
    algorithm: hd.sr.AlgorithmIdentification,
    report_uid: str,
) -> hd.sr.MeasurementsAndQualitativeEvaluations:
    return hd.sr.MeasurementsAndQualitativeEvaluations(
        tracking_identifier=hd.sr.TrackingIdentifier(
            uid=derived_uid("medlens-detection-count", report_uid, str(class_index)),
            identifier=f"{label} count"[:64],
        ),
        finding_type=class_concept(label, class_index),
        algorithm_id=algorithm,
        measurements=[
            hd.sr.Measurement(
                name=OBJECT_COUNT, value=float(count), unit=COUNT_UNIT, algorithm_id=algorithm
            )
        ],
        source_images=[hd.sr.SourceImageForMeasurementGroup.from_source_image(source)],
    )


def detection_report(
    source: Dataset,
    findings: Sequence[BoxFinding],
    class_names: Sequence[str],
    model: ModelIdentity,
    series_instance_uid: str | None = None,
    series_number: int = 902,
    instance_number: int = 1,
    sop_instance_uid: str | None = None,
) -> hd.sr.Comprehensive3DSR:
    """A TID 1500 Measurement Report of ``findings`` on ``source``, in its study.

    Args:
        source: the header of the DICOM image the boxes are on (``check_source``).
        findings: the detected objects, one planar ROI each (there may be none): the
            outline of its mask when it has one, else of its box.
        class_names: the run's classes, in order: one count group each (0 included).
        model: the model that found them.
        series_instance_uid: the SR's series; default a new one.
        series_number: SeriesNumber of the SR series.
        instance_number: InstanceNumber of the SR in its series.
        sop_instance_uid: the SR's SOPInstanceUID; default a new one.

    Returns:
        The SR dataset (Manufacturer "medlens", SeriesDescription "medlens detection
        report"), not yet written anywhere.

    Raises:
        InputError: ``source`` is not a DICOM image an SR can reference; no classes, a
            finding whose label is not one of them, or a mask not on the source's pixels.
    """
    source = check_source(source)
    names = [str(name) for name in class_names]
    unknown = sorted({f.label for f in findings} - set(names))
    if not names or unknown:
        raise InputError("detections", f"labels {unknown} are not among the classes {names}")
    sop_instance_uid = sop_instance_uid or hd.UID()
    algorithm = hd.sr.AlgorithmIdentification(
        name=model.algorithm_name[:64],
        version=f"medlens {__version__}",
        parameters=[f"weights-sha256={model.weights_sha256}"],
    )
    device = hd.sr.DeviceObserverIdentifyingAttributes(
        uid=derived_uid("medlens-device", model.weights_sha256),
        name=MANUFACTURER,
        manufacturer_name=MANUFACTURER,
        model_name=model.algorithm_name[:64],
    )
    context = hd.sr.ObservationContext(
        observer_device_context=hd.sr.ObserverContext(
            observer_type=codes.DCM.Device, observer_identifying_attributes=device
        )
    )
    report = hd.sr.MeasurementReport(
        observation_context=context,
        procedure_reported=IMAGING_PROCEDURE,
        imaging_measurements=[
            *(
                _roi(finding, number, source, algorithm, sop_instance_uid)
                for number, finding in enumerate(findings, start=1)
            ),
            *(
                _count_group(
                    name,
                    k,
                    sum(f.label == name for f in findings),
                    source,
                    algorithm,
                    sop_instance_uid,
                )
                for k, name in enumerate(names)
            ),
        ],
        referenced_images=[source],
    )
    evidence = with_patient_study_defaults(source)
    with warnings.catch_warnings():
        # highdicom doubts single-component patient names copied from the source: not ours
        warnings.filterwarnings("ignore", ".*intended person name", UserWarning)
        return hd.sr.Comprehensive3DSR(
            evidence=[evidence],
            content=report,
            series_instance_uid=series_instance_uid or hd.UID(),
            series_number=series_number,
            sop_instance_uid=sop_instance_uid,
            instance_number=instance_number,
            manufacturer=MANUFACTURER,
            is_complete=True,
            is_final=False,
            series_description=f"{SERIES_DESCRIPTION_PREFIX} detection report",
            manufacturer_model_name=model.algorithm_name[:64],
            software_versions=__version__,
            specific_character_set=evidence.get("SpecificCharacterSet") or None,
            coding_schemes=[
                CodingSchemeIdentificationItem(
                    designator=MEDLENS_SCHEME, name="medlens local codes"
                )
            ],
        )
