"""The pools under test, each driven the way its own documentation shows.

An adapter opens a pool of a given size (threads started and warmed up, so
no workload pays for thread creation), runs the hot-path workloads with the
pool's own idiom written out in full, and offers a generic submit/gather
for the few-task workloads.  Hot paths are spelled out per pool, never
routed through a shared helper, so no pool pays for a wrapper call per task
that its users would not write.

Semantics differ and the docs say so: fastthreadpool has no futures (results
land, unordered, in a deque counted by a semaphore), and
multiprocessing.pool.ThreadPool has AsyncResult objects and a chunked map.
"""
import concurrent.futures as cf
import queue
import threading
import time

import taskdemo

# Generous bound (seconds) for warm-up and blocker hand-shakes; it only turns
# a hang into an error.
HANDSHAKE_TIMEOUT = 30.0


def f(x):
    """The trivial task of workloads 1-4 and 8."""
    return x


def _block(started, release):
    started.release()
    release.wait(HANDSHAKE_TIMEOUT)


class Adapter:
    """One pool under test.  Subclasses fill in the workloads they support."""

    name = ""          # key in results.json
    label = ""         # column header
    about = ""         # one line for the docs
    workloads = None   # None: every pool workload; else a set of ids

    def supports(self, workload):
        if workload.only is not None:
            return self.name in workload.only
        return workload.pools and (self.workloads is None or
                                   workload.id in self.workloads)

    # -- life cycle -------------------------------------------------------

    def open(self, workers):
        """Return a pool with `workers` threads, all started."""
        pool = self._make(workers)
        release = self.block_all(pool, workers)
        release.set()
        self.settle(pool)
        return pool

    def _make(self, workers):
        raise NotImplementedError

    def close(self, pool):
        raise NotImplementedError

    def block_all(self, pool, workers):
        """Occupies every worker with a task that waits; returns the Event
        that releases them.  Blockers go in one at a time, each after the
        previous one started, so lazily growing pools start every thread."""
        started = threading.Semaphore(0)
        release = threading.Event()
        self._blockers = []
        for _ in range(workers):
            self._blockers.append(self.submit(pool, _block, started, release))
            if not started.acquire(timeout=HANDSHAKE_TIMEOUT):
                raise RuntimeError(f"{self.name}: a worker never started")
        return release

    def settle(self, pool):
        """Waits for the blockers of block_all, once released."""
        self.gather(pool, self._blockers)
        self._blockers = []

    # -- generic, for workloads of a few tasks ----------------------------

    def submit(self, pool, fn, *args):
        raise NotImplementedError

    def gather(self, pool, handles):
        """Waits for the tasks behind `handles`; returns their results."""
        raise NotImplementedError


class ExecutorAdapter(Adapter):
    """concurrent.futures executors: the stdlib's and taskdemo's."""

    def _make(self, workers):
        raise NotImplementedError

    def close(self, pool):
        pool.shutdown(wait=True)

    def submit(self, pool, fn, *args):
        return pool.submit(fn, *args)

    def gather(self, pool, handles):
        return [h.result() for h in handles]

    # 1. submit N, then result() each in order.
    def in_order(self, pool, n):
        submit = pool.submit
        futures = [submit(f, i) for i in range(n)]
        return [fut.result() for fut in futures]

    # 2. list(pool.map(f, range(N))).
    def map(self, pool, n):
        return list(pool.map(f, range(n)))

    # 3a. as_completed over N submitted futures.
    def as_completed(self, pool, n):
        submit = pool.submit
        futures = [submit(f, i) for i in range(n)]
        return [fut.result() for fut in cf.as_completed(futures)]

    # 3b. wait(ALL_COMPLETED) over N submitted futures.
    def wait_all(self, pool, n):
        submit = pool.submit
        futures = [submit(f, i) for i in range(n)]
        done, _ = cf.wait(futures, return_when=cf.ALL_COMPLETED)
        return done

    # 4. round trips on an idle pool; one latency (ns) each.
    def roundtrips(self, pool, count):
        submit, clock = pool.submit, time.perf_counter_ns
        out = []
        for _ in range(count):
            t0 = clock()
            submit(f, 1).result()
            out.append(clock() - t0)
        return out

    # 8b. several threads submitting at once, each waiting for its own.
    def submitter_body(self, pool, n):
        submit = pool.submit
        futures = [submit(f, i) for i in range(n)]
        for fut in futures:
            fut.result()

    def submitters_collect(self, pool, n):
        pass   # each submitter waited for its own futures


class TaskdemoExecutorAdapter(ExecutorAdapter):
    """taskdemo's idiom for workload 3: its own as_completed and wait,
    drop-ins for concurrent.futures' that watch its futures in C."""

    # 3a. as_completed over N submitted futures.
    def as_completed(self, pool, n):
        submit = pool.submit
        futures = [submit(f, i) for i in range(n)]
        return [fut.result() for fut in taskdemo.as_completed(futures)]

    # 3b. wait(ALL_COMPLETED) over N submitted futures.
    def wait_all(self, pool, n):
        submit = pool.submit
        futures = [submit(f, i) for i in range(n)]
        done, _ = taskdemo.wait(futures, return_when=taskdemo.ALL_COMPLETED)
        return done


class Taskdemo(TaskdemoExecutorAdapter):
    name = "taskdemo"
    label = "taskdemo"
    about = ("taskdemo.ThreadPoolExecutor, C pool and C futures, "
             "timeline on (default timeline_size=4096); workload 3 with "
             "taskdemo.as_completed/wait")

    def _make(self, workers):
        return taskdemo.ThreadPoolExecutor(max_workers=workers)


class TaskdemoStdlibWait(ExecutorAdapter):
    """taskdemo's pool driven by concurrent.futures.as_completed/wait, the
    stdlib's Python code per future, side by side with taskdemo's own."""

    name = "taskdemo_cf_wait"
    label = "taskdemo, cf.as_completed/wait"
    about = ("taskdemo.ThreadPoolExecutor (timeline on) with "
             "concurrent.futures.as_completed/wait in workload 3")
    workloads = {"3_as_completed", "3_wait_all"}

    def _make(self, workers):
        return taskdemo.ThreadPoolExecutor(max_workers=workers)


class TaskdemoNoTimeline(TaskdemoExecutorAdapter):
    name = "taskdemo_notimeline"
    label = "taskdemo (timeline off)"
    about = "taskdemo.ThreadPoolExecutor(timeline_size=0): recording off"
    workloads = {"1_in_order", "2_map", "3_as_completed", "3_wait_all"}

    def _make(self, workers):
        return taskdemo.ThreadPoolExecutor(max_workers=workers,
                                           timeline_size=0)


class Stdlib(ExecutorAdapter):
    name = "stdlib"
    label = "stdlib TPE"
    about = "concurrent.futures.ThreadPoolExecutor (the baseline)"

    def _make(self, workers):
        return cf.ThreadPoolExecutor(max_workers=workers)


class MpThreadPool(Adapter):
    name = "mp_threadpool"
    label = "mp.ThreadPool"
    about = ("multiprocessing.pool.ThreadPool: apply_async/AsyncResult; "
             "workload 2 uses its chunked map (default chunksize)")

    def _make(self, workers):
        from multiprocessing.pool import ThreadPool
        return ThreadPool(workers)

    def close(self, pool):
        pool.close()
        pool.join()

    def submit(self, pool, fn, *args):
        return pool.apply_async(fn, args)

    def gather(self, pool, handles):
        return [h.get() for h in handles]

    def in_order(self, pool, n):
        apply_async = pool.apply_async
        results = [apply_async(f, (i,)) for i in range(n)]
        return [r.get() for r in results]

    def map(self, pool, n):
        # Chunked: chunksize defaults to ceil(n / (4 * workers)).
        return pool.map(f, range(n))

    def as_completed(self, pool, n):
        # Results as they complete: the result handler thread calls the
        # callback per task, in completion order.
        done = queue.SimpleQueue()
        apply_async, put = pool.apply_async, done.put
        for i in range(n):
            apply_async(f, (i,), callback=put)
        get = done.get
        return [get() for _ in range(n)]

    def wait_all(self, pool, n):
        apply_async = pool.apply_async
        results = [apply_async(f, (i,)) for i in range(n)]
        for r in results:
            r.wait()
        return results

    def roundtrips(self, pool, count):
        apply_async, clock = pool.apply_async, time.perf_counter_ns
        out = []
        for _ in range(count):
            t0 = clock()
            apply_async(f, (1,)).get()
            out.append(clock() - t0)
        return out

    def submitter_body(self, pool, n):
        apply_async = pool.apply_async
        results = [apply_async(f, (i,)) for i in range(n)]
        for r in results:
            r.get()

    def submitters_collect(self, pool, n):
        pass


class FastThreadPool(Adapter):
    """fastthreadpool.Pool: no futures.  A result goes to the pool's `done`
    deque and releases its `done_cnt` semaphore; a consumer pops results
    and sleeps on the semaphore while the deque is empty.  That serves one
    consumer only, so with several submitters the main thread collects
    everything."""

    name = "fastthreadpool"
    label = "fastthreadpool"
    about = ("fastthreadpool.Pool (Cython, no futures): results from its "
             "done deque, unordered; map is its chunked map")

    def __init__(self):
        import fastthreadpool   # ImportError: run.py reports the skip
        self.module = fastthreadpool

    def _make(self, workers):
        return self.module.Pool(max_children=workers)

    def close(self, pool):
        pool.shutdown()

    def submit(self, pool, fn, *args):
        pool.submit(fn, *args)
        return None

    def gather(self, pool, handles):
        return self._collect(pool, len(handles))

    @staticmethod
    def _collect(pool, n):
        # done_cnt is released once per result, but its lock can also be
        # posted more than once (its Semaphore releases an unlocked lock),
        # so an acquire may return early: treat it as a hint, count items.
        done, acquire = pool.done, pool.done_cnt.acquire
        popleft = done.popleft
        out = []
        append = out.append
        while len(out) < n:
            if done:
                append(popleft())
            else:
                acquire()
        return out

    def in_order(self, pool, n):
        # "In order" does not exist here: n results, in completion order.
        submit = pool.submit
        for i in range(n):
            submit(f, i)
        return self._collect(pool, n)

    def map(self, pool, n):
        # Its own map: one chunk per worker, direct=True (the default)
        # starts a thread per chunk; unpack_args=False calls f(item).
        pool.map(f, range(n), True, True, False)
        return self._collect(pool, n)

    def as_completed(self, pool, n):
        submit = pool.submit
        for i in range(n):
            submit(f, i)
        out = list(pool.as_completed(wait=True))
        if len(out) != n:
            raise RuntimeError(f"fastthreadpool.as_completed gave "
                               f"{len(out)} of {n} results")
        return out

    def wait_all(self, pool, n):
        # No wait(): counting n completions is the way to wait for all.
        return self.in_order(pool, n)

    def roundtrips(self, pool, count):
        submit, clock = pool.submit, time.perf_counter_ns
        done, acquire = pool.done, pool.done_cnt.acquire
        out = []
        for _ in range(count):
            t0 = clock()
            submit(f, 1)
            while not done:
                acquire()
            done.popleft()
            out.append(clock() - t0)
        return out

    def submitter_body(self, pool, n):
        submit = pool.submit
        for i in range(n):
            submit(f, i)

    def submitters_collect(self, pool, n):
        self._collect(pool, n)


class Loop(Adapter):
    """No pool: the same calls made directly, the limit any pool's per-task
    cost is measured against."""

    name = "loop"
    label = "plain loop"
    about = "no pool: f(x) called directly in a Python loop (the limit)"

    def supports(self, workload):
        return workload.loop and workload.only is None

    def open(self, workers):
        return None

    def close(self, pool):
        pass

    def submit(self, pool, fn, *args):
        return fn(*args)

    def gather(self, pool, handles):
        return list(handles)

    def in_order(self, pool, n):
        return [f(x) for x in range(n)]

    map = as_completed = wait_all = in_order

    def roundtrips(self, pool, count):
        clock = time.perf_counter_ns
        out = []
        for _ in range(count):
            t0 = clock()
            f(1)
            out.append(clock() - t0)
        return out


def available():
    """The adapters that can run here, and {name: reason} for the others."""
    adapters, skipped = [], {}
    for cls in (Taskdemo, TaskdemoNoTimeline, TaskdemoStdlibWait, Stdlib,
                MpThreadPool, FastThreadPool, Loop):
        try:
            adapters.append(cls())
        except ImportError as exc:
            skipped[cls.name] = (f"not installed ({exc}); see "
                                 f"bench/README.md for how to install it")
    return adapters, skipped
