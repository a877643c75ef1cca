"""The demo's stopwatch, on the C core's monotonic clock."""
import sys
from types import TracebackType
from typing import Any, Optional, Type

from ._taskdemo import Stopwatch
from ._threads import additional_thread_count


class stopwatch:
    """Time a block and report it with the extra thread count.

    On enter it prints ``Stopwatch: {name}: Started: {n} thread(s)``, on exit
    ``Stopwatch: {name}: Stopped: {seconds:.3f}s, {n} thread(s)``, to the
    ``sys.stdout`` of that moment (so Jupyter shows it in the running cell),
    ``n`` being ``additional_thread_count()``.  ``elapsed`` holds the float
    seconds after exit (``None`` before).  The exit line is printed even if
    the block raises.
    """

    def __init__(self, name: Any) -> None:
        self.name = name
        self.elapsed: Optional[float] = None
        self._clock = Stopwatch()

    def __enter__(self) -> "stopwatch":
        print(f"Stopwatch: {self.name}: Started: "
              f"{additional_thread_count()} thread(s)", file=sys.stdout)
        self._clock.start()
        return self

    def __exit__(self, exc_type: Optional[Type[BaseException]],
                 exc: Optional[BaseException],
                 tb: Optional[TracebackType]) -> None:
        self._clock.stop()
        self.elapsed = self._clock.elapsed
        print(f"Stopwatch: {self.name}: Stopped: {self.elapsed:.3f}s, "
              f"{additional_thread_count()} thread(s)", file=sys.stdout)
