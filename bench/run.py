"""taskdemo's benchmark: every workload on every pool, in one process.

    python bench/run.py            # full run, under 10 minutes on 2 cores
    python bench/run.py --quick    # under a minute

Rounds alternate the pools (the order rotates each round) and each sample
is taken on a fresh, warmed-up pool, so slow drift on a noisy machine hits
every pool alike; the report gives medians over rounds and ratios to the
stdlib ThreadPoolExecutor measured in the same run.  Writes results.json,
results.md and results.png into --out (default: bench/).
"""
import argparse
import gc
import os
import sys
import time
import traceback
from pathlib import Path

HERE = Path(__file__).resolve().parent
sys.path.insert(0, str(HERE))

import machine  # noqa: E402
import pools  # noqa: E402
import report  # noqa: E402
from workloads import catalogue  # noqa: E402

FULL = {"n": 100_000, "n8": 50_000, "mem_n": 100_000, "latency_n": 2000,
        "rounds": 5, "delay": 0.5, "spin_seconds": 0.05, "spin_tasks": 4,
        "ab_n": 20_000, "ab_pairs": 25}
QUICK = {"n": 10_000, "n8": 10_000, "mem_n": 20_000, "latency_n": 500,
         "rounds": 3, "delay": 0.1, "spin_seconds": 0.02, "spin_tasks": 3,
         "ab_n": 5_000, "ab_pairs": 2}


def parse_args(argv):
    p = argparse.ArgumentParser(
        prog="python bench/run.py",
        description="Benchmark taskdemo against the stdlib "
        "ThreadPoolExecutor, multiprocessing.pool.ThreadPool and "
        "fastthreadpool.")
    p.add_argument("--quick", action="store_true",
                   help="smaller sizes and fewer rounds (under a minute)")
    p.add_argument("--out", type=Path, default=HERE,
                   help="directory for results.json/.md/.png "
                   "(default: bench/)")
    p.add_argument("--rounds", type=int, help="rounds per workload and pool")
    p.add_argument("--n", type=int, help="tasks in workloads 1-3")
    p.add_argument("--n8", type=int, help="tasks in workload 8")
    p.add_argument("--mem-n", dest="mem_n", type=int,
                   help="tasks queued in workload 5")
    p.add_argument("--latency-n", dest="latency_n", type=int,
                   help="round trips per sample in workload 4")
    p.add_argument("--ab-n", dest="ab_n", type=int,
                   help="tasks per timeline on/off sample")
    p.add_argument("--ab-pairs", dest="ab_pairs", type=int,
                   help="timeline on/off pairs per round")
    p.add_argument("--delay", type=float,
                   help="seconds per run in workload 7 (the seed used 5)")
    p.add_argument("--pools", help="comma-separated pool names to run")
    p.add_argument("--workloads",
                   help="comma-separated workload id prefixes to run")
    args = p.parse_args(argv)
    cfg = dict(QUICK if args.quick else FULL)
    for key in ("rounds", "n", "n8", "mem_n", "latency_n", "ab_n",
                "ab_pairs", "delay"):
        value = getattr(args, key)
        if value is not None:
            if value <= 0:
                p.error(f"--{key.replace('_', '-')} must be > 0")
            cfg[key] = value
    return args, cfg


def measure_one(adapter, workload, cfg):
    cfg = dict(cfg, workers=workload.workers)
    if not workload.needs_pool:
        return workload.measure(adapter, None, cfg)
    pool = adapter.open(workload.workers)
    try:
        return workload.measure(adapter, pool, cfg)
    finally:
        adapter.close(pool)
        gc.collect()


def main(argv=None):
    args, cfg = parse_args(argv)
    cpus = os.cpu_count() or 1
    adapters, skipped = pools.available()
    for name, reason in skipped.items():
        print(f"skipping {name}: {reason}", flush=True)
    if args.pools:
        wanted = set(args.pools.split(","))
        adapters = [a for a in adapters if a.name in wanted]
    workloads = catalogue(cpus)
    if args.workloads:
        prefixes = tuple(args.workloads.split(","))
        workloads = [w for w in workloads if w.id.startswith(prefixes)]

    meta = machine.describe()
    print(f"taskdemo benchmark: {meta['cpu'].get('Model name', '?')}, "
          f"{cpus} CPUs, Python {meta['python']}; {cfg}", flush=True)
    samples = {w.id: {a.name: [] for a in adapters if a.supports(w)}
               for w in workloads}
    errors = []
    t_start = time.perf_counter()
    for r in range(cfg["rounds"]):
        order = adapters[r % len(adapters):] + adapters[:r % len(adapters)]
        for w in workloads:
            for a in order:
                if not a.supports(w):
                    continue
                try:
                    samples[w.id][a.name].append(measure_one(a, w, cfg))
                except Exception as exc:   # report it, keep going
                    errors.append({"round": r, "workload": w.id,
                                   "pool": a.name, "error": repr(exc)})
                    traceback.print_exc()
        print(f"round {r + 1}/{cfg['rounds']} done at "
              f"{time.perf_counter() - t_start:.0f} s", flush=True)

    summary = report.summarise(workloads, samples)
    target_rows = report.targets(workloads, samples, summary, cpus)
    meta["duration_s"] = time.perf_counter() - t_start
    meta["loadavg_at_end"] = os.getloadavg()
    meta["command"] = " ".join(["python", "bench/run.py", *(
        sys.argv[1:] if argv is None else argv)])
    args.out.mkdir(parents=True, exist_ok=True)
    report.write_json(args.out / "results.json", {
        "meta": meta,
        "config": cfg,
        "pools": {a.name: {"label": a.label, "about": a.about}
                  for a in adapters},
        "skipped": skipped,
        "workloads": {w.id: w.describe() for w in workloads},
        "results": summary,
        "targets": target_rows,
        "samples": samples,
        "errors": errors,
    })
    table = report.markdown(workloads, adapters, summary, target_rows, cfg)
    (args.out / "results.md").write_text(table)
    print(table)
    try:
        report.chart(args.out / "results.png", workloads, adapters, summary,
                     cpus)
    except ImportError as exc:
        print(f"no chart: matplotlib missing ({exc}); "
              f"see bench/README.md", flush=True)
    print(f"wrote {args.out / 'results.json'}, results.md, results.png "
          f"in {meta['duration_s']:.0f} s", flush=True)
    return 1 if errors else 0


if __name__ == "__main__":
    sys.exit(main())
