"""asyncio on top of the pool: run_in_executor, wrap_future, and the pool as
the loop's default executor (which asyncio.to_thread also uses)."""

from __future__ import annotations

import asyncio
import concurrent.futures as cf
import json
import sys
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


# What the bridge calls on the concurrent futures, counted in a fresh child
# (the patches are process-wide): threading.Condition() constructions,
# reads of `_condition` on taskdemo's futures, and calls of our
# _get_snapshot and of the stdlib's (CPython 3.15's asyncio calls one per
# completion).  Ours is wrapped by a counter that calls it, so the C method
# still does the work.
BRIDGE_PROBE = r"""
import asyncio
import concurrent.futures as cf
import json
import sys
import threading

import taskdemo

impl = sys.argv[1]
Executor = taskdemo.ThreadPoolExecutor if impl == "taskdemo" else cf.ThreadPoolExecutor
N = 20
counts = {"conditions": 0, "condition_reads": 0, "ours": 0, "stdlib": 0}
ours_is_c = "_get_snapshot" in vars(taskdemo.Future)
stdlib_snapshot = getattr(cf.Future, "_get_snapshot", None)
c_snapshot = vars(taskdemo.Future)["_get_snapshot"]
c_condition = vars(taskdemo.Future)["_condition"]


def count_ours(self):
    counts["ours"] += 1
    return c_snapshot(self)


def count_stdlib(self):
    counts["stdlib"] += 1
    return stdlib_snapshot(self)


def count_condition_read(self):
    counts["condition_reads"] += 1
    return c_condition.__get__(self)


taskdemo.Future._get_snapshot = count_ours
taskdemo.Future._condition = property(count_condition_read)
if stdlib_snapshot is not None:
    cf.Future._get_snapshot = count_stdlib

pool = Executor(max_workers=1)
pool.submit(abs, 0).result()   # its worker (a threading._DummyThread) exists
gate = threading.Event()


def fail():
    raise LookupError("from the pool")


async def main():
    loop = asyncio.get_running_loop()
    squares = await asyncio.gather(
        *(loop.run_in_executor(pool, pow, i, 2) for i in range(N)))
    try:
        await loop.run_in_executor(pool, fail)
        raised = None
    except LookupError as exc:
        raised = str(exc)
    done = pool.submit(abs, -7)
    done.result()
    from_done = await asyncio.wrap_future(done)
    # A task holds the one worker, so the next one is cancelled queued.
    started = asyncio.Event()
    blocker = pool.submit(
        lambda: (loop.call_soon_threadsafe(started.set), gate.wait(10)))
    await started.wait()
    queued = pool.submit(abs, -1)
    afut = asyncio.wrap_future(queued)
    assert queued.cancel()
    try:
        await afut
        cancelled = False
    except asyncio.CancelledError:
        cancelled = True
    gate.set()
    await asyncio.wrap_future(blocker)
    return squares, raised, from_done, cancelled


# Counted from here: the pool, its worker and the Event (each of the last
# two holds a Condition) exist.
original_init = threading.Condition.__init__


def count_condition(self, *args, **kwargs):
    counts["conditions"] += 1
    original_init(self, *args, **kwargs)


threading.Condition.__init__ = count_condition
squares, raised, from_done, cancelled = asyncio.run(main())
threading.Condition.__init__ = original_init
pool.shutdown(wait=True)
# Put the C descriptors back: while the type holds our counters (and through
# their globals this module and the pool), the pool is freed only after the
# module state at exit, which hangs (a known teardown bug, py_executor.c).
taskdemo.Future._get_snapshot = c_snapshot
taskdemo.Future._condition = c_condition
if stdlib_snapshot is not None:
    cf.Future._get_snapshot = stdlib_snapshot
print(json.dumps(dict(counts, squares=squares, raised=raised,
                      from_done=from_done, cancelled=cancelled,
                      ours_is_c=ours_is_c, n=N)))
"""


def test_bridge_snapshots_without_conditions(impl, run_in_subprocess):
    """run_in_executor and wrap_future with results, an exception, an
    already-done future and a cancel.  On CPython 3.15 asyncio reads each
    outcome with _get_snapshot(): for taskdemo's futures ours (the C one;
    the stdlib's is never called), for the stdlib's theirs.  On any
    version taskdemo builds no threading.Condition per future and never
    reads `_condition` (the stdlib's _get_snapshot takes it for a cancelled
    future), while the stdlib builds one per future: that shows the count
    works."""
    rc, out, err = run_in_subprocess(BRIDGE_PROBE, timeout=60, args=(impl.name,))
    assert rc == 0, err
    got = json.loads(out.strip().splitlines()[-1])
    n = got["n"]
    assert got["squares"] == [i * i for i in range(n)]
    assert got["raised"] == "from the pool"
    assert got["from_done"] == 7 and got["cancelled"] is True
    assert got["ours_is_c"], "taskdemo.Future has no _get_snapshot of its own"
    # One snapshot per chained completion: N squares, the failure, the
    # already-done future, the cancelled one and the blocker.
    snapshots = n + 4 if sys.version_info >= (3, 15) else 0
    if impl.is_taskdemo:
        assert (got["ours"], got["stdlib"]) == (snapshots, 0), got
        assert got["conditions"] == 0, got
        assert got["condition_reads"] == 0, got
    else:
        assert (got["ours"], got["stdlib"]) == (0, snapshots), got
        assert got["conditions"] >= n + 4, got
