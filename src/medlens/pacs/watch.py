"""``medlens pacs watch``: process every study that becomes stable in Orthanc, once.

The watcher follows Orthanc's change log (``GET /changes?since=N``). Each ``StableStudy``
change (no new instance for ``StableAge`` seconds) is a study to process. Storing our
results makes the study stable again; that second change finds every result already in
Orthanc (recognised by the UIDs derived from the model's weights hash and the source, see
``medlens.pacs.uids``) and the study is passed over, so a study is never processed twice.
A Manufacturer "medlens" written by anyone else changes nothing.

The index of the last change handled is kept in a state file, replaced atomically, and a
``StableStudy`` change counts as handled only after all the study's results are stored: a
watcher killed in the middle of an upload handles the change again when restarted, and
stores only the results that are missing. Without a state file it starts at the beginning
of the change log.

A study the run cannot take (no usable series, wrong shape, a UID that is not one) is
reported and passed over; Orthanc becoming unreachable (after the client's retries) stops
the watcher with a ``PacsError`` (the state file keeps its place for the restart).
"""

from __future__ import annotations

import time
from collections.abc import Callable
from dataclasses import dataclass, field
from pathlib import Path

from medlens.errors import InputError
from medlens.pacs.client import OrthancClient, RetryPolicy
from medlens.pacs.process import ProcessResult, load_pacs_run, process_with_client
from medlens.pacs.results import PacsRun, model_identity
from medlens.pacs.watch_state import WatchState, load_watch_state, save_watch_state

CHANGES_PER_PAGE = 100
STABLE_STUDY = "StableStudy"


@dataclass
class WatchReport:
    """What one ``watch`` call did.

    Attributes:
        processed: the studies processed, in order.
        passed_over: ``(StudyInstanceUID, reason)`` for each stable study not processed.
        last_change: the last change index handled (as saved in the state file).
    """

    processed: list[ProcessResult] = field(default_factory=list)
    passed_over: list[tuple[str, str]] = field(default_factory=list)
    last_change: int = 0


def watch(
    orthanc_url: str,
    run_dir: str | Path,
    state_file: str | Path,
    poll_s: float = 2.0,
    stop_after: int | None = None,
    auth: tuple[str, str] | None = None,
    dicomweb: str = "auto",
    once: bool = False,
    timeout_s: float | None = None,
    on_event: Callable[[str], None] | None = None,
    retry: RetryPolicy | None = None,
    ca_bundle: str | Path | None = None,
) -> WatchReport:
    """Process each study that becomes stable in Orthanc with the run's model.

    Args:
        orthanc_url: e.g. ``http://127.0.0.1:8042``.
        run_dir: a finished run folder.
        state_file: JSON file holding the last change index handled (created).
        poll_s: seconds between polls once the change log is read to its end.
        stop_after: return after this many studies were processed (None: no limit).
        auth: ``(user, password)`` for Orthanc, or None.
        dicomweb: ``"auto"``, ``"on"`` or ``"off"`` (see ``OrthancClient``).
        once: read the change log to its current end, then return instead of polling.
        timeout_s: return after this many seconds (None: never).
        on_event: called with one line per study processed or passed over.
        retry: how transient HTTP failures are retried (default ``RetryPolicy()``).
        ca_bundle: PEM file of the CAs to trust for an HTTPS Orthanc.

    Raises:
        InputError: the run folder or the state file is unusable.
        PacsError: Orthanc is unreachable or fails a request.
    """
    run = load_pacs_run(run_dir)
    state = load_watch_state(state_file, orthanc_url)
    report = WatchReport(last_change=state.last_change)
    deadline = None if timeout_s is None else time.monotonic() + timeout_s
    with OrthancClient(
        orthanc_url, auth=auth, dicomweb=dicomweb, retry=retry, ca_bundle=ca_bundle
    ) as client:
        client.system()  # unreachable or refused: fail now with one line, not later
        watcher = _Watcher(client, run, state, Path(state_file), report, on_event)
        while True:
            page = client.changes(state.last_change, limit=CHANGES_PER_PAGE)
            for change in page.get("Changes", []):
                if change.get("ChangeType") == STABLE_STUDY:
                    watcher.handle_stable_study(str(change["ID"]), int(change["Seq"]))
                    if stop_after is not None and len(report.processed) >= stop_after:
                        return report
                state.last_change = int(change["Seq"])
            watcher.save()
            if not page.get("Done", True):
                continue
            if once or (deadline is not None and time.monotonic() >= deadline):
                return report
            time.sleep(poll_s)


@dataclass
class _Watcher:
    client: OrthancClient
    run: PacsRun
    state: WatchState
    state_file: Path
    report: WatchReport
    on_event: Callable[[str], None] | None

    def __post_init__(self) -> None:
        self.model = model_identity(self.run)

    def save(self) -> None:
        save_watch_state(self.state_file, self.state)
        self.report.last_change = self.state.last_change

    def handle_stable_study(self, study_id: str, seq: int) -> None:
        """Process the study (or say why not), then record ``seq`` as handled.

        Any failure other than the study's own (a ``PacsError``, a kill) leaves ``seq``
        unrecorded, so a restart handles the change again.
        """
        try:
            tags = self.client.study_tags(study_id)
        except InputError as exc:  # a StudyInstanceUID that is no UID
            self._pass_over(study_id, exc.reason)
            tags = None
        else:
            if tags is None:
                self._pass_over(study_id, "was deleted from Orthanc before it could be processed")
        if tags is not None:
            study_uid = str(tags["StudyInstanceUID"])
            try:
                result = process_with_client(self.client, self.run, self.model, study_uid, study_id)
            except InputError as exc:
                self._pass_over(study_uid, exc.reason)
            else:
                if result.stored:
                    self.report.processed.append(result)
                    self.state.studies_processed += 1
                    self._say(result.summary())
                else:
                    self._pass_over(study_uid, "holds medlens results already")
        self.state.last_change = seq
        self.save()

    def _pass_over(self, study: str, reason: str) -> None:
        self.report.passed_over.append((study, reason))
        self._say(f"study {study}: not processed: {reason}")

    def _say(self, line: str) -> None:
        if self.on_event is not None:
            self.on_event(line)
