"""A classification run (or an ensemble of runs) applied to files (DICOM, NIfTI,
PNG/JPEG/TIFF, .npz): one CSV row per image with the calibrated probabilities, the decision
at the run's threshold, whether to refer it to a human (the refer band, the
out-of-distribution flag), what it cost, any error, and on request its uncertainty and its
probabilities adapted to the batch's estimated class mix."""

from __future__ import annotations

from pathlib import Path
from typing import Any, NamedTuple

import numpy as np
import pandas as pd

from medlens.errors import InputError
from medlens.inference.cost import CaseCost
from medlens.inference.discovery import iter_input_cases
from medlens.io_utils import write_atomic, write_json_atomic


class PredictSummary(NamedTuple):
    """What ``predict_files`` wrote: predictions, skipped files, referred cases (either
    reason), cases flagged out of distribution and, with ``adapt_prior``, one line on the
    estimated class mix."""

    predicted: int
    skipped: int
    referred: int
    out_of_distribution: int
    prior_shift: str = ""


def prior_shift_path(out: Path) -> Path:
    """Where ``predict_files(..., adapt_prior=True)`` records the estimated class mix."""
    return out.with_name(out.stem + ".prior_shift.json")


def predict_files(
    run_dir: Path,
    inputs: list[Path],
    out: Path,
    skip_bad: bool = False,
    batch_size: int = 64,
    progress: bool = True,
    uncertainty: str | None = None,
    adapt_prior: bool = False,
) -> PredictSummary:
    """Write ``out`` (CSV): one row per image with probabilities (calibrated), ``pred`` (the
    class index at the run's threshold), ``pred_label``, ``decision`` (the class, or
    ``refer``), ``refer``, ``refer_reason`` (``uncertain``: in the refer band;
    ``out_of_distribution``), ``ood_score`` and ``ood`` (runs with the score), with
    ``uncertainty``: ``entropy`` and ``mutual_information`` (nats) and ``uncertainty``
    (the method), what it cost (``seconds``: reading, preprocessing and a share of its
    batch's forward passes; ``peak_rss_mib``: see ``medlens.inference.cost``) and any error.
    With ``adapt_prior``: ``adapted_prob_<class>`` (``medlens.trust.label_shift``; empty for
    cases flagged out of distribution, which the estimate leaves out), and
    ``prior_shift_path(out)`` with the estimated class mix and its 95% interval.

    Args:
        run_dir: a classification run folder, or an ensemble run folder.
        progress: show a progress bar while images are read and preprocessed.
        uncertainty: ``tta``, ``mc_dropout`` (single runs) or ``ensemble`` (ensembles).
        adapt_prior: treat the images as one batch from one site: estimate its class mix
            and add probabilities adapted to it (decisions unchanged).

    Raises:
        InputError: on the first unreadable file unless ``skip_bad``; with ``adapt_prior``,
            a run that records no class mix (before any file is read) or fewer than
            ``MIN_CASES`` cases in distribution (nothing written).
        ConfigError: an uncertainty method the run cannot give (checked before any file
            is read).
    """
    from tqdm.auto import tqdm

    from medlens.inference.ensemble_run import load_predictor
    from medlens.run_folder.trust import read_source_prior
    from medlens.trust.measures import mutual_information, predictive_entropy

    predictor = load_predictor(run_dir)
    if uncertainty is not None:
        predictor.check_uncertainty(uncertainty)
    names = predictor.class_names
    prior = read_source_prior(run_dir, len(names)) if adapt_prior else None
    ids: list[str] = []
    files: list[str] = []
    prepared: list[Any] = []
    costs: list[CaseCost] = []
    errors: list[dict[str, object]] = []
    cases = iter_input_cases(list(inputs), volumes=predictor.volumes)
    for case_id, file, load in tqdm(cases, desc="read", unit="image", disable=not progress):
        cost = CaseCost()
        try:
            with cost:
                prepared.append(predictor.prepare(load()))
        except InputError as exc:
            if not skip_bad:
                raise
            errors.append({"case_id": case_id, "file": file, "error": exc.reason})
            continue
        ids.append(case_id)
        files.append(file)
        costs.append(cost)
    rows: list[dict[str, object]] = []
    referred = flagged = 0
    for start in range(0, len(prepared), batch_size):
        chunk = prepared[start : start + batch_size]
        # each case is charged its own reading and its share of its batch's forward passes
        with CaseCost() as batch_cost:
            decisions = predictor.decisions(chunk, batch_size, files[start : start + batch_size])
            samples = (
                predictor.samples(chunk, uncertainty, batch_size)
                if uncertainty is not None
                else None
            )
        members = costs[start : start + batch_size]
        for cost in members:
            cost.seconds += batch_cost.seconds / len(members)
            cost.peak_rss_mib = max(cost.peak_rss_mib, batch_cost.peak_rss_mib)
        counts = decisions.counts()
        referred += counts["referred"]
        flagged += counts["out_of_distribution"]
        spread = (
            (predictive_entropy(samples), mutual_information(samples))
            if samples is not None
            else None
        )
        for k in range(len(chunk)):
            i = start + k
            row: dict[str, object] = {"case_id": ids[i], "file": files[i]}
            for c, name in enumerate(names):
                row[f"prob_{name}"] = float(decisions.probs[k, c])
            pred = int(decisions.preds[k])
            row["pred"] = pred
            row["pred_label"] = names[pred]
            row.update(decisions.row(k, names))
            if spread is not None:
                row["uncertainty_method"] = uncertainty
                row["entropy"] = float(spread[0][k])
                row["mutual_information"] = float(spread[1][k])
            row.update(costs[i].columns())
            row["error"] = ""
            rows.append(row)
    shift_line = ""
    if prior is not None:
        record = _adapt_rows(rows, names, prior, out)
        write_json_atomic(prior_shift_path(out), record)
        target, source = record["target_prior"], record["source_prior"]
        mix = ", ".join(f"{n} {target[n]:.1%} (validation {source[n]:.1%})" for n in names)
        shift_line = f"estimated class mix {mix} -> {prior_shift_path(out)}"
        if record.get("warning"):
            shift_line += f" (not to be relied on: {record['warning']})"
    rows.extend(errors)
    frame = pd.DataFrame(rows)
    write_atomic(out, frame.to_csv(index=False))
    return PredictSummary(len(ids), len(errors), referred, flagged, shift_line)


def _adapt_rows(
    rows: list[dict[str, object]], names: list[str], prior: np.ndarray, out: Path
) -> dict[str, Any]:
    """Estimate the class mix from the rows not flagged out of distribution (the rule of a
    run's own estimate: ``trust.summary.adapt_batch``), add their ``adapted_prob_*`` columns
    (NaN for flagged rows) and return the estimate's record.

    Raises:
        InputError: every row flagged, or too few left (naming ``out``).
    """
    from medlens.trust.summary import adapt_batch

    probs = np.array(
        [[float(row[f"prob_{name}"]) for name in names] for row in rows]  # type: ignore[arg-type]
    ).reshape(-1, len(names))
    ood = np.array([bool(row.get("ood", 0)) for row in rows], dtype=bool)
    batch = adapt_batch(probs, prior, ood, what=f"{out} (the images predicted)")
    for row, values in zip(rows, batch.adapted, strict=True):
        for name, value in zip(names, values, strict=True):
            row[f"adapted_prob_{name}"] = float(value)
    return batch.to_dict(names)
