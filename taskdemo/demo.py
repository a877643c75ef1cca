"""The original notebook's Set #2, on taskdemo's C pool, in a terminal.

    python -m taskdemo.demo [--delay SECONDS]

Three runs ('+', '-', '#') of the notebook's ``run_in_sync`` on a pool of two
workers: two run side by side, the third waits, so the set takes about
2 x delay, and each run reports ``2t`` (two extra threads, counted in C).
"""
import argparse
import sys
import time
from concurrent.futures import as_completed
from typing import List, Optional

from ._executor import ThreadPoolExecutor
from ._stopwatch import stopwatch
from ._threads import additional_thread_count

RUNS = ["+", "-", "#"]


def run_in_sync(id: str, delay: float) -> str:
    """The notebook's task: write `id` twice a second for `delay` seconds."""
    starting_time = time.time()
    while time.time() - starting_time < delay:
        sys.stdout.write(f"{id}")
        time.sleep(0.5)
        sys.stdout.write(f"{id}")
    sys.stdout.write(f"[{id}:stopped:{additional_thread_count()}t] ")
    return id


def set_2(delay: float) -> List[str]:
    """Set #2 of the notebook, with taskdemo.ThreadPoolExecutor."""
    with stopwatch("Set #2"), ThreadPoolExecutor(max_workers=2) as pool:
        futures = [pool.submit(run_in_sync, id, delay) for id in RUNS]
        results = [f.result() for f in as_completed(futures)]
        print(f"\nresults = {results}")
    return results


def main(argv: Optional[List[str]] = None) -> int:
    parser = argparse.ArgumentParser(
        prog="python -m taskdemo.demo",
        description="Run the notebook's Set #2 on taskdemo's C thread pool.")
    parser.add_argument("--delay", type=float, default=1.0,
                        help="seconds each run lasts (the notebook used 5)")
    args = parser.parse_args(argv)
    if not args.delay >= 0:
        parser.error("--delay must be a number >= 0")
    set_2(args.delay)
    return 0


if __name__ == "__main__":
    sys.exit(main())
