"""Faithfulness of several methods on several cases, against random maps, as a table."""

from __future__ import annotations

from collections.abc import Mapping, Sequence
from pathlib import Path
from typing import Any

import numpy as np
import pandas as pd
import torch

from medlens.explain.faithfulness import deletion_curve, insertion_curve, random_heatmaps
from medlens.explain.heatmaps import explain, resolve_targets
from medlens.inference.loaded_run import LoadedRun

COLUMNS = [
    "case_id",
    "method",
    "target",
    "deletion_auc",
    "insertion_auc",
    "deletion_auc_random",
    "insertion_auc_random",
]


def faithfulness_scores(
    model: torch.nn.Module,
    images: np.ndarray,
    methods: Sequence[str],
    targets: Sequence[int] | None = None,
    case_ids: Sequence[str] | None = None,
    n_random: int = 3,
    step_fraction: float = 0.05,
    deletion_baseline: str = "mean",
    insertion_baseline: str = "blur",
    seed: int = 0,
    method_params: Mapping[str, Mapping[str, Any]] | None = None,
) -> pd.DataFrame:
    """Deletion and insertion AUC of each method on each image, beside random maps'.

    Args:
        model: the classifier.
        images: preprocessed inputs ``(N, C, *spatial)``.
        methods: names of ``EXPLAINERS``.
        targets: the class to explain per image; ``None``: the model's argmax.
        case_ids: row labels (default ``"0"``, ``"1"``, ...).
        n_random: seeded uniform random maps per image; their mean AUCs are the baseline.
        step_fraction, deletion_baseline, insertion_baseline: see ``faithfulness``.
        seed: seeds the random maps and the tie-breaking.
        method_params: per-method keyword arguments for ``explain``.

    Returns:
        One row per (case, method): ``COLUMNS``. A faithful method has ``deletion_auc`` below
        ``deletion_auc_random`` and ``insertion_auc`` above ``insertion_auc_random``.
    """
    x = torch.from_numpy(np.asarray(images, dtype=np.float32))
    ids = [str(i) for i in (case_ids if case_ids is not None else range(len(x)))]
    if targets is None:
        device = next(model.parameters()).device
        was_training = model.training
        model.eval()
        target_list = resolve_targets(model, x.to(device), None).cpu().tolist()
        model.train(was_training)
    else:
        target_list = [int(t) for t in targets]
    params = method_params or {}
    curves = {"deletion_baseline": deletion_baseline, "insertion_baseline": insertion_baseline}
    random_auc = []
    for k in range(len(x)):
        maps = random_heatmaps(tuple(x.shape[2:]), n_random, seed + 1 + k)
        random_auc.append(
            _mean_aucs(model, x[k].numpy(), maps, target_list[k], step_fraction, curves, seed)
        )
    rows = []
    for method in methods:
        heatmaps = explain(model, x, target_list, method, **dict(params.get(method, {})))
        for k in range(len(x)):
            deletion, insertion = _mean_aucs(
                model,
                x[k].numpy(),
                heatmaps[k : k + 1],
                target_list[k],
                step_fraction,
                curves,
                seed,
            )
            rows.append([ids[k], method, target_list[k], deletion, insertion, *random_auc[k]])
    return pd.DataFrame(rows, columns=COLUMNS)


def _mean_aucs(
    model: torch.nn.Module,
    image: np.ndarray,
    heatmaps: np.ndarray,
    target: int,
    step_fraction: float,
    curves: Mapping[str, str],
    seed: int,
) -> tuple[float, float]:
    deletion = [
        deletion_curve(
            model, image, hm, target, step_fraction, curves["deletion_baseline"], seed=seed
        ).auc
        for hm in heatmaps
    ]
    insertion = [
        insertion_curve(
            model, image, hm, target, step_fraction, curves["insertion_baseline"], seed=seed
        ).auc
        for hm in heatmaps
    ]
    return float(np.mean(deletion)), float(np.mean(insertion))


def faithfulness_report(
    run: LoadedRun | str | Path,
    cases: Sequence[str] | int = 8,
    methods: Sequence[str] = ("gradcam", "saliency"),
    seed: int = 0,
    **options: Any,
) -> pd.DataFrame:
    """``faithfulness_scores`` for a run's cases, each explained at the run's decision.

    Args:
        run: a run folder or a ``LoadedRun``.
        cases: case ids of the run's data source (as in predictions.csv), or a number of
            test cases to draw at random (seeded) from predictions.csv.
        methods: names of ``EXPLAINERS``.
        seed: draws the cases, the random maps and the tie-breaking.
        **options: the other ``faithfulness_scores`` arguments.

    Raises:
        InputError: a run folder, data source or case that cannot be read.
    """
    from medlens.explain.run_cases import decide, load_run_cases, sample_test_cases
    from medlens.inference.loaded_run import load_run, predict_arrays

    loaded = run if isinstance(run, LoadedRun) else load_run(run)
    ids = sample_test_cases(loaded, cases, seed) if isinstance(cases, int) else list(cases)
    arrays = load_run_cases(loaded, ids)
    targets = decide(loaded, predict_arrays(loaded, arrays))
    return faithfulness_scores(
        loaded.model,
        np.stack(arrays),
        methods,
        targets=[int(t) for t in targets],
        case_ids=ids,
        seed=seed,
        **options,
    )


def summarize_faithfulness(scores: pd.DataFrame) -> pd.DataFrame:
    """Per method: mean AUCs, the random baseline's, and the share of cases where the method
    beats random on both curves (deletion lower and insertion higher)."""
    frame = scores.assign(
        beats_random=(scores["deletion_auc"] < scores["deletion_auc_random"])
        & (scores["insertion_auc"] > scores["insertion_auc_random"])
    )
    return (
        frame.groupby("method", sort=False)[
            [
                "deletion_auc",
                "deletion_auc_random",
                "insertion_auc",
                "insertion_auc_random",
                "beats_random",
            ]
        ]
        .mean()
        .reset_index()
    )
