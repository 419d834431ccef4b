"""Where requests decode and infer: a bounded pool of threads, and jobs that can be cancelled.

Decoding an upload and running a model are CPU- and memory-heavy, so at most ``size`` jobs
do that work at once, each on one of ``size`` threads. A request hands its job to the pool
at once; jobs wait in the pool's queue and start in the order they came (first come, first
served), each on the first thread that frees: a thread that finishes a job takes the next
one itself, with no round trip through the event loop. A request that gives up (its time
limit) cancels its job: a job still queued never runs (the request answers 503: every
worker was busy), a running one stops at its next checkpoint (between reading, inference,
explanation and writing; the request answers 504) and keeps its thread until then. Retries
of a slow request therefore queue instead of stacking up threads: the number of threads
doing work never exceeds ``size``.
"""

from __future__ import annotations

import asyncio
import itertools
import shutil
import threading
from collections.abc import Callable
from concurrent.futures import ThreadPoolExecutor
from pathlib import Path
from typing import Generic, TypeVar

T = TypeVar("T")
THREAD_PREFIX = "medlens-serve-worker"
DEFAULT_CONCURRENT = 2
Checkpoint = Callable[[], None]
_POOLS = itertools.count(1)


class Cancelled(BaseException):  # noqa: N818 - like asyncio.CancelledError
    """Raised at a checkpoint of a job whose request has given up. A ``BaseException``, like
    ``asyncio.CancelledError``, so that no ``except Exception`` on the way turns it into an
    error response."""


class Job(Generic[T]):
    """The work of one request, run on a pool thread.

    It removes its private folder when it ends. When the request gives up before a thread
    starts the job, the job never runs and the request removes the folder.

    Args:
        work: the request's private folder.
        fn: the work; it takes the job's ``checkpoint`` and calls it between stages.
    """

    def __init__(self, work: Path, fn: Callable[[Checkpoint], T]) -> None:
        self.work = work
        self.fn = fn
        self.lock = threading.Lock()
        self.state = "pending"
        self.cancelled = threading.Event()

    def checkpoint(self) -> None:
        """Raise ``Cancelled`` when the request has given up."""
        if self.cancelled.is_set():
            raise Cancelled

    def run(self) -> T | None:
        with self.lock:
            if self.state == "abandoned":
                return None
            self.state = "running"
        try:
            return self.fn(self.checkpoint)
        finally:
            shutil.rmtree(self.work, ignore_errors=True)

    def cancel(self) -> bool:
        """Ask the job to stop; True when it had not started (it never will, and the caller
        removes the folder), False when it is running or done (it removes the folder)."""
        self.cancelled.set()
        with self.lock:
            if self.state == "pending":
                self.state = "abandoned"
                return True
            return False


class WorkerPool:
    """``size`` threads, created on demand and named ``<thread_prefix>_<n>``
    (``thread_prefix`` is ``THREAD_PREFIX-<pool number>``), fed from one first-in,
    first-out queue.

    Args:
        size: the most jobs that run at once (at least 1).
    """

    def __init__(self, size: int = DEFAULT_CONCURRENT) -> None:
        if size < 1:
            raise ValueError("a worker pool needs at least one thread")
        self.size = size
        self.thread_prefix = f"{THREAD_PREFIX}-{next(_POOLS)}"
        self._executor: ThreadPoolExecutor | None = None
        self._lock = threading.Lock()

    async def run(self, job: Job[T]) -> T | None:
        """Queue ``job`` behind the jobs already waiting and wait for its result (None for a
        job cancelled before it started). Giving up the wait does not stop the job: cancel
        it (``Job.cancel``)."""
        return await asyncio.wrap_future(self._pool().submit(job.run))

    def _pool(self) -> ThreadPoolExecutor:
        with self._lock:
            if self._executor is None:
                self._executor = ThreadPoolExecutor(
                    max_workers=self.size, thread_name_prefix=self.thread_prefix
                )
            return self._executor

    def shutdown(self) -> None:
        """Stop taking work; running jobs finish (their requests are gone), queued ones are
        dropped. A later ``run`` starts a new pool."""
        with self._lock:
            executor, self._executor = self._executor, None
        if executor is not None:
            executor.shutdown(wait=False, cancel_futures=True)
