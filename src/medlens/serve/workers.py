"""Where requests decode and infer: a bounded pool of threads, and jobs that can be cancelled.

Decoding an upload and running a model are CPU- and memory-heavy, so at most ``size``
requests do that work at once, each on one of ``size`` threads. A request takes a slot
before its job is handed to a thread, and the slot is given back when the job's thread has
finished with it, not when the request stops waiting. A request that times out (504) sets
its job's cancel flag; the job stops at its next checkpoint (between reading, inference,
explanation and writing) but keeps its slot until then. Retries of a slow request therefore
queue for a slot (and get 503 when none frees within their own time limit) instead of
stacking up threads: the number of threads doing work never exceeds ``size``.
"""

from __future__ import annotations

import asyncio
import itertools
import shutil
import threading
from collections.abc import Callable
from concurrent.futures import Future, ThreadPoolExecutor
from pathlib import Path
from typing import Generic, TypeVar

import anyio

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
    """``size`` slots and ``size`` threads, created on demand and named
    ``<thread_prefix>_<n>`` (``thread_prefix`` is ``THREAD_PREFIX-<pool number>``).

    Args:
        size: the most requests that decode and infer at once (at least 1).
    """

    def __init__(self, size: int = DEFAULT_CONCURRENT) -> None:
        if size < 1:
            raise ValueError("a worker pool needs at least one thread")
        self.size = size
        self.thread_prefix = f"{THREAD_PREFIX}-{next(_POOLS)}"
        self._slots = threading.BoundedSemaphore(size)
        self._executor: ThreadPoolExecutor | None = None
        self._lock = threading.Lock()

    async def acquire(self) -> None:
        """Wait for a free slot (the caller's cancel scope bounds the wait)."""
        delay = 0.002
        while not self._slots.acquire(blocking=False):
            await anyio.sleep(delay)
            delay = min(delay * 2, 0.05)

    def release(self) -> None:
        """Give back a slot taken with ``acquire`` that no job was started in."""
        self._slots.release()

    async def run(self, job: Job[T]) -> T | None:
        """Run ``job`` on a pool thread in the slot the caller acquired, and wait for it.

        The slot is released when the thread is done with the job (or when a job that never
        started is cancelled), whatever happens to the waiting request.
        """
        try:
            future = self._pool().submit(job.run)
        except BaseException:
            self.release()
            raise
        future.add_done_callback(self._done)
        return await asyncio.wrap_future(future)

    def _done(self, _: Future) -> None:
        self._slots.release()

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
