"""``stream_predict``: a run's classifier over an archive of any size, rows written as they
come, resumable after a kill."""

from __future__ import annotations

import importlib.util
import os
import time
from collections.abc import Callable, Iterable, Iterator
from dataclasses import dataclass
from pathlib import Path
from typing import Literal

import pyarrow as pa
from tqdm.auto import tqdm

from medlens.errors import ConfigError
from medlens.inference.discovery import iter_image_files
from medlens.streaming.batch import result_schema
from medlens.streaming.writers import open_result_writer

BatchCallback = Callable[[int, int], None]


@dataclass(frozen=True)
class StreamSummary:
    """What one ``stream_predict`` call did.

    Attributes:
        out: the finished result file.
        engine: ``local`` or ``ray``.
        workers: decoding processes (local) or model actors (ray).
        predicted: cases predicted by this call.
        errors: cases of this call that failed (a row with its error).
        already_done: cases found in the output of an earlier run and not redone.
        seconds: wall time of the prediction (after loading the run), in seconds.
        referred: cases of this call referred to a human (``refer`` 1: in the refer band
            or out of distribution).
        out_of_distribution: cases of this call flagged out of distribution (``ood`` 1).
    """

    out: Path
    engine: str
    workers: int
    predicted: int
    errors: int
    already_done: int
    seconds: float
    referred: int = 0
    out_of_distribution: int = 0

    @property
    def files_per_s(self) -> float:
        """Files (predicted or failed) per second of this call."""
        return (self.predicted + self.errors) / self.seconds if self.seconds > 0 else 0.0


#: The most decoding processes (or Ray actors) chosen when none are asked for.
MAX_DEFAULT_WORKERS = 8


def default_workers() -> int:
    """Decoding processes (local) or model actors (Ray) when none are asked for: one per CPU
    core of this machine (``os.cpu_count()``), at most ``MAX_DEFAULT_WORKERS``. On 2 cores,
    2 local workers gave 49 files/s against 27 for 1 (benchmarks/results/scale.json)."""
    return max(1, min(os.cpu_count() or 1, MAX_DEFAULT_WORKERS))


def _check_arguments(engine: str, workers: int, batch_size: int, out: Path) -> None:
    if engine not in ("local", "ray"):
        raise ConfigError("engine", f"must be 'local' or 'ray', got {engine!r}")
    if workers < (1 if engine == "ray" else 0):
        raise ConfigError("workers", f"must be at least {1 if engine == 'ray' else 0}")
    if batch_size < 1:
        raise ConfigError("batch_size", "must be at least 1")
    if out.suffix.lower() not in (".parquet", ".csv"):
        raise ConfigError("out", f"must end in .parquet or .csv, got {out.name!r}")
    if engine == "ray" and importlib.util.find_spec("ray") is None:
        raise ConfigError(
            "engine", "the Ray engine needs Ray Data: pip install 'medlens[ray]' (or 'ray[data]')"
        )


def stream_predict(
    run_dir: str | Path,
    inputs: str | Path | Iterable[str | Path],
    out: str | Path,
    engine: Literal["local", "ray"] = "local",
    workers: int | None = None,
    batch_size: int = 64,
    ray_address: str | None = None,
    resume: bool = True,
    progress: bool = True,
    device: str | None = None,
    on_batch: BatchCallback | None = None,
) -> StreamSummary:
    """Predict every image under ``inputs`` with a classification run, streaming.

    Files are found lazily (``iter_image_files``), read and preprocessed in worker
    processes, passed to the model ``batch_size`` at a time, and every batch's rows are
    written at once (see ``medlens.streaming.writers`` for the layout while running), so
    memory stays flat in the number of files and a killed run loses at most the batches in
    flight. A file that cannot be read or preprocessed becomes a row with its ``error`` and
    the run goes on. Rows: ``result_schema``: ``case_id`` (the path), ``prob_<class>``...,
    ``pred``, ``pred_label``, the trust columns (``decision``, ``refer``, ``refer_reason``,
    ``ood_score``, ``ood``), what the case cost, ``error``.

    Args:
        run_dir: a finished classification run folder, or an ensemble run folder (each
            member applied with its own preprocessing, as ``medlens predict`` does).
        inputs: image files and folders (DICOM, PNG/JPEG/TIFF, NIfTI, ``.npy``; with a 3D
            model a folder of DICOM slices is one case).
        out: the result file, ``.parquet`` or ``.csv``.
        engine: ``local`` (a DataLoader with ``workers`` decoding processes, the model in
            this process) or ``ray`` (Ray Data with ``workers`` model actors).
        workers: decoding processes (local; 0 decodes in this process) or actors (ray);
            None: ``default_workers()``.
        batch_size: cases per model call.
        ray_address: the Ray cluster to join (``auto``); None starts a local instance.
        resume: skip the cases already in ``out`` (or its partial output); else start over.
        progress: show a progress bar with the rate and the time left.
        device: where the model runs (None: CUDA when available).
        on_batch: called as ``on_batch(batches_written, rows_written)`` after every batch.

    Returns:
        The counts and timing of this call.

    Raises:
        ConfigError: a bad engine, worker count, batch size or output suffix, or a
            segmentation run.
        InputError: a missing input, an unusable run folder, or a partial output with other
            columns.
    """
    from medlens.inference.ensemble_run import load_predictor
    from medlens.run_folder.reader import read_run_task

    out = Path(out)
    workers = default_workers() if workers is None else workers
    _check_arguments(engine, workers, batch_size, out)
    paths = [str(inputs)] if isinstance(inputs, str | Path) else [str(p) for p in inputs]
    task = read_run_task(run_dir)
    if not task.applies("engine"):
        raise ConfigError(
            "task",
            f"streaming prediction does not apply to a {task.name} run; "
            "use `medlens predict` without --engine",
        )
    predictor = load_predictor(run_dir, device)
    volumes = predictor.volumes
    iter_image_files(paths, volumes)  # a missing input fails before the output is touched
    writer = open_result_writer(out, result_schema(predictor.class_names), resume)
    done = frozenset(writer.done_case_ids()) if resume else frozenset()
    todo_count = sum(1 for p in iter_image_files(paths, volumes) if p not in done)

    start = time.perf_counter()
    tables: Iterator[pa.Table]
    if engine == "local":
        from medlens.streaming.local_engine import predict_local

        tables = predict_local(predictor, paths, volumes, done, workers, batch_size)
    else:
        from medlens.streaming.ray_engine import predict_ray

        todo = [p for p in iter_image_files(paths, volumes) if p not in done]
        tables = predict_ray(run_dir, todo, workers, batch_size, ray_address, device)
    predicted = errors = batches = referred = flagged = 0
    bar = tqdm(total=todo_count, unit="file", desc="predict", disable=not progress)
    try:
        for table in tables:
            writer.write(table)
            failed = len(table) - table.column("error").null_count
            predicted += len(table) - failed
            errors += failed
            referred += _ones(table, "refer")
            flagged += _ones(table, "ood")
            batches += 1
            bar.update(len(table))
            bar.set_postfix(errors=errors, refresh=False)
            if on_batch is not None:
                on_batch(batches, predicted + errors)
    finally:
        bar.close()
        tables.close()  # type: ignore[attr-defined]
    seconds = time.perf_counter() - start
    final = writer.finalize()
    return StreamSummary(
        final, engine, workers, predicted, errors, len(done), seconds, referred, flagged
    )


def _ones(table: pa.Table, column: str) -> int:
    """How many rows of ``table`` have 1 in ``column`` (nulls: failed cases, or no score)."""
    return sum(1 for value in table.column(column).to_pylist() if value == 1)
