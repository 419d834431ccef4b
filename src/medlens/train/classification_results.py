"""What every classification run (deep, classical) does once its model is fitted: calibrate
on validation, choose the threshold and the refer band on the calibrated validation
probabilities, fit the out-of-distribution score (training features, threshold on
validation), score validation and test once, and write the run folder's files."""

from __future__ import annotations

from collections.abc import Mapping, Sequence
from dataclasses import dataclass, field
from typing import Any

import numpy as np

from medlens.config import RunConfig
from medlens.data.case import Case
from medlens.errors import ConfigError, InputError
from medlens.run_folder import layout
from medlens.run_folder.trust import calibration_record
from medlens.run_folder.writer import RunWriter
from medlens.train.data import PreparedData, data_summary
from medlens.trust.calibrators import Calibrator, Uncalibrated
from medlens.trust.decisions import Decisions
from medlens.trust.ood import MahalanobisDetector
from medlens.trust.refer import ReferBand


@dataclass(frozen=True)
class OodFeatures:
    """The features the out-of-distribution score reads, per split, rows in case order.

    Attributes:
        train: ``(N, D)`` training features (the score is fitted on them).
        train_labels: ``(N,)`` their classes.
        val: validation features (the threshold is set on them).
        test: test features (flagged, never looked at before).
        standardize: features of different units (a classical run's): each is standardised
            before the score is fitted.
    """

    train: np.ndarray
    train_labels: np.ndarray
    val: np.ndarray
    test: np.ndarray
    standardize: bool = False


@dataclass(frozen=True)
class ClassificationResults:
    """The decision rule chosen on validation and its scores.

    Attributes:
        threshold: on the positive class's calibrated probability (binary); 0.5 otherwise
            (argmax).
        threshold_method: ``youden_plateau``, ``youden``, ``max_f1``, ``fixed`` or ``argmax``.
        splits: split name -> ``evaluate_predictions``'s result (calibrated probabilities).
        rows: one ``predictions.csv`` row per validation and test case.
        calibrator: fitted on validation.
        band: the refer band chosen on validation.
        ood: the out-of-distribution score, or None.
        trust: what ``metrics.json`` records under ``trust`` (``medlens.trust.summary``).
        source_prior: the class shares the calibrated probabilities assume (their mean over
            validation, ``medlens.trust.label_shift``), or None.
    """

    threshold: float
    threshold_method: str
    splits: dict[str, Any]
    rows: list[dict[str, Any]]
    calibrator: Calibrator = Uncalibrated()
    band: ReferBand = ReferBand()
    ood: MahalanobisDetector | None = None
    trust: dict[str, Any] = field(default_factory=dict)
    source_prior: np.ndarray | None = None


def check_trust_config(
    config: RunConfig, class_names: Sequence[str], val_labels: Sequence[int] | None = None
) -> None:
    """Refuse, before training, what the run's classes or validation cases cannot take: a
    refer rule for more classes than it handles, or a validation split lacking a class that
    the calibration, the threshold rule or the refer rule is fitted on.

    Args:
        val_labels: the validation cases' class indices (None: not checked).

    Raises:
        ConfigError: ``refer.rule: sens_spec`` for more than two classes.
        InputError: naming the data source, when the validation split has no case of a class
            and something is fitted on every class of it.
    """
    if config.refer.rule == "sens_spec" and len(class_names) != 2:
        raise ConfigError(
            "refer.rule", f"sens_spec needs two classes, not {len(class_names)}; use coverage"
        )
    if val_labels is None:
        return
    present = {int(label) for label in val_labels}
    missing = [name for k, name in enumerate(class_names) if k not in present]
    if not missing:
        return
    needs = []
    if config.calibration.method != "none":
        needs.append(f"{config.calibration.method} calibration (or calibration.method: none)")
    if len(class_names) == 2 and config.train.threshold != "fixed":
        needs.append(f"the {config.train.threshold} threshold (or train.threshold: fixed)")
    if config.refer.rule == "sens_spec":
        needs.append("the sens_spec refer band (or refer.rule: coverage)")
    if needs:
        raise InputError(
            str(config.data.path),
            f"the validation split has no case of class {', '.join(map(repr, missing))}, "
            f"and these are fitted on validation cases of every class: {'; '.join(needs)}. "
            "Add such cases to the validation split, or set the alternatives named",
        )


def prediction_rows(
    cases: Sequence[Case],
    split: str,
    raw: np.ndarray,
    decisions: Decisions,
    class_names: Sequence[str],
) -> list[dict[str, Any]]:
    """``predictions.csv`` rows: case_id, split, label, prob_<class>... (calibrated), pred,
    pred_label, decision, refer, refer_reason (and ood_score, ood), raw_prob_<class>... (before
    calibration), patient_id (when it differs from the case), then the case's attributes
    (subgroup columns)."""
    rows = []
    for k, case in enumerate(cases):
        row: dict[str, Any] = {"case_id": case.case_id, "split": split, "label": int(case.label)}  # type: ignore[arg-type]
        for c, name in enumerate(class_names):
            row[f"prob_{name}"] = float(decisions.probs[k, c])
        row["pred"] = int(decisions.preds[k])
        row["pred_label"] = class_names[int(decisions.preds[k])]
        row.update(decisions.row(k, class_names))
        for c, name in enumerate(class_names):
            row[f"raw_prob_{name}"] = float(raw[k, c])
        if case.patient_id and case.patient_id != case.case_id:
            row["patient_id"] = case.patient_id
        row.update(dict(case.attributes))
        rows.append(row)
    return rows


def _fit_ood(config: RunConfig, features: OodFeatures | None) -> MahalanobisDetector | None:
    from medlens.trust.ood import fit_mahalanobis

    if features is None or config.ood.score == "none":
        return None
    return fit_mahalanobis(
        features.train,
        features.train_labels,
        features.val,
        false_alarm_rate=config.ood.false_alarm_rate,
        max_dims=config.ood.max_dims,
        seed=config.seed,
        standardize=features.standardize,
    )


def score_classification(
    config: RunConfig,
    cases: Mapping[str, Sequence[Case]],
    probs: Mapping[str, np.ndarray],
    class_names: Sequence[str],
    ood_features: OodFeatures | None = None,
) -> ClassificationResults:
    """Calibrate on ``val`` (``calibration.method``), choose the threshold
    (``train.threshold``) and the refer band (``refer``) on the calibrated ``val``
    probabilities, fit the out-of-distribution score (``ood``), then score ``val`` and
    ``test`` once with all of them.

    Args:
        cases: split -> its cases, in the order of the rows of ``probs[split]``.
        probs: split -> class probabilities ``(N, K)`` as the model gave them.
        ood_features: the features of the out-of-distribution score; None: no score.
    """
    from medlens.metrics import evaluate_predictions
    from medlens.metrics.threshold import choose_threshold
    from medlens.trust.calibration_choice import compared_on_validation
    from medlens.trust.calibrators import fit_calibrator
    from medlens.trust.decisions import decide
    from medlens.trust.label_shift import source_prior
    from medlens.trust.refer import choose_band
    from medlens.trust.summary import (
        calibration_summary,
        ood_summary,
        prior_shift_summary,
        refer_summary,
        selective_summary,
    )

    tcfg, rcfg = config.train, config.refer
    binary = len(class_names) == 2
    labels = {
        name: np.array([int(c.label) for c in cases[name]])  # type: ignore[arg-type]
        for name in ("val", "test")
    }
    calibrator = fit_calibrator(config.calibration.method, probs["val"], labels["val"])
    calibrated = {name: calibrator.transform(probs[name]) for name in ("val", "test")}
    prior = source_prior(calibrated["val"])
    threshold = (
        float(
            choose_threshold(
                labels["val"], calibrated["val"][:, 1], tcfg.threshold, tcfg.fixed_threshold
            )
        )
        if binary
        else 0.5
    )
    band = choose_band(
        rcfg.rule,
        labels["val"],
        calibrated["val"],
        threshold,
        coverage=rcfg.coverage,
        sensitivity=rcfg.sensitivity,
        specificity=rcfg.specificity,
    )
    detector = _fit_ood(config, ood_features)
    splits: dict[str, Any] = {}
    rows: list[dict[str, Any]] = []
    calibration = calibration_summary(
        calibrator, labels, probs, calibrated, threshold if binary else None
    )
    calibration["compared_on_val"] = compared_on_validation(
        probs["val"], labels["val"], config.calibration.method, seed=config.seed
    )
    trust: dict[str, Any] = {
        "calibration": calibration,
        "refer": {"band": band.to_dict(), "splits": {}},
        "selective": {},
    }
    if detector is not None:
        trust["ood"] = {
            "score": config.ood.score,
            "threshold": detector.threshold,
            "false_alarm_rate": detector.false_alarm_rate,
            "dims": int(detector.components.shape[0]),
            "splits": {},
        }
    for name in ("val", "test"):
        splits[name] = evaluate_predictions(
            labels[name],
            calibrated[name],
            list(class_names),
            threshold,
            n_bootstrap=config.evaluate.n_bootstrap,
            ci_level=config.evaluate.ci_level,
            seed=config.seed,
        )
        scores = flags = None
        if detector is not None and ood_features is not None:
            scores, flags = detector.flags(getattr(ood_features, name))
            trust["ood"]["splits"][name] = ood_summary(scores, flags)
        decisions = decide(calibrated[name], threshold if binary else None, band, scores, flags)
        trust["refer"]["splits"][name] = refer_summary(
            band, labels[name], decisions.preds, decisions.referred
        )
        trust["selective"][name] = selective_summary(
            labels[name], decisions.preds, calibrated[name], threshold if binary else None
        )
        rows += prediction_rows(cases[name], name, probs[name], decisions, class_names)
        if name == "test":
            # the cases predict --adapt-prior would use: those not flagged out of distribution
            trust["calibration"]["prior_shift"] = prior_shift_summary(
                labels[name],
                calibrated[name],
                decisions.preds,
                prior,
                class_names,
                config.seed,
                ood=decisions.ood,
            )
    return ClassificationResults(
        threshold,
        tcfg.threshold if binary else "argmax",
        splits,
        rows,
        calibrator=calibrator,
        band=band,
        ood=detector,
        trust=trust,
        source_prior=prior,
    )


def write_classification_run(
    writer: RunWriter,
    config: RunConfig,
    data: PreparedData,
    results: ClassificationResults,
    preprocess: Any,
    class_names: list[str],
    **metrics: Any,
) -> None:
    """config.yaml, preprocessing.json, labels.json (with the refer band), calibration.json,
    ood.npz (when the run has the score), metrics.json (with ``metrics``: epochs, seconds,
    kind...), predictions.csv and data_summary.json of a classification run."""
    decision = {"threshold": results.threshold, "threshold_method": results.threshold_method}
    writer.config(config)
    writer.preprocessing(preprocess)
    writer.labels(
        class_names,
        results.threshold,
        threshold_method=results.threshold_method,
        refer=results.band.to_dict(),
    )
    writer.json(
        layout.CALIBRATION,
        calibration_record(results.calibrator, results.source_prior),
    )
    if results.ood is not None:
        writer.arrays(layout.OOD, results.ood.arrays())
    writer.metrics(
        {
            "task": config.task,
            "class_names": class_names,
            **decision,
            "splits": results.splits,
            "trust": results.trust,
        }
        | metrics
    )
    writer.table(layout.PREDICTIONS, results.rows)
    writer.json(layout.DATA_SUMMARY, data_summary(config, data, class_names))
