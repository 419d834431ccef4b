"""A classification run applied to files (DICOM, NIfTI, PNG/JPEG/TIFF, .npz): one CSV row
per image with the probabilities, the decision at the run's threshold, and any error."""

from __future__ import annotations

from pathlib import Path

import numpy as np
import pandas as pd

from medlens.errors import InputError
from medlens.inference.cost import CaseCost
from medlens.inference.discovery import iter_input_cases
from medlens.io_utils import write_atomic


def predict_files(
    run_dir: Path,
    inputs: list[Path],
    out: Path,
    skip_bad: bool = False,
    batch_size: int = 64,
    progress: bool = True,
) -> tuple[int, int]:
    """Write ``out`` (CSV): one row per image with probabilities, the decision, what it cost
    (``seconds``: reading, preprocessing and a share of its batch's forward pass;
    ``peak_rss_mib``: see ``medlens.inference.cost``) and any error.

    Args:
        progress: show a progress bar while images are read and preprocessed.

    Returns:
        (number of predictions, number of skipped files).

    Raises:
        InputError: on the first unreadable file unless ``skip_bad``.
    """
    from tqdm.auto import tqdm

    from medlens.inference.loaded_run import load_run, predict_arrays, prepare_input

    run = load_run(run_dir)
    ids: list[str] = []
    files: list[str] = []
    arrays: list[np.ndarray] = []
    costs: list[CaseCost] = []
    errors: list[dict[str, object]] = []
    volumes = run.input_shape is not None and len(run.input_shape) == 4
    cases = iter_input_cases(list(inputs), volumes=volumes)
    for case_id, file, load in tqdm(cases, desc="read", unit="image", disable=not progress):
        cost = CaseCost()
        try:
            with cost:
                arrays.append(prepare_input(run, load()))
        except InputError as exc:
            if not skip_bad:
                raise
            errors.append({"case_id": case_id, "file": file, "error": exc.reason})
            continue
        ids.append(case_id)
        files.append(file)
        costs.append(cost)
    probs = np.zeros((0, len(run.class_names)))
    parts = []
    for start in range(0, len(arrays), batch_size):
        # each case is charged its own reading and its share of its batch's forward pass
        with CaseCost() as batch_cost:
            parts.append(predict_arrays(run, arrays[start : start + batch_size], batch_size))
        members = costs[start : start + batch_size]
        for cost in members:
            cost.seconds += batch_cost.seconds / len(members)
            cost.peak_rss_mib = max(cost.peak_rss_mib, batch_cost.peak_rss_mib)
    if parts:
        probs = np.concatenate(parts)
    rows: list[dict[str, object]] = []
    for k, case_id in enumerate(ids):
        row: dict[str, object] = {"case_id": case_id, "file": files[k]}
        for c, name in enumerate(run.class_names):
            row[f"prob_{name}"] = float(probs[k, c])
        pred = (
            int(probs[k, 1] >= run.threshold)
            if len(run.class_names) == 2
            else int(np.argmax(probs[k]))
        )
        row["pred"] = pred
        row["pred_label"] = run.class_names[pred]
        row.update(costs[k].columns())
        row["error"] = ""
        rows.append(row)
    rows.extend(errors)
    frame = pd.DataFrame(rows)
    write_atomic(out, frame.to_csv(index=False))
    return len(ids), len(errors)
