"""python -m taskdemo: the sets in a terminal, the table, the trace, the plot.

Each run is a child interpreter with a timeout (conftest's
run_in_subprocess), started as ``-m`` starts it, through runpy.  The sets
run with a short delay; the assertions are on the exact output format (the
original notebook's Stopwatch, marker and results lines), on each set's
time as a multiple of the delay (generous margins, but tight enough to tell
~1x from ~2x), and on the files --trace and --plot write.
"""

from __future__ import annotations

import importlib.util
import json
import re
from dataclasses import dataclass, field
from typing import Dict, List, Tuple

import pytest

from taskdemo import demo

DELAY = 0.3
TIMEOUT = 90.0
HAVE_MPL = importlib.util.find_spec("matplotlib") is not None

RUN_MODULE = """
import runpy, sys
{before}
runpy.run_module({module!r}, run_name="__main__", alter_sys=True)
"""


def cli(run_in_subprocess, *args: str, module: str = "taskdemo",
        before: str = "", timeout: float = TIMEOUT) -> Tuple[int, str, str]:
    """Runs `python -m <module> <args>`; returns (rc, stdout, stderr)."""
    code = RUN_MODULE.format(module=module, before=before)
    return run_in_subprocess(code, timeout, args=tuple(args))


STARTED = re.compile(r"^Stopwatch: (?P<name>Set #\d(?: \(\d+ threads?\))?): "
                     r"Started: (?P<threads>\d+) thread\(s\)$")
STOPPED = re.compile(r"^Stopwatch: (?P<name>Set #\d(?: \(\d+ threads?\))?): "
                     r"Stopped: (?P<seconds>\d+\.\d{3})s, "
                     r"(?P<threads>\d+) thread\(s\)$")
RESULTS = re.compile(r"^results = \[('.'(?:, '.')*)?\]$")
MARKER = re.compile(r"\[(.):stopped:(\d+)t\] ")


@dataclass
class Block:
    """One stopwatch's output: its lines between Started and Stopped."""

    name: str
    started_threads: int
    body: List[str] = field(default_factory=list)
    seconds: float = -1.0
    stopped_threads: int = -1

    @property
    def chars(self) -> str:
        """What the runs wrote: the body before the results line."""
        return "\n".join(self.body[:-1])

    @property
    def results(self) -> List[str]:
        m = RESULTS.match(self.body[-1])
        assert m, f"{self.name}: not a results line: {self.body[-1]!r}"
        return re.findall(r"'(.)'", self.body[-1])

    @property
    def markers(self) -> List[Tuple[str, int]]:
        return [(i, int(n)) for i, n in MARKER.findall(self.chars)]


def parse(out: str) -> Tuple[Dict[str, Block], List[str]]:
    """Splits the output into stopwatch blocks, and the lines after them."""
    blocks: Dict[str, Block] = {}
    current = None
    rest: List[str] = []
    for line in out.splitlines():
        m = STARTED.match(line)
        if m:
            assert current is None, f"nested stopwatch: {line!r}"
            current = Block(m["name"], int(m["threads"]))
            continue
        m = STOPPED.match(line)
        if m:
            assert current is not None and m["name"] == current.name, line
            current.seconds = float(m["seconds"])
            current.stopped_threads = int(m["threads"])
            blocks[current.name] = current
            current = None
            continue
        assert not line.startswith("Stopwatch:"), f"bad Stopwatch line: {line!r}"
        if current is not None:
            current.body.append(line)
        else:
            rest.append(line)
    assert current is None, "a stopwatch never stopped"
    return blocks, rest


# ---- the full demo, once per module ----------------------------------------------


@pytest.fixture(scope="module")
def full_run(run_in_subprocess, tmp_path_factory):
    """All sets at DELAY, with --trace and (if matplotlib is here) --plot."""
    folder = tmp_path_factory.mktemp("cli")
    trace, png = folder / "trace.json", folder / "timeline.png"
    args = ["--delay", str(DELAY), "--trace", str(trace)]
    if HAVE_MPL:
        args += ["--plot", str(png)]
    rc, out, err = cli(run_in_subprocess, *args)
    assert rc == 0, f"rc={rc}\n{out}\n{err}"
    assert err == "", err
    blocks, rest = parse(out)
    return blocks, rest, trace, png, out


NOTEBOOK_SETS = {
    # name: (multiple of the delay, thread marker, results in order?)
    "Set #1": (3, 0, True),
    "Set #2": (2, 2, False),
    "Set #3": (3, 0, True),
    "Set #4": (1, 0, True),
    "Set #5": (2, 2, False),
    "Set #6": (1, 3, False),
    "Set #7": (1, 2, True),
}


@pytest.mark.parametrize("name", sorted(NOTEBOOK_SETS))
def test_set_output_and_time(full_run, name):
    """Each run writes its id twice per step (two steps per delay), then
    its [id:stopped:Nt] marker; N counts the pool's threads (from C), 0
    before and after every set; the set takes its multiple of the delay."""
    blocks, _, _, _, out = full_run
    multiple, threads, ordered = NOTEBOOK_SETS[name]
    b = blocks[name]
    assert (b.started_threads, b.stopped_threads) == (0, 0), out
    assert sorted(b.results) == sorted(demo.RUNS)
    if ordered:
        assert b.results == demo.RUNS
    assert sorted(b.markers) == sorted((i, threads) for i in demo.RUNS), b.chars
    for i in demo.RUNS:  # all of a run's characters come before its marker
        before = MARKER.sub("", b.chars[:b.chars.index(f"[{i}:stopped")])
        assert before.count(i) == MARKER.sub("", b.chars).count(i) == 4, b.chars
    assert multiple * DELAY - 0.005 <= b.seconds < (multiple + 0.5) * DELAY, out


def test_sequential_sets_print_exactly_as_the_notebook(full_run):
    blocks, _, _, _, _ = full_run
    for name in ("Set #1", "Set #3"):
        assert blocks[name].body == [
            "++++[+:stopped:0t] ----[-:stopped:0t] ####[#:stopped:0t] ",
            "results = ['+', '-', '#']",
        ]


def test_cpu_sets_run_in_two_parts(full_run):
    blocks, _, _, _, out = full_run
    for n in (8, 9):
        for threads, label in ((1, "1 thread"), (2, "2 threads")):
            b = blocks[f"Set #{n} ({label})"]
            assert (b.started_threads, b.stopped_threads) == (0, 0), out
            assert sorted(b.results) == ["+", "-"]
            assert sorted(b.markers) == [("+", threads), ("-", threads)]
            chars = MARKER.sub("", b.chars)
            assert chars.count("+") == chars.count("-") == 8


def test_table_lists_every_set_with_the_stopwatch_times(full_run):
    blocks, rest, _, _, _ = full_run
    header = [i for i, line in enumerate(rest) if line.startswith("set ")]
    assert len(header) == 1, rest
    table = rest[header[0]:]
    assert re.match(r"^set +what ran +elapsed +x delay +expected$", table[0])
    assert set(table[1]) <= {"-", " "}
    rows = {line.split("  ")[0].strip(): line for line in table[2:]
            if line.startswith(("Set #", "  ("))}
    for n in range(1, 10):
        assert f"Set #{n}" in rows, table
    for name, b in blocks.items():
        if "(" in name:
            continue  # the parts' rows are indented
        row = rows[name]
        assert re.search(rf" {b.seconds:.3f}s +{b.seconds / DELAY:.2f} +~[\d.]+$",
                         row), row


def test_trace_file_is_chrome_trace_events(full_run):
    blocks, rest, trace, _, _ = full_run
    assert f"Trace: {trace} (open it in Perfetto or chrome://tracing)" in rest
    data = json.loads(trace.read_text(encoding="utf-8"))
    events = data["traceEvents"]
    assert data["displayTimeUnit"] == "ms"
    spans = [e for e in events if e["ph"] == "X"]
    # 3 runs in each of Sets #1-#7, 2 tasks x 2 parts in Sets #8 and #9.
    assert len(spans) == 7 * 3 + 2 * 4
    for e in spans:
        assert isinstance(e["ts"], (int, float)) and e["ts"] >= 0
        assert isinstance(e["dur"], (int, float)) and e["dur"] >= 0
        assert e["name"] in {"run_in_sync", "run_in_async", "busy_in_sync",
                             "spin_in_sync"}
    procs = {e["pid"]: e["args"]["name"] for e in events
             if e["ph"] == "M" and e["name"] == "process_name"}
    assert [procs[p].split(":")[0] for p in sorted(procs)] == [
        f"Set #{n}" for n in range(1, 10)]
    rows = {(e["pid"], e["tid"]) for e in events
            if e["ph"] == "M" and e["name"] == "thread_name"}
    assert {(e["pid"], e["tid"]) for e in spans} <= rows
    # The C pool's sets: three runs on max_workers rows, all long enough.
    set5 = [e for e in spans if procs[e["pid"]].startswith("Set #5")]
    assert sorted({e["tid"] for e in set5}) == [0, 1]
    assert all(e["dur"] >= DELAY * 1e6 * 0.99 for e in set5)
    # One time origin for the whole file: the sets follow one another.
    total = sum(b.seconds for name, b in blocks.items() if "(" not in name)
    assert max(e["ts"] + e["dur"] for e in spans) >= 0.9 * total * 1e6


@pytest.mark.skipif(not HAVE_MPL, reason="matplotlib is not installed (`test` extra)")
def test_plot_file_is_a_png(full_run):
    _, rest, _, png, _ = full_run
    assert f"Plot: {png}" in rest
    assert png.read_bytes()[:8] == b"\x89PNG\r\n\x1a\n"


# ---- the CPU-bound sets: the GIL and the cores --------------------------------


def test_cpu_bound_python_is_not_faster_on_two_threads(run_in_subprocess):
    """Set #8: the same pure-Python work on 2 threads takes about as long
    as on 1 (the GIL); Set #9: C work that releases the GIL takes about
    half as long on 2 workers."""
    rc, out, err = cli(run_in_subprocess, "--sets", "8,9", "--delay", "0.8")
    assert rc == 0, err
    blocks, _ = parse(out)

    def t(n, label):
        return blocks[f"Set #{n} ({label})"].seconds

    assert t(8, "2 threads") > 0.7 * t(8, "1 thread"), out
    assert t(9, "2 threads") < 0.75 * t(9, "1 thread"), out
    assert t(9, "1 thread") >= 2 * 0.8 * demo.CPU_FRACTION - 0.005, out


# ---- options ----------------------------------------------------------------------


def test_workers_and_sets_options(run_in_subprocess):
    rc, out, err = cli(run_in_subprocess, "--sets", "5,7", "--workers", "3",
                       "--delay", "0.2")
    assert rc == 0, err
    blocks, rest = parse(out)
    assert sorted(blocks) == ["Set #5", "Set #7"]
    assert sorted(blocks["Set #5"].markers) == sorted((i, 3) for i in demo.RUNS)
    assert blocks["Set #5"].seconds < 1.5 * 0.2  # 3 workers: ~1 x delay
    assert any("max_workers=3" in line for line in rest)


def test_zero_delay(run_in_subprocess):
    rc, out, err = cli(run_in_subprocess, "--sets", "1", "--delay", "0")
    assert rc == 0, err
    blocks, _ = parse(out)
    assert blocks["Set #1"].body == [
        "[+:stopped:0t] [-:stopped:0t] [#:stopped:0t] ",
        "results = ['+', '-', '#']",
    ]


def test_python_m_taskdemo_demo_still_works(run_in_subprocess):
    """README's older command: the same command line."""
    rc, out, err = cli(run_in_subprocess, "--sets", "2", "--delay", "0.2",
                       module="taskdemo.demo")
    assert rc == 0, err
    assert err == ""  # e.g. no runpy RuntimeWarning
    blocks, _ = parse(out)
    assert list(blocks) == ["Set #2"]


def test_help(run_in_subprocess):
    rc, out, err = cli(run_in_subprocess, "--help")
    assert rc == 0, err
    assert out.startswith("usage: python -m taskdemo ")
    for option in ("--delay SECONDS", "--workers N", "--sets LIST",
                   "--trace FILE.json", "--plot FILE.png", "--help"):
        assert option in out
    for n in range(1, 10):
        assert f"Set #{n}" in out


BAD_ARGUMENTS = [
    (["--delay", "-1"], "argument --delay: must be a finite number of seconds >= 0"),
    (["--delay", "nan"], "argument --delay: must be a finite number"),
    (["--delay", "inf"], "argument --delay: must be a finite number"),
    (["--delay", "soon"], "argument --delay: must be a number of seconds"),
    (["--workers", "0"], "argument --workers: must be from 1 to 32, not 0"),
    (["--workers", "1.5"], "argument --workers: must be a whole number"),
    (["--sets", "10"], "argument --sets: unknown set 10 (the sets are 1-9)"),
    (["--sets", "0,1"], "argument --sets: unknown set 0"),
    (["--sets", "7-5"], "argument --sets: '7-5' is not a set number or range"),
    (["--sets", "one"], "argument --sets: 'one' is not a set number or range"),
    (["--trace", "/no/such/dir/t.json"], "argument --trace: no such directory"),
    (["--frobnicate"], "unrecognized arguments: --frobnicate"),
]


@pytest.mark.parametrize("args,message", BAD_ARGUMENTS,
                         ids=[" ".join(a) for a, _ in BAD_ARGUMENTS])
def test_bad_arguments(run_in_subprocess, args, message):
    rc, out, err = cli(run_in_subprocess, *args, timeout=30)
    assert rc == 2
    assert out == ""  # no set ran
    assert err.startswith("usage: python -m taskdemo ")
    assert message in err, err


def test_plot_without_matplotlib(run_in_subprocess, tmp_path):
    rc, out, err = cli(run_in_subprocess, "--plot", str(tmp_path / "x.png"),
                       before="sys.modules['matplotlib'] = None", timeout=30)
    assert rc == 2 and out == ""
    assert 'pip install "taskdemo[notebook]"' in err


# ---- the parts, in process ---------------------------------------------------------


@pytest.mark.parametrize("text,expected", [
    ("1,2,5-7", [1, 2, 5, 6, 7]),
    (" 9 , 1 ", [1, 9]),
    ("3,3,2-3", [2, 3]),
    ("all", list(range(1, 10))),
    ("4-4", [4]),
])
def test_parse_sets(text, expected):
    assert demo.parse_sets(text) == expected


def test_format_table_is_aligned_plain_text():
    tl = demo.Timeline()
    results = [demo.SetResult("Set #1", "a", 1.0, 3.0041, [], tl, 3),
               demo.SetResult("Set #4", "longer text", 0.0, 0.0005, [], tl, 1)]
    lines = demo.format_table(results).splitlines()
    assert lines[0].split() == ["set", "what", "ran", "elapsed", "x", "delay",
                                "expected"]
    assert lines[2].split() == ["Set", "#1", "a", "3.004s", "3.00", "~3"]
    assert lines[3].split() == ["Set", "#4", "longer", "text", "0.001s", "-", "~1"]
    # Numbers are right-aligned under their headers.
    end = lines[0].index("elapsed") + len("elapsed")
    assert lines[2].index("3.004s") + 6 == lines[3].index("0.001s") + 6 == end
    assert all(line.isascii() for line in lines)
