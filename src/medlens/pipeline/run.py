"""``medlens train pipeline.yaml``: every stage fitted on the training folds, applied to the
test fold, scored, and written as one run folder.

runs/<name>/
  config.yaml          the resolved pipeline config (``kind: pipeline``)
  stages/<stage>/      each stage's networks (ordinary run folders), estimator, masks, crops,
                       and ``crossfit.json`` (which network trained on which cases)
  predictions.csv      one row per test case: truth, class, probabilities, the masks used
  metrics.json         Dice per region, class metrics with CIs, error sources
  excluded.csv         cases left out by the small-class rule, with the reason
  report.html          what a person reads
"""

from __future__ import annotations

import csv
import io
import shutil
from collections.abc import Callable
from pathlib import Path
from typing import Any

import numpy as np

from medlens.config import RunConfig
from medlens.errors import InputError
from medlens.io_utils import write_atomic, write_json_atomic
from medlens.pipeline.cells import CellSet, open_cells
from medlens.pipeline.checks import check_masks, check_stages
from medlens.pipeline.config import DetectStage, PipelineConfig, SegmentStage
from medlens.pipeline.context import StageContext
from medlens.pipeline.flow import Outputs, apply, fit_and_test, needs_masks, uses_models_for_masks
from medlens.pipeline.folds import outer_split
from medlens.pipeline.scoring import (
    class_metrics,
    mask_error_sources,
    region_dice,
    segmentation_summary,
)
from medlens.run_folder.staging import check_free, open_stage, publish_run

METRICS = "metrics.json"
PREDICTIONS = "predictions.csv"
EXCLUDED = "excluded.csv"


def train_pipeline(
    config: PipelineConfig,
    train_run: Callable[[RunConfig, bool], Path],
    overwrite: bool = False,
    progress: bool = True,
) -> Path:
    """Fit the pipeline on every outer fold but ``data.fold`` and score it on that fold.

    ``train_run`` trains each network of a stage (``medlens.commands.pipeline.run_child``:
    ``medlens train`` on the network's run config).

    Returns:
        The finished run folder ``<output_dir>/<name>``.

    Raises:
        ConfigError: an existing run folder without ``overwrite``, a stage config its task
            cannot run, regions the masks lack, a class too small for the folds.
        InputError: unreadable images, masks or labels (naming the file, and the stage where
            one is at fault).
    """
    final = config.run_dir()
    check_free(final, overwrite)
    cells = open_cells(config.data, need_masks=needs_masks(config))
    check_stages(config, cells)
    labels = cells.labels
    train_idx, test_idx = outer_split(labels, config.data.folds, config.data.fold, config.seed)
    if needs_masks(config):
        check_masks(cells, config.data)
    stage_dir = open_stage(final)
    try:
        ctx = StageContext(stage_dir, cells, config.data, config.seed, progress, None, train_run)
        _build(ctx, config, train_idx, test_idx)
    except BaseException:
        shutil.rmtree(stage_dir, ignore_errors=True)  # nothing half-written is left behind
        raise
    return publish_run(stage_dir, final)


def _build(
    ctx: StageContext, config: PipelineConfig, train_idx: np.ndarray, test_idx: np.ndarray
) -> None:
    from medlens.pipeline.report import write_pipeline_report

    stage_dir, cells = ctx.run_dir, ctx.cells
    write_atomic(stage_dir / "config.yaml", config.to_yaml())
    train = [cells.cases[i] for i in train_idx]
    test = [cells.cases[i] for i in test_idx]
    _fitted, tested = fit_and_test(ctx, config, train, test)
    reference = apply(ctx, config, test, reference=True) if uses_models_for_masks(config) else None
    metrics = score(ctx, config, tested, reference)
    metrics["train_cases"] = len(train)
    write_json_atomic(stage_dir / METRICS, metrics)
    write_predictions(stage_dir / PREDICTIONS, ctx, config, tested, reference)
    write_excluded(stage_dir / EXCLUDED, cells)
    write_pipeline_report(stage_dir, config, ctx, tested)


def score(
    ctx: StageContext, config: PipelineConfig, tested: Outputs, reference: Outputs | None
) -> dict[str, Any]:
    """Every figure of the test cases (see ``medlens.pipeline.scoring``)."""
    truth = np.array([c.label for c in tested.cases])
    assert tested.probabilities is not None
    out: dict[str, Any] = {
        "kind": "pipeline",
        "fold": config.data.fold,
        "folds": config.data.folds,
        "seed": config.seed,
        "masks_used": _masks_used(config),
        "classification": class_metrics(
            truth, tested.probabilities, ctx.cells.class_names, config.n_bootstrap, config.seed
        ),
        "segmentation": {},
    }
    for stage in config.stages:
        if isinstance(stage, SegmentStage) and stage.source == "model":
            rows = [
                region_dice(tested.maps[stage.name][c.case_id], ctx.regions(c), ctx.cells.regions)
                for c in tested.cases
            ]
            out["segmentation"][stage.name] = segmentation_summary(rows)
    if reference is not None and reference.probabilities is not None:
        out["with_reference_masks"] = class_metrics(
            truth, reference.probabilities, ctx.cells.class_names, config.n_bootstrap, config.seed
        )
        out["error_sources"] = mask_error_sources(
            truth, tested.probabilities.argmax(1), reference.probabilities.argmax(1)
        )
    return out


def _masks_used(config: PipelineConfig) -> str:
    finders = [s for s in config.stages if isinstance(s, SegmentStage | DetectStage)]
    if not finders:
        return "none"

    def said(stage: SegmentStage | DetectStage) -> str:
        if stage.source == "ground_truth":
            return "reference (ground truth) masks, at training and at test time"
        if stage.from_run is not None:
            return f"predicted by an existing run ({stage.from_run}), not cross-fitted"
        return "predicted masks (cross-fitted on the training cases)"

    kinds = {said(s) for s in finders}
    if len(kinds) == 1:
        return kinds.pop()
    return "mixed: " + "; ".join(f"{s.name}: {said(s)}" for s in finders)


def write_predictions(
    path: Path, ctx: StageContext, config: PipelineConfig, tested: Outputs,
    reference: Outputs | None,
) -> None:  # fmt: skip
    """``predictions.csv``: one row per case with its truth, class, probabilities, crops taken
    from the whole image, regions found empty, and the class with reference masks."""
    names = ctx.cells.class_names
    assert tested.probabilities is not None
    buffer = io.StringIO()
    writer = csv.writer(buffer)
    header = ["case_id", "image", "truth", "predicted", *[f"p_{n}" for n in names]]
    header += ["whole_image_crop", "empty_regions", "masks"]
    if reference is not None:
        header.append("predicted_with_reference_masks")
    writer.writerow(header)
    for i, case in enumerate(tested.cases):
        probs = tested.probabilities[i]
        whole = [s for s, crops in tested.crops.items() if crops[case.case_id].whole_image]
        empty = sorted({r for rows in tested.features.values() for r in rows.empty_regions[i]})
        masks = [
            f"stages/{s}/masks/{case.case_id}.png"
            for s in tested.maps
            if _saved(ctx, s, case.case_id)
        ]
        row = [case.case_id, str(case.image), names[case.label], names[int(probs.argmax())]]
        row += [f"{p:.6f}" for p in probs]
        row += [";".join(whole), ";".join(empty), ";".join(masks)]
        if reference is not None:
            assert reference.probabilities is not None
            row.append(names[int(reference.probabilities[i].argmax())])
        writer.writerow(row)
    write_atomic(path, buffer.getvalue())


def _saved(ctx: StageContext, stage: str, case_id: str) -> bool:
    return (ctx.mask_dir(stage) / f"{case_id}.png").is_file()


def write_excluded(path: Path, cells: CellSet) -> None:
    buffer = io.StringIO()
    writer = csv.writer(buffer)
    writer.writerow(["case_id", "image", "reason"])
    for case, reason in cells.excluded:
        if isinstance(case, str):
            writer.writerow([case, "", reason])
        else:
            writer.writerow([case.case_id, str(case.image), reason])
    write_atomic(path, buffer.getvalue())


def read_metrics(run_dir: Path) -> dict[str, Any]:
    """``metrics.json`` of a finished pipeline run.

    Raises:
        InputError: a folder that is not a finished pipeline run.
    """
    from medlens.run_folder.files import read_json

    metrics = read_json(Path(run_dir) / METRICS, required=True)
    if not isinstance(metrics, dict) or metrics.get("kind") != "pipeline":
        raise InputError(Path(run_dir) / METRICS, "is not the metrics of a pipeline run")
    return metrics
