"""The verbs on pipeline configs and run folders (``kind: pipeline``): ``medlens train``,
``predict``, ``evaluate`` and ``cv`` hand them here when the YAML or the run folder is a
pipeline's."""

from __future__ import annotations

import csv
import io
import json
import statistics
from collections.abc import Sequence
from pathlib import Path
from typing import Any

import numpy as np

from medlens.config import RunConfig
from medlens.errors import ConfigError, InputError
from medlens.io_utils import write_atomic, write_json_atomic
from medlens.pipeline.config import (
    EnsembleConfig,
    PipelineConfig,
    SegmentStage,
    is_pipeline_file,
    read_pipeline,
)


def run_child(config: RunConfig, progress: bool) -> Path:
    """Train one network of a pipeline stage as ``medlens train`` does (its whole run
    folder, report included), replacing a folder of an earlier attempt."""
    from medlens.commands.train import train_and_report

    return train_and_report(config, overwrite=True, progress=progress)


def is_pipeline_run(run_dir: Path) -> bool:
    """Whether ``run_dir`` holds a pipeline run (its ``config.yaml`` is ``kind: pipeline``)."""
    return is_pipeline_file(Path(run_dir) / "config.yaml")


def train_pipeline_command(
    config_path: Path, overrides: dict[str, Any], overwrite: bool, progress: bool
) -> Path:
    """``medlens train pipeline.yaml``: one outer fold (``data.fold``), or an ensemble."""
    config = read_pipeline(config_path, overrides)
    if isinstance(config, EnsembleConfig):
        from medlens.pipeline.ensemble import build_ensemble

        return build_ensemble(config, overwrite=overwrite)
    from medlens.pipeline.run import train_pipeline

    return train_pipeline(config, run_child, overwrite=overwrite, progress=progress)


def cv_pipeline_command(
    config_path: Path, folds: int | None, out_dir: Path | None, overwrite: bool, progress: bool
) -> Path:
    """``medlens cv pipeline.yaml``: every outer fold as its own run, then a summary
    (``cv_summary.json``, ``cv_summary.csv``, pooled test predictions)."""
    from medlens.pipeline.run import train_pipeline

    config = read_pipeline(config_path)
    if isinstance(config, EnsembleConfig):
        raise ConfigError("kind", "cross-validate each member pipeline, then ensemble the folds")
    k = folds or config.data.folds
    out = out_dir or config.output_dir / f"{config.name}-cv{k}"
    runs = []
    for fold in range(k):
        cfg = config.model_copy(deep=True)
        cfg.data = cfg.data.model_copy(update={"folds": k, "fold": fold})
        cfg.output_dir = out
        cfg.name = f"fold_{fold}"
        runs.append(train_pipeline(cfg, run_child, overwrite=overwrite, progress=progress))
    summarize_folds(runs, out)
    return out


def summarize_folds(runs: list[Path], out: Path) -> dict[str, Any]:
    """Mean and SD over folds of each figure, and the pooled test predictions' metrics."""
    from medlens.pipeline.run import read_metrics
    from medlens.pipeline.scoring import class_metrics

    per_fold = [read_metrics(r) for r in runs]
    table = []
    pooled_truth, pooled_probs = [], []
    for run, m in zip(runs, per_fold, strict=True):
        row = {
            "fold": m["fold"],
            **{k: m["classification"][k]["value"] for k in ("balanced_accuracy", "f1", "accuracy")},
        }
        for stage, regions in m["segmentation"].items():
            row.update({f"dice_{stage}_{r}": s["mean"] for r, s in regions.items()})
        if "with_reference_masks" in m:
            row["balanced_accuracy_reference_masks"] = m["with_reference_masks"][
                "balanced_accuracy"
            ]["value"]
        table.append(row)
        truth, probs, names = read_predictions(run)
        pooled_truth.append(truth)
        pooled_probs.append(probs)
    keys = [k for k in table[0] if k != "fold"]
    summary = {
        "folds": len(runs),
        "mean": {k: statistics.fmean(r[k] for r in table) for k in keys},
        "sd": {k: statistics.stdev(r[k] for r in table) if len(table) > 1 else 0.0 for k in keys},
        "per_fold": table,
        "pooled": class_metrics(
            np.concatenate(pooled_truth), np.concatenate(pooled_probs), names, 1000, 0
        ),
    }
    write_json_atomic(out / "cv_summary.json", summary)
    buffer = io.StringIO()
    writer = csv.DictWriter(buffer, fieldnames=["fold", *keys])
    writer.writeheader()
    writer.writerows(table)
    write_atomic(out / "cv_summary.csv", buffer.getvalue())
    return summary


def read_predictions(run_dir: Path) -> tuple[np.ndarray, np.ndarray, list[str]]:
    """(truth indices, probabilities ``(N, K)``, class names) of a pipeline run's
    ``predictions.csv``.

    Raises:
        InputError: a missing file, or a row whose class is not one of the columns.
    """
    path = Path(run_dir) / "predictions.csv"
    if not path.is_file():
        raise InputError(path, "not found; the pipeline run is incomplete")
    with open(path, newline="", encoding="utf-8") as handle:
        rows = list(csv.DictReader(handle))
    if not rows:
        raise InputError(path, "holds no case")
    names = [c[2:] for c in rows[0] if c.startswith("p_")]
    try:
        truth = np.array([names.index(r["truth"]) for r in rows])
    except ValueError:
        raise InputError(path, "a truth value is not one of the probability columns") from None
    probs = np.array([[float(r[f"p_{n}"]) for n in names] for r in rows])
    return truth, probs, names


def evaluate_pipeline_command(run_dir: Path) -> str:
    """``medlens evaluate <pipeline run>``: the run's test figures, one line each."""
    from medlens.pipeline.run import read_metrics

    m = read_metrics(run_dir)
    c = m["classification"]
    where = "an ensemble" if m.get("fold") is None else f"fold {m['fold'] + 1}/{m['folds']}"
    lines = [
        f"{run_dir}: {where}, {c['n']} test cases, masks: {m['masks_used']}",
        *(f"  {k}: {_ci(c[k])}" for k in ("balanced_accuracy", "f1", "accuracy")),
    ]
    for stage, regions in m["segmentation"].items():
        lines += [f"  {stage} Dice {r}: {s['mean']:.3f}" for r, s in regions.items()]
    if "with_reference_masks" in m:
        ref = m["with_reference_masks"]["balanced_accuracy"]["value"]
        lines.append(f"  balanced_accuracy with reference masks: {ref:.3f}")
        lines.append(f"  error sources: {json.dumps(m['error_sources'])}")
    return "\n".join(lines)


def _ci(entry: dict[str, Any]) -> str:
    def num(v: Any) -> str:
        return "undefined" if v is None or not np.isfinite(v) else f"{v:.3f}"

    return f"{num(entry['value'])} (95% CI {num(entry['ci_low'])}-{num(entry['ci_high'])})"


def predict_pipeline_command(run_dir: Path, inputs: Sequence[Path], out: Path | None) -> str:
    """``medlens predict <pipeline run> IMAGES``: every stage applied to each image;
    ``<out>/predictions.csv`` (class and probabilities) and ``<out>/stages/<s>/masks/``."""
    from medlens.pipeline.cells import CellCase, CellSet
    from medlens.pipeline.context import StageContext
    from medlens.pipeline.flow import apply
    from medlens.pipeline.run import read_metrics

    config = read_pipeline(Path(run_dir) / "config.yaml")
    if not isinstance(config, PipelineConfig):
        raise InputError(run_dir, "an ensemble of pipelines predicts through its members")
    for stage in config.stages:
        if getattr(stage, "source", "model") == "ground_truth":
            raise ConfigError(
                f"stages.{stage.name}.source",
                "uses reference masks, which new images do not have; it cannot predict",
            )
    names = read_metrics(run_dir)["classification"]["class_names"]
    files = _image_files(inputs)
    cases = [CellCase(p.stem, p, None, 0) for p in files]
    if len({c.case_id for c in cases}) != len(cases):
        raise InputError(inputs[0], "two inputs share a file name stem; give them distinct names")
    out_dir = out or Path("pipeline_predictions")
    cells = CellSet(cases, names, list(config.data.mask_values))
    ctx = StageContext(Path(run_dir), cells, config.data, config.seed, output_dir=out_dir)
    result = apply(ctx, config, cases)
    assert result.probabilities is not None
    buffer = io.StringIO()
    writer = csv.writer(buffer)
    writer.writerow(["case_id", "image", "predicted", *[f"p_{n}" for n in names]])
    for case, probs in zip(cases, result.probabilities, strict=True):
        writer.writerow(
            [
                case.case_id,
                str(case.image),
                names[int(probs.argmax())],
                *[f"{p:.6f}" for p in probs],
            ]
        )
    write_atomic(out_dir / "predictions.csv", buffer.getvalue())
    masks = [s.name for s in config.stages if isinstance(s, SegmentStage)]
    extra = f"; masks in {out_dir}/stages/<stage>/masks ({', '.join(masks)})" if masks else ""
    return f"{len(cases)} images -> {out_dir / 'predictions.csv'}{extra}"


def _image_files(inputs: Sequence[Path]) -> list[Path]:
    from medlens.data.readers import image_format

    files: list[Path] = []
    for path in inputs:
        if path.is_dir():
            files += sorted(
                p for p in path.iterdir() if p.is_file() and image_format(p) is not None
            )
        elif path.is_file():
            files.append(path)
        else:
            raise InputError(path, "file not found")
    if not files:
        raise InputError(inputs[0] if inputs else ".", "no image to predict")
    return files
