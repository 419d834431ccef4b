"""What happened to each file, and the CSV log of it (no patient information in either)."""

from __future__ import annotations

import csv
import io
from dataclasses import dataclass, field
from pathlib import Path
from typing import Literal

from medlens.io_utils import write_atomic

Status = Literal["ok", "flagged", "refused"]
LOG_NAME = "deidentification_log.csv"
QUARANTINE_NAME = "quarantine"  # OUT/quarantine/...: flagged files, to review before release
LOG_COLUMNS = ("input_sha256", "output_path", "status", "reason")


@dataclass(frozen=True)
class FileOutcome:
    """One input file.

    Attributes:
        input_path: the file read (kept in memory for the caller; never written to the log).
        input_sha256: SHA-256 of the input bytes, the only link from the log back to the input.
        output_path: the de-identified file, or None when refused.
        status: ``ok``; ``flagged`` (written under ``OUT/quarantine/``, never beside the
            clean files: the pixels may show burned-in text, or it is an encapsulated
            document kept for review); ``refused`` (left out).
        reason: why it was flagged or refused, in words that quote no value of the file.
    """

    input_path: Path
    input_sha256: str
    output_path: Path | None
    status: Status
    reason: str = ""


@dataclass
class AnonymizationReport:
    """The outcome of ``anonymize_tree``.

    Attributes:
        outcomes: one entry per input file, in input order.
        output_dir: the folder written to.
        log_path: the CSV log (input SHA-256, output path, status, reason).
        seconds: wall-clock time of the run.
    """

    outcomes: list[FileOutcome] = field(default_factory=list)
    output_dir: Path = Path()
    log_path: Path = Path()
    seconds: float = 0.0

    @property
    def quarantine_dir(self) -> Path:
        """Where flagged files go: ``OUT/quarantine`` (it exists only when one was written)."""
        return self.output_dir / QUARANTINE_NAME

    def count(self, status: Status) -> int:
        return sum(1 for o in self.outcomes if o.status == status)

    def summary(self) -> str:
        """One line, e.g. ``12 files: 10 ok, 1 flagged, 1 refused``."""
        files = "file" if len(self.outcomes) == 1 else "files"
        return (
            f"{len(self.outcomes)} {files}: {self.count('ok')} ok, {self.count('flagged')} flagged, "
            f"{self.count('refused')} refused"
        )


def write_log(report: AnonymizationReport) -> Path:
    """Write the CSV log atomically; output paths are relative to the output folder."""
    buffer = io.StringIO()
    writer = csv.writer(buffer, lineterminator="\n")
    writer.writerow(LOG_COLUMNS)
    for outcome in report.outcomes:
        out = (
            outcome.output_path.relative_to(report.output_dir).as_posix()
            if outcome.output_path
            else ""
        )
        writer.writerow((outcome.input_sha256, out, outcome.status, outcome.reason))
    return write_atomic(report.log_path, buffer.getvalue())
