"""Hardening (issue 5): the fault scenarios that test_faults, test_stress and
test_regressions do not cover yet, and property-based bad input.

Faults, each in a child interpreter with a timeout (a hang is reported as
"possible deadlock", a signal death as a failure), run against the stdlib
as the oracle and against taskdemo:

- Ctrl-C while blocked in as_completed() and wait(), and in result(),
  exception(), map iteration and shutdown(wait=True): KeyboardInterrupt
  within 100 ms, measured inside the child, and the pool still works.
- os.fork() from a task of a busy pool; multiprocessing (fork start
  method) with a busy pool, as the notebook does.
- Interpreter exit driven from a non-main thread, after sys.exit() inside
  a task, after Ctrl-C delivered by a task, and with a daemon thread still
  submitting: nothing the stdlib would run is lost, the exit code is right.
- 1,000 pools dropped without shutdown: threads back to the baseline, no
  growth in memory or GC objects.
- BaseException subclasses raised by tasks and by done-callbacks.
- Tasks re-entering their pool (a chain of 2,000 submits from tasks, map
  from a task, shutdown(cancel_futures=True) from a task) and a callback
  that submits while shutdown(cancel_futures=True) runs it.
- 1,000,000 trivial tasks (the stdlib oracle: 200,000): RSS after the
  first tenth grows less than 10 MB, reference counts back to baseline.
- 64 threads submitting at once.

Bad input: Hypothesis feeds every public callable wrong types, wrong
argument counts, negative/zero/huge/NaN numbers, non-callables and objects
whose __eq__/__hash__/__repr__ (and other dunders) raise.  Each call either
works or raises a clear Python exception, and the pool stays usable.
"""

from __future__ import annotations

import concurrent.futures as cf
import json
import math
import os
import re
import threading
from fractions import Fraction
from typing import Any, Dict, List

import pytest
from hypothesis import HealthCheck, given, settings
from hypothesis import strategies as st

import taskdemo

WAIT = 30.0
SLOW = os.environ.get("TASKDEMO_SLOW", "") not in ("", "0")
# Under AddressSanitizer (CI's LD_PRELOAD run) freed memory sits in a
# quarantine of up to 256 MB, so RSS says nothing about leaks there: the
# RSS bounds are checked in the normal runs only (ASan reports leaks and
# misuse of memory itself).
UNDER_ASAN = "libasan" in os.environ.get("LD_PRELOAD", "")
STATS: Dict[str, Any] = {}


def teardown_module() -> None:
    path = os.environ.get("TASKDEMO_STATS")
    if path and STATS:
        with open(path, "a") as fh:
            fh.write(json.dumps({"test_hardening": STATS}) + "\n")


def _run(run_in_subprocess, code: str, timeout: float = WAIT, args=()):
    rc, out, err = run_in_subprocess(code, timeout=timeout, args=args)
    assert rc >= 0, f"killed by signal {-rc}\n{out}\n{err}"
    return rc, out, err


# -- Ctrl-C in as_completed() and wait() ------------------------------------

# The child interrupts itself: a helper thread waits until the main thread
# is blocked inside the call ({in_call} decides), then sends SIGINT to the
# process, which Linux delivers to the main thread.  Both ends read
# time.monotonic(), so the latency excludes pipes and the parent's
# scheduling.  Two tasks hold the pool's workers until the call was
# interrupted; {after} then checks what is left.
SIGINT_TEMPLATE = """
import os, signal, sys, threading, time
import concurrent.futures as cf
{import_line}

pool = Executor(max_workers=2)
gate = threading.Event()
started = threading.Barrier(3, timeout=10)

def hold():
    started.wait()
    gate.wait()
    return "held"

fs = [pool.submit(hold) for _ in range(2)]
started.wait()
main = threading.main_thread()
sent = []
{in_call}

def interrupter():
    deadline = time.monotonic() + 10
    while not in_call() and time.monotonic() < deadline:
        time.sleep(0.001)   # a bounded poll of the main thread
    sent.append(time.monotonic())
    os.kill(os.getpid(), signal.SIGINT)

threading.Thread(target=interrupter).start()
try:
    {call}  # THE CALL
except KeyboardInterrupt:
    latency = time.monotonic() - sent[0]
    print("interrupted after", round(latency, 4), flush=True)
else:
    print("returned without KeyboardInterrupt", flush=True)
    sys.exit(2)
gate.set()
assert [f.result(timeout=10) for f in fs] == ["held", "held"]
{after}
print("usable", flush=True)
"""

USABLE_AFTER = """
assert pool.submit(pow, 2, 5).result(timeout=10) == 32
assert list(pool.map(abs, [-1, -2], timeout=10)) == [1, 2]
pool.shutdown(wait=True)
"""

# as_completed() and wait() are Python code: the main thread's stack shows
# the call, topped by a lock wait.
IN_PYTHON_CALL = """
def in_call():
    frame = sys._current_frames().get(main.ident)
    names = []
    while frame is not None:
        names.append(frame.f_code.co_name)
        frame = frame.f_back
    if {marker!r} in names and names[0] in ("wait", "acquire"):
        time.sleep(0.02)   # let it get into the lock's system call
        return True
    return False
"""


def _check_interrupted(run_in_subprocess, code: str, name: str) -> None:
    """Runs a SIGINT_TEMPLATE script: KeyboardInterrupt within the bound,
    measured in the child, and the pool fine afterwards."""
    rc, out, err = _run(run_in_subprocess, code)
    m = re.search(r"interrupted after ([0-9.]+)", out)
    assert m, f"rc={rc}\n{out}\n{err}"
    latency = float(m.group(1))
    STATS.setdefault("sigint_latency_s", {})[name] = latency
    assert latency < SIGINT_BOUND, f"KeyboardInterrupt after {latency}s"
    assert rc == 0 and "usable" in out, f"rc={rc}\n{out}\n{err}"


def _sigint_script(impl, in_call: str, call: str, after: str) -> str:
    code = SIGINT_TEMPLATE.format(import_line=impl.import_line,
                                  in_call=in_call, call=call, after=after)
    line = next(i for i, text in enumerate(code.splitlines(), 1)
                if text.endswith("# THE CALL"))
    return code.replace("CALL_LINE = 0", f"CALL_LINE = {line}")


SIGINT_CALLS = {
    "as_completed": ("as_completed", "for _ in cf.as_completed(fs): pass"),
    "as_completed_timeout": ("as_completed",
                             "for _ in cf.as_completed(fs, timeout=60): pass"),
    "wait_all": ("wait", "cf.wait(fs)"),
    "wait_first_completed": ("wait", "cf.wait(fs, timeout=60, "
                             "return_when=cf.FIRST_COMPLETED)"),
    "wait_first_exception": ("wait", "cf.wait(fs, "
                             "return_when=cf.FIRST_EXCEPTION)"),
}

# The spec's bound.  taskdemo's own waits answer within one 50 ms slice;
# as_completed() and wait() block in the stdlib's Event.wait, which the
# signal interrupts at once.
SIGINT_BOUND = 0.1


@pytest.mark.parametrize("kind", sorted(SIGINT_CALLS))
def test_sigint_interrupts_as_completed_and_wait(impl, run_in_subprocess,
                                                  kind):
    """Ctrl-C while the main thread waits in as_completed() or wait() on
    futures that will not finish raises KeyboardInterrupt within 100 ms;
    the held tasks then finish and the pool still works."""
    marker, call = SIGINT_CALLS[kind]
    code = _sigint_script(impl, IN_PYTHON_CALL.format(marker=marker), call,
                          USABLE_AFTER)
    _check_interrupted(run_in_subprocess, code, f"{impl.name}:{kind}")


# -- Ctrl-C in result(), exception(), shutdown(wait=True), map iteration ----

# The same measurement for the waits the core issue names.  taskdemo's
# waits are C calls, invisible in the Python stack, so the helper thread
# waits until the main thread has sat on the call's line and slept in the
# kernel (state S in /proc) on three looks in a row: then it is inside the
# wait, past any GIL hand-off on the way in.
IN_C_CALL = """
CALL_LINE = 0
stat = f"/proc/self/task/{main.native_id}/stat"
looks = []

def asleep_on_the_call_line():
    frame = sys._current_frames().get(main.ident)
    while frame is not None and frame.f_back is not None:
        frame = frame.f_back            # the module's frame
    if frame is None or frame.f_lineno != CALL_LINE:
        return False
    with open(stat) as fh:
        return fh.read().rsplit(")", 1)[1].split()[0] == "S"

def in_call():
    looks.append(asleep_on_the_call_line())
    time.sleep(0.001)
    return looks[-3:] == [True] * 3
"""

SIGINT_C_CALLS = {
    "result": ("fs[0].result()", USABLE_AFTER),
    "result_timeout": ("fs[0].result(timeout=60)", USABLE_AFTER),
    "exception": ("fs[0].exception()", USABLE_AFTER),
    "map_iteration": ("list(pool.map(lambda f: f.result(), fs))",
                      USABLE_AFTER),
    # Interrupted, the pool is still shut down: a second shutdown(wait=True)
    # joins the workers once the held tasks finish.
    "shutdown_wait": ("pool.shutdown(wait=True)",
                      "pool.shutdown(wait=True)"),
}


@pytest.mark.skipif(not os.path.exists("/proc/self/task"),
                    reason="finds the main thread asleep through /proc")
@pytest.mark.parametrize("kind", sorted(SIGINT_C_CALLS))
def test_sigint_interrupts_result_exception_shutdown_and_map(
        impl, run_in_subprocess, kind):
    """Ctrl-C while the main thread sleeps in result(), result(timeout),
    exception(), map iteration or shutdown(wait=True) raises
    KeyboardInterrupt within 100 ms, measured inside the child; the held
    tasks then finish and the pool still works (or, after shutdown, joins)."""
    call, after = SIGINT_C_CALLS[kind]
    code = _sigint_script(impl, IN_C_CALL, call, after)
    _check_interrupted(run_in_subprocess, code, f"{impl.name}:{kind}")


# -- interpreter exit ----------------------------------------------------------

LOG_TASK = """
import os, sys, threading
{import_line}
path = sys.argv[1]

def log(i):
    with open(path, "a") as fh:
        fh.write(f"{{i}}\\n")
    return i
"""


def _ran(path) -> List[int]:
    return sorted(int(x) for x in path.read_text().split()) \
        if path.exists() else []


EXIT_SCRIPTS = {
    # The main thread ends at once; a non-main thread made the pool,
    # queued 20 tasks behind a held one and returned without shutdown.
    "pool_of_a_non_main_thread": ("""
submitted = threading.Event()

def owner():
    pool = Executor(max_workers=1)
    gate = threading.Event()
    pool.submit(gate.wait, 10)
    for i in range(20):
        pool.submit(log, i)
    submitted.set()
    gate.set()

threading.Thread(target=owner).start()
submitted.wait(10)
print("main thread done", flush=True)
""", 0, list(range(20))),
    # A non-main thread is blocked in result() when the main thread ends;
    # the exit hooks run the queue and so release it.
    "non_main_thread_blocked_in_result": ("""
pool = Executor(max_workers=1)
gate = threading.Event()
pool.submit(gate.wait, 10)
futures = [pool.submit(log, i) for i in range(20)]
waiting = threading.Event()

def waiter():
    waiting.set()
    print("waiter got", futures[-1].result(timeout=20), flush=True)

threading.Thread(target=waiter).start()
waiting.wait(10)
gate.set()
""", 0, list(range(20))),
    # sys.exit() inside a task only stores SystemExit in its future; the
    # main thread re-raises it with result(), and the interpreter exits
    # with its code after running what is still queued.
    "sys_exit_inside_a_task": ("""
pool = Executor(max_workers=1)
gate = threading.Event()

def leave():
    gate.wait(10)
    sys.exit(3)

f = pool.submit(leave)
for i in range(20):
    pool.submit(log, i)
ignored = pool.submit(sys.exit, 4)   # nobody asks: no effect
gate.set()
f.result(timeout=10)
print("not reached", flush=True)
""", 3, list(range(20))),
    # A task sends SIGINT to its own process while the main thread is
    # blocked in result(); the main thread exits with work still queued.
    # (_thread.interrupt_main() would not do: it sends no signal, so the
    # stdlib's result() sleeps through it until its task ends.)
    "ctrl_c_from_a_task": ("""
import signal
pool = Executor(max_workers=1)
gate = threading.Event()
waiting = threading.Event()

def interrupt():
    waiting.wait(10)   # main is inside the try below
    os.kill(os.getpid(), signal.SIGINT)
    gate.wait(10)
    return "late"

f = pool.submit(interrupt)
for i in range(20):
    pool.submit(log, i)
try:
    waiting.set()
    f.result(timeout=20)
except KeyboardInterrupt:
    print("KeyboardInterrupt in main", flush=True)
    gate.set()
    sys.exit(5)
""", 5, list(range(20))),
}


@pytest.mark.parametrize("scenario", sorted(EXIT_SCRIPTS))
def test_interpreter_exit(impl, run_in_subprocess, tmp_path, scenario):
    """The interpreter exits, within bounds and with the right code, and
    every task queued before exit ran, as with the stdlib."""
    body, code, expected = EXIT_SCRIPTS[scenario]
    path = tmp_path / "ran.txt"
    rc, out, err = _run(run_in_subprocess,
                        LOG_TASK.format(import_line=impl.import_line) + body,
                        args=(str(path),))
    assert rc == code, f"rc={rc}\n{out}\n{err}"
    assert _ran(path) == expected, f"{out}\n{err}"
    assert "Fatal Python error" not in err, err
    if code == 0:
        assert "Traceback" not in err, err


DAEMON_SUBMITTER = """
import sys, threading
{import_line}
pool = Executor(max_workers=2)
accepted = [0]
running = threading.Event()

def hammer():
    while True:
        try:
            pool.submit(pow, 2, 10)
            accepted[0] += 1
        except RuntimeError:
            pass   # "cannot schedule new futures after (interpreter) shutdown"
        running.set()

threading.Thread(target=hammer, daemon=True).start()
running.wait(10)
print("exiting", flush=True)
"""


def test_exit_while_a_daemon_thread_submits(impl, run_in_subprocess):
    """A daemon thread submits in a loop while the interpreter exits: its
    late submits are refused and the process exits 0 without a crash,
    although the daemon thread is still running during finalisation."""
    for _ in range(3):
        rc, out, err = _run(run_in_subprocess, DAEMON_SUBMITTER.format(
            import_line=impl.import_line))
        assert rc == 0 and "exiting" in out, f"rc={rc}\n{out}\n{err}"
        assert "Fatal Python error" not in err, err


# -- fork from a task, and multiprocessing -----------------------------------

FORK_FROM_A_TASK = """
import os, sys, threading, warnings
warnings.simplefilter("ignore", DeprecationWarning)   # 3.12+: fork + threads
{import_line}

pool = Executor(max_workers=2)
gate = threading.Event()
held = pool.submit(gate.wait, 10)            # busy: one task held ...
queued = [pool.submit(pow, 2, i) for i in range(5)]

def fork_here():
    pid = os.fork()
    if pid == 0:
        # The child: only this (worker) thread exists.  A new pool works.
        try:
            with Executor(max_workers=2) as fresh:
                ok = list(fresh.map(pow, [2, 3], [10, 2], timeout=5)) == [1024, 9]
        except BaseException:
            ok = False
        os._exit(0 if ok else 1)
    _, status = os.waitpid(pid, 0)
    return os.waitstatus_to_exitcode(status)

forker = pool.submit(fork_here)              # ... and a task that forks
print("child exit code", forker.result(timeout=20), flush=True)
gate.set()
assert held.result(timeout=10) is True
assert [f.result(timeout=10) for f in queued] == [2 ** i for i in range(5)]
assert pool.submit(pow, 3, 3).result(timeout=10) == 27
pool.shutdown(wait=True)
print("parent ok", flush=True)
"""


@pytest.mark.fork
@pytest.mark.skipif(not hasattr(os, "fork"), reason="needs os.fork")
def test_fork_from_a_task(impl, run_in_subprocess):
    """A task of a busy pool calls os.fork(): in the child (where the
    forking worker is the only thread) a new pool works and the child exits
    0; in the parent the held and queued tasks still complete and the pool
    keeps working."""
    rc, out, err = _run(run_in_subprocess, FORK_FROM_A_TASK.format(
        import_line=impl.import_line))
    assert "child exit code 0" in out, f"rc={rc}\n{out}\n{err}"
    assert rc == 0 and "parent ok" in out, f"rc={rc}\n{out}\n{err}"


MULTIPROCESSING_FORK = """
import multiprocessing, os, sys, threading, warnings
warnings.simplefilter("ignore", DeprecationWarning)   # 3.12+: fork + threads
{import_line}

def child_work(n):
    # A new pool in the child, left without shutdown: the child's exit
    # (multiprocessing runs threading's exit hooks) must still run it.
    pool = Executor(max_workers=2)
    futures = [pool.submit(pow, n, 2) for _ in range(3)]
    return [f.result(timeout=5) for f in futures]

def process_main():
    assert child_work(3) == [9, 9, 9]

pool = Executor(max_workers=2)
gate = threading.Event()
held = [pool.submit(gate.wait, 10) for _ in range(2)]   # both workers busy
queued = [pool.submit(pow, 2, i) for i in range(5)]
ctx = multiprocessing.get_context("fork")
p = ctx.Process(target=process_main)
p.start()
p.join(20)
print("process exit code", p.exitcode, flush=True)
with ctx.Pool(2) as mp_pool:
    print("pool results", mp_pool.map(child_work, range(4), chunksize=1),
          flush=True)
gate.set()
assert all(f.result(timeout=10) for f in held)
assert [f.result(timeout=10) for f in queued] == [2 ** i for i in range(5)]
pool.shutdown(wait=True)
print("parent ok", flush=True)
"""


@pytest.mark.fork
@pytest.mark.skipif(not hasattr(os, "fork"), reason="needs os.fork")
def test_multiprocessing_fork_with_a_busy_pool(impl, run_in_subprocess):
    """As the notebook does: multiprocessing with the fork start method
    while a pool is busy.  A Process and the workers of a
    multiprocessing.Pool each use a new pool (one left without shutdown)
    and exit 0; the parent's pool is unaffected."""
    rc, out, err = _run(run_in_subprocess, MULTIPROCESSING_FORK.format(
        import_line=impl.import_line), timeout=60)
    assert "process exit code 0" in out, f"rc={rc}\n{out}\n{err}"
    assert "pool results [[0, 0, 0], [1, 1, 1], [4, 4, 4], [9, 9, 9]]" \
        in out, f"rc={rc}\n{out}\n{err}"
    assert rc == 0 and "parent ok" in out, f"rc={rc}\n{out}\n{err}"


# -- pools dropped without shutdown ----------------------------------------

DROPPED_POOLS = """
import gc, os, re, sys, threading, time
{import_line}

def os_threads():
    return len(os.listdir("/proc/self/task"))

def rss_kb():
    with open("/proc/self/status") as fh:
        return int(re.search(r"VmRSS:\\s+(\\d+)", fh.read()).group(1))

def settle():
    gc.collect()
    # Workers of collected pools exit on their own; nothing signals the
    # moment the OS forgets them, so this polls, bounded.
    deadline = time.monotonic() + 20
    while os_threads() > baseline and time.monotonic() < deadline:
        time.sleep(0.005)
    # taskdemo frees a dropped pool's memory at the next pool's creation
    # once its workers are gone: make one, for both implementations.
    Executor(max_workers=1).shutdown()
    gc.collect()

baseline = os_threads()
gate = threading.Event()
rounds = []
for r in range(10):
    results = []
    for i in range(100):
        pool = Executor(max_workers=2)
        results.append(pool.submit(pow, i, 2))
        pool.submit(gate.wait, 0)
        del pool        # no shutdown: the pool is garbage now
    assert [f.result(timeout=10) for f in results] == [i * i for i in range(100)]
    del results
    settle()
    rounds.append((os_threads(), rss_kb(), len(gc.get_objects())))
print("threads", baseline, max(t for t, _, _ in rounds), flush=True)
# RSS is compared from the third round on: the first rounds warm up
# malloc's per-thread arenas (up to 8 per core), which then hold some
# fragmentation; that plateau is not a leak, linear growth would be.
print("rss_growth_kb", rounds[-1][1] - rounds[2][1], flush=True)
print("rss_by_round_kb", *(rss for _, rss, _ in rounds), flush=True)
print("objects_growth", rounds[-1][2] - rounds[0][2], flush=True)
"""


def test_thousand_pools_dropped_without_shutdown(impl, run_in_subprocess):
    """1,000 pools, each with work, dropped without shutdown() in rounds of
    100: after every round the workers are gone (the OS thread count is
    back to the baseline), and from the first round to the tenth neither
    RSS nor the number of GC objects grows with the pools made."""
    rc, out, err = _run(run_in_subprocess,
                        DROPPED_POOLS.format(import_line=impl.import_line),
                        timeout=60)
    assert rc == 0, f"rc={rc}\n{out}\n{err}"
    figures = dict(re.findall(r"(\w+) (-?\d+(?: \d+)?)", out))
    before, after = map(int, figures["threads"].split())
    assert after == before, f"{after - before} threads left behind\n{out}"
    rss_growth = int(figures["rss_growth_kb"])
    objects_growth = int(figures["objects_growth"])
    STATS.setdefault("dropped_pools", {})[impl.name] = {
        "rss_growth_kb": rss_growth, "objects_growth": objects_growth}
    # 900 pools after the first round (700 after the third, for RSS):
    # leaking a pool's C state (its 128 KB timeline, say) would show as
    # tens of MB, its Python objects as hundreds of objects.
    assert objects_growth < 100, out
    if not UNDER_ASAN:
        assert rss_growth < 4 * 1024, out


# -- BaseException subclasses --------------------------------------------

BASE_EXCEPTIONS = """
import sys, threading
import concurrent.futures as cf
{import_line}

class Custom(BaseException):
    pass

kinds = [SystemExit, KeyboardInterrupt, GeneratorExit, Custom,
         StopIteration, StopAsyncIteration]
pool = Executor(max_workers=1)
called = []

def raise_(kind):
    raise kind("from task", kind.__name__)

futures = []
for kind in kinds:
    f = pool.submit(raise_, kind)
    f.add_done_callback(lambda fut: called.append(type(fut.exception())))
    futures.append(f)
done, not_done = cf.wait(futures, timeout=10)
assert not not_done
assert set(cf.as_completed(futures, timeout=10)) == set(futures)
for kind, f in zip(kinds, futures):
    exc = f.exception(timeout=0)
    assert type(exc) is kind and exc.args == ("from task", kind.__name__), exc
    try:
        f.result(timeout=0)
    except kind as got:
        assert got is exc
    assert not f.cancelled() and f.done()
assert called == kinds, called
# The one worker survived all of them.
names = {{pool.submit(lambda: threading.current_thread().name).result(10)
         for _ in range(5)}}
assert len(names) == 1, names
assert list(pool.map(abs, [-1, -2], timeout=10)) == [1, 2]
pool.shutdown(wait=True)
print("ok", flush=True)
"""


def test_base_exception_subclasses_in_tasks(impl, run_in_subprocess):
    """SystemExit, KeyboardInterrupt, GeneratorExit, a custom BaseException
    subclass and the Stop*Iteration exceptions raised by tasks land in
    their futures (callbacks, wait and as_completed see them) and never
    kill the worker; nothing reaches stderr."""
    rc, out, err = _run(run_in_subprocess,
                        BASE_EXCEPTIONS.format(import_line=impl.import_line))
    assert rc == 0 and "ok" in out, f"rc={rc}\n{out}\n{err}"
    assert err == "", err


CALLBACK_BASE_EXCEPTION = """
import sys, threading
from taskdemo import ThreadPoolExecutor
reported = []
sys.unraisablehook = lambda u: reported.append(type(u.exc_value).__name__)

class Custom(BaseException):
    pass

def bad_callback(fut):
    raise Custom("from callback")

pool = ThreadPoolExecutor(max_workers=1)
gate = threading.Event()
f = pool.submit(gate.wait, 10)
f.add_done_callback(bad_callback)
f.add_done_callback(lambda fut: reported.append("later callback ran"))
gate.set()
assert f.result(timeout=10) is True
assert pool.submit(pow, 2, 5).result(timeout=10) == 32   # worker survived
# On a done future the callback runs in the caller, and a BaseException
# propagates there, as in the stdlib.
try:
    f.add_done_callback(bad_callback)
except Custom:
    reported.append("raised to caller")
pool.shutdown(wait=True)
print(reported, flush=True)
"""


def test_callback_raising_base_exception_keeps_the_worker(run_in_subprocess):
    """A done-callback raising a BaseException subclass on a worker is
    reported through sys.unraisablehook; the worker survives, the other
    callbacks still run and the pool keeps working.  (The stdlib's worker
    thread dies instead: its _WorkItem lets the exception out of run(),
    and a one-worker stdlib pool then never runs another task.)"""
    rc, out, err = _run(run_in_subprocess, CALLBACK_BASE_EXCEPTION)
    assert rc == 0, f"rc={rc}\n{out}\n{err}"
    assert out.strip() == ("['Custom', 'later callback ran', "
                           "'raised to caller']"), out


# -- re-entering the pool ----------------------------------------------------------

REENTRY = """
import threading
import concurrent.futures as cf
{import_line}

# A chain: each task submits the next one to its own one-worker pool.
pool = Executor(max_workers=1)
order = []
finished = threading.Event()

def link(i):
    order.append(i)
    if i == 2000:
        finished.set()
    else:
        pool.submit(link, i + 1)

pool.submit(link, 0)
assert finished.wait(20), len(order)
assert order == list(range(2001))

# map() from inside a task, with a free worker to run its calls.
pool2 = Executor(max_workers=2)
outer = pool2.submit(lambda: list(pool2.map(pow, range(50), [2] * 50,
                                            timeout=10)))
assert outer.result(timeout=10) == [i * i for i in range(50)]

# A task shuts its own pool down, cancelling what is queued behind it.
pool3 = Executor(max_workers=1)
gate = threading.Event()
stopper = pool3.submit(lambda: (gate.wait(10),
                                pool3.shutdown(wait=False,
                                               cancel_futures=True)))
queued = [pool3.submit(pow, 2, i) for i in range(10)]
gate.set()
stopper.result(timeout=10)
assert all(f.cancelled() for f in queued)
try:
    pool3.submit(pow, 2, 2)
except RuntimeError:
    pass
else:
    raise AssertionError("a shut-down pool accepted work")
for p in (pool, pool2, pool3):
    p.shutdown(wait=True)
print("ok", flush=True)
"""


def test_tasks_reentering_their_pool(impl, run_in_subprocess):
    """A chain of 2,001 tasks each submitting the next to their own pool,
    map() from inside a task, and a task that shuts its pool down with
    cancel_futures: all complete, nothing lost or hung."""
    rc, out, err = _run(run_in_subprocess,
                        REENTRY.format(import_line=impl.import_line))
    assert rc == 0 and "ok" in out, f"rc={rc}\n{out}\n{err}"


CALLBACK_SUBMITS_DURING_CANCEL = """
import threading
{import_line}
pool = Executor(max_workers=1)
gate = threading.Event()
pool.submit(gate.wait, 10)
queued = pool.submit(pow, 2, 2)
answers = []

def resubmit(fut):
    try:
        pool.submit(pow, 3, 3)
    except RuntimeError as exc:
        answers.append("refused")
    else:
        answers.append("accepted")

queued.add_done_callback(resubmit)
pool.shutdown(wait=False, cancel_futures=True)   # runs resubmit
gate.set()
pool.shutdown(wait=True)
print(answers, queued.cancelled(), flush=True)
"""


def test_callback_submitting_during_shutdown_cancel(run_in_subprocess):
    """shutdown(cancel_futures=True) cancels the queued futures and so runs
    their callbacks; one that submits to the same pool is refused
    (RuntimeError) instead of deadlocking.  The stdlib deadlocks here:
    its shutdown holds the non-reentrant _shutdown_lock while cancelling,
    and submit takes it again (checked on CPython 3.9, 3.11 and 3.13)."""
    rc, out, err = _run(run_in_subprocess, CALLBACK_SUBMITS_DURING_CANCEL.format(
        import_line="from taskdemo import ThreadPoolExecutor as Executor"),
        timeout=20)
    assert rc == 0 and out.strip() == "['refused'] True", f"{out}\n{err}"


# -- memory: many trivial tasks ----------------------------------------------

MANY_TASKS = """
import gc, re, sys, time
{import_line}
N = int(sys.argv[1])
BATCH = 10_000

def rss_kb():
    with open("/proc/self/status") as fh:
        return int(re.search(r"VmRSS:\\s+(\\d+)", fh.read()).group(1))

arg, result = object(), object()
base = (sys.getrefcount(arg), sys.getrefcount(result))

def task(a):
    return result

pool = Executor(max_workers=4)
done = 0
t0 = time.perf_counter()
while done < N:
    if done % (2 * BATCH) == 0:
        fs = [pool.submit(task, arg) for _ in range(BATCH)]
        assert all(f.result(timeout=30) is result for f in fs)
        del fs
    else:
        assert all(r is result for r in pool.map(task, [arg] * BATCH))
    done += BATCH
    if done == N // 10:
        gc.collect()
        rss_first = rss_kb()
elapsed = time.perf_counter() - t0
pool.shutdown(wait=True)
gc.collect()
print("tasks", done, flush=True)
print("seconds", round(elapsed, 2), flush=True)
print("rss_growth_kb", rss_kb() - rss_first, flush=True)
print("refcounts", base == (sys.getrefcount(arg), sys.getrefcount(result)),
      flush=True)
"""

# taskdemo pushes a million trivial tasks through in under a second here;
# the stdlib, checked as the oracle of the test itself, takes ten times as
# long per task, so it gets a fifth of them unless TASKDEMO_SLOW is set.
MANY = {"taskdemo": 1_000_000, "stdlib": 1_000_000 if SLOW else 200_000}


def test_many_trivial_tasks_memory(impl, run_in_subprocess):
    """1,000,000 trivial tasks, half through submit()+result(), half through
    map(): RSS after the first tenth grows by less than 10 MB, and the
    references the pool took to the shared argument and result are all
    given back."""
    n = MANY[impl.name]
    rc, out, err = _run(run_in_subprocess,
                        MANY_TASKS.format(import_line=impl.import_line),
                        timeout=240, args=(str(n),))
    assert rc == 0, f"rc={rc}\n{out}\n{err}"
    figures = dict(re.findall(r"(\w+) (\S+)", out))
    assert int(figures["tasks"]) == n
    STATS.setdefault("many_tasks", {})[impl.name] = {
        k: figures[k] for k in ("tasks", "seconds", "rss_growth_kb")}
    assert figures["refcounts"] == "True", out
    if not UNDER_ASAN:
        assert int(figures["rss_growth_kb"]) < 10 * 1024, out


# -- 64 submitting threads -------------------------------------------------------


def test_sixty_four_threads_submitting_at_once(impl, pools):
    """64 threads released by one barrier each submit 500 tasks and 50 map
    calls to one pool; every result is the submitter's own."""
    pool = pools.new(max_workers=8)
    nthreads, per_thread = 64, 500
    barrier = pools.barrier(nthreads)
    results: List[Any] = [None] * nthreads
    errors: List[BaseException] = []

    def submitter(k: int) -> None:
        try:
            barrier.wait()
            fs = [pool.submit(divmod, k * per_thread + i, per_thread)
                  for i in range(per_thread)]
            mapped = list(pool.map(divmod, [k] * 50, [1] * 50, timeout=WAIT))
            results[k] = ([f.result(timeout=WAIT) for f in fs], mapped)
        except BaseException as exc:
            errors.append(exc)

    threads = [threading.Thread(target=submitter, args=(k,))
               for k in range(nthreads)]
    for t in threads:
        t.start()
    for t in threads:
        t.join(WAIT)
    assert not errors, errors
    for k, (got, mapped) in enumerate(results):
        assert got == [(k, i) for i in range(per_thread)]
        assert mapped == [(k, 0)] * 50


# -- bad input, property-based --------------------------------------------------

PROPERTY_SETTINGS = settings(
    max_examples=2000 if SLOW else 200,
    derandomize=not SLOW,
    database=None,
    deadline=None,
    suppress_health_check=[HealthCheck.too_slow,
                           HealthCheck.function_scoped_fixture],
)


class JunkError(Exception):
    """What the hostile objects below raise from their dunders."""


DUNDERS = ("__eq__", "__hash__", "__repr__", "__str__", "__format__",
           "__bool__", "__index__", "__int__", "__float__", "__len__",
           "__iter__", "__lt__", "__getattr__")


def _hostile(names, callable_=False):
    """An instance of a new class whose given dunders raise JunkError."""
    def boom(self, *args, **kwargs):
        raise JunkError("hostile " + ",".join(sorted(names)))

    ns: Dict[str, Any] = {name: boom for name in names}
    if "__eq__" in names and "__hash__" not in names:
        ns["__hash__"] = object.__hash__
    if callable_:
        ns["__call__"] = lambda self, *a, **k: ("called", len(a), len(k))
    return type("Hostile", (), ns)()


def _hostile_class(names):
    """A callable class whose metaclass's dunders raise: submitting it makes
    taskdemo hash the class to label the task."""
    def boom(cls, *args, **kwargs):
        raise JunkError("hostile metaclass")

    meta = type("HostileMeta", (type,),
                {name: boom for name in names if name != "__getattr__"})
    return meta("HostileClass", (), {})


hostile = st.builds(_hostile, st.sets(st.sampled_from(DUNDERS), min_size=1))
hostile_callable = st.builds(_hostile, st.sets(st.sampled_from(DUNDERS)),
                             st.just(True))
hostile_class = st.builds(_hostile_class,
                          st.sets(st.sampled_from(("__eq__", "__hash__",
                                                   "__repr__", "__call__")),
                                  min_size=1))
numbers = st.one_of(
    st.integers(), st.integers(min_value=2**62, max_value=2**200),
    st.integers(max_value=-1), st.just(0),
    st.floats(allow_nan=True, allow_infinity=True),
    st.sampled_from([math.nan, -math.nan, math.inf, -math.inf, -0.0, 1e308,
                     5e-324, Fraction(-1, 3), True, False]),
    st.complex_numbers(max_magnitude=10),
)
junk = st.one_of(
    st.none(), numbers, st.text(max_size=20), st.binary(max_size=20),
    st.lists(st.integers(), max_size=3), st.tuples(st.integers()),
    st.dictionaries(st.text(max_size=3), st.integers(), max_size=2),
    st.just(object()), st.just(print), st.just(type), hostile,
    hostile_callable, hostile_class,
)

# A clear Python exception: what a wrong argument should get, or what the
# hostile object itself raised while taskdemo was looking at it.
CLEAR = (TypeError, ValueError, OverflowError, JunkError)


def clearly(call, *also):
    """Runs call(); any outcome but a return or a clear exception fails."""
    try:
        return call()
    except CLEAR + also:
        return None


@pytest.fixture(scope="module")
def shared_pool():
    pool = taskdemo.ThreadPoolExecutor(max_workers=2)
    yield pool
    pool.shutdown(wait=True)


def _usable(pool) -> None:
    assert pool.submit(pow, 2, 5).result(timeout=WAIT) == 32
    assert list(pool.map(pow, [2, 3], [2, 2], timeout=WAIT)) == [4, 9]


EXECUTOR_PARAMS = ("max_workers", "thread_name_prefix", "initializer",
                   "initargs", "timeline_size")


@PROPERTY_SETTINGS
@given(param=st.sampled_from(EXECUTOR_PARAMS), value=junk,
       positional=st.booleans())
def test_executor_constructor_with_junk(param, value, positional):
    """ThreadPoolExecutor(...) with junk in any one parameter: a clear error
    or a working pool (an initializer that fails breaks it cleanly)."""
    kwargs = {param: value}
    if param == "max_workers":
        kwargs = {}
        args = (value,)
    elif positional and param != "timeline_size":
        args = tuple([2, "p", None, ()][:EXECUTOR_PARAMS.index(param)]) + \
            (value,)
        kwargs = {}
    else:
        args = ()
    pool = clearly(lambda: taskdemo.ThreadPoolExecutor(*args, **kwargs))
    if pool is None:
        return
    try:
        f = pool.submit(pow, 2, 5)
        assert f.result(timeout=WAIT) == 32
    except cf.BrokenExecutor:
        assert param in ("initializer", "initargs")
    finally:
        pool.shutdown(wait=True)


@PROPERTY_SETTINGS
@given(nargs=st.integers(6, 9))
def test_executor_constructor_too_many_arguments(nargs):
    with pytest.raises(TypeError):
        taskdemo.ThreadPoolExecutor(*([1] * nargs))


@PROPERTY_SETTINGS
@given(fn=junk, args=st.lists(junk, max_size=3),
       kwargs=st.dictionaries(st.text(min_size=1, max_size=5), junk,
                              max_size=3))
def test_submit_with_junk(shared_pool, fn, args, kwargs):
    """submit(fn, *args, **kwargs): a non-callable fn is a TypeError at
    once; anything else runs and hands back exactly the arguments, hostile
    ones included, or stores the exception the call raised."""
    if not callable(fn):
        with pytest.raises(TypeError):
            shared_pool.submit(fn, *args, **kwargs)
    else:
        f = shared_pool.submit(fn, *args, **kwargs)
        try:
            f.result(timeout=WAIT)
        except BaseException as exc:   # whatever fn itself raised
            assert not isinstance(exc, cf.TimeoutError)
        assert f.done()

    def echo(*a, **k):
        return a, k

    got_args, got_kwargs = shared_pool.submit(echo, *args, **kwargs).result(
        timeout=WAIT)
    assert len(got_args) == len(args)
    assert all(a is b for a, b in zip(got_args, args))
    assert sorted(got_kwargs) == sorted(kwargs)
    assert all(got_kwargs[k] is kwargs[k] for k in kwargs)
    _usable(shared_pool)


@PROPERTY_SETTINGS
@given(fn=junk, iterables=st.lists(junk, max_size=2), timeout=junk,
       chunksize=junk, which=st.sampled_from(["fn", "iterables", "timeout",
                                              "chunksize"]))
def test_map_with_junk(shared_pool, fn, iterables, timeout, chunksize, which):
    """map() with junk in one argument (the others valid): a clear error,
    from map() or while iterating, or correct results."""
    call = {"fn": pow, "iterables": [[2, 3], [2, 2]], "timeout": WAIT,
            "chunksize": 1}
    call[which] = {"fn": fn, "iterables": iterables, "timeout": timeout,
                   "chunksize": chunksize}[which]
    if which == "timeout" and isinstance(timeout, (int, float, Fraction)) \
            and not isinstance(timeout, bool) and timeout == timeout \
            and timeout < 0.001:
        call["timeout"] = WAIT if timeout >= 0 else timeout

    def run():
        return list(shared_pool.map(call["fn"], *call["iterables"],
                                    timeout=call["timeout"],
                                    chunksize=call["chunksize"]))

    # A timeout <= 0 may expire before the results arrive.
    clearly(run, cf.TimeoutError)
    _usable(shared_pool)


@PROPERTY_SETTINGS
@given(wait=junk, cancel_futures=junk)
def test_shutdown_with_junk(wait, cancel_futures):
    """shutdown(wait, cancel_futures) takes any object by truth value, like
    the stdlib; an object whose __bool__ raises gets that error out."""
    pool = taskdemo.ThreadPoolExecutor(max_workers=1)
    f = pool.submit(pow, 2, 3)
    try:
        clearly(lambda: pool.shutdown(wait, cancel_futures=cancel_futures))
    finally:
        pool.shutdown(wait=True)
    assert f.cancelled() or f.result(timeout=WAIT) == 8
    with pytest.raises(TypeError):
        pool.shutdown(True, True)   # cancel_futures is keyword-only
    with pytest.raises(TypeError):
        pool.shutdown(True, cancel_futures=False, extra=1)


def _bounded_timeout(value):
    """A timeout that cannot make a pending wait last: not a number, or a
    negative, NaN or tiny one.  (None, and any timeout of years, mean no
    limit.)"""
    if value is None:
        return False
    try:
        seconds = float(value)
    except BaseException:
        return True
    return seconds != seconds or seconds <= 1e-3


@PROPERTY_SETTINGS
@given(timeout=junk, method=st.sampled_from(["result", "exception"]),
       positional=st.booleans())
def test_future_timeouts_with_junk(shared_pool, timeout, method, positional):
    """result()/exception() with a junk timeout, on a finished future and on
    a pending one: the value, TimeoutError, or a clear error; the future
    and the pool are unharmed."""
    done = shared_pool.submit(pow, 2, 3)
    assert done.result(timeout=WAIT) == 8
    call = getattr(done, method)
    got = clearly(lambda: call(timeout) if positional else
                  call(timeout=timeout))
    assert got in (None, 8)
    gate = threading.Event()
    # If a wait below wrongly blocks, the task gives up after 5 s and the
    # assertion after the block reports it.
    pending = shared_pool.submit(gate.wait, 5)
    try:
        if _bounded_timeout(timeout):
            clearly(lambda: getattr(pending, method)(timeout=timeout),
                    cf.TimeoutError)
        with pytest.raises(TypeError):
            getattr(pending, method)(0, 0)
        with pytest.raises(TypeError):
            getattr(pending, method)(timeout=0, other=1)
    finally:
        gate.set()
    assert pending.result(timeout=WAIT) is True
    _usable(shared_pool)


@PROPERTY_SETTINGS
@given(fn=junk)
def test_add_done_callback_with_junk(shared_pool, fn):
    """add_done_callback(junk): a non-callable is a TypeError (the stdlib
    would log its failed call later); a hostile callable runs once the
    future is done and its JunkError is logged, not raised."""
    f = shared_pool.submit(pow, 2, 3)
    f.result(timeout=WAIT)
    clearly(lambda: f.add_done_callback(fn))
    if not callable(fn):
        with pytest.raises(TypeError):
            f.add_done_callback(fn)
    with pytest.raises(TypeError):
        f.add_done_callback()
    with pytest.raises(TypeError):
        f.cancel(fn)
    _usable(shared_pool)


@PROPERTY_SETTINGS
@given(value=junk)
def test_future_setters_with_junk(value):
    """A bare taskdemo.Future (for executors and tests): set_exception needs
    an exception instance, set_result takes anything once, and the
    constructor takes no arguments."""
    f = taskdemo.Future()
    if isinstance(value, BaseException):
        f.set_exception(value)
    else:
        with pytest.raises(TypeError):
            f.set_exception(value)
        f.set_result(value)
        assert f.result(timeout=0) is value
    with pytest.raises(cf.InvalidStateError):
        f.set_result(value)
    with pytest.raises(TypeError):
        taskdemo.Future(value)
    repr(f)   # never raises, whatever the result's repr does


def _safe_duration(value) -> bool:
    """Durations that return at once or are rejected, never a real wait."""
    try:
        seconds = float(value)
    except BaseException:
        return True
    return not (1e-4 < seconds < 1e10)


@PROPERTY_SETTINGS
@given(value=junk, fn=st.sampled_from(["sleep", "spin"]))
def test_native_with_junk(value, fn):
    """native.sleep/spin(junk): a clear error (TypeError for non-numbers,
    ValueError for negative or NaN, OverflowError beyond the C clock) or
    an immediate return."""
    call = getattr(taskdemo.native, fn)
    if _safe_duration(value):
        clearly(lambda: call(value))
    with pytest.raises(TypeError):
        call()
    with pytest.raises(TypeError):
        call(0, value)


@PROPERTY_SETTINGS
@given(args=st.lists(junk, min_size=1, max_size=3))
def test_module_functions_with_junk(args):
    """The argument-less functions refuse arguments; stopwatch() and
    Stopwatch() refuse wrong counts; a stopwatch whose name cannot be
    formatted fails with that error and stays consistent."""
    for fn in (taskdemo.thread_count, taskdemo.monotonic_ns,
               taskdemo.additional_thread_count):
        with pytest.raises(TypeError):
            fn(*args)
    with pytest.raises(TypeError):
        taskdemo.Stopwatch(*args)
    with pytest.raises(TypeError):
        taskdemo.stopwatch(*args, "extra", "extra")
    with pytest.raises(TypeError):
        taskdemo.stopwatch()
    sw = taskdemo.Stopwatch()
    with pytest.raises(RuntimeError):
        sw.stop()
    watch = taskdemo.stopwatch(args[0])
    try:
        with watch:
            pass
    except JunkError:
        pass
    assert taskdemo.thread_count() >= 1


@PROPERTY_SETTINGS
@given(args=st.lists(junk, min_size=1, max_size=2))
def test_pool_introspection_with_junk(shared_pool, args):
    """timeline() and repr() of a pool take no arguments and keep working."""
    with pytest.raises(TypeError):
        shared_pool.timeline(*args)
    assert "taskdemo.ThreadPoolExecutor" in repr(shared_pool)
    shared_pool.timeline()


# -- a future's private members ----------------------------------------------

PRIVATE_MEMBER = """
import threading
import concurrent.futures as cf
import taskdemo
pool = taskdemo.ThreadPoolExecutor(max_workers=1)
gate = threading.Event()
pool.submit(gate.wait, 10)
f = pool.submit(pow, 2, 3)          # queued behind the held task
f.add_done_callback(lambda fut: None)
cf.wait([f], timeout=0)             # makes _waiters exist, as the stdlib does
setattr(f, {name!r}, {value})
gate.set()
try:
    print("result:", repr(f.result(timeout=10)), flush=True)
except BaseException as exc:
    print("raised:", type(exc).__name__, exc, flush=True)
assert pool.submit(pow, 2, 5).result(timeout=10) == 32
pool.shutdown(wait=True)
print("pool still usable", flush=True)
"""


@pytest.mark.parametrize("name, value", [
    pytest.param("_td_args", "[1, 2]", id="_td_args"),
    pytest.param("_td_kwargs", "[1]", id="_td_kwargs"),
    pytest.param("_td_callbacks", "5", id="_td_callbacks"),
    pytest.param("_td_waiters", "'abc'", id="_td_waiters"),
    pytest.param("_td_exception", "5", id="_td_exception"),
    pytest.param("_td_fn", "5", id="_td_fn"),
    pytest.param("_td_context", "5", id="_td_context"),
    pytest.param("_td_result", "object()", id="_td_result"),
])
def test_private_future_members_cannot_crash(run_in_subprocess, name, value):
    """Python code that writes a wrong type into one of a pending future's
    private _td_* members (writable so that CPython's dealloc can clear
    them) gets a clear exception, not a crash.  This segfaulted (_td_args,
    _td_kwargs: PyObject_Call with a list; _td_callbacks, _td_waiters:
    PyList_GET_ITEM on a non-list) or raised SystemError (_td_exception:
    PyErr_SetObject with a non-exception) until py_future.c checked the
    types."""
    rc, out, err = run_in_subprocess(
        PRIVATE_MEMBER.format(name=name, value=value), timeout=WAIT)
    assert rc == 0, f"rc={rc} (a negative rc is a signal)\n{out}\n{err}"
    assert "SystemError" not in out + err, out + err
    assert "pool still usable" in out, out + err


# -- garbage collection of futures --------------------------------------------
#
# taskdemo keeps its pool futures out of the cycle collector while their
# call is pending (py_future.c); these check that nothing escapes it.


def _cycle_through_result(f):
    f.result(timeout=WAIT)["future"] = f


def _cycle_through_instance_dict(f):
    f.__dict__["future"] = f


@pytest.mark.parametrize("make_cycle", [_cycle_through_result,
                                        _cycle_through_instance_dict],
                         ids=["result_dict", "instance_dict"])
def test_finished_future_in_a_cycle_is_collected(impl, pools, make_cycle):
    """A finished future that a cycle reaches only after it finished (its
    result dict, or its __dict__ written directly, refers back to it) is
    freed by the cycle collector, as the stdlib's is.  Both leaked: the
    future was tracked again only if its result was tracked at completion,
    and an empty dict is not (it is until filled); writing to f.__dict__
    bypassed the setattr hook that tracks it."""
    import gc
    import weakref

    pool = pools.new(max_workers=1)
    f = pool.submit(dict)       # returns {}: an untracked dict
    f.result(timeout=WAIT)
    make_cycle(f)
    ref = weakref.ref(f)
    del f
    gc.collect()
    assert ref() is None, "the future and its cycle leaked"


class _Marker:
    pass


def _keeps_args(pool, payload):
    return pool.submit(ValueError, payload).result(timeout=WAIT)


def _keeps_kwargs(pool, payload):
    import functools

    return pool.submit(functools.partial, print, k=payload).result(
        timeout=WAIT)


@pytest.mark.parametrize("call", [_keeps_args, _keeps_kwargs],
                         ids=["args_kept_by_exception",
                              "kwargs_kept_by_partial"])
def test_call_containers_kept_by_the_callee_are_collected(impl, pools, call):
    """A task may return an object that keeps the very args tuple or kwargs
    dict it was called with (an exception keeps its args; functools.partial
    keeps a kwargs dict it holds the only reference to); a cycle through
    it is collected as usual.  It leaked while submit() untracked those
    containers."""
    import gc
    import weakref

    pool = pools.new(max_workers=1)
    marker = _Marker()
    payload = [marker]
    keeper = call(pool, payload)
    payload.append(keeper)      # payload -> keeper -> args/kwargs -> payload
    ref = weakref.ref(marker)
    del keeper, payload, marker
    gc.collect()
    assert ref() is None, "the cycle through the call's container leaked"
