"""ThreadPoolExecutor.map() against the stdlib's, its oracle.

taskdemo's map() runs one C job per call: the inputs are collected at the
call, a few runner tasks claim the items, and a C iterator hands out the
results in order.  Everything observable must match the stdlib's map(),
which submits one future per item and returns a generator: when inputs are
consumed and errors raised, what runs and what is cancelled after an
exception, a timeout, close() or drop, shutdown(cancel_futures=True),
Ctrl-C, interpreter exit.  Only taskdemo's own additions (contextvars in
items, timeline records, fork) are tested on taskdemo alone.

Items that must still be running, or not yet started, at some moment are
held by Events; "ran" lists record which items ever ran.  A pool with one
worker runs the items in order, so "not started" is well defined.
"""

from __future__ import annotations

import concurrent.futures as cf
import contextvars
import gc
import operator
import signal
import sys
import threading
import time
import weakref

import pytest

WAIT = 10.0

# Executor.map(..., buffersize=) is new in 3.14: from there on the stdlib is
# the oracle for it too.
STDLIB_HAS_BUFFERSIZE = sys.version_info >= (3, 14)


def blocking_items(pools, block_at, n=10):
    """fn for map(fn, range(n)) on a one-worker pool: item `block_at` waits
    for `gate` (after setting `started`); every item that runs is recorded
    in `ran`."""
    ran = []
    started = pools.event()
    gate = pools.event()

    def fn(i):
        ran.append(i)
        if i == block_at:
            started.set()
            assert gate.wait(WAIT)
        return i * 10

    return fn, ran, started, gate


# -- inputs ------------------------------------------------------------------


def test_results_in_input_order(impl, pools):
    """Later items finish first; results still come in input order."""
    pool = pools.new(max_workers=4)
    done = [pools.event() for _ in range(4)]

    def fn(i):
        if i < 3:
            assert done[i + 1].wait(WAIT)
        done[i].set()
        return -i

    assert list(pool.map(fn, range(4), timeout=WAIT)) == [0, -1, -2, -3]


def test_several_iterables_of_different_lengths(impl, pools):
    """zip() semantics: the shortest input ends it, and zip has taken one
    more item from the inputs before it (as the stdlib's zip does)."""
    pool = pools.new(max_workers=2)
    assert list(pool.map(pow, [1, 2, 3, 4], [2, 3, 2])) == [1, 8, 9]
    assert list(pool.map(lambda a, b, c: a + b + c, "abc", "de", "fghi")) \
        == ["adf", "beg"]
    first = iter(range(10))
    assert list(pool.map(pow, first, [2, 2])) == [0, 1]
    assert next(first) == 3   # 2 was taken, then the second input ended


def test_empty_inputs(impl, pools):
    pool = pools.new(max_workers=2)
    assert list(pool.map(abs, [])) == []
    assert list(pool.map(abs)) == []
    assert list(pool.map(pow, [1, 2], [])) == []
    assert list(pool.map(fn=abs)) == []


def test_inputs_consumed_at_the_call(impl, pools):
    pool = pools.new(max_workers=2)
    consumed = []

    def gen():
        for i in range(5):
            consumed.append(i)
            yield -i

    it = pool.map(abs, gen())
    assert consumed == [0, 1, 2, 3, 4]
    assert list(it) == [0, 1, 2, 3, 4]


def test_iterable_error_raised_by_map_earlier_items_run(impl, pools):
    """An error from the inputs comes out of map() itself; the items taken
    before it still run (the stdlib had submitted them)."""
    pool = pools.new(max_workers=1)
    ran = []

    def gen():
        yield 1
        yield 2
        raise LookupError("input broke")

    with pytest.raises(LookupError, match="input broke"):
        pool.map(ran.append, gen())
    pool.shutdown(wait=True)
    assert ran == [1, 2]


def test_non_iterable_is_type_error_at_call(impl, pools):
    pool = pools.new(max_workers=1)
    with pytest.raises(TypeError):
        pool.map(abs, 5)
    with pytest.raises(TypeError):
        pool.map(pow, [1], 5)
    pools.assert_usable(pool)


def test_non_callable_is_type_error_at_once(taskdemo):
    """taskdemo's documented deviation: the stdlib would raise TypeError
    from each call while iterating."""
    with taskdemo.ThreadPoolExecutor(max_workers=1) as pool:
        with pytest.raises(TypeError, match="callable"):
            pool.map(42, [1, 2])
        with pytest.raises(TypeError):
            pool.map()
        with pytest.raises(TypeError):
            pool.map(abs, [1], fn=abs)
        with pytest.raises(TypeError):
            pool.map(abs, [1], bogus=1)
        assert list(pool.map(abs, [-1])) == [1]


def test_after_shutdown_runtime_error_at_call(impl, pools):
    """RuntimeError from map() itself, not from the iteration; with no
    inputs nothing is submitted, so nothing is refused either."""
    pool = pools.new(max_workers=1)
    pool.shutdown(wait=True)
    with pytest.raises(RuntimeError):
        pool.map(abs, [1])
    assert list(pool.map(abs, [])) == []


def test_signature_matches_the_stdlib(taskdemo):
    """3.14's, buffersize included; before 3.14 the stdlib's map has no
    buffersize, and ours has it all the same (last, keyword-only)."""
    import inspect

    ours = inspect.signature(taskdemo.ThreadPoolExecutor.map)
    theirs = [(p.name, p.kind, p.default) for p in
              inspect.signature(cf.ThreadPoolExecutor.map)
              .parameters.values()][1:]
    if not STDLIB_HAS_BUFFERSIZE:
        theirs.append(("buffersize", inspect.Parameter.KEYWORD_ONLY, None))
    assert [(p.name, p.kind, p.default)
            for p in ours.parameters.values()][1:] == theirs


# -- exceptions --------------------------------------------------------------


def test_exception_at_item_k(impl, pools):
    """Item 1 raises: results before it come out, then its exception; the
    item already running (2) finishes, the ones not started never run, and
    the iteration is over."""
    pool = pools.new(max_workers=1)
    ran = []
    started = pools.event()
    gate = pools.event()

    def fn(i):
        ran.append(i)
        if i == 1:
            raise KeyError(i)
        if i == 2:
            started.set()
            assert gate.wait(WAIT)
        return i

    it = pool.map(fn, range(10))
    assert next(it) == 0
    assert started.wait(WAIT)
    with pytest.raises(KeyError):
        next(it)
    gate.set()
    pool.shutdown(wait=True)
    assert ran == [0, 1, 2]
    with pytest.raises(StopIteration):
        next(it)


def test_items_after_the_exception_that_ran_are_not_yielded(impl, pools):
    pool = pools.new(max_workers=1)
    all_ran = pools.event()

    def fn(i):
        if i == 4:
            all_ran.set()
        if i == 0:
            raise ValueError("first")
        return i

    it = pool.map(fn, range(5))
    assert all_ran.wait(WAIT)
    pool.shutdown(wait=True)
    with pytest.raises(ValueError, match="first"):
        next(it)
    assert list(it) == []


def test_base_exceptions_from_items_come_back(impl, pools):
    """Like the stdlib's work item, a KeyboardInterrupt or SystemExit raised
    by the call is kept and raised when its result is reached."""
    pool = pools.new(max_workers=2)

    def fn(exc):
        raise exc

    for exc in (KeyboardInterrupt, SystemExit):
        with pytest.raises(exc):
            list(pool.map(fn, [exc]))
    pools.assert_usable(pool)


def test_broken_pool_raises_when_reached(impl, pools):
    """A failing initializer breaks the pool: items that did not run raise
    BrokenThreadPool when reached."""
    def init():
        raise OSError("no")

    pool = pools.new(max_workers=1, initializer=init)
    try:
        it = pool.map(abs, [1, 2])
    except cf.BrokenExecutor:
        return   # broken before the call: refused at once
    with pytest.raises(cf.BrokenExecutor):
        list(it)


# -- timeout -----------------------------------------------------------------


def test_timeout_cancels_items_not_started(impl, pools):
    """Item 1 is still running at the deadline: TimeoutError, the iteration
    ends, item 1 finishes and later items never run."""
    pool = pools.new(max_workers=1)
    fn, ran, started, gate = blocking_items(pools, block_at=1)
    it = pool.map(fn, range(10), timeout=0.2)
    assert next(it) == 0
    assert started.wait(WAIT)
    with pytest.raises(cf.TimeoutError):
        next(it)
    gate.set()
    pool.shutdown(wait=True)
    assert ran == [0, 1]
    with pytest.raises(StopIteration):
        next(it)


def test_timeout_counts_from_the_call(impl, pools):
    """The deadline is the map call plus timeout, not the first next() plus
    timeout; results already done still come out after it."""
    pool = pools.new(max_workers=1)
    fn, ran, started, gate = blocking_items(pools, block_at=2)
    t0 = time.monotonic()
    it = pool.map(fn, range(4), timeout=0.5)
    assert started.wait(WAIT)
    time.sleep(max(0.0, 0.6 - (time.monotonic() - t0)))   # past the deadline
    assert next(it) == 0      # done in time, or not: done now
    assert next(it) == 10
    before = time.monotonic()
    with pytest.raises(cf.TimeoutError):
        next(it)
    assert time.monotonic() - before < 0.3   # no fresh 0.5 s
    gate.set()


def test_timeout_of_zero_or_less(impl, pools):
    pool = pools.new(max_workers=1)
    fn, ran, started, gate = blocking_items(pools, block_at=0, n=2)
    it = pool.map(fn, range(2), timeout=-1)
    with pytest.raises(cf.TimeoutError):
        next(it)
    gate.set()
    pool.shutdown(wait=True)
    assert ran in ([0], [])


# -- ending the iteration early ----------------------------------------------


@pytest.mark.parametrize("how", ["close", "drop"])
def test_started_iterator_closed_or_dropped_cancels_the_rest(impl, pools,
                                                            how):
    pool = pools.new(max_workers=1)
    fn, ran, started, gate = blocking_items(pools, block_at=1)
    it = pool.map(fn, range(10))
    assert next(it) == 0
    assert started.wait(WAIT)
    if how == "close":
        it.close()
        assert list(it) == []
    else:
        del it
        gc.collect()
    gate.set()
    pool.shutdown(wait=True)
    assert ran == [0, 1]


@pytest.mark.parametrize("how", ["close", "drop"])
def test_iterator_never_started_runs_everything(impl, pools, how):
    """A generator never started runs no `finally`: the stdlib cancels
    nothing then, so every item still runs."""
    pool = pools.new(max_workers=1)
    fn, ran, started, gate = blocking_items(pools, block_at=1)
    it = pool.map(fn, range(10))
    assert started.wait(WAIT)
    if how == "close":
        it.close()
        assert list(it) == []
    else:
        del it
        gc.collect()
    gate.set()
    pool.shutdown(wait=True)
    assert ran == list(range(10))


def test_exhausted_iterator_stays_exhausted(impl, pools):
    pool = pools.new(max_workers=2)
    it = pool.map(abs, [-1, -2])
    assert list(it) == [1, 2]
    assert list(it) == []
    it.close()


def test_next_while_another_thread_waits_is_value_error(impl, pools):
    """As with a generator: of two threads calling next() at once, the one
    that comes second gets ValueError while the first waits; so does
    close() meanwhile."""
    pool = pools.new(max_workers=1)
    fn, ran, started, gate = blocking_items(pools, block_at=0, n=2)
    it = pool.map(fn, range(2))
    outcomes = []
    refused = pools.event()

    def consume():
        try:
            outcomes.append(next(it))
        except ValueError as exc:
            outcomes.append(exc)
            refused.set()

    threads = [threading.Thread(target=consume) for _ in range(2)]
    for t in threads:
        t.start()
    assert refused.wait(WAIT)
    with pytest.raises(ValueError):
        it.close()
    gate.set()
    for t in threads:
        t.join(WAIT)
    assert sorted(outcomes, key=repr)[0] == 0
    assert isinstance(sorted(outcomes, key=repr)[1], ValueError)
    assert list(it) == [10]


# -- shutdown ----------------------------------------------------------------


def test_shutdown_cancel_futures_while_iterating(impl, pools):
    """Items not started are cancelled: the running one still yields its
    result, the next raises CancelledError, and that ends the iteration."""
    pool = pools.new(max_workers=1)
    fn, ran, started, gate = blocking_items(pools, block_at=1)
    it = pool.map(fn, range(10))
    assert next(it) == 0
    assert started.wait(WAIT)
    pool.shutdown(wait=False, cancel_futures=True)
    gate.set()
    assert next(it) == 10
    with pytest.raises(cf.CancelledError):
        next(it)
    assert list(it) == []
    pool.shutdown(wait=True)
    assert ran == [0, 1]


def test_shutdown_cancel_futures_wakes_a_waiting_iterator(impl, pools):
    """The iterator waits for an item queued behind a busy worker; when
    shutdown cancels it, the wait ends with CancelledError."""
    pool = pools.new(max_workers=1)
    gate = pools.event()
    started = pools.event()
    pool.submit(lambda: (started.set(), gate.wait(WAIT)))
    assert started.wait(WAIT)
    ran = []
    it = pool.map(ran.append, range(3))
    box = []

    def consume():
        try:
            box.append(list(it))
        except BaseException as exc:
            box.append(exc)

    consumer = threading.Thread(target=consume)
    consumer.start()
    pool.shutdown(wait=False, cancel_futures=True)
    consumer.join(WAIT)
    assert not consumer.is_alive(), "the iterator was not woken"
    assert isinstance(box[0], cf.CancelledError)
    gate.set()
    pool.shutdown(wait=True)
    assert ran == []


def test_shutdown_wait_waits_for_every_item(impl, pools):
    pool = pools.new(max_workers=2)
    ran = []
    it = pool.map(lambda i: (time.sleep(0.001), ran.append(i)), range(40))
    pool.shutdown(wait=True)
    assert sorted(ran) == list(range(40))
    assert len(list(it)) == 40


EXIT_SCRIPT = """
import os, threading
{import_line}
gate = threading.Event()
def fn(i):
    if i == 0:
        gate.wait(10)
    os.write(1, b"item %d\\n" % i)
pool = Executor(max_workers=1)
it = pool.map(fn, range(5))      # never iterated
gate.set()
os.write(1, b"exiting\\n")
"""


def test_interpreter_exit_runs_queued_items(impl, run_in_subprocess):
    rc, out, err = run_in_subprocess(
        EXIT_SCRIPT.format(import_line=impl.import_line), timeout=30)
    assert rc == 0, err
    lines = out.splitlines()
    assert [l for l in lines if l.startswith("item")] == \
        [f"item {i}" for i in range(5)], out
    assert "exiting" in lines


# -- re-entrancy and scale ---------------------------------------------------


def test_map_from_a_task_of_the_same_pool(impl, pools):
    """The outer task waits for the inner map's results; a free worker runs
    them (no runner waits on anything)."""
    pool = pools.new(max_workers=2)
    outer = pool.submit(
        lambda: list(pool.map(pow, range(50), [2] * 50, timeout=WAIT)))
    assert pools.returns_within(lambda: outer.result(WAIT)) == \
        [i * i for i in range(50)]
    nested = pool.submit(
        lambda: list(pool.map(lambda x: x + 1, range(1000))))
    assert pools.returns_within(lambda: nested.result(WAIT)) == \
        list(range(1, 1001))


def test_many_items(impl, pools):
    n = 100_000 if impl.is_taskdemo else 5_000
    pool = pools.new(max_workers=2)
    assert list(pool.map(operator.neg, range(n))) == [-i for i in range(n)]
    assert list(pool.map(operator.add, range(n), range(n))) == \
        [2 * i for i in range(n)]


def test_many_maps_from_many_threads(impl, pools):
    pool = pools.new(max_workers=3)
    barrier = pools.barrier(8)
    results = {}

    def client(k):
        barrier.wait()
        results[k] = [list(pool.map(divmod, [k] * 20, [3] * 20))
                      for _ in range(20)]

    threads = [threading.Thread(target=client, args=(k,)) for k in range(8)]
    for t in threads:
        t.start()
    for t in threads:
        t.join(WAIT)
    for k in range(8):
        assert results[k] == [[divmod(k, 3)] * 20] * 20


# -- references and the garbage collector ------------------------------------


class Payload:
    pass


def test_refcounts_back_to_baseline(impl, pools):
    """Arguments, results and exceptions are released once the iteration
    ends, however it ends."""
    pool = pools.new(max_workers=2)
    arg, res = Payload(), Payload()
    err = ValueError("payload")
    base = sys.getrefcount(arg), sys.getrefcount(res), sys.getrefcount(err)

    def echo(a, r):
        return r

    def fail(a):
        raise err

    got = list(pool.map(echo, [arg] * 500, [res] * 500))
    assert all(r is res for r in got)
    del got
    with pytest.raises(ValueError):
        list(pool.map(fail, [arg] * 50))
    err.__traceback__ = None   # its frames hold `a`
    it = pool.map(echo, [arg] * 50, [res] * 50)
    next(it)
    it.close()
    del it
    it = pool.map(echo, [arg] * 50, [res] * 50)   # never started
    del it
    pool.shutdown(wait=True)
    gc.collect()
    assert (sys.getrefcount(arg), sys.getrefcount(res),
            sys.getrefcount(err)) == base


def test_gc_collects_an_iterator_in_a_cycle(impl, pools):
    """fn and the results refer back to the iterator: once the items ran
    and the names are gone, the collector frees all of it."""
    pool = pools.new(max_workers=2)
    marker = Payload()
    box = [marker]
    it = pool.map(lambda _, box=box: box, range(3))
    box.append(it)
    pool.shutdown(wait=True)   # every item ran: results hold box
    alive = weakref.ref(marker)
    del it, box, marker
    gc.collect()
    assert alive() is None


def test_gc_collects_a_started_iterator_in_a_cycle(impl, pools):
    """A started iterator that its own fn refers to stays alive while the
    items run (the workers hold fn, as the stdlib's work items do), so they
    all run; once they did, the collector frees it."""
    pool = pools.new(max_workers=1)
    fn, ran, started, gate = blocking_items(pools, block_at=1)
    marker = Payload()
    box = [marker]
    it = pool.map(lambda i, box=box: (fn(i), box), range(10))
    box.append(it)
    assert next(it)[1] is box
    assert started.wait(WAIT)
    alive = weakref.ref(marker)
    del it, box, marker
    gc.collect()
    assert alive() is not None   # reachable from the running item's fn
    gate.set()
    pool.shutdown(wait=True)
    gc.collect()
    assert alive() is None
    assert ran == list(range(10))


def test_gc_during_items(impl, pools):
    """The collector walks a job while its items run (and reach back)."""
    pool = pools.new(max_workers=2)

    def fn(i):
        if i % 50 == 0:
            gc.collect()
        return [i]

    assert list(pool.map(fn, range(500))) == [[i] for i in range(500)]


# -- Ctrl-C ------------------------------------------------------------------


INTERRUPT_SCRIPT = """
import sys, threading, time
{import_line}
gate = threading.Event()
ran = []
def fn(i):
    ran.append(i)
    if i == 0:
        gate.wait(30)
    return i
pool = Executor(max_workers=1)
it = pool.map(fn, range(5))
print("waiting", flush=True)
try:
    list(it)
except KeyboardInterrupt:
    print("interrupted", time.monotonic(), flush=True)
gate.set()
assert list(pool.map(abs, [-1], timeout=10)) == [1]   # still usable
pool.shutdown(wait=True)
print("ran", ran, flush=True)
print("done", flush=True)
"""


def test_ctrl_c_while_iterating(impl, child_factory):
    """KeyboardInterrupt within half a second while the iterator waits (it
    releases the GIL and waits in 50 ms slices); items not started are then
    cancelled, as when any exception ends the iteration."""
    child = child_factory(INTERRUPT_SCRIPT.format(
        import_line=impl.import_line))
    assert child.read_line(WAIT) == "waiting"
    time.sleep(0.1)   # let it enter the wait
    sent = time.monotonic()
    child.proc.send_signal(signal.SIGINT)
    line = child.read_line(WAIT)
    assert line is not None and line.startswith("interrupted"), \
        child.transcript()
    assert time.monotonic() - sent < 0.5
    rc, rest, err = child.finish(WAIT)
    assert rc == 0, err
    assert "ran [0]" in rest
    assert "done" in rest


# -- taskdemo only: contextvars, timeline, fork ------------------------------


request_id: contextvars.ContextVar[str] = contextvars.ContextVar(
    "request_id", default="unset")


def test_items_see_the_callers_context(taskdemo):
    """Each item starts in the context as it was at the map call; what an
    item sets is seen neither by later items nor by the caller."""
    def set_and_read(value):
        before = request_id.get()
        if value is not None:
            request_id.set(value)
        return before, request_id.get()

    with taskdemo.ThreadPoolExecutor(max_workers=1) as pool:
        token = request_id.set("cell-7")
        try:
            values = [None, "a", None, "b", "cell-7", None, 1, None]
            got = list(pool.map(set_and_read, values))
            assert [before for before, _ in got] == ["cell-7"] * len(values)
            assert [after for _, after in got] == \
                [v if v is not None else "cell-7" for v in values]
            assert request_id.get() == "cell-7"
        finally:
            request_id.reset(token)


def test_context_is_taken_at_the_call(taskdemo):
    with taskdemo.ThreadPoolExecutor(max_workers=1) as pool:
        gate = threading.Event()
        started = threading.Event()
        pool.submit(lambda: (started.set(), gate.wait(WAIT)))
        assert started.wait(WAIT)
        token = request_id.set("at-call")
        try:
            it = pool.map(lambda _: request_id.get(), range(3))
            request_id.set("later")
            gate.set()
            assert list(it) == ["at-call"] * 3
        finally:
            request_id.reset(token)


def test_items_that_change_their_context_do_not_leak(taskdemo):
    """Equal is not enough: an item that sets 1.0 where the caller had 1
    must not leave 1.0 for the next item."""
    number: contextvars.ContextVar[object] = contextvars.ContextVar("number")

    def fn(i):
        seen = number.get()
        if i % 2 == 0:
            number.set(1.0)
        return type(seen)

    with taskdemo.ThreadPoolExecutor(max_workers=1) as pool:
        token = number.set(1)
        try:
            assert list(pool.map(fn, range(6))) == [int] * 6
        finally:
            number.reset(token)


def named_task(x):
    return x


def test_timeline_accounts_for_every_item(taskdemo):
    """Trivial items may share records (items counts them); together the
    records stand for every item once."""
    before = taskdemo.monotonic_ns() / 1e9
    with taskdemo.ThreadPoolExecutor(max_workers=2,
                                     thread_name_prefix="mp") as pool:
        assert list(pool.map(named_task, range(3000))) == list(range(3000))
        timeline = pool.timeline()
    after = taskdemo.monotonic_ns() / 1e9
    assert sum(r.items for r in timeline) == 3000 and timeline.dropped == 0
    # Short on any machine (a short item takes under 2,048 TSC ticks, 0.4
    # us at 5 GHz, or 1 us): they must then share records.  An ASan build,
    # say, may be slower.
    each = sum(r.duration for r in timeline) / 3000
    if each < 0.4e-6:
        assert len(timeline) < 3000 / 8
    assert {r.label for r in timeline} == {"named_task"}
    for r in timeline:
        assert 1 <= r.items <= 64
        assert 0 <= r.worker < 2
        assert r.thread == f"mp_{r.worker}"
        assert before <= r.submitted <= r.started <= r.ended <= after


def test_timeline_gives_slow_items_a_record_each(taskdemo):
    with taskdemo.ThreadPoolExecutor(max_workers=2) as pool:
        list(pool.map(taskdemo.native.sleep, [0.001] * 10))
        timeline = pool.timeline()
    assert [(r.label, r.items) for r in timeline] == [("sleep", 1)] * 10
    for r in timeline:
        assert r.duration >= 0.001


def test_timeline_of_a_long_map_keeps_the_newest(taskdemo):
    """Items of 0.2 ms: each has its own record, and the ring keeps the
    newest 100."""
    with taskdemo.ThreadPoolExecutor(max_workers=1,
                                     timeline_size=100) as pool:
        list(pool.map(taskdemo.native.sleep, [0.0002] * 300))
        timeline = pool.timeline()
    assert len(timeline) == 100
    assert timeline.dropped == 200
    starts = [r.started for r in timeline]
    assert starts == sorted(starts)
    assert all(a.ended <= b.started for a, b in zip(timeline, timeline[1:]))


FORK_SCRIPT = """
import os, sys, threading
import taskdemo
gate = threading.Event()
started = threading.Event()
def fn(i):
    if i == 1:
        started.set()
        gate.wait(10)
    return i
pool = taskdemo.ThreadPoolExecutor(max_workers=1)
it = pool.map(fn, range(4))
assert next(it) == 0
started.wait(10)
pid = os.fork()
if pid == 0:
    try:
        next(it)
    except RuntimeError as exc:
        print("child: RuntimeError", flush=True)
    os._exit(0)
os.waitpid(pid, 0)
gate.set()
print("parent:", list(it), flush=True)
pool.shutdown(wait=True)
"""


@pytest.mark.fork
@pytest.mark.skipif(not hasattr(__import__("os"), "fork"), reason="no fork")
def test_fork_child_does_not_hang(run_in_subprocess):
    """In the child the runner's thread is gone: the item it ran, and the
    ones after it, fail with RuntimeError instead of waiting forever."""
    rc, out, err = run_in_subprocess(FORK_SCRIPT, timeout=30)
    assert rc == 0, err
    assert "child: RuntimeError" in out
    assert "parent: [1, 2, 3]" in out


def test_iterator_length_hint(taskdemo):
    with taskdemo.ThreadPoolExecutor(max_workers=1) as pool:
        it = pool.map(abs, range(5))
        assert operator.length_hint(it) == 5
        next(it)
        assert operator.length_hint(it) == 4
        it.close()
        assert operator.length_hint(it) == 0
