"""``multipart/related`` bodies of DICOM files, as DICOMweb WADO-RS returns and STOW-RS takes.

Encoding is the few lines RFC 2387 asks for. Decoding is a streaming splitter
(``MultipartSplitter``): it is fed the body chunk by chunk, as it arrives, and writes each
part into its own sink (a file, for a downloaded series), so a series is never held in
memory whole; it keeps at most one chunk plus a boundary's length.
"""

from __future__ import annotations

import email.message
import io
import secrets
from collections.abc import Callable, Iterable
from typing import BinaryIO

DICOM_MEDIA_TYPE = "application/dicom"
MAX_PART_HEADER_BYTES = 64 * 1024


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


def multipart_boundary(content_type: str) -> str:
    """The ``boundary`` parameter of a multipart content type.

    Raises:
        ValueError: not a multipart type, or no boundary.
    """
    if not content_type.lower().startswith("multipart/"):
        raise ValueError(f"expected a multipart response, got {content_type!r}")
    message = email.message.Message()
    message["Content-Type"] = content_type
    boundary = message.get_param("boundary")
    if not isinstance(boundary, str) or not boundary:
        raise ValueError(f"the content type {content_type!r} names no boundary")
    return boundary


class MultipartSplitter:
    """Split a ``multipart/related`` body, fed in chunks, into one sink per part.

    Args:
        content_type: the response's Content-Type (it names the boundary).
        open_part: called with the part's index (0, 1, ...) when a part starts; returns the
            binary sink its payload is written to. The splitter closes it when the part ends.

    Raises:
        ValueError: (from ``feed`` / ``close``) no boundary, a part header over 64 KiB, or a
            body cut short before its closing boundary.
    """

    def __init__(self, content_type: str, open_part: Callable[[int], BinaryIO]) -> None:
        self._delimiter = b"\r\n--" + multipart_boundary(content_type).encode("latin-1")
        self._open_part = open_part
        self._buffer = bytearray(b"\r\n")  # so the first boundary looks like every other one
        self._state = "preamble"
        self._sink: BinaryIO | None = None
        self.parts = 0

    def feed(self, chunk: bytes) -> None:
        """Take the next bytes of the body."""
        self._buffer += chunk
        while self._step():
            pass

    def close(self) -> int:
        """End of the body: the number of parts.

        Raises:
            ValueError: the body ended before its closing boundary.
        """
        if self._state != "done":
            self._close_sink()
            raise ValueError("the multipart body is cut short (no closing boundary)")
        return self.parts

    def _step(self) -> bool:
        """Consume what the buffer allows in the current state; True to go on."""
        buf = self._buffer
        if self._state == "preamble":
            at = buf.find(self._delimiter)
            if at < 0:
                keep = len(self._delimiter) - 1
                if len(buf) > keep:
                    del buf[: len(buf) - keep]
                return False
            del buf[: at + len(self._delimiter)]
            self._state = "delimiter"
            return True
        if self._state == "delimiter":  # after "--boundary": "--" ends, else padding + CRLF
            if len(buf) < 2:
                return False
            if buf[:2] == b"--":
                self._state = "done"
                buf.clear()
                return False
            end = buf.find(b"\r\n")
            if end < 0:
                if len(buf) > MAX_PART_HEADER_BYTES:
                    raise ValueError("a multipart boundary line is too long")
                return False
            del buf[: end + 2]
            self._state = "headers"
            return True
        if self._state == "headers":
            if buf[:2] == b"\r\n":
                end = 0  # no header lines
            else:
                found = buf.find(b"\r\n\r\n")
                if found < 0:
                    if len(buf) > MAX_PART_HEADER_BYTES:
                        raise ValueError("a multipart part header is over 64 KiB")
                    return False
                end = found + 2
            del buf[: end + 2]
            self._sink = self._open_part(self.parts)
            self.parts += 1
            self._state = "body"
            return True
        if self._state == "body":
            assert self._sink is not None
            at = buf.find(self._delimiter)
            if at < 0:
                safe = len(buf) - (len(self._delimiter) - 1)
                if safe > 0:
                    self._sink.write(bytes(buf[:safe]))
                    del buf[:safe]
                return False
            self._sink.write(bytes(buf[:at]))
            self._close_sink()
            del buf[: at + len(self._delimiter)]
            self._state = "delimiter"
            return True
        buf.clear()  # "done": the epilogue is ignored
        return False

    def _close_sink(self) -> None:
        if self._sink is not None:
            self._sink.close()
            self._sink = None


def split_multipart(
    chunks: Iterable[bytes], content_type: str, open_part: Callable[[int], BinaryIO]
) -> int:
    """Feed every chunk to a ``MultipartSplitter``; the number of parts.

    Raises:
        ValueError: see ``MultipartSplitter``.
    """
    splitter = MultipartSplitter(content_type, open_part)
    for chunk in chunks:
        splitter.feed(chunk)
    return splitter.close()


class _Part(io.BytesIO):
    """A BytesIO whose value outlives ``close``."""

    def close(self) -> None:
        self.value = self.getvalue()
        super().close()


def decode_multipart_related(body: bytes, content_type: str) -> list[bytes]:
    """The payload of every part of a ``multipart/related`` body held in memory, in order.

    Raises:
        ValueError: the content type is not multipart, or the body is cut short.
    """
    parts: list[_Part] = []

    def open_part(_: int) -> BinaryIO:
        parts.append(_Part())
        return parts[-1]

    split_multipart([body], content_type, open_part)
    return [part.value for part in parts]
