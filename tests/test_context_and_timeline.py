"""Context propagation into tasks, and the timeline the C pool records.

taskdemo runs each task in a copy of the submitter's contextvars context
(as asyncio.to_thread does); the stdlib pool runs tasks in the worker's own
context.  The pool records, per task, when it was submitted, started and
ended and on which worker.
"""

from __future__ import annotations

import contextvars
import threading

import pytest

WAIT = 10.0

request_id: contextvars.ContextVar[str] = contextvars.ContextVar(
    "request_id", default="unset")


def test_task_sees_submitters_contextvars(impl, pools):
    """The submitter's value reaches the task on taskdemo's pool (this is
    what makes Jupyter show a worker's output in the submitting cell); the
    stdlib's workers see their own, empty context."""
    pool = pools.new(max_workers=2)
    token = request_id.set("cell-7")
    try:
        seen = pool.submit(request_id.get).result(timeout=WAIT)
        seen_by_map = list(pool.map(lambda _: request_id.get(), range(3),
                                    timeout=WAIT))
    finally:
        request_id.reset(token)
    expected = "cell-7" if impl.is_taskdemo else "unset"
    assert seen == expected
    assert seen_by_map == [expected] * 3


def test_each_task_gets_its_own_copy(taskdemo):
    """A task's own set() stays in its copy: neither the submitter nor the
    next task sees it, and the value at submit time is what counts."""
    def set_and_read(value):
        before = request_id.get()
        request_id.set(value)
        return before, request_id.get()

    with taskdemo.ThreadPoolExecutor(max_workers=1) as pool:
        token = request_id.set("first")
        try:
            a = pool.submit(set_and_read, "changed-by-a")
            request_id.set("second")
            b = pool.submit(set_and_read, "changed-by-b")
            assert a.result(timeout=WAIT) == ("first", "changed-by-a")
            assert b.result(timeout=WAIT) == ("second", "changed-by-b")
            assert request_id.get() == "second"
        finally:
            request_id.reset(token)


def named_task(x):
    return x


def test_timeline_records_every_task(taskdemo):
    """Every task is recorded once (trivial ones may share records: their
    items add up), each on a worker index below max_workers, with
    submitted <= started <= ended, labelled by the function's name."""
    before = taskdemo.monotonic_ns() / 1e9
    with taskdemo.ThreadPoolExecutor(max_workers=3,
                                     thread_name_prefix="tl") as pool:
        results = [f.result(timeout=WAIT)
                   for f in [pool.submit(named_task, i) for i in range(200)]]
        pool.submit(taskdemo.native.sleep, 0.001).result(timeout=WAIT)
        timeline = pool.timeline()
    after = taskdemo.monotonic_ns() / 1e9
    assert results == list(range(200))
    assert timeline.dropped == 0
    assert sum(r.items for r in timeline if r.label == "named_task") == 200
    assert [(r.label, r.items) for r in timeline
            if r.label != "named_task"] == [("sleep", 1)]
    for r in timeline:
        assert 1 <= r.items <= 64
        assert 0 <= r.worker < 3
        assert r.thread == f"tl_{r.worker}"
        assert before <= r.submitted <= r.started <= r.ended <= after


# Tasks that took less than this each are short on any machine: the pool
# calls a task short under 2,048 TSC ticks (0.4 us at 5 GHz) or 1 us.
SURELY_SHORT = 0.4e-6


def _each(records):
    """Seconds per task over records that ran back to back."""
    return ((records[-1].ended - records[0].started)
            / sum(r.items for r in records))


def test_trivial_tasks_share_records_and_slow_ones_do_not(taskdemo):
    """Queued back to back on one worker, 2,000 trivial tasks share far
    fewer records than 2,000; tasks of a millisecond, of the same function
    and just as queued, get a record each."""
    gate = threading.Event()
    with taskdemo.ThreadPoolExecutor(max_workers=1) as pool:
        pool.submit(gate.wait, WAIT)
        trivial = [pool.submit(named_task, i) for i in range(2000)]
        gate.set()
        for f in trivial:
            f.result(timeout=WAIT)
        slow = [pool.submit(taskdemo.native.sleep, 0.001) for _ in range(8)]
        for f in slow:
            f.result(timeout=WAIT)
        timeline = pool.timeline()
    trivial_records = [r for r in timeline if r.label == "named_task"]
    assert sum(r.items for r in trivial_records) == 2000
    if _each(trivial_records) < SURELY_SHORT:   # not so under ASan, say
        assert len(trivial_records) < 2000 / 8
    assert [r.items for r in timeline if r.label == "sleep"] == [1] * 8
    for a, b in zip(timeline, timeline[1:]):
        assert a.ended <= b.started   # one worker: one after the other


def test_timeline_shows_parallel_workers(taskdemo):
    """Two tasks that meet at a barrier ran at the same time on two
    different workers, and their recorded intervals overlap."""
    barrier = threading.Barrier(2, timeout=WAIT)
    with taskdemo.ThreadPoolExecutor(max_workers=2) as pool:
        for f in [pool.submit(barrier.wait) for _ in range(2)]:
            f.result(timeout=WAIT)
        a, b = pool.timeline()
    assert {a.worker, b.worker} == {0, 1}
    assert a.started < b.ended and b.started < a.ended


def test_timeline_ring_is_bounded(taskdemo):
    """Only the newest timeline_size records are kept; the rest are counted
    as dropped.  With one worker they are the last ones, in order.  (Tasks
    of 0.2 ms: trivial ones could share records and never fill the ring.)"""
    with taskdemo.ThreadPoolExecutor(max_workers=1, timeline_size=10) as pool:
        for f in [pool.submit(taskdemo.native.sleep, 0.0002)
                  for _ in range(25)]:
            f.result(timeout=WAIT)
        timeline = pool.timeline()
    assert len(timeline) == 10
    assert timeline.dropped == 15
    assert all(r.items == 1 for r in timeline)
    starts = [r.started for r in timeline]
    assert starts == sorted(starts)


def test_timeline_can_be_turned_off(taskdemo):
    with taskdemo.ThreadPoolExecutor(max_workers=1, timeline_size=0) as pool:
        assert pool.submit(named_task, 1).result(timeout=WAIT) == 1
        timeline = pool.timeline()
    assert list(timeline) == [] and timeline.dropped == 0


@pytest.mark.parametrize("bad, error", [
    (-1, ValueError), (1 << 30, ValueError), (1.5, TypeError),
    ("10", TypeError), (None, TypeError),
])
def test_timeline_size_is_checked(taskdemo, bad, error):
    with pytest.raises(error):
        taskdemo.ThreadPoolExecutor(max_workers=1, timeline_size=bad)


def test_timeline_size_is_keyword_only(taskdemo):
    with pytest.raises(TypeError):
        taskdemo.ThreadPoolExecutor(1, "p", None, (), 10)
