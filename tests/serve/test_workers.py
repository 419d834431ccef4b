"""The worker pool: jobs start in the order they came, a job cancelled before it starts
never runs, and no more than ``size`` threads ever work (serve/workers.py)."""

from __future__ import annotations

import asyncio
import threading
import time
from pathlib import Path

from medlens.serve.workers import Job, WorkerPool


def _job(tmp_path: Path, name: str, fn) -> Job:
    work = tmp_path / name
    work.mkdir()
    return Job(work, fn)


def test_jobs_start_in_the_order_they_came(tmp_path: Path) -> None:
    """The oldest queued job starts first when a worker frees (issue 13's soak: waiters that
    polled for a slot let newcomers overtake, max latency 3 s)."""
    started: list[int] = []
    gate = threading.Event()

    def work(k: int):
        def fn(checkpoint) -> int:
            started.append(k)
            if k == 0:
                gate.wait(5)
            return k

        return fn

    async def scenario() -> list[int | None]:
        pool = WorkerPool(1)
        first = asyncio.create_task(pool.run(_job(tmp_path, "j0", work(0))))
        await asyncio.sleep(0.05)  # job 0 holds the only worker
        rest = [asyncio.create_task(pool.run(_job(tmp_path, f"j{k}", work(k)))) for k in (1, 2, 3)]
        await asyncio.sleep(0.05)
        gate.set()
        return list(await asyncio.gather(first, *rest))

    assert asyncio.run(scenario()) == [0, 1, 2, 3]
    assert started == [0, 1, 2, 3]
    assert not any(tmp_path.iterdir())  # every job removed its folder


def test_a_job_cancelled_while_queued_never_runs_and_threads_stay_bounded(
    tmp_path: Path,
) -> None:
    ran: list[str] = []
    busy = threading.Event()
    peak = [0]
    active = [0]
    lock = threading.Lock()

    def work(name: str, hold: float):
        def fn(checkpoint) -> str:
            with lock:
                active[0] += 1
                peak[0] = max(peak[0], active[0])
            ran.append(name)
            busy.wait(hold)
            with lock:
                active[0] -= 1
            return name

        return fn

    async def scenario() -> None:
        pool = WorkerPool(2)
        holders = [
            asyncio.create_task(pool.run(_job(tmp_path, f"h{k}", work(f"h{k}", 5.0))))
            for k in range(2)
        ]
        queued = _job(tmp_path, "late", work("late", 0.0))
        waiting = asyncio.create_task(pool.run(queued))
        await asyncio.sleep(0.05)
        assert queued.cancel()  # still queued: it never will run
        waiting.cancel()
        busy.set()
        await asyncio.gather(*holders)
        await asyncio.sleep(0.05)
        pool.shutdown()

    started = time.monotonic()
    asyncio.run(scenario())
    assert "late" not in ran and sorted(ran) == ["h0", "h1"]
    assert peak[0] == 2 and time.monotonic() - started < 5
