"""Every attribute of Table E.1-1, planted in a real CT slice (top level and inside a sequence),
comes out with its action; private elements go, at every depth."""

from __future__ import annotations

from pathlib import Path
from typing import Any

import pydicom
import pytest
from pydicom.datadict import dictionary_VR
from pydicom.dataset import Dataset
from pydicom.multival import MultiValue

from medlens.privacy import AnonymizationOptions, anonymize_tree
from medlens.privacy.profile_table import PROFILE_ROWS, ProfileRow

_VALUE: dict[str, Any] = {
    "AE": "SECRETAE",
    "AS": "045Y",
    "CS": "SECRETCODE",
    "DA": "19781224",
    "DS": "12.5",
    "DT": "19781224101010",
    "IS": "42",
    "LO": "Secret Long",
    "LT": "secret long text",
    "PN": "Doe^Jane",
    "SH": "SECRETSH",
    "ST": "secret short text",
    "TM": "101010",
    "UC": "secret unlimited",
    "UR": "http://secret.example",
    "UT": "secret unlimited text",
    "FL": 1.5,
    "FD": 2.5,
    "SL": 7,
    "SS": 7,
    "SV": 7,
    "UL": 7,
    "US": 7,
    "UV": 7,
    "OB": b"\x01\x02",
    "OW": b"\x01\x02",
    "OD": b"\x01" * 8,
    "OF": b"\x01" * 4,
    "OL": b"\x01" * 4,
    "OV": b"\x01" * 8,
    "AT": 0x00100010,
}
# Table rows that cannot sit in a dataset body: command (0000) and file meta (0002) groups.
_BODY_ROWS = [
    r
    for r in PROFILE_ROWS
    if "x" not in r.tag_pattern and r.tag_pattern[:4] not in ("0000", "0002")
]


def _planted_value(tag: int, vr: str, n: int) -> Any:
    if vr == "UI":
        return f"1.2.826.0.1.3680043.10.999.{n}"
    if vr == "SQ":
        item = Dataset()
        item.PatientName = "Nested^Secret"
        item.ReferencedSOPClassUID = "1.2.840.10008.5.1.4.1.1.2"
        item.ReferencedSOPInstanceUID = f"1.2.826.0.1.3680043.10.998.{n}"
        item.add_new(0x00091010, "LO", "private secret")
        return [item]
    return _VALUE[vr]


def _plant(ds: Dataset) -> None:
    for n, row in enumerate(_BODY_ROWS):
        tag = int(row.tag_pattern, 16)
        vr = dictionary_VR(tag).split(" or ")[0]
        ds.add_new(tag, vr, _planted_value(tag, vr, n))
    ds.add_new(0x50000005, "US", 1)  # a curve (retired), matched by (50xx,xxxx)
    ds.add_new(0x50003000, "OW", b"\x01\x02")
    ds.add_new(0x60000010, "US", 2)  # an overlay group
    ds.add_new(0x60000011, "US", 2)
    ds.add_new(0x60003000, "OW", b"\x00\x00")
    ds.add_new(0x60004000, "LT", "overlay secret")
    ds.add_new(0x00290010, "LO", "PRIVATE CREATOR")
    ds.add_new(0x00291001, "LO", "private secret")


def _values(value: Any) -> list:
    if value is None or value == "" or value == []:
        return []
    return list(value) if isinstance(value, MultiValue | list) else [value]


def _check(row: ProfileRow, original: Any, out: Dataset, top_level: bool) -> str | None:
    """None when the output element satisfies the row's basic action, else what is wrong."""
    tag = int(row.tag_pattern, 16)
    present = tag in out
    elem = out[tag] if present else None
    empty = present and not _values(elem.value)
    if elem is not None and elem.VR == "SQ":
        nested = list(out[tag].value[0].iterall()) if elem.value else []
        changed = all(e.value != "Nested^Secret" for e in nested) and not any(
            e.tag.is_private for e in nested
        )
        uids_replaced = all(
            str(e.value).startswith("2.25.")
            for e in nested
            if e.keyword == "ReferencedSOPInstanceUID"
        )
        changed = changed and uids_replaced
    else:
        changed = present and not empty and _values(elem.value) != _values(original)
    if top_level and row.tag_pattern in ("00100010", "00100020"):
        return None if str(elem.value).startswith("ANON") else "no pseudonym"
    allowed = {
        "X": not present,
        "Z": empty,
        "D": changed,
        "U": present
        and all(str(v).startswith("2.25.") and v != original for v in _values(elem.value)),
        "X/Z": not present or empty,
        "X/D": not present or changed,
        "Z/D": empty or changed,
        "X/Z/D": not present or empty or changed,
        "X/Z/U*": not present or empty or changed,
    }[row.basic]
    return None if allowed else f"{row.basic}: got {elem!r}"


@pytest.fixture(scope="module")
def planted(liver_dir: Path, tmp_path_factory: pytest.TempPathFactory) -> tuple[Dataset, Dataset]:
    root = tmp_path_factory.mktemp("planted")
    ds = pydicom.dcmread(liver_dir / "ct" / "01.dcm")
    _plant(ds)
    inner = Dataset()
    _plant(inner)
    ds.add_new(0x00081115, "SQ", [inner])  # Referenced Series Sequence: not in the table, kept
    (root / "in").mkdir()
    ds.save_as(root / "in" / "planted.dcm", enforce_file_format=True)
    (root / "key").write_text("planted-test-key-0123456789")
    report = anonymize_tree(root / "in", root / "out", AnonymizationOptions(key_file=root / "key"))
    assert [o.status for o in report.outcomes] == ["ok"], report.outcomes[0].reason
    return pydicom.dcmread(root / "in" / "planted.dcm"), pydicom.dcmread(
        report.outcomes[0].output_path
    )


def test_every_table_attribute_gets_its_action_at_top_level(
    planted: tuple[Dataset, Dataset],
) -> None:
    original, out = planted
    assert len(_BODY_ROWS) > 400
    problems = {
        r.name: p
        for r in _BODY_ROWS
        if (p := _check(r, original[int(r.tag_pattern, 16)].value, out, True))
    }
    assert not problems


def test_every_table_attribute_gets_its_action_inside_a_sequence(
    planted: tuple[Dataset, Dataset],
) -> None:
    original, out = planted
    inner_in, inner_out = original.ReferencedSeriesSequence[0], out.ReferencedSeriesSequence[0]
    problems = {
        r.name: p
        for r in _BODY_ROWS
        if (p := _check(r, inner_in[int(r.tag_pattern, 16)].value, inner_out, False))
    }
    assert not problems


def test_repeating_groups_and_private_elements_are_removed(
    planted: tuple[Dataset, Dataset],
) -> None:
    _, out = planted
    for ds in (out, out.ReferencedSeriesSequence[0]):
        assert not [t for t in ds.keys() if t.group in (0x5000, 0x6000)]  # noqa: SIM118  # curve; whole overlay
    assert not [e.tag for e in out.iterall() if e.tag.is_private]
    assert b"secret" not in out.ReferencedSeriesSequence[0].get("PatientName", "").encode()


def test_compound_actions_follow_the_ct_iod(planted: tuple[Dataset, Dataset]) -> None:
    """CT Image IOD: Institution Name, Series Date, Operators' Name... are Type 3 (removed);
    Content Date, Study Date, Contrast/Bolus Agent are Type 2 (emptied)."""
    _, out = planted
    assert (
        "InstitutionName" not in out
        and "SeriesDate" not in out
        and "SourceImageSequence" not in out
    )
    assert out.ContentDate == "" and out.StudyDate == "" and out.AccessionNumber == ""
    assert out.ClinicalTrialSponsorName == "ANONYMIZED"  # D
    assert "OperatorsName" not in out and "StationName" not in out  # X/Z/D on Type 3
    assert "ReferencedStudySequence" not in out and "InstitutionCodeSequence" not in out
    assert out.ContrastBolusAgent == ""  # Z/D on a Type 2 attribute


def test_phi_of_the_planted_file_is_gone_from_its_bytes(
    planted: tuple[Dataset, Dataset], tmp_path: Path
) -> None:
    _, out = planted
    path = tmp_path / "o.dcm"
    out.save_as(path)
    data = path.read_bytes()
    for secret in (
        b"Doe^Jane",
        b"Nested^Secret",
        b"19781224",
        b"private secret",
        b"SECRETAE",
        b"1.2.826.0.1.3680043.10.99",
    ):
        assert secret not in data, secret
