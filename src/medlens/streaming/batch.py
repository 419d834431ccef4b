"""One batch of cases: decoding in a worker, and the model's rows for the writer.

Both engines (local and Ray) call these same two functions, so they give the same rows.
"""

from __future__ import annotations

from dataclasses import dataclass
from typing import Any

import numpy as np
import pyarrow as pa

from medlens.errors import InputError
from medlens.inference.cost import CaseCost

DecodedCase = tuple[str, np.ndarray | None, str | None, tuple[float, float]]
"""``(case_id, preprocessed float32 array (C, *spatial) or None, error or None, (seconds,
peak RSS MiB) of decoding it)``."""


@dataclass(frozen=True)
class CasePreparer:
    """What a decoding worker needs of a run: its preprocessing and the model's input shape
    (not the model), so a worker process stays small and is cheap to start.

    Attributes:
        preprocess: the run's deterministic pipeline (``preprocessing.json``).
        input_shape: ``(C, *spatial)`` every preprocessed image must have, or None.
    """

    preprocess: Any
    input_shape: tuple[int, ...] | None

    def __call__(self, path: str) -> DecodedCase:
        """Read and preprocess one file (or DICOM series folder); any failure becomes the
        case's error message instead of an exception, so one bad file never stops a run."""
        from medlens.data.readers import read_image
        from medlens.inference.loaded_run import prepare_input

        array: np.ndarray | None = None
        error: str | None = None
        cost = CaseCost()
        with cost:
            try:
                # prepare_input reads only .preprocess and .input_shape of the run it is given.
                array = prepare_input(self, read_image(path))  # type: ignore[arg-type]
            except InputError as exc:
                error = exc.reason
            except Exception as exc:  # a reader's unforeseen failure on one file of thousands
                error = f"could not be read ({type(exc).__name__}: {exc})"
        return path, array, error, (cost.seconds, cost.peak_rss_mib)


def result_schema(class_names: list[str]) -> pa.Schema:
    """Columns of the output: ``case_id``, ``prob_<class>``... (calibrated), ``pred``,
    ``pred_label``, ``decision`` (the class, or ``refer``), ``refer`` (0/1), ``refer_reason``
    (``uncertain``, ``out_of_distribution`` or empty), ``ood_score`` and ``ood`` (0/1; null
    for a run without the score), ``seconds`` and ``peak_rss_mib`` (what the case cost:
    decoding in its worker plus its share of the forward pass; see
    ``medlens.inference.cost``), ``error`` (null where the case was predicted; the
    probability and decision columns null where it failed)."""
    return pa.schema(
        [pa.field("case_id", pa.string(), nullable=False)]
        + [pa.field(f"prob_{name}", pa.float64()) for name in class_names]
        + [
            pa.field("pred", pa.int64()),
            pa.field("pred_label", pa.string()),
            pa.field("decision", pa.string()),
            pa.field("refer", pa.int64()),
            pa.field("refer_reason", pa.string()),
            pa.field("ood_score", pa.float64()),
            pa.field("ood", pa.int64()),
            pa.field("seconds", pa.float64()),
            pa.field("peak_rss_mib", pa.float64()),
            pa.field("error", pa.string()),
        ]
    )


def predict_batch(run: Any, cases: list[DecodedCase]) -> pa.Table:
    """The rows of ``cases`` in their order: probabilities and decision, or the error.

    Args:
        run: a ``LoadedRun`` (model, class names, decision threshold).
        cases: decoded cases (see ``CasePreparer``).

    Binary runs decide with the run's threshold on ``prob_<class 1>``, others by arg-max,
    and refer cases in the run's band or out of distribution, as ``medlens predict`` does.
    """
    from medlens.inference.decide import decisions_of
    from medlens.inference.loaded_run import predict_with_features

    k = len(run.class_names)
    probs = np.full((len(cases), k), np.nan)
    features: np.ndarray | None = None
    ok = np.array([case[1] is not None for case in cases], dtype=bool)
    seconds = np.array([case[3][0] for case in cases])
    peaks = np.array([case[3][1] for case in cases])
    by_shape: dict[tuple[int, ...], list[int]] = {}
    for i, case in enumerate(cases):
        if case[1] is not None:
            by_shape.setdefault(tuple(case[1].shape), []).append(i)
    for rows in by_shape.values():  # one shape unless the run recorded no input shape
        arrays = [cases[i][1] for i in rows]
        with CaseCost() as forward:  # each case is charged its share of the forward pass
            probs[rows], feats = predict_with_features(run, arrays, batch_size=len(rows))  # type: ignore[arg-type]
        if feats is not None:
            if features is None:
                features = np.zeros((len(cases), feats.shape[1]))
            features[rows] = feats
        seconds[rows] += forward.seconds / len(rows)
        peaks[rows] = np.maximum(peaks[rows], forward.peak_rss_mib)
    good_rows = np.flatnonzero(ok)
    decided = decisions_of(run, probs[ok], None if features is None else features[ok])
    trust = [decided.row(i, run.class_names) for i in range(len(good_rows))]
    by_case: list[dict | None] = [None] * len(cases)
    for row_index, r in zip(good_rows, trust, strict=True):
        by_case[int(row_index)] = r
    preds = np.zeros(len(cases), dtype=np.int64)
    preds[ok] = decided.preds
    columns: dict[str, pa.Array] = {"case_id": pa.array([case[0] for case in cases], pa.string())}
    for c, name in enumerate(run.class_names):
        columns[f"prob_{name}"] = pa.array(probs[:, c], pa.float64(), mask=~ok)
    columns["pred"] = pa.array(preds, pa.int64(), mask=~ok)
    columns["pred_label"] = pa.array(
        [run.class_names[p] if good else None for p, good in zip(preds, ok, strict=True)],
        pa.string(),
    )
    for name, kind in (
        ("decision", pa.string()),
        ("refer", pa.int64()),
        ("refer_reason", pa.string()),
        ("ood_score", pa.float64()),
        ("ood", pa.int64()),
    ):
        columns[name] = pa.array([None if r is None else r.get(name) for r in by_case], kind)
    columns["seconds"] = pa.array(np.round(seconds, 4), pa.float64())
    columns["peak_rss_mib"] = pa.array(np.round(peaks, 1), pa.float64())
    columns["error"] = pa.array([case[2] for case in cases], pa.string())
    return pa.table(columns, schema=result_schema(list(run.class_names)))
