"""Scenarios that could hang or kill the interpreter, each run in a child
interpreter with a timeout (reported as "possible deadlock"): Ctrl-C during
blocking waits, fork, interpreter exit with queued work, re-entrant
callbacks, shutdown from inside the pool, and a pool freed on its own
worker.
"""

from __future__ import annotations

import os
import re
import signal
import time

import pytest

WAIT = 20.0

# Ctrl-C must be answered within 100 ms (spec); the bound is five times
# that, for a loaded 2-core machine.  A wait that ignores signals until its
# task ends never answers at all.
SIGINT_BOUND = 0.5

SIGINT_SCRIPT = """
import sys, threading
import concurrent.futures as cf
{import_line}

pool = Executor(max_workers=1)
gate = threading.Event()
started = threading.Event()

def hold():
    started.set()
    gate.wait()
    return "held"

f = pool.submit(hold)
assert started.wait(10)
try:
    print("ready", flush=True)
    {blocking_call}
except KeyboardInterrupt:
    print("interrupted", flush=True)
else:
    print("returned without KeyboardInterrupt", flush=True)
    sys.exit(2)
gate.set()
assert f.result(timeout=10) == "held"
{afterwards}
print("usable", flush=True)
"""

STILL_USABLE = """
assert pool.submit(pow, 2, 5).result(timeout=10) == 32
assert list(pool.map(abs, [-1, -2], timeout=10)) == [1, 2]
pool.shutdown(wait=True)
"""

BLOCKING_CALLS = {
    "result": ("f.result()", STILL_USABLE),
    "result_with_timeout": ("f.result(timeout=60)", STILL_USABLE),
    "exception": ("f.exception()", STILL_USABLE),
    "map_iteration": ("next(pool.map(lambda _: gate.wait(), [0]))", STILL_USABLE),
    "shutdown_wait": (
        "pool.shutdown(wait=True)",
        """
pool.shutdown(wait=True)
with Executor(max_workers=1) as other:
    assert other.submit(pow, 2, 5).result(timeout=10) == 32
""",
    ),
}


def _interrupt(child_factory, code, resend=False):
    """Starts the child, sends SIGINT once it prints "ready"; returns
    (first line after the signal, seconds until it came, rc, out, err).

    With `resend`, a user pressing Ctrl-C again: SIGINT is sent every
    second until the child answers.  The stdlib's untimed lock waits need
    it: a signal that lands between CPython's check for pending signals and
    the futex system call is not seen until the lock is released (taskdemo
    waits in 50 ms slices and must answer the first one)."""
    child = child_factory(code)
    ready = child.read_line(WAIT)
    if ready != "ready":
        rc, out, err = child.finish(WAIT)
        pytest.fail(f"child did not start: rc={rc}\n{out}\n{err}")
    sent = time.monotonic()
    os.kill(child.proc.pid, signal.SIGINT)
    line = child.read_line(1.0 if resend else WAIT)
    deadline = sent + WAIT
    while resend and line is None and time.monotonic() < deadline:
        os.kill(child.proc.pid, signal.SIGINT)
        line = child.read_line(1.0)
    latency = time.monotonic() - sent
    # A child that ignored the signal is still blocked: finish() then fails
    # with "possible deadlock" and its thread stacks.
    rc, out, err = child.finish(WAIT if line is not None else 0.1)
    return line, latency, rc, out, err


@pytest.mark.parametrize("kind", sorted(BLOCKING_CALLS))
def test_sigint_interrupts_blocking_wait(impl, child_factory, kind):
    """Ctrl-C during a blocking wait raises KeyboardInterrupt promptly in the
    main thread, and the pool still works afterwards (the interrupted task
    finishes; new work runs; shutdown completes)."""
    call, afterwards = BLOCKING_CALLS[kind]
    code = SIGINT_SCRIPT.format(
        import_line=impl.import_line, blocking_call=call, afterwards=afterwards
    )
    line, latency, rc, out, err = _interrupt(child_factory, code,
                                             resend=not impl.is_taskdemo)
    assert line == "interrupted", f"{line!r}\n{out}\n{err}"
    if impl.is_taskdemo:
        assert latency < SIGINT_BOUND, f"KeyboardInterrupt took {latency:.3f}s"
    assert rc == 0 and "usable" in out, f"rc={rc}\n{out}\n{err}"


@pytest.mark.parametrize("fn", ["sleep", "spin"])
def test_sigint_interrupts_native_call_on_main_thread(child_factory, fn, taskdemo):
    """native.sleep/spin release the GIL but still answer Ctrl-C when called
    on the main thread (their documented behaviour)."""
    code = f"""
import taskdemo
try:
    print("ready", flush=True)
    taskdemo.native.{fn}(30)
except KeyboardInterrupt:
    print("interrupted", flush=True)
else:
    print("returned without KeyboardInterrupt", flush=True)
"""
    line, latency, rc, out, err = _interrupt(child_factory, code)
    assert line == "interrupted", f"{line!r}\n{out}\n{err}"
    assert latency < SIGINT_BOUND, f"KeyboardInterrupt took {latency:.3f}s"
    assert rc == 0, err


FORK_SCRIPT = """
import os, sys, threading, traceback
import concurrent.futures as cf
{import_line}
CHECK_INHERITED = {check_inherited}

pool = Executor(max_workers=1)
assert pool.submit(pow, 2, 3).result(timeout=10) == 8
gate = threading.Event()
started = threading.Event()

def hold():
    started.set()
    gate.wait()
    return "held"

running = pool.submit(hold)
assert started.wait(10)
queued = pool.submit(pow, 2, 4)
sys.stdout.flush()
sys.stderr.flush()

pid = os.fork()
if pid == 0:
    problems = []
    try:
        if CHECK_INHERITED:
            for name, fut in (("running", running), ("queued", queued)):
                try:
                    value = fut.result(timeout=5)
                except RuntimeError as exc:
                    if not str(exc):
                        problems.append(f"{{name}}: RuntimeError without a message")
                except cf.TimeoutError:
                    problems.append(f"inherited {{name}} future still pending: it would hang")
                else:
                    problems.append(f"inherited {{name}} future returned {{value!r}}")
            try:
                fut = pool.submit(pow, 3, 2)
            except RuntimeError as exc:
                print("child: inherited pool refuses work:", exc, flush=True)
            else:
                try:
                    if fut.result(timeout=5) != 9:
                        problems.append("inherited pool computed a wrong result")
                except cf.TimeoutError:
                    problems.append("inherited pool accepted work and hangs")
                print("child: inherited pool works", flush=True)
        with Executor(max_workers=2) as fresh:
            if list(fresh.map(pow, [2, 3], [10, 2], timeout=5)) != [1024, 9]:
                problems.append("new pool in the child computed wrong results")
    except BaseException:
        traceback.print_exc()
        problems.append("exception in child")
    print("child problems:", problems, flush=True)
    # A normal exit, so the exit hooks run on the inherited pool too.
    sys.exit(1 if problems else 0)

gate.set()
assert running.result(timeout=10) == "held"
assert queued.result(timeout=10) == 16
_, status = os.waitpid(pid, 0)
print("child exit code", os.waitstatus_to_exitcode(status), flush=True)
pool.shutdown(wait=True)
"""


@pytest.mark.fork
@pytest.mark.skipif(not hasattr(os, "fork"), reason="needs os.fork")
def test_fork_with_live_pool(impl, run_in_subprocess):
    """After os.fork() the child never hangs on a pool it inherited: the
    futures that were running or queued in the parent end with a clear
    RuntimeError, submit raises RuntimeError or works, a new pool works,
    and the child exits 0.  The parent's pool is unaffected.  The stdlib
    pool is not fork-safe (an inherited pool with idle workers accepts work
    it never runs), so for it only the new pool and the exit are checked."""
    code = FORK_SCRIPT.format(import_line=impl.import_line, check_inherited=impl.is_taskdemo)
    rc, out, err = run_in_subprocess(code, timeout=WAIT)
    assert "child problems: []" in out, f"{out}\n{err}"
    assert "child exit code 0" in out, f"{out}\n{err}"
    assert rc == 0, f"{out}\n{err}"


EXIT_SCRIPT = """
import sys, threading
{import_line}
path = sys.argv[1]
pool = Executor(max_workers=1)
gate = threading.Event()

def task(i):
    if i == 0:
        gate.wait()
    with open(path, "a") as fh:
        fh.write(f"{{i}}\\n")
    # One write per line: print() writes the text and the newline apart,
    # so lines from two threads could interleave.
    sys.stdout.write(f"task {{i}}\\n")
    sys.stdout.flush()

for i in range(20):
    pool.submit(task, i)
gate.set()
print("main done", flush=True)
# No shutdown: the interpreter exits with tasks still queued.
"""


def test_exit_with_queued_work(impl, run_in_subprocess, tmp_path):
    """An interpreter that exits without shutting its pool down first runs
    every queued task, joins the workers and exits 0, without a crash."""
    out_file = tmp_path / "ran.txt"
    rc, out, err = run_in_subprocess(
        EXIT_SCRIPT.format(import_line=impl.import_line), timeout=WAIT, args=(str(out_file),)
    )
    assert rc == 0, f"rc={rc}\n{out}\n{err}"
    assert sorted(int(x) for x in out_file.read_text().split()) == list(range(20))
    assert sorted(int(i) for i in re.findall(r"task (\d+)", out)) == list(range(20)), out
    assert "Traceback" not in err and "Fatal" not in err, err


def test_exit_while_pool_is_garbage(impl, run_in_subprocess):
    """A pool dropped without shutdown, with work queued, still runs that
    work (as the stdlib does when its executor is collected)."""
    code = f"""
import gc, threading
{impl.import_line}
pool = Executor(max_workers=1)
gate = threading.Event()
out = []
fs = [pool.submit(gate.wait, 10)] + [pool.submit(out.append, i) for i in range(10)]
del pool
gc.collect()
gate.set()
for f in fs:
    f.result(timeout=10)
assert out == list(range(10)), out
print("ok", flush=True)
"""
    rc, out, err = run_in_subprocess(code, timeout=WAIT)
    assert rc == 0 and "ok" in out, f"rc={rc}\n{out}\n{err}"


def test_reentrant_callbacks(impl, run_in_subprocess):
    """A done-callback may use its own future (result, done, another
    add_done_callback) and submit to the pool: nothing holds a lock that
    these need while callbacks run."""
    code = f"""
import threading
import concurrent.futures as cf
{impl.import_line}
pool = Executor(max_workers=2)
log = []
finished = threading.Event()

def cb(fut):
    log.append(("result", fut.result()))
    log.append(("done", fut.done()))
    fut.add_done_callback(lambda again: log.append(("nested", again is fut)))
    inner = pool.submit(pow, 2, 3)
    inner.add_done_callback(lambda f3: (log.append(("inner", f3.result())), finished.set()))

gate = threading.Event()
f = pool.submit(gate.wait, 10)
f.add_done_callback(cb)   # runs on the worker that completes f
gate.set()
assert finished.wait(10), log
assert log == [("result", True), ("done", True), ("nested", True), ("inner", 8)], log

# The same on a finished future: the callback runs in this thread at once.
log.clear()
finished.clear()
f.add_done_callback(cb)
assert finished.wait(10), log
assert log == [("result", True), ("done", True), ("nested", True), ("inner", 8)], log

# A callback that cancels another queued future of the same pool.
blocker_gate = threading.Event()
blocker = pool.submit(blocker_gate.wait, 10)
blocker2 = pool.submit(blocker_gate.wait, 10)
victim = pool.submit(pow, 1, 1)
trigger = pool.submit(lambda: None)  # queued behind the blockers too
blocker.add_done_callback(lambda _: victim.cancel())
blocker_gate.set()
cf.wait([blocker, blocker2, victim, trigger], timeout=10)
assert blocker.result(timeout=10) and blocker2.result(timeout=10)
pool.shutdown(wait=True)
print("ok", flush=True)
"""
    rc, out, err = run_in_subprocess(code, timeout=WAIT)
    assert rc == 0 and "ok" in out, f"rc={rc}\n{out}\n{err}"


def test_task_waits_on_task_of_same_pool(impl, run_in_subprocess):
    code = f"""
{impl.import_line}
pool = Executor(max_workers=2)
def outer():
    return pool.submit(pow, 3, 3).result(timeout=10) + 1
assert pool.submit(outer).result(timeout=10) == 28
pool.shutdown(wait=True)
print("ok", flush=True)
"""
    rc, out, err = run_in_subprocess(code, timeout=WAIT)
    assert rc == 0 and "ok" in out, f"rc={rc}\n{out}\n{err}"


def test_shutdown_from_inside_a_task(impl, run_in_subprocess):
    """shutdown(wait=True) called by one of the pool's own tasks cannot join
    its own thread.  The stdlib raises RuntimeError; taskdemo joins the
    other workers and returns (documented difference).  Either way nothing
    hangs and the process exits cleanly."""
    code = f"""
import threading
{impl.import_line}
pool = Executor(max_workers=2)
barrier = threading.Barrier(2, timeout=10)
other = pool.submit(barrier.wait)

def stop_from_inside():
    barrier.wait()
    try:
        pool.shutdown(wait=True)
    except RuntimeError as exc:
        return "RuntimeError"
    return "returned"

f = pool.submit(stop_from_inside)
print(f.result(timeout=10), flush=True)
other.result(timeout=10)
try:
    pool.submit(abs, 1)
except RuntimeError:
    print("refuses work", flush=True)
pool.shutdown(wait=True)
print("ok", flush=True)
"""
    rc, out, err = run_in_subprocess(code, timeout=WAIT)
    assert rc == 0 and "refuses work" in out and "ok" in out, f"rc={rc}\n{out}\n{err}"
    expected = "returned" if impl.is_taskdemo else "RuntimeError"
    assert out.splitlines()[0] == expected, out


def test_last_reference_dropped_on_worker(impl, run_in_subprocess):
    """When a task drops the last reference to its own pool, the pool is
    freed on that worker: this must neither deadlock (a worker cannot join
    itself) nor crash, and the task's result still arrives."""
    code = f"""
import gc, threading
{impl.import_line}
box = [Executor(max_workers=1)]
gate = threading.Event()

def task(b):
    gate.wait(10)
    b.clear()     # the pool's last reference goes away on this worker
    gc.collect()
    return "ok"

f = box[0].submit(task, box)
gate.set()
print(f.result(timeout=10), flush=True)
gc.collect()
print("end", flush=True)
"""
    rc, out, err = run_in_subprocess(code, timeout=WAIT)
    assert rc == 0 and out.split() == ["ok", "end"], f"rc={rc}\n{out}\n{err}"


def test_submit_racing_shutdown(impl, run_in_subprocess):
    """Four threads submit while a fifth shuts the pool down: each submit
    either raises RuntimeError or returns a future that completes."""
    code = f"""
import threading
{impl.import_line}
pool = Executor(max_workers=2)
barrier = threading.Barrier(5, timeout=10)
lock = threading.Lock()
accepted, refused = [], [0]

def submitter(k):
    barrier.wait()
    for i in range(2000):
        try:
            f = pool.submit(pow, i, 2)
        except RuntimeError:
            with lock:
                refused[0] += 1
        else:
            with lock:
                accepted.append((i, f))

def stopper():
    barrier.wait()
    pool.shutdown(wait=True)

threads = [threading.Thread(target=submitter, args=(k,)) for k in range(4)]
threads.append(threading.Thread(target=stopper))
for t in threads:
    t.start()
for t in threads:
    t.join()
for i, f in accepted:
    assert f.result(timeout=10) == i * i
assert len(accepted) + refused[0] == 8000
print("ok", len(accepted), refused[0], flush=True)
"""
    rc, out, err = run_in_subprocess(code, timeout=WAIT)
    assert rc == 0 and out.startswith("ok"), f"rc={rc}\n{out}\n{err}"


THREADS_RUN_OUT = """
import os, resource, threading
import taskdemo

# Become an unprivileged user, for whom the kernel enforces RLIMIT_NPROC
# (threads count), and allow this process only a few more threads.
os.setgid(65534)
os.setuid(65534)
with open("/proc/self/status") as fh:
    mine = int(next(l for l in fh if l.startswith("Threads:")).split()[1])
resource.setrlimit(resource.RLIMIT_NPROC, (mine + 4, mine + 4))

gate = threading.Event()
pool = taskdemo.ThreadPoolExecutor(max_workers=1000)
fs = [pool.submit(gate.wait, 30) for _ in range(200)]
started = taskdemo.additional_thread_count()
gate.set()
assert all(f.result(timeout=30) for f in fs)
pool.shutdown(wait=True)
print("started", started, "of 200; all ran", flush=True)
"""


@pytest.mark.skipif(not hasattr(os, "geteuid") or os.geteuid() != 0,
                    reason="needs root to drop to a user the thread limit "
                    "binds (root ignores RLIMIT_NPROC)")
def test_when_the_os_refuses_threads_the_pool_runs_on_what_it_has(
        taskdemo, run_in_subprocess):
    """max_workers=1000 and 200 blocking tasks, where the OS allows only
    four more threads: submit neither crashes nor raises, and the pool runs
    every task on the workers it could start (the stdlib's submit raises
    RuntimeError there instead)."""
    rc, out, err = run_in_subprocess(THREADS_RUN_OUT, timeout=WAIT * 3)
    assert rc == 0, f"rc={rc}\n{out}\n{err}"
    m = re.search(r"started (\d+) of 200; all ran", out)
    assert m, out
    assert 1 <= int(m.group(1)) <= 4
