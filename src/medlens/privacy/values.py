"""Replacement values: dummies that fit each VR, shifted dates, cleaned descriptors."""

from __future__ import annotations

import datetime as dt
from collections.abc import Iterable
from typing import Any

DUMMY_TEXT = "ANONYMIZED"
_DUMMY_BY_VR: dict[str, Any] = {
    "AE": DUMMY_TEXT,
    "AS": "000D",
    "CS": DUMMY_TEXT,
    "DA": "19000101",
    "DS": "0",
    "DT": "19000101000000",
    "IS": "0",
    "LO": DUMMY_TEXT,
    "LT": DUMMY_TEXT,
    "PN": DUMMY_TEXT,
    "SH": DUMMY_TEXT,
    "ST": DUMMY_TEXT,
    "TM": "000000",
    "UC": DUMMY_TEXT,
    "UR": "urn:anonymized",
    "UT": DUMMY_TEXT,
    "FL": 0.0,
    "FD": 0.0,
    "SL": 0,
    "SS": 0,
    "SV": 0,
    "UL": 0,
    "US": 0,
    "UV": 0,
    "OB": b"\x00\x00",
    "OD": b"\x00" * 8,
    "OF": b"\x00" * 4,
    "OL": b"\x00" * 4,
    "OV": b"\x00" * 8,
    "OW": b"\x00\x00",
    "UN": b"\x00\x00",
}
FREE_TEXT_VRS = frozenset({"PN", "LT", "ST", "UT", "UC"})


def dummy_value(vr: str) -> Any:
    """A non-empty value of the VR that carries no information (D action).

    Raises:
        KeyError: for VRs without a dummy (SQ, UI, AT): the caller handles those.
    """
    return _DUMMY_BY_VR[vr.split(" or ")[0]]


def _shift_date(text: str, days: int) -> str | None:
    digits = text.replace(".", "")  # ACR-NEMA wrote YYYY.MM.DD
    if len(digits) != 8 or not digits.isdigit():
        return None
    try:
        day = dt.date(int(digits[:4]), int(digits[4:6]), int(digits[6:]))
        return (day - dt.timedelta(days=days)).strftime("%Y%m%d")
    except (ValueError, OverflowError):
        return None


def shift_da(value: str, days: int) -> str | None:
    """A DA value (``YYYYMMDD``, or a range ``A-B``) moved ``days`` back; None if unparsable."""
    parts = value.strip().split("-")
    shifted = [_shift_date(p, days) if p else "" for p in parts]
    if any(s is None for s in shifted) or not any(shifted):
        return None
    return "-".join(s or "" for s in shifted)


def shift_dt(value: str, days: int) -> str | None:
    """A DT value with its date part moved ``days`` back; time and UTC offset kept.

    ``YYYY`` and ``YYYYMM`` precision keep their precision (the first day of the period is
    shifted). None when the value cannot be parsed.
    """
    value = value.strip()
    date_len = next((i for i, ch in enumerate(value) if not ch.isdigit()), len(value))
    date_len = min(date_len, 8)
    if date_len not in (4, 6, 8):
        return None
    date_part = value[:date_len]
    shifted = _shift_date(date_part + "0101"[: 8 - date_len] if date_len < 8 else date_part, days)
    if shifted is None:
        return None
    return shifted[:date_len] + value[date_len:]


def contains_identifier(text: str, identifiers: Iterable[str]) -> bool:
    """True when ``text`` holds any identifying value (case-insensitive)."""
    folded = text.casefold()
    return any(ident and ident.casefold() in folded for ident in identifiers)
