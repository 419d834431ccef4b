"""The worker pool's slots: first come, first served, and a waiter that gives up never
keeps or loses a slot (serve/workers.py)."""

from __future__ import annotations

import asyncio
import threading

import pytest

from medlens.serve.workers import WorkerPool


def test_waiters_get_slots_in_arrival_order() -> None:
    """The oldest waiter gets the freed slot, even when newer ones arrived just before the
    release (issue 13's soak: polling let newcomers overtake, p95 184 ms)."""

    async def scenario() -> list[int]:
        pool = WorkerPool(1)
        await pool.acquire()  # the slot is busy
        order: list[int] = []

        async def waiter(k: int) -> None:
            await pool.acquire()
            order.append(k)
            await asyncio.sleep(0.005)
            pool.release()

        tasks = [asyncio.create_task(waiter(0))]
        await asyncio.sleep(0.3)  # the first waiter has waited long
        tasks += [asyncio.create_task(waiter(k)) for k in (1, 2)]
        await asyncio.sleep(0.01)
        assert pool.waiting == 3
        threading.Thread(target=pool.release).start()  # as a worker thread gives it back
        await asyncio.gather(*tasks)
        return order

    assert asyncio.run(scenario()) == [0, 1, 2]


def test_a_waiter_that_times_out_takes_no_slot() -> None:
    async def scenario() -> None:
        pool = WorkerPool(1)
        await pool.acquire()
        with pytest.raises(TimeoutError):
            await asyncio.wait_for(pool.acquire(), 0.05)
        assert pool.waiting == 0
        pool.release()
        await asyncio.wait_for(pool.acquire(), 0.5)  # the slot is free again, not lost
        pool.release()

    asyncio.run(scenario())


def test_a_slot_handed_to_a_cancelled_waiter_passes_to_the_next() -> None:
    async def scenario() -> None:
        pool = WorkerPool(1)
        await pool.acquire()
        first = asyncio.create_task(pool.acquire())
        second = asyncio.create_task(pool.acquire())
        await asyncio.sleep(0.01)
        pool.release()  # hands the slot to ``first``...
        first.cancel()  # ...which gives up before it wakes
        with pytest.raises(asyncio.CancelledError):
            await first
        await asyncio.wait_for(second, 0.5)
        assert pool.waiting == 0
        pool.release()
        with pytest.raises(ValueError, match="never taken"):
            pool.release()

    asyncio.run(scenario())
