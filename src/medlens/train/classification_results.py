"""What every classification run (deep, classical) does once its model is fitted: choose the
threshold on validation, score validation and test once, and write the run folder's files."""

from __future__ import annotations

from collections.abc import Mapping, Sequence
from dataclasses import dataclass
from typing import Any

import numpy as np

from medlens.config import RunConfig
from medlens.data.case import Case
from medlens.run_folder import layout
from medlens.run_folder.writer import RunWriter
from medlens.train.data import PreparedData, data_summary


@dataclass(frozen=True)
class ClassificationResults:
    """The decision rule chosen on validation and its scores.

    Attributes:
        threshold: on the positive class's probability (binary); 0.5 otherwise (argmax).
        threshold_method: ``youden``, ``max_f1``, ``fixed`` or ``argmax``.
        splits: split name -> ``evaluate_predictions``'s result.
        rows: one ``predictions.csv`` row per validation and test case.
    """

    threshold: float
    threshold_method: str
    splits: dict[str, Any]
    rows: list[dict[str, Any]]


def prediction_rows(
    cases: Sequence[Case],
    split: str,
    probs: np.ndarray,
    preds: np.ndarray,
    class_names: Sequence[str],
) -> list[dict[str, Any]]:
    """``predictions.csv`` rows: case_id, split, label, prob_<class>..., pred, patient_id
    (when it differs from the case), then the case's attributes (subgroup columns)."""
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


def score_classification(
    config: RunConfig,
    cases: Mapping[str, Sequence[Case]],
    probs: Mapping[str, np.ndarray],
    class_names: Sequence[str],
) -> ClassificationResults:
    """Threshold on ``val`` (``train.threshold``), then ``val`` and ``test`` scored with it.

    Args:
        cases: split -> its cases, in the order of the rows of ``probs[split]``.
        probs: split -> class probabilities ``(N, K)``.
    """
    from medlens.metrics import evaluate_predictions
    from medlens.metrics.threshold import choose_threshold, predict_labels

    tcfg = config.train
    binary = len(class_names) == 2
    val_labels = np.array([int(c.label) for c in cases["val"]])  # type: ignore[arg-type]
    threshold = (
        float(
            choose_threshold(val_labels, probs["val"][:, 1], tcfg.threshold, tcfg.fixed_threshold)
        )
        if binary
        else 0.5
    )
    splits: dict[str, Any] = {}
    rows: list[dict[str, Any]] = []
    for name in ("val", "test"):
        labels = np.array([int(c.label) for c in cases[name]])  # type: ignore[arg-type]
        splits[name] = evaluate_predictions(
            labels,
            probs[name],
            list(class_names),
            threshold,
            n_bootstrap=config.evaluate.n_bootstrap,
            ci_level=config.evaluate.ci_level,
            seed=config.seed,
        )
        preds = predict_labels(probs[name], threshold)
        rows += prediction_rows(cases[name], name, probs[name], preds, class_names)
    return ClassificationResults(threshold, tcfg.threshold if binary else "argmax", splits, rows)


def write_classification_run(
    writer: RunWriter,
    config: RunConfig,
    data: PreparedData,
    results: ClassificationResults,
    preprocess: Any,
    class_names: list[str],
    **metrics: Any,
) -> None:
    """config.yaml, preprocessing.json, labels.json, metrics.json (with ``metrics``: epochs,
    seconds, kind...), predictions.csv and data_summary.json of a classification run."""
    decision = {"threshold": results.threshold, "threshold_method": results.threshold_method}
    writer.config(config)
    writer.preprocessing(preprocess)
    writer.labels(class_names, results.threshold, threshold_method=results.threshold_method)
    writer.metrics(
        {"task": config.task, "class_names": class_names, **decision, "splits": results.splits}
        | metrics
    )
    writer.table(layout.PREDICTIONS, results.rows)
    writer.json(layout.DATA_SUMMARY, data_summary(config, data, class_names))
