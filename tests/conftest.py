"""Shared fixtures and helpers for the taskdemo test suite.

Most behaviour tests run twice, through the ``impl`` fixture: once against
``concurrent.futures.ThreadPoolExecutor`` (the oracle: what a drop-in
replacement must do) and once against ``taskdemo.ThreadPoolExecutor``.  The
ids are ``stdlib`` and ``taskdemo``, so ``pytest -k stdlib`` runs the oracle
half alone, e.g. while the extension is not built.

Anything that could deadlock runs in a child interpreter through
``run_in_subprocess``, which fails the test with "possible deadlock" (and the
child's thread stacks, dumped by faulthandler) when the child outlives its
timeout.
"""

from __future__ import annotations

import concurrent.futures
import importlib
import os
import select
import signal
import subprocess
import sys
import textwrap
import threading
import time
from pathlib import Path
from typing import Any, Callable, List, Optional, Tuple

import pytest

ROOT = Path(__file__).resolve().parents[1]

# Generous upper bound, in seconds, for any wait that is expected to succeed.
# It only turns a hang into a failure; no test relies on its value.
WAIT = 10.0

IMPL_NAMES = ("stdlib", "taskdemo")

# How a child script gets the executor under test, as `Executor`.
IMPORT_LINES = {
    "stdlib": "from concurrent.futures import ThreadPoolExecutor as Executor",
    "taskdemo": "from taskdemo import ThreadPoolExecutor as Executor",
}


def pytest_addoption(parser: pytest.Parser) -> None:
    parser.addoption(
        "--slow", action="store_true",
        help="long mode of the model-based and property-based tests: random "
             "instead of derandomised examples, several times as many "
             "(the same as TASKDEMO_SLOW=1)")


def pytest_configure(config: pytest.Config) -> None:
    # A shell starts background jobs with SIGINT ignored, and an ignored
    # signal stays ignored across exec: every child interpreter of the
    # Ctrl-C tests would then never see KeyboardInterrupt.  A handler (not
    # SIG_IGN) here makes children start with the default disposition.
    if signal.getsignal(signal.SIGINT) == signal.SIG_IGN:
        signal.signal(signal.SIGINT, signal.default_int_handler)
    config.addinivalue_line(
        "markers", "fork: forks a process that has threads (skipped under "
                   "ASan, see pytest_collection_modifyitems)")
    # The test modules read TASKDEMO_SLOW when they are imported, which is
    # after this hook: --slow only has to set it.
    if config.getoption("--slow"):
        os.environ["TASKDEMO_SLOW"] = "1"
    # taskdemo.additional_thread_count() counts against a baseline taken at
    # import.  Import it now, while the test process has a single thread, so
    # that a worker of an earlier test still leaving the OS cannot skew the
    # baseline.  A failed import is reported by the tests that need it.
    try:
        importlib.import_module("taskdemo")
    except ImportError:
        pass


# CI runs the whole suite once more against an ASan build of the extension,
# with libasan preloaded into the interpreter.
UNDER_ASAN = "libasan" in os.environ.get("LD_PRELOAD", "")


def pytest_collection_modifyitems(config: pytest.Config,
                                  items: List[pytest.Item]) -> None:
    # GCC 12's libasan does not take its allocator locks around fork(): a
    # child forked while another thread allocates can hang on a lock that
    # thread held (seen here in about 1 run in 10, before and after any
    # change of ours).  The fork tests run in the three plain suite runs and
    # the C fuzz corpus forks under ASan; here they would only be flaky.
    if not UNDER_ASAN:
        return
    skip = pytest.mark.skip(reason="fork with threads under GCC 12's ASan "
                                   "can hang in libasan (not our code)")
    for item in items:
        if "fork" in item.keywords:
            item.add_marker(skip)


class Impl:
    """One executor implementation under test."""

    def __init__(self, name: str, executor: type) -> None:
        self.name = name
        self.Executor = executor
        self.import_line = IMPORT_LINES[name]

    @property
    def is_taskdemo(self) -> bool:
        return self.name == "taskdemo"

    def __repr__(self) -> str:
        return f"Impl({self.name})"


def _import_taskdemo() -> Any:
    try:
        module = importlib.import_module("taskdemo")
        if not hasattr(module, "ThreadPoolExecutor"):  # e.g. an empty dir
            raise ImportError("taskdemo has no ThreadPoolExecutor")
        return module
    except ImportError as exc:
        raise ImportError(
            f"taskdemo is not importable ({exc}); run `pip install -e .` "
            "first, or select the oracle half with `-k stdlib`"
        ) from exc


@pytest.fixture(params=IMPL_NAMES)
def impl(request: pytest.FixtureRequest) -> Impl:
    """The executor implementation under test: ids `stdlib` and `taskdemo`."""
    if request.param == "stdlib":
        return Impl("stdlib", concurrent.futures.ThreadPoolExecutor)
    return Impl("taskdemo", _import_taskdemo().ThreadPoolExecutor)


@pytest.fixture
def taskdemo(request: pytest.FixtureRequest) -> Any:
    """The taskdemo module.

    A test that runs the stdlib executor but observes it with taskdemo's
    functions (thread counts, native tasks) is skipped, not failed, while
    taskdemo cannot be imported, so `-k stdlib` stays green before the
    extension exists.  Every other test fails loudly: a broken build must
    never turn into a green run of skips.
    """
    callspec = getattr(request.node, "callspec", None)
    wants_stdlib = callspec is not None and callspec.params.get("impl") == "stdlib"
    try:
        return _import_taskdemo()
    except ImportError as exc:
        if wants_stdlib:
            pytest.skip(f"needs the taskdemo module: {exc}")
        raise


class Pools:
    """Makes executors, Events and Barriers for one test and cleans them up.

    Teardown first sets every Event and aborts every Barrier it handed out,
    so that a test failing half-way never leaves a worker blocked, and only
    then shuts every pool down with wait=True.
    """

    def __init__(self, impl: Impl) -> None:
        self.impl = impl
        self._pools: List[Any] = []
        self._events: List[threading.Event] = []
        self._barriers: List[threading.Barrier] = []

    def new(self, *args: Any, **kwargs: Any) -> Any:
        pool = self.impl.Executor(*args, **kwargs)
        self._pools.append(pool)
        return pool

    def event(self) -> threading.Event:
        ev = threading.Event()
        self._events.append(ev)
        return ev

    def barrier(self, parties: int, timeout: float = WAIT) -> threading.Barrier:
        b = threading.Barrier(parties, timeout=timeout)
        self._barriers.append(b)
        return b

    @staticmethod
    def returns_within(fn: Callable[[], Any], timeout: float = WAIT) -> Any:
        """Calls fn() in a helper thread; fails if it has not returned after
        `timeout` seconds (the thread is left to finish at teardown, when
        every Event is set).  Returns fn's result or re-raises its error."""
        box: List[Any] = []
        done = threading.Event()

        def run() -> None:
            try:
                box.append((True, fn()))
            except BaseException as exc:  # re-raised in the caller
                box.append((False, exc))
            finally:
                done.set()

        threading.Thread(target=run, name="returns_within", daemon=True).start()
        if not done.wait(timeout):
            pytest.fail(f"{fn!r} did not return within {timeout}s "
                        "(blocked: possible deadlock)")
        ok, value = box[0]
        if not ok:
            raise value
        return value

    @staticmethod
    def assert_usable(pool: Any) -> None:
        """The pool still runs work correctly."""
        assert pool.submit(pow, 2, 5).result(timeout=WAIT) == 32
        assert list(pool.map(pow, [2, 3], [2, 2], timeout=WAIT)) == [4, 9]

    def close(self) -> None:
        for ev in self._events:
            ev.set()
        for b in self._barriers:
            b.abort()
        for pool in self._pools:
            pool.shutdown(wait=True)


@pytest.fixture
def pools(impl: Impl) -> Any:
    p = Pools(impl)
    try:
        yield p
    finally:
        p.close()


def _os_thread_count() -> Optional[int]:
    try:
        return len(os.listdir("/proc/self/task"))
    except OSError:
        return None


@pytest.fixture
def settled_threads() -> None:
    """Waits until every OS thread of this process is one `threading` knows.

    Tests that read OS thread counts need a quiet start.  A stdlib worker
    that an earlier test joined may still be leaving the OS: before CPython
    3.13, Thread.join() returns once the thread state is gone, just before
    the OS thread exits.  Nothing signals that moment, so this is the one
    place that polls (a bounded wait on /proc, not a synchronisation
    between our own threads).  Without /proc it does nothing.
    """
    deadline = time.monotonic() + WAIT
    while True:
        n = _os_thread_count()
        if n is None or n == threading.active_count():
            return
        if time.monotonic() > deadline:
            pytest.fail(
                f"{n} OS threads but threading knows {threading.active_count()}:"
                " a thread leaked by an earlier test?"
            )
        time.sleep(0.001)


def make_env() -> dict:
    env = dict(os.environ)
    # The child finds taskdemo even without an editable install, and
    # faulthandler dumps every thread's stack when we abort a hung child.
    env["PYTHONPATH"] = os.pathsep.join(
        [str(ROOT)] + ([env["PYTHONPATH"]] if env.get("PYTHONPATH") else [])
    )
    env["PYTHONFAULTHANDLER"] = "1"
    env["PYTHONDONTWRITEBYTECODE"] = "1"
    env.pop("PYTHONWARNINGS", None)
    return env


def _abort_and_collect(proc: subprocess.Popen) -> Tuple[str, str]:
    """Abort a hung child (faulthandler prints its stacks), return output."""
    try:
        proc.send_signal(signal.SIGABRT)
        out, err = proc.communicate(timeout=5)
    except subprocess.TimeoutExpired:
        proc.kill()
        out, err = proc.communicate()
    if isinstance(out, bytes):
        out = out.decode(errors="replace")
        err = err.decode(errors="replace")
    return out or "", err or ""


def run_in_subprocess(
    code: str, timeout: float, args: Tuple[str, ...] = ()
) -> Tuple[int, str, str]:
    """Runs `code` in a fresh `sys.executable`; returns (rc, stdout, stderr).

    If the child is still running after `timeout` seconds the test fails with
    "possible deadlock", the child's output and its thread stacks.
    """
    proc = subprocess.Popen(
        [sys.executable, "-c", textwrap.dedent(code), *args],
        stdin=subprocess.DEVNULL,
        stdout=subprocess.PIPE,
        stderr=subprocess.PIPE,
        text=True,
        cwd=str(ROOT),
        env=make_env(),
    )
    try:
        out, err = proc.communicate(timeout=timeout)
    except subprocess.TimeoutExpired:
        out, err = _abort_and_collect(proc)
        pytest.fail(
            f"possible deadlock: child still running after {timeout}s\n"
            f"--- stdout ---\n{out}\n--- stderr (thread stacks) ---\n{err}",
            pytrace=False,
        )
    return proc.returncode, out, err


@pytest.fixture(name="run_in_subprocess", scope="session")
def _run_in_subprocess_fixture() -> Callable[..., Tuple[int, str, str]]:
    return run_in_subprocess


class Child:
    """A child interpreter we talk to line by line (for signal tests)."""

    def __init__(self, code: str) -> None:
        self.proc = subprocess.Popen(
            [sys.executable, "-c", textwrap.dedent(code)],
            stdin=subprocess.DEVNULL,
            stdout=subprocess.PIPE,
            stderr=subprocess.PIPE,
            bufsize=0,
            cwd=str(ROOT),
            env=make_env(),
        )
        self._buf = b""
        self.lines: List[str] = []

    def read_line(self, timeout: float) -> Optional[str]:
        """The next stdout line, or None at EOF or after `timeout` seconds."""
        deadline = time.monotonic() + timeout
        fd = self.proc.stdout.fileno()  # type: ignore[union-attr]
        while b"\n" not in self._buf:
            left = deadline - time.monotonic()
            if left <= 0:
                return None
            ready, _, _ = select.select([fd], [], [], left)
            if not ready:
                return None
            chunk = os.read(fd, 4096)
            if not chunk:
                return None
            self._buf += chunk
        line, self._buf = self._buf.split(b"\n", 1)
        text = line.decode(errors="replace")
        self.lines.append(text)
        return text

    def finish(self, timeout: float) -> Tuple[int, str, str]:
        """Waits for exit; fails with "possible deadlock" after `timeout`."""
        try:
            out, err = self.proc.communicate(timeout=timeout)
        except subprocess.TimeoutExpired:
            out_s, err_s = _abort_and_collect(self.proc)
            pytest.fail(
                f"possible deadlock: child still running after {timeout}s\n"
                f"--- stdout so far ---\n{self.transcript()}{out_s}\n"
                f"--- stderr (thread stacks) ---\n{err_s}",
                pytrace=False,
            )
        rest = (self._buf + out).decode(errors="replace")
        self._buf = b""
        return self.proc.returncode, rest, err.decode(errors="replace")

    def transcript(self) -> str:
        return "".join(line + "\n" for line in self.lines)

    def kill(self) -> None:
        if self.proc.poll() is None:
            self.proc.kill()
            self.proc.communicate()


@pytest.fixture
def child_factory() -> Any:
    children: List[Child] = []

    def make(code: str) -> Child:
        c = Child(code)
        children.append(c)
        return c

    yield make
    for c in children:
        c.kill()
