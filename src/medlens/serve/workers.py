"""Where requests decode and infer: a bounded pool of threads, and jobs that can be cancelled.

Decoding an upload and running a model are CPU- and memory-heavy, so at most ``size``
requests do that work at once, each on one of ``size`` threads. A request takes a slot
before its job is handed to a thread, and the slot is given back when the job's thread has
finished with it, not when the request stops waiting. A request that times out (504) sets
its job's cancel flag; the job stops at its next checkpoint (between reading, inference,
explanation and writing) but keeps its slot until then. Retries of a slow request therefore
queue for a slot (and get 503 when none frees within their own time limit) instead of
stacking up threads: the number of threads doing work never exceeds ``size``.

Waiting requests are served first come, first served: a freed slot is handed to the oldest
waiter at once (no polling), so under load the wait is the queue ahead, not luck.
"""

from __future__ import annotations

import asyncio
import itertools
import shutil
import threading
from collections import deque
from collections.abc import Callable
from concurrent.futures import Future, ThreadPoolExecutor
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


def _grant(waiter: asyncio.Future[None]) -> None:
    """Wake a waiter with its slot (on its event loop); one cancelled meanwhile has already
    been told, and its ``acquire`` passes the slot on."""
    if not waiter.done():
        waiter.set_result(None)


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
        self._free = size
        self._waiters: deque[tuple[asyncio.AbstractEventLoop, asyncio.Future[None]]] = deque()
        self._executor: ThreadPoolExecutor | None = None
        self._lock = threading.Lock()

    async def acquire(self) -> None:
        """Wait for a free slot, behind the requests already waiting (first come, first
        served); the caller's cancel scope bounds the wait. A waiter cancelled after a slot
        was handed to it passes the slot on."""
        loop = asyncio.get_running_loop()
        with self._lock:
            if self._free > 0 and not self._waiters:
                self._free -= 1
                return
            waiter: asyncio.Future[None] = loop.create_future()
            self._waiters.append((loop, waiter))
        try:
            await waiter
        except BaseException:
            with self._lock:
                try:
                    self._waiters.remove((loop, waiter))
                    handed = False
                except ValueError:  # release() popped it: the slot is this waiter's
                    handed = True
            if handed:
                self.release()
            raise

    def release(self) -> None:
        """Give back a slot (from any thread): to the oldest waiter, else to the pool.

        Raises:
            ValueError: more slots given back than taken.
        """
        with self._lock:
            if self._waiters:
                loop, waiter = self._waiters.popleft()
                loop.call_soon_threadsafe(_grant, waiter)
                return
            if self._free >= self.size:
                raise ValueError("a worker slot was given back that was never taken")
            self._free += 1

    @property
    def waiting(self) -> int:
        """Requests waiting for a slot now."""
        with self._lock:
            return len(self._waiters)

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
        self.release()

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
