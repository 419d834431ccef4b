"""From a Table E.1-1 row, the options and the IOD, the one action to apply."""

from __future__ import annotations

from enum import StrEnum

from medlens.privacy.options import AnonymizationOptions
from medlens.privacy.profile_table import ProfileRow


class Action(StrEnum):
    """The single actions of PS3.15 E.1.1 (``U`` also stands for U*: keep, replace UIDs inside)."""

    DUMMY = "D"
    ZERO = "Z"
    REMOVE = "X"
    KEEP = "K"
    CLEAN = "C"
    REPLACE_UID = "U"


_REQUIRED = {"1", "1C"}
_TYPE2 = {"2", "2C"}


def option_action(row: ProfileRow, options: AnonymizationOptions) -> str | None:
    """The action an enabled option puts in place of the basic one, if any."""
    if options.retain_dates_shifted and row.dates:
        return row.dates
    if options.retain_patient_characteristics and row.chars:
        return row.chars
    if options.clean_descriptors and row.desc:
        return row.desc
    return None


def resolve_compound(action: str, attr_type: str | None) -> Action:
    """Turn an action of Table E.1-1 into one single action.

    A compound action removes the attribute unless the IOD needs it: a Type 2 attribute is
    kept empty (Z), a Type 1 attribute gets a dummy value (D). ``X/Z/U*`` keeps a required
    reference sequence with its UIDs replaced, so a derived object (SEG, SR) still points at
    its (re-identified) source images; an empty sequence would cut that link. When the type
    is unknown (``attr_type`` None) the choice keeps the object conformant.

    Args:
        action: ``D``, ``Z``, ``X``, ``K``, ``C``, ``U`` or a compound like ``X/Z/D``.
        attr_type: ``1``, ``1C``, ``2``, ``2C``, ``3`` or None (unknown IOD).
    """
    if "/" not in action:
        return Action(action)
    choices = action.rstrip("*").split("/")
    required = attr_type is None or attr_type in _REQUIRED
    needed = required or attr_type in _TYPE2
    if not needed and "X" in choices:
        return Action.REMOVE
    if "U" in choices:
        return Action.REPLACE_UID
    if required and "D" in choices:
        return Action.DUMMY
    if "Z" in choices:
        return Action.ZERO
    return Action.DUMMY
