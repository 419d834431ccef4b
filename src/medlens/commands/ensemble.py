"""Ensembles of finished classification runs, written as a run folder of their own.

``ensemble_runs(run_dirs, method)`` combines the runs' predicted probabilities case by case.
The runs must have been evaluated on the same validation and test cases with the same labels
(checked). Anything fitted — weights or a stacking model — is fitted on VALIDATION
predictions only; the test split is combined once, with the fitted combiner, and scored once.

Methods:
    soft: the mean of the runs' probabilities; nothing is fitted.
    weighted: a weighted mean whose weights (non-negative, summing to 1) minimise the log loss
        (cross-entropy) of the validation cases; the problem is convex, solved by SciPy's
        SLSQP from equal weights.
    stacking: a logistic regression on the runs' validation log-odds (binary) or log
        probabilities (multi-class).

For ``weighted`` and ``stacking`` the validation predictions written (and the decision
threshold chosen on them) are cross-fitted: each validation case is predicted by a combiner
fitted on the other folds (patient-aware, stratified), so the validation numbers are not
scored on the cases the combiner learnt from. The combiner applied to test is fitted on all
validation cases.

The members' probabilities are their calibrated ones (each run's ``predictions.csv``); the
ensemble may be calibrated again on its own validation probabilities (``calibration``,
default none), and gets its own refer band (``refer``, chosen on validation as for a run). A
case is out of distribution when any member that has the score flags it (``ood_score``: how
many members flag it).

The folder holds ``config.yaml`` (members and settings), ``ensemble.json`` (what was
fitted: weights or coefficients), ``labels.json`` (with the refer band), ``calibration.json``,
``metrics.json``, ``predictions.csv``, ``data_summary.json``, and ``report.html`` /
``model_card.md``. ``medlens predict`` applies it to new images through its members.
"""

from __future__ import annotations

import warnings
from collections.abc import Sequence
from dataclasses import dataclass
from pathlib import Path
from typing import Any, cast

import numpy as np
import pandas as pd
from scipy.optimize import minimize
from sklearn.linear_model import LogisticRegression
from sklearn.model_selection import StratifiedGroupKFold

from medlens.config import ReferConfig
from medlens.errors import ConfigError, InputError
from medlens.inference.ensemble_run import stacking_features
from medlens.metrics.threshold import THRESHOLD_METHODS, ThresholdMethod
from medlens.pipeline.config import is_pipeline_file
from medlens.run_folder import layout
from medlens.run_folder.classification import (
    RAW_PROB_PREFIX,
    TRUST_COLUMNS,
    RunFolder,
    read_run_folder,
)
from medlens.run_folder.reader import read_run_task
from medlens.run_folder.staging import check_free, open_stage, publish_run
from medlens.run_folder.writer import RunWriter
from medlens.tasks import CLASSIFICATION
from medlens.trust.decisions import Decisions

METHODS = ("soft", "weighted", "stacking")


@dataclass
class Member:
    """One run of the ensemble with its predictions aligned to the reference case order.

    Attributes:
        ood: split -> the run's out-of-distribution flags (bool), when it has the score.
    """

    run: RunFolder
    val: np.ndarray
    test: np.ndarray
    ood: dict[str, np.ndarray] | None = None


def _key_table(run: RunFolder) -> pd.DataFrame:
    table = run.predictions()
    table = table[table["split"].isin(["val", "test"])]
    dupes = table[table.duplicated(["split", "case_id"])]
    if not dupes.empty:
        row = dupes.iloc[0]
        raise InputError(
            run.path / layout.PREDICTIONS, f"case {row['case_id']} appears twice in {row['split']}"
        )
    return table.reset_index(drop=True)


def _mismatch(reference: pd.DataFrame, other: pd.DataFrame, split: str) -> str | None:
    a = reference[reference["split"] == split].set_index("case_id")["label"]
    b = other[other["split"] == split].set_index("case_id")["label"]
    if a.empty:
        return f"it has no {split} cases"
    missing, extra = a.index.difference(b.index), b.index.difference(a.index)
    if len(missing) or len(extra):
        example = (missing if len(missing) else extra)[0]
        return (
            f"{len(missing)} {split} case(s) missing and {len(extra)} extra (e.g. {example}); "
            "ensemble runs on the same data, split and fold"
        )
    differ = a[a != b.reindex(a.index)]
    if not differ.empty:
        return f"{len(differ)} {split} label(s) differ (e.g. case {differ.index[0]})"
    return None


def refuse_other_tasks(run_dir: str | Path) -> None:
    """Refuse a run folder that is not a classification run, before anything else is read.

    An ensemble combines the members' per-case class probabilities (``predictions.csv``), which
    only classification runs (deep, classical, hybrid, or ensembles of them) have. The task is
    the one the run records (``read_run_task``: ``config.yaml``'s ``task``); a pipeline run
    (``kind: pipeline``) is combined by a ``kind: pipeline_ensemble`` config instead.

    Raises:
        InputError: naming the run folder and its task, or a folder that does not exist.
    """
    path = Path(run_dir)
    if not path.is_dir():
        raise InputError(path, "run folder not found")
    if is_pipeline_file(path / layout.CONFIG):
        raise InputError(
            path,
            "is a pipeline run; `medlens ensemble` combines classification runs; combine "
            "pipeline runs with a `kind: pipeline_ensemble` config (`medlens train`)",
        )
    task = read_run_task(path)
    if task is not CLASSIFICATION:
        raise InputError(
            path,
            f"is a {task.name} run; `medlens ensemble` combines classification runs (deep, "
            "classical, hybrid, or ensembles of them) by their per-case class probabilities",
        )


def load_members(run_dirs: Sequence[str | Path]) -> tuple[pd.DataFrame, list[Member]]:
    """Read the runs and align their probabilities to the first run's val and test cases.

    Returns:
        ``(reference table of the first run, members)``.

    Raises:
        InputError: a run that is not a classification run (``refuse_other_tasks``: checked
            for every run first), fewer than two runs, an incomplete run folder, or runs
            whose classes, validation or test cases, or labels differ (naming both runs).
    """
    for run_dir in run_dirs:
        refuse_other_tasks(run_dir)
    if len(run_dirs) < 2:
        raise InputError(", ".join(map(str, run_dirs)) or "<none>", "an ensemble needs 2+ runs")
    runs = [read_run_folder(d) for d in run_dirs]
    tables = [_key_table(r) for r in runs]
    first, reference = runs[0], tables[0]
    members = []
    for run, table in zip(runs, tables, strict=True):
        if run.class_names != first.class_names:
            raise InputError(
                run.path,
                f"classes {run.class_names} differ from {first.class_names} of {first.path}",
            )
        for split in ("val", "test"):
            problem = _mismatch(reference, table, split)
            if problem:
                raise InputError(run.path, f"not evaluated on the cases of {first.path}: {problem}")
        columns = [f"prob_{c}" for c in run.class_names]
        flagged = "ood" in table.columns
        indexed = table.set_index(["split", "case_id"])[columns + (["ood"] if flagged else [])]
        probs, ood = {}, {}
        for split in ("val", "test"):
            keys = reference.loc[reference["split"] == split, "case_id"]
            rows = indexed.loc[[(split, c) for c in keys]]
            probs[split] = rows[columns].to_numpy(dtype=float)
            if flagged:
                ood[split] = rows["ood"].fillna(0).to_numpy(dtype=float) > 0
        members.append(Member(run, probs["val"], probs["test"], ood if flagged else None))
    return reference, members


class SoftMean:
    """The plain mean of the members' probabilities."""

    def fit(self, probs: Sequence[np.ndarray], y: np.ndarray) -> SoftMean:
        self.weights_ = np.full(len(probs), 1.0 / len(probs))
        return self

    def predict(self, probs: Sequence[np.ndarray]) -> np.ndarray:
        return np.tensordot(self.weights_, np.stack(probs), axes=1)

    def describe(self) -> dict[str, Any]:
        return {"weights": self.weights_.tolist()}


class WeightedMean(SoftMean):
    """Weights on the simplex minimising the log loss of ``sum_m w_m P_m`` (convex; SLSQP)."""

    def fit(self, probs: Sequence[np.ndarray], y: np.ndarray) -> WeightedMean:
        m = len(probs)
        picked = np.stack(probs)[:, np.arange(len(y)), y]  # (M, N): p(true class) per member

        def loss(w: np.ndarray) -> float:
            return float(-np.log(np.clip(w @ picked, 1e-15, None)).mean())

        def grad(w: np.ndarray) -> np.ndarray:
            return -(picked / np.clip(w @ picked, 1e-15, None)).mean(axis=1)

        result = minimize(
            loss,
            np.full(m, 1.0 / m),
            jac=grad,
            method="SLSQP",
            bounds=[(0.0, 1.0)] * m,
            constraints=[
                {"type": "eq", "fun": lambda w: w.sum() - 1.0, "jac": lambda w: np.ones(m)}
            ],
        )
        weights = np.clip(result.x, 0.0, None)
        self.weights_ = weights / weights.sum()
        self.val_log_loss_ = loss(self.weights_)
        return self

    def describe(self) -> dict[str, Any]:
        return {"weights": self.weights_.tolist(), "val_log_loss": self.val_log_loss_}


class Stacker:
    """A logistic regression (L2, C = 1) on ``stacking_features``."""

    def __init__(self, seed: int = 0) -> None:
        self.seed = seed

    def fit(self, probs: Sequence[np.ndarray], y: np.ndarray) -> Stacker:
        self.n_classes_ = probs[0].shape[1]
        self.model_ = LogisticRegression(
            C=1.0, solver="newton-cholesky", tol=1e-8, max_iter=200, random_state=self.seed
        )
        self.model_.fit(stacking_features(probs), y)
        return self

    def predict(self, probs: Sequence[np.ndarray]) -> np.ndarray:
        out = np.zeros((len(probs[0]), self.n_classes_))
        out[:, self.model_.classes_] = self.model_.predict_proba(stacking_features(probs))
        return out

    def describe(self) -> dict[str, Any]:
        return {
            "model": "LogisticRegression(C=1.0) on log-odds (binary) or log probabilities",
            "coef": self.model_.coef_.tolist(),
            "intercept": self.model_.intercept_.tolist(),
            "classes": [int(c) for c in self.model_.classes_],
        }


def _combiner(method: str, seed: int) -> SoftMean | Stacker:
    if method == "soft":
        return SoftMean()
    if method == "weighted":
        return WeightedMean()
    return Stacker(seed)


def cross_fitted(
    method: str,
    probs: Sequence[np.ndarray],
    y: np.ndarray,
    groups: np.ndarray,
    folds: int,
    seed: int,
) -> tuple[np.ndarray, int]:
    """Out-of-fold predictions of the combiner on the validation cases.

    Returns:
        ``(probabilities (N, K), number of folds used)``.

    Raises:
        InputError: a validation split too small for two patient-disjoint folds per class.
    """
    smallest = int(np.bincount(y, minlength=probs[0].shape[1]).min())
    n_folds = min(folds, smallest, len(set(groups.tolist())))
    if n_folds < 2:
        raise InputError(
            "val",
            f"cross-fitting needs 2+ validation cases of every class; the rarest has {smallest}",
        )
    splitter = StratifiedGroupKFold(n_splits=n_folds, shuffle=True, random_state=seed)
    out = np.zeros_like(probs[0], dtype=float)
    with warnings.catch_warnings():
        warnings.filterwarnings("ignore", message="The least populated class", category=UserWarning)
        for train, held in splitter.split(np.zeros(len(y)), y, groups):
            combiner = _combiner(method, seed).fit([p[train] for p in probs], y[train])
            out[held] = combiner.predict([p[held] for p in probs])
    return out, n_folds


def _threshold_method(members: Sequence[Member], threshold: str | None) -> ThresholdMethod:
    if threshold is None:  # the members' common method, else the middle of the J plateau
        methods = {m.run.threshold_method for m in members}
        threshold = methods.pop() if len(methods) == 1 else None
        if threshold not in ("youden_plateau", "youden", "max_f1"):
            threshold = "youden_plateau"
    if threshold not in THRESHOLD_METHODS:
        raise ConfigError(
            "--threshold",
            f"unknown method {threshold!r}; use {', '.join(THRESHOLD_METHODS)}",
        )
    return cast(ThresholdMethod, threshold)


def _data_summary(members: Sequence[Member], reference: pd.DataFrame) -> dict[str, Any]:
    names = members[0].run.class_names
    splits: dict[str, Any] = {}
    trains = [(m.run.data_summary or {}).get("splits", {}).get("train") for m in members]
    if trains[0] is not None and all(t == trains[0] for t in trains):
        splits["train"] = trains[0]
    for split in ("val", "test"):
        labels = reference.loc[reference["split"] == split, "label"]
        counts = {name: int((labels == k).sum()) for k, name in enumerate(names)}
        splits[split] = {"n": int(len(labels)), "class_counts": counts}
    sources = sorted({str((m.run.data_summary or {}).get("source")) for m in members})
    skipped = [s for m in members for s in (m.run.data_summary or {}).get("skipped_files") or []]
    return {
        "splits": splits,
        "source": sources[0] if len(sources) == 1 else "several: " + ", ".join(sources),
        "skipped_files": [dict(t) for t in {tuple(sorted(s.items())) for s in skipped}],
    }


def _prediction_table(
    reference: pd.DataFrame,
    probs: dict[str, np.ndarray],
    decisions: dict[str, Decisions],
    names: list[str],
    raw: dict[str, np.ndarray],
) -> pd.DataFrame:
    """The reference run's rows (ids, labels, attributes) with the ensemble's calibrated
    probabilities, ``pred`` and ``pred_label`` (the class at its threshold), its trust
    columns, and its probabilities before calibration."""
    parts = []
    for split in ("val", "test"):
        rows = reference[reference["split"] == split].copy()
        extra = [
            c
            for c in rows.columns
            if c not in ("case_id", "split", "label", "pred", "pred_label", *TRUST_COLUMNS)
            and not c.startswith(("prob_", RAW_PROB_PREFIX))
        ]
        table = rows[["case_id", "split", "label"]].copy()
        for k, name in enumerate(names):
            table[f"prob_{name}"] = probs[split][:, k]
        table["pred"] = decisions[split].preds
        table["pred_label"] = [names[int(k)] for k in decisions[split].preds]
        trust = pd.DataFrame(
            [decisions[split].row(i, names) for i in range(len(table))], index=table.index
        )
        raw_columns = pd.DataFrame(
            {f"{RAW_PROB_PREFIX}{name}": raw[split][:, k] for k, name in enumerate(names)},
            index=table.index,
        )
        parts.append(pd.concat([table, trust, raw_columns, rows[extra]], axis=1))
    return pd.concat(parts, ignore_index=True)


def _member_flags(
    members: Sequence[Member], split: str
) -> tuple[np.ndarray | None, np.ndarray | None]:
    """``(how many members flag each case, flagged by any)`` out of distribution, or
    ``(None, None)`` when no member has the score."""
    flags = [m.ood[split] for m in members if m.ood is not None]
    if not flags:
        return None, None
    return np.sum(flags, axis=0).astype(float), np.any(flags, axis=0)


def _ood_record(members: Sequence[Member], splits: Sequence[str]) -> dict[str, Any] | None:
    """``metrics.json``'s ``trust.ood`` of the ensemble: its rule (a case is flagged when any
    member flags it), each flagging member's own score, threshold and false-alarm rate (from
    its ``metrics.json``), and the flags per split as the ensemble's ``predictions.csv`` has
    them (``ood_summary``; the score is how many members flag the case), for each of
    ``splits``. None when no member has the score."""
    from medlens.trust.summary import ood_summary

    if not any(m.ood is not None for m in members):
        return None
    described: list[dict[str, Any]] = []
    for m in members:
        if m.ood is None:
            continue
        own = (m.run.metrics.get("trust") or {}).get("ood") or {}
        entry: dict[str, Any] = {"run": str(m.run.path.resolve()), "name": m.run.name}
        entry.update({k: own[k] for k in ("score", "threshold", "false_alarm_rate") if k in own})
        if "members" in own:
            entry["members"] = own["members"]
        described.append(entry)
    counts: dict[str, Any] = {}
    for split in splits:
        scores, flags = _member_flags(members, split)
        if scores is not None and flags is not None:
            counts[split] = ood_summary(scores, flags)
    return {
        "score": "any_member",
        "rule": "flagged when any member flags the case; ood_score: how many members flag it",
        "members": described,
        "members_without_score": [m.run.name for m in members if m.ood is None],
        "splits": counts,
    }


def _auc(run: RunFolder, split: str) -> float | None:
    return run.metrics["splits"].get(split, {}).get("metrics", {}).get("auc", {}).get("value")


def combine(
    method: str,
    members: Sequence[Member],
    reference: pd.DataFrame,
    folds: int = 5,
    seed: int = 0,
) -> tuple[dict[str, np.ndarray], dict[str, Any]]:
    """The ensemble's validation and test probabilities, and a record of what was fitted.

    The combiner is fitted on the members' validation probabilities and labels only; the
    validation probabilities returned are cross-fitted for ``weighted`` and ``stacking``.
    """
    y_val = reference.loc[reference["split"] == "val", "label"].to_numpy(dtype=int)
    val_probs = [m.val for m in members]
    combiner = _combiner(method, seed).fit(val_probs, y_val)
    record: dict[str, Any] = {"combiner": combiner.describe(), "cross_fitted_val": False}
    if method == "soft":
        val = combiner.predict(val_probs)
    else:
        column = "patient_id" if "patient_id" in reference.columns else "case_id"
        rows = reference[reference["split"] == "val"]
        groups = rows[column].fillna(rows["case_id"]).astype(str).to_numpy()
        val, used = cross_fitted(method, val_probs, y_val, groups, folds, seed)
        record.update(cross_fitted_val=True, folds=used, grouped_by=column)
    return {"val": val, "test": combiner.predict([m.test for m in members])}, record


def ensemble_runs(
    run_dirs: Sequence[str | Path],
    method: str = "soft",
    out_dir: str | Path = "runs",
    name: str | None = None,
    threshold: str | None = None,
    fixed_threshold: float = 0.5,
    folds: int = 5,
    n_bootstrap: int = 1000,
    ci_level: float = 0.95,
    seed: int = 0,
    overwrite: bool = False,
    documents: bool = True,
    calibration: str = "none",
    refer: ReferConfig | None = None,
) -> Path:
    """Combine finished runs into an ensemble and write it as a run folder.

    Args:
        run_dirs: two or more finished classification run folders (deep, classical, hybrid,
            or ensembles) evaluated on the same validation and test cases.
        method: ``soft``, ``weighted`` or ``stacking`` (see the module docstring).
        out_dir: the folder that receives the ensemble's run folder.
        name: the run folder's name; default ``ensemble-<method>``.
        threshold: ``youden_plateau``, ``youden``, ``max_f1`` or ``fixed``; default the
            members' common method (``youden_plateau`` when they differ). Chosen on the
            (calibrated) validation predictions.
        fixed_threshold: the threshold of ``threshold="fixed"``.
        folds: cross-fitting folds on the validation split (weighted, stacking).
        n_bootstrap, ci_level: the confidence intervals of metrics.json.
        seed: seeds the folds, the stacking model and the bootstrap.
        overwrite: replace an existing folder of that name.
        documents: write report.html and model_card.md.
        calibration: the ensemble's own calibrator, fitted on its validation probabilities
            (``temperature``, ``bcts``, ``dirichlet``, ``isotonic``); default ``none``: the members'
            calibrated probabilities combined as they are.
        refer: the refer band's rule (default: ``ReferConfig()``, 10% of validation cases).

    Returns:
        The ensemble's run folder ``out_dir/name``.

    Raises:
        InputError: a run that is not a classification run (a segmentation, detection,
            registration or pipeline run: naming it), an incomplete run folder, or runs that
            differ in classes, cases or labels (naming both runs).
        ConfigError: an unknown method or threshold, or an existing folder without
            ``overwrite``.

    Example:
        >>> ensemble_runs(["runs/a", "runs/b", "runs/c"], "stacking", "runs")  # doctest: +SKIP
        PosixPath('runs/ensemble-stacking')
    """
    from medlens.metrics import choose_threshold, evaluate_predictions
    from medlens.run_folder.trust import calibration_record
    from medlens.trust.calibrators import fit_calibrator
    from medlens.trust.decisions import decide
    from medlens.trust.label_shift import source_prior
    from medlens.trust.refer import choose_band
    from medlens.trust.summary import (
        calibration_summary,
        prior_shift_summary,
        refer_summary,
        selective_summary,
    )

    if method not in METHODS:
        raise ConfigError("--method", f"unknown method {method!r}; use {', '.join(METHODS)}")
    name = name or f"ensemble-{method}"
    final_dir = Path(out_dir) / name
    check_free(final_dir, overwrite, key="--out")
    reference, members = load_members(run_dirs)
    class_names = members[0].run.class_names
    binary = len(class_names) == 2
    rule = _threshold_method(members, threshold)
    tmethod = rule if binary else "argmax"
    refer = refer or ReferConfig()
    raw, fitted = combine(method, members, reference, folds, seed)

    y = {s: reference.loc[reference["split"] == s, "label"].to_numpy(dtype=int) for s in raw}
    calibrator = fit_calibrator(calibration, raw["val"], y["val"])
    probs = {s: calibrator.transform(p) for s, p in raw.items()}
    prior = source_prior(probs["val"])
    cut = 0.5
    if binary:
        cut = float(choose_threshold(y["val"], probs["val"][:, 1], rule, fixed_threshold))
    band = choose_band(
        refer.rule,
        y["val"],
        probs["val"],
        cut,
        coverage=refer.coverage,
        sensitivity=refer.sensitivity,
        specificity=refer.specificity,
    )
    evaluations = {
        s: evaluate_predictions(y[s], probs[s], class_names, cut, n_bootstrap, ci_level, seed)
        for s in ("val", "test")
    }
    decisions = {
        s: decide(probs[s], cut if binary else None, band, *_member_flags(members, s))
        for s in ("val", "test")
    }
    trust = {
        "calibration": calibration_summary(calibrator, y, raw, probs, cut if binary else None),
        "refer": {
            "band": band.to_dict(),
            "splits": {
                s: refer_summary(band, y[s], decisions[s].preds, decisions[s].referred)
                for s in decisions
            },
        },
        "selective": {
            s: selective_summary(y[s], decisions[s].preds, probs[s], cut if binary else None)
            for s in decisions
        },
    }
    ood = _ood_record(members, list(decisions))
    if ood is not None:
        trust["ood"] = ood
    # the cases predict --adapt-prior would use: those no member flags out of distribution
    trust["calibration"]["prior_shift"] = prior_shift_summary(
        y["test"],
        probs["test"],
        decisions["test"].preds,
        prior,
        class_names,
        seed,
        ood=decisions["test"].ood,
    )
    weights = fitted["combiner"].get("weights")
    paths = [str(m.run.path.resolve()) for m in members]
    settings = {
        "method": method,
        "members": paths,
        "threshold": tmethod,
        "fixed_threshold": fixed_threshold,
        "folds": folds,
        "calibration": calibration,
        "refer": refer.model_dump(),
    }
    fitted = {
        **settings,
        "members": [
            {
                "run": run,
                "name": m.run.name,
                "weight": None if weights is None else weights[i],
                "val_auc": _auc(m.run, "val"),
                "test_auc": _auc(m.run, "test"),
            }
            for i, (m, run) in enumerate(zip(members, paths, strict=True))
        ],
        **fitted,
        "fitted_on": "validation predictions only; the test split was combined once, scored once",
    }
    config = {
        "name": name,
        "task": CLASSIFICATION.name,
        "kind": "ensemble",
        "seed": seed,
        "model": {"name": f"{method} ensemble of {len(members)} runs", "strategy": method},
        "ensemble": settings,
        "evaluate": {"n_bootstrap": n_bootstrap, "ci_level": ci_level},
    }
    decision = {"threshold": cut, "threshold_method": tmethod}
    stage = open_stage(final_dir)
    writer = RunWriter(stage)
    writer.config(config)
    writer.json(layout.ENSEMBLE, fitted)
    writer.labels(class_names, cut, threshold_method=tmethod, refer=band.to_dict())
    writer.json(layout.CALIBRATION, calibration_record(calibrator, prior))
    writer.metrics(
        {
            "task": CLASSIFICATION.name,
            "kind": "ensemble",
            "class_names": class_names,
            **decision,
            "splits": evaluations,
            "trust": trust,
        }
    )
    writer.table(
        layout.PREDICTIONS, _prediction_table(reference, probs, decisions, class_names, raw)
    )
    writer.json(layout.DATA_SUMMARY, _data_summary(members, reference))
    if documents:
        from medlens.report.documents import write_documents

        write_documents(stage)
    publish_run(stage, final_dir)
    return final_dir
