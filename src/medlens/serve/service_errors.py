"""The one exception the service's code raises for a request it answers with a 4xx/5xx, and
the line between the upload's faults (4xx) and the model's (500)."""

from __future__ import annotations

import contextlib
import logging
from collections.abc import Iterable, Iterator
from pathlib import Path

from medlens.errors import MedlensError

log = logging.getLogger(__name__)


class ServiceError(Exception):
    """A request answered with ``status_code`` and a one-line, patient-data-free ``reason``.

    Args:
        status_code: the HTTP status (401, 403, 404, 413, 415, 422, 500, 504, ...).
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


def model_fault(name: str, exc: Exception, run_dirs: Iterable[str | Path] = ()) -> ServiceError:
    """A 500 for a request that the model or its run folder failed, not the upload: the
    error's own one-line message, each run folder's server path shortened to its name (the
    full message goes to the server's log).

    Args:
        name: the model's name in the service.
        exc: what the model raised (a ``MedlensError``, whose message names what failed and
            why; the model's stages never quote a value of the image).
        run_dirs: the run folders behind the model, whose paths stay on the server.
    """
    log.error("model %s failed on a request: %s", name, exc)
    message = str(exc)
    for run_dir in run_dirs:
        message = message.replace(str(run_dir), Path(run_dir).name)
    return ServiceError(500, f"the model {name!r} failed on this request, not the image: {message}")


@contextlib.contextmanager
def model_stage(name: str, run_dirs: Iterable[str | Path] = ()) -> Iterator[None]:
    """The stages after the upload was checked against the model (inference, calibration,
    decisions, uncertainty, explanation): a ``MedlensError`` raised there is the model's or
    its run folder's fault, answered 500 with its message (``model_fault``) and logged in
    full, never as an image that does not fit (422)."""
    folders = list(run_dirs)
    try:
        yield
    except MedlensError as exc:
        raise model_fault(name, exc, folders) from None
