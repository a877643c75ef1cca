"""Model-based stress: taskdemo's pool and the stdlib's, driven side by side.

A Hypothesis ``RuleBasedStateMachine`` makes one pool of each kind with the
same ``max_workers`` (1 to 3) and applies every operation to both: submit
(a task that returns, raises, sleeps briefly, blocks on a gate the machine
controls, submits to its own pool, or shuts its own pool down), submit of a
non-callable, cancel, add_done_callback (recording, raising, submitting),
result/exception with and without a timeout, map, as_completed, wait,
opening a gate, and shutdown(wait, cancel_futures).

Determinism comes from a model, not from luck.  After every step the
machine lets both pools settle: tasks leave the FIFO queue in order, a
worker stays busy only while its task waits at a closed gate, and every
other task finishes.  So the model knows, for each future, its exact state
(PENDING, RUNNING, CANCELLED, CANCELLED_AND_NOTIFIED, FINISHED), whether
cancel() must succeed, which callbacks have run, and which waits must time
out (those get a 5 ms timeout; nothing else does).  The settle step waits
for what the model says must happen (futures done, tasks started at their
gate, callbacks run), never sleeps, and then checks every future of both
pools against the model: ``_state``, done/running/cancelled, how often each
task ran, which callbacks ran with what they saw, and what was logged.
Every value a call returns or raises is compared between the pools.

The stdlib is the oracle.  Where the model and the stdlib disagree, the
model is wrong; where taskdemo differs from both, the difference must be a
documented deviation (taskdemo/_executor.py), applied here explicitly:

- shutdown(cancel_futures=True): taskdemo's cancelled futures end
  CANCELLED_AND_NOTIFIED (as_completed and wait see them); the stdlib's
  stay CANCELLED forever.
- shutdown(wait=True) from the pool's own task: the stdlib raises
  RuntimeError ("cannot join current thread"); taskdemo returns.
- submit(non_callable): taskdemo raises TypeError at once; the stdlib
  accepts it and the future fails with TypeError when a worker runs it.

One stdlib defect is steered around rather than compared: a done-callback
that submits to its own pool deadlocks the stdlib's
shutdown(cancel_futures=True), which holds the non-reentrant
``_shutdown_lock`` while it cancels (and so runs callbacks).  Such a
callback checks ``pool._shutdown`` first on the stdlib side only; taskdemo
always really calls submit and must refuse it.

Runs: 250 derandomised examples (fixed seed) by default; --slow (or
TASKDEMO_SLOW=1) runs 1,000 random ones, TASKDEMO_MODEL_EXAMPLES=N
overrides the count.
A failure prints the shrunk step sequence to reproduce it.
"""

from __future__ import annotations

import concurrent.futures as cf
import json
import logging
import os
import threading
import time
from collections import Counter
from typing import Any, Dict, List, Optional, Tuple

from hypothesis import HealthCheck, settings
from hypothesis import strategies as st
from hypothesis.stateful import (RuleBasedStateMachine, initialize,
                                 invariant, precondition, rule)

import taskdemo

IMPLS = ("stdlib", "taskdemo")
EXECUTORS = {"stdlib": cf.ThreadPoolExecutor,
             "taskdemo": taskdemo.ThreadPoolExecutor}

SLOW = os.environ.get("TASKDEMO_SLOW", "") not in ("", "0")
EXAMPLES = int(os.environ.get("TASKDEMO_MODEL_EXAMPLES",
                              "1000" if SLOW else "250"))
STEPS = 50 if SLOW else 40
MAX_TASKS = 24     # tracked tasks per example, to bound its run time

WAIT = 10.0        # bound of every wait that must succeed
SHORT = 0.005      # timeout of every wait the model says must time out

PENDING = "PENDING"
RUNNING = "RUNNING"
CANCELLED = "CANCELLED"
NOTIFIED = "CANCELLED_AND_NOTIFIED"
FINISHED = "FINISHED"
COMPLETE = (NOTIFIED, FINISHED)   # what as_completed() and wait() report

# Figures for docs/reliability.md; written out by teardown_module when
# TASKDEMO_STATS names a file.
STATS: Counter = Counter()


class ModelError(Exception):
    pass


class ModelBaseError(BaseException):
    """A BaseException that is neither SystemExit nor KeyboardInterrupt."""


RAISES = (ValueError, ModelError, ModelBaseError, SystemExit)


class Spec:
    """What a task does; immutable once submitted (workers read it)."""

    def __init__(self, kind: str, value: int = 0,
                 exc: Optional[type] = None, wait: bool = False,
                 cancel: bool = False) -> None:
        self.kind = kind          # return sleep gated nested self_shutdown
        self.value = value
        self.exc = exc            # raised instead of returning, if set
        self.wait = wait          # self_shutdown's arguments
        self.cancel = cancel
        self.gate = threading.Event() if kind == "gated" else None
        self.started = {impl: threading.Event() for impl in IMPLS}


PLAIN = Spec("return")


class Runtime:
    """What the tasks and callbacks of one example record, per pool."""

    def __init__(self) -> None:
        self.lock = threading.Lock()
        self.changed = threading.Condition(self.lock)
        self.pools: Dict[str, Any] = {}
        self.ran: Counter = Counter()             # (impl, key) -> runs
        self.callbacks: List[tuple] = []          # (impl, key, cbid, cancelled)
        self.spawned: Dict[tuple, Any] = {}       # (impl, key, cbid) -> future
        self.inner: Dict[tuple, Any] = {}         # (impl, key) -> future


def run_task(rt: Runtime, impl: str, key: Any, spec: Spec) -> Any:
    with rt.lock:
        rt.ran[(impl, key)] += 1
    if spec.kind == "gated":
        spec.started[impl].set()
        spec.gate.wait(WAIT)
    elif spec.kind == "sleep":
        time.sleep(0.001)
    elif spec.kind == "nested":
        try:
            inner: Any = rt.pools[impl].submit(run_task, rt, impl,
                                               ("inner", key), PLAIN)
        except RuntimeError:
            inner = "refused"
        with rt.lock:
            rt.inner[(impl, key)] = inner
        return ("nested", "refused" if inner == "refused" else "submitted")
    elif spec.kind == "self_shutdown":
        rt.pools[impl].shutdown(wait=spec.wait, cancel_futures=spec.cancel)
        return ("shutdown", key)
    if spec.exc is not None:
        raise spec.exc(key, spec.value)
    return (key, spec.value)


def make_callback(rt: Runtime, impl: str, key: Any, cbid: int, kind: str):
    def callback(fut: cf.Future) -> None:
        if kind == "submit":
            pool = rt.pools[impl]
            spawned: Any = "refused"
            # The stdlib deadlocks if this submits from inside its own
            # shutdown(cancel_futures=True); see the module docstring.
            if impl == "taskdemo" or not pool._shutdown:
                try:
                    spawned = pool.submit(run_task, rt, impl,
                                          ("cb", key, cbid), PLAIN)
                except RuntimeError:
                    pass
            with rt.lock:
                rt.spawned[(impl, key, cbid)] = spawned
        # Recorded last, so a waiter that sees the record sees the rest.
        with rt.changed:
            rt.callbacks.append((impl, key, cbid, fut.cancelled()))
            rt.changed.notify_all()
        if kind == "raise":
            raise ModelError("from a callback", key, cbid)

    return callback


class Task:
    """The model of one task: the same on both pools, unless `impls` says
    it exists on one pool only."""

    def __init__(self, key: Any, spec: Spec,
                 impls: Tuple[str, ...] = IMPLS) -> None:
        self.key = key
        self.spec = spec
        self.impls = impls
        self.futures: Dict[str, Any] = {}
        self.state = PENDING
        self.by_shutdown = False    # cancelled by shutdown(cancel_futures)
        self.nested: Optional[str] = None   # "submitted" / "refused"
        self.callbacks: List[Tuple[int, str]] = []   # not yet run
        self.parent: Optional[tuple] = None   # how a worker-made task is found

    def expected_state(self, impl: str) -> str:
        if self.by_shutdown:
            # Documented deviation: taskdemo notifies waiters.
            return NOTIFIED if impl == "taskdemo" else CANCELLED
        return self.state

    def gate_closed(self) -> bool:
        return self.spec.gate is not None and not self.spec.gate.is_set()

    def __repr__(self) -> str:
        return f"Task({self.key!r}, {self.spec.kind}, {self.state})"


class LogCapture(logging.Handler):
    """Counts the 'concurrent.futures' logger's records per pool."""

    def __init__(self) -> None:
        super().__init__(logging.DEBUG)
        self.lock_ = threading.Lock()
        self.callback_errors: Counter = Counter()
        self.other: List[str] = []

    def emit(self, record: logging.LogRecord) -> None:
        with self.lock_:
            arg = record.args[0] if isinstance(record.args, tuple) and \
                record.args else None
            if record.msg == "exception calling callback for %r":
                impl = ("taskdemo" if isinstance(arg, taskdemo.Future)
                        else "stdlib")
                self.callback_errors[impl] += 1
            else:
                self.other.append(record.getMessage())


def outcome(call) -> tuple:
    """What a call did, in a form two implementations can be compared by."""
    try:
        value = call()
    except cf.CancelledError:
        return ("cancelled",)
    except cf.TimeoutError:
        return ("timeout",)
    except BaseException as exc:   # SystemExit etc. raised by result()
        return ("raised", type(exc), exc.args)
    if isinstance(value, BaseException):
        return ("exception", type(value), value.args)
    return ("ok", value)


class PoolModel(RuleBasedStateMachine):
    def __init__(self) -> None:
        super().__init__()
        self.rt = Runtime()
        self.w = 1
        self.tasks: List[Task] = []
        self.queue: List[Task] = []     # submitted, not yet taken by a worker
        self.shutdown_called = False
        self.shutdowns = 0
        self.next_key = 0
        self.next_cbid = 0
        self.log_errors_expected: Counter = Counter()
        self.callbacks_expected: List[tuple] = []
        self.clean = True   # False while a step runs: teardown then only
        # cleans up, so it cannot hide the step's own failure
        self.log = LogCapture()
        self.logger = logging.getLogger("concurrent.futures")
        self.saved_propagate = self.logger.propagate
        self.logger.addHandler(self.log)
        self.logger.propagate = False
        STATS["examples"] += 1

    # -- set-up and helpers --------------------------------------------------

    @initialize(w=st.sampled_from([1, 1, 2, 3]))
    def start(self, w: int) -> None:
        self.w = w
        for impl in IMPLS:
            self.rt.pools[impl] = EXECUTORS[impl](max_workers=w)
        # The stdlib starts a worker only when its idle count says none is
        # free; make all w exist up front so it is a plain FIFO of w
        # workers, as the model assumes.  taskdemo starts workers lazily
        # and must match the model without this.
        barrier = threading.Barrier(w + 1, timeout=WAIT)
        warm = [self.rt.pools["stdlib"].submit(barrier.wait)
                for _ in range(w)]
        barrier.wait()
        assert not cf.wait(warm, timeout=WAIT).not_done

    def new_key(self) -> int:
        self.next_key += 1
        return self.next_key

    def future(self, task: Task, impl: str, must: bool = True) -> Any:
        """The task's future on one pool.  A task that a task or a callback
        submitted has one once that code ran (settle() waits for it); until
        then this returns None, or fails if `must`."""
        if impl not in task.futures and task.parent is not None:
            table, key = task.parent
            with self.rt.lock:
                f = getattr(self.rt, table).get((impl,) + key)
            if f is None and not must:
                return None
            assert f is not None and f != "refused", (impl, task, f)
            task.futures[impl] = f
        return task.futures[impl]

    def pick(self, tasks: List[Task], i: int) -> Task:
        # Newest first: Hypothesis favours small numbers, and the newest
        # tasks are the ones still queued.
        return tasks[-1 - i % len(tasks)]

    # -- the model -------------------------------------------------------------

    def run_callback(self, task: Task, cbid: int, kind: str) -> None:
        cancelled = task.state in (CANCELLED, NOTIFIED)
        for impl in task.impls:
            self.callbacks_expected.append((impl, task.key, cbid, cancelled))
            if kind == "raise":
                self.log_errors_expected[impl] += 1
        if kind == "submit" and not self.shutdown_called:
            spawned = Task(("cb", task.key, cbid), PLAIN, task.impls)
            spawned.parent = ("spawned", (task.key, cbid))
            self.tasks.append(spawned)
            self.queue.append(spawned)

    def finish(self, task: Task) -> None:
        """The task ran to completion (model time)."""
        if task.spec.kind == "nested":
            task.nested = "refused" if self.shutdown_called else "submitted"
            if task.nested == "submitted":
                inner = Task(("inner", task.key), PLAIN, task.impls)
                inner.parent = ("inner", (task.key,))
                self.tasks.append(inner)
                self.queue.append(inner)
        elif task.spec.kind == "self_shutdown":
            self.model_shutdown(task.spec.cancel)
        task.state = FINISHED
        callbacks, task.callbacks = task.callbacks, []
        for cbid, kind in callbacks:
            self.run_callback(task, cbid, kind)

    def cancel_pending(self, task: Task) -> None:
        task.state = CANCELLED
        callbacks, task.callbacks = task.callbacks, []
        for cbid, kind in callbacks:
            self.run_callback(task, cbid, kind)

    def model_shutdown(self, cancel_futures: bool) -> None:
        self.shutdown_called = True
        if cancel_futures:
            queued, self.queue = self.queue, []
            for task in queued:
                if task.state == PENDING:
                    self.cancel_pending(task)
                task.by_shutdown = True

    def advance(self) -> None:
        """Runs the model to its next quiescent point: gates opened since
        let their tasks finish, and free workers take queued tasks in FIFO
        order until every worker waits at a closed gate or the queue is
        empty."""
        for task in self.tasks:
            if task.state == RUNNING and not task.gate_closed():
                self.finish(task)
        busy = sum(t.state == RUNNING for t in self.tasks)
        while self.queue and busy < self.w:
            task = self.queue.pop(0)
            if task.state == CANCELLED:
                task.state = NOTIFIED
            elif task.gate_closed():
                task.state = RUNNING
                busy += 1
            else:
                self.finish(task)

    # -- waiting for the pools to catch up with the model --------------------

    def settle(self) -> None:
        self.advance()
        deadline = time.monotonic() + WAIT

        def left() -> float:
            return max(0.0, deadline - time.monotonic())

        # Futures of tasks that a callback submitted appear only once the
        # callback ran: wait for futures, then callbacks, and again.
        for _ in range(10):
            missing = False
            for task in list(self.tasks):
                for impl in task.impls:
                    state = task.expected_state(impl)
                    if state == RUNNING:
                        assert task.spec.started[impl].wait(left()), (
                            f"{impl}: {task} never started")
                    elif state in COMPLETE:
                        f = self.future(task, impl, must=False)
                        if f is None:
                            missing = True
                            continue
                        assert not cf.wait([f], timeout=left()).not_done, (
                            f"{impl}: {task} not done: {f._state}")
            with self.rt.changed:
                assert self.rt.changed.wait_for(
                    lambda: len(self.rt.callbacks) >=
                    len(self.callbacks_expected), timeout=left()), (
                    "callbacks did not run", self.rt.callbacks,
                    self.callbacks_expected)
            if not missing:
                break
        else:
            raise AssertionError("futures of worker-made tasks never came")
        self.check_states()

    def check_states(self) -> None:
        for task in self.tasks:
            for impl in task.impls:
                expected = task.expected_state(impl)
                if task.parent is not None and expected == PENDING:
                    continue   # its future may not exist yet
                f = self.future(task, impl)
                assert f._state == expected, (impl, task, f._state)
                assert f.done() == (expected not in (PENDING, RUNNING))
                assert f.running() == (expected == RUNNING)
                assert f.cancelled() == (expected in (CANCELLED, NOTIFIED))
                if task.spec.kind != "non_callable":
                    runs = self.rt.ran[(impl, task.key)]
                    assert runs == (expected in (RUNNING, FINISHED)), (
                        f"{impl}: {task} ran {runs} times")
        assert sorted(self.rt.callbacks, key=repr) == sorted(
            self.callbacks_expected, key=repr), "callbacks differ"
        with self.log.lock_:
            assert self.log.other == [], self.log.other
            assert self.log.callback_errors == self.log_errors_expected

    # -- rules -----------------------------------------------------------------

    def step(self, name: str) -> None:
        """Marks a step as running (see `clean`) and counts it."""
        self.clean = False
        STATS["steps"] += 1
        STATS["rule:" + name] += 1

    def done_step(self) -> None:
        self.settle()
        self.clean = True

    def expected_outcome(self, task: Task, impl: str) -> tuple:
        state = task.expected_state(impl)
        if state in (CANCELLED, NOTIFIED):
            return ("cancelled",)
        spec = task.spec
        if spec.kind == "non_callable":
            return ("raised", TypeError)
        if spec.kind == "nested":
            return ("ok", ("nested", task.nested))
        if spec.kind == "self_shutdown":
            if spec.wait and impl == "stdlib":
                return ("raised", RuntimeError)
            return ("ok", ("shutdown", task.key))
        if spec.exc is not None:
            return ("raised", spec.exc, (task.key, spec.value))
        return ("ok", (task.key, spec.value))

    def submit_spec(self, spec: Spec) -> None:
        self.step("submit:" + spec.kind)
        key = self.new_key()
        got = {impl: outcome(lambda: self.rt.pools[impl].submit(
            run_task, self.rt, impl, key, spec)) for impl in IMPLS}
        if self.shutdown_called:
            for impl in IMPLS:
                assert got[impl][:2] == ("raised", RuntimeError), got
        else:
            task = Task(key, spec)
            for impl in IMPLS:
                assert got[impl][0] == "ok", got
                task.futures[impl] = got[impl][1]
            self.tasks.append(task)
            self.queue.append(task)
            STATS["tasks"] += 1
        self.done_step()

    def submit_non_callable(self, what: Any) -> None:
        """Documented deviation: taskdemo raises TypeError at once (before
        it looks at shutdown); the stdlib's future fails when run."""
        self.step("submit:non_callable")
        got = {impl: outcome(lambda: self.rt.pools[impl].submit(what))
               for impl in IMPLS}
        assert got["taskdemo"][:2] == ("raised", TypeError), got
        if self.shutdown_called:
            assert got["stdlib"][:2] == ("raised", RuntimeError), got
        else:
            assert got["stdlib"][0] == "ok", got
            task = Task(self.new_key(), Spec("non_callable"), ("stdlib",))
            task.futures["stdlib"] = got["stdlib"][1]
            self.tasks.append(task)
            self.queue.append(task)
        self.done_step()

    @precondition(lambda self: len(self.tasks) < MAX_TASKS)
    @rule(kind=st.sampled_from(["return", "sleep", "nested", "non_callable",
                                "self_shutdown"]),
          value=st.integers(-3, 3),
          exc=st.none() | st.sampled_from(RAISES),
          flags=st.tuples(st.booleans(), st.booleans()))
    def submit(self, kind: str, value: int, exc: Optional[type],
               flags: Tuple[bool, bool]) -> None:
        """Submits a task that does not block.  A task that shuts its own
        pool down (shutdown(wait, cancel_futures) = flags) is submitted to
        a one-worker pool only: with more workers its shutdown would race
        their submits; elsewhere it becomes a plain task."""
        if kind == "non_callable":
            self.submit_non_callable([None, 42, "abs"][value % 3])
        elif kind == "self_shutdown" and self.w == 1:
            self.submit_spec(Spec(kind, wait=flags[0], cancel=flags[1]))
        else:
            kind = "return" if kind == "self_shutdown" else kind
            self.submit_spec(Spec(kind, value,
                                  None if kind == "nested" else exc))

    @precondition(lambda self: len(self.tasks) < MAX_TASKS)
    @rule(value=st.integers(-3, 3), exc=st.none() | st.sampled_from(RAISES))
    def submit_gated(self, value: int, exc: Optional[type]) -> None:
        """Submits a task that waits at a gate until open_gate opens it:
        what makes the pool's state, and so every outcome, predictable."""
        self.submit_spec(Spec("gated", value, exc))

    @precondition(lambda self: self.tasks)
    @rule(i=st.integers(0))
    def cancel(self, i: int) -> None:
        self.step("cancel")
        task = self.pick(self.tasks, i)
        said = {impl: self.future(task, impl).cancel() for impl in task.impls}
        if task.state == PENDING:
            self.cancel_pending(task)
        expected = task.state in (CANCELLED, NOTIFIED)
        assert said == {impl: expected for impl in task.impls}, (task, said)
        STATS[f"cancel->{expected}"] += 1
        self.done_step()

    @precondition(lambda self: any(t.gate_closed() for t in self.tasks))
    @rule(i=st.integers(0))
    def open_gate(self, i: int) -> None:
        self.step("open_gate")
        self.pick([t for t in self.tasks if t.gate_closed()], i).spec.gate.set()
        self.done_step()

    @precondition(lambda self: any(t.gate_closed() and t.state == RUNNING
                                   for t in self.tasks))
    @rule(i=st.integers(0), method=st.sampled_from(["result", "exception"]))
    def release_and_wait(self, i: int, method: str) -> None:
        """Opens a running task's gate and at once waits (no timeout) for
        its result, while the worker is still finishing it."""
        self.step("release_and_wait")
        task = self.pick([t for t in self.tasks
                          if t.gate_closed() and t.state == RUNNING], i)
        task.spec.gate.set()
        got = {impl: outcome(getattr(self.future(task, impl), method))
               for impl in task.impls}
        self.advance()
        self.compare(task, method, got)
        self.done_step()

    @precondition(lambda self: self.tasks)
    @rule(i=st.integers(0), kind=st.sampled_from(["record", "raise",
                                                  "submit"]))
    def add_done_callback(self, i: int, kind: str) -> None:
        self.step("add_done_callback")
        task = self.pick(self.tasks, i)
        self.next_cbid += 1
        cbid = self.next_cbid
        for impl in task.impls:
            self.future(task, impl).add_done_callback(
                make_callback(self.rt, impl, task.key, cbid, kind))
        if task.state in (PENDING, RUNNING):
            task.callbacks.append((cbid, kind))
        else:
            self.run_callback(task, cbid, kind)   # at once, in this thread
        self.done_step()

    def compare(self, task: Task, method: str, got: Dict[str, tuple]) -> None:
        for impl in got:
            expected = self.expected_outcome(task, impl)
            if method == "exception" and expected[0] == "raised":
                expected = ("exception",) + expected[1:]
            if method == "exception" and expected[0] == "ok":
                expected = ("ok", None)
            n = len(expected)   # some expectations check the type only
            assert got[impl][:n] == expected, (impl, task, got, expected)

    @rule(how=st.sampled_from(["result", "exception", "map", "as_completed",
                               cf.ALL_COMPLETED, cf.FIRST_COMPLETED,
                               cf.FIRST_EXCEPTION]),
          idx=st.lists(st.integers(0), min_size=1, max_size=5),
          timeout=st.sampled_from([None, WAIT]),
          fail_at=st.none() | st.integers(0, 3))
    def observe(self, how: str, idx: List[int], timeout: Optional[float],
                fail_at: Optional[int]) -> None:
        """result()/exception() of one future (idx[0]), map() over
        len(idx) - 1 items, as_completed() or wait() on several."""
        if how == "map":
            self.map(len(idx) - 1, fail_at)
        elif not self.tasks:
            return
        elif how in ("result", "exception"):
            self.result(idx[0], how, timeout)
        elif how == "as_completed":
            self.as_completed(idx)
        else:
            self.wait(idx, how)

    def result(self, i: int, method: str, timeout: Optional[float]) -> None:
        self.step("result")
        task = self.pick(self.tasks, i)
        done = task.state not in (PENDING, RUNNING)
        if not done:
            timeout = SHORT   # the gate is closed: it must time out
        got = {impl: outcome(lambda: getattr(self.future(task, impl), method)(
            timeout=timeout)) for impl in task.impls}
        if done:
            self.compare(task, method, got)
        else:
            assert got == {impl: ("timeout",) for impl in task.impls}, got
            STATS["result:timed out"] += 1
        self.done_step()

    def map(self, n: int, fail_at: Optional[int]) -> None:
        """map() with plain functions; it must time out exactly when every
        worker waits at a gate (its calls then stay queued, and the stdlib
        and taskdemo both cancel them when the iteration ends)."""
        self.step("map")
        blocked = sum(t.state == RUNNING for t in self.tasks) >= self.w
        timeout = SHORT if blocked else WAIT

        def fn(x: int) -> int:
            if x == fail_at:
                raise ModelError("map", x)
            return x * 10

        got = {}
        for impl in IMPLS:
            results: List[Any] = []
            try:
                for r in self.rt.pools[impl].map(fn, range(n),
                                                 timeout=timeout):
                    results.append(r)
            except BaseException as exc:
                results.append((type(exc), exc.args))
            got[impl] = results
        assert got["stdlib"] == got["taskdemo"], got
        if self.shutdown_called and n:
            assert got["stdlib"][0][0] is RuntimeError, got
        elif blocked and n:
            assert got["stdlib"] == [(cf.TimeoutError, ())], got
        else:
            good = [x * 10 for x in range(n)]
            if fail_at is not None and fail_at < n:
                good = good[:fail_at] + [(ModelError, ("map", fail_at))]
            assert got["stdlib"] == good, got
        self.done_step()

    def subset(self, idx: List[int], impl: str) -> List[Task]:
        tasks = [t for t in self.tasks if impl in t.impls]
        return [tasks[-1 - i % len(tasks)] for i in idx] if tasks else []

    def as_completed(self, idx: List[int]) -> None:
        self.step("as_completed")
        for impl in IMPLS:
            tasks = self.subset(idx, impl)
            complete = {t.key for t in tasks
                        if t.expected_state(impl) in COMPLETE}
            every = {t.key for t in tasks}
            by_future = {id(self.future(t, impl)): t.key for t in tasks}
            seen = []
            timed_out = False
            try:
                for f in cf.as_completed(
                        [self.future(t, impl) for t in tasks],
                        timeout=WAIT if complete == every else SHORT):
                    seen.append(by_future[id(f)])
            except cf.TimeoutError:
                timed_out = True
            assert len(seen) == len(set(seen)), (impl, seen)
            assert set(seen) == complete, (impl, seen, complete)
            assert timed_out == (complete != every), impl
            STATS[f"as_completed:timed out={timed_out}"] += 1
        self.done_step()

    def wait(self, idx: List[int], return_when: str) -> None:
        self.step("wait")
        for impl in IMPLS:
            tasks = self.subset(idx, impl)
            complete = {t.key for t in tasks
                        if t.expected_state(impl) in COMPLETE}
            by_future = {id(self.future(t, impl)): t.key for t in tasks}
            # Nothing changes at a quiescent point, so the outcome is the
            # same whether wait() returns at once or after its timeout.
            done, not_done = cf.wait([self.future(t, impl) for t in tasks],
                                     timeout=SHORT, return_when=return_when)
            assert {by_future[id(f)] for f in done} == complete, impl
            assert {by_future[id(f)] for f in not_done} == \
                {t.key for t in tasks} - complete, impl
        self.done_step()

    @precondition(lambda self: len(self.tasks) >= 3 and self.shutdowns < 2)
    @rule(wait=st.booleans(), cancel_futures=st.booleans())
    def shutdown(self, wait: bool, cancel_futures: bool) -> None:
        self.step("shutdown")
        self.shutdowns += 1
        pools = self.rt.pools
        for impl in IMPLS:
            pools[impl].shutdown(wait=False, cancel_futures=cancel_futures)
        self.model_shutdown(cancel_futures)
        STATS[f"shutdown:wait={wait},cancel_futures={cancel_futures}"] += 1
        if wait:
            # shutdown(wait=True) returns only once the queue ran dry: in
            # helper threads while gates are closed, then open them all.
            STATS["shutdown:waited for a gate"] += 1
            blocked = any(t.gate_closed() and t.state in (PENDING, RUNNING)
                          for t in self.tasks)
            threads = [threading.Thread(target=pools[impl].shutdown)
                       for impl in IMPLS]
            for t in threads:
                t.start()
            if blocked:
                threads[0].join(SHORT)
                threads[1].join(SHORT)
                assert all(t.is_alive() for t in threads), (
                    "shutdown(wait=True) returned while a task still waits")
                for task in self.tasks:
                    if task.spec.gate is not None:
                        task.spec.gate.set()
            for t in threads:
                t.join(WAIT)
                assert not t.is_alive(), "shutdown(wait=True) hangs"
        self.done_step()

    @invariant()
    def counters_agree(self) -> None:
        # Cheap cross-check between the pools, every step.
        if self.clean:
            for task in self.tasks:
                if task.impls == IMPLS and task.parent is None:
                    assert self.rt.ran[("stdlib", task.key)] == \
                        self.rt.ran[("taskdemo", task.key)], task

    # -- the end -----------------------------------------------------------

    def teardown(self) -> None:
        try:
            for task in self.tasks:
                if task.spec.gate is not None:
                    task.spec.gate.set()
            if self.clean and self.rt.pools:
                self.settle()
                for task in self.tasks:
                    for impl in task.impls:
                        f = self.future(task, impl)
                        self.compare(task, "result", {impl: outcome(
                            lambda: f.result(timeout=0))})
                        STATS["futures_checked"] += 1
        finally:
            for pool in self.rt.pools.values():
                pool.shutdown(wait=True)
            self.logger.removeHandler(self.log)
            self.logger.propagate = self.saved_propagate


PoolModel.TestCase.settings = settings(
    max_examples=EXAMPLES,
    stateful_step_count=STEPS,
    deadline=None,
    derandomize=not SLOW,
    database=None,
    print_blob=True,
    suppress_health_check=[HealthCheck.too_slow,
                           HealthCheck.filter_too_much],
)
TestPoolModel = PoolModel.TestCase


def teardown_module() -> None:
    path = os.environ.get("TASKDEMO_STATS")
    if path and STATS:
        with open(path, "a") as fh:
            fh.write(json.dumps({"test_model": dict(STATS)}) + "\n")
