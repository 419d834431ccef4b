"""``medlens cv``: k-fold cross-validation of any run config (deep, classical, hybrid).

Fold k of a patient-aware, stratified k-fold over every case of the source (the data
layer's ``data.folds`` / ``data.fold``) is the test split of run ``fold_k``; its validation
split is carved from the other folds. Each fold is a complete run folder (report included),
and the folder above them holds:

    fold_0/ ... fold_{k-1}/   the runs
    cv_summary.json           per-fold values, mean and sd of every test metric
    cv_summary.csv            one row per fold, then the mean and sd rows
    cv_report.html            the table and a bar plot of every metric per fold
                              (``medlens.report.cross_validation``)

A fold folder left by an earlier, interrupted call with the same config is kept.
"""

from __future__ import annotations

import logging
import math
import statistics
from pathlib import Path
from typing import Any

import pandas as pd

from medlens.config import RunConfig, parse_config
from medlens.errors import ConfigError, InputError
from medlens.io_utils import write_atomic, write_json_atomic
from medlens.tasks import load_config

log = logging.getLogger(__name__)


def fold_config(config: RunConfig, folds: int, fold: int, out_dir: Path) -> RunConfig:
    """``config`` with fold ``fold`` of ``folds`` as its test split, named ``fold_<fold>``
    and written under ``out_dir``."""
    raw = config.model_dump(mode="json")
    raw["data"].update(folds=folds, fold=fold)
    raw.update(name=f"fold_{fold}", output_dir=str(out_dir))
    return parse_config(raw)


def _finished(run_dir: Path, config: RunConfig) -> bool:
    """True when ``run_dir`` is a complete run of exactly ``config``."""
    if not (run_dir / "metrics.json").is_file():
        return False
    written = (run_dir / "config.yaml").read_text(encoding="utf-8")
    return written == config.to_yaml()


def _test_metrics(run_dir: Path) -> dict[str, Any]:
    import json

    metrics = json.loads((run_dir / "metrics.json").read_text(encoding="utf-8"))
    test = metrics["splits"].get("test")
    if test is None:
        raise InputError(run_dir / "metrics.json", "no test split was evaluated")
    values = {name: entry.get("value") for name, entry in test["metrics"].items()}
    values.update({f"{k}_at_0.5": v for k, v in (test.get("metrics_at_0.5") or {}).items()})
    return {"n_test": test["n"], "threshold": metrics.get("threshold"), "metrics": values}


def summarize_folds(fold_dirs: list[Path]) -> dict[str, Any]:
    """Per-fold values, mean and sample sd (n - 1) of every test metric of the fold runs.

    A metric undefined on a fold (``None``) is left out of its mean and sd, and counted in
    ``n_defined``.
    """
    per_fold = [{"fold": k, **_test_metrics(d)} for k, d in enumerate(fold_dirs)]
    names: list[str] = []
    for entry in per_fold:
        names += [n for n in entry["metrics"] if n not in names]
    metrics = {}
    for name in names:
        values = [f["metrics"].get(name) for f in per_fold]
        defined = [float(v) for v in values if v is not None and math.isfinite(v)]
        metrics[name] = {
            "mean": statistics.fmean(defined) if defined else None,
            "sd": statistics.stdev(defined) if len(defined) > 1 else None,
            "n_defined": len(defined),
            "values": values,
        }
    return {
        "folds": len(fold_dirs),
        "fold_dirs": [str(d) for d in fold_dirs],
        "n_test": [f["n_test"] for f in per_fold],
        "thresholds": [f["threshold"] for f in per_fold],
        "metrics": metrics,
    }


def _table(summary: dict[str, Any]) -> pd.DataFrame:
    names = list(summary["metrics"])
    rows = [
        {
            "fold": str(k),
            "n_test": summary["n_test"][k],
            "threshold": summary["thresholds"][k],
            **{n: summary["metrics"][n]["values"][k] for n in names},
        }
        for k in range(summary["folds"])
    ]
    for stat in ("mean", "sd"):
        rows.append({"fold": stat, **{n: summary["metrics"][n][stat] for n in names}})
    table = pd.DataFrame(rows)
    table["n_test"] = table["n_test"].astype("Int64")  # whole numbers, blank on mean/sd
    return table


def cross_validate(
    config: str | Path | RunConfig,
    folds: int = 5,
    out_dir: str | Path | None = None,
    overwrite: bool = False,
    progress: bool = True,
) -> Path:
    """Run ``config`` once per fold with ``train_and_report`` and summarise the test metrics.

    Args:
        config: a config file or a parsed ``RunConfig`` (deep, classical or hybrid); its
            ``data.folds``/``data.fold`` are replaced.
        folds: the number of folds (2 or more; at most the number of patients).
        out_dir: the folder of the fold runs and summaries; default
            ``<output_dir>/<name>-cv<folds>``.
        overwrite: re-run every fold, replacing existing fold folders.
        progress: show training progress bars.

    Returns:
        ``out_dir``, holding ``fold_k/``, ``cv_summary.json``, ``cv_summary.csv`` and
        ``cv_report.html``.

    Raises:
        ConfigError: a bad config, ``folds`` < 2, or a fold folder from another config
            without ``overwrite``.
        InputError: unreadable data (as ``medlens train``).

    Example:
        >>> cross_validate("configs/adrenalmnist3d_small_cnn.yaml", folds=5)  # doctest: +SKIP
        PosixPath('runs/adrenalmnist3d-small-cnn-cv5')
    """
    from medlens.commands.train import train_and_report
    from medlens.report.cross_validation import write_cv_report

    if folds < 2:
        raise ConfigError("--folds", f"cross-validation needs at least 2 folds, got {folds}")
    if not isinstance(config, RunConfig):
        config = load_config(config)
    out = Path(out_dir) if out_dir is not None else config.output_dir / f"{config.name}-cv{folds}"
    fold_dirs = []
    for k in range(folds):
        cfg = fold_config(config, folds, k, out)
        run_dir = cfg.run_dir()
        if run_dir.exists() and not overwrite:
            if not _finished(run_dir, cfg):
                raise ConfigError(
                    "--out",
                    f"{run_dir} holds a run of another config; use --overwrite or another --out",
                )
            log.info("fold %d: keeping the finished run %s", k, run_dir)
        else:
            run_dir = train_and_report(cfg, overwrite=overwrite, progress=progress)
        fold_dirs.append(run_dir)
    summary = {"config": config.name, **summarize_folds(fold_dirs)}
    write_json_atomic(out / "cv_summary.json", summary)
    table = _table(summary)
    write_atomic(out / "cv_summary.csv", table.to_csv(index=False))
    write_cv_report(out, summary, table, config.name)
    return out
