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

import time
import warnings
from collections.abc import Callable, Sequence
from pathlib import Path
from typing import Any

import numpy as np
import sklearn
from sklearn.base import BaseEstimator
from sklearn.model_selection import GridSearchCV, StratifiedGroupKFold

from medlens import __version__
from medlens.config import RunConfig
from medlens.data.case import Case
from medlens.errors import ConfigError, InputError
from medlens.run_folder import layout
from medlens.run_folder.staging import check_free, open_stage, publish_run
from medlens.run_folder.writer import RunWriter
from medlens.train.classical.features import CaseFeatures, run_features
from medlens.train.classification_results import (
    OodFeatures,
    check_trust_config,
    score_classification,
    write_classification_run,
)
from medlens.train.data import PreparedData, prepare_data
from medlens.train.seeding import seed_everything

MODEL_FILE = layout.ESTIMATOR
FEATURES_FILE = layout.FEATURES


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
    check_free(final_dir, overwrite)
    seed_everything(config.seed)
    data = prepare_data(config)
    class_names = list(data.case_set.class_names)
    _check_classes(config, data.splits["train"], class_names)
    check_trust_config(config, class_names, [int(c.label) for c in data.splits["val"]])

    t0 = time.perf_counter()
    features = run_features(config, data.case_set, data.splits, progress)
    _check_finite(features, data.splits)
    feature_seconds = time.perf_counter() - t0
    t0 = time.perf_counter()
    pipeline, grid = fit_feature_pipeline(config, features.matrices["train"], data.splits["train"])
    fit_seconds = time.perf_counter() - t0

    stage = open_stage(final_dir)
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
    ood = OodFeatures(
        train=features.matrices["train"],
        train_labels=_labels(data.splits["train"]),
        val=features.matrices["val"],
        test=features.matrices["test"],
        standardize=True,
    )
    results = score_classification(config, data.splits, probs, class_names, ood)
    writer = RunWriter(stage)
    write_classification_run(
        writer, config, data, results, features.preprocess, class_names, kind="classical", **times
    )
    selected = _selected(pipeline, features.names)
    writer.json(
        FEATURES_FILE,
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
    writer.estimator(pipeline)
