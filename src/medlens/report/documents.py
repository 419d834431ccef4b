"""The documents of a run folder — ``model_card.md`` first, so ``report.html`` can link to
it — written by the writers of the run's task."""

from __future__ import annotations

from collections.abc import Callable
from pathlib import Path

from medlens.run_folder.reader import read_run_task
from medlens.run_folder.sections import write_section
from medlens.tasks import CLASSIFICATION, DETECTION, REGISTRATION, SEGMENTATION

DocumentWriter = Callable[[Path], object]


def _classification_writers() -> tuple[DocumentWriter, DocumentWriter]:
    from medlens.report.html import write_report
    from medlens.report.model_card import write_model_card

    return write_model_card, write_report


def _segmentation_writers() -> tuple[DocumentWriter, DocumentWriter]:
    from medlens.report.segmentation.html import write_segmentation_report
    from medlens.report.segmentation.model_card import write_segmentation_model_card

    return write_segmentation_model_card, write_segmentation_report


def _registration_writers() -> tuple[DocumentWriter, DocumentWriter]:
    from medlens.report.registration import (
        write_registration_model_card,
        write_registration_run_report,
    )

    return write_registration_model_card, write_registration_run_report


def _detection_writers() -> tuple[DocumentWriter, DocumentWriter]:
    from medlens.report.detection.html import write_detection_report
    from medlens.report.detection.model_card import write_detection_model_card

    return write_detection_model_card, write_detection_report


#: task name -> (model card writer, report writer); every registered task has an entry.
DOCUMENT_WRITERS: dict[str, Callable[[], tuple[DocumentWriter, DocumentWriter]]] = {
    CLASSIFICATION.name: _classification_writers,
    SEGMENTATION.name: _segmentation_writers,
    REGISTRATION.name: _registration_writers,
    DETECTION.name: _detection_writers,
}


def write_documents(run_dir: str | Path) -> None:
    """Write ``model_card.md`` and ``report.html`` of a (staged or finished) run folder."""
    run_dir = Path(run_dir)
    write_model_card, write_report = DOCUMENT_WRITERS[read_run_task(run_dir).name]()
    write_model_card(run_dir)
    write_report(run_dir)


def add_report_section(run_dir: str | Path, section_id: str, html: str, markdown: str) -> None:
    """Store a later verb's findings (``fairness``, ``explanations``) in the run folder and
    re-write report.html and model_card.md so they include them."""
    write_section(Path(run_dir), section_id, html, markdown)
    write_documents(run_dir)
