"""The workloads of issue 4, and how each one is measured.

A workload opens a pool through its adapter (threads started, untimed),
measures one sample, and closes the pool (untimed).  Each sample is a dict
of metrics; `primary` names the one the tables rank by.  Two kinds open
their own pools instead: workload 5 (memory), which runs in a fresh
interpreter, and the timeline on/off comparison, which alternates a pool
with recording on and one with it off, pair by pair.
"""
import contextlib
import ctypes
import gc
import io
import json
import os
import statistics
import subprocess
import sys
import threading
import time
from pathlib import Path

import taskdemo

from pools import HANDSHAKE_TIMEOUT, f

HERE = Path(__file__).resolve().parent

THROUGHPUT, LATENCY, MEMORY, SCALING, SEED, TIMELINE = (
    "throughput", "latency", "memory", "scaling", "seed", "timeline")

# Which way is better, per kind of primary metric.
LOWER_IS_BETTER = {THROUGHPUT: True, LATENCY: True, MEMORY: True,
                   SCALING: False, SEED: True, TIMELINE: True}


class Workload:
    def __init__(self, id, title, kind, primary, unit, workers, measure,
                 pools=True, loop=False, only=None, needs_pool=True):
        self.id = id
        self.title = title
        self.kind = kind
        self.primary = primary   # metric key in a sample
        self.unit = unit
        self.workers = workers
        self.measure = measure   # (adapter, pool, cfg) -> sample dict
        self.pools = pools       # run on the pools
        self.loop = loop         # run on the plain loop too
        self.only = only         # None, or the pool names it runs on
        self.needs_pool = needs_pool   # False: measure opens its own

    def describe(self):
        return {"title": self.title, "kind": self.kind,
                "primary": self.primary, "unit": self.unit,
                "workers": self.workers}


# -- measuring ------------------------------------------------------------

def _timed(call, n):
    gc.collect()
    t0 = time.perf_counter()
    out = call(n)
    seconds = time.perf_counter() - t0
    if out is not None and len(out) != n:
        raise RuntimeError(f"expected {n} results, got {len(out)}")
    return {"seconds": seconds, "ns_per_task": seconds * 1e9 / n}


def throughput(method, n_key="n"):
    def measure(adapter, pool, cfg):
        return _timed(lambda n: getattr(adapter, method)(pool, n),
                      cfg[n_key])
    return measure


def latency(adapter, pool, cfg):
    adapter.roundtrips(pool, 50)   # warm the path, untimed
    gc.collect()
    lat = sorted(adapter.roundtrips(pool, cfg["latency_n"]))
    p99 = lat[min(len(lat) - 1, int(round(0.99 * (len(lat) - 1))))]
    return {"median_us": statistics.median(lat) / 1e3, "p99_us": p99 / 1e3}


def rss_bytes():
    """Resident set size from /proc/self/statm (C allocations included)."""
    with open("/proc/self/statm") as fh:
        return int(fh.read().split()[1]) * os.sysconf("SC_PAGE_SIZE")


try:
    _malloc_trim = ctypes.CDLL("libc.so.6").malloc_trim
except (OSError, AttributeError):   # not glibc
    _malloc_trim = None


def memory_in_child(adapter, pool, cfg):
    """Workload 5 in a fresh interpreter (bench/memchild.py): in this one,
    memory freed by earlier workloads stays resident and is reused, which
    hides growth (in-process samples shrank round after round)."""
    proc = subprocess.run(
        [sys.executable, str(HERE / "memchild.py"), adapter.name,
         str(cfg["mem_n"]), str(cfg["workers"])],
        capture_output=True, text=True, timeout=300)
    if proc.returncode != 0:
        raise RuntimeError(f"memchild.py failed: {proc.stderr.strip()}")
    return json.loads(proc.stdout)


def memory(adapter, pool, cfg):
    """Bytes of RSS per task queued behind blocked workers.  The caller
    keeps every handle (future) alive, as a user waiting on them would."""
    n, workers = cfg["mem_n"], cfg["workers"]
    release = adapter.block_all(pool, workers)
    try:
        gc.collect()
        if _malloc_trim is not None:
            _malloc_trim(0)   # a tight baseline: give freed heap back
        before = rss_bytes()
        submit = adapter.submit
        handles = [submit(pool, f, i) for i in range(n)]
        after = rss_bytes()
    finally:
        release.set()
    adapter.settle(pool)
    adapter.gather(pool, handles)
    return {"bytes_per_task": (after - before) / n,
            "rss_delta_mib": (after - before) / 2**20}


def scaling(workers):
    def measure(adapter, pool, cfg):
        per_worker, seconds = cfg["spin_tasks"], cfg["spin_seconds"]
        spin = taskdemo.native.spin
        t0 = time.perf_counter()
        adapter.gather(pool, [adapter.submit(pool, spin, seconds)
                              for _ in range(per_worker * workers)])
        elapsed = time.perf_counter() - t0
        return {"efficiency": per_worker * seconds / elapsed,
                "seconds": elapsed}
    return measure


RUNS = ["+", "-", "#"]


def run_in_sync(id, delay):
    """The seed notebook's task, with its 0.5 s step scaled to delay / 10
    (the seed: delay 5 s, steps of 0.5 s)."""
    step = delay / 10
    starting_time = time.time()
    while time.time() - starting_time < delay:
        sys.stdout.write(f"{id}")
        time.sleep(step)
        sys.stdout.write(f"{id}")
    sys.stdout.write(
        f"[{id}:stopped:{taskdemo.additional_thread_count()}t] ")
    return id


def seed_set(ideal_delays):
    """A set of the seed's three runs; overhead above ideal_delays x delay."""
    def measure(adapter, pool, cfg):
        delay = cfg["delay"]
        with contextlib.redirect_stdout(io.StringIO()):
            t0 = time.perf_counter()
            results = adapter.gather(
                pool, [adapter.submit(pool, run_in_sync, id, delay)
                       for id in RUNS])
            elapsed = time.perf_counter() - t0
        if sorted(results) != sorted(RUNS):
            raise RuntimeError(f"seed set returned {results}")
        return {"seconds": elapsed,
                "overhead_ms": (elapsed - ideal_delays * delay) * 1e3}
    return measure


def timeline_ab(method):
    """Timeline on (default) vs off, alternating pools pair by pair; the
    cost is the median of the pairs' time ratios, minus one."""
    def measure(adapter, pool, cfg):
        from pools import TaskdemoNoTimeline
        variants = {True: adapter, False: TaskdemoNoTimeline()}
        times = {True: [], False: []}
        for k in range(cfg["ab_pairs"]):
            for on in ((True, False) if k % 2 == 0 else (False, True)):
                a = variants[on]
                p = a.open(cfg["workers"])
                try:
                    times[on].append(_timed(
                        lambda n: getattr(a, method)(p, n),
                        cfg["ab_n"])["ns_per_task"])
                finally:
                    a.close(p)
        ratios = [x / y for x, y in zip(times[True], times[False])]
        return {"cost": statistics.median(ratios) - 1,
                "on_ns": statistics.median(times[True]),
                "off_ns": statistics.median(times[False])}
    return measure


def submitters(threads):
    """`threads` threads submit n / threads tasks each, at once."""
    def measure(adapter, pool, cfg):
        n = cfg["n8"]
        share = n // threads
        barrier = threading.Barrier(threads + 1)
        errors = []

        def body():
            try:
                barrier.wait(HANDSHAKE_TIMEOUT)
                adapter.submitter_body(pool, share)
            except BaseException as exc:   # reported below
                errors.append(exc)

        ts = [threading.Thread(target=body) for _ in range(threads)]
        for t in ts:
            t.start()
        gc.collect()
        barrier.wait(HANDSHAKE_TIMEOUT)
        t0 = time.perf_counter()
        adapter.submitters_collect(pool, share * threads)
        for t in ts:
            t.join()
        seconds = time.perf_counter() - t0
        if errors:
            raise errors[0]
        return {"seconds": seconds,
                "ns_per_task": seconds * 1e9 / (share * threads)}
    return measure


# -- the catalogue --------------------------------------------------------

def catalogue(cpus):
    ws = [
        Workload("1_in_order", "1. submit N, result() each in order",
                 THROUGHPUT, "ns_per_task", "ns/task", 2,
                 throughput("in_order"), loop=True),
        Workload("2_map", "2. list(pool.map(f, range(N)))",
                 THROUGHPUT, "ns_per_task", "ns/task", 2,
                 throughput("map"), loop=True),
        Workload("3_as_completed", "3a. as_completed over N futures",
                 THROUGHPUT, "ns_per_task", "ns/task", 2,
                 throughput("as_completed"), loop=True),
        Workload("3_wait_all", "3b. wait(ALL_COMPLETED) over N futures",
                 THROUGHPUT, "ns_per_task", "ns/task", 2,
                 throughput("wait_all"), loop=True),
    ]
    for wid, method in (("1_in_order", "in_order"), ("2_map", "map"),
                        ("3_as_completed", "as_completed"),
                        ("3_wait_all", "wait_all")):
        ws.append(Workload(
            f"timeline_{wid}", f"timeline cost on {wid}: on vs off, "
            "paired", TIMELINE, "cost", "%", 2, timeline_ab(method),
            only={"taskdemo"}, needs_pool=False))
    ws += [
        Workload("4_latency", "4. round trip submit(f, 1).result(), idle",
                 LATENCY, "median_us", "µs", 2, latency, loop=True),
        Workload("5_memory", "5. memory per task queued behind blocked "
                 "workers", MEMORY, "bytes_per_task", "B/task", 2,
                 memory_in_child, needs_pool=False),
    ]
    for k in range(1, cpus + 1):
        ws.append(Workload(
            f"6_scaling_{k}", f"6. native.spin on {k} worker(s): "
            "parallel efficiency", SCALING, "efficiency", "%", k,
            scaling(k)))
    ws += [
        Workload("7_seed_set1", "7. seed Set #1: 3 runs, no pool "
                 "(ideal 3 x delay)", SEED, "overhead_ms", "ms", 1,
                 seed_set(3), pools=False, loop=True),
        Workload("7_seed_set2_w2", "7. seed Set #2: 3 runs on 2 workers "
                 "(ideal 2 x delay)", SEED, "overhead_ms", "ms", 2,
                 seed_set(2)),
        Workload("7_seed_set2_w3", "7. seed Set #2 on 3 workers "
                 "(ideal 1 x delay)", SEED, "overhead_ms", "ms", 3,
                 seed_set(1)),
    ]
    for k in (1, 2, 4):
        ws.append(Workload(
            f"8_workers_{k}", f"8. workload 1 with max_workers={k}",
            THROUGHPUT, "ns_per_task", "ns/task", k,
            throughput("in_order", "n8")))
    ws.append(Workload(
        "8_submitters_8", "8. 8 threads submitting at once, 2 workers",
        THROUGHPUT, "ns_per_task", "ns/task", 2, submitters(8)))
    return ws
