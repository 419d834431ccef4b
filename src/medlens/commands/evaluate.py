"""``medlens evaluate``: a finished run's model on a labelled split, at its own threshold."""

from __future__ import annotations

from pathlib import Path
from typing import TYPE_CHECKING, Any

import numpy as np
import pandas as pd

from medlens.errors import ConfigError, InputError
from medlens.io_utils import write_atomic, write_json_atomic
from medlens.report.formatting import format_value
from medlens.run_folder.reader import read_decision_labels, read_run_task

if TYPE_CHECKING:
    from medlens.inference.decide import RunPredictor
    from medlens.inference.ensemble_run import EnsemblePredictor
    from medlens.inference.loaded_run import LoadedRun
    from medlens.trust.decisions import Decisions


def parse_spacing(text: str | None) -> list[float] | None:
    """``"0.8,0.8,1.25"`` -> ``[0.8, 0.8, 1.25]`` (mm per axis; one value for every axis).

    Raises:
        ConfigError: keyed ``--spacing`` when a value is not a number.
    """
    if not text:
        return None
    try:
        return [float(v) for v in text.split(",")]
    except ValueError:
        raise ConfigError("--spacing", f"{text!r}: expected numbers separated by commas") from None


def evaluate_command(
    run_dir: Path | None = None,
    data: Path | None = None,
    data_format: str = "medmnist",
    split: str | None = None,
    out: Path | None = None,
    pred: Path | None = None,
    ref: Path | None = None,
    spacing: str | None = None,
    fov: Path | None = None,
    tolerance_mm: float = 1.0,
    registration: Path | None = None,
    fixed_landmarks: Path | None = None,
    moving_landmarks: Path | None = None,
    fixed_labels: Path | None = None,
) -> str:
    """``medlens evaluate``: a run (``run_dir``), two folders of masks (``pred`` and
    ``ref``), a detections CSV against box annotations (``pred`` a file, ``ref`` a VOC
    folder, COCO JSON or box CSV), or a ``medlens register`` output folder (``registration``: target registration
    error from landmarks in mm, Dice/HD95 of the propagated labels, folding, Jacobian
    statistics); returns the text to print after the evaluation is written.

    Raises:
        ConfigError: a run and mask folders together, one mask folder alone, or neither; a
            run whose task this verb cannot evaluate; a bad ``--spacing``.
    """
    if registration is not None:
        if run_dir is not None or pred is not None or ref is not None:
            raise ConfigError(
                "--registration",
                "scores a registration folder alone (no run folder, --pred or --ref)",
            )
        from medlens.commands.register import evaluate_registration, format_evaluation

        metrics = evaluate_registration(
            registration, fixed_landmarks, moving_landmarks, fixed_labels
        )
        return format_evaluation(metrics, registration)
    if pred is not None and Path(pred).is_file():
        from medlens.commands.evaluate_boxes import (
            check_box_arguments,
            evaluate_box_files,
            format_box_summary,
        )

        check_box_arguments(pred, ref, run_dir)
        assert ref is not None
        out_dir = out or Path("box_metrics")
        document = evaluate_box_files(pred, ref, out_dir)
        return format_box_summary(document) + f"metrics written to {out_dir}"
    if pred is not None or ref is not None:
        if pred is None or ref is None or run_dir is not None:
            raise ConfigError(
                "--pred/--ref", "mask evaluation takes --pred DIR and --ref DIR (and no run folder)"
            )
        from medlens.commands.evaluate_masks import evaluate_mask_folders, format_summary

        out_dir = out or Path("mask_metrics")
        summary = evaluate_mask_folders(
            pred,
            ref,
            out_dir,
            spacing=parse_spacing(spacing),
            fov_dir=fov,
            tolerance_mm=tolerance_mm,
        )
        return format_summary(summary) + f"metrics written to {out_dir}"
    if run_dir is None:
        raise ConfigError("run_dir", "give a run folder, or --pred DIR and --ref DIR")
    task = read_run_task(run_dir)
    if task.predicts_boxes:
        raise ConfigError(
            "run_dir",
            f"{run_dir} is a {task.name} run: its metrics.json already scores its test split; "
            "to score new images, `medlens predict` them and compare with "
            "`medlens evaluate --pred detections.csv --ref ANNOTATIONS`",
        )
    if task.predicts_masks:
        raise ConfigError(
            "run_dir",
            f"{run_dir} is a {task.name} run: its metrics.json already scores its test split; "
            "to score new images, `medlens predict` them and compare with "
            "`medlens evaluate --pred MASKS --ref REFERENCE`",
        )
    result_dir = evaluate_run(run_dir, data=data, data_format=data_format, split=split, out=out)
    return f"evaluation written to {result_dir}"


def evaluate_run(
    run_dir: Path,
    data: Path | None = None,
    data_format: str = "medmnist",
    split: str | None = None,
    out: Path | None = None,
) -> Path:
    """Predict the ``split`` cases of ``data`` (default: the run's own data) and write
    ``metrics.json``, ``predictions.csv`` and plots to ``out``; print the metric table and
    how many cases were referred.

    ``split=None`` means the test split of the run's own data or of a MedMNIST file, and
    every case of other data (an external set has no reason to be split). The run's whole
    decision rule applies as in ``medlens predict`` (``load_predictor``; an ensemble run
    folder too, reading its first member's data and evaluation settings): its calibrator,
    the threshold it chose on its validation split, its refer band and its
    out-of-distribution flag; nothing is re-tuned here. ``predictions.csv`` has ``pred``,
    ``pred_label``, ``prob_<class>`` and the trust columns (``decision``, ``refer``,
    ``refer_reason``, ``ood_score``, ``ood``); ``metrics.json`` scores every case and
    records under ``trust`` the referred cases with the balanced accuracy of all cases and
    of the kept ones (``refer``, as in a run's ``metrics.json``) and the cases flagged out
    of distribution (``ood``, for a run with the score).
    """
    from pydantic import ValidationError

    from medlens.config import DataConfig
    from medlens.data.sources import open_source
    from medlens.inference.ensemble_run import load_predictor
    from medlens.metrics import evaluate_predictions
    from medlens.report.plots import plot_confusion, plot_roc

    predictor = load_predictor(run_dir)
    config = _settings_run(predictor).config
    class_names = predictor.class_names
    threshold = float(read_decision_labels(run_dir)["threshold"])
    data_cfg = config.data
    if data is not None:
        fields = {**data_cfg.model_dump(), "path": Path(data), "format": data_format}
        fields.update(class_names=class_names, train_fraction_used=1.0)
        try:
            data_cfg = DataConfig.model_validate(fields)
        except ValidationError as exc:
            err = exc.errors()[0]
            raise ConfigError(f"--{err['loc'][0]}", err["msg"]) from None
    if split is None:
        split = "test" if data is None or data_format == "medmnist" else "all"
    case_set = open_source(data_cfg)
    if list(case_set.class_names) != class_names:
        raise InputError(
            data_cfg.path, f"classes {case_set.class_names} differ from the run's {class_names}"
        )
    cases = [c for c in case_set.cases if split == "all" or c.split == split]
    if not cases:
        raise InputError(data_cfg.path, f"no cases in split {split!r}")
    decisions = predictor.decisions(
        [predictor.prepare(case_set.load(c)) for c in cases],
        sources=[c.case_id for c in cases],
    )
    probs = decisions.probs
    labels = np.array([c.label for c in cases], dtype=int)
    result = evaluate_predictions(
        labels,
        probs,
        class_names,
        threshold,
        n_bootstrap=config.evaluate.n_bootstrap,
        ci_level=config.evaluate.ci_level,
        seed=config.seed,
    )
    trust = _trust_record(predictor, labels, decisions)
    out = (
        Path(out)
        if out is not None
        else Path(run_dir) / f"evaluation-{Path(data_cfg.path).stem}-{split}"
    )
    out.mkdir(parents=True, exist_ok=True)
    write_json_atomic(
        out / "metrics.json",
        {"run": str(run_dir), "data": str(data_cfg.path), "split": split, **result, "trust": trust},
    )
    preds = decisions.preds
    frame = pd.DataFrame(
        {
            "case_id": [c.case_id for c in cases],
            "label": labels,
            "pred": preds,
            "pred_label": [class_names[int(k)] for k in preds],
        }
    )
    for k, name in enumerate(class_names):
        frame[f"prob_{name}"] = probs[:, k]
    trust_columns = pd.DataFrame(
        [decisions.row(i, class_names) for i in range(len(cases))], index=frame.index
    )
    frame = pd.concat([frame, trust_columns], axis=1)
    write_atomic(out / "predictions.csv", frame.to_csv(index=False))
    (out / "plots").mkdir(exist_ok=True)
    plot_roc(labels, probs, class_names, out / "plots" / "roc.png")
    plot_confusion(labels, preds, class_names, out / "plots" / "confusion.png")
    _print_table(result, f"{Path(data_cfg.path).name} [{split}] at threshold {threshold:.3f}")
    _print_referral(trust)
    return out


def _settings_run(predictor: RunPredictor | EnsemblePredictor) -> LoadedRun:
    """The single run whose config gives the data and evaluation settings: the run itself,
    or an ensemble's first member (its members share the validation and test cases)."""
    from medlens.inference.ensemble_run import EnsemblePredictor

    while isinstance(predictor, EnsemblePredictor):
        predictor = predictor.members[0]
    return predictor.run


def _trust_record(
    predictor: RunPredictor | EnsemblePredictor, labels: np.ndarray, decisions: Decisions
) -> dict[str, Any]:
    """``metrics.json``'s ``trust``: the referred cases (``refer_summary``) and the cases
    flagged out of distribution (``ood_summary``; absent for a run without the score)."""
    from medlens.inference.ensemble_run import EnsemblePredictor
    from medlens.trust.summary import ood_summary, refer_summary

    rule = predictor.trust if isinstance(predictor, EnsemblePredictor) else predictor.run.trust
    trust: dict[str, Any] = {
        "refer": {
            "band": rule.band.to_dict(),
            **refer_summary(rule.band, labels, decisions.preds, decisions.referred),
        }
    }
    if decisions.ood is not None and decisions.ood_scores is not None:
        trust["ood"] = ood_summary(decisions.ood_scores, decisions.ood)
    return trust


def _print_referral(trust: dict[str, Any]) -> None:
    from rich.console import Console

    refer = trust["refer"]
    flagged = trust["ood"]["flagged"] if "ood" in trust else None
    kept = refer["n"] - refer["referred"]
    Console().print(
        f"{refer['referred']} of {refer['n']} cases referred to a human"
        + (
            " (this run has no out-of-distribution score)"
            if flagged is None
            else f" ({flagged} of them out of distribution)"
        )
        + f"; balanced accuracy {format_value(refer['balanced_accuracy_all'])} on all cases"
        + (
            f", {format_value(refer['balanced_accuracy_kept'])} on the {kept} kept"
            if kept
            else ", none kept"
        )
    )


def _print_table(result: dict, title: str) -> None:
    from rich.console import Console
    from rich.table import Table

    table = Table(title=title)
    for column in ("metric", "value", "95% CI"):
        table.add_column(column)
    for name, entry in result["metrics"].items():
        value = entry.get("value")
        if value is None:
            table.add_row(name, "n/a", "")
            continue
        low, high = entry.get("ci_low"), entry.get("ci_high")
        ci = f"{low:.3f} - {high:.3f}" if low is not None and high is not None else ""
        table.add_row(name, f"{value:.4f}", ci)
    Console().print(table)
