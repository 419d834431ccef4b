"""A classical or hybrid run: features -> scikit-learn pipeline, written as a run folder.

``train_classical(config)`` is ``medlens train`` for a config with a ``features`` section.
It writes the files of a deep run (../shared/DESIGN.md) with ``model.joblib`` (the fitted
scikit-learn pipeline) in place of ``model.pt`` and ``features.json`` (what was extracted
and selected) in place of ``history.csv``:

    config.yaml  preprocessing.json  labels.json  metrics.json  predictions.csv
    data_summary.json  model.joblib  features.json

The pipeline (and its grid search, if any) sees only the training split; the threshold is
chosen on the validation split; the test split is scored once.
"""

from __future__ import annotations

import shutil
import time
import warnings
from collections.abc import Callable, Sequence
from pathlib import Path
from typing import Any

import joblib
import numpy as np
import pandas as pd
import sklearn
from sklearn.base import BaseEstimator
from sklearn.model_selection import GridSearchCV, StratifiedGroupKFold

from medlens import __version__
from medlens.config import RunConfig
from medlens.data.case import Case
from medlens.errors import ConfigError, InputError
from medlens.io_utils import publish_run, write_atomic, write_json_atomic
from medlens.train.classical.features import CaseFeatures, run_features
from medlens.train.deep.run import PreparedData, data_summary, prepare_data
from medlens.train.seeding import seed_everything

MODEL_FILE = "model.joblib"
FEATURES_FILE = "features.json"


def _labels(cases: Sequence[Case]) -> np.ndarray:
    return np.array([int(c.label) for c in cases], dtype=np.int64)  # type: ignore[arg-type]


def _groups(cases: Sequence[Case]) -> np.ndarray:
    return np.array([c.patient_id or c.case_id for c in cases])


def _grid_search(
    pipeline: BaseEstimator, config: RunConfig, X: np.ndarray, cases: Sequence[Case]
) -> tuple[BaseEstimator, dict[str, Any]]:
    """``GridSearchCV`` over ``features.grid`` on the training cases, patient-aware folds."""
    features = config.features
    assert features is not None and features.grid is not None
    y, groups = _labels(cases), _groups(cases)
    smallest = int(np.bincount(y).min())
    n_folds = min(features.grid_folds, len(set(groups.tolist())), smallest)
    if n_folds < 2:
        raise ConfigError(
            "features.grid_folds",
            f"a grid search needs 2 folds; the training split has {smallest} case(s) of its "
            "rarest class",
        )
    folds = StratifiedGroupKFold(n_splits=n_folds, shuffle=True, random_state=config.seed)
    scoring = "roc_auc" if len(np.unique(y)) == 2 else "roc_auc_ovr"
    search = GridSearchCV(pipeline, features.grid, scoring=scoring, cv=folds, n_jobs=1)
    with warnings.catch_warnings():
        warnings.filterwarnings("ignore", message="The least populated class", category=UserWarning)
        search.fit(X, y, groups=groups)
    results = search.cv_results_
    record = {
        "folds": n_folds,
        "scoring": scoring,
        "best_params": search.best_params_,
        "best_score": float(search.best_score_),
        "candidates": [
            {"params": p, "mean_score": float(m), "sd_score": float(s)}
            for p, m, s in zip(
                results["params"],
                results["mean_test_score"],
                results["std_test_score"],
                strict=True,
            )
        ],
    }
    return search.best_estimator_, record


def fit_feature_pipeline(
    config: RunConfig, X: np.ndarray, cases: Sequence[Case]
) -> tuple[BaseEstimator, dict[str, Any] | None]:
    """The config's ``scale -> select -> classify`` pipeline fitted on the training rows
    (with the grid search, when ``features.grid`` is set).

    Returns:
        ``(fitted pipeline, grid search record or None)``.
    """
    from medlens.features import make_feature_pipeline

    features = config.features
    if features is None:
        raise ConfigError("features", "a classical run needs a features section")
    selector = features.selector.as_dict() if features.selector is not None else None
    pipeline = make_feature_pipeline(
        selector, features.classifier.as_dict(), features.scale, seed=config.seed
    )
    if features.grid:
        return _grid_search(pipeline, config, X, cases)
    return pipeline.fit(X, _labels(cases)), None


def _selected(pipeline: BaseEstimator, names: list[str]) -> list[str]:
    select = pipeline.named_steps["select"]  # type: ignore[attr-defined]
    if select == "passthrough" or not hasattr(select, "get_support"):
        return list(names)
    return [n for n, keep in zip(names, select.get_support(), strict=True) if keep]


def prediction_rows(
    cases: Sequence[Case],
    split: str,
    probs: np.ndarray,
    preds: np.ndarray,
    class_names: Sequence[str],
) -> list[dict[str, Any]]:
    """``predictions.csv`` rows as a deep run writes them: case_id, split, label,
    prob_<class>..., pred, patient_id (when it differs from the case), attributes."""
    rows = []
    for k, case in enumerate(cases):
        row: dict[str, Any] = {"case_id": case.case_id, "split": split, "label": int(case.label)}  # type: ignore[arg-type]
        for c, name in enumerate(class_names):
            row[f"prob_{name}"] = float(probs[k, c])
        row["pred"] = int(preds[k])
        if case.patient_id and case.patient_id != case.case_id:
            row["patient_id"] = case.patient_id
        row.update(dict(case.attributes))
        rows.append(row)
    return rows


def _check_classes(config: RunConfig, cases: Sequence[Case], class_names: list[str]) -> None:
    present = set(_labels(cases).tolist())
    missing = [name for k, name in enumerate(class_names) if k not in present]
    if missing:
        raise InputError(
            config.data.path,
            f"the training split has no case of class(es) {', '.join(missing)}; raise "
            "data.train_fraction_used",
        )


def _resolve_backbone(config: RunConfig) -> RunConfig:
    """A copy whose run-folder backbone is an absolute path (config.yaml then reproduces)."""
    config = config.model_copy(deep=True)
    features = config.features
    if features is not None and features.backbone and Path(features.backbone).is_dir():
        features.backbone = str(Path(features.backbone).resolve())
    return config


def train_classical(
    config: RunConfig,
    overwrite: bool = False,
    progress: bool = True,
    finalize: Callable[[Path], None] | None = None,
) -> Path:
    """Extract features, fit the pipeline on train, threshold on val, score val and test once.

    The folder is built in ``<output_dir>/<name>.partial/`` and renamed when complete;
    ``finalize(stage_dir)`` runs just before (the report hooks in there).

    Args:
        config: a run config with a ``features`` section.
        overwrite: replace an existing run folder of the same name.
        progress: show feature-extraction progress bars.
        finalize: called on the complete folder before it is published.

    Returns:
        The finished run folder ``<output_dir>/<name>``.

    Raises:
        ConfigError: no features section, an existing run folder, or a bad backbone.
        InputError: unreadable data, a split without cases, or a class absent from train.

    Example:
        >>> train_classical(load_config("configs/pneumoniamnist_hybrid_svm.yaml"))  # doctest: +SKIP
        PosixPath('runs/pneumoniamnist-hybrid-svm')
    """
    if config.features is None:
        raise ConfigError("features", "a classical run needs a features section")
    config = _resolve_backbone(config)
    final_dir = config.run_dir()
    if final_dir.exists() and not overwrite:
        raise ConfigError(
            "name", f"run folder {final_dir} already exists (use --overwrite or another name)"
        )
    seed_everything(config.seed)
    data = prepare_data(config)
    class_names = list(data.case_set.class_names)
    _check_classes(config, data.splits["train"], class_names)

    t0 = time.perf_counter()
    features = run_features(config, data.case_set, data.splits, progress)
    _check_finite(features, data.splits)
    feature_seconds = time.perf_counter() - t0
    t0 = time.perf_counter()
    pipeline, grid = fit_feature_pipeline(config, features.matrices["train"], data.splits["train"])
    fit_seconds = time.perf_counter() - t0

    stage = config.output_dir / f"{config.name}.partial"
    if stage.exists():
        shutil.rmtree(stage)
    stage.mkdir(parents=True)
    probs = {name: pipeline.predict_proba(features.matrices[name]) for name in ("val", "test")}  # type: ignore[attr-defined]
    times = {
        "feature_seconds": feature_seconds,
        "fit_seconds": fit_seconds,
        "train_seconds": feature_seconds + fit_seconds,
    }
    _write_run(config, stage, data, class_names, probs, features, pipeline, grid, times)
    if finalize is not None:
        finalize(stage)
    publish_run(stage, final_dir)
    return final_dir


def _check_finite(features: CaseFeatures, splits: dict[str, list[Case]]) -> None:
    for name, matrix in features.matrices.items():
        bad = ~np.isfinite(matrix)
        if bad.any():
            row, column = (int(i[0]) for i in np.nonzero(bad))
            case = splits[name][row]
            raise InputError(
                case.source or case.case_id,
                f"feature {features.names[column]} is NaN or infinite for this case; "
                "choose other feature families or a preprocessing that avoids it",
            )


def _write_run(
    config: RunConfig,
    stage: Path,
    data: PreparedData,
    class_names: list[str],
    probs: dict[str, np.ndarray],
    features: CaseFeatures,
    pipeline: BaseEstimator,
    grid: dict[str, Any] | None,
    times: dict[str, float],
) -> None:
    from medlens.metrics import evaluate_predictions
    from medlens.metrics.threshold import choose_threshold, predict_labels
    from medlens.preprocess.pipeline import save_pipeline

    tcfg = config.train
    splits = data.splits
    binary = len(class_names) == 2
    val_labels = _labels(splits["val"])
    threshold = (
        float(
            choose_threshold(val_labels, probs["val"][:, 1], tcfg.threshold, tcfg.fixed_threshold)
        )
        if binary
        else 0.5
    )
    method = tcfg.threshold if binary else "argmax"
    split_metrics, rows = {}, []
    for name in ("val", "test"):
        split_metrics[name] = evaluate_predictions(
            _labels(splits[name]),
            probs[name],
            class_names,
            threshold,
            n_bootstrap=config.evaluate.n_bootstrap,
            ci_level=config.evaluate.ci_level,
            seed=config.seed,
        )
        preds = predict_labels(probs[name], threshold)
        rows += prediction_rows(splits[name], name, probs[name], preds, class_names)

    write_atomic(stage / "config.yaml", config.to_yaml())
    save_pipeline(features.preprocess, stage / "preprocessing.json")
    labels = {"class_names": class_names, "threshold": threshold, "threshold_method": method}
    write_json_atomic(stage / "labels.json", labels)
    write_json_atomic(
        stage / "metrics.json",
        {
            "task": "classification",
            "kind": "classical",
            "class_names": class_names,
            "threshold": threshold,
            "threshold_method": method,
            "splits": split_metrics,
            **times,
        },
    )
    pd.DataFrame(rows).to_csv(stage / "predictions.csv", index=False)
    write_json_atomic(stage / "data_summary.json", data_summary(config, data, class_names))
    selected = _selected(pipeline, features.names)
    write_json_atomic(
        stage / FEATURES_FILE,
        {
            **features.meta,
            "n_features": len(features.names),
            "feature_names": features.names,
            "n_selected": len(selected),
            "selected_features": selected,
            "pipeline": repr(pipeline),
            "grid_search": grid,
            "model_file": MODEL_FILE,
            "sklearn_version": sklearn.__version__,
            "medlens_version": __version__,
            "saved": time.strftime("%Y-%m-%dT%H:%M:%S"),
        },
    )
    joblib.dump(pipeline, stage / MODEL_FILE)
