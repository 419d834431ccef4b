"""``multipart/related`` bodies of DICOM files, as DICOMweb WADO-RS returns and STOW-RS takes.

Decoding goes through the standard library's MIME parser (``email``); encoding is the few
lines RFC 2387 asks for.
"""

from __future__ import annotations

import email.parser
import email.policy
import secrets

DICOM_MEDIA_TYPE = "application/dicom"


def encode_multipart_related(parts: list[bytes]) -> tuple[bytes, str]:
    """``(body, content type)`` of a ``multipart/related; type="application/dicom"`` body.

    Args:
        parts: DICOM Part 10 files, one per part.
    """
    boundary = f"medlens-{secrets.token_hex(16)}"
    chunks = []
    for part in parts:
        chunks.append(
            f"--{boundary}\r\nContent-Type: {DICOM_MEDIA_TYPE}\r\n\r\n".encode() + part + b"\r\n"
        )
    chunks.append(f"--{boundary}--\r\n".encode())
    content_type = f'multipart/related; type="{DICOM_MEDIA_TYPE}"; boundary={boundary}'
    return b"".join(chunks), content_type


def decode_multipart_related(body: bytes, content_type: str) -> list[bytes]:
    """The payload of every part of a ``multipart/related`` response, in order.

    Raises:
        ValueError: the content type is not multipart, or the body holds no parts.
    """
    if not content_type.lower().startswith("multipart/"):
        raise ValueError(f"expected a multipart response, got {content_type!r}")
    header = f"Content-Type: {content_type}\r\nMIME-Version: 1.0\r\n\r\n".encode()
    message = email.parser.BytesParser(policy=email.policy.HTTP).parsebytes(header + body)
    if not message.is_multipart():
        raise ValueError("the multipart body holds no parts")
    parts = []
    for part in message.iter_parts():
        payload = part.get_payload(decode=True)
        parts.append(payload if isinstance(payload, bytes) else b"")
    return parts
