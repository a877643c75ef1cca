"""Thread counts from C, relative to the moment taskdemo was imported."""
from typing import Optional

from ._taskdemo import thread_count


def _count_now() -> Optional[int]:
    try:
        return thread_count()
    except NotImplementedError:
        return None   # no thread counter here: say so when asked, not now


# Threads the process had before the demo started anything (the main thread,
# Jupyter's own threads...), so the demo can show only what it added.
_baseline = _count_now()


def additional_thread_count() -> int:
    """Return how many OS threads exist beyond those at import; never < 0.

    Raises NotImplementedError where ``thread_count()`` does (systems other
    than Linux and macOS); importing taskdemo works there all the same.
    """
    now = thread_count()
    return max(0, now - (_baseline if _baseline is not None else now))
