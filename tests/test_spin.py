"""The bounded spin before sleeping (csrc/td_spin.h).

A worker that runs out of tasks, and a thread waiting in ``result()``,
watch for their event for up to 50 us before they sleep, so a quick round
trip costs no wake-up; ``TASKDEMO_SPIN_US`` changes the bound (0: off).
These tests check the mechanism by what the kernel counts, not by timing:
the caller's voluntary context switches (each one a sleep), and the CPU
an idle pool uses (the spin must end).
"""
from __future__ import annotations

import sys
import textwrap
import time

import pytest

pytestmark = pytest.mark.skipif(
    not sys.platform.startswith("linux"),
    reason="RUSAGE_THREAD (per-thread context switches) is Linux's")

ROUND_TRIPS = textwrap.dedent("""
    import resource
    import taskdemo

    def f(x):
        return x

    with taskdemo.ThreadPoolExecutor(max_workers=2) as pool:
        for _ in range(50):
            pool.submit(f, 1).result()
        before = resource.getrusage(resource.RUSAGE_THREAD).ru_nvcsw
        for _ in range(500):
            assert pool.submit(f, 1).result() == 1
        after = resource.getrusage(resource.RUSAGE_THREAD).ru_nvcsw
    print((after - before) / 500)
""")


def sleeps_per_round_trip(run_in_subprocess, monkeypatch, spin_us):
    """The child's voluntary context switches per round trip, with
    TASKDEMO_SPIN_US unset (None) or set (the child inherits it)."""
    with monkeypatch.context() as env:
        if spin_us is None:
            env.delenv("TASKDEMO_SPIN_US", raising=False)
        else:
            env.setenv("TASKDEMO_SPIN_US", str(spin_us))
        rc, out, err = run_in_subprocess(ROUND_TRIPS, timeout=60)
    assert rc == 0, err
    return float(out)


def test_a_quick_round_trip_does_not_put_the_caller_to_sleep(
        run_in_subprocess, monkeypatch):
    """submit(f).result() on an idle pool: the worker spins for the task
    and the caller for the result, so most round trips never sleep; with
    spinning off, each one does (about one context switch each)."""
    spinning = sleeps_per_round_trip(run_in_subprocess, monkeypatch, None)
    not_spinning = sleeps_per_round_trip(run_in_subprocess, monkeypatch, 0)
    assert spinning < 0.5, spinning
    assert not_spinning > 0.5, not_spinning


def test_an_idle_pool_stops_spinning(taskdemo):
    """After its work, a pool uses no CPU while idle: each worker spins
    for at most 50 us, once, and then sleeps."""
    with taskdemo.ThreadPoolExecutor(max_workers=2) as pool:
        for f in [pool.submit(pow, 2, i) for i in range(100)]:
            f.result()
        time.sleep(0.05)   # every spin has ended by now
        cpu0, wall0 = time.process_time(), time.perf_counter()
        time.sleep(0.3)
        cpu = time.process_time() - cpu0
        wall = time.perf_counter() - wall0
    assert cpu < 0.1 * wall, (cpu, wall)
