"""De-identifying the real CT (3 slices) and its DICOM-SEG: references, PHI, pixels, log."""

from __future__ import annotations

import csv
from collections.abc import Callable
from pathlib import Path
from typing import Any

import pydicom
import pytest

from medlens.privacy import AnonymizationOptions, AnonymizationReport, anonymize_tree

CT = ("01.dcm", "02.dcm", "03.dcm")


Outputs = Callable[[AnonymizationReport], dict[str, Path]]


def _run(liver_dir: Path, out: Path, key_file: Path, **options: Any) -> AnonymizationReport:
    return anonymize_tree(liver_dir, out, AnonymizationOptions(key_file=key_file, **options))


def _values(phi: Callable, paths: list[Path]) -> dict[str, set[str]]:
    return {kind: {value for _, value in pairs} for kind, pairs in phi(paths).items()}


@pytest.fixture(scope="module")
def basic(
    liver_dir: Path, key_files: tuple[Path, Path], tmp_path_factory: pytest.TempPathFactory
) -> AnonymizationReport:
    return _run(liver_dir, tmp_path_factory.mktemp("basic") / "out", key_files[0])


@pytest.fixture(scope="module")
def shifted(
    liver_dir: Path, key_files: tuple[Path, Path], tmp_path_factory: pytest.TempPathFactory
) -> AnonymizationReport:
    return _run(
        liver_dir,
        tmp_path_factory.mktemp("shifted") / "out",
        key_files[0],
        retain_dates_shifted=True,
        retain_patient_characteristics=True,
    )


def _inputs(liver_dir: Path) -> dict[str, Path]:
    return {
        **{n: liver_dir / "ct" / n for n in CT},
        "liver.dcm": liver_dir / "seg" / "liver.dcm",
        "partial_overlaps.dcm": liver_dir / "seg" / "partial_overlaps.dcm",
    }


def test_every_file_has_an_outcome(
    basic: AnonymizationReport, liver_dir: Path, outputs_of: Outputs
) -> None:
    outputs = outputs_of(basic)
    assert set(outputs) == set(_inputs(liver_dir))
    refused = {o.input_path.name: o.reason for o in basic.outcomes if o.status == "refused"}
    assert set(refused) == {
        "PROVENANCE.md",
        "heart_seg.nrrd",
        "liver_seg.nrrd",
        "liver_spine_seg.nrrd",
        "spine_seg.nrrd",
    }
    assert set(refused.values()) == {"not a DICOM file"}
    assert basic.summary() == "10 files: 5 ok, 0 flagged, 5 refused"


def test_seg_still_references_the_new_ct_uids(
    basic: AnonymizationReport, liver_dir: Path, outputs_of: Outputs
) -> None:
    outputs = outputs_of(basic)
    cts = {n: pydicom.dcmread(outputs[n]) for n in CT}
    seg = pydicom.dcmread(outputs["liver.dcm"])
    originals = {
        n: pydicom.dcmread(p, stop_before_pixels=True) for n, p in _inputs(liver_dir).items()
    }
    new_ct_uids = {str(ds.SOPInstanceUID) for ds in cts.values()}
    assert new_ct_uids.isdisjoint(str(o.SOPInstanceUID) for o in originals.values())

    series = seg.ReferencedSeriesSequence[0]
    assert series.SeriesInstanceUID == cts["01.dcm"].SeriesInstanceUID
    assert {
        str(i.ReferencedSOPInstanceUID) for i in series.ReferencedInstanceSequence
    } == new_ct_uids
    per_frame = {
        str(f.DerivationImageSequence[0].SourceImageSequence[0].ReferencedSOPInstanceUID)
        for f in seg.PerFrameFunctionalGroupsSequence
    }
    assert per_frame == new_ct_uids
    # One study, one frame of reference, as before.
    assert {str(ds.StudyInstanceUID) for ds in [*cts.values(), seg]} == {str(seg.StudyInstanceUID)}
    assert seg.FrameOfReferenceUID == cts["02.dcm"].FrameOfReferenceUID
    # Each CT slice maps to the slice the original SEG pointed at (same input -> same UID).
    for name, original in originals.items():
        if name in CT:
            assert outputs[name].stem == str(cts[name].SOPInstanceUID)
            assert cts[name].InstanceNumber == original.InstanceNumber


def test_no_phi_value_survives_anywhere_in_the_bytes(
    basic: AnonymizationReport, liver_dir: Path, phi: Callable, outputs_of: Outputs
) -> None:
    found = _values(phi, list(_inputs(liver_dir).values()))
    assert (
        found["names"]
        and found["ids"]
        and found["dates"]
        and len(found["uids"]) >= 10
        and found["text"]
    )
    for output in outputs_of(basic).values():
        data = output.read_bytes()
        for kind, values in found.items():
            leaked = [v for v in values if v.encode() in data]
            assert not leaked, f"{kind} left in {output.name}: {leaked}"


def test_profile_marks_private_tags_and_pixels(
    basic: AnonymizationReport, liver_dir: Path, outputs_of: Outputs
) -> None:
    outputs = outputs_of(basic)
    for name, source in _inputs(liver_dir).items():
        original = pydicom.dcmread(source)
        out = pydicom.dcmread(outputs[name])
        assert out.PixelData == original.PixelData
        assert out.file_meta.TransferSyntaxUID == original.file_meta.TransferSyntaxUID
        assert not [e.tag for e in out.iterall() if e.tag.is_private]
        names = {str(e.value) for e in out.iterall() if e.VR == "PN"} - {str(out.PatientID)}
        assert names <= {"", "ANONYMIZED"}  # every person name emptied or replaced
        assert out.PatientIdentityRemoved == "YES"
        assert [c.CodeValue for c in out.DeidentificationMethodCodeSequence] == ["113100"]
        assert out.LongitudinalTemporalInformationModified == "REMOVED"
        assert out.PatientID == out.PatientName and str(out.PatientID).startswith("ANON")
        assert out.file_meta.MediaStorageSOPInstanceUID == out.SOPInstanceUID
        assert "SourceApplicationEntityTitle" not in out.file_meta
        assert "PatientSex" not in out or out.PatientSex == ""
        assert "PatientAge" not in out
    ct = pydicom.dcmread(outputs["01.dcm"])
    assert ct.pixel_array.shape == (512, 512)  # decodes


def test_same_key_same_output_other_key_other_ids(
    basic: AnonymizationReport,
    liver_dir: Path,
    key_files: tuple[Path, Path],
    tmp_path: Path,
    outputs_of: Outputs,
) -> None:
    again = _run(liver_dir, tmp_path / "again", key_files[0])
    other = _run(liver_dir, tmp_path / "other", key_files[1])
    first, second, third = (outputs_of(r) for r in (basic, again, other))
    for name in first:
        assert first[name].relative_to(basic.output_dir) == second[name].relative_to(
            again.output_dir
        )
        assert first[name].read_bytes() == second[name].read_bytes()
        a, c = pydicom.dcmread(first[name]), pydicom.dcmread(third[name])
        for keyword in (
            "PatientID",
            "StudyInstanceUID",
            "SeriesInstanceUID",
            "SOPInstanceUID",
            "FrameOfReferenceUID",
        ):
            assert a[keyword].value != c[keyword].value, keyword
        assert a.PixelData == c.PixelData


def test_log_links_hashes_to_outputs_without_phi(
    basic: AnonymizationReport, liver_dir: Path, phi: Callable
) -> None:
    text = basic.log_path.read_text()
    rows = list(csv.DictReader(text.splitlines()))
    assert [r["status"] for r in rows] == [o.status for o in basic.outcomes]
    for row, outcome in zip(rows, basic.outcomes, strict=True):
        assert row["input_sha256"] == outcome.input_sha256 and len(row["input_sha256"]) == 64
        if outcome.output_path:
            assert (basic.output_dir / row["output_path"]) == outcome.output_path
            assert outcome.output_path.is_file()
    for values in _values(phi, list(_inputs(liver_dir).values())).values():
        assert not [v for v in values if v in text]
    assert "ct/" not in text and "01.dcm" not in text and str(liver_dir) not in text
    assert not list(basic.output_dir.rglob("*.partial"))


def test_dates_shift_by_one_patient_offset_and_times_stay(
    shifted: AnonymizationReport, liver_dir: Path, outputs_of: Outputs
) -> None:
    from datetime import date

    def day(text: str) -> date:
        return date(int(text[:4]), int(text[4:6]), int(text[6:8]))

    outputs = outputs_of(shifted)
    offsets = set()
    for name, source in _inputs(liver_dir).items():
        original, out = pydicom.dcmread(source), pydicom.dcmread(outputs[name])
        for keyword in (
            "StudyDate",
            "SeriesDate",
            "ContentDate",
            "AcquisitionDate",
            "InstanceCreationDate",
        ):
            if original.get(keyword):
                assert out[keyword].value != original[keyword].value
                offsets.add((day(original[keyword].value) - day(out[keyword].value)).days)
        assert out.StudyTime == original.StudyTime
        assert out.PatientSex == original.PatientSex and out.PatientAge == original.PatientAge
        assert out.LongitudinalTemporalInformationModified == "MODIFIED"
        assert {c.CodeValue for c in out.DeidentificationMethodCodeSequence} == {
            "113100",
            "113107",
            "113108",
        }
    # CT and SEG were made 13 years apart: both dates move by the same number of days.
    assert len(offsets) == 1 and 1 <= offsets.pop() <= 3650
