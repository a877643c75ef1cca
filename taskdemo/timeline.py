"""What ran when: task records, a recorder, a chart and a Chrome trace.

The point of the demo is to *see* what threads and asyncio tasks do, and a
stopwatch only gives one number per set.  A timeline gives one record per
task: when it was submitted, when it started and ended, and on which worker
thread (or asyncio task) it ran (the C pool records a stream of
sub-microsecond tasks in shared records, see ``TaskRecord.items``).

- ``TaskRecord`` is one task; ``Timeline`` is a list of them plus the count
  of tasks whose records a full ring buffer dropped.  ``taskdemo.ThreadPoolExecutor``
  records its tasks in C and returns them from ``pool.timeline()``.
- ``Recorder`` records the same ``TaskRecord`` for work that is not on a
  taskdemo pool (asyncio tasks, the stdlib pool, plain calls), on the same
  clock, ``taskdemo.monotonic_ns()``, so both kinds can share a chart.
- ``plot(records)`` draws the chart with matplotlib (an optional extra:
  ``pip install "taskdemo[notebook]"``); ``to_chrome_trace(records, path)``
  writes a file that Perfetto and chrome://tracing open.

Times are float seconds on the ``taskdemo.monotonic_ns()`` clock
(CLOCK_MONOTONIC), i.e. nanoseconds / 1e9: only differences mean anything.
"""
from __future__ import annotations

import asyncio
import functools
import importlib
import json
import os
import threading
from contextlib import contextmanager
from typing import (TYPE_CHECKING, Any, Awaitable, Callable, Coroutine, Dict,
                    Iterable, Iterator, List, Mapping, NamedTuple, Optional,
                    Tuple, TypeVar, Union)

from ._taskdemo import monotonic_ns

if TYPE_CHECKING:
    from matplotlib.axes import Axes

__all__ = ["Recorder", "TaskRecord", "Timeline", "now", "plot",
           "to_chrome_trace"]

_T = TypeVar("_T")
_PathT = TypeVar("_PathT", bound=Union[str, "os.PathLike[str]"])

# What plot() and to_chrome_trace() accept: records, or for the trace a
# mapping of group name (one process row each) to records.
Records = Iterable["TaskRecord"]


def now() -> float:
    """Return the current time in seconds on the timeline clock.

    That is ``taskdemo.monotonic_ns() / 1e9``, the clock the C pool stamps
    its records with; use it for a ``submitted`` time you pass to
    ``Recorder.span``.
    """
    return monotonic_ns() / 1e9


class TaskRecord(NamedTuple):
    """One task: what it was, where it ran, and when.

    ``label`` is the task function's qualified name; ``worker`` the 0-based
    index of the worker (or row) that ran it; ``thread`` that worker's
    thread name (or the asyncio task's name).  ``submitted``, ``started``
    and ``ended`` are float seconds on the ``taskdemo.monotonic_ns()``
    clock.  ``items`` is how many tasks the record stands for: 1, except
    where the C pool ran a stream of sub-microsecond tasks of one function
    back to back on one worker and recorded up to 64 of them at once; then
    ``submitted`` is the first one's, ``started`` when the first began and
    ``ended`` when the last returned.
    """

    label: str
    worker: int
    thread: str
    submitted: float
    started: float
    ended: float
    items: int = 1

    @property
    def waited(self) -> float:
        """Seconds between submission and start (time spent queued)."""
        return self.started - self.submitted

    @property
    def duration(self) -> float:
        """Seconds between start and end (time spent running)."""
        return self.ended - self.started


class Timeline(List[TaskRecord]):
    """A list of ``TaskRecord``, oldest first, and how many were dropped.

    Oldest first means in the order the tasks finished, which is when a
    record is written.  ``dropped`` counts the older records lost because
    the pool's ring buffer (``timeline_size``) was full, in tasks (the
    sum of their ``items``).  The constructor takes any iterable of
    records; plain 6- or 7-tuples are converted to ``TaskRecord``.  Equality compares the records only, as for a list.
    """

    dropped: int

    def __init__(self, records: Iterable[Any] = (), dropped: int = 0) -> None:
        super().__init__(r if isinstance(r, TaskRecord) else TaskRecord(*r)
                         for r in records)
        self.dropped = int(dropped)

    def __repr__(self) -> str:
        return f"Timeline({list.__repr__(self)}, dropped={self.dropped})"


class Recorder:
    """Record ``TaskRecord``s for work that is not on a taskdemo pool.

    For asyncio tasks, the stdlib pool or plain calls, on the same clock as
    the C pool's records.  Thread-safe: threads and coroutines may record
    at the same time.  Three ways to record::

        rec = Recorder()
        with rec.span("download", submitted=t0):   # any block
            ...
        pool.submit(rec.wrap(run_in_sync), "+", 1)    # a call on a pool
        await asyncio.gather(rec.wrap_async(run_in_async)("#", 1))
        rec.timeline()                                # -> Timeline

    ``worker`` may be given; when it is ``None`` each distinct ``thread``
    name gets the next index (0, 1, ...) the first time it starts a span,
    so rows are numbered in the order they first ran.  ``thread`` defaults
    to the running asyncio task's name inside a task, else to the current
    thread's name.
    """

    def __init__(self) -> None:
        self._lock = threading.Lock()
        self._records: List[TaskRecord] = []
        self._workers: Dict[str, int] = {}  # thread name -> worker index

    def _worker_for(self, thread: str) -> int:
        with self._lock:
            return self._workers.setdefault(thread, len(self._workers))

    @staticmethod
    def _current_thread_name() -> str:
        try:
            task = asyncio.current_task()
        except RuntimeError:  # no running event loop in this thread
            task = None
        if task is not None:
            return task.get_name()
        return threading.current_thread().name

    def add(self, record: TaskRecord) -> None:
        """Append a finished record (for times measured elsewhere)."""
        with self._lock:
            self._records.append(record)

    @contextmanager
    def span(self, label: str, worker: Optional[int] = None,
             thread: Optional[str] = None,
             submitted: Optional[float] = None) -> Iterator[None]:
        """Record the ``with`` block as one task named ``label``.

        ``started`` is taken on entry and ``ended`` on exit (also when the
        block raises); ``submitted`` defaults to ``started`` (no queue
        wait).  The record is added on exit, so records come out in the
        order their blocks ended.  Usable across ``await``s.
        """
        if thread is None:
            thread = self._current_thread_name()
        if worker is None:
            worker = self._worker_for(thread)
        started = now()
        try:
            yield
        finally:
            ended = now()
            self.add(TaskRecord(
                label, worker, thread,
                started if submitted is None else submitted, started, ended))

    def wrap(self, fn: Callable[..., _T], *, label: Optional[str] = None,
             worker: Optional[int] = None,
             thread: Optional[str] = None) -> Callable[..., _T]:
        """Return ``fn`` wrapped so that each call is recorded.

        The submitted time is the moment ``wrap`` is called, so wrap where
        you submit: ``pool.submit(rec.wrap(fn), *args)``; the call itself
        is the span, in whichever thread runs it.  ``label`` defaults to
        ``fn.__qualname__``.
        """
        name = label if label is not None else _qualname(fn)
        submitted = now()

        @functools.wraps(fn)
        def call(*args: Any, **kwargs: Any) -> _T:
            with self.span(name, worker, thread, submitted):
                return fn(*args, **kwargs)

        return call

    def wrap_async(self, coro_fn: Callable[..., Awaitable[_T]],
                   worker: Optional[int] = None, *,
                   thread: Optional[str] = None,
                   label: Optional[str] = None
                   ) -> Callable[..., Coroutine[Any, Any, _T]]:
        """Return ``coro_fn`` wrapped so that each coroutine is recorded.

        Calling the wrapper notes the submitted time and returns a
        coroutine; the span runs from its first step to its end, so
        ``asyncio.create_task(wrapped(...))`` shows the wait before the
        loop first ran the task.  ``thread`` defaults to the name of the
        asyncio task that runs it; ``label`` to ``coro_fn.__qualname__``.
        """
        name = label if label is not None else _qualname(coro_fn)

        async def traced(submitted: float, args: Tuple[Any, ...],
                         kwargs: Dict[str, Any]) -> _T:
            with self.span(name, worker, thread, submitted):
                return await coro_fn(*args, **kwargs)

        @functools.wraps(coro_fn)
        def call(*args: Any, **kwargs: Any) -> Coroutine[Any, Any, _T]:
            return traced(now(), args, kwargs)

        return call

    def timeline(self) -> Timeline:
        """Return a copy of the records so far, in the order they ended."""
        with self._lock:
            return Timeline(self._records)

    def clear(self) -> None:
        """Forget every record and worker index."""
        with self._lock:
            self._records.clear()
            self._workers.clear()


def _qualname(fn: Any) -> str:
    target = getattr(fn, "func", fn)  # functools.partial
    return str(getattr(target, "__qualname__", None)
               or getattr(target, "__name__", None) or type(fn).__name__)


def _bar_label(record: TaskRecord) -> str:
    """A record's label, with its count when it stands for several tasks."""
    if record.items > 1:
        return f"{record.label} \u00d7{record.items}"
    return record.label


def _rows(records: List[TaskRecord]) -> List[Tuple[int, str]]:
    """The chart's rows: distinct (worker, thread), ordered by worker."""
    return sorted({(r.worker, r.thread) for r in records})


def plot(records: Records, ax: Optional["Axes"] = None,
         title: Optional[str] = None, *, show_wait: bool = True) -> "Axes":
    """Draw the timeline: one row per worker thread, one bar per task.

    Each task is a bar from ``started`` to ``ended`` on its thread's row
    (or asyncio task's row), labelled with ``label`` (and ``×items`` for a
    record that stands for several tasks); with ``show_wait`` a
    thin grey strip along the bottom of the row spans ``submitted`` to
    ``started``, the time the task waited in a queue.  The x axis is
    seconds since the earliest ``submitted``.  Draws on ``ax`` if given,
    else on a new ``matplotlib.pyplot`` figure, and returns the Axes.  The
    bars are the containers labelled ``"running"`` and ``"waiting"`` in
    ``ax.containers``.  Needs matplotlib, any backend (Agg included).
    """
    try:
        importlib.import_module("matplotlib")  # is the extra installed?
    except ImportError as exc:
        raise ImportError(
            "taskdemo.timeline.plot needs matplotlib, an optional extra: "
            'pip install "taskdemo[notebook]" (or pip install matplotlib)'
        ) from exc
    records = list(records)
    rows = _rows(records)
    if ax is None:
        import matplotlib.pyplot as plt
        _, ax = plt.subplots(figsize=(9, 1.2 + 0.45 * max(1, len(rows))))
    if title is not None:
        ax.set_title(title, loc="left", fontsize="medium")
    ax.set_xlabel("seconds")
    if not records:
        ax.text(0.5, 0.5, "no tasks recorded", ha="center", va="center",
                transform=ax.transAxes, color="gray")
        ax.set_yticks([])
        return ax

    origin = min(r.submitted for r in records)
    row_of = {row: i for i, row in enumerate(rows)}
    ys = [row_of[(r.worker, r.thread)] for r in records]
    lefts = [r.started - origin for r in records]
    widths = [max(r.duration, 0.0) for r in records]
    if show_wait:
        # A thin strip along the bottom of the row: the worker is often
        # busy with an earlier task meanwhile, whose bar would hide it.
        ax.barh([y + 0.36 for y in ys], [max(r.waited, 0.0) for r in records],
                left=[r.submitted - origin for r in records], height=0.12,
                color="tab:gray", alpha=0.45, label="waiting")
    ax.barh(ys, widths, left=lefts, height=0.6, color="tab:blue",
            edgecolor="white", label="running")
    for y, left, width, r in zip(ys, lefts, widths, records):
        ax.text(left + width / 2, y, _bar_label(r), ha="center",
                va="center", fontsize="x-small", color="white", clip_on=True)
    ax.set_yticks(range(len(rows)))
    ax.set_yticklabels([thread for _, thread in rows])
    ax.set_ylim(len(rows) - 0.5, -0.5)  # first worker on top
    end = max(r.ended for r in records) - origin
    ax.set_xlim(0, end * 1.02 if end > 0 else 1)
    ax.grid(axis="x", alpha=0.3)
    return ax


def _trace_groups(records: Union[Records, Mapping[str, Records]]
                  ) -> List[Tuple[str, List[TaskRecord]]]:
    if isinstance(records, Mapping):
        return [(str(name), list(recs)) for name, recs in records.items()]
    return [("taskdemo", list(records))]


def to_chrome_trace(records: Union[Records, Mapping[str, Records]],
                    path: _PathT) -> _PathT:
    """Write the records as a Chrome Trace Event Format JSON file.

    The file is the object form, ``{"traceEvents": [...], "displayTimeUnit":
    "ms"}``, which Perfetto (ui.perfetto.dev) and chrome://tracing open.
    Each record is one complete event (``"ph": "X"``, ``name`` = label,
    ``tid`` = worker, ``ts``/``dur`` in microseconds since the earliest
    ``submitted`` in the file, queue wait and ``items`` in ``args``);
    ``thread_name`` metadata events (``"ph": "M"``) name each row after
    its thread.  Pass a mapping ``{name: records}`` to get one process
    (``pid`` 1, 2, ...) per entry, named by ``process_name`` events.  Returns ``path``.
    """
    groups = _trace_groups(records)
    everything = [r for _, recs in groups for r in recs]
    origin = min((r.submitted for r in everything), default=0.0)

    def us(seconds: float) -> float:
        return round(seconds * 1e6, 3)

    meta: List[Dict[str, Any]] = []
    spans: List[Dict[str, Any]] = []
    for pid, (name, recs) in enumerate(groups, start=1):
        meta.append({"ph": "M", "name": "process_name", "pid": pid, "tid": 0,
                     "args": {"name": name}})
        meta.append({"ph": "M", "name": "process_sort_index", "pid": pid,
                     "tid": 0, "args": {"sort_index": pid}})
        named: Dict[int, str] = {}
        for r in recs:
            named.setdefault(r.worker, r.thread)
        for worker, thread in sorted(named.items()):
            meta.append({"ph": "M", "name": "thread_name", "pid": pid,
                         "tid": worker, "args": {"name": thread}})
            meta.append({"ph": "M", "name": "thread_sort_index", "pid": pid,
                         "tid": worker, "args": {"sort_index": worker}})
        for r in recs:
            spans.append({
                "ph": "X", "name": r.label, "cat": "task", "pid": pid,
                "tid": r.worker, "ts": us(r.started - origin),
                "dur": us(max(r.duration, 0.0)),
                "args": {"thread": r.thread, "waited_us": us(r.waited),
                         "items": r.items},
            })
    spans.sort(key=lambda e: (e["ts"], e["pid"], e["tid"]))
    trace = {
        "traceEvents": meta + spans,
        "displayTimeUnit": "ms",
        "otherData": {"clock": "taskdemo.monotonic_ns",
                      "origin_seconds": origin},
    }
    with open(path, "w", encoding="utf-8") as f:
        json.dump(trace, f, indent=None, separators=(",", ":"))
        f.write("\n")
    return path
