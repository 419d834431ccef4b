"""DICOM UIDs are data, never paths: the PS3.5 9.1 "UI" grammar.

``is_uid`` is the strict grammar: components of digits separated by ``.``, no leading zero in
a component other than ``0`` itself, at most 64 characters. Some older scanners write
components with leading zeros; ``is_lenient_uid`` accepts those (digits and dots only, no
empty component) and still refuses anything that could act as a path or a URL (``/``, ``..``,
letters). medlens uses the strict form for UIDs it will put in a URL or a new object's
references (the PACS link), and the lenient one to decide whether a file is trustworthy at
all (the service, de-identification).
"""

from __future__ import annotations

import re

from medlens.errors import InputError

MAX_UID_LENGTH = 64
UUID_ROOT = "2.25"
_UID = re.compile(r"(?:0|[1-9][0-9]*)(?:\.(?:0|[1-9][0-9]*))*")
_SHOWN = 80  # characters of a refused value quoted in the message


class InvalidUidError(InputError):
    """A value that should be a DICOM UID is not one (see ``check_uid``)."""


def is_uid(value: object) -> bool:
    """True when ``value`` is a ``str`` in the PS3.5 9.1 UI grammar, at most 64 characters."""
    return (
        isinstance(value, str)
        and 0 < len(value) <= MAX_UID_LENGTH
        and _UID.fullmatch(value) is not None
    )


def check_uid(value: object, what: str, where: str) -> str:
    """``value`` as a ``str`` when it is a DICOM UID.

    Args:
        value: the value read (a ``pydicom`` ``UID`` is a ``str``).
        what: the attribute, e.g. ``"SOPInstanceUID"``.
        where: where it was read (a URL, a file, ``series <id>``), for the message.

    Raises:
        InvalidUidError: ``value`` is no UID; the message quotes it (escaped, shortened).
    """
    if not is_uid(value):
        shown = repr(value if not isinstance(value, str) else value[:_SHOWN])
        more = "..." if isinstance(value, str) and len(value) > _SHOWN else ""
        raise InvalidUidError(
            where,
            f"{what} {shown}{more} is not a DICOM UID (digits in '.'-separated components, "
            f"no leading zeros, at most {MAX_UID_LENGTH} characters); refused",
        )
    return str(value)


_LENIENT = re.compile(r"[0-9]+(?:\.[0-9]+)*")


def is_lenient_uid(value: object) -> bool:
    """True for a ``str`` of digit components separated by single dots, at most 64
    characters (leading zeros allowed)."""
    return (
        isinstance(value, str)
        and 0 < len(value) <= MAX_UID_LENGTH
        and _LENIENT.fullmatch(value) is not None
    )
