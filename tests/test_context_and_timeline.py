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
    """One record per task, each on a worker index below max_workers, with
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
    assert len(timeline) == 201 and timeline.dropped == 0
    assert [r.label for r in timeline].count("named_task") == 200
    assert "sleep" in {r.label for r in timeline}
    for r in timeline:
        assert 0 <= r.worker < 3
        assert r.thread == f"tl_{r.worker}"
        assert before <= r.submitted <= r.started <= r.ended <= after


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
    as dropped.  With one worker they are the last ones, in order."""
    with taskdemo.ThreadPoolExecutor(max_workers=1, timeline_size=10) as pool:
        for f in [pool.submit(named_task, i) for i in range(25)]:
            f.result(timeout=WAIT)
        timeline = pool.timeline()
    assert len(timeline) == 10
    assert timeline.dropped == 15
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
