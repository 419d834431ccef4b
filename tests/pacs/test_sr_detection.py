"""Detections filed as a DICOM SR: highdicom's Comprehensive 3D SR with a TID 1500 Measurement
Report, one planar ROI per detection (a closed POLYLINE in the source image's pixels that
references its SOP instance: the box, or the outline of a Mask R-CNN detection's instance
mask), the class as the finding type and the score (and a mask's area) as measurements.

The SR is built from real DICOM (pydicom's CT test file, and a real BCCD blood smear as a
Secondary Capture), read back with highdicom, and checked against the detections. The last
tests send the smear through a real Orthanc (``LocalOrthanc``) as ``tests/pacs/test_pacs.py``
does, and check what Orthanc then holds.
"""

from __future__ import annotations

import io
from collections.abc import Iterator
from pathlib import Path

import highdicom as hd
import httpx
import numpy as np
import PIL.Image
import pydicom
import pytest
from pydicom.data import get_testdata_file
from pydicom.dataset import Dataset

from medlens.data.boxes.rle import mask_box
from medlens.data.dicom import read_dicom_file
from medlens.errors import InputError
from medlens.inference.detection_run import load_detection_run
from medlens.pacs.commands import process_study
from medlens.pacs.detection_results import detection_sr, find_boxes
from medlens.pacs.local_orthanc import LocalOrthanc
from medlens.pacs.outlines import mask_outline
from medlens.pacs.results import model_identity
from medlens.pacs.sr import ModelIdentity
from medlens.pacs.sr_detection import (
    BoxFinding,
    check_source,
    detection_report,
    read_source_header,
)

from .secondary_capture import secondary_capture, secondary_capture_image

COMPREHENSIVE_3D_SR = "1.2.840.10008.5.1.4.1.1.88.34"
CT_SMALL = str(get_testdata_file("CT_small.dcm"))  # pydicom's real 128 x 128 CT slice
MODEL = ModelIdentity("faster_rcnn", "cells", "ab" * 32)
CLASSES = ["Platelets", "RBC", "WBC"]
MASK_PIXELS = hd.sr.CodedConcept("MASK-PIXELS", "99MEDLENS", "x")
MASK_AREA = hd.sr.CodedConcept("42798000", "SCT", "x")


# -- reading an SR back ---------------------------------------------------------------------


def _part10(ds: Dataset) -> Dataset:
    """``ds`` written as a DICOM file and read back with pydicom."""
    buffer = io.BytesIO()
    ds.save_as(buffer, enforce_file_format=True)
    return pydicom.dcmread(io.BytesIO(buffer.getvalue()))


def _rois(ds: Dataset) -> list[dict]:
    """Each planar ROI of a TID 1500 SR: finding, outline, score, referenced instance."""
    report = hd.sr.Comprehensive3DSR.from_dataset(ds)
    out = []
    for group in report.content.get_planar_roi_measurement_groups():
        (score,) = group.get_measurements(name=hd.sr.CodedConcept("DET-SCORE", "99MEDLENS", "x"))
        region = group.roi
        out.append(
            {
                "label": group.finding_type.meaning,
                "code": group.finding_type.value,
                "graphic_type": region.GraphicType,
                "outline": np.asarray(region.value, dtype=np.float64),
                "score": float(score.value),
                "unit": score.unit.value,
                "referenced": str(
                    region.ContentSequence[0].ReferencedSOPSequence[0].ReferencedSOPInstanceUID
                ),
                "tracking": group.tracking_identifier,
            }
        )
    return out


def _counts(ds: Dataset) -> dict[str, int]:
    """The per-class counts of a detection SR (its image-level measurement groups)."""
    report = hd.sr.Comprehensive3DSR.from_dataset(ds)
    counts = {}
    for group in report.content.get_image_measurement_groups():
        (count,) = group.get_measurements(name=hd.sr.CodedConcept("OBJ-COUNT", "99MEDLENS", "x"))
        assert count.unit.value == "{count}"
        counts[group.finding_type.meaning] = int(count.value)
    return counts


def _mask_measurements(ds: Dataset) -> list[dict[str, tuple[float, str]]]:
    """Each planar ROI's mask measurements: ``pixels`` and ``area`` -> (value, UCUM unit)."""
    report = hd.sr.Comprehensive3DSR.from_dataset(ds)
    out = []
    for group in report.content.get_planar_roi_measurement_groups():
        found = {}
        for key, name in (("pixels", MASK_PIXELS), ("area", MASK_AREA)):
            for measurement in group.get_measurements(name=name):
                found[key] = (float(measurement.value), str(measurement.unit.value))
        out.append(found)
    return out


def _shoelace(points: np.ndarray) -> float:
    x, y = points[:, 0], points[:, 1]
    return 0.5 * abs(float(np.dot(x, np.roll(y, -1)) - np.dot(y, np.roll(x, -1))))


def _disc(rows: int, columns: int, row: float, column: float, radius: float) -> np.ndarray:
    yy, xx = np.mgrid[:rows, :columns]
    return (yy - row) ** 2 + (xx - column) ** 2 <= radius**2


def _outline(box: tuple[float, float, float, float]) -> np.ndarray:
    x1, y1, x2, y2 = box
    return np.array([[x1, y1], [x2, y1], [x2, y2], [x1, y2], [x1, y1]])


# -- sources ---------------------------------------------------------------------------------


def _secondary_capture(
    pixels: np.ndarray, pixel_spacing: tuple[float, float] | None = None, **patient: str
) -> hd.sc.SCImage:
    """RGB uint8 ``(H, W, 3)`` pixels as a Secondary Capture in a study of its own;
    ``patient``: more highdicom arguments (``patient_name``, ``study_date``...)."""
    attributes = {"manufacturer": "medlens tests", "patient_id": "S-1", **patient}
    return secondary_capture_image(pixels, "RGB", pixel_spacing, **attributes)


@pytest.fixture(scope="module")
def ct() -> Dataset:
    """pydicom's real 128 x 128 CT slice."""
    return pydicom.dcmread(CT_SMALL)


@pytest.fixture(scope="module")
def smear_dicom(shared_data: Path) -> bytes:
    """A real BCCD test smear (640 x 480 RGB, not one the run trained on) as a Secondary
    Capture in a study of its own."""
    source = shared_data / "bccd_blood_cells" / "BCCD"
    image_id = (source / "ImageSets" / "Main" / "test.txt").read_text().split()[-1]
    pixels = np.asarray(PIL.Image.open(source / "JPEGImages" / f"{image_id}.jpg").convert("RGB"))
    return secondary_capture(pixels, "B-1", "RGB", manufacturer="BCCD", patient_name="Smear^Test")


# -- the SR ----------------------------------------------------------------------------------


def test_each_detection_is_one_planar_roi_on_the_source_pixels(ct: Dataset) -> None:
    findings = [
        BoxFinding("RBC", 1, 0.875, (10.5, 20.25, 30.0, 40.0)),
        BoxFinding("WBC", 2, 0.5, (64.0, 0.0, 128.0, 100.75)),
        BoxFinding("RBC", 1, 0.25, (0.0, 90.0, 12.0, 128.0)),
    ]
    sr = _part10(detection_report(ct, findings, CLASSES, MODEL, series_number=5, instance_number=3))

    assert sr.SOPClassUID == COMPREHENSIVE_3D_SR
    assert (sr.StudyInstanceUID, sr.PatientID) == (ct.StudyInstanceUID, ct.PatientID)
    assert sr.SeriesInstanceUID != ct.SeriesInstanceUID
    assert (sr.Manufacturer, sr.SeriesDescription) == ("medlens", "medlens detection report")
    assert sr.ContentTemplateSequence[0].TemplateIdentifier == "1500"
    evidence = sr.CurrentRequestedProcedureEvidenceSequence[0].ReferencedSeriesSequence[0]
    assert evidence.ReferencedSOPSequence[0].ReferencedSOPInstanceUID == ct.SOPInstanceUID
    rois = _rois(sr)
    assert len(rois) == len(findings)
    for roi, finding in zip(rois, findings, strict=True):
        assert (roi["label"], roi["code"]) == (finding.label, finding.label)
        assert roi["graphic_type"] == "POLYLINE"
        np.testing.assert_allclose(roi["outline"], _outline(finding.box), atol=1e-4)
        assert roi["score"] == pytest.approx(finding.score, abs=1e-9)
        assert roi["unit"] == "1"
        assert roi["referenced"] == ct.SOPInstanceUID
    assert len({roi["tracking"] for roi in rois}) == len(rois)
    assert _counts(sr) == {"Platelets": 0, "RBC": 2, "WBC": 1}


def test_boxes_are_clipped_to_the_image_and_odd_labels_get_a_safe_code(ct: Dataset) -> None:
    findings = [BoxFinding("white blood cell (band)", 4, 0.9, (-5.0, -2.0, 140.0, 64.0))]
    classes = ["a", "b", "c", "d", "white blood cell (band)"]
    (roi,) = _rois(_part10(detection_report(ct, findings, classes, MODEL)))
    np.testing.assert_allclose(roi["outline"], _outline((0.0, 0.0, 128.0, 64.0)))
    assert (roi["label"], roi["code"]) == ("white blood cell (band)", "CLASS-4")


def test_a_detection_with_a_mask_is_its_mask_outline_and_area(ct: Dataset) -> None:
    disc = _disc(128, 128, 60.3, 70.1, 30.0)
    box = mask_box(disc)
    assert box is not None
    empty = np.zeros((128, 128), bool)
    findings = [
        BoxFinding("WBC", 2, 0.9, box, mask=disc),
        BoxFinding("RBC", 1, 0.8, (10.5, 20.25, 30.0, 40.0)),
        BoxFinding("RBC", 1, 0.7, (90.0, 5.0, 100.0, 15.0), mask=empty),
    ]
    sr = _part10(detection_report(ct, findings, CLASSES, MODEL))  # and read back

    with_mask, boxes_only, empty_mask = _rois(sr)
    assert with_mask["graphic_type"] == "POLYLINE"
    outline = with_mask["outline"]
    np.testing.assert_array_equal(outline[0], outline[-1])  # closed
    assert len(outline) > 20
    assert _shoelace(outline) == pytest.approx(disc.sum(), rel=0.02)
    # on pixel edges: the outline spans exactly the mask's box (no half-pixel shift)
    np.testing.assert_allclose([*outline.min(axis=0), *outline.max(axis=0)], box, atol=1e-4)
    np.testing.assert_allclose(outline, mask_outline(disc), atol=1e-4)
    assert (with_mask["label"], with_mask["score"]) == ("WBC", pytest.approx(0.9))
    assert with_mask["referenced"] == ct.SOPInstanceUID
    np.testing.assert_allclose(boxes_only["outline"], _outline(findings[1].box), atol=1e-4)
    np.testing.assert_allclose(empty_mask["outline"], _outline(findings[2].box), atol=1e-4)

    spacing = [float(v) for v in ct.PixelSpacing]
    measured = _mask_measurements(sr)
    assert measured[0]["pixels"] == (float(disc.sum()), "{pixels}")
    area, unit = measured[0]["area"]
    assert unit == "mm2" and area == pytest.approx(disc.sum() * spacing[0] * spacing[1], rel=1e-5)
    assert measured[1] == {}  # boxes only: the score alone, as before
    assert measured[2] == {"pixels": (0.0, "{pixels}"), "area": (0.0, "mm2")}

    no_spacing = _part10(_secondary_capture(np.zeros((128, 128, 3), np.uint8)))
    (only_pixels,) = _mask_measurements(
        _part10(detection_report(no_spacing, findings[:1], CLASSES, MODEL))
    )
    assert only_pixels == {"pixels": (float(disc.sum()), "{pixels}")}
    with pytest.raises(InputError, match="not on the source image's 128 x 128 pixels"):
        detection_report(ct, [BoxFinding("WBC", 2, 0.9, box, mask=disc[:64])], CLASSES, MODEL)


def test_no_detections_is_a_report_of_zero_counts_on_the_image(ct: Dataset) -> None:
    sr = _part10(detection_report(ct, [], CLASSES, MODEL))
    assert _rois(sr) == []
    assert _counts(sr) == dict.fromkeys(CLASSES, 0)
    groups = hd.sr.Comprehensive3DSR.from_dataset(sr).content.get_image_measurement_groups(
        referenced_sop_instance_uid=ct.SOPInstanceUID
    )
    assert len(groups) == len(CLASSES)  # each count references the image
    with pytest.raises(InputError, match="not among the classes"):
        detection_report(ct, [BoxFinding("cat", 0, 0.5, (0, 0, 1, 1))], CLASSES, MODEL)


def test_a_source_that_is_not_a_dicom_image_is_refused(ct: Dataset, tmp_path: Path) -> None:
    png = tmp_path / "smear.png"
    PIL.Image.fromarray(np.zeros((8, 8), np.uint8)).save(png)
    with pytest.raises(InputError, match="is not a DICOM image: a detection SR references"):
        read_source_header(png)
    with pytest.raises(InputError, match="is not a DICOM image"):
        detection_report(np.zeros((8, 8)), [], CLASSES, MODEL)  # type: ignore[arg-type]
    headerless = Dataset()
    headerless.PatientID = "P-1"
    with pytest.raises(InputError, match="no SOPClassUID, SOPInstanceUID"):
        check_source(headerless)
    frames = pydicom.dcmread(CT_SMALL)
    frames.NumberOfFrames = 4
    with pytest.raises(InputError, match="holds 4 frames"):
        check_source(frames)
    assert read_source_header(CT_SMALL).SOPInstanceUID == ct.SOPInstanceUID


def test_the_sr_of_a_trained_run_holds_its_findings_on_the_smear(
    cells_run: Path, smear_dicom: bytes, tmp_path: Path
) -> None:
    path = tmp_path / "smear.dcm"
    path.write_bytes(smear_dicom)
    header = read_source_header(path)
    image = read_dicom_file(path)
    run = load_detection_run(cells_run, device="cpu")
    expected = find_boxes(run, image, "smear")
    assert expected, "the tiny run finds nothing on this smear: pick another"
    report, findings = detection_sr(
        run, model_identity(run), image, header, hd.UID(), hd.UID(), instance_number=1
    )
    assert findings == expected
    thresholds = dict(zip(run.class_names, run.thresholds, strict=True))
    assert all(f.score >= thresholds[f.label] for f in findings)
    rois = _rois(_part10(report))
    assert [roi["label"] for roi in rois] == [f.label for f in findings]
    counts = _counts(_part10(report))
    assert counts == {name: sum(f.label == name for f in findings) for name in run.class_names}
    for roi, finding in zip(rois, findings, strict=True):
        np.testing.assert_allclose(roi["outline"], _outline(finding.box), rtol=1e-6, atol=1e-4)
        assert roi["referenced"] == header.SOPInstanceUID
        assert roi["outline"][:, 0].min() >= 0 and roi["outline"][:, 0].max() <= 640
        assert roi["outline"][:, 1].min() >= 0 and roi["outline"][:, 1].max() <= 480


def test_the_sr_of_a_mask_rcnn_run_outlines_its_masks(
    wbc_mask_run: Path, wbc_test_image: np.ndarray, tmp_path: Path
) -> None:
    cell = _secondary_capture(wbc_test_image, pixel_spacing=(0.1, 0.1))
    path = tmp_path / "cell.dcm"
    cell.save_as(path, enforce_file_format=True)
    header = read_source_header(path)
    run = load_detection_run(wbc_mask_run, device="cpu")
    report, findings = detection_sr(
        run, model_identity(run), read_dicom_file(path), header, hd.UID(), hd.UID(), 1
    )
    assert findings, "the tiny mask run finds nothing on this cell: pick another"
    rois = _rois(_part10(report))
    measured = _mask_measurements(_part10(report))
    for roi, finding, measures in zip(rois, findings, measured, strict=True):
        assert finding.mask is not None and finding.mask.shape == wbc_test_image.shape[:2]
        expected = mask_outline(finding.mask)
        assert expected is not None
        np.testing.assert_allclose(roi["outline"], expected, atol=1e-4)
        np.testing.assert_array_equal(roi["outline"][0], roi["outline"][-1])
        assert measures["pixels"] == (float(finding.mask.sum()), "{pixels}")
        assert measures["area"][0] == pytest.approx(finding.mask.sum() * 0.01, rel=1e-5)


# -- through a real Orthanc ----------------------------------------------------------------


@pytest.fixture(scope="module")
def pacs() -> Iterator[LocalOrthanc]:
    """Orthanc with the DICOMweb plugin (the Debian package ships it)."""
    with LocalOrthanc(stable_age_s=1) as server:
        assert server.has_dicomweb, "orthanc-dicomweb is not installed"
        yield server


def _http(server: LocalOrthanc) -> httpx.Client:
    return httpx.Client(base_url=server.url, auth=server.auth, timeout=30)


def _upload(server: LocalOrthanc, data: bytes) -> str:
    """POST the file to /instances; the Orthanc id of its study."""
    with _http(server) as client:
        return str(client.post("/instances", content=data).raise_for_status().json()["ParentStudy"])


def _fetch_study(server: LocalOrthanc, study_id: str) -> list[Dataset]:
    """Every instance Orthanc holds in the study, as pydicom datasets."""
    with _http(server) as client:
        ids = [i["ID"] for i in client.get(f"/studies/{study_id}/instances").json()]
        return [
            pydicom.dcmread(io.BytesIO(client.get(f"/instances/{i}/file").content)) for i in ids
        ]


def test_a_smear_study_gets_its_detection_sr_through_orthanc_once(
    pacs: LocalOrthanc, cells_run: Path, smear_dicom: bytes, tmp_path: Path
) -> None:
    source = pydicom.dcmread(io.BytesIO(smear_dicom))
    study_id = _upload(pacs, smear_dicom)

    result = process_study(pacs.url, source.StudyInstanceUID, cells_run, auth=pacs.auth)

    assert (result.task, result.transport) == ("detection", "dicomweb")
    assert [obj.kind for obj in result.stored] == ["detections"]
    (sr,) = [ds for ds in _fetch_study(pacs, study_id) if ds.SOPClassUID == COMPREHENSIVE_3D_SR]
    assert sr.SOPInstanceUID == result.stored[0].sop_instance_uid
    assert sr.StudyInstanceUID == source.StudyInstanceUID
    assert sr.SeriesInstanceUID != source.SeriesInstanceUID
    assert (sr.PatientID, sr.PatientName, sr.Manufacturer) == ("B-1", "Smear^Test", "medlens")

    # the ROIs are the run's findings on the same pixels, computed locally
    (tmp_path / "source.dcm").write_bytes(smear_dicom)
    run = load_detection_run(cells_run, device="cpu")
    expected = find_boxes(run, read_dicom_file(tmp_path / "source.dcm"), "smear")
    rois = _rois(sr)
    assert len(rois) == len(expected) > 0
    assert [roi["label"] for roi in rois] == [f.label for f in expected]
    for roi, finding in zip(rois, expected, strict=True):
        np.testing.assert_allclose(roi["outline"], _outline(finding.box), rtol=1e-6, atol=1e-4)
        assert roi["score"] == pytest.approx(finding.score, abs=1e-9)
        assert roi["referenced"] == source.SOPInstanceUID
    counts = {name: sum(f.label == name for f in expected) for name in run.class_names}
    assert result.stored[0].counts == counts == _counts(sr)

    # again, through the REST API: the SR is there already and is not stored twice
    again = process_study(
        pacs.url, source.StudyInstanceUID, cells_run, auth=pacs.auth, dicomweb="off"
    )
    assert again.stored == [] and again.already_stored == [sr.SOPInstanceUID]
    held = [ds for ds in _fetch_study(pacs, study_id) if ds.SOPClassUID == COMPREHENSIVE_3D_SR]
    assert len(held) == 1
