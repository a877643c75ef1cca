"""The type stubs (taskdemo/_taskdemo.pyi, py.typed): mypy checks small
snippets that use the API and we compare `reveal_type` output and errors
with what a user of the stdlib executor gets from typeshed (the oracle)."""

from __future__ import annotations

import os
import re
import subprocess
import sys
from pathlib import Path
from typing import Dict, List, Tuple

import pytest

pytest.importorskip("mypy", reason="mypy is not installed (it is in the `test` extra)")

ROOT = Path(__file__).resolve().parents[1]

CONSTRUCTORS = {
    "stdlib": "concurrent.futures.ThreadPoolExecutor",
    "taskdemo": "taskdemo.ThreadPoolExecutor",
}

# (source line, expectation): "R: <regex>" matches the revealed type,
# "E: <regex>" the code of an error on that line; None means mypy must say
# nothing about the line.


def R(t: str) -> str:
    """Expect exactly this revealed type."""
    return "R: " + re.escape(t)


POOL_LINES: List[Tuple[str, object]] = [
    ("def g(x: int) -> bytes: return b''", None),
    ("pool = CTOR(max_workers=2, thread_name_prefix='x')", None),
    ("reveal_type(pool.submit(lambda: 1))", R("concurrent.futures._base.Future[int]")),
    ("reveal_type(pool.submit(g, 1))", R("concurrent.futures._base.Future[bytes]")),
    ("reveal_type(pool.submit(g, 1).result())", R("bytes")),
    ("reveal_type(pool.submit(g, x=1).exception())", R("BaseException | None")),
    ("reveal_type(pool.map(str, [1, 2]))", R("typing.Iterator[str]")),
    ("reveal_type(pool.map(g, [1], timeout=1.5, chunksize=2))", R("typing.Iterator[bytes]")),
    ("pool.submit(g, 'not an int')", "E: arg-type"),
    ("pool.shutdown(wait=True, cancel_futures=True)", None),
    ("CTOR(max_workers='x')", "E: arg-type|call-overload"),
    ("CTOR(initializer=print, initargs=('a',))", None),
    ("base: concurrent.futures.Executor = pool", None),
    ("fut: 'concurrent.futures.Future[int]' = pool.submit(lambda: 1)", None),
    ("done, pending = concurrent.futures.wait([fut], timeout=1)", None),
    ("reveal_type(list(concurrent.futures.as_completed([fut])))",
     R("list[concurrent.futures._base.Future[int]]")),
]

TASKDEMO_LINES: List[Tuple[str, object]] = [
    ("pool = taskdemo.ThreadPoolExecutor(max_workers=2)", None),
    ("reveal_type(pool)", "R: taskdemo.*ThreadPoolExecutor"),
    # buffersize on every version, not only where the stdlib has it (3.14)
    ("reveal_type(pool.map(str, [1], buffersize=4))", R("typing.Iterator[str]")),
    ("pool.map(str, [1], buffersize='4')", "E: arg-type"),
    ("tpe: concurrent.futures.ThreadPoolExecutor = pool", None),
    ("reveal_type(taskdemo.thread_count())", R("int")),
    ("reveal_type(taskdemo.additional_thread_count())", R("int")),
    ("with taskdemo.stopwatch('x') as sw: pass", None),
    ("reveal_type(sw.elapsed)", "R: float( \\| None)?"),
    ("taskdemo.stopwatch(42)", None),
    ("taskdemo.native.sleep(0.1)", None),
    ("taskdemo.native.spin(1)", None),
    ("taskdemo.native.sleep('x')", "E: arg-type"),
    ("taskdemo.native.spin()", "E: call-arg"),
    ("taskdemo.thread_count(1)", "E: call-arg"),
    ("with pool as p: reveal_type(p)", "R: taskdemo.*ThreadPoolExecutor"),
]

# as_completed/wait and their constants, as concurrent.futures.X (the
# oracle) and as taskdemo.X: CTOR stands for the module here.
WAIT_LINES: List[Tuple[str, object]] = [
    ("fut: 'concurrent.futures.Future[int]' = concurrent.futures.Future()", None),
    ("reveal_type(CTOR.as_completed([fut], timeout=1.5))",
     R("typing.Iterator[concurrent.futures._base.Future[int]]")),
    ("reveal_type(CTOR.wait([fut]))",   # mypy spells the NamedTuple out
     r"R: (tuple\[set\[concurrent\.futures\._base\.Future\[int\]\], "
     r"set\[concurrent\.futures\._base\.Future\[int\]\], fallback=)?"
     r"concurrent\.futures\._base\.DoneAndNotDoneFutures\[int\]\]?"),
    ("reveal_type(CTOR.wait({fut}, 1, CTOR.FIRST_COMPLETED).not_done)",
     R("set[concurrent.futures._base.Future[int]]")),
    ("done, not_done = CTOR.wait([fut], timeout=None, return_when=CTOR.ALL_COMPLETED)", None),
    ("CTOR.wait([fut], return_when=CTOR.FIRST_EXCEPTION)", None),
    ("CTOR.wait(fut)", "E: arg-type"),
    ("CTOR.as_completed([fut], timeout='1')", "E: arg-type"),
    ("CTOR.wait([fut], return_when=3)", "E: arg-type"),
]

HEADER = ["import concurrent.futures", "import taskdemo", "import taskdemo.native"]

LINE_RE = re.compile(r"^[^:]+\.py:(\d+): (note|error): (.*?)(?:  \[([\w-]+)\])?$")


def _normalise(t: str) -> str:
    """Spell a revealed type the same way across mypy versions."""
    t = t.replace("builtins.", "")
    t = re.sub(r"^Union\[(.*), None\]$", r"\1 | None", t)
    t = re.sub(r"^Optional\[(.*)\]$", r"\1 | None", t)
    return re.sub(r"\bList\[", "list[", t)


def _run_mypy(tmp_path: Path, lines: List[Tuple[str, object]], ctor: str):
    """Type-checks the snippet; returns {line number: [(kind, text, code)]}
    and the line number of each snippet line."""
    src = list(HEADER)
    numbers = []
    for code, _ in lines:
        src.append(code.replace("CTOR", ctor))
        numbers.append(len(src))
    snippet = tmp_path / "snippet.py"
    snippet.write_text("\n".join(src) + "\n")
    config = tmp_path / "mypy.ini"
    config.write_text("[mypy]\n")
    env = dict(os.environ)
    # An editable install is an import hook mypy cannot follow, so point it
    # at the checkout, where the package and its stubs live.
    env["MYPYPATH"] = str(ROOT)
    proc = subprocess.run(
        [
            sys.executable, "-m", "mypy", "--config-file", str(config),
            "--no-incremental", "--show-error-codes", "--no-error-summary",
            "--no-pretty", "--cache-dir", str(tmp_path / "cache"), str(snippet),
        ],
        capture_output=True, text=True, cwd=str(tmp_path), env=env, timeout=120,
    )
    found: Dict[int, List[Tuple[str, str, str]]] = {}
    for raw in proc.stdout.splitlines():
        m = LINE_RE.match(raw)
        if m is None:
            continue
        lineno, kind, text, code = int(m[1]), m[2], m[3], m[4] or ""
        found.setdefault(lineno, []).append((kind, text, code))
    assert proc.returncode in (0, 1), proc.stdout + proc.stderr
    return found, numbers, proc.stdout


def _mismatches(lines, found, numbers):
    problems = []
    for (code, want), n in zip(lines, numbers):
        got = found.get(n, [])
        if want is None:
            if got:
                problems.append(f"{code!r}: expected no message, got {got}")
        elif want.startswith("R: "):
            reveals = [
                _normalise(t[len("Revealed type is "):].strip('"'))
                for k, t, _ in got
                if k == "note" and t.startswith("Revealed type is")
            ]
            errors = [g for g in got if g[0] == "error"]
            if len(reveals) != 1 or not re.fullmatch(want[3:], reveals[0]) or errors:
                problems.append(f"{code!r}: expected {want[3:]!r}, got {reveals or got}")
        else:
            codes = [c for k, _, c in got if k == "error"]
            if not any(re.fullmatch(want[3:], c) for c in codes):
                problems.append(f"{code!r}: expected error [{want[3:]}], got {got}")
    return problems


@pytest.mark.parametrize("which", ["stdlib", "taskdemo"])
def test_executor_types_match_typeshed(tmp_path, which):
    """The same code type-checks the same with taskdemo's executor as with
    the stdlib's (whose typeshed types are the oracle: run as [stdlib] it
    shows the expectations themselves are right)."""
    found, numbers, out = _run_mypy(tmp_path, POOL_LINES, CONSTRUCTORS[which])
    problems = _mismatches(POOL_LINES, found, numbers)
    assert not problems, "\n".join(problems) + "\n--- mypy ---\n" + out


@pytest.mark.parametrize("module", ["concurrent.futures", "taskdemo"])
def test_wait_functions_types_match_typeshed(tmp_path, module):
    """taskdemo.as_completed/wait type-check as typeshed's do."""
    found, numbers, out = _run_mypy(tmp_path, WAIT_LINES, module)
    problems = _mismatches(WAIT_LINES, found, numbers)
    assert not problems, "\n".join(problems) + "\n--- mypy ---\n" + out


def test_taskdemo_module_types(tmp_path):
    found, numbers, out = _run_mypy(tmp_path, TASKDEMO_LINES, "")
    problems = _mismatches(TASKDEMO_LINES, found, numbers)
    assert not problems, "\n".join(problems) + "\n--- mypy ---\n" + out


def test_stub_files_ship():
    assert (ROOT / "taskdemo" / "py.typed").is_file()
    assert (ROOT / "taskdemo" / "_taskdemo.pyi").is_file()


def test_package_type_checks_clean(tmp_path):
    """mypy finds no error in the package itself against its own stubs.
    matplotlib is an optional extra (and left out of the ASan run), so its
    absence is not an error."""
    config = tmp_path / "mypy.ini"
    config.write_text("[mypy]\n[mypy-matplotlib.*]\nignore_missing_imports = True\n")
    env = dict(os.environ, MYPYPATH=str(ROOT))
    proc = subprocess.run(
        [
            sys.executable, "-m", "mypy", "--config-file", str(config),
            "--no-incremental", "--show-error-codes",
            "--cache-dir", str(tmp_path / "cache"), "-p", "taskdemo",
        ],
        capture_output=True, text=True, cwd=str(tmp_path), env=env, timeout=120,
    )
    assert proc.returncode == 0, proc.stdout + proc.stderr
