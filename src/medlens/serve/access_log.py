"""Structured (JSON) request logs and the headers every response carries.

One log line per request on the ``medlens.serve.access`` logger, with exactly these fields:
``request_id``, ``method``, ``endpoint`` (the path, never the query string), ``model`` (the
``model`` query parameter, a run name), ``status``, ``duration_ms``. Nothing from the upload
is logged: no file name, no DICOM attribute, no error text (a reason may quote the image).
"""

from __future__ import annotations

import json
import logging
import re
import time
import uuid
from collections.abc import Awaitable, Callable, MutableMapping
from typing import Any
from urllib.parse import parse_qs

from medlens.serve.metrics import ServiceMetrics

access_log = logging.getLogger("medlens.serve.access")

Scope = MutableMapping[str, Any]
Message = MutableMapping[str, Any]
Receive = Callable[[], Awaitable[Message]]
Send = Callable[[Message], Awaitable[None]]
ASGIApp = Callable[[Scope, Receive, Send], Awaitable[None]]

SECURITY_HEADERS = {
    # the page loads only its own script, style and images (data: and blob: for results)
    "content-security-policy": (
        "default-src 'self'; img-src 'self' data: blob:; script-src 'self'; style-src 'self'; "
        "object-src 'none'; frame-ancestors 'none'; base-uri 'none'"
    ),
    "x-content-type-options": "nosniff",
    "referrer-policy": "no-referrer",
    "cache-control": "no-store",
}
_SAFE_NAME = re.compile(r"^[A-Za-z0-9._-]{1,128}$")


class JsonFormatter(logging.Formatter):
    """Each record as one JSON object: time, level, logger, message and its ``fields``."""

    def format(self, record: logging.LogRecord) -> str:
        entry: dict[str, Any] = {
            "time": self.formatTime(record, "%Y-%m-%dT%H:%M:%S%z"),
            "level": record.levelname.lower(),
            "logger": record.name,
            "message": record.getMessage(),
        }
        entry.update(getattr(record, "fields", {}))
        return json.dumps(entry, default=str)


def configure_json_logging(level: int = logging.INFO) -> None:
    """Send medlens' and uvicorn's logs to stderr as JSON lines (used by ``serve``)."""
    handler = logging.StreamHandler()
    handler.setFormatter(JsonFormatter())
    for name in ("medlens", "uvicorn", "uvicorn.error"):
        logger = logging.getLogger(name)
        logger.handlers[:] = [handler]
        logger.setLevel(level)
        logger.propagate = False
    # highdicom reports at INFO which instance UIDs it copies: identifiers stay out of the log
    logging.getLogger("highdicom").setLevel(logging.WARNING)


def _model_name(scope: Scope) -> str | None:
    values = parse_qs(scope.get("query_string", b"").decode("latin-1")).get("model")
    if not values:
        return None
    # only a plausible run name is logged; anything else is not ours to repeat
    return values[0] if _SAFE_NAME.match(values[0]) else "(invalid)"


class AccessLogMiddleware:
    """ASGI middleware: a request id for every request (``X-Request-ID``, also in
    ``scope["state"]["request_id"]``), the security headers, one access-log line, and the
    request counted in ``metrics`` (``GET /metrics``)."""

    def __init__(self, app: ASGIApp, metrics: ServiceMetrics | None = None) -> None:
        self.app = app
        self.metrics = metrics

    async def __call__(self, scope: Scope, receive: Receive, send: Send) -> None:
        if scope["type"] != "http":
            await self.app(scope, receive, send)
            return
        request_id = uuid.uuid4().hex
        scope.setdefault("state", {})["request_id"] = request_id
        start = time.perf_counter()
        status = 500

        async def send_with_headers(message: Message) -> None:
            nonlocal status
            if message["type"] == "http.response.start":
                status = int(message["status"])
                headers = list(message.get("headers", []))
                present = {name.lower() for name, _ in headers}
                headers.append((b"x-request-id", request_id.encode()))
                for name, value in SECURITY_HEADERS.items():
                    if name.encode() not in present:
                        headers.append((name.encode(), value.encode()))
                message["headers"] = headers
            await send(message)

        try:
            await self.app(scope, receive, send_with_headers)
        finally:
            seconds = time.perf_counter() - start
            fields = {
                "request_id": request_id,
                "method": scope.get("method", ""),
                "endpoint": scope.get("path", ""),
                "model": _model_name(scope),
                "status": status,
                "duration_ms": round(seconds * 1000, 2),
            }
            access_log.info("request", extra={"fields": fields})
            if self.metrics is not None:
                self.metrics.observe(str(scope.get("path", "")), status, seconds)
