"""The futures a pool returns: states, cancel, timeouts, done-callbacks, and
the stdlib helpers as_completed() and wait() working on them.

taskdemo's futures are a C type; the stdlib helpers read their `_state`,
`_condition` and `_waiters`, so these tests pin those down too.
"""

from __future__ import annotations

import concurrent.futures as cf
import logging
import sys
import threading
import time

import pytest

WAIT = 10.0

STDLIB_STATES = {"PENDING", "RUNNING", "CANCELLED", "CANCELLED_AND_NOTIFIED", "FINISHED"}


def _running_task(pools, pool):
    """Submits a task that runs until the returned gate is set; returns
    (future, gate) once the task is known to be running."""
    gate = pools.event()
    started = pools.event()

    def hold():
        started.set()
        assert gate.wait(WAIT)
        return "held"

    f = pool.submit(hold)
    assert started.wait(WAIT)
    return f, gate


# -- states --------------------------------------------------------------------


def test_states_through_a_task_life(impl, pools):
    """pending -> running -> finished, through the public predicates and
    through `_state`, which must read as the stdlib's state strings."""
    pool = pools.new(max_workers=1)
    running, gate = _running_task(pools, pool)
    queued = pool.submit(pow, 2, 8)
    assert running.running() and not running.done() and not running.cancelled()
    assert running._state == "RUNNING"
    assert not queued.running() and not queued.done()
    assert queued._state == "PENDING"
    gate.set()
    assert running.result(timeout=WAIT) == "held"
    assert queued.result(timeout=WAIT) == 256
    for f in (running, queued):
        assert f.done() and not f.running() and not f.cancelled()
        assert f._state == "FINISHED"
        assert f._state in STDLIB_STATES
        assert f.exception(timeout=0) is None


def test_cancel_pending_future(impl, pools):
    pool = pools.new(max_workers=1)
    running, gate = _running_task(pools, pool)
    ran = []
    queued = pool.submit(ran.append, 1)
    assert queued.cancel() is True
    assert queued.cancel() is True  # cancelling twice still says cancelled
    assert queued.cancelled() and queued.done() and not queued.running()
    assert queued._state in ("CANCELLED", "CANCELLED_AND_NOTIFIED")
    with pytest.raises(cf.CancelledError):
        queued.result(timeout=0)
    with pytest.raises(cf.CancelledError):
        queued.exception(timeout=0)
    gate.set()
    running.result(timeout=WAIT)
    pool.shutdown(wait=True)
    assert ran == []
    # Once the worker has passed it, the stdlib marks it notified.
    assert queued._state == "CANCELLED_AND_NOTIFIED"


def test_cancel_running_or_finished_future_fails(impl, pools):
    pool = pools.new(max_workers=1)
    running, gate = _running_task(pools, pool)
    assert running.cancel() is False
    assert not running.cancelled()
    gate.set()
    assert running.result(timeout=WAIT) == "held"
    assert running.cancel() is False
    assert not running.cancelled()


def test_futures_are_hashable_and_take_attributes(impl, pools):
    """The stdlib's own example keys a dict by futures; some code also tags
    futures with attributes.  Both work on taskdemo's C futures."""
    pool = pools.new(max_workers=2)
    by_future = {pool.submit(pow, i, 2): i for i in range(10)}
    for f in cf.as_completed(by_future, timeout=WAIT):
        assert f.result() == by_future[f] ** 2
    f = next(iter(by_future))
    f.tag = "mine"
    assert f.tag == "mine"
    assert f == f and f != next(k for k in by_future if k is not f)


def test_repr_names_the_state(impl, pools):
    pool = pools.new(max_workers=1)
    f = pool.submit(pow, 2, 2)
    f.result(timeout=WAIT)
    assert "finished" in repr(f).lower()


# -- timeouts ------------------------------------------------------------------


@pytest.mark.parametrize("method", ["result", "exception"])
def test_timeout_raises_timeout_error(impl, pools, method):
    """A timed wait on an unfinished future raises concurrent.futures'
    TimeoutError after at least the timeout, and the future is unharmed."""
    pool = pools.new(max_workers=1)
    running, gate = _running_task(pools, pool)
    start = time.monotonic()
    with pytest.raises(cf.TimeoutError):
        getattr(running, method)(timeout=0.05)
    assert time.monotonic() - start >= 0.04
    with pytest.raises(cf.TimeoutError):
        getattr(running, method)(timeout=0)
    assert not running.done()
    gate.set()
    assert running.result(timeout=WAIT) == "held"


def test_negative_timeout_does_not_block(impl, pools):
    """The stdlib treats a negative timeout as "do not wait" (TimeoutError at
    once); taskdemo may do that or reject it with ValueError, never block."""
    pool = pools.new(max_workers=1)
    running, gate = _running_task(pools, pool)
    with pytest.raises((cf.TimeoutError, ValueError)):
        pools.returns_within(lambda: running.result(timeout=-1))
    gate.set()
    assert running.result(timeout=WAIT) == "held"


def test_result_of_done_future_ignores_timeout(impl, pools):
    pool = pools.new(max_workers=1)
    f = pool.submit(pow, 3, 3)
    assert f.result(timeout=WAIT) == 27
    assert f.result(timeout=0) == 27
    assert f.result() == 27


# -- callbacks -----------------------------------------------------------------


def test_callbacks_run_once_in_order_with_the_future(impl, pools):
    """Callbacks added before completion run once each, in the order added,
    and receive the future itself."""
    pool = pools.new(max_workers=1)
    gate = pools.event()
    f = pool.submit(gate.wait, WAIT)
    calls = []
    all_ran = pools.event()
    f.add_done_callback(lambda fut: calls.append(("a", fut)))
    f.add_done_callback(lambda fut: calls.append(("b", fut)))
    f.add_done_callback(lambda fut: (calls.append(("c", fut)), all_ran.set()))
    gate.set()
    assert all_ran.wait(WAIT)
    pool.shutdown(wait=True)
    assert [(name, fut is f) for name, fut in calls] == [
        ("a", True),
        ("b", True),
        ("c", True),
    ]


def test_callback_on_done_future_runs_immediately(impl, pools):
    """add_done_callback on a finished future calls fn before returning, in
    the calling thread."""
    pool = pools.new(max_workers=1)
    f = pool.submit(pow, 2, 3)
    f.result(timeout=WAIT)
    seen = []
    f.add_done_callback(lambda fut: seen.append((fut.result(), threading.get_ident())))
    assert seen == [(8, threading.get_ident())]


def test_callback_on_cancel(impl, pools):
    pool = pools.new(max_workers=1)
    running, gate = _running_task(pools, pool)
    queued = pool.submit(abs, 1)
    seen = []
    queued.add_done_callback(lambda fut: seen.append(fut.cancelled()))
    assert queued.cancel()
    assert seen == [True]
    gate.set()
    running.result(timeout=WAIT)
    pool.shutdown(wait=True)
    assert seen == [True], "a cancelled future's callbacks ran twice"


def test_callback_exception_is_logged_not_raised(impl, pools, caplog):
    """An exception in a done-callback is logged on the "concurrent.futures"
    logger and goes no further: later callbacks still run, the worker
    survives, and nothing reaches threading.excepthook or the unraisable
    hook (with filterwarnings=error either would fail this test)."""
    caplog.set_level(logging.ERROR, logger="concurrent.futures")
    pool = pools.new(max_workers=1)
    gate = pools.event()
    later_ran = pools.event()
    f = pool.submit(gate.wait, WAIT)

    def bad_callback(fut):
        raise ZeroDivisionError("callback failed")

    f.add_done_callback(bad_callback)
    f.add_done_callback(lambda fut: later_ran.set())
    gate.set()
    assert later_ran.wait(WAIT)
    assert f.result(timeout=WAIT) is True
    pools.assert_usable(pool)
    # Same on an already finished future: logged in the calling thread.
    f.add_done_callback(bad_callback)
    pool.shutdown(wait=True)
    records = [
        r
        for r in caplog.records
        if r.name == "concurrent.futures" and "exception calling callback" in r.getMessage()
    ]
    assert len(records) == 2, caplog.text
    assert all(r.levelno >= logging.ERROR for r in records)
    # Like the stdlib's LOGGER.exception(): the record carries the callback's
    # exception, so the log shows its traceback.
    for r in records:
        assert r.exc_info and r.exc_info[0] is ZeroDivisionError, (
            f"logged without the callback's exception: exc_info={r.exc_info}"
        )


# -- _get_snapshot (CPython 3.15) ----------------------------------------------

# CPython 3.15's asyncio reads a concurrent future's outcome with
# Future._get_snapshot() on every wrap_future()/run_in_executor() completion.
# taskdemo's future has its own (in C) on every version; the stdlib's only
# from 3.15, so the stdlib half of these tests is skipped before.
STDLIB_HAS_SNAPSHOT = hasattr(cf.Future, "_get_snapshot")
NO_STDLIB_SNAPSHOT = "the stdlib's Future has _get_snapshot() only from CPython 3.15"

PENDING_SNAPSHOT = (False, False, None, None)
CANCELLED_SNAPSHOT = (True, True, None, None)


def _snapshot(f):
    """f._get_snapshot(), checked to be a 4-tuple whose flags are bools."""
    snap = f._get_snapshot()
    assert type(snap) is tuple and len(snap) == 4, snap
    assert type(snap[0]) is bool and type(snap[1]) is bool, snap
    return snap


def _skip_without_snapshot(impl):
    if not impl.is_taskdemo and not STDLIB_HAS_SNAPSHOT:
        pytest.skip(NO_STDLIB_SNAPSHOT)


def test_get_snapshot_in_each_state(impl, pools):
    """(done, cancelled, result, exception) as the stdlib's: pending and
    running (False, False, None, None); cancelled, before and after the
    worker passed it, (True, True, None, None); finished (True, False,
    result, None) or (True, False, None, exception), the very objects."""
    _skip_without_snapshot(impl)
    pool = pools.new(max_workers=1)
    running, gate = _running_task(pools, pool)
    box = ["the result"]
    error = LookupError("the exception")

    def fail():
        raise error

    returns = pool.submit(lambda: box)
    returns_none = pool.submit(lambda: None)
    raises = pool.submit(fail)
    cancelled = pool.submit(pow, 2, 2)
    assert cancelled.cancel()
    assert running._state == "RUNNING" and returns._state == "PENDING"
    assert _snapshot(running) == PENDING_SNAPSHOT
    for f in (returns, returns_none, raises):
        assert _snapshot(f) == PENDING_SNAPSHOT
    assert cancelled._state == "CANCELLED"
    assert _snapshot(cancelled) == CANCELLED_SNAPSHOT
    gate.set()
    pool.shutdown(wait=True)
    assert cancelled._state == "CANCELLED_AND_NOTIFIED"
    assert _snapshot(cancelled) == CANCELLED_SNAPSHOT
    assert _snapshot(running) == (True, False, "held", None)
    snap = _snapshot(returns)
    assert snap == (True, False, box, None) and snap[2] is box
    assert _snapshot(returns_none) == (True, False, None, None)
    snap = _snapshot(raises)
    assert snap == (True, False, None, error) and snap[3] is error


def test_get_snapshot_matches_the_stdlib_method(taskdemo):
    """On 3.15, the stdlib's own Future._get_snapshot() run on taskdemo's
    future (it reads our `_state`, `_result`, `_exception` and takes our
    `_condition`) gives what ours gives, in every state; and ours on a
    hand-completed taskdemo.Future gives what the stdlib's gives on a
    cf.Future completed the same way (the stdlib's own test)."""
    if not STDLIB_HAS_SNAPSHOT:
        pytest.skip(NO_STDLIB_SNAPSHOT)
    stdlib_snapshot = cf.Future._get_snapshot
    assert taskdemo.Future._get_snapshot is not stdlib_snapshot

    def same(a, b):
        return len(a) == len(b) and all(x is y for x, y in zip(a, b))

    error = ValueError("test error")
    result = ["result"]
    for complete in (
        lambda f: None,
        lambda f: f.set_running_or_notify_cancel(),
        lambda f: f.set_result(result),
        lambda f: f.set_result(None),
        lambda f: f.set_exception(error),
        lambda f: f.cancel(),
        lambda f: (f.cancel(), f.set_running_or_notify_cancel()),
    ):
        ours, theirs = taskdemo.Future(), cf.Future()
        complete(ours)
        complete(theirs)
        assert ours._state == theirs._state
        assert same(ours._get_snapshot(), stdlib_snapshot(theirs)), ours._state
        # Last: the stdlib's method hands our future's _condition out.
        assert same(ours._get_snapshot(), stdlib_snapshot(ours)), ours._state


def test_get_snapshot_keeps_no_references(taskdemo):
    """The C snapshot takes a reference to each item for its tuple and no
    more: after 10,000 snapshots the result and the exception are held by
    as many references as before."""
    result, error = ["result"], KeyError("error")
    returned, raised = taskdemo.Future(), taskdemo.Future()
    returned.set_result(result)
    raised.set_exception(error)
    before = sys.getrefcount(result), sys.getrefcount(error)
    for _ in range(10_000):
        returned._get_snapshot()
        raised._get_snapshot()
    assert (sys.getrefcount(result), sys.getrefcount(error)) == before


def test_get_snapshot_is_never_torn(impl, pools):
    """A worker completes futures while another thread snapshots them over
    and over: a snapshot saying done always carries that future's own
    result (or exception) and never a cancel, and one saying not done
    carries nothing.  Each task drops the GIL once (time.sleep(0)) and the
    switch interval is tiny, so the two threads interleave throughout."""
    _skip_without_snapshot(impl)
    n = 2000
    pool = pools.new(max_workers=2)
    gate = pools.event()
    ready = pools.barrier(2)
    results = [[i] for i in range(n)]
    errors = [KeyError(i) for i in range(n)]

    def task(i):
        assert gate.wait(WAIT)
        time.sleep(0)
        if i % 3 == 0:
            raise errors[i]
        return results[i]

    futures = [pool.submit(task, i) for i in range(n)]
    seen = {"pending": 0, "done": 0}
    bad = []

    def snapshotter():
        ready.wait()
        deadline = time.monotonic() + WAIT
        left = list(range(n))
        while left and time.monotonic() < deadline:
            still = []
            for i in left:
                done, cancelled, result, exception = futures[i]._get_snapshot()
                if not done:
                    seen["pending"] += 1
                    if cancelled or result is not None or exception is not None:
                        bad.append((i, "pending", cancelled, result, exception))
                    still.append(i)
                    continue
                seen["done"] += 1
                want = (None, errors[i]) if i % 3 == 0 else (results[i], None)
                if cancelled or result is not want[0] or exception is not want[1]:
                    bad.append((i, "done", cancelled, result, exception))
            left = still

    old_interval = sys.getswitchinterval()
    sys.setswitchinterval(1e-6)
    try:
        watcher = threading.Thread(target=snapshotter, name="snapshotter")
        watcher.start()
        ready.wait()
        gate.set()
        watcher.join(WAIT * 2)
    finally:
        sys.setswitchinterval(old_interval)
    assert not watcher.is_alive(), "snapshotter still running: possible deadlock"
    assert not bad, f"torn snapshots (first 5 of {len(bad)}): {bad[:5]}"
    assert seen["done"] == n, f"not every future was seen done: {seen}"
    for f in futures:
        assert f.done()


# -- as_completed / wait -------------------------------------------------------


def test_as_completed_yields_in_completion_order(impl, pools):
    pool = pools.new(max_workers=2)
    gate = pools.event()
    slow = pool.submit(gate.wait, WAIT)
    fast = pool.submit(pow, 2, 2)
    it = cf.as_completed([slow, fast], timeout=WAIT)
    assert next(it) is fast  # slow cannot finish before the gate opens
    gate.set()
    assert next(it) is slow
    with pytest.raises(StopIteration):
        next(it)


def test_as_completed_includes_already_done_and_dedups(impl, pools):
    pool = pools.new(max_workers=2)
    fs = [pool.submit(pow, i, 2) for i in range(10)]
    for f in fs:
        f.result(timeout=WAIT)
    got = list(cf.as_completed(fs + fs, timeout=WAIT))
    assert sorted(got, key=fs.index) == fs


def test_as_completed_timeout(impl, pools):
    pool = pools.new(max_workers=1)
    running, gate = _running_task(pools, pool)
    with pytest.raises(cf.TimeoutError):
        list(cf.as_completed([running], timeout=0.05))
    gate.set()


def test_wait_first_completed(impl, pools):
    pool = pools.new(max_workers=2)
    gate = pools.event()
    slow = pool.submit(gate.wait, WAIT)
    fast = pool.submit(pow, 2, 2)
    done, not_done = cf.wait([slow, fast], timeout=WAIT, return_when=cf.FIRST_COMPLETED)
    assert done == {fast} and not_done == {slow}
    gate.set()


def test_wait_first_exception(impl, pools):
    """FIRST_EXCEPTION returns once a future fails, not when the first one
    succeeds."""
    pool = pools.new(max_workers=3)
    gate = pools.event()
    fail_gate = pools.event()
    ok = pool.submit(pow, 2, 2)
    assert ok.result(timeout=WAIT) == 4

    def fail():
        assert fail_gate.wait(WAIT)
        raise ValueError("first exception")

    bad = pool.submit(fail)
    slow = pool.submit(gate.wait, WAIT)
    fail_gate.set()
    done, not_done = cf.wait([ok, bad, slow], timeout=WAIT, return_when=cf.FIRST_EXCEPTION)
    assert done == {ok, bad} and not_done == {slow}
    assert isinstance(bad.exception(timeout=0), ValueError)
    gate.set()


def test_wait_first_exception_without_exception_waits_for_all(impl, pools):
    pool = pools.new(max_workers=2)
    fs = [pool.submit(pow, i, 2) for i in range(5)]
    done, not_done = cf.wait(fs, timeout=WAIT, return_when=cf.FIRST_EXCEPTION)
    assert done == set(fs) and not not_done


def test_wait_all_completed(impl, pools):
    pool = pools.new(max_workers=2)
    gate = pools.event()
    slow = pool.submit(gate.wait, WAIT)
    quick = [pool.submit(pow, i, 2) for i in range(5)]
    done, not_done = cf.wait(quick + [slow], timeout=0.05, return_when=cf.ALL_COMPLETED)
    assert not_done == {slow}
    gate.set()
    done, not_done = cf.wait(quick + [slow], timeout=WAIT, return_when=cf.ALL_COMPLETED)
    assert done == set(quick) | {slow} and not not_done


def test_wait_counts_cancelled_futures_as_done(impl, pools):
    """A future cancelled while queued counts as done for wait() once the
    pool has passed it."""
    pool = pools.new(max_workers=1)
    running, gate = _running_task(pools, pool)
    queued = pool.submit(abs, -1)
    assert queued.cancel()
    gate.set()
    pool.shutdown(wait=True)
    done, not_done = cf.wait([running, queued], timeout=WAIT)
    assert done == {running, queued} and not not_done
