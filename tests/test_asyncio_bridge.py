"""asyncio on top of the pool: run_in_executor, wrap_future, and the pool as
the loop's default executor (which asyncio.to_thread also uses)."""

from __future__ import annotations

import asyncio
import concurrent.futures as cf
import threading

import pytest

WAIT = 10.0


def _thread_name() -> str:
    return threading.current_thread().name


def test_run_in_executor(impl, pools):
    pool = pools.new(max_workers=2, thread_name_prefix="aio")

    async def main():
        loop = asyncio.get_running_loop()
        results = await asyncio.gather(
            *(loop.run_in_executor(pool, pow, i, 2) for i in range(20))
        )
        name = await loop.run_in_executor(pool, _thread_name)
        return results, name

    results, name = asyncio.run(main())
    assert results == [i * i for i in range(20)]
    assert name.startswith("aio_")


def test_run_in_executor_propagates_exception(impl, pools):
    pool = pools.new(max_workers=1)

    def fail():
        raise LookupError("from the pool")

    async def main():
        loop = asyncio.get_running_loop()
        with pytest.raises(LookupError, match="from the pool"):
            await loop.run_in_executor(pool, fail)
        return await loop.run_in_executor(pool, abs, -3)

    assert asyncio.run(main()) == 3


def test_wrap_future(impl, pools):
    """A pool future completed in a worker thread resolves the asyncio future
    on the loop (through a done-callback that calls call_soon_threadsafe)."""
    pool = pools.new(max_workers=2)
    gate = pools.event()

    async def main():
        loop = asyncio.get_running_loop()
        cfut = pool.submit(lambda: (gate.wait(WAIT), "late")[1])
        afut = asyncio.wrap_future(cfut)
        assert isinstance(afut, asyncio.Future)
        assert not afut.done()
        loop.call_soon(gate.set)
        done = await asyncio.wrap_future(pool.submit(pow, 2, 5))
        return done, await afut

    assert asyncio.run(main()) == (32, "late")


def test_wrap_future_of_failed_future(impl, pools):
    pool = pools.new(max_workers=1)

    def fail():
        raise KeyError("k")

    async def main():
        with pytest.raises(KeyError):
            await asyncio.wrap_future(pool.submit(fail))

    asyncio.run(main())


def test_cancelling_wrapped_future_cancels_queued_task(impl, pools):
    """Cancelling the asyncio side cancels the pool future if it has not
    started, so the task never runs."""
    pool = pools.new(max_workers=1)
    gate = pools.event()
    started = pools.event()
    blocker = pool.submit(lambda: (started.set(), gate.wait(WAIT)))
    assert started.wait(WAIT)
    ran = []
    queued = pool.submit(ran.append, 1)

    async def main():
        afut = asyncio.wrap_future(queued)
        afut.cancel()
        with pytest.raises(asyncio.CancelledError):
            await afut
        await asyncio.sleep(0)  # let the chained cancel callback run

    asyncio.run(main())
    assert queued.cancelled()
    gate.set()
    blocker.result(timeout=WAIT)
    pool.shutdown(wait=True)
    assert ran == []


def test_wait_for_timeout_on_run_in_executor(impl, pools):
    pool = pools.new(max_workers=1)
    gate = pools.event()

    async def main():
        loop = asyncio.get_running_loop()
        with pytest.raises(asyncio.TimeoutError):
            await asyncio.wait_for(loop.run_in_executor(pool, gate.wait, WAIT), 0.05)

    asyncio.run(main())
    gate.set()


def test_default_executor_and_to_thread(impl):
    """With the pool as the loop's default executor, run_in_executor(None)
    and asyncio.to_thread run on its workers; asyncio.run shuts it down at
    the end (from a helper thread), so it refuses work afterwards."""
    pool = impl.Executor(max_workers=2, thread_name_prefix="dflt")

    async def main():
        loop = asyncio.get_running_loop()
        loop.set_default_executor(pool)
        a = await loop.run_in_executor(None, _thread_name)
        b = await asyncio.to_thread(_thread_name)
        c = await asyncio.gather(*(asyncio.to_thread(pow, i, 3) for i in range(10)))
        return a, b, c

    try:
        a, b, c = asyncio.run(main())
        assert a.startswith("dflt_") and b.startswith("dflt_")
        assert c == [i**3 for i in range(10)]
        with pytest.raises(RuntimeError):
            pool.submit(abs, 1)
    finally:
        pool.shutdown(wait=True)


def test_run_in_executor_from_worker_thread_loop(impl, pools):
    """An event loop running inside a pool task can itself use the pool."""
    pool = pools.new(max_workers=2)

    async def inner():
        loop = asyncio.get_running_loop()
        return await loop.run_in_executor(pool, pow, 3, 4)

    f = pool.submit(asyncio.run, inner())
    assert f.result(timeout=WAIT) == 81
    assert isinstance(f, cf.Future)
