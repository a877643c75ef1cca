"""ThreadPoolExecutor behaviour: submit, map, shutdown, max_workers,
initializer and BrokenThreadPool.

Every test runs against the stdlib executor (the oracle) and taskdemo's.
Where taskdemo deliberately deviates from the stdlib, the test branches on
``impl.is_taskdemo`` and says why.
"""

from __future__ import annotations

import concurrent.futures as cf
import os
import threading
from concurrent.futures.thread import BrokenThreadPool

import pytest

WAIT = 10.0


def _expected_default_workers() -> int:
    # The stdlib's formula; 3.13 counts only the CPUs this process may use.
    count = getattr(os, "process_cpu_count", os.cpu_count)()
    return min(32, (count or 1) + 4)


# -- construction ------------------------------------------------------------


def test_is_a_concurrent_futures_executor(impl, pools):
    pool = pools.new(max_workers=1)
    assert isinstance(pool, cf.ThreadPoolExecutor)
    assert isinstance(pool, cf.Executor)
    f = pool.submit(int, "7")
    assert isinstance(f, cf.Future)
    assert f.result(timeout=WAIT) == 7


def test_default_max_workers(impl, pools):
    """With max_workers=None exactly min(32, cpu_count + 4) tasks run at once:
    that many meet at a barrier, and one more waits for a free worker."""
    n = _expected_default_workers()
    pool = pools.new()
    barrier = pools.barrier(n + 1)  # n tasks + this thread
    gate = pools.event()
    extra_started = pools.event()

    def hold():
        barrier.wait()
        gate.wait()
        return threading.current_thread().name

    held = [pool.submit(hold) for _ in range(n)]
    barrier.wait()  # raises BrokenBarrierError if fewer than n run at once
    extra = pool.submit(extra_started.set)
    # All n workers are blocked on the gate, so the extra task cannot start.
    assert not extra_started.wait(0.1), "more than max_workers tasks ran at once"
    gate.set()
    assert extra.result(timeout=WAIT) is None
    names = {f.result(timeout=WAIT) for f in held}
    assert len(names) == n


def test_max_workers_bounds_concurrency(impl, pools):
    pool = pools.new(max_workers=2)
    barrier = pools.barrier(3)
    gate = pools.event()
    third_started = pools.event()

    def hold():
        barrier.wait()
        gate.wait()

    a, b = pool.submit(hold), pool.submit(hold)
    barrier.wait()
    c = pool.submit(third_started.set)
    assert not third_started.wait(0.1), "a third task ran on a 2-worker pool"
    gate.set()
    for f in (a, b, c):
        assert f.result(timeout=WAIT) is None


@pytest.mark.parametrize("bad", [0, -1, -(2**70)])
def test_max_workers_not_positive_is_value_error(impl, bad):
    with pytest.raises(ValueError):
        impl.Executor(max_workers=bad)


def test_max_workers_float(impl, pools):
    """Deliberate deviation: taskdemo wants an int (its C pool counts
    threads); the stdlib accepts a float and compares with it."""
    if impl.is_taskdemo:
        with pytest.raises(TypeError):
            impl.Executor(max_workers=2.0)
    else:
        pool = pools.new(max_workers=2.0)
        pools.assert_usable(pool)


def test_initializer_must_be_callable(impl):
    with pytest.raises(TypeError):
        impl.Executor(max_workers=1, initializer=42)


def test_initializer_runs_once_per_worker_with_initargs(impl, pools):
    """The initializer runs in each worker thread, once, before its first
    task, with *initargs."""
    calls = []
    lock = threading.Lock()

    def init(*args):
        with lock:
            calls.append((threading.get_ident(), args))

    pool = pools.new(max_workers=2, initializer=init, initargs=(1, "a"))
    barrier = pools.barrier(2)

    def task():
        me = threading.get_ident()
        with lock:
            assert me in [ident for ident, _ in calls]
        barrier.wait()  # forces both workers to exist
        return me

    fs = [pool.submit(task) for _ in range(2)]
    task_idents = {f.result(timeout=WAIT) for f in fs}
    more = [pool.submit(threading.get_ident) for _ in range(20)]
    task_idents |= {f.result(timeout=WAIT) for f in more}
    pool.shutdown(wait=True)
    assert [args for _, args in calls] == [(1, "a"), (1, "a")]
    init_idents = [ident for ident, _ in calls]
    assert len(set(init_idents)) == 2, "initializer ran twice in one worker"
    assert task_idents == set(init_idents)
    assert threading.get_ident() not in init_idents


def test_failing_initializer_breaks_pool(impl, pools, caplog):
    """An initializer that raises breaks the pool: every queued future ends
    with BrokenThreadPool, later submits raise it, shutdown still returns."""
    gate = pools.event()

    def init():
        gate.wait()
        raise ValueError("init failed")

    pool = pools.new(max_workers=1, initializer=init)
    ran = []
    # The only worker is stuck in init, so all three are queued.
    fs = [pool.submit(ran.append, i) for i in range(3)]
    gate.set()
    for f in fs:
        exc = f.exception(timeout=WAIT)
        assert isinstance(exc, BrokenThreadPool), exc
        with pytest.raises(BrokenThreadPool):
            f.result(timeout=0)
    assert ran == []
    with pytest.raises(BrokenThreadPool):
        pool.submit(ran.append, 99)
    assert issubclass(BrokenThreadPool, RuntimeError)
    pools.returns_within(lambda: pool.shutdown(wait=True))
    assert ran == []


# -- submit ------------------------------------------------------------------


def test_submit_passes_args_and_kwargs(impl, pools):
    """submit(fn, /, *args, **kwargs): keywords named `fn` or `self` reach
    the task instead of clashing with submit's own parameters."""
    pool = pools.new(max_workers=2)

    def echo(*args, **kwargs):
        return args, kwargs

    f = pool.submit(echo, 1, "two", fn=3, self=4, x=None)
    assert f.result(timeout=WAIT) == ((1, "two"), {"fn": 3, "self": 4, "x": None})
    assert pool.submit(echo).result(timeout=WAIT) == ((), {})


def test_submit_runs_in_another_thread(impl, pools):
    pool = pools.new(max_workers=1)
    ident = pool.submit(threading.get_ident).result(timeout=WAIT)
    assert ident != threading.get_ident()


def test_task_exception_is_stored(impl, pools):
    """The very exception object raised by the task is stored, with its
    traceback, and re-raised by result()."""
    pool = pools.new(max_workers=1)
    err = KeyError("boom")

    def fail():
        raise err

    f = pool.submit(fail)
    assert f.exception(timeout=WAIT) is err
    assert err.__traceback__ is not None
    with pytest.raises(KeyError) as info:
        f.result(timeout=0)
    assert info.value is err
    pools.assert_usable(pool)


@pytest.mark.parametrize("exc_type", [KeyboardInterrupt, SystemExit])
def test_base_exception_in_task_is_stored(impl, pools, exc_type):
    """A BaseException raised by a task lands in its future like any other
    exception; the worker survives and the pool stays usable."""
    pool = pools.new(max_workers=1)

    def fail():
        raise exc_type("from task")

    f = pool.submit(fail)
    assert isinstance(f.exception(timeout=WAIT), exc_type)
    with pytest.raises(exc_type):
        f.result(timeout=0)
    pools.assert_usable(pool)


def test_submit_non_callable(impl, pools):
    """Deliberate deviation: taskdemo rejects a non-callable at submit();
    the stdlib returns a future that fails with TypeError when run."""
    pool = pools.new(max_workers=1)
    if impl.is_taskdemo:
        with pytest.raises(TypeError):
            pool.submit(42)
    else:
        assert isinstance(pool.submit(42).exception(timeout=WAIT), TypeError)
    pools.assert_usable(pool)


def test_submit_without_fn_is_type_error(impl, pools):
    pool = pools.new(max_workers=1)
    with pytest.raises(TypeError):
        pool.submit()
    pools.assert_usable(pool)


# -- map ---------------------------------------------------------------------


def test_map_yields_results_in_input_order(impl, pools):
    """Results come back in input order even when the last input finishes
    first (the first task waits until the last one has run)."""
    pool = pools.new(max_workers=3)
    last_done = pools.event()

    def fn(i):
        if i == 0:
            assert last_done.wait(WAIT)
        if i == 2:
            last_done.set()
        return i * 10

    assert list(pool.map(fn, range(3), timeout=WAIT)) == [0, 10, 20]


def test_map_many_iterables_stops_at_shortest(impl, pools):
    pool = pools.new(max_workers=2)
    assert list(pool.map(pow, [1, 2, 3, 4], [2, 3, 2])) == [1, 8, 9]
    assert list(pool.map(pow, [], [])) == []
    assert list(pool.map(pow, range(100), [2] * 100)) == [i * i for i in range(100)]


def test_map_collects_inputs_at_once(impl, pools):
    """map() consumes every input and submits every call before it returns,
    not lazily while the caller iterates."""
    pool = pools.new(max_workers=2)
    consumed = []

    def gen():
        for i in range(5):
            consumed.append(i)
            yield i

    results = pool.map(abs, gen())
    assert consumed == [0, 1, 2, 3, 4]
    assert list(results) == [0, 1, 2, 3, 4]


def test_map_raises_task_exception_while_iterating(impl, pools):
    """A failing call does not make map() itself raise: its exception comes
    out of the iterator at its position, after the earlier results."""
    pool = pools.new(max_workers=2)

    def fn(i):
        if i == 2:
            raise ValueError(i)
        return i

    it = pool.map(fn, range(4))
    assert next(it) == 0
    assert next(it) == 1
    with pytest.raises(ValueError):
        next(it)


def test_map_timeout(impl, pools):
    pool = pools.new(max_workers=1)
    gate = pools.event()
    it = pool.map(lambda _: gate.wait(), [None], timeout=0.05)
    with pytest.raises(cf.TimeoutError):
        next(it)
    gate.set()


def test_map_timeout_cancels_pending_calls(impl, pools):
    """When map's iterator gives up (timeout), the calls it had not reached
    yet are cancelled, as in the stdlib.  (The call it timed out on is
    cancelled too by the stdlib since CPython 3.11; 3.9's still ran
    it, so that one is not checked.)"""
    pool = pools.new(max_workers=1)
    gate = pools.event()
    started = pools.event()
    blocker = pool.submit(lambda: (started.set(), gate.wait()))
    assert started.wait(WAIT)
    ran = []
    it = pool.map(ran.append, range(5), timeout=0.05)
    with pytest.raises(cf.TimeoutError):
        next(it)
    gate.set()
    blocker.result(timeout=WAIT)
    pool.shutdown(wait=True)
    assert set(ran) <= {0}, ran


def test_map_accepts_chunksize(impl, pools):
    pool = pools.new(max_workers=2)
    assert list(pool.map(abs, [-1, -2, -3], chunksize=2)) == [1, 2, 3]


# -- shutdown ----------------------------------------------------------------


def test_submit_after_shutdown_raises_runtime_error(impl, pools):
    pool = pools.new(max_workers=1)
    pools.assert_usable(pool)
    pool.shutdown()
    with pytest.raises(RuntimeError):
        pool.submit(pow, 2, 2)
    with pytest.raises(RuntimeError):
        list(pool.map(abs, [1]))
    pool.shutdown()  # idempotent
    pool.shutdown(wait=False, cancel_futures=True)


def test_shutdown_on_unused_pool(impl):
    pool = impl.Executor(max_workers=3)
    pool.shutdown(wait=True)
    with pytest.raises(RuntimeError):
        pool.submit(abs, 1)


def test_shutdown_wait_true_runs_queued_tasks_first(impl, pools):
    """shutdown(wait=True) returns only after every queued task has run."""
    pool = pools.new(max_workers=1)
    gate = pools.event()
    first = pool.submit(gate.wait)
    queued = [pool.submit(pow, i, 2) for i in range(10)]
    returned = pools.event()

    def stop():
        pool.shutdown(wait=True)
        returned.set()

    t = threading.Thread(target=stop)
    t.start()
    assert not returned.wait(0.05), "shutdown(wait=True) did not wait"
    gate.set()
    assert returned.wait(WAIT)
    t.join(WAIT)
    assert first.done() and all(f.done() for f in queued)
    assert [f.result(timeout=0) for f in queued] == [i * i for i in range(10)]


def test_shutdown_wait_false_does_not_block(impl, pools):
    """shutdown(wait=False) returns while a task runs; queued tasks still
    run afterwards (no cancel_futures)."""
    pool = pools.new(max_workers=1)
    gate = pools.event()
    running = pool.submit(gate.wait, WAIT)
    queued = [pool.submit(pow, i, 3) for i in range(5)]
    pools.returns_within(lambda: pool.shutdown(wait=False))
    with pytest.raises(RuntimeError):
        pool.submit(abs, 1)
    gate.set()
    assert running.result(timeout=WAIT) is True
    assert [f.result(timeout=WAIT) for f in queued] == [i**3 for i in range(5)]


def test_shutdown_cancel_futures(impl, pools):
    """cancel_futures=True cancels what is queued; the running task
    finishes.  Deliberate deviation: taskdemo leaves the cancelled futures
    fully done, so as_completed()/wait() return them; the stdlib leaves them
    CANCELLED but never notifies waiters, so as_completed would hang."""
    pool = pools.new(max_workers=1)
    gate = pools.event()
    started = pools.event()
    running = pool.submit(lambda: (started.set(), gate.wait(WAIT))[1])
    assert started.wait(WAIT)
    ran = []
    queued = [pool.submit(ran.append, i) for i in range(5)]
    pools.returns_within(lambda: pool.shutdown(wait=False, cancel_futures=True))
    for f in queued:
        assert f.cancelled() and f.done()
        with pytest.raises(cf.CancelledError):
            f.result(timeout=0)
    assert not running.cancelled()
    gate.set()
    assert running.result(timeout=WAIT) is True
    pool.shutdown(wait=True)
    assert ran == []
    if impl.is_taskdemo:
        assert set(cf.as_completed(queued, timeout=WAIT)) == set(queued)
        done, not_done = cf.wait(queued, timeout=WAIT)
        assert done == set(queued) and not not_done
        assert all(f._state == "CANCELLED_AND_NOTIFIED" for f in queued)


def test_shutdown_rejects_positional_cancel_futures(impl, pools):
    pool = pools.new(max_workers=1)
    with pytest.raises(TypeError):
        pool.shutdown(True, True)
    pools.assert_usable(pool)


def test_context_manager(impl):
    """`with` returns the pool itself and shuts it down with wait=True."""
    ran = []
    pool = impl.Executor(max_workers=2)
    with pool as entered:
        assert entered is pool
        fs = [pool.submit(ran.append, i) for i in range(20)]
    assert all(f.done() for f in fs)
    assert sorted(ran) == list(range(20))
    with pytest.raises(RuntimeError):
        pool.submit(abs, 1)


def test_context_manager_does_not_swallow_exceptions(impl):
    with pytest.raises(ZeroDivisionError):
        with impl.Executor(max_workers=1) as pool:
            pool.submit(abs, 1)
            1 / 0


# -- what code in the wild reads: _threads, _max_workers ---------------------


def test_threads_lists_a_worker_as_soon_as_submit_started_it(impl, pools):
    """CPython's test_threads_terminate and test_saturation read
    ``len(executor._threads)`` right after the submits that started the
    workers; taskdemo's workers register from their own thread, so
    ``_threads`` lets them in before it answers."""
    pool = pools.new(max_workers=4)
    gate = pools.event()
    for _ in range(3):
        pool.submit(gate.wait, WAIT)
    assert len(pool._threads) == 3
    names = sorted(t.name for t in pool._threads)
    prefix = pool._thread_name_prefix
    assert names == [f"{prefix}_{i}" for i in range(3)]
    assert all(isinstance(t, threading.Thread) for t in pool._threads)
    for _ in range(20):
        pool.submit(gate.wait, WAIT)
    assert len(pool._threads) == 4   # never more than max_workers
    gate.set()
    pool.shutdown(wait=True)
    for t in pool._threads:
        t.join(WAIT)
        assert not t.is_alive()
    if impl.is_taskdemo:
        # Deliberate: a live view, empty once shutdown(wait=True) returned
        # (the stdlib's set keeps the exited threads).
        assert len(pool._threads) == 0


def test_threads_are_joinable_after_the_executor_is_dropped(impl):
    """CPython's test_del_shutdown: keep ``_threads``, drop the executor,
    join every thread; the queued work still ran."""
    import gc

    pool = impl.Executor(max_workers=5)
    res = pool.map(abs, range(-5, 5))
    threads = pool._threads
    workers = list(threads)
    assert workers
    del pool
    gc.collect()
    for t in workers:
        t.join(WAIT)
        assert not t.is_alive()
    assert list(res) == [abs(v) for v in range(-5, 5)]
    if impl.is_taskdemo:
        assert len(threads) == 0


def test_threads_join_from_the_worker_itself_is_refused(impl, pools):
    pool = pools.new(max_workers=1)

    def join_self():
        with pytest.raises(RuntimeError):
            threading.current_thread().join(0)

    pool.submit(join_self).result(timeout=WAIT)
    assert threading.current_thread() not in pool._threads


def test_max_workers_attribute_is_the_int(impl, pools):
    assert pools.new(max_workers=7)._max_workers == 7
    assert pools.new()._max_workers == _expected_default_workers()


def test_shutdown_cancel_futures_spares_tasks_a_new_worker_took(impl):
    """CPython's test_cancel_futures: 50 sleeps on 5 workers, then
    shutdown(cancel_futures=True).  The tasks the 5 workers were started
    for run (the stdlib's new threads take them); the rest are cancelled.
    taskdemo hands each new worker its task at the submit that starts it,
    so exactly 5 run even though no worker had the GIL yet."""
    import time

    pool = impl.Executor(max_workers=5)
    fs = [pool.submit(time.sleep, 0.01) for _ in range(50)]
    pool.shutdown(cancel_futures=True)
    cancelled = [f for f in fs if f.cancelled()]
    others = [f for f in fs if not f.cancelled()]
    assert len(cancelled) > 20
    assert others
    for f in others:
        assert f.done() and f.exception() is None
    if impl.is_taskdemo:
        assert fs[:5] == others   # the oldest five, one per new worker


# -- 3.14's class attributes: BROKEN, prepare_context ------------------------


def test_broken_pool_raises_the_class_broken(impl, caplog):
    """3.14 made the broken-pool error a class attribute, BROKEN, for
    subclasses to override; taskdemo honours it on every version."""

    class MyBroken(BrokenThreadPool):
        pass

    class Pool(impl.Executor):
        BROKEN = MyBroken

    if not hasattr(cf.ThreadPoolExecutor, "BROKEN") and not impl.is_taskdemo:
        pytest.skip("this stdlib has no ThreadPoolExecutor.BROKEN")

    def fail():
        raise ValueError("no")

    pool = Pool(max_workers=1, initializer=fail)
    try:
        f = pool.submit(abs, 1)
        with pytest.raises(MyBroken):
            f.result(timeout=WAIT)
        with pytest.raises(MyBroken):
            pool.submit(abs, 1)
    finally:
        pool.shutdown(wait=True)


def test_broken_must_be_an_exception_class(taskdemo):
    class Pool(taskdemo.ThreadPoolExecutor):
        BROKEN = "not a class"

    with pytest.raises(TypeError, match="BROKEN must be an exception class"):
        Pool(max_workers=1)


@pytest.mark.skipif(not hasattr(cf.ThreadPoolExecutor, "prepare_context"),
                    reason="prepare_context is new in CPython 3.14")
def test_overriding_prepare_context_is_refused_clearly(taskdemo):
    """A subclass that overrides 3.14's prepare_context (as
    InterpreterPoolExecutor does) expects its worker context to wrap every
    task; taskdemo's C workers would not, so the class is refused."""
    with pytest.raises(TypeError, match="prepare_context"):
        class Pool(taskdemo.ThreadPoolExecutor):
            @classmethod
            def prepare_context(cls, initializer, initargs):
                return super().prepare_context(initializer, initargs)

    class Mixin:
        @classmethod
        def prepare_context(cls, initializer, initargs):
            raise AssertionError("never called")

    with pytest.raises(TypeError, match="prepare_context"):
        class Mixed(Mixin, taskdemo.ThreadPoolExecutor):
            pass

    class Plain(taskdemo.ThreadPoolExecutor):   # no override: fine
        pass

    with Plain(max_workers=1) as pool:
        assert pool.submit(abs, -1).result(timeout=WAIT) == 1


def test_unknown_keyword_is_type_error(impl):
    """3.14 passes unknown keywords to prepare_context(), which rejects
    them; before, __init__ did.  TypeError either way."""
    with pytest.raises(TypeError):
        impl.Executor(max_workers=1, no_such_option=1)
