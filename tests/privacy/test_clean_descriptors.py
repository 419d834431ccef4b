"""Clean Descriptors Option: descriptions stay unless they hold an identifying value; the key
never reaches an output."""

from __future__ import annotations

from pathlib import Path

import pydicom
import pytest

from medlens.privacy import AnonymizationOptions, anonymize_tree


@pytest.fixture
def described_ct(liver_dir: Path, tmp_path: Path) -> Path:
    ds = pydicom.dcmread(liver_dir / "ct" / "01.dcm")  # Protocol Name "6.9 Colonoscopy"
    ds.StudyDescription = "CT abdomen with contrast"
    ds.SeriesDescription = "JANCT000 follow-up"  # holds the Patient's Name
    ds.ImageComments = "accession 03086212"  # holds the Accession Number
    (tmp_path / "in").mkdir()
    ds.save_as(tmp_path / "in" / "ct.dcm")
    return tmp_path / "in"


@pytest.mark.parametrize("clean", [False, True])
def test_descriptions_kept_only_when_clean(
    described_ct: Path, tmp_path: Path, deid_key: str, clean: bool
) -> None:
    options = AnonymizationOptions(clean_descriptors=clean)
    report = anonymize_tree(described_ct, tmp_path / f"out{clean}", options)
    out = pydicom.dcmread(report.outcomes[0].output_path)
    codes = [c.CodeValue for c in out.DeidentificationMethodCodeSequence]
    if clean:
        assert out.StudyDescription == "CT abdomen with contrast"
        assert out.ProtocolName == "6.9 Colonoscopy"
        assert out.SeriesDescription == "ANONYMIZED" and out.ImageComments == "ANONYMIZED"
        assert codes == ["113100", "113105"]
    else:
        for keyword in ("StudyDescription", "SeriesDescription", "ImageComments", "ProtocolName"):
            assert keyword not in out  # X (Type 3 in the CT Image IOD)
        assert codes == ["113100"]


def test_the_key_is_never_written(described_ct: Path, tmp_path: Path, deid_key: str) -> None:
    report = anonymize_tree(described_ct, tmp_path / "out")
    for path in (tmp_path / "out").rglob("*"):
        if path.is_file():
            assert deid_key.encode() not in path.read_bytes()
    assert report.outcomes[0].status == "ok"
    assert deid_key not in repr(report)
