"""The one exception the service's code raises for a request it answers with a 4xx/5xx."""

from __future__ import annotations


class ServiceError(Exception):
    """A request answered with ``status_code`` and a one-line, patient-data-free ``reason``.

    Args:
        status_code: the HTTP status (401, 403, 404, 413, 415, 422, 504, ...).
        reason: one sentence for the client; never a traceback, a server path, or a value
            read from the upload.
        headers: extra response headers (``WWW-Authenticate`` for 401).
    """

    def __init__(
        self, status_code: int, reason: str, headers: dict[str, str] | None = None
    ) -> None:
        self.status_code = status_code
        self.reason = reason
        self.headers = headers or {}
        super().__init__(f"{status_code}: {reason}")
