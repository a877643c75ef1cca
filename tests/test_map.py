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
import itertools
import operator
import re
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
it = pool.map(fn, range(5){kw})
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


@pytest.mark.parametrize("kw", ["", ", buffersize=2"])
def test_ctrl_c_while_iterating(impl, child_factory, kw):
    """KeyboardInterrupt within half a second while the iterator waits (it
    releases the GIL and waits in 50 ms slices); items not started are then
    cancelled, as when any exception ends the iteration."""
    if kw and not impl.is_taskdemo and not STDLIB_HAS_BUFFERSIZE:
        pytest.skip("the stdlib's map has buffersize from 3.14 on")
    child = child_factory(INTERRUPT_SCRIPT.format(
        import_line=impl.import_line, kw=kw))
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


# -- buffersize (3.14's Executor.map; taskdemo has it on every version) ------
#
# Each test below states the stdlib's behaviour as its expected values: on
# 3.14+ the stdlib half runs them too (it is the oracle); before 3.14 it
# has no buffersize, and only the taskdemo half runs, against the same
# values (README: taskdemo accepts buffersize there too).


@pytest.fixture
def bs_impl(impl):
    if not impl.is_taskdemo and not STDLIB_HAS_BUFFERSIZE:
        pytest.skip("the stdlib's map has buffersize from 3.14 on")
    return impl


class Inputs:
    """An iterator that records every __next__ call in `calls`: yields the
    values of `plan` in turn; `StopIteration` in the plan ends it for that
    call only (zip asks again, and so does map), an exception instance is
    raised; after the plan it stops, still recording each call."""

    def __init__(self, plan, name="a", calls=None):
        self.plan = list(plan)
        self.name = name
        self.calls = [] if calls is None else calls
        self.i = 0

    def __iter__(self):
        return self

    def __next__(self):
        self.calls.append(self.name)
        i = self.i
        self.i += 1
        if i >= len(self.plan) or self.plan[i] is StopIteration:
            raise StopIteration
        if isinstance(self.plan[i], BaseException):
            raise self.plan[i]
        return self.plan[i]


def test_buffersize_pulls_inputs_when_the_stdlib_does(bs_impl, pools):
    """N inputs at the call, then one per next() before its result, also
    once they ran out (they are asked again while results are
    outstanding); none once the last result came out."""
    pool = pools.new(max_workers=2)
    inputs = Inputs(range(5))
    it = pool.map(abs, inputs, buffersize=3)
    assert len(inputs.calls) == 3
    seen = []
    for _ in range(5):
        seen.append((next(it), len(inputs.calls)))
    assert seen == [(0, 4), (1, 5), (2, 6), (3, 7), (4, 8)]
    with pytest.raises(StopIteration):
        next(it)
    assert len(inputs.calls) == 8


def test_buffersize_asks_ended_inputs_again(bs_impl, pools):
    """Like zip, map takes what an iterator yields after a StopIteration."""
    pool = pools.new(max_workers=2)
    inputs = Inputs([1, 2, StopIteration, 3, 4, StopIteration, 5])
    assert list(pool.map(abs, inputs, buffersize=2)) == [1, 2, 3, 4]
    assert inputs.i == 6


def test_buffersize_zips_iterables_of_different_lengths(bs_impl, pools):
    """zip() semantics, in zip's order of calls: the shortest input ends
    it, after the longer ones before it gave one more item."""
    pool = pools.new(max_workers=2)
    calls = []
    a = Inputs([1, 2, 3, 4, 5], "a", calls)
    b = Inputs([2, 3], "b", calls)
    it = pool.map(pow, a, b, buffersize=4)
    assert calls == ["a", "b", "a", "b", "a", "b"]
    assert list(it) == [1, 8]
    assert calls == ["a", "b"] * 5
    assert list(pool.map(lambda x, y, z: x + y + z, "abc", "de", "fghi",
                         buffersize=1)) == ["adf", "beg"]
    first = iter(range(10))
    assert list(pool.map(pow, first, [2, 2], buffersize=1)) == [0, 1]
    assert next(first) == 3


def test_buffersize_infinite_input(bs_impl, pools):
    pool = pools.new(max_workers=2)
    counter = itertools.count()
    it = pool.map(operator.neg, counter, buffersize=4)
    assert [next(it) for _ in range(20)] == [-i for i in range(20)]
    it.close()
    assert next(counter) == 24   # 4 at the call, one per next()


def test_buffersize_results_in_input_order(bs_impl, pools):
    """Odd items finish first, each even one waits for the next."""
    pool = pools.new(max_workers=4)
    done = [pools.event() for _ in range(8)]

    def fn(i):
        if i % 2 == 0:
            assert done[i + 1].wait(WAIT)
        done[i].set()
        return -i

    assert list(pool.map(fn, range(8), timeout=WAIT, buffersize=2)) == \
        [-i for i in range(8)]


@pytest.mark.parametrize("buffersize", [1, 3, 8])
def test_buffersize_bounds_the_calls_in_flight(bs_impl, pools, buffersize):
    """Counted from inside the calls: calls started whose results the
    consumer has not taken never exceed N + 1 (N between two next()
    calls, one more pulled at a next() before it waits)."""
    pool = pools.new(max_workers=8)
    lock = threading.Lock()
    counts = {"started": 0, "taken": 0, "most": 0}

    def fn(i):
        with lock:
            counts["started"] += 1
            counts["most"] = max(counts["most"],
                                 counts["started"] - counts["taken"])
        return i

    for i, r in enumerate(pool.map(fn, range(300), buffersize=buffersize,
                                   timeout=WAIT)):
        assert r == i
        with lock:
            counts["taken"] += 1
    assert counts["started"] == 300
    assert 1 <= counts["most"] <= buffersize + 1


def test_buffersize_n_plus_one_run_at_once(bs_impl, pools):
    """While the consumer waits for the oldest result, N + 1 calls are
    submitted: with as many workers they all run together (a barrier of
    N + 1 calls opens; with only N it would time out)."""
    n = 3
    pool = pools.new(max_workers=n + 1)
    barrier = pools.barrier(n + 1)
    it = pool.map(lambda i: (barrier.wait(), i)[1], range(n + 1),
                  buffersize=n, timeout=WAIT)
    assert list(it) == list(range(n + 1))


BAD_BUFFERSIZES = [
    (False, ValueError, "buffersize must be None or > 0"),
    (0, ValueError, "buffersize must be None or > 0"),
    (-1, ValueError, "buffersize must be None or > 0"),
    (-2 ** 70, ValueError, "buffersize must be None or > 0"),
    (1.0, TypeError, "buffersize must be an integer or None"),
    ("1", TypeError, "buffersize must be an integer or None"),
    (2 ** 70, ValueError, "Stop argument for islice() must be None or an "
                          "integer: 0 <= x <= sys.maxsize."),
]


@pytest.mark.parametrize("value,exc,message", BAD_BUFFERSIZES)
def test_buffersize_validation(bs_impl, pools, value, exc, message):
    """The stdlib's types and messages (past sys.maxsize it is islice's
    error); nothing is pulled or submitted."""
    pool = pools.new(max_workers=1)
    inputs = Inputs([1, 2])
    with pytest.raises(exc, match="^" + re.escape(message) + "$"):
        pool.map(abs, inputs, buffersize=value)
    assert inputs.calls == []
    pools.assert_usable(pool)


class Three(int):
    pass


@pytest.mark.parametrize("value", [True, 1, Three(3), sys.maxsize])
def test_buffersize_accepts_any_int(bs_impl, pools, value):
    """isinstance(buffersize, int), as the stdlib checks: True is 1."""
    pool = pools.new(max_workers=1)
    inputs = Inputs([-1, -2, -3, -4])
    it = pool.map(abs, inputs, buffersize=value)
    assert len(inputs.calls) == min(int(value), 5)
    assert list(it) == [1, 2, 3, 4]


def test_buffersize_none_is_the_eager_map(bs_impl, pools):
    pool = pools.new(max_workers=1)
    inputs = Inputs([-1, -2, -3])
    it = pool.map(abs, inputs, buffersize=None)
    assert len(inputs.calls) == 4
    assert list(it) == [1, 2, 3]


def test_buffersize_errors_come_in_the_stdlibs_order(bs_impl, pools):
    """buffersize is checked before anything else (taskdemo's own checks of
    fn, chunksize and timeout included), then zip(*iterables) is made, and
    only then a buffersize past sys.maxsize is refused."""
    pool = pools.new(max_workers=1)
    bad = "buffersize must be None or > 0"
    with pytest.raises(ValueError, match=bad):
        pool.map(42, [1], buffersize=0)
    with pytest.raises(ValueError, match=bad):
        pool.map(abs, [1], chunksize=0, buffersize=0)
    with pytest.raises(TypeError, match="buffersize must be an integer"):
        pool.map(abs, [1], chunksize="a", buffersize=1.5)
    with pytest.raises(ValueError, match=bad):
        pool.map(abs, [1], timeout="soon", buffersize=0)
    with pytest.raises(ValueError, match=bad):
        pool.map(abs, 5, buffersize=0)
    with pytest.raises(TypeError, match="not iterable"):
        pool.map(abs, 5, buffersize=2 ** 70)
    with pytest.raises(TypeError):
        pool.map(abs, [1], 5, buffersize=2)
    pool.shutdown(wait=True)
    with pytest.raises(ValueError, match=bad):
        pool.map(abs, [1], buffersize=0)
    with pytest.raises(RuntimeError, match="after shutdown"):
        pool.map(abs, [1], buffersize=2)
    assert list(pool.map(abs, [], buffersize=2)) == []


def test_buffersize_empty_inputs(bs_impl, pools):
    pool = pools.new(max_workers=1)
    assert list(pool.map(abs, [], buffersize=3)) == []
    assert list(pool.map(abs, buffersize=3)) == []
    assert list(pool.map(pow, [1, 2], [], buffersize=1)) == []


def test_buffersize_exhausted_iterator_stays_exhausted(bs_impl, pools):
    pool = pools.new(max_workers=2)
    inputs = Inputs([-1, -2])
    it = pool.map(abs, inputs, buffersize=5)
    assert list(it) == [1, 2]
    calls = len(inputs.calls)
    assert list(it) == []
    with pytest.raises(StopIteration):
        next(it)
    it.close()
    assert len(inputs.calls) == calls


@pytest.mark.parametrize("how", ["close", "drop"])
def test_buffersize_started_iterator_closed_cancels_the_rest(bs_impl, pools,
                                                             how):
    """Item 1 is running: it finishes, the items pulled and not started
    never run, and nothing more is pulled."""
    pool = pools.new(max_workers=1)
    fn, ran, started, gate = blocking_items(pools, block_at=1)
    inputs = Inputs(range(10))
    it = pool.map(fn, inputs, buffersize=3)
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
    assert len(inputs.calls) == 4


@pytest.mark.parametrize("how", ["close", "drop"])
def test_buffersize_iterator_never_started_runs_the_first_n(bs_impl, pools,
                                                            how):
    pool = pools.new(max_workers=1)
    fn, ran, started, gate = blocking_items(pools, block_at=1)
    inputs = Inputs(range(10))
    it = pool.map(fn, inputs, buffersize=3)
    assert started.wait(WAIT)
    if how == "close":
        it.close()
        assert list(it) == []
    else:
        del it
        gc.collect()
    gate.set()
    pool.shutdown(wait=True)
    assert ran == [0, 1, 2]
    assert len(inputs.calls) == 3


def test_buffersize_exception_in_a_call(bs_impl, pools):
    """Item 1 raises at its position; item 2 (running) finishes, the items
    pulled after it never run, and the iteration is over."""
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

    inputs = Inputs(range(10))
    it = pool.map(fn, inputs, buffersize=3)
    assert next(it) == 0
    assert started.wait(WAIT)
    with pytest.raises(KeyError):
        next(it)
    gate.set()
    pool.shutdown(wait=True)
    assert ran == [0, 1, 2]
    assert len(inputs.calls) == 5
    with pytest.raises(StopIteration):
        next(it)


def test_buffersize_error_from_the_inputs_while_iterating(bs_impl, pools):
    """The error comes out of the next() that pulled, before its result;
    the items pulled and not started are cancelled."""
    pool = pools.new(max_workers=1)
    fn, ran, started, gate = blocking_items(pools, block_at=1)
    it = pool.map(fn, Inputs([0, 1, 2, LookupError("input broke")]),
                  buffersize=2)
    assert next(it) == 0
    assert started.wait(WAIT)
    with pytest.raises(LookupError, match="input broke"):
        next(it)
    assert list(it) == []
    gate.set()
    pool.shutdown(wait=True)
    assert ran == [0, 1]


def test_buffersize_error_from_the_inputs_at_the_call(bs_impl, pools):
    """map() raises it; the items pulled before it still run."""
    pool = pools.new(max_workers=1)
    ran = []
    with pytest.raises(LookupError, match="input broke"):
        pool.map(ran.append, Inputs([1, 2, LookupError("input broke"), 3]),
                 buffersize=5)
    pool.shutdown(wait=True)
    assert ran == [1, 2]


def test_buffersize_input_that_reenters_the_iterator(bs_impl, pools):
    """The inputs are pulled inside next(): calling next() on the iterator
    from there is "already executing", as with a generator."""
    pool = pools.new(max_workers=1)
    box = []

    def gen():
        yield 1
        yield 2
        next(box[0])
        yield 3

    it = pool.map(abs, gen(), buffersize=2)
    box.append(it)
    with pytest.raises(ValueError, match="already executing"):
        next(it)
    assert list(it) == []


def test_buffersize_timeout(bs_impl, pools):
    """Item 1 still runs at the deadline: TimeoutError ends the iteration,
    item 1 finishes and the items pulled after it never run."""
    pool = pools.new(max_workers=1)
    fn, ran, started, gate = blocking_items(pools, block_at=1)
    it = pool.map(fn, range(10), timeout=0.2, buffersize=2)
    assert next(it) == 0
    assert started.wait(WAIT)
    with pytest.raises(cf.TimeoutError):
        next(it)
    gate.set()
    pool.shutdown(wait=True)
    assert ran == [0, 1]
    with pytest.raises(StopIteration):
        next(it)


def test_buffersize_shutdown_while_iterating(bs_impl, pools):
    """With inputs left, the next next() pulls one and cannot submit it:
    RuntimeError, and the iteration is over.  With none left, the results
    submitted before come out."""
    pool = pools.new(max_workers=1)
    it = pool.map(abs, range(10), buffersize=2)
    assert next(it) == 0
    pool.shutdown(wait=True)
    with pytest.raises(RuntimeError, match="after shutdown"):
        next(it)
    assert list(it) == []

    pool = pools.new(max_workers=1)
    it = pool.map(abs, [-1, -2], buffersize=2)
    assert next(it) == 1
    pool.shutdown(wait=True)
    assert list(it) == [2]


def test_buffersize_shutdown_cancel_futures(bs_impl, pools):
    """Inputs all pulled: the running item yields, the next one raises
    CancelledError."""
    pool = pools.new(max_workers=1)
    fn, ran, started, gate = blocking_items(pools, block_at=1)
    it = pool.map(fn, range(3), buffersize=3)
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


def test_buffersize_broken_pool(bs_impl, pools):
    """A failing initializer breaks the pool: refused at the call, or the
    next next() cannot submit its input (BrokenThreadPool either way)."""
    def init():
        raise OSError("no")

    pool = pools.new(max_workers=1, initializer=init)
    try:
        it = pool.map(abs, range(10), buffersize=2)
    except cf.BrokenExecutor:
        return   # broken before the call
    with pytest.raises(cf.BrokenExecutor):
        list(it)


def test_buffersize_executor_gone_before_the_first_next(bs_impl):
    """The iterator holds its executor weakly until the first next(): an
    executor collected before then pulls nothing more, and the results
    submitted at the call still come out."""
    pool = bs_impl.Executor(max_workers=1)
    inputs = Inputs([-1, -2, -3, -4])
    it = pool.map(abs, inputs, buffersize=2)
    gone = weakref.ref(pool)
    del pool
    gc.collect()
    assert gone() is None
    assert list(it) == [1, 2]
    assert len(inputs.calls) == 2


def test_buffersize_started_iterator_keeps_its_executor(bs_impl):
    """From the first next() on, the iterator holds the executor; it lets
    go once the iteration is over."""
    pool = bs_impl.Executor(max_workers=1)
    it = pool.map(abs, [-1, -2, -3, -4], buffersize=2)
    assert next(it) == 1
    gone = weakref.ref(pool)
    del pool
    gc.collect()
    assert gone() is not None
    assert list(it) == [2, 3, 4]
    gc.collect()
    assert gone() is None


def test_buffersize_next_while_another_thread_waits(bs_impl, pools):
    pool = pools.new(max_workers=1)
    fn, ran, started, gate = blocking_items(pools, block_at=0, n=2)
    it = pool.map(fn, range(2), buffersize=1)
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
    assert list(it) == [10]


def test_buffersize_from_a_task_of_the_same_pool(bs_impl, pools):
    pool = pools.new(max_workers=2)
    outer = pool.submit(lambda: list(pool.map(
        lambda x: x + 1, range(500), buffersize=4, timeout=WAIT)))
    assert pools.returns_within(lambda: outer.result(WAIT)) == \
        list(range(1, 501))


def test_buffersize_many_items(bs_impl, pools):
    n = 20_000 if bs_impl.is_taskdemo else 2_000
    pool = pools.new(max_workers=2)
    for buffersize in (1, 7, 1000):
        assert list(pool.map(operator.neg, range(n),
                             buffersize=buffersize)) == \
            [-i for i in range(n)]
    assert list(pool.map(operator.add, range(n), range(n), buffersize=64)) \
        == [2 * i for i in range(n)]
    many = [range(3)] * 20   # more arguments than a runner keeps inline
    assert list(pool.map(lambda *a: sum(a), *many, buffersize=2)) == \
        [0, 20, 40]


def test_buffersize_rows_move_while_calls_run(bs_impl, pools):
    """The inputs and the calls both give up the GIL, so the buffer grows
    (taskdemo: its rows move) while calls are running; every call still
    gets its own arguments, with few and with many iterables."""
    pool = pools.new(max_workers=4)

    def slow_range(n):
        for i in range(n):
            time.sleep(0)   # lets the calls run between two pulls
            yield i

    def add(*args):
        time.sleep(0)       # lets the next pull in during the call
        return sum(args)

    n = 2000 if bs_impl.is_taskdemo else 500
    assert list(pool.map(add, slow_range(n), range(n), buffersize=700)) == \
        [2 * i for i in range(n)]
    many = [range(n)] * 11
    assert list(pool.map(add, slow_range(n), *many, buffersize=300)) == \
        [12 * i for i in range(n)]


def test_buffersize_a_call_keeps_its_arguments_while_rows_move(bs_impl,
                                                              pools):
    """max(a, b, c), a C function, reads c after comparing b with a.  The
    comparison waits while the inputs grow the buffer by a thousand items
    (in taskdemo, its rows move to a bigger ring): c must still be the
    call's own.  Reading it from the old rows is a use-after-free that
    ASan reports only with freed memory overwritten (libpython is not
    instrumented): ASAN_OPTIONS=max_free_fill_size=1048576:free_fill_byte=170
    made that crash when the runner called fn on the row itself."""
    pool = pools.new(max_workers=2)
    in_call = pools.event()
    grown = pools.event()

    class Gate(int):
        def __gt__(self, other):
            in_call.set()
            assert grown.wait(WAIT)
            return int(self) > int(other)

    def inputs():
        yield 0
        assert in_call.wait(WAIT)
        yield from range(1, 1000)
        grown.set()

    it = pool.map(max, inputs(), [Gate(-1)] + [0] * 999,
                  [7] + [-1] * 999, buffersize=2000)
    assert list(it) == [7] + list(range(1, 1000))


def test_buffersize_refcounts_back_to_baseline(bs_impl, pools):
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

    got = list(pool.map(echo, [arg] * 500, [res] * 500, buffersize=3))
    assert all(r is res for r in got)
    del got
    with pytest.raises(ValueError):
        list(pool.map(fail, [arg] * 50, buffersize=4))
    err.__traceback__ = None   # its frames hold `a`
    it = pool.map(echo, [arg] * 50, [res] * 50, buffersize=5)
    next(it)
    it.close()
    del it
    it = pool.map(echo, [arg] * 50, [res] * 50, buffersize=5)  # not started
    del it
    many = [[arg] * 30] * 12
    assert len(list(pool.map(lambda *a: res, *many, buffersize=2))) == 30
    del many
    pool.shutdown(wait=True)
    gc.collect()
    assert (sys.getrefcount(arg), sys.getrefcount(res),
            sys.getrefcount(err)) == base


def test_buffersize_leaves_no_objects_behind(bs_impl, pools):
    """Thousands of maps, ended every way: the tracked objects settle."""
    pool = pools.new(max_workers=2)

    def rounds(k):
        for i in range(k):
            assert list(pool.map(abs, range(-6, 0), buffersize=2)) == \
                [6, 5, 4, 3, 2, 1]
            it = pool.map(abs, itertools.count(), buffersize=3)
            next(it)
            it.close()
            pool.map(abs, range(4), buffersize=2)   # never started
            with pytest.raises(ZeroDivisionError):
                list(pool.map(operator.truediv, [1, 1], [1, 0],
                              buffersize=1))

    rounds(200)
    gc.collect()
    before = len(gc.get_objects())
    rounds(2000 if bs_impl.is_taskdemo else 300)
    gc.collect()
    assert len(gc.get_objects()) - before < 100


def test_buffersize_gc_collects_an_iterator_in_a_cycle(bs_impl, pools):
    """The inputs and the results refer back to the iterator: once it is
    dropped the collector frees all of it."""
    pool = pools.new(max_workers=2)
    marker = Payload()
    box = [marker]

    def gen():
        while True:
            yield box

    it = pool.map(lambda b: b, gen(), buffersize=3)
    box.append(it)
    assert next(it) is box
    alive = weakref.ref(marker)
    del it, box, marker
    gc.collect()
    pool.shutdown(wait=True)
    gc.collect()
    assert alive() is None


BUFFERED_EXIT_SCRIPT = """
import os, threading
{import_line}
gate = threading.Event()
def fn(i):
    if i == 0:
        gate.wait(10)
    os.write(1, b"item %d\\n" % i)
pool = Executor(max_workers=1)
it = pool.map(fn, iter(range(5)), buffersize=2)     # never iterated
started = pool.map(fn, iter(range(10, 15)), buffersize=2)
gate.set()
assert next(started) is None            # pulled item 12
os.write(1, b"exiting\\n")
"""


def test_buffersize_interpreter_exit(bs_impl, run_in_subprocess):
    """At exit the calls submitted still run: the first N of a map never
    iterated, and those a started iterator had pulled."""
    rc, out, err = run_in_subprocess(
        BUFFERED_EXIT_SCRIPT.format(import_line=bs_impl.import_line),
        timeout=30)
    assert rc == 0, err
    lines = out.splitlines()
    assert [l for l in lines if l.startswith("item")] == \
        ["item 0", "item 1", "item 10", "item 11", "item 12"], out
    assert "exiting" in lines


# -- taskdemo only: buffersize's timeline and context ------------------------


def test_buffersize_timeline_accounts_for_every_item(taskdemo):
    before = taskdemo.monotonic_ns() / 1e9
    with taskdemo.ThreadPoolExecutor(max_workers=2) as pool:
        assert list(pool.map(named_task, range(2000), buffersize=7)) == \
            list(range(2000))
        timeline = pool.timeline()
    after = taskdemo.monotonic_ns() / 1e9
    assert sum(r.items for r in timeline) == 2000 and timeline.dropped == 0
    assert {r.label for r in timeline} == {"named_task"}
    for r in timeline:
        assert before <= r.submitted <= r.started <= r.ended <= after


def test_buffersize_items_see_the_context_of_the_call(taskdemo):
    """Items pulled at a later next() still start in the context as it was
    at the map call, as every item of a map does."""
    with taskdemo.ThreadPoolExecutor(max_workers=1) as pool:
        token = request_id.set("at-call")
        try:
            it = pool.map(lambda _: request_id.get(), range(6), buffersize=2)
            request_id.set("later")
            assert list(it) == ["at-call"] * 6
        finally:
            request_id.reset(token)


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
