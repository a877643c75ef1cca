"""How taskdemo's C workers fit into the interpreter's life.

- ``threading`` knows each worker, by name, while it lives: workers are
  pthreads started in C, so they register a stand-in Thread object.
- At interpreter exit every pool stops accepting work, runs what is queued
  and joins its workers, before the interpreter is torn down (a thread that
  takes the GIL during finalisation would hang or crash).
- Around ``fork()`` the C core holds the pools' locks itself (from
  pthread_atfork, inside fork()), so the child never inherits a lock held by
  a thread it does not have.  After ``os.fork()``, in the child, inherited
  pools refuse work and fail the futures they had (quietly: their callbacks
  were meant for the parent).
"""
import os
import threading

from . import _taskdemo


class _WorkerThread(threading._DummyThread):
    """threading's view of a taskdemo worker (a pthread started in C).

    Made by the worker itself when it starts (a dummy thread takes the
    identity of the thread that makes it).  Unlike other dummy threads it
    can be joined: ``join()`` returns once the worker has left Python for
    good, as ``executor._threads`` users (CPython's own tests) expect.
    """

    def __init__(self, name: str) -> None:
        super().__init__()
        # Not `self.name = name`: from its own thread, 3.14+ would also
        # rename the OS thread, cutting "{prefix}_{i}" at 15 bytes from the
        # end, and the core chose an OS name that keeps "_{i}".
        self._name = name
        self._exited = threading.Event()

    def is_alive(self) -> bool:
        return not self._exited.is_set()

    def join(self, timeout: "float | None" = None) -> None:
        if self is threading.current_thread():
            raise RuntimeError("cannot join current thread")
        self._exited.wait(timeout)


def _register_worker(name: str) -> threading.Thread:
    return _WorkerThread(name)


def _unregister_worker(thread: _WorkerThread) -> None:
    with threading._active_limbo_lock:  # type: ignore[attr-defined]
        if threading._active.get(thread.ident) is thread:  # type: ignore
            del threading._active[thread.ident]  # type: ignore
    thread._exited.set()


_installed = False


def install() -> None:
    """Connect the C module to threading, interpreter exit and fork."""
    global _installed
    if _installed:
        return
    _installed = True
    _taskdemo._set_worker_hooks(_register_worker, _unregister_worker)
    # threading's exit hooks run before non-daemon threads are joined and
    # long before finalisation, which is where the stdlib joins its pool.
    register_atexit = getattr(threading, "_register_atexit", None)
    if register_atexit is not None:
        register_atexit(_taskdemo._shutdown_all)
    else:  # pragma: no cover - every supported version has it
        import atexit

        atexit.register(_taskdemo._shutdown_all)
    if hasattr(os, "register_at_fork"):
        os.register_at_fork(after_in_child=_taskdemo._after_fork_child)
