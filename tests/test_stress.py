"""Volume and races: many tasks, many submitting threads, callbacks racing
completion, cancel racing start, and leak checks.

Each race test asserts an invariant that holds however the race goes, so
they are deterministic; they run against the stdlib too, as the oracle.
"""

from __future__ import annotations

import collections
import concurrent.futures as cf
import gc
import sys
import threading
import weakref

import pytest

WAIT = 30.0


def test_hundred_thousand_trivial_tasks(impl, pools):
    n = 100_000
    pool = pools.new(max_workers=4)
    fs = [pool.submit(pow, i, 2) for i in range(n)]
    assert [f.result(timeout=WAIT) for f in fs] == [i * i for i in range(n)]
    assert list(pool.map(abs, range(-n, 0), timeout=WAIT)) == list(range(n, 0, -1))


def test_eight_threads_submitting_at_once(impl, pools):
    """8 threads released together by a barrier each submit 10,000 tasks to
    one pool; every future holds its own submitter's result."""
    pool = pools.new(max_workers=4)
    per_thread, nthreads = 10_000, 8
    barrier = pools.barrier(nthreads)
    out = [None] * nthreads
    errors = []

    def submitter(k):
        try:
            barrier.wait()
            out[k] = [pool.submit(divmod, k * per_thread + i, per_thread) for i in range(per_thread)]
        except BaseException as exc:
            errors.append(exc)

    threads = [threading.Thread(target=submitter, args=(k,)) for k in range(nthreads)]
    for t in threads:
        t.start()
    for t in threads:
        t.join(WAIT)
    assert not errors, errors
    for k, fs in enumerate(out):
        assert [f.result(timeout=WAIT) for f in fs] == [(k, i) for i in range(per_thread)]


def test_add_done_callback_racing_completion(impl, pools):
    """Two threads add callbacks while the workers complete the futures, so
    some callbacks are added before completion (run by the completing
    thread) and some after (run at once by the adder).  Every callback runs
    exactly once."""
    n = 5_000
    pool = pools.new(max_workers=2)
    counts = collections.Counter()
    lock = threading.Lock()
    all_called = pools.event()
    go = pools.barrier(2)

    def callback(key):
        def cb(fut):
            assert fut is futures[key[0]]
            with lock:
                counts[key] += 1
                if sum(counts.values()) == 2 * n:
                    all_called.set()

        return cb

    futures = [pool.submit(abs, -i) for i in range(n)]

    def adder(who, order):
        go.wait()
        for i in order:
            futures[i].add_done_callback(callback((i, who)))

    helper = threading.Thread(target=adder, args=("helper", range(n - 1, -1, -1)))
    helper.start()
    adder("main", range(n))
    helper.join(WAIT)
    assert all_called.wait(WAIT), f"only {sum(counts.values())} of {2 * n} callbacks ran"
    pool.shutdown(wait=True)
    assert len(counts) == 2 * n
    assert set(counts.values()) == {1}, "a callback ran more than once"
    assert [f.result(timeout=0) for f in futures] == list(range(n))


def test_cancel_racing_start(impl, pools):
    """Two workers are held at a gate while 5,000 tasks queue up; then the
    gate opens and this thread cancels the futures while the workers start
    them.  Each future ends exactly one way: cancelled (cancel() said True,
    the task never ran) xor finished (cancel() said False, the task ran
    once and its result is there)."""
    n = 5_000
    pool = pools.new(max_workers=2)
    gate = pools.event()
    blockers = [pool.submit(gate.wait, WAIT) for _ in range(2)]
    ran = collections.Counter()
    lock = threading.Lock()

    def task(i):
        with lock:
            ran[i] += 1
        return i

    futures = [pool.submit(task, i) for i in range(n)]
    gate.set()
    said = [f.cancel() for f in futures]
    pool.shutdown(wait=True)
    assert all(b.result(timeout=0) for b in blockers)
    assert set(ran.values()) <= {1}, "a task ran twice"
    cancelled = 0
    for i, (f, cancel_said) in enumerate(zip(futures, said)):
        assert f.done()
        if f.cancelled():
            cancelled += 1
            assert cancel_said is True, i
            assert i not in ran, f"cancelled task {i} ran"
            with pytest.raises(cf.CancelledError):
                f.result(timeout=0)
        else:
            assert cancel_said is False, i
            assert ran[i] == 1, f"finished future {i} but its task did not run"
            assert f.result(timeout=0) == i
    done, not_done = cf.wait(futures, timeout=WAIT)
    assert len(done) == n and not not_done
    # Not an invariant, but a check that the race was exercised: the
    # workers cannot start all 5,000 before this thread cancels any.
    assert cancelled > 0


def test_many_pools_come_and_go(impl):
    """Creating and shutting down pools leaves no thread behind."""
    before = threading.active_count()
    for i in range(200):
        with impl.Executor(max_workers=2) as pool:
            assert list(pool.map(pow, [i, i], [2, 3])) == [i * i, i**3]
    assert threading.active_count() == before


# -- leaks -------------------------------------------------------------------


def _round_trips(pool, n, arg):
    for _ in range(n):
        assert pool.submit(id, arg).result(timeout=WAIT) == id(arg)
        f = pool.submit(_fail_with, arg)
        assert isinstance(f.exception(timeout=WAIT), ValueError)
        f.add_done_callback(lambda fut: None)
    del f


def _fail_with(arg):
    raise ValueError(arg)


def _identity(x):
    return x


def test_gc_objects_settle(impl, pools):
    """Thousands of submit/result/exception/callback round trips leave the
    number of GC-tracked objects where it was (markupsafe's leak test)."""
    pool = pools.new(max_workers=2)
    arg = object()
    _round_trips(pool, 500, arg)  # warm up caches, free lists, workers
    counts = []
    for _ in range(4):
        _round_trips(pool, 1000, arg)
        gc.collect()
        counts.append(len(gc.get_objects()))
    # A leak of one object per round trip would add >= 1000 per round.
    assert counts[-1] - counts[0] < 200, counts


def test_argument_refcounts_return_to_baseline(impl):
    """Arguments, keyword arguments and results are released once the pool
    is done with them (checked after shutdown, when no worker can still be
    holding its last task)."""
    arg, kwarg, result = object(), object(), object()
    base = [sys.getrefcount(o) for o in (arg, kwarg, result)]

    def task(a, *, k):
        return result

    with impl.Executor(max_workers=2) as pool:
        for _ in range(2000):
            assert pool.submit(task, arg, k=kwarg).result(timeout=WAIT) is result
        assert list(pool.map(lambda a: result, [arg] * 500)) == [result] * 500
        f = pool.submit(_fail_with, arg)
        f.exception(timeout=WAIT)
        del f
    gc.collect()
    assert [sys.getrefcount(o) for o in (arg, kwarg, result)] == base


def test_future_cycles_are_collected(impl):
    """A future in a reference cycle (its result refers back to it, or a
    callback closes over it) is freed by the cycle collector, which needs a
    working tp_traverse on taskdemo's C future."""
    with impl.Executor(max_workers=1) as pool:
        box = []
        f1 = pool.submit(_identity, box)
        box.append(f1)
        f1.result(timeout=WAIT)
        f2 = pool.submit(abs, -1)
        f2.add_done_callback(lambda fut, keep=[f2]: keep)
        f2.result(timeout=WAIT)
    refs = [weakref.ref(f1), weakref.ref(f2)]
    del f1, f2, box
    gc.collect()
    assert [r() for r in refs] == [None, None]
