"""The documents that cite tests, files and commands stay true to the tree.

docs/reliability.md names the test behind every scenario it reports, and
the commands that reproduce it.  These tests fail when a scenario test is
added without a row, when a row names a test or a file that no longer
exists, or when a make target it gives is gone, so the page cannot drift
silently from the suite.
"""

from __future__ import annotations

import ast
import re
from pathlib import Path
from typing import Set

import pytest

ROOT = Path(__file__).resolve().parents[1]
RELIABILITY = ROOT / "docs" / "reliability.md"

# The suites whose every test is a scenario of docs/reliability.md.
SCENARIO_SUITES = ("test_hardening.py", "test_model.py")


def _test_functions(path: Path) -> Set[str]:
    tree = ast.parse(path.read_text(encoding="utf-8"))
    names = {node.name for node in ast.walk(tree)
             if isinstance(node, (ast.FunctionDef, ast.AsyncFunctionDef))
             and node.name.startswith("test_")}
    # Hypothesis state machines become tests through `TestCase` classes.
    names |= {target.id for node in ast.walk(tree)
              if isinstance(node, ast.Assign)
              for target in node.targets
              if isinstance(target, ast.Name) and target.id.startswith("Test")}
    return names


def _all_test_names() -> Set[str]:
    names: Set[str] = set()
    for path in (ROOT / "tests").glob("test_*.py"):
        names |= _test_functions(path)
    return names


@pytest.fixture(scope="module")
def reliability() -> str:
    return RELIABILITY.read_text(encoding="utf-8")


@pytest.mark.parametrize("suite", SCENARIO_SUITES)
def test_every_scenario_test_has_a_row(reliability, suite):
    missing = sorted(name for name in _test_functions(ROOT / "tests" / suite)
                     if name.startswith("test_") and name not in reliability)
    assert not missing, (
        f"docs/reliability.md does not mention these tests of {suite}: "
        f"{missing}; add a row with the result and the command")


def test_every_test_named_exists(reliability):
    known = _all_test_names()
    named = set(re.findall(r"\b(test_[a-z0-9_]+)\b(?!\.py)", reliability))
    unknown = sorted(name for name in named if name not in known)
    assert not unknown, f"docs/reliability.md names missing tests: {unknown}"


def test_every_file_named_exists(reliability):
    paths = set(re.findall(
        r"`((?:tests|csrc|docs|bench|taskdemo)/[\w./-]+|test_\w+\.py)",
        reliability))
    missing = []
    for path in paths:
        candidates = [ROOT / path, ROOT / "tests" / path]
        if not any(p.exists() for p in candidates):
            missing.append(path)
    # The page says on purpose that this one does not exist.
    missing = [p for p in missing if p != "csrc/tests/tsan.supp"]
    assert not missing, f"docs/reliability.md names missing files: {missing}"


def test_every_make_target_named_exists(reliability):
    top = (ROOT / "Makefile").read_text(encoding="utf-8")
    fuzz = (ROOT / "csrc" / "fuzz" / "Makefile").read_text(encoding="utf-8")

    def has_target(makefile: str, target: str) -> bool:
        return re.search(rf"^{re.escape(target)}\s*:", makefile,
                         re.MULTILINE) is not None

    unknown = []
    for command in re.findall(r"make (?:-C (\S+) )?([a-z][a-z -]*)",
                              reliability):
        directory, targets = command
        makefile = fuzz if directory == "csrc/fuzz" else top
        for target in targets.split():
            if "=" in target or target.startswith("-"):
                continue
            if not has_target(makefile, target):
                unknown.append(f"{directory or '.'}:{target}")
    assert not unknown, f"docs/reliability.md gives unknown make targets: {unknown}"


def test_cpython_allowlist_reasons_are_in_the_readme():
    """Each test of CPython's that taskdemo fails on purpose
    (tests/cpython_allowlist.txt) is a difference README.md states."""
    import importlib.util

    spec = importlib.util.spec_from_file_location(
        "cpython_suite", ROOT / "tests" / "cpython_suite.py")
    suite = importlib.util.module_from_spec(spec)
    spec.loader.exec_module(suite)
    readme = " ".join((ROOT / "README.md").read_text(encoding="utf-8").split())
    start = readme.index("## Differences from the stdlib")
    section = readme[start:readme.index("## ", start + 3)]
    missing = [f"{pattern}: {reason}"
               for pattern, reason in suite.read_allowlist()
               if " ".join(reason.split()) not in section]
    assert not missing, ("allow-listed CPython tests whose reason README's "
                         f"'Differences from the stdlib' does not state: "
                         f"{missing}")
    # The scopes the runner understands.
    assert suite.allowed("test.a.B.test_c", "pool",
                         [("pool test.a.B.*", "why")]) == "why"
    assert suite.allowed("test.a.B.test_c", "pool+wait",
                         [("pool test.a.B.*", "why")]) is None
    assert suite.allowed("test.a.B.test_c", "pool+wait",
                         [("test.a.*", "any")]) == "any"
