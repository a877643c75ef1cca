"""Smoke test of the benchmark (bench/run.py): it runs end to end with tiny
sizes and writes a report of the right shape.  No timing assertions: the
numbers of a tiny run on a shared machine mean nothing."""
import importlib.util
import json
import subprocess
import sys
from pathlib import Path

import pytest

ROOT = Path(__file__).resolve().parents[1]
TIMEOUT = 90
HAVE_MATPLOTLIB = importlib.util.find_spec("matplotlib") is not None

TINY = ["--quick", "--rounds", "1", "--n", "200", "--n8", "160",
        "--mem-n", "200", "--latency-n", "20", "--ab-n", "200",
        "--ab-pairs", "1", "--delay", "0.02"]

CORE_POOLS = {"taskdemo", "taskdemo_notimeline", "taskdemo_cf_wait",
              "stdlib", "mp_threadpool", "loop"}
CORE_WORKLOADS = {"1_in_order", "2_map", "3_as_completed", "3_wait_all",
                  "4_latency", "5_memory", "6_scaling_1", "7_seed_set1",
                  "7_seed_set2_w2", "7_seed_set2_w3", "8_workers_1",
                  "8_workers_2", "8_workers_4", "8_submitters_8",
                  "timeline_1_in_order", "timeline_2_map",
                  "timeline_3_as_completed", "timeline_3_wait_all"}


@pytest.fixture(scope="module")
def report(tmp_path_factory):
    out = tmp_path_factory.mktemp("bench")
    try:
        proc = subprocess.run(
            [sys.executable, str(ROOT / "bench" / "run.py"), *TINY,
             "--out", str(out)],
            cwd=str(ROOT), stdin=subprocess.DEVNULL, capture_output=True,
            text=True, timeout=TIMEOUT)
    except subprocess.TimeoutExpired as exc:
        pytest.fail(f"possible deadlock: bench/run.py still running after "
                    f"{TIMEOUT}s\n--- stdout ---\n{exc.stdout}\n"
                    f"--- stderr ---\n{exc.stderr}", pytrace=False)
    assert proc.returncode == 0, proc.stdout + proc.stderr
    return out, proc.stdout


def test_writes_only_into_out_dir(report):
    out, _ = report
    expected = ["results.json", "results.md"]
    if HAVE_MATPLOTLIB:
        expected.append("results.png")
    assert sorted(p.name for p in out.iterdir()) == expected


def test_results_json_shape(report):
    out, _ = report
    data = json.loads((out / "results.json").read_text())
    assert {"meta", "config", "pools", "skipped", "workloads", "results",
            "targets", "samples", "errors"} <= set(data)
    assert data["errors"] == []
    assert CORE_POOLS <= set(data["pools"])
    # fastthreadpool runs when installed, and is otherwise skipped with a
    # reason: never silently missing.
    assert "fastthreadpool" in set(data["pools"]) | set(data["skipped"])
    assert CORE_WORKLOADS <= set(data["workloads"])
    assert set(data["results"]) == set(data["workloads"])
    for wid, row in data["results"].items():
        primary = data["workloads"][wid]["primary"]
        assert row, wid
        for pool, cell in row.items():
            assert pool in data["pools"]
            assert cell["rounds"] == 1
            assert isinstance(cell["median"][primary], float), (wid, pool)
    for pool in ("taskdemo", "mp_threadpool"):
        assert "speedup_vs_stdlib" in data["results"]["1_in_order"][pool]
    assert "ratio_vs_stdlib" in data["results"]["5_memory"]["taskdemo"]
    assert {t["target"].split(",")[0] for t in data["targets"]} >= {
        "round-trip latency (median)", "memory per queued task",
        "timeline cost"}
    for t in data["targets"]:
        assert isinstance(t["met"], bool)
    assert data["meta"]["python"] == sys.version.split()[0]


def test_markdown_table(report):
    out, stdout = report
    md = (out / "results.md").read_text()
    assert "| workload | taskdemo |" in md
    assert "| 1. submit N, result() each in order |" in md
    assert "| target | goal | measured | met |" in md
    assert md in stdout   # the run also prints it


@pytest.mark.skipif(not HAVE_MATPLOTLIB, reason="matplotlib not installed "
                    "(the bench extra)")
def test_png_chart(report):
    out, _ = report
    assert (out / "results.png").read_bytes()[:8] == b"\x89PNG\r\n\x1a\n"
