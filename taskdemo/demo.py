"""The original notebook's sets, and new ones on taskdemo's C pool.

    python -m taskdemo [--delay SECONDS] [--workers N] [--sets LIST]
                       [--trace FILE.json] [--plot FILE.png]

The notebook compares ways of running three runs ('+', '-', '#') that each
last ``delay`` seconds: one after another (Set #1), on the stdlib's
``ThreadPoolExecutor`` (Set #2), with asyncio awaiting one after another
(Set #3) and with ``asyncio.create_task`` (Set #4).  The new sets run the
same on ``taskdemo.ThreadPoolExecutor`` (Sets #5 and #6), drive the C pool
from asyncio (Set #7), and show the GIL with CPU-bound work: pure Python
does not get faster on more threads (Set #8), C code that releases the GIL
does (Set #9).

Each ``set_N`` function prints as the notebook does (characters written
live, ``[id:stopped:Nt]`` markers, ``results = [...]``, the Stopwatch lines)
and returns a ``SetResult`` with the elapsed time and a ``Timeline`` of
what ran where, for ``taskdemo.timeline.plot``.  ``main`` is the command
line; ``python -m taskdemo`` and ``python -m taskdemo.demo`` both run it.
"""
from __future__ import annotations

import argparse
import asyncio
import concurrent.futures
import contextlib
import importlib.util
import math
import os
import sys
import threading
import time
from concurrent.futures import as_completed
from dataclasses import dataclass, field
from typing import (TYPE_CHECKING, Any, Awaitable, Callable, Dict, Iterator,
                    List, Optional, Sequence, Set, TypeVar)

from . import native
from ._executor import ThreadPoolExecutor
from ._run import run
from ._stopwatch import stopwatch
from ._taskdemo import thread_count
from ._threads import additional_thread_count
from .timeline import Recorder, TaskRecord, Timeline, plot

if TYPE_CHECKING:
    from matplotlib.figure import Figure

__all__ = [
    "RUNS", "SETS", "SetResult", "busy_in_sync", "main", "plot_sets",
    "run_in_async", "run_in_sync", "run_sets", "set_1", "set_2", "set_3",
    "set_4", "set_5", "set_6", "set_7", "set_8", "set_9", "spin_in_sync",
]

_T = TypeVar("_T")

RUNS = ["+", "-", "#"]

# Ids for the CPU-bound sets, one per task (--workers of them).
_IDS = "+-#*@%&=~^" + "abcdefghijklmnopqrstuvwxyz"
MAX_WORKERS = 32

# The CPU-bound sets give each task this fraction of `delay` as work, so
# that at the default delay the whole demo stays under 20 seconds.
CPU_FRACTION = 0.25


def _write(text: str) -> None:
    # Flushed at once, so the characters appear live even in a pipe.
    sys.stdout.write(text)
    sys.stdout.flush()


def _stopped(id: str) -> None:
    _write(f"[{id}:stopped:{additional_thread_count()}t] ")


# ---- the tasks --------------------------------------------------------------


def run_in_sync(id: str, delay: float) -> str:
    """The notebook's task: write ``id`` twice per step for ``delay`` seconds.

    A step sleeps 0.5 s, as in the notebook, or ``delay / 2`` when that is
    shorter, so a short delay still gives two steps and the same picture.
    Sleeping releases the GIL, so runs on several threads overlap.
    """
    step = min(0.5, delay / 2)
    starting_time = time.monotonic()
    while time.monotonic() - starting_time < delay:
        _write(f"{id}")
        time.sleep(step)
        _write(f"{id}")
    _stopped(id)
    return id


async def run_in_async(id: str, delay: float) -> str:
    """The notebook's coroutine: ``run_in_sync``, awaiting asyncio.sleep."""
    step = min(0.5, delay / 2)
    starting_time = time.monotonic()
    while time.monotonic() - starting_time < delay:
        _write(f"{id}")
        await asyncio.sleep(step)
        _write(f"{id}")
    _stopped(id)
    return id


def count_down(n: int) -> int:
    """Pure-Python busy work: n loop iterations, holding the GIL."""
    while n > 0:
        n -= 1
    return n


_rate_lock = threading.Lock()
_rate: Optional[float] = None  # count_down iterations per second


def iterations_per_second() -> float:
    """Measure, once, how many ``count_down`` iterations take a second.

    Grows the count until one run takes 30 ms, then keeps the fastest of
    three runs of that size (about 0.15 s in all), which is steadier than
    a single run while the interpreter and the CPU warm up.
    """
    global _rate
    with _rate_lock:
        if _rate is None:
            n = 10_000
            while _timed(count_down, n) < 0.03:
                n *= 2
            _rate = n / min(_timed(count_down, n) for _ in range(3))
        return _rate


def _timed(fn: Callable[[int], Any], n: int) -> float:
    t0 = time.perf_counter()
    fn(n)
    return time.perf_counter() - t0


def busy_in_sync(id: str, iterations: int) -> str:
    """CPU-bound Python: ``iterations`` of ``count_down`` in four chunks.

    Writes ``id`` before and after each chunk, like ``run_in_sync``.  The
    work is a fixed amount, not a time, so two threads doing it at once
    take as long as one thread doing both: the GIL lets one run at a time.
    """
    for _ in range(4):
        _write(f"{id}")
        count_down(iterations // 4)
        _write(f"{id}")
    _stopped(id)
    return id


def spin_in_sync(id: str, seconds: float) -> str:
    """CPU-bound C: ``taskdemo.native.spin`` for ``seconds``, in four chunks.

    The spinning runs in C with the GIL released, so several of these on
    several threads really run at the same time, one core each.
    """
    for _ in range(4):
        _write(f"{id}")
        native.spin(seconds / 4)
        _write(f"{id}")
    _stopped(id)
    return id


# ---- what a set returns -----------------------------------------------------


@dataclass
class SetResult:
    """What one set did: its name, time, results and timeline.

    ``elapsed`` is the stopwatch's seconds (for a set timed in parts, the
    sum of its ``parts``).  ``expected`` is roughly how many delays it
    should take (the notebook's figures: 3 for Set #1, 2 for Set #2, ...).
    ``timeline`` has one ``TaskRecord`` per task, from the C pool where a
    taskdemo pool ran it and from a ``Recorder`` otherwise.
    """

    name: str
    what: str
    delay: float
    elapsed: float
    results: List[Any]
    timeline: Timeline
    expected: Optional[float] = None
    parts: List["SetResult"] = field(default_factory=list)

    @property
    def multiple(self) -> Optional[float]:
        """``elapsed / delay``, or None when the delay is 0."""
        return self.elapsed / self.delay if self.delay > 0 else None


def _combine(timelines: Sequence[Timeline]) -> Timeline:
    """One timeline from several sources, worker indices kept distinct.

    Each source numbers its workers from 0; the next source's indices are
    shifted past the previous ones so that rows do not collide.
    """
    records: List[TaskRecord] = []
    offset = 0
    for tl in timelines:
        records.extend(r._replace(worker=r.worker + offset) for r in tl)
        offset += max((r.worker for r in tl), default=-1) + 1
    records.sort(key=lambda r: r.ended)
    return Timeline(records, sum(tl.dropped for tl in timelines))


class _PoolRecords:
    """The records of one taskdemo pool.

    From the pool's own C timeline (``pool.timeline()``) when this build
    has one; otherwise, with a ``Recorder``, by wrapping each task as it
    is submitted.  ``task(fn)`` must be called at submission.
    """

    def __init__(self, pool: ThreadPoolExecutor) -> None:
        self.pool = pool
        self.recorder: Optional[Recorder] = None
        try:
            pool.timeline()
        except (AttributeError, NotImplementedError):  # built without it
            self.recorder = Recorder()

    def task(self, fn: Callable[..., _T]) -> Callable[..., _T]:
        return fn if self.recorder is None else self.recorder.wrap(fn)

    def timeline(self) -> Timeline:
        if self.recorder is not None:
            return self.recorder.timeline()
        return self.pool.timeline()


@contextlib.contextmanager
def _os_threads_gone() -> Iterator[None]:
    """On exit, wait (at most 0.2 s) until the block's threads left the OS.

    The stdlib pool's ``shutdown`` joins its threads, but before CPython
    3.13 ``join`` returns just before the OS thread exits, so the
    Stopwatch line could count a thread that is already finished.  Nothing
    signals the exit, so this is a short bounded poll of the C count.
    """
    before = thread_count()
    yield
    deadline = time.monotonic() + 0.2
    while thread_count() > before and time.monotonic() < deadline:
        time.sleep(0.001)


def _finish(name: str, what: str, delay: float, sw: stopwatch,
            results: List[Any], timeline: Timeline,
            expected: Optional[float]) -> SetResult:
    assert sw.elapsed is not None
    return SetResult(name, what, delay, sw.elapsed, results, timeline,
                     expected)


# ---- the notebook's sets ----------------------------------------------------


def set_1(delay: float = 1.0) -> SetResult:
    """Set #1: the three runs one after another, ~3 x delay."""
    rec = Recorder()
    with stopwatch("Set #1") as sw:
        results = [
            rec.wrap(run_in_sync, thread="main thread")(id, delay)
            for id in RUNS
        ]
        print(f"\nresults = {results}")
    return _finish("Set #1", "3 runs, one after another", delay, sw, results,
                   rec.timeline(), 3)


def set_2(delay: float = 1.0) -> SetResult:
    """Set #2: the stdlib ThreadPoolExecutor(max_workers=2), ~2 x delay."""
    rec = Recorder()
    with stopwatch("Set #2") as sw, _os_threads_gone(), \
            concurrent.futures.ThreadPoolExecutor(max_workers=2) as pool:
        futures = [
            pool.submit(rec.wrap(run_in_sync), id, delay)
            for id in RUNS
        ]

        results = [
            f.result()
            for f in as_completed(futures)
        ]

        print(f"\nresults = {results}")
    return _finish("Set #2", "stdlib ThreadPoolExecutor(max_workers=2)",
                   delay, sw, results, rec.timeline(), 2)


async def demo_with_just_await(runs: List[str], delay: float,
                               rec: Optional[Recorder] = None) -> List[str]:
    """Set #3's coroutine: await each run in turn."""
    coroutine_fn = run_in_async if rec is None else rec.wrap_async(
        run_in_async, thread="asyncio main task")
    results = []
    for id in runs:
        results.append(await coroutine_fn(id, delay))
        # As in the notebook: "await" blocks until the awaited run finishes.

    print(f"\nresults = {results}")
    return results


async def demo_with_explicit_task_creation(
        runs: List[str], delay: float,
        rec: Optional[Recorder] = None) -> List[str]:
    """Set #4's coroutine: create a task per run, then await them."""
    coroutine_fn = run_in_async if rec is None else rec.wrap_async(
        run_in_async)
    tasks = []
    for id in runs:
        coroutine = coroutine_fn(id, delay)  # just a coroutine, not running
        task = asyncio.create_task(coroutine, name=f"asyncio task {id}")
        tasks.append(task)                   # scheduled right away

    results = []
    for t in tasks:
        results.append(await t)

    print(f"\nresults = {results}")
    return results


def set_3(delay: float = 1.0) -> SetResult:
    """Set #3: asyncio, awaiting the runs one after another, ~3 x delay."""
    rec = Recorder()
    with stopwatch("Set #3") as sw:
        results = run(demo_with_just_await(RUNS, delay, rec))
    return _finish("Set #3", "asyncio, await one after another", delay, sw,
                   results, rec.timeline(), 3)


def set_4(delay: float = 1.0) -> SetResult:
    """Set #4: asyncio with create_task, the runs overlap, ~1 x delay."""
    rec = Recorder()
    with stopwatch("Set #4") as sw:
        results = run(demo_with_explicit_task_creation(RUNS, delay, rec))
    return _finish("Set #4", "asyncio, create_task for each run", delay, sw,
                   results, rec.timeline(), 1)


# ---- the C pool -------------------------------------------------------------


def _on_c_pool(name: str, delay: float, workers: int) -> SetResult:
    with stopwatch(name) as sw, \
            ThreadPoolExecutor(max_workers=workers) as pool:
        records = _PoolRecords(pool)
        futures = [
            pool.submit(records.task(run_in_sync), id, delay)
            for id in RUNS
        ]

        results = [
            f.result()
            for f in as_completed(futures)
        ]

        print(f"\nresults = {results}")
    return _finish(name, f"taskdemo.ThreadPoolExecutor(max_workers={workers})",
                   delay, sw, results, records.timeline(),
                   math.ceil(len(RUNS) / workers))


def set_5(delay: float = 1.0, workers: int = 2) -> SetResult:
    """Set #5: Set #2 on taskdemo's C pool, ~2 x delay with 2 workers.

    The ``[id:stopped:2t]`` markers count the pool's threads in C.
    """
    return _on_c_pool("Set #5", delay, workers)


def set_6(delay: float = 1.0) -> SetResult:
    """Set #6: the C pool with a worker per run (3), ~1 x delay."""
    return _on_c_pool("Set #6", delay, len(RUNS))


async def _asyncio_and_pool(pool: ThreadPoolExecutor,
                            records: _PoolRecords, rec: Recorder,
                            delay: float) -> List[str]:
    loop = asyncio.get_running_loop()
    in_pool, in_loop = RUNS[:-1], RUNS[-1]
    jobs: List[Awaitable[str]] = [
        loop.run_in_executor(pool, records.task(run_in_sync), id, delay)
        for id in in_pool
    ]
    traced = rec.wrap_async(run_in_async, thread=f"asyncio task {in_loop}")
    jobs.append(traced(in_loop, delay))
    results = list(await asyncio.gather(*jobs))
    print(f"\nresults = {results}")
    return results


def set_7(delay: float = 1.0, workers: int = 2) -> SetResult:
    """Set #7: asyncio driving the C pool, ~1 x delay with 2 workers.

    One ``gather`` awaits ``loop.run_in_executor(pool, run_in_sync, ...)``
    for '+' and '-', which run on the C pool's threads, and the native
    coroutine ``run_in_async('#', ...)``, which runs on the event loop.
    """
    rec = Recorder()
    with stopwatch("Set #7") as sw, \
            ThreadPoolExecutor(max_workers=workers) as pool:
        records = _PoolRecords(pool)
        results = run(_asyncio_and_pool(pool, records, rec, delay))
    timeline = _combine([records.timeline(), rec.timeline()])
    return _finish("Set #7", f"asyncio gather: run_in_executor on the C pool "
                   f"({workers} workers) + a coroutine", delay, sw, results,
                   timeline, max(1, math.ceil((len(RUNS) - 1) / workers)))


def _cpu_part(name: str, task: Callable[[str, Any], str], amount: Any,
              ids: List[str], threads: int, delay: float,
              expected: float) -> SetResult:
    label = f"{threads} thread" + ("s" if threads > 1 else "")
    with stopwatch(f"{name} ({label})") as sw, ThreadPoolExecutor(
            max_workers=threads,
            thread_name_prefix=f"{threads}-worker pool") as pool:
        records = _PoolRecords(pool)
        futures = [pool.submit(records.task(task), id, amount) for id in ids]
        results = [f.result() for f in as_completed(futures)]
        print(f"\nresults = {results}")
    return _finish(f"{name} ({label})", f"{len(ids)} tasks on {label}",
                   delay, sw, results, records.timeline(), expected)


def _two_parts(name: str, what: str, delay: float,
               parts: List[SetResult]) -> SetResult:
    return SetResult(
        name, what, delay, sum(p.elapsed for p in parts),
        [r for p in parts for r in p.results],
        _combine([p.timeline for p in parts]),
        sum(p.expected or 0.0 for p in parts), parts)


def set_8(delay: float = 1.0, workers: int = 2) -> SetResult:
    """Set #8: CPU-bound pure Python, on 1 thread and then on ``workers``.

    ``workers`` tasks each count down for about ``CPU_FRACTION x delay``
    seconds of work (measured once on this machine).  On one thread they
    run one after another; on ``workers`` threads they take as long,
    because a thread must hold the GIL to run Python code, and only one
    thread holds it at a time.
    """
    ids = [_IDS[i % len(_IDS)] for i in range(workers)]
    iterations = int(iterations_per_second() * delay * CPU_FRACTION)
    share = workers * CPU_FRACTION
    parts = [_cpu_part("Set #8", busy_in_sync, iterations, ids, n, delay,
                       share)
             for n in (1, workers)]
    return _two_parts("Set #8", f"{workers} pure-Python busy tasks, "
                      f"1 thread vs {workers} (the GIL)", delay, parts)


def set_9(delay: float = 1.0, workers: int = 2) -> SetResult:
    """Set #9: CPU-bound C (``native.spin``) on 1 worker, then on ``workers``.

    ``workers`` tasks each spin for ``CPU_FRACTION x delay`` seconds in C
    with the GIL released.  On one worker they run one after another; on
    ``workers`` workers at the same time, each on its own core.  A spin is
    a fixed amount of CPU time, so with fewer free cores than workers the
    OS shares the cores out and the set takes longer, as real work would.
    """
    ids = [_IDS[i % len(_IDS)] for i in range(workers)]
    seconds = delay * CPU_FRACTION
    parts = [_cpu_part("Set #9", spin_in_sync, seconds, ids, n, delay,
                       (workers if n == 1 else 1) * CPU_FRACTION)
             for n in (1, workers)]
    return _two_parts("Set #9", f"{workers} native.spin tasks on the C pool, "
                      f"1 worker vs {workers}", delay, parts)


# ---- running sets, the table and the chart ----------------------------------

SETS: Dict[int, Callable[..., SetResult]] = {
    1: set_1, 2: set_2, 3: set_3, 4: set_4, 5: set_5, 6: set_6, 7: set_7,
    8: set_8, 9: set_9,
}

# The sets whose pool size --workers sets.
_TAKES_WORKERS = {5, 7, 8, 9}


def run_sets(numbers: Sequence[int], delay: float = 1.0,
             workers: int = 2) -> List[SetResult]:
    """Run the given sets in order, with a blank line between them."""
    results = []
    for i, number in enumerate(numbers):
        if i:
            print()
        fn = SETS[number]
        if number in _TAKES_WORKERS:
            results.append(fn(delay, workers))
        else:
            results.append(fn(delay))
    return results


def _rows(results: Sequence[SetResult]) -> Iterator[List[str]]:
    def times(r: SetResult) -> List[str]:
        multiple = "-" if r.multiple is None else f"{r.multiple:.2f}"
        expected = "-" if r.expected is None else f"~{r.expected:g}"
        return [f"{r.elapsed:.3f}s", multiple, expected]

    for r in results:
        yield [r.name, r.what] + times(r)
        for p in r.parts:
            yield ["  " + p.name[len(r.name):].strip(), p.what] + times(p)


def format_table(results: Sequence[SetResult]) -> str:
    """The comparison table, plain text: set, what ran, elapsed, x delay."""
    header = ["set", "what ran", "elapsed", "x delay", "expected"]
    rows = [header] + list(_rows(results))
    widths = [max(len(row[i]) for row in rows) for i in range(len(header))]
    lines = []
    for row in rows:
        cells = [row[i].ljust(widths[i]) if i < 2 else row[i].rjust(widths[i])
                 for i in range(len(row))]
        lines.append("  ".join(cells).rstrip())
    lines.insert(1, "  ".join("-" * w for w in widths))
    return "\n".join(lines)


def plot_sets(results: Sequence[SetResult],
              path: Optional[str] = None) -> "Figure":
    """Draw every set's timeline, one subplot per set, on one figure.

    Saves it to ``path`` (the format follows the extension) if given, and
    returns the matplotlib Figure.  Uses no pyplot state, so it works
    without a display.  Needs matplotlib.
    """
    try:
        from matplotlib.figure import Figure
    except ImportError as exc:
        raise ImportError(
            'plot_sets needs matplotlib: pip install "taskdemo[notebook]"'
        ) from exc
    heights = [max(1, len({(t.worker, t.thread) for t in r.timeline})) + 1.2
               for r in results]
    fig = Figure(figsize=(10, 0.45 * sum(heights) + 0.5),
                 layout="constrained")
    axes = fig.subplots(len(results), 1, squeeze=False,
                        gridspec_kw={"height_ratios": heights})[:, 0]
    for ax, r in zip(axes, results):
        plot(r.timeline, ax=ax,
             title=f"{r.name}: {r.what}, {r.elapsed:.3f}s")
    if path is not None:
        fig.savefig(path, dpi=100)
    return fig


# ---- the command line -------------------------------------------------------


def _delay(text: str) -> float:
    try:
        value = float(text)
    except ValueError:
        raise argparse.ArgumentTypeError(
            f"must be a number of seconds, not {text!r}") from None
    if not (math.isfinite(value) and value >= 0):
        raise argparse.ArgumentTypeError(
            f"must be a finite number of seconds >= 0, not {text!r}")
    return value


def _workers(text: str) -> int:
    try:
        value = int(text)
    except ValueError:
        raise argparse.ArgumentTypeError(
            f"must be a whole number, not {text!r}") from None
    if not 1 <= value <= MAX_WORKERS:
        raise argparse.ArgumentTypeError(
            f"must be from 1 to {MAX_WORKERS}, not {value}")
    return value


def parse_sets(text: str) -> List[int]:
    """Parse ``all`` or a list like ``1,2,5-7`` into sorted set numbers."""
    known = sorted(SETS)
    if text.strip().lower() == "all":
        return known
    chosen: Set[int] = set()
    for item in text.split(","):
        item = item.strip()
        try:
            if "-" in item:
                lo, hi = (int(x) for x in item.split("-", 1))
                if lo > hi:
                    raise ValueError
                numbers = range(lo, hi + 1)
            else:
                numbers = range(int(item), int(item) + 1)
        except ValueError:
            raise argparse.ArgumentTypeError(
                f"{item!r} is not a set number or range like 5-7") from None
        unknown = [n for n in numbers if n not in SETS]
        if unknown:
            raise argparse.ArgumentTypeError(
                f"unknown set {unknown[0]} (the sets are "
                f"{known[0]}-{known[-1]})")
        chosen.update(numbers)
    return sorted(chosen)


def _output_file(text: str) -> str:
    folder = os.path.dirname(os.path.abspath(text))
    if not os.path.isdir(folder):
        raise argparse.ArgumentTypeError(f"no such directory: {folder}")
    return text


_DESCRIPTION = f"""\
Run the original notebook's sets, three runs ('+', '-', '#') that each last
--delay seconds, and new ones on taskdemo's C thread pool, then print a
comparison table.

  Set #1  one after another                            ~3 x delay
  Set #2  stdlib ThreadPoolExecutor(max_workers=2)     ~2 x delay
  Set #3  asyncio, await one after another             ~3 x delay
  Set #4  asyncio, create_task for each run            ~1 x delay
  Set #5  taskdemo pool with --workers workers         ~2 x delay for 2
  Set #6  taskdemo pool with 3 workers                 ~1 x delay
  Set #7  asyncio: run_in_executor on the taskdemo     ~1 x delay
          pool mixed with a coroutine in one gather
  Set #8  CPU-bound Python on 1 thread, then on        no faster: the GIL
          --workers threads
  Set #9  CPU-bound C (native.spin) on 1 worker, then  faster: one core each
          on --workers workers

Sets #8 and #9 run --workers tasks of {CPU_FRACTION:g} x delay of work each, so
at the default delay the whole demo takes about 15 seconds.
"""


def make_parser(prog: str = "python -m taskdemo") -> argparse.ArgumentParser:
    """The command line's argument parser."""
    parser = argparse.ArgumentParser(
        prog=prog,
        formatter_class=argparse.RawDescriptionHelpFormatter,
        description=_DESCRIPTION,
    )
    parser.add_argument(
        "--delay", type=_delay, default=1.0, metavar="SECONDS",
        help="how long each run lasts (default 1; the notebook used 5)")
    parser.add_argument(
        "--workers", type=_workers, default=2, metavar="N",
        help="workers of the taskdemo pool in Sets #5 and #7, and threads "
             "(and tasks) in Sets #8 and #9 (default 2)")
    parser.add_argument(
        "--sets", type=parse_sets, default=sorted(SETS), metavar="LIST",
        help="which sets to run, e.g. 1,2,5-7 (default: all)")
    parser.add_argument(
        "--trace", type=_output_file, metavar="FILE.json",
        help="write a Chrome trace of every set (open it in Perfetto or "
             "chrome://tracing)")
    parser.add_argument(
        "--plot", type=_output_file, metavar="FILE.png",
        help="save a timeline chart of every set (needs matplotlib)")
    return parser


def main(argv: Optional[Sequence[str]] = None,
         prog: str = "python -m taskdemo") -> int:
    """Run the command line; returns the exit status (2: bad arguments)."""
    parser = make_parser(prog)
    args = parser.parse_args(argv)
    # find_spec, not import: importing matplotlib (numpy) may start BLAS
    # threads, which the sets' thread counts would then include.
    if args.plot is not None and not importlib.util.find_spec("matplotlib"):
        parser.error('--plot needs matplotlib: '
                         'pip install "taskdemo[notebook]"')
    try:
        results = run_sets(args.sets, args.delay, args.workers)
    except KeyboardInterrupt:
        print("\ninterrupted", file=sys.stderr)
        return 130
    print()
    print(format_table(results))
    dropped = sum(r.timeline.dropped for r in results)
    if dropped:
        print(f"(the timelines dropped {dropped} records)")
    if args.trace is not None:
        from .timeline import to_chrome_trace
        to_chrome_trace({f"{r.name}: {r.what}": r.timeline for r in results},
                        args.trace)
        print(f"Trace: {args.trace} (open it in Perfetto or chrome://tracing)")
    if args.plot is not None:
        plot_sets(results, args.plot)
        print(f"Plot: {args.plot}")
    return 0


if __name__ == "__main__":
    sys.exit(main(prog="python -m taskdemo.demo"))
