"""Worker threads: names, lazy spawning, visibility to `threading`, OS and
taskdemo thread counts, and joining on shutdown."""

from __future__ import annotations

import os
import re
import sys
import threading
import time

import pytest

WAIT = 10.0

# Since CPython 3.13 Thread.join() ends in a pthread_join, so a
# joined stdlib worker is gone from the OS too.
JOIN_WAITS_FOR_OS_THREAD = sys.version_info >= (3, 13)

needs_proc = pytest.mark.skipif(
    not os.path.isdir("/proc/self/task"), reason="needs Linux /proc/self/task"
)


def _settles(read, expected, timeout: float = 2.0) -> bool:
    """Whether read() returns expected within timeout seconds."""
    deadline = time.monotonic() + timeout
    while read() != expected:
        if time.monotonic() > deadline:
            return False
        time.sleep(0.001)
    return True


def os_threads() -> int:
    """OS threads of this process, counted independently of taskdemo."""
    return len(os.listdir("/proc/self/task"))


def _names_of_two_workers(pools, pool):
    """Runs two tasks that meet at a barrier (so they are on two different
    workers) and returns their thread names."""
    barrier = pools.barrier(2)

    def name():
        barrier.wait()
        return threading.current_thread().name

    fs = [pool.submit(name) for _ in range(2)]
    return sorted(f.result(timeout=WAIT) for f in fs)


def test_default_worker_names(impl, pools):
    """Workers are named "ThreadPoolExecutor-N_i"; each pool gets its own N."""
    a = _names_of_two_workers(pools, pools.new(max_workers=2))
    b = _names_of_two_workers(pools, pools.new(max_workers=2))
    pattern = re.compile(r"^ThreadPoolExecutor-(\d+)_([01])$")
    for names in (a, b):
        matches = [pattern.match(n) for n in names]
        assert all(matches), names
        assert {m.group(1) for m in matches} == {matches[0].group(1)}
        assert sorted(m.group(2) for m in matches) == ["0", "1"]
    assert pattern.match(a[0]).group(1) != pattern.match(b[0]).group(1)


def test_custom_prefix_worker_names(impl, pools):
    pool = pools.new(max_workers=2, thread_name_prefix="crunch")
    assert _names_of_two_workers(pools, pool) == ["crunch_0", "crunch_1"]


@needs_proc
@pytest.mark.parametrize("prefix, expected", [
    ("crunch", ["crunch_0", "crunch_1"]),
    # Linux keeps 15 bytes of a thread's name: the prefix is cut, the
    # index kept, so the names stay distinct.
    ("a_rather_long_prefix", ["a_rather_long_0", "a_rather_long_1"]),
    (None, None),   # the default prefix, "ThreadPoolExecutor-N"
])
def test_workers_are_named_for_the_os(taskdemo, prefix, expected):
    """Each worker's OS name (/proc/self/task/<tid>/comm, what top, ps and
    debuggers show) is its Python name, cut to the OS's 15 bytes.  (The
    stdlib's workers get OS names only from CPython 3.14 on.)"""
    kwargs = {} if prefix is None else {"thread_name_prefix": prefix}
    barrier = threading.Barrier(2, timeout=WAIT)

    def names():
        barrier.wait()
        tid = threading.get_native_id()
        with open(f"/proc/self/task/{tid}/comm") as fh:
            return fh.read().rstrip("\n"), threading.current_thread().name

    with taskdemo.ThreadPoolExecutor(max_workers=2, **kwargs) as pool:
        got = sorted(f.result(timeout=WAIT)
                     for f in [pool.submit(names) for _ in range(2)])
    os_names = [os_name for os_name, _ in got]
    if expected is not None:
        assert os_names == expected
    for os_name, py_name in got:
        index = py_name.rsplit("_", 1)[1]
        assert len(os_name.encode()) <= 15
        assert os_name.endswith("_" + index)
        assert py_name.startswith(os_name[:-len(index) - 1])


@needs_proc
def test_workers_spawn_lazily_up_to_max_workers(impl, pools, settled_threads):
    """No thread exists before the first submit; one submit starts at most
    one worker; however much is queued, at most max_workers ever run."""
    before_py, before_os = threading.active_count(), os_threads()
    pool = pools.new(max_workers=3, thread_name_prefix="lazy")
    assert threading.active_count() == before_py
    assert os_threads() == before_os

    gate = pools.event()
    first = pool.submit(gate.wait, WAIT)
    assert threading.active_count() - before_py <= 1
    barrier = pools.barrier(3)  # 2 tasks + this thread

    def meet():
        barrier.wait()
        gate.wait(WAIT)
        return threading.current_thread().name

    fs = [pool.submit(meet) for _ in range(2)]
    barrier.wait()  # now all three workers are busy
    fs += [pool.submit(lambda: threading.current_thread().name) for _ in range(30)]
    assert threading.active_count() - before_py == 3
    gate.set()
    first.result(timeout=WAIT)
    names = {f.result(timeout=WAIT) for f in fs}
    assert names <= {"lazy_0", "lazy_1", "lazy_2"}


def test_idle_worker_is_reused(impl, pools):
    """Tasks submitted one after another, each waited for, run on the idle
    worker instead of starting new ones up to max_workers.  Strictly this is
    a race (the finished worker must report idle before the next submit),
    which the worker wins unless the OS preempts it for a GIL switch
    interval; so a little slack, far from the 8 a pool without reuse
    reaches."""
    pool = pools.new(max_workers=8)
    names = {
        pool.submit(lambda: threading.current_thread().name).result(timeout=WAIT)
        for _ in range(200)
    }
    assert len(names) <= 3, names


def test_workers_visible_to_threading_and_joined_by_shutdown(
    impl, pools, taskdemo, settled_threads
):
    """While alive, workers count in threading.active_count(), appear in
    threading.enumerate() under their names and count in
    taskdemo.thread_count(); once shutdown(wait=True) returns they are gone
    from all three."""
    before_py = threading.active_count()
    before_os = taskdemo.thread_count()
    pool = pools.new(max_workers=2, thread_name_prefix="seen")
    barrier = pools.barrier(3)
    gate = pools.event()

    def hold():
        barrier.wait()
        gate.wait(WAIT)

    fs = [pool.submit(hold) for _ in range(2)]
    barrier.wait()
    assert threading.active_count() == before_py + 2
    names = sorted(t.name for t in threading.enumerate() if t.name.startswith("seen_"))
    assert names == ["seen_0", "seen_1"]
    assert taskdemo.thread_count() == before_os + 2
    gate.set()
    for f in fs:
        f.result(timeout=WAIT)
    pool.shutdown(wait=True)
    assert threading.active_count() == before_py
    assert not [t for t in threading.enumerate() if t.name.startswith("seen_")]
    if impl.is_taskdemo:
        # taskdemo joins its pthreads and waits until the OS has dropped
        # them, so they are gone from the OS count at once.
        assert taskdemo.thread_count() == before_os
    elif JOIN_WAITS_FOR_OS_THREAD:
        # The stdlib's join ends in pthread_join, which returns a moment
        # before the kernel drops the thread from /proc/self/task (before
        # 3.13 it returns earlier still: not checked).
        assert _settles(taskdemo.thread_count, before_os)


def test_additional_thread_count_inside_and_after_pool(impl, pools, taskdemo, settled_threads):
    """The notebook's measurement: a 2-worker pool running 3 tasks sees 2
    additional threads from inside every task, and 0 after the `with`
    block.  Tasks 0 and 1 meet at a barrier, so both workers exist when
    they read; task 2 runs on one of those same two workers."""
    assert taskdemo.additional_thread_count() == 0, "threads leaked by an earlier test"
    before_py = threading.active_count()
    barrier = pools.barrier(2)

    def task(i):
        if i < 2:
            barrier.wait()
        return taskdemo.additional_thread_count(), threading.active_count()

    with impl.Executor(max_workers=2) as pool:
        fs = [pool.submit(task, i) for i in range(3)]
        seen = [f.result(timeout=WAIT) for f in fs]
    assert seen == [(2, before_py + 2)] * 3
    assert threading.active_count() == before_py
    if impl.is_taskdemo:
        assert taskdemo.additional_thread_count() == 0
    elif JOIN_WAITS_FOR_OS_THREAD:
        # See the previous test for why the stdlib's OS count may lag.
        assert _settles(taskdemo.additional_thread_count, 0)


@needs_proc
def test_thread_count_is_the_os_count(taskdemo, settled_threads):
    """thread_count() counts OS threads, including plain Python threads."""
    assert isinstance(taskdemo.thread_count(), int)
    assert taskdemo.thread_count() == os_threads()
    stop = threading.Event()
    started = threading.Event()

    def run():
        started.set()
        stop.wait(WAIT)

    t = threading.Thread(target=run)
    t.start()
    try:
        assert started.wait(WAIT)
        assert taskdemo.thread_count() == os_threads()
        assert taskdemo.additional_thread_count() >= 1
    finally:
        stop.set()
        t.join(WAIT)


def test_additional_thread_count_is_never_negative(run_in_subprocess):
    """The baseline is taken at import; a thread that was alive then and
    exits later must not drive the count below zero."""
    code = """
        import threading
        stop = threading.Event()
        t = threading.Thread(target=stop.wait)
        t.start()
        import taskdemo
        base = taskdemo.thread_count()
        assert taskdemo.additional_thread_count() == 0
        stop.set()
        t.join()
        n = taskdemo.additional_thread_count()
        assert isinstance(n, int) and n == 0, n
        print("ok", base)
    """
    rc, out, err = run_in_subprocess(code, timeout=WAIT)
    assert rc == 0, err
    assert out.startswith("ok")


NO_COUNTER = """
import importlib
import taskdemo
import taskdemo._taskdemo as C
import taskdemo._threads as T

def thread_count():
    raise NotImplementedError("thread_count is not implemented here")

C.thread_count = thread_count   # as on a system without a counter
importlib.reload(T)             # what importing taskdemo runs there
try:
    T.additional_thread_count()
except NotImplementedError as exc:
    print("additional:", exc)
with taskdemo.ThreadPoolExecutor(max_workers=1) as pool:
    print("pool:", pool.submit(pow, 2, 3).result(timeout=10))
"""


def test_import_works_without_a_thread_counter(run_in_subprocess):
    """Where the OS has no thread counter, thread_count() raises
    NotImplementedError, and so does additional_thread_count(), but
    importing taskdemo and its pool still work."""
    rc, out, err = run_in_subprocess(NO_COUNTER, timeout=WAIT * 3)
    assert rc == 0, err
    assert "additional: thread_count is not implemented here" in out
    assert "pool: 8" in out
