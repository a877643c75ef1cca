"""Runs CPython's own thread-pool tests against taskdemo.

    python tests/cpython_suite.py [--timeout SECONDS] [--modes M,M,...]

CPython's ``test.test_concurrent_futures`` thread-pool classes (the package
of 3.12+ or the single file of older versions) and asyncio's executor tests
(``test_asyncio.test_threads`` and the ``*executor*`` tests of
``test_base_events`` and ``test_events``) are run by the interpreter that
runs this script, from its installed ``test`` package, in three modes:

- ``baseline``: unmodified, the stdlib's pool;
- ``pool``: ``concurrent.futures.ThreadPoolExecutor`` is taskdemo's, set
  before any test module is imported (asyncio's default executor too);
- ``pool+wait``: also ``concurrent.futures.as_completed`` and ``wait``.

Every test that passes on the baseline must pass in the other modes,
except the entries of ``cpython_allowlist.txt`` beside this file (each
with its reason; README's "differences from the stdlib" states them too).
Each mode runs in a child process and each test under a timeout: a test
that hangs is dumped (every thread's stack, by faulthandler) and counted as
a failure, and the child is started again after it.  Exits 0 when nothing
regressed, 1 otherwise; the last line is the count, "N passed, N failed".
"""
import argparse
import fnmatch
import json
import os
import pathlib
import subprocess
import sys
import tempfile
import time

HERE = pathlib.Path(__file__).resolve().parent
ALLOWLIST = HERE / "cpython_allowlist.txt"
MODES = ("baseline", "pool", "pool+wait")

# The modules of test.test_concurrent_futures that test thread pools (the
# others test Future alone or process/interpreter pools).
CF_MODULES = ("test_as_completed", "test_init", "test_shutdown",
              "test_thread_pool", "test_wait")
ASYNCIO_WHOLE = ("test.test_asyncio.test_threads",)
ASYNCIO_FILTERED = ("test.test_asyncio.test_base_events",
                    "test.test_asyncio.test_events")


# ---- the child: one mode, tests in order, progress in a file -------------

def swap_in(mode):
    """Puts taskdemo's pool (and functions) where the tests will look."""
    if mode == "baseline":
        return
    import concurrent.futures as cf

    import taskdemo
    cf.ThreadPoolExecutor = taskdemo.ThreadPoolExecutor
    if mode == "pool+wait":
        cf.as_completed = taskdemo.as_completed
        cf.wait = taskdemo.wait


def is_thread_pool_case(test):
    name = type(test).__name__
    return name.startswith("ThreadPool")


def collect():
    """The tests to run, in a stable order."""
    import importlib
    import unittest

    loader = unittest.TestLoader()
    tests = []

    def flatten(suite):
        for item in suite:
            if isinstance(item, unittest.TestSuite):
                yield from flatten(item)
            else:
                yield item

    package = importlib.import_module("test.test_concurrent_futures")
    if hasattr(package, "__path__"):
        names = [f"test.test_concurrent_futures.{m}" for m in CF_MODULES]
    else:
        names = ["test.test_concurrent_futures"]
    for name in names:
        try:
            module = importlib.import_module(name)
        except ModuleNotFoundError:
            continue
        suite = loader.loadTestsFromModule(module)
        tests += [t for t in flatten(suite) if is_thread_pool_case(t)]
    for name in ASYNCIO_WHOLE:
        module = importlib.import_module(name)
        tests += list(flatten(loader.loadTestsFromModule(module)))
    for name in ASYNCIO_FILTERED:
        module = importlib.import_module(name)
        for t in flatten(loader.loadTestsFromModule(module)):
            method = t.id().rsplit(".", 1)[-1]
            if "executor" in method or "to_thread" in method:
                tests.append(t)
    return tests


def child(mode, progress, skip, timeout):
    import faulthandler
    import unittest

    swap_in(mode)
    done = set(skip)
    tests = [t for t in collect() if t.id() not in done]
    out = open(progress, "a", buffering=1)

    class Result(unittest.TestResult):
        def startTest(self, test):
            super().startTest(test)
            out.write(json.dumps(["start", test.id()]) + "\n")
            # A hang dumps every thread's stack and ends this process; the
            # parent counts the test as failed and starts a new child.
            faulthandler.dump_traceback_later(timeout, exit=True)
            self._status = "pass"
            self._detail = ""

        def _set(self, status, detail=""):
            self._status, self._detail = status, detail

        def addError(self, test, err):
            super().addError(test, err)
            self._set("error", self._exc_info_to_string(err, test))

        def addFailure(self, test, err):
            super().addFailure(test, err)
            self._set("fail", self._exc_info_to_string(err, test))

        def addSkip(self, test, reason):
            super().addSkip(test, reason)
            self._set("skip", reason)

        def addExpectedFailure(self, test, err):
            super().addExpectedFailure(test, err)
            self._set("expected-failure")

        def addUnexpectedSuccess(self, test):
            super().addUnexpectedSuccess(test)
            self._set("fail", "unexpected success")

        def addSubTest(self, test, subtest, err):
            super().addSubTest(test, subtest, err)
            if err is not None:
                self._set("fail", self._exc_info_to_string(err, test))

        def stopTest(self, test):
            faulthandler.cancel_dump_traceback_later()
            out.write(json.dumps([self._status, test.id(), self._detail])
                      + "\n")
            super().stopTest(test)

    result = Result()
    unittest.TestSuite(tests).run(result)
    # Class and module fixtures that fail are reported outside any test.
    for holder, detail in result.errors:
        if not hasattr(holder, "_testMethodName"):
            out.write(json.dumps(["error", str(holder), detail]) + "\n")
    out.write(json.dumps(["exit", "<exit>"]) + "\n")
    out.close()
    # Interpreter exit joins the pools the tests left behind; bound it too.
    faulthandler.dump_traceback_later(timeout, exit=True)


# ---- the parent: modes, restarts after hangs, the comparison -------------

def run_mode(mode, timeout, log):
    """{test id: (status, detail)} for one mode."""
    results = {}
    with tempfile.TemporaryDirectory() as tmp:
        progress = pathlib.Path(tmp) / "progress.jsonl"
        skipfile = pathlib.Path(tmp) / "skip.json"
        while True:
            skipfile.write_text(json.dumps(sorted(results)))
            progress.write_text("")
            cmd = [sys.executable, "-X", "faulthandler", __file__,
                   "--child", mode, "--progress", str(progress),
                   "--skip", str(skipfile), "--timeout", str(timeout)]
            proc = subprocess.run(cmd, stdout=log, stderr=subprocess.PIPE,
                                  stdin=subprocess.DEVNULL, cwd=tempfile.gettempdir())
            started = None
            for line in progress.read_text().splitlines():
                entry = json.loads(line)
                if entry[0] == "start":
                    started = entry[1]
                elif entry[0] == "exit":
                    started = None if proc.returncode == 0 else "<exit>"
                else:
                    results[entry[1]] = (entry[0], entry[2])
                    started = None
            if started == "<exit>":
                results[f"<{mode}: interpreter exit>"] = (
                    "hang", f"rc {proc.returncode} at exit:\n"
                    + proc.stderr.decode(errors="replace")[-20000:])
                return results
            if started is None:
                if proc.returncode != 0:
                    results[f"<{mode} run>"] = (
                        "error", f"exit {proc.returncode}\n"
                        + proc.stderr.decode(errors="replace")[-4000:])
                return results
            # The child died inside a test: a hang (faulthandler's dump) or
            # a crash.  Count it, show the stacks, go on after it.
            stacks = proc.stderr.decode(errors="replace")[-20000:]
            results[started] = ("hang", f"rc {proc.returncode} after "
                                f"{timeout} s at most:\n{stacks}")


def read_allowlist():
    """[(pattern, reason)] from cpython_allowlist.txt."""
    entries = []
    for line in ALLOWLIST.read_text().splitlines():
        line = line.strip()
        if not line or line.startswith("#"):
            continue
        pattern, _, reason = line.partition(" # ")
        if not reason.strip():
            raise SystemExit(f"{ALLOWLIST.name}: no reason given: {line!r}")
        entries.append((pattern.strip(), reason.strip()))
    return entries


def allowed(test_id, mode, entries):
    for pattern, reason in entries:
        scope, sep, test_pattern = pattern.partition(" ")
        if not sep:
            scope, test_pattern = "*", pattern
        if fnmatch.fnmatchcase(mode, scope) and \
                fnmatch.fnmatchcase(test_id, test_pattern):
            return reason
    return None


def main():
    parser = argparse.ArgumentParser(description=__doc__.split("\n\n")[0])
    parser.add_argument("--modes", default=",".join(MODES))
    parser.add_argument("--timeout", type=float, default=120.0,
                        help="seconds a single test may take")
    parser.add_argument("--child")
    parser.add_argument("--progress")
    parser.add_argument("--skip")
    args = parser.parse_args()
    if args.child:
        skip = json.loads(pathlib.Path(args.skip).read_text())
        child(args.child, args.progress, skip, args.timeout)
        return 0

    modes = args.modes.split(",")
    if modes[0] != "baseline":
        modes.insert(0, "baseline")
    entries = read_allowlist()
    print(f"CPython {sys.version.split()[0]}: CPython's thread-pool and "
          f"asyncio executor tests, modes {', '.join(modes)}", flush=True)
    by_mode = {}
    with tempfile.TemporaryFile() as log:
        for mode in modes:
            t0 = time.monotonic()
            by_mode[mode] = run_mode(mode, args.timeout, log)
            counts = {}
            for status, _ in by_mode[mode].values():
                counts[status] = counts.get(status, 0) + 1
            summary = ", ".join(f"{n} {s}" for s, n in sorted(counts.items()))
            print(f"  {mode}: {len(by_mode[mode])} tests ({summary}) in "
                  f"{time.monotonic() - t0:.0f} s", flush=True)

    base = by_mode["baseline"]
    passed_base = {t for t, (s, _) in base.items() if s == "pass"}
    if not passed_base:
        print("the baseline passed no test: nothing to compare")
        return 1
    passed = failed = 0
    used = set()
    for mode in modes[1:]:
        for test_id in sorted(passed_base):
            status, detail = by_mode[mode].get(test_id, ("missing", ""))
            if status == "pass":
                passed += 1
                continue
            reason = allowed(test_id, mode, entries)
            if reason is not None:
                used.add(reason)
                print(f"  allowed [{mode}] {test_id}: {status}: {reason}")
                passed += 1
                continue
            failed += 1
            print(f"\nFAILED [{mode}] {test_id}: {status}\n{detail}")
        for test_id, (status, detail) in sorted(by_mode[mode].items()):
            if test_id not in base or (test_id.startswith("<")):
                if status != "pass":
                    failed += 1
                    print(f"\nFAILED [{mode}] {test_id}: {status}\n{detail}")
    for pattern, reason in entries:
        if reason not in used:
            print(f"  (allow-list entry not needed on this version: "
                  f"{pattern})")
    print(f"cpython-suite: {passed} passed, {failed} failed")
    return 1 if failed else 0


if __name__ == "__main__":
    sys.exit(main())
