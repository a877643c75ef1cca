"""Tasks written in C that run without the GIL.

``sleep(seconds)`` waits and ``spin(seconds)`` keeps one CPU busy until its
thread has used ``seconds`` of CPU time, both in C with the GIL released, so
several of them on a thread pool really run at the same time (and spins that
must share a core take longer, as real work does).  Call them directly or submit them to any executor; called on the
main thread they still answer Ctrl-C within about 50 ms.
"""
from ._taskdemo import sleep, spin

__all__ = ["sleep", "spin"]
