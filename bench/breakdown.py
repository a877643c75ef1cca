"""Per-task cost breakdown of workload 1 (submit N, result() each), in ns.

    python bench/breakdown.py [--n 100000] [--repeat 7] [--workers 1]

Each phase is measured on its own, so the others cannot blur it:

  submit    N submits while every worker is blocked: no GIL contention
  worker    the workers released: the N queued tasks are taken off the
            queue, called and their futures completed, while the main
            thread sleeps in result() with the GIL released
  result    result() on N finished futures
  free      dropping the N finished futures
  total     workload 1 end to end (submitting and waiting while the
            workers run), futures dropped at the end
  overlap   total - (submit + worker + result + free): the price of doing
            it all at once, i.e. GIL hand-offs, wake-ups, cache traffic

Every variant runs with the collector on and off (gc.disable()); "gc" is
the time spent in collections, measured with gc.callbacks.  Variants
alternate within each repeat and the medians are reported.  A few
micro-benchmarks of what submit does per task follow (context copy, clock
read, future allocation), each minus the cost of the loop driving it,
with the collector off.
"""
import argparse
import concurrent.futures as cf
import contextvars
import gc
import statistics
import sys
import threading
import time

import taskdemo

PHASES = ("submit", "worker", "result", "free", "total", "overlap", "gc")


def f(x):
    return x


def _block(started, release):
    started.release()
    release.wait(30)


class GcClock:
    """Total time spent in garbage collections, via gc.callbacks."""

    def __init__(self):
        self.ns = 0
        self.count = 0
        self._t0 = 0
        gc.callbacks.append(self._cb)

    def _cb(self, phase, info):
        if phase == "start":
            self._t0 = time.perf_counter_ns()
        else:
            self.ns += time.perf_counter_ns() - self._t0
            self.count += 1

    def take(self):
        ns, self.ns, self.count = self.ns, 0, 0
        return ns


def phases(make, n, workers, gc_on, gc_clock):
    """One sample of every phase, ns per task."""
    clock = time.perf_counter_ns
    out = {}
    pool = make(workers)
    try:
        started, release = threading.Semaphore(0), threading.Event()
        blockers = []
        for _ in range(workers):
            blockers.append(pool.submit(_block, started, release))
            started.acquire()
        gc.collect()
        gc_clock.take()
        if not gc_on:
            gc.disable()
        submit = pool.submit
        t0 = clock()
        futures = [submit(f, i) for i in range(n)]
        t1 = clock()
        release.set()
        futures[-1].result()
        futures[-2].result()
        t2 = clock()
        results = [fut.result() for fut in futures]
        t3 = clock()
        del futures
        t4 = clock()
        gc_split = gc_clock.take()
        assert len(results) == n
        del results
        for b in blockers:
            b.result()
        gc.enable()
        gc.collect()
        gc_clock.take()
        if not gc_on:
            gc.disable()
        t5 = clock()
        futures = [submit(f, i) for i in range(n)]
        results = [fut.result() for fut in futures]
        del futures
        t6 = clock()
        gc_total = gc_clock.take()
        gc.enable()
        assert len(results) == n
    finally:
        gc.enable()
        pool.shutdown(wait=True)
    out["submit"] = (t1 - t0) / n
    out["worker"] = (t2 - t1) / n
    out["result"] = (t3 - t2) / n
    out["free"] = (t4 - t3) / n
    out["total"] = (t6 - t5) / n
    out["overlap"] = out["total"] - (out["submit"] + out["worker"] +
                                     out["result"] + out["free"])
    out["gc"] = gc_total / n
    out["gc_split_phases"] = gc_split / n
    return out


def micro(n):
    """ns per operation of what submit does, minus the driving loop."""
    clock = time.perf_counter_ns
    copy_context = contextvars.copy_context
    now = taskdemo.monotonic_ns
    Future = taskdemo.Future
    StdFuture = cf.Future

    def timed(fn):
        # The collector is off here: its share is the "gc" column above.
        best = float("inf")
        for _ in range(5):
            gc.collect()
            gc.disable()
            t0 = clock()
            fn()
            best = min(best, (clock() - t0) / n)
            gc.enable()
        return best

    loop_call0 = timed(lambda: [abs(1) for _ in range(n)])
    loop_pycall = timed(lambda: [f(1) for _ in range(n)])
    rows = {
        "driver: [builtin() for _ in range(n)]": loop_call0,
        "f(x) called directly (minus driver)": loop_pycall - loop_call0,
        "contextvars.copy_context() (PyContext_CopyCurrent)":
            timed(lambda: [copy_context() for _ in range(n)]) - loop_call0,
        "monotonic_ns() (the timeline's clock read)":
            timed(lambda: [now() for _ in range(n)]) - loop_call0,
        "taskdemo.Future() alloc + free":
            timed(lambda: [Future() for _ in range(n)]) - loop_call0,
        "concurrent.futures.Future() alloc + free":
            timed(lambda: [StdFuture() for _ in range(n)]) - loop_call0,
    }
    return rows


def main(argv=None):
    p = argparse.ArgumentParser(prog="python bench/breakdown.py")
    p.add_argument("--n", type=int, default=100_000)
    p.add_argument("--repeat", type=int, default=7)
    p.add_argument("--workers", type=int, default=1)
    args = p.parse_args(argv)

    variants = {
        "taskdemo": lambda w: taskdemo.ThreadPoolExecutor(w),
        "taskdemo, timeline off":
            lambda w: taskdemo.ThreadPoolExecutor(w, timeline_size=0),
        "stdlib": lambda w: cf.ThreadPoolExecutor(w),
    }
    gc_clock = GcClock()
    samples = {(v, g): [] for v in variants for g in (True, False)}
    for r in range(args.repeat):
        keys = list(samples)
        keys = keys[r % len(keys):] + keys[:r % len(keys)]
        for v, g in keys:
            samples[(v, g)].append(
                phases(variants[v], args.n, args.workers, g, gc_clock))

    print(f"workload 1 phases, ns per task: N={args.n:,}, "
          f"max_workers={args.workers}, median of {args.repeat}; "
          f"Python {sys.version.split()[0]}")
    print(f"{'variant':<32}" + "".join(f"{ph:>9}" for ph in PHASES))
    for (v, g), runs in samples.items():
        med = {ph: statistics.median(r[ph] for r in runs) for ph in PHASES}
        name = f"{v}{'' if g else ', gc off'}"
        print(f"{name:<32}" + "".join(f"{med[ph]:9.0f}" for ph in PHASES))
    print()
    print("what submit does, ns per call (best of 5, gc off):")
    for name, ns in micro(args.n).items():
        print(f"  {ns:7.0f}  {name}")


if __name__ == "__main__":
    main()
