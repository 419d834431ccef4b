"""Files that may show burned-in text are flagged; configured pixel boxes are blanked."""

from __future__ import annotations

import csv
import shutil
from collections.abc import Callable
from pathlib import Path

import numpy as np
import pydicom
import pytest
from pydicom.uid import ExplicitVRLittleEndian

from medlens.privacy import AnonymizationOptions, PixelRegion, anonymize_tree

# US JPEG 2000 (YBR_RCT), US native RGB planar, US palette RLE 2 frames, MR 10 frames native.
FILES = ("US1_J2KR.dcm", "color-pl.dcm", "OBXXXX1A_rle_2frame.dcm", "emri_small.dcm")


@pytest.fixture
def folder(dicom_testfile: Callable[[str], Path], liver_dir: Path, tmp_path: Path) -> Path:
    target = tmp_path / "in"
    target.mkdir()
    for name in FILES:
        shutil.copy(dicom_testfile(name), target / name)
    ct = pydicom.dcmread(liver_dir / "ct" / "01.dcm")
    ct.BurnedInAnnotation = "YES"
    ct.save_as(target / "ct_burned.dcm")
    return target


def test_flags_burned_in_annotation_and_modalities(
    folder: Path, tmp_path: Path, deid_key: str
) -> None:
    report = anonymize_tree(folder, tmp_path / "out")
    outcome = {o.input_path.name: o for o in report.outcomes}
    assert outcome["ct_burned.dcm"].status == "flagged"
    assert outcome["ct_burned.dcm"].reason == "possible burned-in text: Burned In Annotation is YES"
    for name in ("US1_J2KR.dcm", "color-pl.dcm", "OBXXXX1A_rle_2frame.dcm"):
        assert outcome[name].status == "flagged" and "modality US" in outcome[name].reason
    assert outcome["emri_small.dcm"].status == "ok"
    rows = {r["status"] for r in csv.DictReader(report.log_path.read_text().splitlines())}
    assert rows == {"ok", "flagged"}
    for o in report.outcomes:  # flagged files are written all the same, pixels untouched
        assert pydicom.dcmread(o.output_path).PixelData == pydicom.dcmread(o.input_path).PixelData


def test_regions_are_blanked_in_every_frame_and_written_uncompressed(
    folder: Path, tmp_path: Path, deid_key: str, outputs_of: Callable
) -> None:
    regions = (PixelRegion(0, 40, 0, 10_000, modality="US"), PixelRegion(5, 20, 30, 50))
    report = anonymize_tree(folder, tmp_path / "out", AnonymizationOptions(blank_regions=regions))
    outputs = outputs_of(report)
    for name in (*FILES, "ct_burned.dcm"):
        original, out = pydicom.dcmread(folder / name), pydicom.dcmread(outputs[name])
        syntax = original.file_meta.TransferSyntaxUID
        assert out.file_meta.TransferSyntaxUID == (
            ExplicitVRLittleEndian if syntax.is_compressed else syntax
        )
        before, after = original.pixel_array, out.pixel_array
        frames = int(original.get("NumberOfFrames", 1) or 1)
        shape = (frames, int(original.Rows), int(original.Columns), -1)
        before, after = before.reshape(shape), after.reshape(shape)
        mask = np.zeros(after.shape[:3], dtype=bool)
        mask[:, 5:20, 30:50] = True
        if original.Modality == "US":
            mask[:, :40, :] = True
        assert (after[mask] == 0).all(), name
        assert np.array_equal(after[~mask], before[~mask]), (
            name
        )  # lossless input: the rest is intact
        codes = [c.CodeValue for c in out.DeidentificationMethodCodeSequence]
        assert codes == ["113100", "113101"]
    reasons = {o.input_path.name: o.reason for o in report.outcomes}
    assert reasons["US1_J2KR.dcm"].endswith("; 2 pixel regions blanked")
    assert reasons["emri_small.dcm"] == "1 pixel regions blanked"
