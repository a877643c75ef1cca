"""taskdemo.timeline: TaskRecord, Timeline, Recorder, plot, to_chrome_trace.

The records are what the demo's charts and traces are drawn from, so these
tests pin their meaning: which times are taken when, on which clock, in
which order, with which worker index and thread name, and what the chart
and the trace file contain for given records.  The chart tests draw on an
Agg canvas (no display); they need matplotlib, from the `test` extra.
"""

from __future__ import annotations

import asyncio
import concurrent.futures
import io
import json
import os
import pickle
import sys
import threading
import warnings
from typing import List

import pytest

import taskdemo
from taskdemo.timeline import Recorder, TaskRecord, Timeline, now, plot, to_chrome_trace

WAIT = 10.0


def clock() -> float:
    return taskdemo.monotonic_ns() / 1e9


def rec(label="task", worker=0, thread="w0", submitted=1.0, started=1.5, ended=2.0):
    return TaskRecord(label, worker, thread, submitted, started, ended)


# ---- TaskRecord and Timeline ------------------------------------------------


def test_task_record_fields_and_derived_times():
    r = TaskRecord("f", 1, "pool_1", 10.0, 10.25, 11.0)
    assert r._fields == ("label", "worker", "thread", "submitted", "started",
                         "ended", "items")
    assert (r.label, r.worker, r.thread, r.items) == ("f", 1, "pool_1", 1)
    assert r.waited == pytest.approx(0.25)
    assert r.duration == pytest.approx(0.75)
    assert r == ("f", 1, "pool_1", 10.0, 10.25, 11.0, 1)  # still a tuple
    assert TaskRecord("f", 1, "pool_1", 10.0, 10.25, 11.0, 64).items == 64


def test_timeline_is_a_list_with_dropped():
    t = Timeline([rec(ended=2.0), rec(ended=3.0)], dropped=5)
    assert isinstance(t, list)
    assert len(t) == 2 and t.dropped == 5
    assert [r.ended for r in t] == [2.0, 3.0]  # order kept as given
    assert Timeline().dropped == 0 and Timeline() == []
    assert "dropped=5" in repr(t)


def test_timeline_converts_plain_tuples():
    """Plain 6- and 7-tuples become TaskRecords."""
    t = Timeline([("f", 0, "w", 1.0, 2.0, 3.0), ("g", 0, "w", 3, 3, 4, 5)], 0)
    assert all(isinstance(r, TaskRecord) for r in t)
    assert (t[0].started, t[0].items) == (2.0, 1)
    assert (t[1].label, t[1].items) == ("g", 5)


def test_timeline_pickles_with_dropped():
    t = Timeline([rec()], dropped=3)
    back = pickle.loads(pickle.dumps(t))
    assert back == t and back.dropped == 3 and isinstance(back, Timeline)


def test_now_is_the_c_clock():
    before = taskdemo.monotonic_ns()
    t = now()
    after = taskdemo.monotonic_ns()
    assert before / 1e9 <= t <= after / 1e9


# ---- Recorder -----------------------------------------------------------------


def test_span_records_times_on_the_c_clock():
    r = Recorder()
    before = clock()
    with r.span("work", worker=3, thread="t"):
        inside = clock()
    after = clock()
    (record,) = r.timeline()
    assert record.label == "work" and record.worker == 3 and record.thread == "t"
    assert before <= record.started <= inside <= record.ended <= after
    assert record.submitted == record.started  # default: no queue wait


def test_span_keeps_given_submitted_time():
    r = Recorder()
    submitted = now()
    with r.span("work", submitted=submitted):
        pass
    (record,) = r.timeline()
    assert record.submitted == submitted <= record.started


def test_span_is_recorded_when_the_block_raises():
    r = Recorder()
    with pytest.raises(LookupError):
        with r.span("fails"):
            raise LookupError
    assert [x.label for x in r.timeline()] == ["fails"]


def test_records_come_in_the_order_spans_ended():
    """Oldest first means first finished, as in the C pool's ring buffer:
    an inner span that started later but ended first comes first."""
    r = Recorder()
    with r.span("outer"):
        with r.span("inner"):
            pass
    with r.span("after"):
        pass
    t = r.timeline()
    assert [x.label for x in t] == ["inner", "outer", "after"]
    assert [x.ended for x in t] == sorted(x.ended for x in t)
    assert t[1].started <= t[0].started  # outer started first


def test_default_thread_and_worker_indices():
    """Without worker=, each new thread name gets the next index, in the
    order the names first started a span; the thread defaults to the
    current thread's name."""
    r = Recorder()
    with r.span("a"):
        pass
    with r.span("b", thread="other"):
        pass
    with r.span("c"):
        pass
    with r.span("d", worker=7, thread="explicit"):
        pass
    t = r.timeline()
    me = threading.current_thread().name
    assert [(x.label, x.worker, x.thread) for x in t] == [
        ("a", 0, me), ("b", 1, "other"), ("c", 0, me), ("d", 7, "explicit")]


def test_timeline_is_a_copy_and_clear_forgets():
    r = Recorder()
    with r.span("a"):
        pass
    t = r.timeline()
    with r.span("b"):
        pass
    assert len(t) == 1 and len(r.timeline()) == 2
    r.clear()
    assert r.timeline() == []
    with r.span("c", thread="new"):
        pass
    assert r.timeline()[0].worker == 0  # indices start again


def test_recorder_is_thread_safe():
    """Threads recording at once lose no record and get one worker index
    each: the index table and the list are guarded by one lock."""
    threads, spans = 8, 200
    r = Recorder()
    barrier = threading.Barrier(threads, timeout=WAIT)

    def work(i: int) -> None:
        barrier.wait()
        for _ in range(spans):
            with r.span(f"t{i}"):
                pass

    pool = [threading.Thread(target=work, args=(i,), name=f"rec-{i}")
            for i in range(threads)]
    for t in pool:
        t.start()
    for t in pool:
        t.join(WAIT)
        assert not t.is_alive(), "possible deadlock"
    t = r.timeline()
    assert len(t) == threads * spans
    workers = {}
    for x in t:
        assert x.label == "t" + x.thread.split("-")[1]
        workers.setdefault(x.thread, set()).add(x.worker)
    assert all(len(w) == 1 for w in workers.values())
    assert sorted(w.pop() for w in workers.values()) == list(range(threads))


def test_wrap_records_each_call_in_the_thread_that_runs_it():
    r = Recorder()

    def square(x):
        return x * x

    with concurrent.futures.ThreadPoolExecutor(max_workers=1,
                                               thread_name_prefix="sq") as pool:
        before = now()
        fut = pool.submit(r.wrap(square), 7)
        assert fut.result(timeout=WAIT) == 49
    (record,) = r.timeline()
    assert record.label == square.__qualname__
    assert record.thread == "sq_0" and record.worker == 0
    assert before <= record.submitted <= record.started <= record.ended


def test_wrap_label_and_exceptions():
    r = Recorder()

    def boom():
        raise KeyError("x")

    wrapped = r.wrap(boom, label="custom", worker=2, thread="here")
    assert wrapped.__name__ == "boom"  # functools.wraps
    with pytest.raises(KeyError):
        wrapped()
    assert [(x.label, x.worker, x.thread) for x in r.timeline()] == [
        ("custom", 2, "here")]


async def _echo(x):
    await asyncio.sleep(0)
    return x


def test_wrap_async_records_wait_before_the_task_first_ran():
    """Calling the wrapper is the submission; the span starts when the
    task first runs, so a task that waited for the loop shows the wait."""
    r = Recorder()
    marks = {}

    async def main():
        traced = r.wrap_async(_echo)
        task = asyncio.create_task(traced("a"), name="echo task")
        marks["created"] = now()  # the task has not run yet
        return await task

    assert asyncio.run(main()) == "a"
    (record,) = r.timeline()
    assert record.label == _echo.__qualname__
    assert record.thread == "echo task"  # the asyncio task's name
    assert record.submitted <= marks["created"] <= record.started <= record.ended


def test_wrap_async_rows_per_task():
    """Three tasks are three rows; three awaits in one task are one row."""
    r = Recorder()

    async def main():
        traced = r.wrap_async(_echo)
        await asyncio.gather(*(asyncio.create_task(traced(i), name=f"t{i}")
                               for i in range(3)))
        for i in range(3):
            await r.wrap_async(_echo, thread="seq")(i)

    asyncio.run(main())
    t = r.timeline()
    assert sorted((x.thread, x.worker) for x in t[:3]) == [
        ("t0", 0), ("t1", 1), ("t2", 2)]
    assert {(x.thread, x.worker) for x in t[3:]} == {("seq", 3)}


def test_wrap_async_with_explicit_worker():
    r = Recorder()
    assert asyncio.run(r.wrap_async(_echo, 5, thread="x")(1)) == 1
    assert [(x.worker, x.thread) for x in r.timeline()] == [(5, "x")]


def test_c_pool_timeline_is_a_timeline_of_records():
    """The records taskdemo's pool keeps in C use this module's types, so
    they can be charted and traced like the Recorder's."""
    with taskdemo.ThreadPoolExecutor(max_workers=2) as pool:
        for f in [pool.submit(pow, 2, i) for i in range(6)]:
            f.result(timeout=WAIT)
    t = pool.timeline()
    assert isinstance(t, Timeline) and t.dropped == 0
    assert all(isinstance(x, TaskRecord) for x in t)
    assert sum(x.items for x in t) == 6   # trivial tasks may share records
    assert all(x.label == "pow" and 0 <= x.worker < 2 for x in t)
    assert all(x.submitted <= x.started <= x.ended <= now() for x in t)


# ---- plot -----------------------------------------------------------------------


@pytest.fixture(scope="module")
def mpl():
    """matplotlib on the Agg backend, imported and warmed up.

    The newest matplotlib for Python 3.9 (3.9.x) calls pyparsing names
    that pyparsing 3.3 deprecates, once, while importing and building its
    font parser.  That is not ours to fix, so the warm-up ignores
    DeprecationWarning; the tests themselves still run with warnings as
    errors.

    matplotlib imports numpy, whose OpenBLAS starts a thread per core at
    load time; that thread would outlive this module and upset every later
    test that counts OS threads (the `settled_threads` fixture).  One
    OpenBLAS thread is the calling one, so the import runs with
    OPENBLAS_NUM_THREADS=1 (read only at load; restored afterwards).
    """
    saved = os.environ.get("OPENBLAS_NUM_THREADS")
    os.environ["OPENBLAS_NUM_THREADS"] = "1"
    try:
        with warnings.catch_warnings():
            warnings.simplefilter("ignore", DeprecationWarning)
            matplotlib = pytest.importorskip(
                "matplotlib",
                reason="matplotlib is not installed (it is in the `test` extra)")
            matplotlib.use("Agg")
            import matplotlib.pyplot  # noqa: F401
            from matplotlib.figure import Figure

            fig = Figure()
            fig.add_subplot().text(0, 0, "warm-up")
            fig.savefig(io.BytesIO(), format="png")
    finally:
        if saved is None:
            del os.environ["OPENBLAS_NUM_THREADS"]
        else:
            os.environ["OPENBLAS_NUM_THREADS"] = saved
    return matplotlib


RECORDS = [
    # label, worker, thread, submitted, started, ended (seconds)
    TaskRecord("a", 0, "pool_0", 100.0, 100.0, 101.0),
    TaskRecord("b", 1, "pool_1", 100.0, 100.1, 101.0),
    TaskRecord("c", 0, "pool_0", 100.0, 101.0, 102.0),  # waited 1 s
]


@pytest.mark.skipif(not os.path.isdir("/proc/self/task"), reason="needs /proc")
def test_charts_leave_no_os_thread_behind(mpl, settled_threads):
    """Importing and drawing with matplotlib must not leave OS threads
    that later thread-count tests would see (see the mpl fixture)."""
    from matplotlib.figure import Figure

    plot(RECORDS, ax=Figure().add_subplot())
    assert len(os.listdir("/proc/self/task")) == threading.active_count()


def _container(ax, label):
    (found,) = [c for c in ax.containers if c.get_label() == label]
    return found


def test_plot_draws_one_bar_per_record(mpl):
    from matplotlib.axes import Axes
    from matplotlib.figure import Figure

    ax = Figure().add_subplot()
    assert plot(RECORDS, ax=ax, title="Set #5") is ax
    assert isinstance(ax, Axes)
    running = _container(ax, "running")
    assert len(running) == len(RECORDS)
    # x: seconds since the earliest submitted; one row per worker thread.
    got = sorted((round(p.get_x(), 6), round(p.get_width(), 6)) for p in running)
    assert got == [(0.0, 1.0), (0.1, 0.9), (1.0, 1.0)]
    rows = {round(p.get_y() + p.get_height() / 2) for p in running}
    assert rows == {0, 1}
    assert [t.get_text() for t in ax.get_yticklabels()] == ["pool_0", "pool_1"]
    assert sorted(t.get_text() for t in ax.texts) == ["a", "b", "c"]
    assert ax.get_title(loc="left") == "Set #5"
    assert ax.get_xlabel() == "seconds"


def test_plot_labels_a_shared_record_with_its_count(mpl):
    from matplotlib.figure import Figure

    ax = Figure().add_subplot()
    plot([rec(label="f"), rec(label="g", started=2.0, ended=2.5)._replace(
        items=64)], ax=ax)
    assert sorted(t.get_text() for t in ax.texts) == ["f", "g \u00d764"]
    assert len(_container(ax, "running")) == 2


def test_plot_shows_queue_waits(mpl):
    from matplotlib.figure import Figure

    ax = Figure().add_subplot()
    plot(RECORDS, ax=ax)
    waiting = _container(ax, "waiting")
    assert len(waiting) == len(RECORDS)
    assert max(round(p.get_width(), 6) for p in waiting) == 1.0  # task c

    ax2 = Figure().add_subplot()
    plot(RECORDS, ax=ax2, show_wait=False)
    assert [c.get_label() for c in ax2.containers] == ["running"]


def test_plot_without_ax_makes_a_figure_and_renders_png(mpl):
    import matplotlib.pyplot as plt

    ax = plot(RECORDS)
    try:
        buf = io.BytesIO()
        ax.figure.savefig(buf, format="png")
        assert buf.getvalue().startswith(b"\x89PNG\r\n\x1a\n")
    finally:
        plt.close(ax.figure)


def test_plot_of_no_records(mpl):
    from matplotlib.figure import Figure

    ax = Figure().add_subplot()
    assert plot(Timeline(), ax=ax) is ax
    assert ax.containers == []


def test_plot_of_a_recorder_timeline(mpl):
    from matplotlib.figure import Figure

    r = Recorder()
    for name in ("x", "y"):
        with r.span("f", thread=name):
            pass
    ax = Figure().add_subplot()
    plot(r.timeline(), ax=ax)
    assert len(_container(ax, "running")) == 2
    assert [t.get_text() for t in ax.get_yticklabels()] == ["x", "y"]


def test_plot_without_matplotlib_says_how_to_install(monkeypatch):
    monkeypatch.setitem(sys.modules, "matplotlib", None)
    with pytest.raises(ImportError, match=r'pip install "taskdemo\[notebook\]"'):
        plot(RECORDS)


# ---- to_chrome_trace ------------------------------------------------------------


def _load(path) -> dict:
    with open(path, encoding="utf-8") as f:
        return json.load(f)


def _events(trace: dict, ph: str) -> List[dict]:
    return [e for e in trace["traceEvents"] if e["ph"] == ph]


def test_chrome_trace_has_one_complete_event_per_record(tmp_path):
    path = tmp_path / "trace.json"
    assert to_chrome_trace(RECORDS, path) == path
    trace = _load(path)
    assert trace["displayTimeUnit"] == "ms"
    spans = _events(trace, "X")
    assert len(spans) == len(RECORDS)
    by_name = {e["name"]: e for e in spans}
    # ts and dur in microseconds, from the earliest submitted time (100 s).
    assert by_name["a"]["ts"] == pytest.approx(0.0)
    assert by_name["a"]["dur"] == pytest.approx(1e6)
    assert by_name["b"]["ts"] == pytest.approx(0.1e6)
    assert by_name["b"]["dur"] == pytest.approx(0.9e6)
    assert by_name["c"]["ts"] == pytest.approx(1e6)
    assert by_name["c"]["args"]["waited_us"] == pytest.approx(1e6)
    assert all(e["args"]["items"] == 1 for e in spans)
    assert [by_name[n]["tid"] for n in "abc"] == [0, 1, 0]
    assert len({e["pid"] for e in spans}) == 1
    assert [e["ts"] for e in spans] == sorted(e["ts"] for e in spans)


def test_chrome_trace_names_every_row(tmp_path):
    trace = _load(to_chrome_trace(RECORDS, tmp_path / "t.json"))
    names = {(e["pid"], e["tid"]): e["args"]["name"]
             for e in _events(trace, "M") if e["name"] == "thread_name"}
    assert {(e["pid"], e["tid"]) for e in _events(trace, "X")} <= set(names)
    assert sorted(names.values()) == ["pool_0", "pool_1"]
    for e in trace["traceEvents"]:  # fields every viewer requires
        assert {"ph", "name", "pid", "tid"} <= set(e)


def test_chrome_trace_groups_are_processes(tmp_path):
    r = Recorder()
    with r.span("x", thread="main"):
        pass
    groups = {"Set #1": r.timeline(), "Set #5": RECORDS}
    trace = _load(to_chrome_trace(groups, str(tmp_path / "t.json")))
    procs = {e["pid"]: e["args"]["name"]
             for e in _events(trace, "M") if e["name"] == "process_name"}
    assert procs == {1: "Set #1", 2: "Set #5"}
    spans = _events(trace, "X")
    assert sorted(e["pid"] for e in spans) == [1, 2, 2, 2]
    # One origin for the whole file: the Recorder's record (monotonic now)
    # lies far after RECORDS' (100 s), so it starts far from zero.
    (mine,) = [e for e in spans if e["pid"] == 1]
    assert mine["ts"] > 1e6


def test_chrome_trace_of_no_records(tmp_path):
    trace = _load(to_chrome_trace([], tmp_path / "t.json"))
    assert _events(trace, "X") == []
