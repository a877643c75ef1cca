"""Workload 5 (memory per queued task) for one pool, in this fresh
interpreter; prints the sample as JSON.  Run by workloads.memory_in_child:

    python bench/memchild.py POOL TASKS WORKERS
"""
import json
import sys

import pools
from workloads import memory


def main(argv):
    name, n, workers = argv[0], int(argv[1]), int(argv[2])
    adapters, skipped = pools.available()
    adapter = next((a for a in adapters if a.name == name), None)
    if adapter is None:
        sys.exit(f"memchild.py: no pool {name!r} "
                 f"({skipped.get(name, 'unknown')})")
    pool = adapter.open(workers)
    try:
        sample = memory(adapter, pool, {"mem_n": n, "workers": workers})
    finally:
        adapter.close(pool)
    print(json.dumps(sample))


if __name__ == "__main__":
    main(sys.argv[1:])
