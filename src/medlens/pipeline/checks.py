"""What a pipeline config is checked for before any network trains: every region a stage
names exists in the masks, and every stage's run fragment is a valid run of its stage's task
(a segment stage's model is a segmenter, a classify stage's a classifier...)."""

from __future__ import annotations

from pathlib import Path

from medlens.errors import InputError
from medlens.pipeline.cells import CellSet
from medlens.pipeline.config import (
    CellData,
    ClassifyStage,
    CropStage,
    DetectStage,
    FeaturesStage,
    PipelineConfig,
    SegmentStage,
)
from medlens.pipeline.context import child_config

_PLACEHOLDER = Path("pipeline-stage-data")


def check_stages(config: PipelineConfig, cells: CellSet) -> None:
    """Refuse a config whose stages cannot run on ``cells``.

    Raises:
        ConfigError: keyed ``stages.<stage>...``: a region the masks lack, or a run fragment
            for another task (a classifier in a segment stage) or failing the run schema.
    """
    for stage in config.stages:
        if isinstance(stage, SegmentStage | DetectStage | ClassifyStage) and stage.from_run:
            check_existing_run(stage, cells)
            continue
        if isinstance(stage, FeaturesStage):
            for name, parts in stage.regions.items():
                for part in parts:
                    cells.region_label(part, f"stages.{stage.name}.regions.{name}")
        elif isinstance(stage, CropStage | DetectStage) and stage.regions:
            for part in stage.regions:
                cells.region_label(part, f"stages.{stage.name}.regions")
        if isinstance(stage, SegmentStage) and stage.source == "model":
            data = {"format": "segmentation", "layout": "folder", "path": str(_PLACEHOLDER),
                    "class_names": ["background", *cells.regions]}  # fmt: skip
            child_config(stage.name, stage.run, "segmentation", data, "check", _PLACEHOLDER, 0)
        elif isinstance(stage, DetectStage) and stage.source == "model":
            data = {"format": "boxes", "layout": "instance_masks", "path": str(_PLACEHOLDER)}
            child_config(stage.name, stage.run, "detection", data, "check", _PLACEHOLDER, 0)
        elif isinstance(stage, ClassifyStage):
            _check_classifier(stage, config, cells)


_TASK_OF = {"segment": "segmentation", "detect": "detection", "classify": "classification"}


def check_existing_run(stage: SegmentStage | DetectStage | ClassifyStage, cells: CellSet) -> None:
    """A ``from_run`` stage's run folder: of the stage's task, with the pipeline's labels.

    Raises:
        InputError: naming the stage and the run's file: another task, or classes that are
            not the pipeline's (a segmenter's: background and the mask regions, in order; a
            classifier's: the pipeline's classes).
    """
    from medlens.run_folder.files import read_json
    from medlens.run_folder.reader import read_run_task

    assert stage.from_run is not None
    run_dir = stage.from_run
    want = _TASK_OF[stage.kind]
    try:
        task = read_run_task(run_dir).name
    except InputError as exc:
        raise InputError(exc.path, f"stage {stage.name!r}: {exc.reason}") from None
    if task != want:
        raise InputError(
            run_dir / "config.yaml",
            f"stage {stage.name!r}: a {task} run; a {stage.kind} stage needs a {want} run",
        )
    labels = read_json(run_dir / "labels.json", required=True)
    names = list(labels.get("class_names", [])) if isinstance(labels, dict) else []
    expected = {
        "segment": ["background", *cells.regions],
        "classify": list(cells.class_names),
    }.get(stage.kind)
    if expected is not None and names != expected:
        raise InputError(
            run_dir / "labels.json",
            f"stage {stage.name!r}: the run's labels {names} are not the pipeline's {expected}",
        )


def check_masks(cells: CellSet, data: CellData) -> None:
    """Read every reference mask once: a mask off its image's grid or holding grey levels
    that are not regions fails now, naming the file, not after minutes of training.

    Raises:
        InputError: naming the mask and the reason.
    """
    from medlens.pipeline.cells import load_image, load_regions

    for case in cells.cases:
        try:
            load_regions(case, data, load_image(case))
        except InputError as exc:
            raise InputError(exc.path, f"reference mask: {exc.reason}") from None


def _check_classifier(stage: ClassifyStage, config: PipelineConfig, cells: CellSet) -> None:
    from medlens.errors import ConfigError, MedlensError

    kinds = {s.name: s.kind for s in config.stages}
    if stage.input == "image" or kinds.get(stage.input) == "crop":
        if stage.estimator is not None or stage.selector is not None:
            raise ConfigError(
                f"stages.{stage.name}.estimator",
                "an estimator classifies a features stage; images and crops take a CNN (run)",
            )
        data = {"format": "csv", "path": str(_PLACEHOLDER), "class_names": list(cells.class_names)}
        child_config(stage.name, stage.run, "classification", data, "check", _PLACEHOLDER, 0)
        return
    if stage.run:
        raise ConfigError(
            f"stages.{stage.name}.run", "a features stage is classified by an estimator, not a CNN"
        )
    from medlens.pipeline.stages.classify import estimator_pipeline

    try:
        estimator_pipeline(stage, 0)
    except MedlensError as exc:
        raise ConfigError(f"stages.{stage.name}.estimator", str(exc)) from None
