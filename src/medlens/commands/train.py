"""The whole job a user asks for with ``medlens train``: training, then the documents a
person reads (report.html, model_card.md), written into the run folder before it is
published. Lives above train/ and report/ so neither imports the other."""

from __future__ import annotations

from collections.abc import Sequence
from pathlib import Path

from medlens.config import RunConfig
from medlens.train.trainer import EpochCallback


def write_documents(run_dir: Path) -> None:
    """``model_card.md`` first, so ``report.html`` can link to it."""
    from medlens.report.html import write_report
    from medlens.report.model_card import write_model_card

    write_model_card(run_dir)
    write_report(run_dir)


def write_segmentation_documents(run_dir: Path) -> None:
    """The segmentation run's model card and report (metric tables, overlays)."""
    from medlens.report.segmentation.html import (
        write_segmentation_model_card,
        write_segmentation_report,
    )

    write_segmentation_model_card(run_dir)
    write_segmentation_report(run_dir)


def train_and_report(
    config: RunConfig,
    resume: bool = False,
    overwrite: bool = False,
    callbacks: Sequence[EpochCallback] = (),
    progress: bool = True,
) -> Path:
    """Train ``config`` and write its complete run folder, report and model card included.

    A config with a ``features`` section is a classical run (``medlens.train.classical.run``);
    ``resume`` and ``callbacks`` concern epochs and do not apply to it."""
    from medlens.tasks import SEGMENTATION, check_config, task_of
    from medlens.train.deep.run import train_from_config

    check_config(config)
    if config.features is not None:  # a classical or hybrid run: features -> scikit-learn
        from medlens.train.classical.run import train_classical

        return train_classical(
            config, overwrite=overwrite, progress=progress, finalize=write_documents
        )
    if task_of(config) is SEGMENTATION:
        from medlens.train.segmentation.run import train_segmentation_from_config

        return train_segmentation_from_config(
            config,
            resume=resume,
            overwrite=overwrite,
            callbacks=callbacks,
            progress=progress,
            finalize=write_segmentation_documents,
        )
    return train_from_config(
        config,
        resume=resume,
        overwrite=overwrite,
        callbacks=callbacks,
        progress=progress,
        finalize=write_documents,
    )


def add_report_section(run_dir: Path, section_id: str, html: str, markdown: str) -> None:
    """Store a later verb's findings (``fairness``, ``explanations``) as fragments of the run
    folder (``sections/<id>.html`` and ``.md``) and re-write report.html and model_card.md so
    they include them."""
    from medlens.io_utils import write_atomic

    folder = Path(run_dir) / "sections"
    folder.mkdir(exist_ok=True)
    write_atomic(folder / f"{section_id}.html", html)
    write_atomic(folder / f"{section_id}.md", markdown)
    write_documents(Path(run_dir))
