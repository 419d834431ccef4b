"""The service on several processes: ``medlens serve RUN... --processes N``.

One Python process answers requests under one interpreter lock: on two or more cores, the
event loop (HTTP, multipart parsing, JSON) and the worker threads queue for it, and the
cores stay part idle. ``--processes N`` starts N copies of the service behind one listening
socket (uvicorn's process supervisor; the kernel hands each connection to one of them).

What each process has of its own: every model (memory grows about N times), its
``--max-concurrent`` worker threads, its private workspace. What they share: the socket and
``/metrics``, which adds up the counts of all processes (``prometheus_client``'s
multiprocess mode, in a private folder removed at exit). A process that dies is restarted by
the supervisor. A process that cannot start (a run folder that cannot be loaded, a bad
option) stops them all, and ``serve`` raises its error, one line, as with one process.
"""

from __future__ import annotations

import contextlib
import json
import os
import shutil
import tempfile
from collections.abc import Iterator
from pathlib import Path
from typing import Any

from medlens.errors import ConfigError, MedlensError

__all__ = ["OPTIONS_ENV", "STATE_ENV", "record_startup_error", "run_processes"]

#: The ``create_app`` options, as JSON, for each process's app factory.
OPTIONS_ENV = "MEDLENS_SERVE_OPTIONS"
#: The supervisor's private folder: the metrics of every process, a failed start's reason.
STATE_ENV = "MEDLENS_SERVE_STATE"
#: Read by prometheus_client at import: each process then writes its counts to files there.
MULTIPROC_ENV = "PROMETHEUS_MULTIPROC_DIR"
FACTORY = "medlens.serve.factory:app_from_environment"
STARTUP_ERROR = "startup_error.json"
#: How long a process may take to answer the supervisor's ping (s) before it is replaced.
#: uvicorn's 5 s killed processes still importing torch and loading models on a busy
#: machine, and restarted them forever. Longer is not free: a ping sent just before a
#: process dies waits this long, so a failed start stops the service after up to this long.
HEALTHCHECK_S = 30


def run_processes(options: dict[str, Any], host: str, port: int, processes: int) -> None:
    """Serve with ``processes`` copies of the app until interrupted.

    Args:
        options: ``create_app``'s keyword arguments, JSON-serialisable, with ``run_dirs``
            (list of str) and ``tokens_file`` (str or None) instead of loaded tokens.
        host, port: the address to listen on.
        processes: how many service processes (at least 2; one needs no supervisor).

    Raises:
        ConfigError: fewer than 2 processes.
        MedlensError: the error that stopped a process from starting (its one line).
    """
    import uvicorn

    if isinstance(processes, bool) or not isinstance(processes, int) or processes < 2:
        raise ConfigError("--processes", "must be a whole number, 2 or more, for a supervisor")
    state = Path(tempfile.mkdtemp(prefix="medlens-serve-state-"))  # 0700
    (state / "metrics").mkdir()
    settings = {
        OPTIONS_ENV: json.dumps(options),
        STATE_ENV: str(state),
        MULTIPROC_ENV: str(state / "metrics"),
    }
    try:
        with _environment(settings):  # inherited by each spawned process
            uvicorn.run(
                FACTORY,
                factory=True,
                workers=processes,
                host=host,
                port=port,
                access_log=False,
                log_config=None,
                server_header=False,
                timeout_worker_healthcheck=HEALTHCHECK_S,
            )
        failure = state / STARTUP_ERROR
        if failure.exists():
            raise MedlensError(json.loads(failure.read_text(encoding="utf-8"))["message"])
    finally:
        shutil.rmtree(state, ignore_errors=True)


def record_startup_error(message: str) -> None:
    """Leave a process's start-up error for the supervisor's ``run_processes`` to raise (the
    first one wins: every process fails the same way)."""
    state = os.environ.get(STATE_ENV)
    if not state:
        return
    target = Path(state) / STARTUP_ERROR
    with contextlib.suppress(FileExistsError), open(target, "x", encoding="utf-8") as handle:
        json.dump({"message": message}, handle)


@contextlib.contextmanager
def _environment(settings: dict[str, str]) -> Iterator[None]:
    saved = {key: os.environ.get(key) for key in settings}
    os.environ.update(settings)
    try:
        yield
    finally:
        for key, value in saved.items():
            if value is None:
                os.environ.pop(key, None)
            else:
                os.environ[key] = value
