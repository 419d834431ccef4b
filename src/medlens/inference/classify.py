"""A classification run (or an ensemble of runs) applied to files (DICOM, NIfTI,
PNG/JPEG/TIFF, .npz): one CSV row per image with the calibrated probabilities, the decision
at the run's threshold, whether to refer it to a human (the refer band, the
out-of-distribution flag), what it cost, any error, and on request its uncertainty."""

from __future__ import annotations

from pathlib import Path
from typing import Any, NamedTuple

import pandas as pd

from medlens.errors import InputError
from medlens.inference.cost import CaseCost
from medlens.inference.discovery import iter_input_cases
from medlens.io_utils import write_atomic


class PredictSummary(NamedTuple):
    """What ``predict_files`` wrote: predictions, skipped files, referred cases (either
    reason) and cases flagged out of distribution."""

    predicted: int
    skipped: int
    referred: int
    out_of_distribution: int


def predict_files(
    run_dir: Path,
    inputs: list[Path],
    out: Path,
    skip_bad: bool = False,
    batch_size: int = 64,
    progress: bool = True,
    uncertainty: str | None = None,
) -> PredictSummary:
    """Write ``out`` (CSV): one row per image with probabilities (calibrated), ``pred`` (the
    class index at the run's threshold), ``pred_label``, ``decision`` (the class, or
    ``refer``), ``refer``, ``refer_reason`` (``uncertain``: in the refer band;
    ``out_of_distribution``), ``ood_score`` and ``ood`` (runs with the score), with
    ``uncertainty``: ``entropy`` and ``mutual_information`` (nats) and ``uncertainty``
    (the method), what it cost (``seconds``: reading, preprocessing and a share of its
    batch's forward passes; ``peak_rss_mib``: see ``medlens.inference.cost``) and any error.

    Args:
        run_dir: a classification run folder, or an ensemble run folder.
        progress: show a progress bar while images are read and preprocessed.
        uncertainty: ``tta``, ``mc_dropout`` (single runs) or ``ensemble`` (ensembles).

    Raises:
        InputError: on the first unreadable file unless ``skip_bad``.
        ConfigError: an uncertainty method the run cannot give (checked before any file
            is read).
    """
    from tqdm.auto import tqdm

    from medlens.inference.ensemble_run import load_predictor
    from medlens.trust.measures import mutual_information, predictive_entropy

    predictor = load_predictor(run_dir)
    if uncertainty is not None:
        predictor.check_uncertainty(uncertainty)
    names = predictor.class_names
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
            decisions = predictor.decisions(chunk, batch_size)
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
                row["uncertainty"] = uncertainty
                row["entropy"] = float(spread[0][k])
                row["mutual_information"] = float(spread[1][k])
            row.update(costs[i].columns())
            row["error"] = ""
            rows.append(row)
    rows.extend(errors)
    frame = pd.DataFrame(rows)
    write_atomic(out, frame.to_csv(index=False))
    return PredictSummary(len(ids), len(errors), referred, flagged)
