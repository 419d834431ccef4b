"""The Ray engine: Ray Data ``map_batches`` over the file paths with a pool of model actors,
each of which loads the run once and decodes, preprocesses and predicts its batches."""

from __future__ import annotations

import logging
import os
from collections.abc import Iterator
from pathlib import Path

import pyarrow as pa

from medlens.streaming.batch import predict_batch, preparer_for


class RunPredictor:
    """A Ray actor's model: the run folder (single or ensemble) loaded once, applied to
    batches of paths.

    Args:
        run_dir: the run folder, as every node sees it (a shared file system on a cluster;
            an ensemble's member runs too).
        device: ``cpu``, ``cuda``... (None: CUDA when the actor sees a GPU).
    """

    def __init__(self, run_dir: str, device: str | None = None) -> None:
        import torch

        from medlens.inference.ensemble_run import load_predictor

        torch.set_num_threads(1)  # one actor per CPU
        self.predictor = load_predictor(run_dir, device)
        self.prepare = preparer_for(self.predictor)

    def __call__(self, batch: pa.Table) -> pa.Table:
        """Rows (``result_schema``) for a batch with columns ``case_id`` and ``path``."""
        paths = batch.column("path").to_pylist()
        ids = batch.column("case_id").to_pylist()
        cases = [
            (case_id, *self.prepare(path)[1:]) for case_id, path in zip(ids, paths, strict=True)
        ]
        return predict_batch(self.predictor, cases)  # type: ignore[arg-type]


def _connect(address: str | None, workers: int) -> bool:
    """Join the cluster at ``address``, or start a local instance with ``workers`` CPUs.

    Returns:
        Whether this call started Ray (and so must shut it down).
    """
    import ray

    if ray.is_initialized():
        return False
    if address:
        ray.init(address=address, log_to_driver=False, logging_level=logging.WARNING)
    else:
        ray.init(
            num_cpus=workers,
            include_dashboard=False,
            log_to_driver=False,
            logging_level=logging.WARNING,
        )
    return True


def predict_ray(
    run_dir: str | Path,
    todo: list[str],
    workers: int = 1,
    batch_size: int = 64,
    address: str | None = None,
    device: str | None = None,
) -> Iterator[pa.Table]:
    """Tables of result rows, one per batch, in the order of ``todo``.

    Args:
        run_dir: the run folder (read by every actor).
        todo: the case paths to predict (strings; the pixels are read by the actors).
        workers: model actors, one CPU each.
        batch_size: cases per actor call.
        address: a Ray cluster (``auto``, ``ray://host:10001``); None starts a local instance
            limited to ``workers`` CPUs, or uses the one this process already started.
        device: passed to ``load_predictor`` in every actor.
    """
    if not todo:
        return
    import ray
    import ray.data

    started = _connect(address, workers)
    data_log = logging.getLogger("ray.data")
    saved_level = data_log.level
    data_log.setLevel(logging.ERROR)  # Ray Data's plan and timing lines, at every run
    context = ray.data.DataContext.get_current()
    saved = (context.execution_options.preserve_order, context.enable_progress_bars)
    context.execution_options.preserve_order = True
    context.enable_progress_bars = False  # the caller shows one bar for the whole run
    try:
        items = [{"case_id": p, "path": os.path.abspath(p)} for p in todo]
        results = ray.data.from_items(items).map_batches(
            RunPredictor,
            fn_constructor_args=(str(Path(run_dir).resolve()), device),
            batch_size=batch_size,
            batch_format="pyarrow",
            compute=ray.data.ActorPoolStrategy(size=workers),
            num_cpus=1,
        )
        yield from results.iter_batches(batch_size=None, batch_format="pyarrow")
    finally:
        context.execution_options.preserve_order, context.enable_progress_bars = saved
        data_log.setLevel(saved_level)
        if started:
            ray.shutdown()
