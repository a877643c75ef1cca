"""taskdemo.run(coro): asyncio.run that also works under a running loop.

``asyncio.run`` refuses to start when the calling thread already runs an
event loop, which is always the case in a Jupyter cell (the original
notebook worked around it with a ``multiprocessing.Process``).  ``run``
behaves as ``asyncio.run`` when no loop is running, and otherwise runs the
coroutine in a fresh event loop on a helper thread and blocks until it is
done.
"""
from __future__ import annotations

import asyncio
import contextvars
import os
import threading
import time
from typing import Any, Coroutine, Optional, TypeVar

__all__ = ["run"]

_T = TypeVar("_T")

# How often the waiting caller checks whether its own asyncio task was
# cancelled (asyncio.run's Ctrl-C handler does that instead of raising).
_SLICE = 0.05


class _Helper:
    """Runs one coroutine with asyncio.run on its own thread."""

    def __init__(self, coro: Coroutine[Any, Any, Any]) -> None:
        self.coro = coro
        self.done = threading.Event()
        self.result: Any = None
        self.error: Optional[BaseException] = None
        self._lock = threading.Lock()
        self._loop: Optional[asyncio.AbstractEventLoop] = None
        self._task: Optional["asyncio.Task[Any]"] = None
        self._cancelled = False  # protected by _lock

    async def _main(self) -> Any:
        with self._lock:
            self._loop = asyncio.get_running_loop()
            self._task = asyncio.current_task()
            cancelled = self._cancelled
        if cancelled:  # interrupted before the loop started
            self.coro.close()
            raise asyncio.CancelledError()
        return await self.coro

    def thread_main(self) -> None:
        try:
            self.result = asyncio.run(self._main())
        except BaseException as exc:  # re-raised in the caller's thread
            self.error = exc
        finally:
            self.done.set()

    def cancel(self) -> None:
        """Cancel the coroutine's task, from any thread."""
        with self._lock:
            self._cancelled = True
            loop, task = self._loop, self._task
        if loop is not None and task is not None:
            try:
                loop.call_soon_threadsafe(task.cancel)
            except RuntimeError:  # the loop is already closed: it finished
                pass


# How long run() waits, at most, for the OS to forget its finished helper.
_OS_EXIT_WAIT = 0.2


def _join(thread: threading.Thread) -> None:
    """Join `thread` and wait, bounded, until the OS thread is gone.

    Python's join() returns when the thread has finished with Python, a
    moment before the OS thread exits; a thread count taken right after
    run() returns (the notebook's Stopwatch) would still see the helper.
    Linux lists live threads in /proc/self/task, so look there.
    """
    thread.join()
    tid = thread.native_id
    if tid is None or not os.path.isdir("/proc/self/task"):
        return
    deadline = time.monotonic() + _OS_EXIT_WAIT
    while (os.path.exists(f"/proc/self/task/{tid}")
           and time.monotonic() < deadline):
        time.sleep(0.0005)


def _cancel_requested(task: "Optional[asyncio.Task[Any]]") -> bool:
    # Task.cancelling() is new in 3.11, when asyncio.run also began to turn
    # Ctrl-C into a cancel() of its main task instead of KeyboardInterrupt.
    cancelling = getattr(task, "cancelling", None)
    return cancelling is not None and cancelling() > 0


def run(coro: Coroutine[Any, Any, _T]) -> _T:
    """Run a coroutine to completion and return its result.

    With no event loop running in this thread, this is ``asyncio.run(coro)``.
    With one running (a Jupyter cell, or a coroutine calling ``run``), the
    coroutine runs with ``asyncio.run`` on a new helper thread, in a copy
    of the caller's ``contextvars`` context (so Jupyter shows its output in
    the calling cell), while the calling thread blocks, and its event loop
    with it, until the coroutine finishes.  Mind the consequences: the
    coroutine runs on another thread and another loop, so it must not await
    futures or tasks of the caller's loop (that would deadlock), and
    ``taskdemo.additional_thread_count()`` counts the helper thread while it
    runs.

    The result is returned, and an exception raised by the coroutine is
    raised here.  Ctrl-C while waiting cancels the coroutine, waits for it
    to unwind, and raises ``KeyboardInterrupt`` (or, under ``asyncio.run``
    3.11+, which turns Ctrl-C into cancelling its main task,
    ``CancelledError`` in the caller, which that reports as
    ``KeyboardInterrupt``).
    """
    if not asyncio.iscoroutine(coro):
        raise ValueError(f"a coroutine was expected, got {coro!r}")
    try:
        asyncio.get_running_loop()
    except RuntimeError:
        return asyncio.run(coro)

    helper = _Helper(coro)
    context = contextvars.copy_context()
    thread = threading.Thread(target=context.run, args=(helper.thread_main,),
                              name="taskdemo.run", daemon=True)
    caller = asyncio.current_task()
    try:
        # Ctrl-C may arrive as soon as the helper runs, even inside start().
        thread.start()
        # Wait in slices: a blocking wait in the main thread still raises
        # KeyboardInterrupt, but a cancel() of the caller's task (how 3.11+
        # asyncio.run reports Ctrl-C) can only be noticed by looking.
        while not helper.done.wait(_SLICE):
            if _cancel_requested(caller):
                break
    except BaseException:  # KeyboardInterrupt, most likely
        helper.cancel()
        # A helper interrupted before it was fully started still sees the
        # cancel when its loop starts; only a started one can be joined.
        if thread.ident is not None:
            _join(thread)
        raise
    if not helper.done.is_set():  # the caller's task was cancelled
        helper.cancel()
        _join(thread)
        raise asyncio.CancelledError()
    _join(thread)
    error, helper.error = helper.error, None
    if error is not None:
        raise error
    return helper.result  # type: ignore[no-any-return]
