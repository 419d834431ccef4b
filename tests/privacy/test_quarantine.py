"""Issue 13, PS3.15 Annex E closer to the letter: encapsulated documents refused (or kept in
quarantine on request), capture SOP classes and SECONDARY images flagged, flagged files in
``OUT/quarantine`` only, the preamble zeroed, overlay groups removed whole, fixed reasons."""

from __future__ import annotations

import csv
import shutil
from collections.abc import Callable
from pathlib import Path

import pydicom
import pytest
from pydicom.dataset import Dataset, FileMetaDataset
from pydicom.encaps import encapsulate
from pydicom.sequence import Sequence
from pydicom.uid import (
    MPEG4HP41,
    CTImageStorage,
    EncapsulatedCDAStorage,
    EncapsulatedMTLStorage,
    EncapsulatedOBJStorage,
    EncapsulatedPDFStorage,
    EncapsulatedSTLStorage,
    ExplicitVRLittleEndian,
    MultiFrameGrayscaleByteSecondaryCaptureImageStorage,
    RawDataStorage,
    SecondaryCaptureImageStorage,
    VideoEndoscopicImageStorage,
    VLPhotographicImageStorage,
    VLWholeSlideMicroscopyImageStorage,
)

from medlens.privacy import AnonymizationOptions, PixelRegion, anonymize_tree

PATIENT = "Doe^Jane"
PATIENT_ID = "PID-4711-XYZ"
_N = iter(range(1, 10_000))


def _base(
    sop_class: str, modality: str | None = None, syntax: str = ExplicitVRLittleEndian
) -> Dataset:
    n = next(_N)
    ds = Dataset()
    ds.file_meta = FileMetaDataset()
    ds.file_meta.TransferSyntaxUID = syntax
    ds.SOPClassUID = sop_class
    ds.SOPInstanceUID = f"1.2.826.0.1.3680043.10.777.1.{n}"
    ds.StudyInstanceUID = "1.2.826.0.1.3680043.10.777.2"
    ds.SeriesInstanceUID = f"1.2.826.0.1.3680043.10.777.3.{n}"
    ds.PatientName = PATIENT
    ds.PatientID = PATIENT_ID
    ds.PatientBirthDate = "19781224"
    ds.StudyDate = "20240105"
    if modality is not None:
        ds.Modality = modality
    return ds


def _image(
    sop_class: str,
    modality: str,
    *,
    burned_in: str | None = None,
    image_type: list[str] | None = None,
    syntax: str = ExplicitVRLittleEndian,
) -> Dataset:
    """An 8 x 8 grey image of the SOP class (pixels crafted here, nothing read)."""
    ds = _base(sop_class, modality, syntax)
    ds.Rows = ds.Columns = 8
    ds.SamplesPerPixel = 1
    ds.PhotometricInterpretation = "MONOCHROME2"
    ds.BitsAllocated = ds.BitsStored = 8
    ds.HighBit = 7
    ds.PixelRepresentation = 0
    if burned_in is not None:
        ds.BurnedInAnnotation = burned_in
    if image_type is not None:
        ds.ImageType = image_type
    if syntax == ExplicitVRLittleEndian:
        ds.PixelData = bytes(range(64))
    else:
        ds.PixelData = encapsulate([b"\x00\x00\x01\xb3 not a real stream"])
    return ds


def _document(sop_class: str, mime: str, content: bytes) -> Dataset:
    ds = _base(sop_class, "DOC")
    ds.DocumentTitle = f"Discharge letter {PATIENT}"
    ds.BurnedInAnnotation = "NO"  # what many PDF writers claim: it is no guarantee
    ds.MIMETypeOfEncapsulatedDocument = mime
    ds.EncapsulatedDocument = content + b" " * (len(content) % 2)
    return ds


def _save(ds: Dataset, path: Path, preamble: bytes | None = None) -> Path:
    path.parent.mkdir(parents=True, exist_ok=True)
    if preamble is not None:
        ds.preamble = preamble
    ds.save_as(path, enforce_file_format=True)
    return path


def _log_rows(report) -> list[dict[str, str]]:  # noqa: ANN001
    return list(csv.DictReader(report.log_path.read_text().splitlines()))


def _files(folder: Path) -> list[Path]:
    return sorted(p for p in folder.rglob("*") if p.is_file())


PDF = b"%PDF-1.4\n1 0 obj << /Title (Discharge letter Jane Doe, born 24.12.1978) >> endobj\n"
DOCUMENTS = {
    "pdf": (EncapsulatedPDFStorage, "application/pdf", "PDF"),
    "cda": (EncapsulatedCDAStorage, "text/XML", "CDA"),
    "stl": (EncapsulatedSTLStorage, "model/stl", "STL"),
    "obj": (EncapsulatedOBJStorage, "model/obj", "OBJ"),
    "mtl": (EncapsulatedMTLStorage, "model/mtl", "MTL"),
    "raw": (RawDataStorage, "application/pdf", None),  # a document element in another class
}


# Finding 1: an Encapsulated PDF passed with status "ok", document bytes and title kept.
@pytest.mark.parametrize("kind", sorted(DOCUMENTS))
def test_encapsulated_documents_are_refused_by_default(
    kind: str, tmp_path: Path, deid_key: str
) -> None:
    sop_class, mime, name = DOCUMENTS[kind]
    _save(_document(sop_class, mime, PDF), tmp_path / "in" / f"{kind}.dcm")
    report = anonymize_tree(tmp_path / "in", tmp_path / "out")
    (outcome,) = report.outcomes
    what = f"an encapsulated {name} document" if name else "an encapsulated document"
    assert outcome.status == "refused" and outcome.output_path is None
    assert outcome.reason.startswith(f"{what} may hold identifying text")
    assert _files(tmp_path / "out") == [report.log_path]  # nothing but the log written
    assert b"Jane Doe" not in report.log_path.read_bytes()


def test_an_opted_in_pdf_goes_to_quarantine_with_its_title_emptied(
    tmp_path: Path, deid_key: str
) -> None:
    _save(_document(EncapsulatedPDFStorage, "application/pdf", PDF), tmp_path / "in" / "r.dcm")
    report = anonymize_tree(
        tmp_path / "in", tmp_path / "out", AnonymizationOptions(quarantine_documents=True)
    )
    (outcome,) = report.outcomes
    assert outcome.status == "flagged"
    assert outcome.reason == (
        "encapsulated PDF document kept unchanged: its content is not de-identified"
    )
    assert report.quarantine_dir == tmp_path / "out" / "quarantine"
    assert report.quarantine_dir in outcome.output_path.parents
    out = pydicom.dcmread(outcome.output_path)
    assert out.EncapsulatedDocument.rstrip(b" ") == PDF.rstrip(b" ")  # kept for the reviewer
    assert not out.get("DocumentTitle")  # Type 2 in the Encapsulated Document module: emptied
    assert str(out.PatientName).startswith("ANON") and out.PatientIdentityRemoved == "YES"
    assert b"Discharge letter" not in outcome.output_path.read_bytes().replace(PDF, b"")


# Finding 2: a Secondary Capture of a CT dose report (Modality CT) was "ok".
@pytest.mark.parametrize(
    ("dataset", "reason"),
    [
        (lambda: _image(SecondaryCaptureImageStorage, "CT"), "Secondary Capture SOP class"),
        (
            lambda: _image(MultiFrameGrayscaleByteSecondaryCaptureImageStorage, "CT"),
            "Secondary Capture SOP class",
        ),
        (lambda: _image(VLPhotographicImageStorage, "XC"), "visible light (VL) SOP class"),
        (lambda: _image(VLWholeSlideMicroscopyImageStorage, "SM"), "visible light (VL) SOP class"),
        (
            lambda: _image(VideoEndoscopicImageStorage, "ES", syntax=MPEG4HP41),
            "video SOP class, video transfer syntax",
        ),
        (lambda: _image(CTImageStorage, "CT", syntax=MPEG4HP41), "video transfer syntax"),
        (
            lambda: _image(CTImageStorage, "CT", image_type=["DERIVED", "SECONDARY", "SCREEN"]),
            "Image Type SECONDARY",
        ),
    ],
    ids=["sc-ct", "mf-sc", "vl-photo", "wsi", "video", "mpeg-ct", "secondary"],
)
def test_capture_classes_and_secondary_images_are_flagged(
    dataset: Callable[[], Dataset], reason: str, tmp_path: Path, deid_key: str
) -> None:
    _save(dataset(), tmp_path / "in" / "x.dcm")
    report = anonymize_tree(tmp_path / "in", tmp_path / "out")
    (outcome,) = report.outcomes
    assert (outcome.status, outcome.reason) == ("flagged", f"possible burned-in text: {reason}")
    assert report.quarantine_dir in outcome.output_path.parents


def test_a_real_secondary_capture_with_modality_nm_is_flagged(
    dicom_testfile: Callable[[str], Path], tmp_path: Path, deid_key: str
) -> None:
    """pydicom's JPEG-LL.dcm: Secondary Capture SOP class, Modality NM, Image Type PRIMARY."""
    report = anonymize_tree(dicom_testfile("JPEG-LL.dcm"), tmp_path / "out")
    (outcome,) = report.outcomes
    assert outcome.status == "flagged"
    assert outcome.reason == "possible burned-in text: Secondary Capture SOP class"


@pytest.mark.parametrize(
    ("burned_in", "blank", "modality", "status"),
    [
        ("NO", True, "CT", "ok"),  # the file says NO and the user blanked a box: lifted
        ("NO", False, "CT", "flagged"),  # the device's word alone is not enough
        (None, True, "CT", "flagged"),  # a box alone is not enough
        ("YES", True, "CT", "flagged"),
        ("NO", True, "OT", "flagged"),  # the modality rule is never lifted
    ],
)
def test_burned_in_no_plus_a_blanked_box_lifts_the_capture_rule(
    burned_in: str | None, blank: bool, modality: str, status: str, tmp_path: Path, deid_key: str
) -> None:
    _save(
        _image(SecondaryCaptureImageStorage, modality, burned_in=burned_in),
        tmp_path / "in" / "sc.dcm",
    )
    regions = (PixelRegion(0, 2, 0, 8),) if blank else ()
    report = anonymize_tree(
        tmp_path / "in", tmp_path / "out", AnonymizationOptions(blank_regions=regions)
    )
    (outcome,) = report.outcomes
    assert outcome.status == status, outcome.reason
    in_quarantine = report.quarantine_dir in outcome.output_path.parents
    assert in_quarantine == (status == "flagged")
    if status == "ok":
        assert outcome.reason == "1 pixel regions blanked"
        assert pydicom.dcmread(outcome.output_path).pixel_array[:2].max() == 0


# Finding 3: flagged files were written beside the clean ones.
def test_flagged_files_are_quarantined_never_beside_clean_ones(
    liver_dir: Path, dicom_testfile: Callable[[str], Path], tmp_path: Path, deid_key: str
) -> None:
    folder = tmp_path / "in"
    folder.mkdir()
    shutil.copy(liver_dir / "ct" / "01.dcm", folder / "clean.dcm")
    shutil.copy(dicom_testfile("US1_UNCR.dcm"), folder / "us.dcm")
    burned = pydicom.dcmread(liver_dir / "ct" / "02.dcm")
    burned.BurnedInAnnotation = "YES"
    burned.save_as(folder / "burned.dcm")
    out = tmp_path / "out"
    report = anonymize_tree(folder, out)
    status = {o.input_path.name: o for o in report.outcomes}
    assert status["clean.dcm"].status == "ok"
    assert status["us.dcm"].status == status["burned.dcm"].status == "flagged"
    quarantine = out / "quarantine"
    for name in ("us.dcm", "burned.dcm"):
        assert quarantine in status[name].output_path.parents, name
    clean = status["clean.dcm"].output_path
    assert quarantine not in clean.parents and clean.parents[3] == out  # where it always was
    outside = [p for p in _files(out) if quarantine not in p.parents and p != report.log_path]
    assert outside == [clean]
    rows = {r["status"]: r["output_path"] for r in _log_rows(report) if r["status"] != "ok"}
    assert rows["flagged"].startswith("quarantine/")


# Finding 4: the 128-byte preamble was copied unchanged.
def test_the_preamble_is_zeroed_in_every_output(
    liver_dir: Path, tmp_path: Path, deid_key: str
) -> None:
    preamble = b"Jane Doe 19781224 PID-4711-XYZ".ljust(128, b" ")
    ct = pydicom.dcmread(liver_dir / "ct" / "01.dcm")
    _save(ct, tmp_path / "in" / "ct.dcm", preamble)
    ct.BurnedInAnnotation = "YES"  # flagged, by the rule medlens always had
    _save(ct, tmp_path / "in" / "burned.dcm", preamble)
    assert (tmp_path / "in" / "ct.dcm").read_bytes()[:128] == preamble
    report = anonymize_tree(tmp_path / "in", tmp_path / "out")
    for outcome in report.outcomes:
        data = outcome.output_path.read_bytes()
        assert data[:128] == b"\x00" * 128 and data[128:132] == b"DICM"
        assert b"Jane Doe" not in data and b"PID-4711" not in data
    assert sorted(o.status for o in report.outcomes) == ["flagged", "ok"]


def _overlay(ds: Dataset, group: int) -> None:
    """An overlay group without Overlay Data: geometry plus its two free-text elements."""
    ds.add_new(group << 16 | 0x0010, "US", 8)  # Overlay Rows
    ds.add_new(group << 16 | 0x0011, "US", 8)  # Overlay Columns
    ds.add_new(group << 16 | 0x0022, "LO", "arrow at Jane Doe's lesion")  # Overlay Description
    ds.add_new(group << 16 | 0x0040, "CS", "G")  # Overlay Type
    ds.add_new(group << 16 | 0x0050, "SS", [1, 1])  # Overlay Origin
    ds.add_new(group << 16 | 0x0100, "US", 1)  # Overlay Bits Allocated
    ds.add_new(group << 16 | 0x1500, "LO", "Jane Doe")  # Overlay Label


# Finding 5: Overlay Description and Label were kept when a 60xx group had no Overlay Data.
def test_overlay_groups_go_whole_without_overlay_data(
    liver_dir: Path, tmp_path: Path, deid_key: str
) -> None:
    ct = pydicom.dcmread(liver_dir / "ct" / "01.dcm")
    for group in (0x6000, 0x6002, 0x601E):
        _overlay(ct, group)
    item = Dataset()
    item.SeriesInstanceUID = "1.2.826.0.1.3680043.10.777.9"
    _overlay(item, 0x6000)
    ct.ReferencedSeriesSequence = Sequence([item])  # not in Table E.1-1: kept, walked
    _save(ct, tmp_path / "in" / "ct.dcm")
    report = anonymize_tree(tmp_path / "in", tmp_path / "out")
    (outcome,) = report.outcomes
    assert outcome.status == "ok"
    out = pydicom.dcmread(outcome.output_path)
    assert not [e.tag for e in out.iterall() if 0x6000 <= e.tag.group <= 0x601E]
    assert b"Jane Doe" not in outcome.output_path.read_bytes()
    assert out.Rows == ct.Rows and out.PixelData == ct.PixelData  # the image itself stays


def test_a_real_siemens_overlay_is_removed_whole(
    dicom_testfile: Callable[[str], Path], tmp_path: Path, deid_key: str
) -> None:
    source = dicom_testfile("MR-SIEMENS-DICOM-WithOverlays.dcm")
    original = pydicom.dcmread(source)
    assert any(t.group == 0x6000 for t in original.keys())  # noqa: SIM118 (tags)
    report = anonymize_tree(source, tmp_path / "out")
    out = pydicom.dcmread(report.outcomes[0].output_path)
    assert not [t for t in out.keys() if t.group & 0xFF00 == 0x6000]  # noqa: SIM118 (tags)


# The log: why each file was flagged, in fixed words.
def test_the_log_gives_fixed_reasons_without_patient_data(tmp_path: Path, deid_key: str) -> None:
    folder = tmp_path / "in"
    _save(_image(SecondaryCaptureImageStorage, "CT"), folder / "a.dcm")
    _save(_image(CTImageStorage, "CT", image_type=["DERIVED", "SECONDARY"]), folder / "b.dcm")
    _save(_image(SecondaryCaptureImageStorage, "OT", burned_in="YES"), folder / "c.dcm")
    odd = _image(SecondaryCaptureImageStorage, "DOE JANE")  # a modality no rule names
    _save(odd, folder / "d.dcm")
    _save(_document(EncapsulatedPDFStorage, "application/pdf", PDF), folder / "e.dcm")
    report = anonymize_tree(folder, tmp_path / "out")
    expected = {
        "a.dcm": "possible burned-in text: Secondary Capture SOP class",
        "b.dcm": "possible burned-in text: Image Type SECONDARY",
        "c.dcm": "possible burned-in text: Burned In Annotation is YES, "
        "modality OT often carries burned-in text, Secondary Capture SOP class",
        "d.dcm": "possible burned-in text: Secondary Capture SOP class",
        "e.dcm": "an encapsulated PDF document may hold identifying text that cannot be "
        "removed; left out (quarantine_documents writes it to the quarantine folder for review)",
    }
    rows = _log_rows(report)
    assert list(rows[0]) == ["input_sha256", "output_path", "status", "reason"]
    got = {o.input_path.name: r["reason"] for o, r in zip(report.outcomes, rows, strict=True)}
    assert got == expected
    text = report.log_path.read_text()
    for value in ("Doe", "JANE", PATIENT_ID, "19781224", "20240105", "3680043.10.777"):
        assert value not in text, value


def test_the_cli_option_quarantines_documents(tmp_path: Path, deid_key: str) -> None:
    from typer.testing import CliRunner

    from medlens.cli import app

    _save(_document(EncapsulatedPDFStorage, "application/pdf", PDF), tmp_path / "in" / "r.dcm")
    runner = CliRunner()
    refused = runner.invoke(app, ["anonymize", str(tmp_path / "in"), str(tmp_path / "o1")])
    assert refused.exit_code == 0 and "1 refused" in refused.output
    kept = runner.invoke(
        app, ["anonymize", str(tmp_path / "in"), str(tmp_path / "o2"), "--quarantine-documents"]
    )
    assert kept.exit_code == 0, kept.output
    assert "1 flagged" in kept.output and "quarantine" in kept.output
    assert len(list((tmp_path / "o2" / "quarantine").rglob("*.dcm"))) == 1


def _bomb(path: Path, syntax: str) -> Path:
    """A tiny file whose header declares 65535 x 65535 x 10000 frames of 16 bits."""
    from pydicom.dataset import Dataset, FileMetaDataset
    from pydicom.encaps import encapsulate
    from pydicom.uid import UID, generate_uid

    meta = FileMetaDataset()
    meta.MediaStorageSOPClassUID = "1.2.840.10008.5.1.4.1.1.2"
    meta.MediaStorageSOPInstanceUID = generate_uid()
    meta.TransferSyntaxUID = UID(syntax)
    ds = Dataset()
    ds.file_meta = meta
    ds.SOPClassUID, ds.SOPInstanceUID = (
        meta.MediaStorageSOPClassUID,
        meta.MediaStorageSOPInstanceUID,
    )
    ds.PatientName = "PHI^Marker"
    ds.Modality = "CT"
    ds.Rows = ds.Columns = 65535
    ds.NumberOfFrames = 10000
    ds.SamplesPerPixel, ds.BitsAllocated, ds.BitsStored, ds.HighBit = 1, 16, 16, 15
    ds.PixelRepresentation = 0
    ds.PhotometricInterpretation = "MONOCHROME2"
    ds.PixelData = encapsulate([b"\x00" * 64])
    ds.save_as(path, enforce_file_format=True)
    return path


def test_a_file_declaring_more_pixels_than_the_budget_is_refused_unread(
    tmp_path: Path, deid_key: str
) -> None:
    folder = tmp_path / "in"
    folder.mkdir()
    _bomb(folder / "bomb.dcm", "1.2.840.10008.1.2.5")  # RLE Lossless
    report = anonymize_tree(folder, tmp_path / "out")
    (outcome,) = report.outcomes
    assert outcome.status == "refused" and "voxel budget" in outcome.reason
    assert not list((tmp_path / "out").rglob("*.dcm"))


_DEFLATE_BOMB = """
import sys
from pydicom.dataset import Dataset, FileMetaDataset
from pydicom.uid import DeflatedExplicitVRLittleEndian, generate_uid
meta = FileMetaDataset()
meta.MediaStorageSOPClassUID = "1.2.840.10008.5.1.4.1.1.7"
meta.MediaStorageSOPInstanceUID = generate_uid()
meta.TransferSyntaxUID = DeflatedExplicitVRLittleEndian
ds = Dataset()
ds.file_meta = meta
ds.SOPClassUID, ds.SOPInstanceUID = meta.MediaStorageSOPClassUID, meta.MediaStorageSOPInstanceUID
ds.Rows = ds.Columns = 16
ds.SamplesPerPixel, ds.BitsAllocated, ds.BitsStored, ds.HighBit = 1, 8, 8, 7
ds.PixelRepresentation = 0
ds.PhotometricInterpretation = "MONOCHROME2"
ds.PixelData = bytes(256 * 2**20)  # 256 MiB of zeros behind an honest 16 x 16 header
ds.save_as(sys.argv[1], enforce_file_format=True)
"""


def test_a_deflate_bomb_is_refused_without_inflating_it(tmp_path: Path, deid_key: str) -> None:
    import resource
    import subprocess
    import sys

    folder = tmp_path / "in"
    folder.mkdir()
    path = folder / "deflate_bomb.dcm"
    # made in another process, so this one never holds the 256 MiB
    subprocess.run([sys.executable, "-c", _DEFLATE_BOMB, str(path)], check=True)
    assert path.stat().st_size < 2 * 2**20  # the bomb is small on disk
    before = resource.getrusage(resource.RUSAGE_SELF).ru_maxrss
    report = anonymize_tree(folder, tmp_path / "out")
    grown_mib = (resource.getrusage(resource.RUSAGE_SELF).ru_maxrss - before) / 1024
    (outcome,) = report.outcomes
    assert outcome.status == "refused" and "larger than its header declares" in outcome.reason
    assert grown_mib < 128
