"""The table as data, the choice among compound actions, dates, and the key."""

from __future__ import annotations

from pathlib import Path

import pytest
from pydicom.datadict import dictionary_description

from medlens.errors import ConfigError, InputError
from medlens.privacy import AnonymizationOptions, PixelRegion
from medlens.privacy.actions import Action, option_action, resolve_compound
from medlens.privacy.keys import DeidKey, Pseudonymizer, load_key
from medlens.privacy.profile_table import BASIC_ACTIONS, PROFILE_ROWS, profile_row
from medlens.privacy.values import shift_da, shift_dt


def test_table_rows_name_the_tags_pydicom_knows() -> None:
    """Each tag's name in pydicom's data dictionary matches the standard's row name, which
    catches any mistyped tag among the 431 rows."""
    exact = [r for r in PROFILE_ROWS if "x" not in r.tag_pattern]
    assert len({r.tag_pattern for r in PROFILE_ROWS}) == len(PROFILE_ROWS) > 400
    spelled = {
        "Radiation GenerationMode Description",
        "Radiation GenerationMode Label",
    }  # pydicom's typos
    mismatched = [
        r.name
        for r in exact
        if dictionary_description(int(r.tag_pattern, 16)).replace("’", "'").lower()
        != r.name.lower()
        and dictionary_description(int(r.tag_pattern, 16)) not in spelled
    ]
    assert not mismatched
    assert {r.basic for r in PROFILE_ROWS} <= BASIC_ACTIONS
    assert {a for r in PROFILE_ROWS for a in (r.dates, r.chars, r.desc) if a} == {"K", "C"}


def test_table_rows_of_the_standard() -> None:
    assert profile_row(0x00100010).basic == "Z"  # Patient's Name
    assert profile_row(0x0020000D).basic == "U"  # Study Instance UID
    assert profile_row(0x00080080).basic == "X/Z/D"  # Institution Name
    assert profile_row(0x00082112).basic == "X/Z/U*"  # Source Image Sequence
    assert profile_row(0x00080020).dates == "C" and profile_row(0x00101010).chars == "K"
    assert profile_row(0x0008103E).desc == "C"  # Series Description
    assert profile_row(0x60023000).name == "Overlay Data" and profile_row(0x60033000) is None
    assert profile_row(0x50101234).name == "Curve Data"
    assert profile_row(0x00280010) is None  # Rows: not in the table, kept


@pytest.mark.parametrize(
    ("action", "kind", "expected"),
    [
        ("X/Z", "3", Action.REMOVE),
        ("X/Z", "2", Action.ZERO),
        ("X/Z", "1", Action.ZERO),
        ("X/D", "3", Action.REMOVE),
        ("X/D", "2", Action.DUMMY),
        ("X/D", "1C", Action.DUMMY),
        ("Z/D", "3", Action.ZERO),
        ("Z/D", "2C", Action.ZERO),
        ("Z/D", "1", Action.DUMMY),
        ("X/Z/D", "3", Action.REMOVE),
        ("X/Z/D", "2", Action.ZERO),
        ("X/Z/D", "1", Action.DUMMY),
        ("X/Z/U*", "3", Action.REMOVE),
        ("X/Z/U*", "2", Action.REPLACE_UID),
        ("X/Z/D", None, Action.DUMMY),
        ("X/Z", None, Action.ZERO),
        ("U", "3", Action.REPLACE_UID),
    ],
)
def test_compound_action_keeps_only_what_the_iod_needs(
    action: str, kind: str | None, expected: Action
) -> None:
    assert resolve_compound(action, kind) is expected


def test_options_replace_the_basic_action() -> None:
    allergies, study_date, age = (
        profile_row(0x00102110),
        profile_row(0x00080020),
        profile_row(0x00101010),
    )
    assert option_action(study_date, AnonymizationOptions()) is None
    assert option_action(study_date, AnonymizationOptions(retain_dates_shifted=True)) == "C"
    assert option_action(age, AnonymizationOptions(retain_patient_characteristics=True)) == "K"
    assert option_action(allergies, AnonymizationOptions(clean_descriptors=True)) == "C"
    with pytest.raises(ConfigError, match="profile"):
        AnonymizationOptions(profile="clean")
    with pytest.raises(ConfigError, match="empty"):
        PixelRegion(10, 10, 0, 5)


def test_date_shifting() -> None:
    assert shift_da("20030417", 10) == "20030407"
    assert shift_da("20000301", 1) == "20000229"  # leap year
    assert shift_da("2003.04.17", 17) == "20030331"  # ACR-NEMA style
    assert shift_da("20030101-20030110", 1) == "20021231-20030109"  # a range
    assert shift_dt("20030417104607.123+0100", 20) == "20030328104607.123+0100"  # time kept
    assert shift_dt("200304", 120) == "200212"  # keeps the month precision
    assert shift_da("not a date", 3) is None and shift_dt("2003041", 3) is None


def test_key_is_required_and_never_shown(monkeypatch: pytest.MonkeyPatch, tmp_path: Path) -> None:
    monkeypatch.delenv("MEDLENS_DEID_KEY", raising=False)
    with pytest.raises(ConfigError, match="MEDLENS_DEID_KEY"):
        load_key(AnonymizationOptions())
    monkeypatch.setenv("MEDLENS_DEID_KEY", "short")
    with pytest.raises(ConfigError, match="16 bytes") as info:
        load_key(AnonymizationOptions())
    assert "short" not in str(info.value)
    with pytest.raises(InputError, match="key file"):
        load_key(AnonymizationOptions(key_file=tmp_path / "missing.key"))
    (tmp_path / "k").write_text("a-secret-from-a-file-1234\n")
    key = load_key(AnonymizationOptions(key_file=tmp_path / "k"))
    assert "secret" not in repr(key) and "secret" not in str(key)


def test_pseudonyms_are_keyed_and_stable() -> None:
    one, same, other = (Pseudonymizer(DeidKey(k.encode())) for k in ("k" * 20, "k" * 20, "j" * 20))
    uid = "1.2.392.200103.20080913.113635.2.2009.6.22.21.43.10.23431.1"
    assert one.uid(uid) == same.uid(uid) != other.uid(uid)
    assert one.uid(uid).startswith("2.25.") and len(one.uid(uid)) <= 64
    assert one.uid(uid) != one.uid(uid + "1")
    assert one.patient_id("id:99000") == same.patient_id("id:99000") != other.patient_id("id:99000")
    days = {one.date_shift_days(f"id:{n}") for n in range(200)}
    assert min(days) >= 1 and max(days) <= 3650 and len(days) > 150
