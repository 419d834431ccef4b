"""Fixtures of the de-identification tests: a key, real DICOM files, a parsed run."""

from __future__ import annotations

from collections.abc import Callable
from pathlib import Path

import pydicom
import pytest
from pydicom.data import get_testdata_file

from medlens.privacy import KEY_ENV_VAR, AnonymizationReport
from medlens.privacy.profile_table import PROFILE_ROWS

TEST_KEY = "medlens-test-key-0123456789abcdef"
OTHER_KEY = "another-key-for-the-same-files-42"
_PERSON_KEYWORDS = frozenset(
    {
        "PatientName",
        "OtherPatientNames",
        "ReferringPhysicianName",
        "PerformingPhysicianName",
        "OperatorsName",
        "NameOfPhysiciansReadingStudy",
        "PhysiciansOfRecord",
        "PatientBirthName",
        "PatientMotherBirthName",
        "RequestingPhysician",
        "ConsultingPhysicianName",
    }
)
_KEPT_KEYWORDS = frozenset(
    {
        "Manufacturer",
        "ManufacturerModelName",
        "SoftwareVersions",
        "SegmentAlgorithmName",
        "ContentLabel",
        "ContentDescription",
    }
)
U_TAGS = frozenset(int(r.tag_pattern, 16) for r in PROFILE_ROWS if r.basic == "U")


@pytest.fixture
def deid_key(monkeypatch: pytest.MonkeyPatch) -> str:
    monkeypatch.setenv(KEY_ENV_VAR, TEST_KEY)
    return TEST_KEY


@pytest.fixture(scope="session")
def dicom_testfile() -> Callable[[str], Path]:
    """Path of a file shipped with pydicom or pydicom-data (never downloaded)."""

    def find(name: str) -> Path:
        path = get_testdata_file(name, download=False)
        assert path is not None, (
            f"pydicom test file {name} is not installed (pydicom-data missing?)"
        )
        return Path(str(path))

    return find


@pytest.fixture(scope="session")
def key_files(tmp_path_factory: pytest.TempPathFactory) -> tuple[Path, Path]:
    """Two key files: the test key and another one."""
    folder = tmp_path_factory.mktemp("keys")
    (folder / "test.key").write_text(TEST_KEY)
    (folder / "other.key").write_text(OTHER_KEY)
    return folder / "test.key", folder / "other.key"


@pytest.fixture(scope="session")
def phi() -> Callable[[list[Path]], dict[str, set[tuple[str, str]]]]:
    """``phi_elements``: the identifying (keyword, value) pairs of input files."""
    return phi_elements


@pytest.fixture(scope="session")
def outputs_of() -> Callable[[AnonymizationReport], dict[str, Path]]:
    """``outputs_by_input``: input file name -> output file."""
    return outputs_by_input


@pytest.fixture(scope="session")
def liver_dir(shared_data: Path) -> Path:
    """The real CT (3 slices) and its two DICOM-SEG, plus NRRD and a PROVENANCE.md."""
    return shared_data / "dicom_ct_liver_seg"


def phi_elements(paths: list[Path]) -> dict[str, set[tuple[str, str]]]:
    """The identifying (keyword, value) pairs of the inputs that the basic profile removes.

    A value that also appears inside an attribute the profile keeps (the institution "QIICR"
    is also the Manufacturer of the SEG, the content creator "Slicer" part of the algorithm
    name "SlicerEditor", DCMTK's Implementation Class UID reused as Instance Creator UID) is
    left out: finding it in the output proves nothing.
    """
    found: dict[str, set[tuple[str, str]]] = {
        k: set() for k in ("names", "ids", "dates", "uids", "text")
    }
    kept: set[str] = {pydicom.uid.PYDICOM_IMPLEMENTATION_UID}  # written into files lacking a meta
    for path in paths:
        ds = pydicom.dcmread(path, force=True)
        for elem in ds.iterall():
            if elem.tag.is_private or elem.VR == "SQ" or elem.value in (None, ""):
                continue
            values = (
                elem.value if isinstance(elem.value, pydicom.multival.MultiValue) else [elem.value]
            )
            for value in map(str, values):
                pair = (elem.keyword, value)
                if elem.keyword in _KEPT_KEYWORDS:
                    kept.add(value)
                if elem.VR == "PN" and elem.keyword in _PERSON_KEYWORDS:
                    found["names"].add(pair)
                elif elem.keyword in ("PatientID", "AccessionNumber", "OtherPatientIDs"):
                    found["ids"].add(pair)
                elif elem.VR == "DA" and len(value) >= 8:
                    found["dates"].add(pair)
                elif int(elem.tag) in U_TAGS:
                    found["uids"].add(pair)
                elif elem.keyword in (
                    "InstitutionName",
                    "InstitutionAddress",
                    "ClinicalTrialCoordinatingCenterName",
                    "StationName",
                    "ReferringPhysicianName",
                    "OperatorsName",
                ):
                    found["text"].add(pair)
        kept.add(str(ds.file_meta.get("ImplementationClassUID", "")))  # the writer's, kept
        if ds.file_meta.get("MediaStorageSOPInstanceUID"):
            found["uids"].add(
                ("MediaStorageSOPInstanceUID", str(ds.file_meta.MediaStorageSOPInstanceUID))
            )
    return {
        kind: {p for p in pairs if not any(p[1] in k for k in kept)}
        for kind, pairs in found.items()
    }


def outputs_by_input(report: AnonymizationReport) -> dict[str, Path]:
    """Input file name -> output file, for the files written."""
    return {o.input_path.name: o.output_path for o in report.outcomes if o.output_path is not None}
