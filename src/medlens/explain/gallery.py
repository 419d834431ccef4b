"""A gallery for the report: heatmaps of a run's test cases, grouped by kind of outcome."""

from __future__ import annotations

from dataclasses import dataclass
from pathlib import Path
from typing import Any

import numpy as np
import pandas as pd

from medlens.explain.overlay import save_overlay_grid
from medlens.explain.run_cases import explain_prepared, load_run_cases, read_test_predictions

KIND_TITLES = {
    "true_positive": "True positives",
    "false_positive": "False positives",
    "false_negative": "False negatives",
    "correct": "Correctly classified",
    "misclassified": "Misclassified",
}


@dataclass(frozen=True)
class GalleryFigure:
    """One written gallery figure: its kind, title, PNG path and the cases it shows."""

    kind: str
    title: str
    path: Path
    case_ids: tuple[str, ...]


def select_gallery_cases(
    predictions: pd.DataFrame, class_names: list[str], n_per_kind: int = 4
) -> dict[str, list[str]]:
    """Case ids per kind, the most confident first.

    Two classes (the second is the positive one): ``true_positive`` and ``false_positive``
    with the highest positive probability, ``false_negative`` with the lowest (the most
    confident misses). More classes: ``correct`` and ``misclassified``, by the probability
    of the predicted class.
    """
    label, pred = predictions["label"].astype(int), predictions["pred"].astype(int)
    if len(class_names) == 2:
        positive = predictions[f"prob_{class_names[1]}"]
        groups = {
            "true_positive": ((label == 1) & (pred == 1), False),
            "false_positive": ((label == 0) & (pred == 1), False),
            "false_negative": ((label == 1) & (pred == 0), True),
        }
        score = positive
    else:
        probs = predictions[[f"prob_{n}" for n in class_names]].to_numpy()
        score = pd.Series(probs[np.arange(len(probs)), pred.to_numpy()], index=predictions.index)
        groups = {"correct": (label == pred, False), "misclassified": (label != pred, False)}
    chosen = {}
    for kind, (mask, ascending) in groups.items():
        ranked = score[mask].sort_values(ascending=ascending, kind="stable")
        chosen[kind] = predictions.loc[ranked.index[:n_per_kind], "case_id"].astype(str).tolist()
    return chosen


def explanation_gallery(
    run_dir: str | Path,
    out_dir: str | Path | None = None,
    method: str = "gradcam",
    n_per_kind: int = 4,
    cmap: str = "jet",
    **params: Any,
) -> list[GalleryFigure]:
    """Write one PNG per kind of outcome of the run's test predictions, cases as rows.

    Cases come from predictions.csv (test rows) and are re-read from the run's data source
    through its preprocessing. With two classes every map explains the positive class (where
    the model sees the finding, also in a miss); with more, the predicted class. A kind
    without cases gets no figure.

    Args:
        run_dir: a finished classification run folder.
        out_dir: default ``<run_dir>/plots``; files are ``explain_<method>_<kind>.png``.
        method: a name of ``EXPLAINERS``.
        n_per_kind: cases per figure.
        cmap: the overlay colormap.
        **params: the method's own parameters.

    Returns:
        The figures written, in the order true positives, false positives, false negatives.

    Raises:
        InputError: a run folder without predictions.csv, or whose data source is gone.
    """
    from medlens.inference.loaded_run import load_run

    run = load_run(run_dir)
    out = Path(out_dir) if out_dir is not None else Path(run_dir) / "plots"
    predictions = read_test_predictions(run)
    chosen = select_gallery_cases(predictions, run.class_names, n_per_kind)
    target = 1 if len(run.class_names) == 2 else None
    probability = predictions.set_index("case_id")
    figures = []
    for kind, case_ids in chosen.items():
        if not case_ids:
            continue
        arrays = load_run_cases(run, case_ids)
        explained = explain_prepared(run, arrays, method, target, **params)
        rows = [
            f"{case_id}\nlabel {run.class_names[int(probability.loc[case_id, 'label'])]}, "
            f"p({run.class_names[t]}) = {explained.probabilities[k, t]:.2f}"
            for k, (case_id, t) in enumerate(zip(case_ids, explained.targets, strict=True))
        ]
        title = f"{KIND_TITLES[kind]} ({method})"
        path = save_overlay_grid(
            arrays,
            list(explained.heatmaps),
            out / f"explain_{safe_method(method)}_{kind}.png",
            rows,
            cmap=cmap,
            title=title,
        )
        figures.append(GalleryFigure(kind, title, path, tuple(case_ids)))
    return figures


def safe_method(method: str) -> str:
    """``gradcam++`` -> ``gradcampp``: a method name fit for a file name."""
    return method.replace("+", "p")
