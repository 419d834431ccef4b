"""PACS integration with Orthanc: ``medlens pacs process`` and ``medlens pacs watch``.

A run folder's model meets the clinical archive: a study is pulled from Orthanc (DICOMweb
WADO-RS, or the REST API), the model runs on the series it can take, and the results go
back into the same study (STOW-RS, or the REST API) as standard DICOM objects: a DICOM SEG
for segmentation runs; a Basic Text SR and a Grad-CAM Secondary Capture for classification
runs; a Comprehensive 3D SR (TID 1500, a planar ROI per detected object) for detection
runs. ``watch`` does this for each study that becomes stable, once.

Credentials come from the arguments or from ``MEDLENS_ORTHANC_USER`` and
``MEDLENS_ORTHANC_PASSWORD`` (so that a password need not appear in a command line). An
HTTPS Orthanc signed by a private CA is trusted with ``--ca-bundle``; transient network
failures are retried a few times (``RetryPolicy``); results carry UIDs derived from the
model's weights and the source, so running a command again never stores a result twice.

Example:
    >>> result = process_study("http://127.0.0.1:8042", "1.2.3", "runs/liver")  # doctest: +SKIP
    >>> print(result.summary())  # doctest: +SKIP
"""

from __future__ import annotations

import os
from collections.abc import Callable
from pathlib import Path

from medlens.errors import ConfigError
from medlens.pacs.client import (
    DICOMWEB_MODES,
    OrthancClient,
    PacsError,
    RetryPolicy,
    SeriesInfo,
)
from medlens.pacs.process import ProcessResult, StoredObject, process_study
from medlens.pacs.watch import WatchReport, watch

USER_ENV = "MEDLENS_ORTHANC_USER"
PASSWORD_ENV = "MEDLENS_ORTHANC_PASSWORD"

__all__ = [
    "DICOMWEB_MODES",
    "OrthancClient",
    "PacsError",
    "ProcessResult",
    "RetryPolicy",
    "SeriesInfo",
    "StoredObject",
    "WatchReport",
    "orthanc_auth",
    "pacs_process_command",
    "pacs_watch_command",
    "process_study",
    "watch",
]


def orthanc_auth(user: str | None, password: str | None) -> tuple[str, str] | None:
    """``(user, password)`` from the arguments, else the environment; None for no login.

    Raises:
        ConfigError: a user without a password, or a password without a user.
    """
    user = user or os.environ.get(USER_ENV) or None
    password = password or os.environ.get(PASSWORD_ENV) or None
    if user is None and password is None:
        return None
    if user is None:
        raise ConfigError("--user", f"a password was given without a user (or set {USER_ENV})")
    if password is None:
        raise ConfigError("--password", f"user {user!r} needs a password (or set {PASSWORD_ENV})")
    return user, password


def pacs_process_command(
    orthanc: str,
    study: str,
    run_dir: str | Path,
    user: str | None = None,
    password: str | None = None,
    dicomweb: str = "auto",
    ca_bundle: str | Path | None = None,
    retry: RetryPolicy | None = None,
) -> ProcessResult:
    """``medlens pacs process``: one study through the run's model, results stored back.

    Returns the ``ProcessResult``; ``result.summary()`` is the line to print and
    ``result.skipped`` the series or images left out. Running it again (after a kill, say)
    stores only the results that are missing.

    Args:
        ca_bundle: PEM file of the CAs to trust for an HTTPS Orthanc (``--ca-bundle``).
        retry: how transient HTTP failures are retried (default ``RetryPolicy()``).

    Raises:
        InputError, ConfigError, PacsError: see ``process_study`` and ``orthanc_auth``.
    """
    if dicomweb not in DICOMWEB_MODES:
        raise ConfigError("--dicomweb", f"must be one of {', '.join(DICOMWEB_MODES)}")
    return process_study(
        orthanc,
        study,
        run_dir,
        auth=orthanc_auth(user, password),
        dicomweb=dicomweb,
        retry=retry,
        ca_bundle=ca_bundle,
    )


def pacs_watch_command(
    orthanc: str,
    run_dir: str | Path,
    state: str | Path,
    poll_s: float = 2.0,
    once: bool = False,
    user: str | None = None,
    password: str | None = None,
    dicomweb: str = "auto",
    echo: Callable[[str], None] | None = print,
    ca_bundle: str | Path | None = None,
    retry: RetryPolicy | None = None,
) -> WatchReport:
    """``medlens pacs watch``: process each study that becomes stable, until stopped.

    Args:
        orthanc: Orthanc's URL.
        run_dir: a finished run folder.
        state: the state file (last change handled); restarting with it goes on from there.
        poll_s: seconds between polls of the change log.
        once: handle what the change log holds now, then return.
        user, password: Orthanc credentials (see ``orthanc_auth``).
        dicomweb: ``"auto"``, ``"on"`` or ``"off"``.
        echo: called with one line per study processed or passed over.
        ca_bundle: PEM file of the CAs to trust for an HTTPS Orthanc (``--ca-bundle``).
        retry: how transient HTTP failures are retried (default ``RetryPolicy()``).

    Raises:
        ConfigError: ``poll_s`` not positive, an unknown ``dicomweb`` mode, or an unusable
            ``ca_bundle``.
        InputError, PacsError: see ``watch``.
    """
    if poll_s <= 0:
        raise ConfigError("--poll", f"must be a positive number of seconds, got {poll_s}")
    if dicomweb not in DICOMWEB_MODES:
        raise ConfigError("--dicomweb", f"must be one of {', '.join(DICOMWEB_MODES)}")
    return watch(
        orthanc,
        run_dir,
        state,
        poll_s=poll_s,
        auth=orthanc_auth(user, password),
        dicomweb=dicomweb,
        once=once,
        on_event=echo,
        retry=retry,
        ca_bundle=ca_bundle,
    )
