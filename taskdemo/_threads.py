"""Thread counts from C, relative to the moment taskdemo was imported."""
from ._taskdemo import thread_count

# Threads the process had before the demo started anything (the main thread,
# Jupyter's own threads...), so the demo can show only what it added.
_baseline = thread_count()


def additional_thread_count() -> int:
    """Return how many OS threads exist beyond those at import; never < 0."""
    return max(0, thread_count() - _baseline)
