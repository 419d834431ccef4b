"""The deterministic UIDs of medlens results (the UI grammar every UID read is checked
against is ``medlens.data.uids``; it is re-exported here for the PACS modules).

Every UID medlens reads from Orthanc or from a downloaded file is checked against the UI
grammar before it is used anywhere (a URL, a reference in a result, a log line). A value such
as ``1.2/../../x`` is refused with one ``InvalidUidError``.

A result's UIDs are not random: they are ``2.25.<int>`` UIDs (PS3.5 B.2, a UUID as one
integer) whose UUID is the first 128 bits of a SHA-256 of the weights hash of the model, the
result kind and the source's UIDs. Running the same model on the same source again gives the
same UIDs, so a re-run after a kill stores nothing twice, and a series made by this model is
recognised by its UID, which no other series can carry by accident (a Manufacturer can).
"""

from __future__ import annotations

import hashlib
import uuid

from medlens.data.uids import MAX_UID_LENGTH, InvalidUidError, check_uid, is_uid

__all__ = [
    "MAX_UID_LENGTH",
    "InvalidUidError",
    "check_uid",
    "derived_uid",
    "is_uid",
    "result_instance_uid",
    "result_series_uid",
]

UUID_ROOT = "2.25"


def derived_uid(*parts: str) -> str:
    """A ``2.25.<int>`` UID that is a function of ``parts`` (and of nothing else).

    The UUID is the first 128 bits of SHA-256 over the parts (each length-prefixed, so no
    two different lists of parts collide by concatenation), marked as an RFC 9562 version 8
    (custom) UUID. The UID is at most 44 characters long.
    """
    digest = hashlib.sha256()
    for part in parts:
        data = part.encode("utf-8")
        digest.update(len(data).to_bytes(8, "big"))
        digest.update(data)
    value = int.from_bytes(digest.digest()[:16], "big")
    value &= ~(0xF << 76)  # version field
    value |= 0x8 << 76  # version 8: custom
    value &= ~(0x3 << 62)  # variant field
    value |= 0x2 << 62  # variant 10: RFC 9562
    return f"{UUID_ROOT}.{uuid.UUID(int=value).int}"


def result_series_uid(weights_sha256: str, kind: str, source_series_uid: str) -> str:
    """The SeriesInstanceUID of the ``kind`` results a model makes from one source series."""
    return derived_uid("medlens-result-series", weights_sha256, kind, source_series_uid)


def result_instance_uid(
    weights_sha256: str, kind: str, source_series_uid: str, source_sop_instance_uid: str = ""
) -> str:
    """The SOPInstanceUID of the ``kind`` result a model makes from one source image
    (``source_sop_instance_uid``) or from a whole source series read as a volume ("")."""
    return derived_uid(
        "medlens-result-instance", weights_sha256, kind, source_series_uid, source_sop_instance_uid
    )
