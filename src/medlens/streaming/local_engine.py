"""The local engine: decoding in ``workers`` processes (a torch DataLoader), the model in
this one, batch by batch, with a bounded number of batches in flight."""

from __future__ import annotations

from collections.abc import Iterator
from typing import Any

import pyarrow as pa
import torch
from torch.utils.data import DataLoader, IterableDataset, get_worker_info

from medlens.inference.discovery import iter_image_files
from medlens.streaming.batch import (
    CasePreparer,
    DecodedCase,
    MemberPreparers,
    predict_batch,
    preparer_for,
)


class DecodedCaseStream(IterableDataset):
    """The cases under ``inputs`` not in ``skip``, read and preprocessed.

    With several DataLoader workers, each walks the inputs itself and takes every
    ``num_workers``-th run of ``batch_size`` cases, so no list of the files is ever sent to
    a worker and memory does not grow with the number of files; as the DataLoader takes
    the workers' batches in turn, the batches come out in the order the files are found.

    Args:
        inputs: files and folders (see ``iter_image_files``).
        volumes: a folder of DICOM slices is one case (3D models).
        skip: case ids already predicted (resume).
        prepare: reads and preprocesses one file (for each member of an ensemble).
        batch_size: the DataLoader's batch size.
    """

    def __init__(
        self,
        inputs: list[str],
        volumes: bool,
        skip: frozenset[str],
        prepare: CasePreparer | MemberPreparers,
        batch_size: int,
    ) -> None:
        super().__init__()
        self.inputs = inputs
        self.volumes = volumes
        self.skip = skip
        self.prepare = prepare
        self.batch_size = batch_size

    def __iter__(self) -> Iterator[DecodedCase]:
        info = get_worker_info()
        shards, shard = (1, 0) if info is None else (info.num_workers, info.id)
        todo = (p for p in iter_image_files(self.inputs, self.volumes) if p not in self.skip)
        for i, path in enumerate(todo):
            if (i // self.batch_size) % shards == shard:
                yield self.prepare(path)


def _one_thread(_: int) -> None:
    torch.set_num_threads(1)  # decoding workers share the cores with the model


def _as_list(batch: list[DecodedCase]) -> list[DecodedCase]:
    return batch


def predict_local(
    predictor: Any,
    inputs: list[str],
    volumes: bool,
    skip: frozenset[str],
    workers: int = 1,
    batch_size: int = 64,
) -> Iterator[pa.Table]:
    """Tables of result rows, one per batch, in the order the files are found.

    Args:
        predictor: the ``RunPredictor`` or ``EnsemblePredictor`` applied (in this process);
            the workers only decode and preprocess.
        workers: decoding processes; 0 decodes in this process.
        batch_size: cases per model call (and per table).
    """
    prepare = preparer_for(predictor)
    dataset = DecodedCaseStream(inputs, volumes, skip, prepare, batch_size)
    loader = DataLoader(
        dataset,
        batch_size=batch_size,
        num_workers=workers,
        collate_fn=_as_list,
        worker_init_fn=_one_thread if workers else None,
        prefetch_factor=2 if workers else None,
    )
    for batch in loader:
        yield predict_batch(predictor, batch)
