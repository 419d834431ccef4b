"""A run folder's cases as model inputs, and heatmaps for them at the run's own decision."""

from __future__ import annotations

from collections.abc import Sequence
from dataclasses import dataclass
from typing import Any

import numpy as np
import pandas as pd
import torch

from medlens.errors import ConfigError, InputError
from medlens.explain.heatmaps import explain
from medlens.inference.loaded_run import LoadedRun, predict_arrays, prepare_input
from medlens.run_folder import layout


@dataclass
class RunHeatmaps:
    """Heatmaps for a batch of preprocessed inputs of a run.

    Attributes:
        heatmaps: ``(N, *spatial)`` in [0, 1].
        probabilities: ``(N, K)`` class probabilities of the run's model.
        predicted: ``(N,)`` the run's decision (its threshold for two classes, else argmax).
        targets: ``(N,)`` the class each heatmap explains.
    """

    heatmaps: np.ndarray
    probabilities: np.ndarray
    predicted: np.ndarray
    targets: np.ndarray


def class_index(run: LoadedRun, target: int | str | None) -> int | None:
    """A class given by index or by name (``"pneumonia"``, ``"1"``) as an index, or ``None``."""
    if target is None:
        return None
    if isinstance(target, str) and target in run.class_names:
        return run.class_names.index(target)
    if isinstance(target, int) or (isinstance(target, str) and target.isdigit()):
        index = int(target)
        if 0 <= index < len(run.class_names):
            return index
    raise ConfigError(
        "explain.target", f"{target!r} is not a class of the run ({', '.join(run.class_names)})"
    )


def decide(run: LoadedRun, probabilities: np.ndarray) -> np.ndarray:
    """The run's predicted class: its threshold on the second class for two classes."""
    if len(run.class_names) == 2:
        return (probabilities[:, 1] >= run.threshold).astype(int)
    return probabilities.argmax(axis=1)


def explain_prepared(
    run: LoadedRun,
    arrays: Sequence[np.ndarray],
    method: str = "gradcam",
    target: int | str | None = None,
    batch_size: int = 16,
    **params: Any,
) -> RunHeatmaps:
    """Heatmaps of preprocessed arrays (see ``prepare_input``); ``target=None`` explains the
    class the run predicts for each case (at its own threshold)."""
    fixed = class_index(run, target)
    probs = predict_arrays(run, list(arrays), batch_size=batch_size)
    predicted = decide(run, probs)
    targets = np.full(len(arrays), fixed) if fixed is not None else predicted
    maps = []
    for start in range(0, len(arrays), batch_size):
        batch = torch.from_numpy(np.stack(arrays[start : start + batch_size]))
        chunk = [int(t) for t in targets[start : start + batch_size]]
        maps.append(explain(run.model, batch, chunk, method, **params))
    heatmaps = np.concatenate(maps) if maps else np.zeros((0,))
    return RunHeatmaps(heatmaps, probs, predicted, targets.astype(int))


def load_run_cases(run: LoadedRun, case_ids: Sequence[str]) -> list[np.ndarray]:
    """The preprocessed arrays ``(C, *spatial)`` of cases of the run's own data source.

    Case ids are those of predictions.csv (``test/000123`` for MedMNIST, the file path for
    folders and manifests); the source is re-opened from the run's ``config.yaml``.

    Raises:
        InputError: the data source is gone, or holds no case of that id.
    """
    from medlens.data.sources import open_source

    case_set = open_source(run.config.data)
    by_id = {case.case_id: case for case in case_set.cases}
    arrays = []
    for case_id in case_ids:
        case = by_id.get(str(case_id))
        if case is None:
            raise InputError(run.config.data.path, f"holds no case {case_id!r} of the run")
        arrays.append(prepare_input(run, case_set.load(case)))
    return arrays


def read_test_predictions(run: LoadedRun) -> pd.DataFrame:
    """The test rows of the run's predictions.csv (case_id, label, prob_<class>, pred)."""
    path = run.run_dir / layout.PREDICTIONS
    try:
        frame = pd.read_csv(path, dtype={"case_id": str})
    except (OSError, ValueError) as exc:
        raise InputError(path, f"unreadable ({type(exc).__name__})") from None
    needed = {"case_id", "split", "label", "pred"}
    if not needed <= set(frame.columns):
        raise InputError(path, f"needs the columns {', '.join(sorted(needed))}")
    return frame[frame["split"] == "test"].reset_index(drop=True)


def sample_test_cases(run: LoadedRun, n: int, seed: int = 0) -> list[str]:
    """``n`` test case ids drawn at random (seeded) from predictions.csv, in file order."""
    ids = read_test_predictions(run)["case_id"].tolist()
    if not ids:
        raise InputError(run.run_dir / layout.PREDICTIONS, "has no test rows")
    rng = np.random.default_rng(seed)
    chosen = sorted(rng.choice(len(ids), size=min(n, len(ids)), replace=False))
    return [ids[i] for i in chosen]
