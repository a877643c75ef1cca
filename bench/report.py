"""Turns the samples of a run into medians, ratios, target checks and the
report files: results.json, results.md (the tables) and results.png."""
import json
import statistics

from workloads import LOWER_IS_BETTER, SCALING, THROUGHPUT, TIMELINE

BASE = "stdlib"
OURS = "taskdemo"
NO_TIMELINE = "taskdemo_notimeline"
THROUGHPUT_13 = ("1_in_order", "2_map", "3_as_completed", "3_wait_all")


def _median(values):
    return statistics.median(values) if values else None


def _paired(a, b):
    """Median over rounds of a[i] / b[i]: robust to drift between rounds,
    since both were measured within the same round, minutes apart at most."""
    ratios = [x / y for x, y in zip(a, b) if y]
    return _median(ratios)


def summarise(workloads, samples):
    """{workload: {pool: {"median": {metric: m}, "rounds": k, ...}}}."""
    out = {}
    for w in workloads:
        per_pool = samples.get(w.id, {})
        base = per_pool.get(BASE, [])
        row = {}
        for pool, runs in per_pool.items():
            if not runs:
                continue
            metrics = {key: _median([r[key] for r in runs])
                       for key in runs[0]}
            primary = [r[w.primary] for r in runs]
            best = (min if LOWER_IS_BETTER[w.kind] else max)(primary)
            cell = {"median": metrics, "best": best, "rounds": len(runs)}
            if base and pool != BASE and w.kind not in (SCALING, TIMELINE):
                base_primary = [r[w.primary] for r in base]
                bm = _median(base_primary)
                if bm:
                    cell["ratio_vs_stdlib"] = metrics[w.primary] / bm
                    cell["paired_ratio_vs_stdlib"] = _paired(primary,
                                                             base_primary)
                    if w.kind == THROUGHPUT and metrics[w.primary]:
                        cell["speedup_vs_stdlib"] = bm / metrics[w.primary]
            row[pool] = cell
        loop = row.get("loop")
        if w.kind == THROUGHPUT and loop:
            for pool, cell in row.items():
                cell["x_direct_call"] = (cell["median"][w.primary] /
                                         loop["median"][w.primary])
        out[w.id] = row
    return out


def _get(summary, wid, pool, key=None):
    cell = summary.get(wid, {}).get(pool)
    if cell is None:
        return None
    if key is None:
        return cell
    return cell.get(key)


def targets(workloads, samples, summary, cpus):
    """The issue's targets, each with the measured value and met/missed."""
    by_id = {w.id: w for w in workloads}
    out = []

    def add(name, goal, value, met, detail=""):
        out.append({"target": name, "goal": goal, "value": value,
                    "met": met, "detail": detail})

    for wid in THROUGHPUT_13:
        s = _get(summary, wid, OURS, "speedup_vs_stdlib")
        if s is not None:
            add(f"throughput {by_id[wid].title.split('.')[0]}. "
                f"{wid.split('_', 1)[1]}", ">= 20x stdlib", s, s >= 20,
                "speedup, ratio of medians")
    ours = _get(summary, "2_map", OURS)
    mp = _get(summary, "2_map", "mp_threadpool")
    if ours and mp:
        v = ours["median"]["ns_per_task"] / mp["median"]["ns_per_task"]
        add("workload 2 vs mp.ThreadPool chunked map", "<= 1.0x its time",
            v, v <= 1.0, "taskdemo time / mp.ThreadPool.map time")
    lat = _get(summary, "4_latency", OURS, "ratio_vs_stdlib")
    if lat is not None:
        add("round-trip latency (median)", "<= 0.5x stdlib", lat, lat <= 0.5)
    mem = _get(summary, "5_memory", OURS, "ratio_vs_stdlib")
    if mem is not None:
        add("memory per queued task", "<= 0.25x stdlib", mem, mem <= 0.25)
    eff = _get(summary, f"6_scaling_{cpus}", OURS)
    if eff:
        e = eff["median"]["efficiency"]
        add(f"native.spin parallel efficiency, {cpus} workers", ">= 95%",
            e, e >= 0.95)
    for wid in THROUGHPUT_13:
        ab = _get(summary, f"timeline_{wid}", OURS)
        on = samples.get(wid, {}).get(OURS)
        off = samples.get(wid, {}).get(NO_TIMELINE)
        if ab:
            cost = ab["median"]["cost"]
            add(f"timeline cost, workload {wid}", "< 5%", cost, cost < 0.05,
                "median over rounds of each round's median (on / off) - 1, "
                "on and off alternating pair by pair")
        elif on and off:
            cost = _paired([r["ns_per_task"] for r in on],
                           [r["ns_per_task"] for r in off]) - 1
            add(f"timeline cost, workload {wid}", "< 5%", cost, cost < 0.05,
                "median over rounds of (on / off) - 1, paired by round")
    for wid in THROUGHPUT_13:
        ftp = _get(summary, wid, "fastthreadpool")
        ours = _get(summary, wid, OURS)
        if ftp and ours:
            v = ours["median"]["ns_per_task"] / ftp["median"]["ns_per_task"]
            add(f"ahead of fastthreadpool, workload {wid}",
                "<= 1.0x its time", v, v <= 1.0,
                "taskdemo time / fastthreadpool time")
    return out


# -- markdown -------------------------------------------------------------

def _ns(v):
    if v >= 10_000:
        return f"{v / 1000:,.0f} µs"
    if v >= 1000:
        return f"{v / 1000:.2f} µs"
    return f"{v:.0f} ns"


def _cell(w, cell, pool):
    if cell is None:
        return "—"
    m = cell["median"]
    if w.kind == THROUGHPUT:
        s = _ns(m["ns_per_task"])
        if "speedup_vs_stdlib" in cell:
            s += f" ({cell['speedup_vs_stdlib']:.1f}×)"
        return s
    if w.kind == "latency":
        s = f"{m['median_us']:.1f} / {m['p99_us']:.1f} µs"
        if "ratio_vs_stdlib" in cell and pool != "loop":
            s += f" ({cell['ratio_vs_stdlib']:.2f}×)"
        return s
    if w.kind == "memory":
        s = f"{m['bytes_per_task']:,.0f} B"
        if "ratio_vs_stdlib" in cell:
            s += f" ({cell['ratio_vs_stdlib']:.2f}×)"
        return s
    if w.kind == SCALING:
        return f"{m['efficiency'] * 100:.1f}%"
    if w.kind == TIMELINE:
        return (f"{m['cost'] * 100:+.1f}% ({_ns(m['on_ns'])} on, "
                f"{_ns(m['off_ns'])} off)")
    return f"+{m['overhead_ms']:.1f} ms" if m["overhead_ms"] >= 0 else \
        f"{m['overhead_ms']:.1f} ms"


def markdown(workloads, pools, summary, target_rows, cfg):
    names = [p.name for p in pools]
    lines = [
        f"N = {cfg['n']:,} tasks (workload 8: {cfg['n8']:,}), "
        f"{cfg['rounds']} rounds, medians; max_workers=2 unless the "
        f"workload says otherwise.  Throughput cells: time per task "
        f"(speedup over the stdlib pool).  Latency: median / p99 "
        f"(median ratio to the stdlib).  Memory: RSS per queued task "
        f"(ratio to the stdlib).  Timeline rows: extra time per task with "
        f"recording on, {cfg['ab_pairs']} on/off pairs of "
        f"{cfg['ab_n']:,} tasks per round.  Workload 7: time above the "
        f"ideal, delay {cfg['delay']} s.",
        "",
        "| workload | " + " | ".join(p.label for p in pools) + " |",
        "|---|" + "---:|" * len(pools),
    ]
    for w in workloads:
        row = summary.get(w.id, {})
        if not row:
            continue
        lines.append(f"| {w.title} | " + " | ".join(
            _cell(w, row.get(n), n) for n in names) + " |")
    lines += ["", "Per-task cost as a multiple of a direct call "
              "(plain loop = 1):", "",
              "| workload | " + " | ".join(
                  p.label for p in pools if p.name != "loop") + " |",
              "|---|" + "---:|" * (len(pools) - 1)]
    for wid in THROUGHPUT_13:
        row = summary.get(wid, {})
        if "loop" not in row:
            continue
        title = next(w.title for w in workloads if w.id == wid)
        lines.append(f"| {title} | " + " | ".join(
            f"{row[n]['x_direct_call']:.0f}×" if n in row else "—"
            for n in names if n != "loop") + " |")
    lines += ["", "| target | goal | measured | met |", "|---|---|---:|---|"]
    for t in target_rows:
        v = t["value"]
        shown = (f"{v * 100:.1f}%" if "%" in t["goal"] else f"{v:.2f}×")
        lines.append(f"| {t['target']} | {t['goal']} | {shown} | "
                     f"{'yes' if t['met'] else '**no**'} |")
    return "\n".join(lines) + "\n"


# -- chart ----------------------------------------------------------------

def chart(path, workloads, pools, summary, cpus):
    import matplotlib
    matplotlib.use("Agg")
    import matplotlib.pyplot as plt

    names = [p.name for p in pools]
    labels = {p.name: p.label for p in pools}
    colors = {n: plt.cm.tab10(i) for i, n in enumerate(names)}
    fig, axes = plt.subplots(2, 2, figsize=(13, 9))

    def bars(ax, wids, key, title, xlabel, log, scale=1.0, fmt=None):
        # With --workloads, some of these were not run: leave them out.
        known = {w.id for w in workloads}
        wids = [wid for wid in wids if wid in known]
        present = [n for n in names
                   if any(n in summary.get(wid, {}) for wid in wids)]
        height = 0.8 / max(1, len(present))
        for j, n in enumerate(present):
            ys, xs = [], []
            for i, wid in enumerate(wids):
                cell = summary.get(wid, {}).get(n)
                if cell is not None:
                    ys.append(i + j * height)
                    xs.append(cell["median"][key] * scale)
            ax.barh(ys, xs, height=height, color=colors[n], label=labels[n])
            if fmt:
                for y, x in zip(ys, xs):
                    ax.text(x, y, " " + fmt.format(x), va="center",
                            fontsize=8)
        ax.set_yticks([i + 0.4 - height / 2 for i in range(len(wids))])
        ax.set_yticklabels([next(w.title for w in workloads if w.id == wid)
                            .split(" ", 1)[0] + " " + wid.split("_", 1)[1]
                            for wid in wids])
        ax.invert_yaxis()
        if log:
            ax.set_xscale("log")
        ax.set_title(title)
        ax.set_xlabel(xlabel)
        ax.grid(axis="x", alpha=0.3)

    tput = [w.id for w in workloads if w.kind == THROUGHPUT
            and summary.get(w.id)]
    bars(axes[0][0], tput, "ns_per_task",
         "Throughput: time per task (lower is better)", "ns per task, log",
         True)
    bars(axes[0][1], ["4_latency"], "median_us",
         "Round trip submit(f, 1).result(): median", "µs", False,
         fmt="{:.1f}")
    bars(axes[1][0], ["5_memory"], "bytes_per_task",
         "Memory per queued task (RSS)", "bytes", False, fmt="{:,.0f}")
    bars(axes[1][1], [f"6_scaling_{k}" for k in range(1, cpus + 1)],
         "efficiency", "native.spin parallel efficiency (higher is better)",
         "% of ideal", False, scale=100, fmt="{:.1f}")
    axes[1][1].set_xlim(0, 115)
    handles, lbls = axes[0][0].get_legend_handles_labels()
    fig.legend(handles, lbls, loc="lower center", ncol=len(names))
    fig.tight_layout(rect=(0, 0.05, 1, 1))
    fig.savefig(path, dpi=100)
    plt.close(fig)


def write_json(path, data):
    with open(path, "w") as fh:
        json.dump(data, fh, indent=1, sort_keys=False, default=str)
        fh.write("\n")
