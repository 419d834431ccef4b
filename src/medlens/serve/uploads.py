"""Receiving one uploaded file from a ``multipart/form-data`` request, size-limited.

The body is parsed as it streams in (python-multipart's push parser) and the ``file`` field is
written to ``<private folder>/upload.bin``: the client's file name is never used on the file
system. The size limit is checked twice: against ``Content-Length`` before anything is read,
and by counting the bytes actually received (a chunked body has no length, and a declared
length can lie).
"""

from __future__ import annotations

import os
from pathlib import Path
from typing import TYPE_CHECKING

from python_multipart.exceptions import MultipartParseError
from python_multipart.multipart import MultipartParser, parse_options_header
from starlette.requests import ClientDisconnect, Request

from medlens.serve.service_errors import ServiceError

if TYPE_CHECKING:  # a TypedDict the module defines for type checkers only
    from python_multipart.multipart import MultipartCallbacks

FILE_FIELD = "file"
UPLOAD_NAME = "upload.bin"
MAX_PARTS = 8


def too_large(max_bytes: int) -> ServiceError:
    return ServiceError(413, f"the request is larger than the limit of {max_bytes / 2**20:.3g} MB")


def check_content_length(request: Request, max_bytes: int) -> None:
    """413 before reading when the declared ``Content-Length`` is over ``max_bytes``."""
    declared = request.headers.get("content-length")
    if declared is None:
        return
    if not declared.isdigit():
        raise ServiceError(400, "the Content-Length header is not a number")
    if int(declared) > max_bytes:
        raise too_large(max_bytes)


class _FilePart:
    """python-multipart callbacks that write the ``file`` field and ignore the others."""

    def __init__(self, target: Path) -> None:
        self.target = target
        self.handle: int | None = None
        self.parts = 0
        self.found = False
        self.size = 0
        self._header_field = b""
        self._header_value = b""
        self._in_file = False

    def callbacks(self) -> MultipartCallbacks:
        return {  # type: ignore[return-value]  # a subset of the callbacks is allowed
            "on_part_begin": self.on_part_begin,
            "on_header_field": self.on_header_field,
            "on_header_value": self.on_header_value,
            "on_header_end": self.on_header_end,
            "on_part_data": self.on_part_data,
            "on_part_end": self.on_part_end,
        }

    def on_part_begin(self) -> None:
        self.parts += 1
        if self.parts > MAX_PARTS:
            raise ServiceError(422, f"the form has more than {MAX_PARTS} fields")
        self._in_file = False

    def on_header_field(self, data: bytes, start: int, end: int) -> None:
        self._header_field += data[start:end]

    def on_header_value(self, data: bytes, start: int, end: int) -> None:
        self._header_value += data[start:end]

    def on_header_end(self) -> None:
        if self._header_field.lower() == b"content-disposition":
            _, options = parse_options_header(self._header_value)
            if options.get(b"name") == FILE_FIELD.encode():
                if self.found:
                    raise ServiceError(422, "send one file per request")
                self.found = self._in_file = True
                # O_EXCL: a fresh file of ours; 0600: readable by the service only
                self.handle = os.open(self.target, os.O_WRONLY | os.O_CREAT | os.O_EXCL, 0o600)
        self._header_field = self._header_value = b""

    def on_part_data(self, data: bytes, start: int, end: int) -> None:
        if self._in_file and self.handle is not None:
            os.write(self.handle, data[start:end])
            self.size += end - start

    def on_part_end(self) -> None:
        self.close()
        self._in_file = False

    def close(self) -> None:
        if self.handle is not None:
            os.close(self.handle)
            self.handle = None


async def receive_upload(request: Request, folder: Path, max_bytes: int) -> Path:
    """Stream the request's ``file`` field into ``folder / "upload.bin"``.

    Args:
        request: a ``multipart/form-data`` request.
        folder: a private (0700) folder of this request.
        max_bytes: the largest request body accepted, in bytes.

    Returns:
        The written file.

    Raises:
        ServiceError: 413 over the limit, 415 not multipart, 400 a malformed body, 422 no
            (or an empty, or a second) ``file`` field.
    """
    check_content_length(request, max_bytes)
    content_type, options = parse_options_header(request.headers.get("content-type", ""))
    if content_type != b"multipart/form-data" or not options.get(b"boundary"):
        raise ServiceError(415, "send the image as multipart/form-data with a 'file' field")
    part = _FilePart(folder / UPLOAD_NAME)
    parser = MultipartParser(options[b"boundary"], part.callbacks())
    received = 0
    try:
        async for chunk in request.stream():
            received += len(chunk)
            if received > max_bytes:
                raise too_large(max_bytes)
            parser.write(chunk)
        parser.finalize()
    except MultipartParseError:
        raise ServiceError(400, "the multipart body is malformed") from None
    except ClientDisconnect:
        raise ServiceError(400, "the client disconnected before the upload was complete") from None
    finally:
        part.close()
    if not part.found:
        raise ServiceError(422, f"the form has no {FILE_FIELD!r} field")
    if part.size == 0:
        raise ServiceError(422, "the uploaded file is empty")
    return part.target
