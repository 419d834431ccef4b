"""The app factory each process of ``medlens serve --processes N`` calls (``serve.processes``):
it builds the service from the options the supervisor put in its environment."""

from __future__ import annotations

import json
import logging
import os
import sys
from pathlib import Path
from typing import NoReturn

from fastapi import FastAPI

from medlens.errors import MedlensError
from medlens.serve.access_log import configure_json_logging
from medlens.serve.app import create_app
from medlens.serve.auth import load_token_config
from medlens.serve.processes import OPTIONS_ENV, record_startup_error

__all__ = ["app_from_environment"]

log = logging.getLogger(__name__)
#: uvicorn's exit code for a process that failed before serving: its supervisor then stops
#: instead of restarting the process forever (uvicorn.config.STARTUP_FAILURE).
STARTUP_FAILURE = 3


def app_from_environment() -> FastAPI:
    """``create_app`` with the options in ``$MEDLENS_SERVE_OPTIONS``; a start-up error is
    logged, left for the supervisor, and ends this process with ``STARTUP_FAILURE``."""
    configure_json_logging()
    options = json.loads(os.environ[OPTIONS_ENV])
    try:
        tokens = load_token_config(options.pop("tokens_file"))
        run_dirs = [Path(p) for p in options.pop("run_dirs")]
        return create_app(run_dirs, tokens, **options)
    except MedlensError as exc:
        log.error("the service cannot start: %s", exc)
        _stop(str(exc))
    except Exception as exc:  # any other failure must stop the supervisor too, not loop
        log.exception("the service cannot start")
        _stop(f"the service cannot start: {type(exc).__name__}: {exc}")


def _stop(message: str) -> NoReturn:
    """Leave ``message`` for the supervisor and end this process with ``STARTUP_FAILURE``."""
    record_startup_error(message)
    sys.exit(STARTUP_FAILURE)
