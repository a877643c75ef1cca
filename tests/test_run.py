"""taskdemo.run(coro): asyncio.run that also works under a running loop.

Without a running loop it must be asyncio.run; with one (a Jupyter cell)
the coroutine runs on a helper thread with its own loop, and the result,
the exception and Ctrl-C must all cross back.  Ctrl-C is tested in a child
interpreter, since a lost cancel would hang.
"""

from __future__ import annotations

import asyncio
import contextvars
import os
import signal
import threading

import pytest

from taskdemo._run import run

WAIT = 10.0

VAR: contextvars.ContextVar[str] = contextvars.ContextVar("VAR", default="unset")


async def where(value=None):
    """The value, the thread and the loop the coroutine ran on."""
    await asyncio.sleep(0)
    return value, threading.current_thread(), asyncio.get_running_loop()


class Boom(Exception):
    pass


async def fail(box):
    await asyncio.sleep(0)
    box.append(Boom("from the coroutine"))
    raise box[-1]


def test_without_a_running_loop_it_is_asyncio_run():
    value, thread, loop = run(where(42))
    assert value == 42
    assert thread is threading.current_thread()
    assert loop.is_closed()  # asyncio.run closes its loop
    with pytest.raises(RuntimeError):
        asyncio.get_running_loop()


def test_under_a_running_loop_it_runs_on_a_helper_thread():
    async def main():
        outer = asyncio.get_running_loop()
        value, thread, loop = run(where("inner"))
        return value, thread, loop, outer

    value, thread, loop, outer = asyncio.run(main())
    assert value == "inner"
    assert thread is not threading.current_thread()
    assert thread.name == "taskdemo.run"
    assert loop is not outer and loop.is_closed()
    assert not thread.is_alive()  # joined before returning


def test_exceptions_propagate_without_a_loop():
    box = []
    with pytest.raises(Boom) as info:
        run(fail(box))
    assert info.value is box[0]


def test_exceptions_propagate_under_a_running_loop():
    box = []

    async def main():
        with pytest.raises(Boom) as info:
            run(fail(box))
        return info.value

    assert asyncio.run(main()) is box[0]


def test_helper_thread_sees_the_callers_context():
    """The helper runs in a copy of the caller's contextvars, as a task
    would; that is how Jupyter routes its output to the calling cell.
    Changes made inside do not leak back."""
    async def inner():
        seen = VAR.get()
        VAR.set("changed inside")
        return seen

    async def main():
        VAR.set("from the caller")
        seen = run(inner())
        return seen, VAR.get()

    assert asyncio.run(main()) == ("from the caller", "from the caller")


def test_nested_runs():
    async def level(n):
        if n == 0:
            return threading.current_thread().name
        return run(level(n - 1))

    async def main():
        return run(level(2))

    assert asyncio.run(main()) == "taskdemo.run"


@pytest.mark.parametrize("under_loop", [False, True])
def test_not_a_coroutine(under_loop):
    async def main():
        with pytest.raises(ValueError, match="coroutine was expected"):
            run(42)  # type: ignore[arg-type]

    if under_loop:
        asyncio.run(main())
    else:
        with pytest.raises(ValueError, match="coroutine was expected"):
            run(42)  # type: ignore[arg-type]


CTRL_C_SCRIPT = """
import asyncio, signal, sys
from taskdemo._run import run

# A child started from a shell job may inherit SIGINT ignored.
signal.signal(signal.SIGINT, signal.default_int_handler)

async def forever():
    try:
        print("started", flush=True)
        await asyncio.Event().wait()
    finally:
        print("inner cancelled", flush=True)

async def outer():
    run(forever())
    print("run returned", flush=True)

mode = sys.argv[1]
try:
    if mode == "asyncio.run":
        # 3.11+: asyncio.run turns Ctrl-C into cancelling its main task.
        asyncio.run(outer())
    else:
        # A loop with Python's own SIGINT handler, as in Jupyter.
        loop = asyncio.new_event_loop()
        try:
            loop.run_until_complete(outer())
        finally:
            loop.close()
except KeyboardInterrupt:
    print("KeyboardInterrupt", flush=True)
"""


@pytest.mark.parametrize("mode", ["asyncio.run", "run_until_complete"])
def test_ctrl_c_cancels_the_coroutine(child_factory, mode):
    """Ctrl-C while run() waits for its helper thread cancels the
    coroutine there (its finally blocks run) and raises KeyboardInterrupt
    in the caller, instead of leaving the helper running forever."""
    child = child_factory(CTRL_C_SCRIPT.replace("sys.argv[1]", repr(mode)))
    line = child.read_line(WAIT)
    if line != "started":
        rc, out, err = child.finish(WAIT)
        pytest.fail(f"child did not start: {line!r} rc={rc}\n{out}\n{err}")
    os.kill(child.proc.pid, signal.SIGINT)
    rc, out, err = child.finish(WAIT)
    assert out.splitlines() == ["inner cancelled", "KeyboardInterrupt"], err
    assert rc == 0, err


def test_the_helper_thread_is_gone_from_the_os_when_run_returns():
    """run() returns only once the OS has forgotten its helper thread, so
    a thread count taken right after it (the notebook's Stopwatch line)
    is back at the baseline, 20 times in a row."""
    import taskdemo

    async def main():
        counts = []
        for _ in range(20):
            before = taskdemo.thread_count()
            run(asyncio.sleep(0))
            counts.append(taskdemo.thread_count() - before)
        return counts

    assert asyncio.run(main()) == [0] * 20
