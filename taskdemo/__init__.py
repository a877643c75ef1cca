"""taskdemo: a C thread pool that is a drop-in ThreadPoolExecutor.

The pool, its futures, ``as_completed``/``wait`` (drop-ins for the
stdlib's, fast on taskdemo futures), a monotonic stopwatch and an OS thread
counter are written in C (``taskdemo._taskdemo``); this package re-exports
them and adds the conveniences that read better in Python.
"""
from . import native, timeline
from ._executor import ThreadPoolExecutor
from ._lifecycle import install as _install_lifecycle_hooks
from ._run import run
from ._stopwatch import stopwatch
from ._taskdemo import (ALL_COMPLETED, FIRST_COMPLETED, FIRST_EXCEPTION,
                        Future, Stopwatch, TaskError, as_completed,
                        monotonic_ns, thread_count, wait)
from ._threads import additional_thread_count

__version__ = "0.1.0"

__all__ = [
    "ALL_COMPLETED",
    "FIRST_COMPLETED",
    "FIRST_EXCEPTION",
    "Future",
    "Stopwatch",
    "TaskError",
    "ThreadPoolExecutor",
    "additional_thread_count",
    "as_completed",
    "monotonic_ns",
    "native",
    "run",
    "stopwatch",
    "thread_count",
    "timeline",
    "wait",
]

_install_lifecycle_hooks()
