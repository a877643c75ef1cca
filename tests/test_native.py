"""taskdemo.native.sleep / spin: C functions that run without the GIL, so
two of them on two workers overlap.  The machine has 2 cores; the bounds
below are generous because timing is the behaviour under test."""

from __future__ import annotations

import threading
import time

import pytest

WAIT = 10.0


@pytest.mark.parametrize("fn_name", ["sleep", "spin"])
def test_direct_call_takes_at_least_the_duration(taskdemo, fn_name):
    fn = getattr(taskdemo.native, fn_name)
    start = time.monotonic()
    fn(0.05)
    assert time.monotonic() - start >= 0.05 - 0.002
    start = time.monotonic()
    fn(0)
    fn(0.0)
    assert time.monotonic() - start < 1.0


def test_spin_burns_cpu_and_sleep_does_not(taskdemo):
    """spin is busy work until this thread has used the CPU time asked
    for; sleep uses next to none.  The bounds leave room for a machine
    busy with other processes."""
    start = time.thread_time()
    taskdemo.native.spin(0.3)
    spin_cpu = time.thread_time() - start
    start = time.thread_time()
    taskdemo.native.sleep(0.3)
    sleep_cpu = time.thread_time() - start
    assert 0.3 - 0.001 <= spin_cpu < 0.4, spin_cpu
    assert sleep_cpu < 0.03, sleep_cpu


ONE_CORE = """
import os, threading, time
import taskdemo

os.sched_setaffinity(0, {min(os.sched_getaffinity(0))})   # one core

def timed(n):
    threads = [threading.Thread(target=taskdemo.native.spin, args=(0.2,))
               for _ in range(n)]
    start = time.monotonic()
    for t in threads:
        t.start()
    for t in threads:
        t.join()
    return time.monotonic() - start

print(f"{timed(1):.3f} {timed(2):.3f}")
"""


@pytest.mark.skipif(not hasattr(__import__("os"), "sched_setaffinity"),
                    reason="needs os.sched_setaffinity")
def test_two_spins_on_one_core_take_twice_as_long(taskdemo, run_in_subprocess):
    """spin is a fixed amount of CPU work, not a wait: confined to one
    core, two spins of 0.2 s take about 0.4 s, so the parallelism the
    notebook shows on two cores is real."""
    rc, out, err = run_in_subprocess(ONE_CORE, timeout=30)
    assert rc == 0, err
    one, two = map(float, out.split())
    assert one >= 0.2 - 0.002, out
    assert two >= 2 * 0.2 - 0.01, out


def test_two_spins_on_two_workers_run_in_parallel(impl, pools, taskdemo):
    """Two spin(0.3) on two workers take well under the 0.6 s they would
    take if spin held the GIL (the notebook's point, with real CPU work)."""
    pool = pools.new(max_workers=2)
    pools.assert_usable(pool)  # warm up: both code paths loaded
    barrier = pools.barrier(2)

    def task():
        barrier.wait()  # start together, on two different workers
        taskdemo.native.spin(0.3)

    start = time.monotonic()
    fs = [pool.submit(task) for _ in range(2)]
    for f in fs:
        f.result(timeout=WAIT)
    elapsed = time.monotonic() - start
    assert 0.3 - 0.002 <= elapsed < 0.5, f"{elapsed:.3f}s: spins did not overlap"


def test_native_sleeps_overlap(impl, pools, taskdemo):
    pool = pools.new(max_workers=4)
    start = time.monotonic()
    fs = [pool.submit(taskdemo.native.sleep, 0.3) for _ in range(4)]
    for f in fs:
        f.result(timeout=WAIT)
    elapsed = time.monotonic() - start
    assert 0.3 - 0.002 <= elapsed < 0.6, f"{elapsed:.3f}s: sleeps did not overlap"


def test_python_thread_runs_while_native_spins(taskdemo):
    """While the main thread is inside spin(), another Python thread can
    take the GIL and finish; with the GIL held it could not start until
    spin returned."""
    go = threading.Event()
    finished_at = []

    def other():
        go.wait(WAIT)
        finished_at.append(time.monotonic())

    t = threading.Thread(target=other)
    t.start()
    try:
        start = time.monotonic()
        go.set()
        taskdemo.native.spin(0.4)
        end = time.monotonic()
    finally:
        go.set()
        t.join(WAIT)
    assert finished_at, "the other thread never ran"
    assert finished_at[0] < end - 0.1, (
        f"other thread ran {finished_at[0] - start:.3f}s in, "
        f"spin returned at {end - start:.3f}s: spin held the GIL"
    )
