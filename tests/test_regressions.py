"""Regression tests for defects found in review, each named after the bug.

Every scenario that could hang runs in a child interpreter with a timeout,
so a regression shows as "possible deadlock" instead of a stuck suite.
"""

from __future__ import annotations

import sys
import threading
from fractions import Fraction

import pytest

WAIT = 10.0

FORK_WHILE_LOGGING_AND_SUBMITTING = """
import logging, os, threading, warnings
warnings.simplefilter("ignore", DeprecationWarning)  # 3.12+: fork + threads
import taskdemo

ex = taskdemo.ThreadPoolExecutor(2)
for i in range(500):
    logging.getLogger("l%d" % i)
stop = False

def logger_thread():
    root = logging.getLogger()
    while not stop:
        root.setLevel(logging.INFO)      # holds logging's module lock

def submit_thread():
    while not stop:
        ex.submit(int).result()

threads = [threading.Thread(target=logger_thread),
           threading.Thread(target=submit_thread)]
for t in threads:
    t.start()
for _ in range(60):
    pid = os.fork()
    if pid == 0:
        os._exit(0)
    os.waitpid(pid, 0)
stop = True
for t in threads:
    t.join()
ex.shutdown()
print("forked 60 times")
"""


@pytest.mark.fork
def test_fork_does_not_deadlock_with_other_fork_hooks(run_in_subprocess):
    """The pools' locks used to be taken in an os.register_at_fork hook,
    i.e. before other Python hooks (logging's) that may give up the GIL:
    a submitter then blocked on a pool lock while holding the GIL the
    forking thread needed.  The locks are now taken inside fork()."""
    rc, out, err = run_in_subprocess(FORK_WHILE_LOGGING_AND_SUBMITTING, 60)
    assert rc == 0 and "forked 60 times" in out, out + err


CHILD_CALLBACK_TOUCHES_OTHER_POOL = """
import sys, os, threading, warnings
warnings.simplefilter("ignore", DeprecationWarning)
import taskdemo

b = taskdemo.ThreadPoolExecutor(1)
a = taskdemo.ThreadPoolExecutor(1)
gate = threading.Event()
a.submit(gate.wait)                       # occupies a's only worker
queued = a.submit(int)                    # still queued at fork time
calls = []
queued.add_done_callback(lambda f: calls.append(b._stats()))
pid = os.fork()
if pid == 0:
    try:
        queued.result(timeout=5)
    except RuntimeError as e:
        print("child: inherited future failed:", "forked" in str(e))
    print("child: callbacks run:", len(calls))
    with taskdemo.ThreadPoolExecutor(1) as fresh:
        print("child: new pool:", fresh.submit(pow, 2, 3).result(timeout=5))
    sys.stdout.flush()   # os._exit skips the flush; a pipe buffers
    os._exit(0)
gate.set()
assert queued.result(timeout=5) == 0
_, status = os.waitpid(pid, 0)
print("parent: child status", status, "callbacks", len(calls))
a.shutdown(); b.shutdown()
"""


@pytest.mark.fork
def test_fork_child_fails_inherited_futures_quietly(run_in_subprocess):
    """In the child, failing an inherited future used to run its callbacks
    while other pools were still locked, so a callback touching one hung the
    child.  Inherited futures now fail without callbacks (they were meant
    for the parent), and the parent's future completes normally."""
    rc, out, err = run_in_subprocess(CHILD_CALLBACK_TOUCHES_OTHER_POOL, 30)
    assert rc == 0, out + err
    assert "child: inherited future failed: True" in out
    assert "child: callbacks run: 0" in out
    assert "child: new pool: 8" in out
    assert "parent: child status 0 callbacks 1" in out


CHILD_AFTER_AS_COMPLETED_HELD_CONDITION = """
import sys, os, threading, warnings, concurrent.futures as cf
warnings.simplefilter("ignore", DeprecationWarning)
import taskdemo

pool = taskdemo.ThreadPoolExecutor(1)
f = pool.submit(pow, 2, 2)
f.result()
cond = f._condition                 # the Condition all futures share
held, release = threading.Event(), threading.Event()

def hold():
    with cond:
        held.set()
        release.wait()

t = threading.Thread(target=hold)
t.start()
held.wait()
pid = os.fork()
if pid == 0:
    # The parent's holder does not exist here; futures must not use its lock.
    with taskdemo.ThreadPoolExecutor(1) as p2:
        fs = [p2.submit(pow, 3, i) for i in range(3)]
        print("child:", sorted(x.result() for x in cf.as_completed(fs, 5)))
    sys.stdout.flush()   # os._exit skips the flush; a pipe buffers
    os._exit(0)
release.set()
t.join()
_, status = os.waitpid(pid, 0)
print("parent: child status", status)
pool.shutdown()
"""


@pytest.mark.fork
def test_fork_child_gets_a_fresh_shared_condition(run_in_subprocess):
    """A thread of the parent holding the futures' shared condition at fork
    time used to leave it locked forever in the child; as_completed there
    then hung.  The child now replaces the shared condition."""
    rc, out, err = run_in_subprocess(CHILD_AFTER_AS_COMPLETED_HELD_CONDITION,
                                     30)
    assert rc == 0, out + err
    assert "child: [1, 3, 9]" in out
    assert "parent: child status 0" in out


SHUTDOWN_FROM_TWO_TASKS = """
import threading
from taskdemo import ThreadPoolExecutor
pool = ThreadPoolExecutor(2)
barrier = threading.Barrier(2)
def stop():
    barrier.wait()
    pool.shutdown(wait=True)
    return "returned"
fs = [pool.submit(stop) for _ in range(2)]
print([f.result(timeout=10) for f in fs])
pool.shutdown(wait=True)
"""


def test_shutdown_wait_from_two_tasks_does_not_hang(run_in_subprocess):
    """Two tasks calling shutdown(wait=True) used to wait for each other
    forever; a worker's shutdown now returns without waiting."""
    rc, out, err = run_in_subprocess(SHUTDOWN_FROM_TWO_TASKS, 30)
    assert rc == 0 and "['returned', 'returned']" in out, out + err


def test_cancel_releases_the_call(taskdemo):
    """A cancelled future used to keep fn and its arguments alive until a
    worker dequeued it (the stdlib drops its work item)."""
    gate = threading.Event()
    payload = object()
    with taskdemo.ThreadPoolExecutor(max_workers=1) as pool:
        pool.submit(gate.wait, WAIT)
        queued = pool.submit(id, payload)
        before = sys.getrefcount(payload)
        assert queued.cancel()
        assert sys.getrefcount(payload) == before - 1
        gate.set()


def test_shutdown_cancel_futures_releases_the_call(taskdemo):
    gate = threading.Event()
    payload = object()
    pool = taskdemo.ThreadPoolExecutor(max_workers=1)
    pool.submit(gate.wait, WAIT)
    queued = pool.submit(id, payload)
    before = sys.getrefcount(payload)
    pool.shutdown(wait=False, cancel_futures=True)
    assert queued.cancelled()
    assert sys.getrefcount(payload) == before - 1
    gate.set()
    pool.shutdown(wait=True)


@pytest.mark.parametrize("timeout", [threading.TIMEOUT_MAX, 1e12, 10**30,
                                     float("inf")])
def test_huge_timeouts_mean_no_limit(taskdemo, timeout):
    """A timeout of years made "now + timeout" overflow int64, so
    result(timeout=threading.TIMEOUT_MAX) could time out at once."""
    with taskdemo.ThreadPoolExecutor(max_workers=1) as pool:
        gate = threading.Event()
        f = pool.submit(gate.wait, WAIT)
        threading.Timer(0.05, gate.set).start()
        assert f.result(timeout=timeout) is True
        assert f.exception(timeout=timeout) is None


@pytest.mark.parametrize("timeout", [Fraction(1, 2), 0.5, 1])
def test_real_number_timeouts(taskdemo, timeout):
    with taskdemo.ThreadPoolExecutor(max_workers=1) as pool:
        assert pool.submit(pow, 2, 3).result(timeout=timeout) == 8
        assert list(pool.map(abs, [-1], timeout=timeout)) == [1]


@pytest.mark.parametrize("timeout", ["1", b"1", [1]])
def test_non_number_timeouts_are_rejected(taskdemo, timeout):
    with taskdemo.ThreadPoolExecutor(max_workers=1) as pool:
        f = pool.submit(pow, 2, 3)
        with pytest.raises(TypeError):
            f.result(timeout=timeout)
        with pytest.raises(TypeError):
            pool.map(abs, [1], timeout=timeout)


class Box:
    """A plain GC-tracked object to build cycles with."""


def _collected(make_cycle) -> bool:
    """Builds a cycle through a finished future, drops it, collects, and
    says whether it was freed."""
    import gc
    import weakref

    ref = weakref.ref(make_cycle())
    gc.collect()
    return ref() is None


@pytest.mark.parametrize("how", ["result", "attribute", "closure",
                                 "callback", "exception"])
def test_untracked_futures_do_not_leak_cycles(taskdemo, how):
    """Pool futures start untracked by the GC (full collections used to
    walk every queued future).  Each way a finished future can sit in a
    cycle must make it tracked again, or the cycle would leak."""
    with taskdemo.ThreadPoolExecutor(max_workers=1) as pool:
        def make_cycle():
            box = Box()
            if how == "result":
                f = pool.submit(lambda: box)
                f.result(timeout=WAIT)
                box.future = f
            elif how == "attribute":
                f = pool.submit(pow, 2, 3)
                f.result(timeout=WAIT)
                f.box = box
                box.future = f
            elif how == "closure":
                holder = [box]
                f = pool.submit(lambda: holder)
                holder.append(f)
                f.result(timeout=WAIT)
            elif how == "callback":
                gate = threading.Event()
                pool.submit(gate.wait, WAIT)
                f = pool.submit(pow, 2, 3)
                f.add_done_callback(lambda _: box)
                box.future = f
                gate.set()
                f.result(timeout=WAIT)
            else:
                def fail():
                    raise ValueError(box)
                f = pool.submit(fail)
                f.exception(timeout=WAIT)
                box.future = f
            return box

        assert _collected(make_cycle)


BUSY_POOL_STARVES_NEW_THREADS = """
import os, sys, threading, time
import taskdemo

def again(pool):
    pool.submit(again, pool)   # the queue is never empty

worst = 0.0
with taskdemo.ThreadPoolExecutor(1) as pool:
    pool.submit(again, pool)
    for _ in range(20):
        t0 = time.monotonic()
        t = threading.Thread(target=lambda: None)
        t.start()
        t.join()
        worst = max(worst, time.monotonic() - t0)
    print("worst", worst)
    sys.stdout.flush()
    os._exit(0)   # the pool would run `again` for ever
"""


def test_busy_pool_does_not_starve_other_threads_of_the_gil(run_in_subprocess):
    """A worker running short tasks back to back gave the GIL up every
    5 ms and took it straight back; CPython's waiter asks the holder to
    hand the GIL over only if no switch happened meanwhile, and each of
    those counted as one, so a thread starting meanwhile waited up to 5.7 s
    (3.13) or 17.6 s (3.14) for its first GIL, and CPython's
    test_hang_global_shutdown_lock hung.  Workers now let waiters in
    through the eval loop, which hands the GIL over when asked: a start
    waits for one switch interval (5 ms), give or take a busy machine."""
    rc, out, err = run_in_subprocess(BUSY_POOL_STARVES_NEW_THREADS, 120)
    assert rc == 0, err
    worst = float(out.split()[-1])
    assert worst < 1.0, f"a thread waited {worst:.2f} s to start"
