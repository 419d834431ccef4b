"""One batch of cases: decoding in a worker, and the model's rows for the writer.

Both engines (local and Ray) call these same two functions, so they give the same rows.
"""

from __future__ import annotations

from collections.abc import Callable
from dataclasses import dataclass
from typing import Any

import numpy as np
import pyarrow as pa

from medlens.data.image import Image
from medlens.errors import InputError
from medlens.inference.cost import CaseCost

DecodedCase = tuple[str, Any, str | None, tuple[float, float]]
"""``(case_id, the prepared input or None, error or None, (seconds, peak RSS MiB) of
decoding it)``. The prepared input is a float32 array ``(C, *spatial)`` for a single run,
and a list of them, one per member, for an ensemble."""


def _decode(prepare: Callable[[Image], Any], path: str) -> DecodedCase:
    """Read one file (or DICOM series folder) and ``prepare`` it; any failure becomes the
    case's error message instead of an exception, so one bad file never stops a run."""
    from medlens.data.readers import read_image

    prepared: Any = None
    error: str | None = None
    cost = CaseCost()
    with cost:
        try:
            prepared = prepare(read_image(path))
        except InputError as exc:
            error = exc.reason
        except Exception as exc:  # a reader's unforeseen failure on one file of thousands
            error = f"could not be read ({type(exc).__name__}: {exc})"
    return path, prepared, error, (cost.seconds, cost.peak_rss_mib)


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

    def prepare(self, image: Image) -> np.ndarray:
        """The run's preprocessing replayed on ``image`` (``prepare_input``)."""
        from medlens.inference.loaded_run import prepare_input

        # prepare_input reads only .preprocess and .input_shape of the run it is given.
        return prepare_input(self, image)  # type: ignore[arg-type]

    def __call__(self, path: str) -> DecodedCase:
        """Read and preprocess one file (see ``_decode``)."""
        return _decode(self.prepare, path)


@dataclass(frozen=True)
class MemberPreparers:
    """An ensemble's decoding: the image read once, then prepared by each member's own
    preprocessing, in the order of the ensemble's members (what
    ``EnsemblePredictor.prepare`` gives).

    Attributes:
        members: one preparer per member (an ensemble member has its own).
    """

    members: tuple[CasePreparer | MemberPreparers, ...]

    def prepare(self, image: Image) -> list[Any]:
        """``image`` prepared by every member."""
        return [member.prepare(image) for member in self.members]

    def __call__(self, path: str) -> DecodedCase:
        """Read one file and prepare it for every member (see ``_decode``)."""
        return _decode(self.prepare, path)


def preparer_for(predictor: Any) -> CasePreparer | MemberPreparers:
    """The decoding a worker does for ``predictor`` (a ``RunPredictor`` or an
    ``EnsemblePredictor``): the preprocessing of its run, or of each of its members."""
    members = getattr(predictor, "members", None)
    if members is not None:
        return MemberPreparers(tuple(preparer_for(m) for m in members))
    return CasePreparer(predictor.run.preprocess, predictor.run.input_shape)


def _shape_key(prepared: Any) -> tuple[Any, ...]:
    """A key equal for inputs that can share a forward pass (the same shapes throughout)."""
    if isinstance(prepared, np.ndarray):
        return tuple(prepared.shape)
    return tuple(_shape_key(member) for member in prepared)


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


def predict_batch(predictor: Any, cases: list[DecodedCase]) -> pa.Table:
    """The rows of ``cases`` in their order: probabilities and decision, or the error.

    Args:
        predictor: a ``RunPredictor`` or an ``EnsemblePredictor`` (its ``decisions``).
        cases: decoded cases (see ``CasePreparer`` and ``MemberPreparers``).

    Binary runs decide with the run's threshold on ``prob_<class 1>``, others by arg-max,
    and refer cases in the run's band or out of distribution (an ensemble: flagged by any
    member, ``ood_score`` how many), as ``medlens predict`` does.
    """
    names = predictor.class_names
    probs = np.full((len(cases), len(names)), np.nan)
    ok = np.array([case[1] is not None for case in cases], dtype=bool)
    seconds = np.array([case[3][0] for case in cases])
    peaks = np.array([case[3][1] for case in cases])
    preds = np.zeros(len(cases), dtype=np.int64)
    by_case: list[dict | None] = [None] * len(cases)
    by_shape: dict[tuple[Any, ...], list[int]] = {}
    for i, case in enumerate(cases):
        if case[1] is not None:
            by_shape.setdefault(_shape_key(case[1]), []).append(i)
    for rows in by_shape.values():  # one shape unless the run recorded no input shape
        with CaseCost() as forward:  # each case is charged its share of the forward pass
            decided = predictor.decisions([cases[i][1] for i in rows], batch_size=len(rows))
        probs[rows] = decided.probs
        preds[rows] = decided.preds
        for k, i in enumerate(rows):
            by_case[i] = decided.row(k, names)
        seconds[rows] += forward.seconds / len(rows)
        peaks[rows] = np.maximum(peaks[rows], forward.peak_rss_mib)
    columns: dict[str, pa.Array] = {"case_id": pa.array([case[0] for case in cases], pa.string())}
    for c, name in enumerate(names):
        columns[f"prob_{name}"] = pa.array(probs[:, c], pa.float64(), mask=~ok)
    columns["pred"] = pa.array(preds, pa.int64(), mask=~ok)
    columns["pred_label"] = pa.array(
        [names[p] if good else None for p, good in zip(preds, ok, strict=True)],
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
    return pa.table(columns, schema=result_schema(list(names)))
