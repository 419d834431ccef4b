"""Where ``medlens pacs watch`` stopped in Orthanc's change log, kept in a small JSON file.

The file is replaced atomically after every change handled, so a watcher killed at any
moment restarts after the last change it finished and never handles a change twice.
"""

from __future__ import annotations

import json
from dataclasses import dataclass
from datetime import UTC, datetime
from pathlib import Path

from medlens.errors import InputError
from medlens.io_utils import write_json_atomic


@dataclass
class WatchState:
    """Attributes:
    orthanc_url: the server the change indices belong to.
    last_change: ``Seq`` of the last change handled (0: none yet).
    studies_processed: how many studies this state file has seen processed.
    """

    orthanc_url: str
    last_change: int = 0
    studies_processed: int = 0


def load_watch_state(path: str | Path, orthanc_url: str) -> WatchState:
    """The state in ``path``, or a fresh one (start of the change log) when it does not exist.

    Raises:
        InputError: the file is not a watch state, or belongs to another Orthanc server
            (its change indices would mean nothing here).
    """
    path = Path(path)
    if not path.exists():
        return WatchState(orthanc_url=orthanc_url)
    try:
        data = json.loads(path.read_text())
        state = WatchState(
            orthanc_url=str(data["orthanc_url"]),
            last_change=int(data["last_change"]),
            studies_processed=int(data.get("studies_processed", 0)),
        )
    except (OSError, ValueError, KeyError, TypeError) as exc:
        raise InputError(
            path, f"is not a medlens watch state ({type(exc).__name__}); delete it to start over"
        ) from None
    if state.orthanc_url.rstrip("/") != orthanc_url.rstrip("/"):
        raise InputError(
            path,
            f"records changes of {state.orthanc_url}, not {orthanc_url}; use another state file",
        )
    return state


def save_watch_state(path: str | Path, state: WatchState) -> None:
    """Replace ``path`` atomically with ``state`` (and the time it was written, UTC)."""
    write_json_atomic(
        path,
        {
            "orthanc_url": state.orthanc_url,
            "last_change": state.last_change,
            "studies_processed": state.studies_processed,
            "updated": datetime.now(UTC).isoformat(timespec="seconds"),
        },
    )
