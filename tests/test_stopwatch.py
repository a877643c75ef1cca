"""taskdemo.stopwatch(name): the notebook's stopwatch, its two output lines,
where they go, and `.elapsed`."""

from __future__ import annotations

import contextlib
import io
import re
import sys
import threading
import time

import pytest

WAIT = 10.0

# The printed thread counts must start from a quiet process.
pytestmark = pytest.mark.usefixtures("settled_threads")

STARTED = re.compile(r"^Stopwatch: (?P<name>.*): Started: (?P<n>\d+) thread\(s\)$")
STOPPED = re.compile(
    r"^Stopwatch: (?P<name>.*): Stopped: (?P<secs>\d+\.\d{3})s, (?P<n>\d+) thread\(s\)$"
)


def _run(taskdemo, name, body=lambda: None):
    """Runs body() inside stopwatch(name); returns (lines printed, sw)."""
    buf = io.StringIO()
    with contextlib.redirect_stdout(buf):
        with taskdemo.stopwatch(name) as sw:
            body()
    return buf.getvalue().splitlines(), sw


def test_output_format(taskdemo, capsys):
    lines, sw = _run(taskdemo, "Set #1")
    assert len(lines) == 2, lines
    started, stopped = STARTED.match(lines[0]), STOPPED.match(lines[1])
    assert started and started["name"] == "Set #1" and started["n"] == "0", lines
    assert stopped and stopped["name"] == "Set #1" and stopped["n"] == "0", lines
    # The printed seconds are `.elapsed` rounded to 3 places.
    assert abs(float(stopped["secs"]) - sw.elapsed) <= 0.0015
    # Nothing went to the real stdout.
    assert capsys.readouterr().out == ""


def test_elapsed_is_a_float_with_a_lower_bound(taskdemo):
    """`.elapsed` covers the body: at least the time the body slept, and no
    more than the time measured around the whole `with`."""
    outer_start = time.monotonic()
    lines, sw = _run(taskdemo, "sleepy", lambda: taskdemo.native.sleep(0.05))
    outer = time.monotonic() - outer_start
    assert isinstance(sw.elapsed, float)
    assert 0.05 - 0.002 <= sw.elapsed <= outer + 0.002
    assert float(STOPPED.match(lines[1])["secs"]) >= 0.048


def test_nested_stopwatches_are_consistent(taskdemo):
    """Both read one monotonic clock: an inner stopwatch never measures more
    than the outer one around it, and nothing is negative."""
    buf = io.StringIO()
    with contextlib.redirect_stdout(buf):
        with taskdemo.stopwatch("outer") as outer:
            inners = []
            for i in range(20):
                with taskdemo.stopwatch(i) as inner:
                    pass
                inners.append(inner.elapsed)
    assert all(0.0 <= v <= outer.elapsed for v in inners)
    assert sum(inners) <= outer.elapsed
    assert len(buf.getvalue().splitlines()) == 42


def test_prints_to_the_current_stdout(taskdemo):
    """Each line goes to whatever sys.stdout is at that moment: the Started
    line to the stream in place on enter, the Stopped line to the one in
    place on exit (as print() would), not to a stream captured earlier."""
    first, second = io.StringIO(), io.StringIO()
    with contextlib.redirect_stdout(first):
        with taskdemo.stopwatch("swap"):
            sys.stdout = second  # redirect_stdout restores it on exit
    assert STARTED.match(first.getvalue().strip())
    assert STOPPED.match(second.getvalue().strip())
    assert "Stopped" not in first.getvalue()
    assert "Started" not in second.getvalue()


class _Custom:
    def __format__(self, spec):
        return "formatted" + spec

    def __str__(self):
        return "str"


@pytest.mark.parametrize(
    "name, shown",
    [
        (42, "42"),
        (None, "None"),
        (3.5, "3.5"),
        (_Custom(), "formatted"),
        ("{x} %s %d {}", "{x} %s %d {}"),
        ("ünïcødé ✓", "ünïcødé ✓"),
        ("", ""),
    ],
)
def test_name_is_formatted_like_an_f_string(taskdemo, name, shown):
    """The name goes through format(name, "") exactly once, like f"{name}":
    any object works and braces or percent signs are printed as they are."""
    lines, _ = _run(taskdemo, name)
    assert lines[0] == f"Stopwatch: {shown}: Started: 0 thread(s)"
    assert lines[1].startswith(f"Stopwatch: {shown}: Stopped: ")


def test_thread_counts_around_a_pool(taskdemo):
    """The notebook's Set #2: stopwatch and a 2-worker pool in one `with`.
    It starts with 0 threads and, the pool being shut down first, stops
    with 0.  With the pool still alive at exit it reports its 2 workers."""
    buf = io.StringIO()
    with contextlib.redirect_stdout(buf):
        with taskdemo.stopwatch("Set #2"), taskdemo.ThreadPoolExecutor(max_workers=2) as pool:
            results = list(pool.map(pow, range(3), [2] * 3))
    assert results == [0, 1, 4]
    started, stopped = buf.getvalue().splitlines()
    assert STARTED.match(started)["n"] == "0"
    assert STOPPED.match(stopped)["n"] == "0"

    pool = taskdemo.ThreadPoolExecutor(max_workers=2)
    barrier = threading.Barrier(2, timeout=WAIT)
    buf = io.StringIO()
    try:
        with contextlib.redirect_stdout(buf):
            with taskdemo.stopwatch("alive"):
                fs = [pool.submit(barrier.wait) for _ in range(2)]
                for f in fs:
                    f.result(timeout=WAIT)
    finally:
        barrier.abort()
        pool.shutdown(wait=True)
    started, stopped = buf.getvalue().splitlines()
    assert STARTED.match(started)["n"] == "0"
    assert STOPPED.match(stopped)["n"] == "2"


def test_exception_in_body_propagates(taskdemo):
    """The stopwatch never swallows the body's exception."""
    buf = io.StringIO()
    with contextlib.redirect_stdout(buf):
        with pytest.raises(KeyError, match="inside"):
            with taskdemo.stopwatch("boom"):
                raise KeyError("inside")
    assert STARTED.match(buf.getvalue().splitlines()[0])


def test_stopwatch_needs_a_name(taskdemo):
    with pytest.raises(TypeError):
        taskdemo.stopwatch()
