"""Type stubs for taskdemo._taskdemo, the C extension."""
import concurrent.futures
import threading
from concurrent.futures._base import DoneAndNotDoneFutures
from typing import (Any, Callable, Dict, Final, Iterable, Iterator, List,
                    Optional, Set, Tuple, TypeVar)

from typing_extensions import ParamSpec

_T = TypeVar("_T")
_P = ParamSpec("_P")

class TaskError(RuntimeError): ...

class Future(concurrent.futures.Future[_T]):
    """A concurrent.futures.Future implemented in C."""
    # CPython 3.15's private method, which its asyncio calls; ours is
    # there on every version.
    def _get_snapshot(
        self,
    ) -> Tuple[bool, bool, Optional[_T], Optional[BaseException]]: ...

class Stopwatch:
    def __init__(self) -> None: ...
    def start(self) -> None: ...
    def stop(self) -> None: ...
    @property
    def elapsed(self) -> float: ...
    @property
    def elapsed_ns(self) -> int: ...
    @property
    def running(self) -> bool: ...

class MapIterator(Iterator[_T]):
    """The iterator ThreadPoolExecutor.map() returns."""
    def __next__(self) -> _T: ...
    def close(self) -> None: ...
    def __length_hint__(self) -> int: ...

class ExecutorBase:
    def __init__(
        self,
        max_workers: Optional[int] = ...,
        thread_name_prefix: str = ...,
        initializer: Optional[Callable[..., object]] = ...,
        initargs: Tuple[Any, ...] = ...,
        *,
        timeline_size: int = ...,
    ) -> None: ...
    def submit(
        self, fn: Callable[_P, _T], /, *args: _P.args, **kwargs: _P.kwargs
    ) -> concurrent.futures.Future[_T]: ...
    def map(
        self,
        fn: Callable[..., _T],
        *iterables: Iterable[Any],
        timeout: Optional[float] = ...,
        chunksize: int = ...,
        buffersize: Optional[int] = ...,
    ) -> Iterator[_T]:
        """Return an iterator of fn(*args) over zip(*iterables), in order.

        buffersize=N bounds the calls submitted ahead of the consumer, as
        Python 3.14's Executor.map does, and is accepted on every Python
        version taskdemo supports (3.10-3.13 included): N inputs are taken
        at the call, then one more per next(), so infinite iterables work.
        """
    def shutdown(self, wait: bool = ..., *, cancel_futures: bool = ...) -> None: ...
    def _stats(self) -> Dict[str, int]: ...
    def _worker_threads(self) -> Set[threading.Thread]: ...
    def _timeline_raw(
        self,
    ) -> Tuple[List[Tuple[str, int, int, int, int, int]], int]: ...

FIRST_COMPLETED: Final = "FIRST_COMPLETED"
FIRST_EXCEPTION: Final = "FIRST_EXCEPTION"
ALL_COMPLETED: Final = "ALL_COMPLETED"

def as_completed(
    fs: Iterable[concurrent.futures.Future[_T]], timeout: Optional[float] = ...
) -> Iterator[concurrent.futures.Future[_T]]:
    """concurrent.futures.as_completed(), with taskdemo futures watched in C.

    Yields each distinct future of fs once it is done, those done already
    first; TimeoutError after timeout seconds, counted from the first
    next().  Releases the GIL while waiting; Ctrl-C raises
    KeyboardInterrupt.
    """

def wait(
    fs: Iterable[concurrent.futures.Future[_T]],
    timeout: Optional[float] = ...,
    return_when: str = ...,
) -> DoneAndNotDoneFutures[_T]:
    """concurrent.futures.wait(), with taskdemo futures watched in C.

    Returns DoneAndNotDoneFutures(done, not_done), two sets, when
    return_when (FIRST_COMPLETED, FIRST_EXCEPTION or ALL_COMPLETED) is met
    or after timeout seconds.  Releases the GIL while waiting; Ctrl-C
    raises KeyboardInterrupt.
    """

def sleep(seconds: float, /) -> None: ...
def spin(seconds: float, /) -> None: ...
def thread_count() -> int: ...
def monotonic_ns() -> int: ...
def _set_worker_hooks(
    register: Callable[[str], Any], unregister: Callable[[Any], object], /
) -> None: ...
def _shutdown_all() -> None: ...
def _after_fork_child() -> None: ...
