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
    from medlens.report.segmentation import write_segmentation_model_card, write_segmentation_report

    write_segmentation_model_card(run_dir)
    write_segmentation_report(run_dir)


def train_and_report(
    config: RunConfig,
    resume: bool = False,
    overwrite: bool = False,
    callbacks: Sequence[EpochCallback] = (),
    progress: bool = True,
) -> Path:
    """Train ``config`` and write its complete run folder, report and model card included."""
    from medlens.train.run import train_from_config

    if config.task == "segmentation":
        from medlens.train.segmentation_run import train_segmentation_from_config

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
