"""taskdemo.ThreadPoolExecutor: the C pool behind the stdlib's interface."""
import concurrent.futures
import concurrent.futures.thread
import threading
from typing import TYPE_CHECKING, AbstractSet, Iterator, Set, Tuple

from ._taskdemo import ExecutorBase

if TYPE_CHECKING:
    from .timeline import Timeline


class _WorkerThreads(AbstractSet[threading.Thread]):
    """``executor._threads``: the pool's workers as ``threading.Thread``s.

    The stdlib's pool keeps a set of its threads there, and code in the
    wild (and CPython's tests) reads it: ``len()``, iterates, ``join()``s.
    This is a read-only, live view of the workers that exist now: a worker
    that a ``submit`` started is in it when the submit returns (submit
    waits for it to register, as the stdlib's ``Thread.start()`` does), and
    it is empty once ``shutdown(wait=True)`` returned (the stdlib's keeps
    exited threads).  It refers to the workers' set, not to the executor,
    so keeping it does not keep the pool alive; it goes on showing the
    workers that finish the executor's queue after the executor is gone.
    """

    __slots__ = ("_live",)

    def __init__(self, executor: "ThreadPoolExecutor") -> None:
        self._live: Set[threading.Thread] = executor._worker_threads()

    def _snapshot(self) -> Tuple[threading.Thread, ...]:
        return tuple(self._live)

    def __iter__(self) -> Iterator[threading.Thread]:
        return iter(self._snapshot())

    def __len__(self) -> int:
        return len(self._snapshot())

    def __contains__(self, thread: object) -> bool:
        return thread in self._snapshot()

    def __repr__(self) -> str:
        return f"<taskdemo worker threads {set(self._snapshot())!r}>"


class ThreadPoolExecutor(ExecutorBase,
                         concurrent.futures.ThreadPoolExecutor):
    """A drop-in ``concurrent.futures.ThreadPoolExecutor`` backed by C.

    ``ThreadPoolExecutor(max_workers=None, thread_name_prefix='',
    initializer=None, initargs=())`` behaves as the stdlib's: workers are
    pthreads started lazily up to ``max_workers`` (default ``min(32,
    cpu_count + 4)``), named ``{prefix}_{i}``, and reused when idle.
    ``submit`` returns a C future that is a ``concurrent.futures.Future``;
    ``map`` runs its calls in C without a future per call.

    Beyond the stdlib: ``timeline()`` returns what ran when (see there;
    keyword-only ``timeline_size`` bounds it), and each task runs in a copy
    of the submitter's ``contextvars`` context, as ``asyncio.to_thread``
    does (the stdlib pool runs tasks in the worker's own context), which
    also makes Jupyter show a task's output in the cell that submitted it.

    Differences from the stdlib, all in the direction of clearer errors or
    fewer hangs: ``submit``/``map`` reject a non-callable at once;
    ``max_workers`` must be an int and ``initargs`` a tuple; ``map``
    checks that ``chunksize`` is an int >= 1 and ``timeout`` a number;
    ``shutdown(cancel_futures=True)`` notifies ``as_completed``/``wait`` of
    the cancelled futures; ``shutdown(wait=True)`` from one of the pool's
    own tasks returns without waiting instead of raising (a worker cannot
    wait for itself); a timeout of years means no limit instead of an
    ``OverflowError``.  After ``os.fork()`` the child's inherited pool
    refuses work with ``RuntimeError`` and fails the futures it held,
    without running their callbacks.
    """

    def __init_subclass__(cls, **kwargs: object) -> None:
        # 3.14's worker contexts (prepare_context, which
        # InterpreterPoolExecutor overrides to run each worker in its own
        # interpreter) wrap every task in Python code on the worker; the C
        # workers run tasks themselves, so a subclass that relies on them
        # would silently run its tasks unwrapped.  Refuse it up front.
        super().__init_subclass__(**kwargs)
        stdlib = getattr(concurrent.futures.thread.ThreadPoolExecutor,
                         "prepare_context", None)
        ours = getattr(cls, "prepare_context", None)
        if stdlib is not None and getattr(
                ours, "__func__", None) is not stdlib.__func__:
            raise TypeError(
                f"{cls.__qualname__} overrides prepare_context(), which "
                "taskdemo.ThreadPoolExecutor does not support (its C "
                "workers run tasks without a Python worker context); "
                "subclass concurrent.futures.ThreadPoolExecutor instead")

    # typeshed declares the stdlib's as a plain (writable) attribute; ours
    # is read-only on purpose: the C pool, not the caller, owns the workers.
    @property
    def _threads(self) -> AbstractSet[threading.Thread]:  # type: ignore[override]
        """The workers as threading.Thread objects (see _WorkerThreads)."""
        return _WorkerThreads(self)

    def timeline(self) -> "Timeline":
        """Return what this pool ran, when and on which worker.

        One ``TaskRecord(label, worker, thread, submitted, started, ended,
        items)`` per finished task, oldest first, times in seconds on
        ``taskdemo.monotonic_ns()``'s clock.  Sub-microsecond tasks of one
        function that a worker ran back to back share records, up to 64
        per record, with ``items`` saying how many (reading the clock for
        each would cost more than some of them); any other task has its
        own record, ``items == 1``.  The pool keeps the newest
        ``timeline_size`` records (a constructor keyword, default 4096, 0
        to turn recording off); ``.dropped`` counts the tasks of the older
        records lost.
        """
        from .timeline import TaskRecord, Timeline

        raw, dropped = self._timeline_raw()
        prefix = self._thread_name_prefix
        return Timeline(
            [TaskRecord(label, worker, f"{prefix}_{worker}", submit_ns / 1e9,
                        start_ns / 1e9, end_ns / 1e9, items)
             for label, worker, submit_ns, start_ns, end_ns, items in raw],
            dropped)

    def __repr__(self) -> str:
        stats = self._stats()
        state = "shut down" if self._shutdown else "running"
        return (f"<taskdemo.ThreadPoolExecutor {self._thread_name_prefix!r} "
                f"{state}, {stats['threads']}/{self._max_workers} threads, "
                f"{stats['queued']} queued>")
