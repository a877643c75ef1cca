"""Bad input gets a clear Python exception (TypeError / ValueError, or
OverflowError for numbers too large to represent) and leaves everything
usable: no crash, no hang, no half-built pool.

Where taskdemo is deliberately stricter than the stdlib, the test branches
on ``impl.is_taskdemo``; the stdlib side documents what the oracle does.
"""

from __future__ import annotations

import concurrent.futures as cf
import threading

import pytest

WAIT = 10.0
NAN = float("nan")


# -- ThreadPoolExecutor(...) -----------------------------------------------------


@pytest.mark.parametrize("bad", ["2", [2], object(), 1j])
def test_max_workers_wrong_type(impl, bad):
    with pytest.raises(TypeError):
        impl.Executor(max_workers=bad)


def test_max_workers_absurd(impl, pools):
    """max_workers=10**6 starts no thread up front and only as many as the
    work needs."""
    before = threading.active_count()
    pool = pools.new(max_workers=10**6)
    assert threading.active_count() == before
    fs = [pool.submit(pow, i, 2) for i in range(5)]
    assert [f.result(timeout=WAIT) for f in fs] == [0, 1, 4, 9, 16]
    assert threading.active_count() - before <= 5
    pools.assert_usable(pool)


def test_max_workers_beyond_c_range(impl, pools):
    """2**70 workers: either rejected clearly or accepted and harmless; a C
    integer that silently wraps around would give some other size."""
    try:
        pool = pools.new(max_workers=2**70)
    except (ValueError, OverflowError):
        return
    before = threading.active_count()
    pools.assert_usable(pool)
    assert threading.active_count() - before <= 3


def test_thread_name_prefix_not_str(impl, pools):
    """taskdemo: TypeError.  The stdlib formats any object into the name."""
    if impl.is_taskdemo:
        for bad in (123, b"bytes", None, ["x"]):
            with pytest.raises(TypeError):
                impl.Executor(max_workers=1, thread_name_prefix=bad)
    else:
        pool = pools.new(max_workers=1, thread_name_prefix=123)
        name = pool.submit(lambda: threading.current_thread().name).result(timeout=WAIT)
        assert name == "123_0"


@pytest.mark.parametrize(
    "prefix",
    ["p" * 200, "ünï", "with space"],
    ids=["long", "non-ascii", "space"],
)
def test_thread_name_prefix_is_kept_whole_in_python(impl, pools, prefix):
    """The OS may cut a thread name to 15 bytes; threading's name is whole."""
    pool = pools.new(max_workers=1, thread_name_prefix=prefix)
    name = pool.submit(lambda: threading.current_thread().name).result(timeout=WAIT)
    assert name == prefix + "_0"


def test_thread_name_prefix_with_nul(impl, pools):
    """A NUL cannot reach a C string: reject it with ValueError, or keep the
    whole prefix as the Python name; never silently cut it."""
    try:
        pool = pools.new(max_workers=1, thread_name_prefix="a\0b")
    except ValueError:
        assert impl.is_taskdemo
        return
    name = pool.submit(lambda: threading.current_thread().name).result(timeout=WAIT)
    assert name == "a\0b_0"


@pytest.mark.parametrize("bad", [5, [1], None, "ab"])
def test_initargs_not_a_tuple(impl, pools, bad):
    """taskdemo: TypeError at construction.  The stdlib unpacks whatever it
    gets in the worker: a list or string works, anything else breaks the
    pool when the first worker starts."""
    init = lambda *a: None  # noqa: E731
    if impl.is_taskdemo:
        with pytest.raises(TypeError):
            impl.Executor(max_workers=1, initializer=init, initargs=bad)
        return
    pool = pools.new(max_workers=1, initializer=init, initargs=bad)
    f = pool.submit(abs, -1)
    if isinstance(bad, (list, str)):
        assert f.result(timeout=WAIT) == 1
    else:
        assert isinstance(f.exception(timeout=WAIT), cf.BrokenExecutor)


def test_unknown_keyword(impl):
    with pytest.raises(TypeError):
        impl.Executor(max_workers=1, workers=2)


# -- submit / map / shutdown -----------------------------------------------------------


@pytest.mark.parametrize("fn", [42, None, "abs"])
def test_map_non_callable(impl, pools, fn):
    """Both raise TypeError: taskdemo from map() itself, the stdlib while
    iterating (each call fails in the worker)."""
    pool = pools.new(max_workers=1)
    with pytest.raises(TypeError):
        list(pool.map(fn, [1, 2]))
    pools.assert_usable(pool)


def test_map_non_iterable(impl, pools):
    pool = pools.new(max_workers=1)
    with pytest.raises(TypeError):
        pool.map(abs, 5)
    pools.assert_usable(pool)


def test_map_timeout_wrong_type(impl, pools):
    pool = pools.new(max_workers=1)
    with pytest.raises(TypeError):
        list(pool.map(abs, [1], timeout="1"))
    pools.assert_usable(pool)


@pytest.mark.parametrize("chunksize", [0, -1, "2", 1.5])
def test_map_chunksize_bad(impl, pools, chunksize):
    """The stdlib ignores chunksize for threads; taskdemo checks it.  Either
    way: correct results or a clear error, and the pool still works."""
    pool = pools.new(max_workers=1)
    try:
        results = list(pool.map(abs, [-1, -2], chunksize=chunksize))
    except (TypeError, ValueError):
        assert impl.is_taskdemo
    else:
        assert results == [1, 2]
    pools.assert_usable(pool)


def test_shutdown_unknown_keyword(impl, pools):
    pool = pools.new(max_workers=1)
    with pytest.raises(TypeError):
        pool.shutdown(cancel=True)
    pools.assert_usable(pool)


# -- Future.result / exception / add_done_callback ------------------------------------


@pytest.fixture
def pending(pools):
    """A future that stays pending until the test sets its gate."""
    pool = pools.new(max_workers=1)
    gate = pools.event()
    f = pool.submit(gate.wait, WAIT)
    return pool, f, gate


@pytest.mark.parametrize("method", ["result", "exception"])
@pytest.mark.parametrize("bad", ["x", [1], object()])
def test_timeout_wrong_type(impl, pools, pending, method, bad):
    pool, f, gate = pending
    with pytest.raises(TypeError):
        getattr(f, method)(timeout=bad)
    gate.set()
    assert f.result(timeout=WAIT) is True
    pools.assert_usable(pool)


@pytest.mark.parametrize("method", ["result", "exception"])
def test_timeout_nan(impl, pools, pending, method):
    """NaN: ValueError (taskdemo) or the stdlib's "do not wait"; never an
    endless wait."""
    pool, f, gate = pending
    with pytest.raises((ValueError, cf.TimeoutError)):
        pools.returns_within(lambda: getattr(f, method)(timeout=NAN))
    gate.set()
    assert f.result(timeout=WAIT) is True


def test_huge_timeout_still_waits(impl, pools):
    """A timeout of 10**9 s (the stdlib's limit is about 292 years) waits
    for the result: a C conversion that overflowed into the past would raise
    TimeoutError at once instead.  Larger ones: the result, or a clear
    OverflowError/ValueError as the stdlib gives."""
    pool = pools.new(max_workers=1)
    delay = threading.Event()
    f = pool.submit(lambda: delay.wait(0.1) or "late")  # still pending below
    assert pools.returns_within(lambda: f.result(timeout=1e9)) == "late"
    g = pool.submit(lambda: delay.wait(0.1) or "later")
    try:
        assert pools.returns_within(lambda: g.result(timeout=1e15)) == "later"
    except (OverflowError, ValueError):
        pass
    assert g.result(timeout=WAIT) == "later"


def test_add_done_callback_not_callable(impl, pools, pending):
    """taskdemo may reject it at once with TypeError; the stdlib accepts it
    and logs the failed call later.  The future and pool are unharmed."""
    pool, f, gate = pending
    try:
        f.add_done_callback(42)
    except TypeError:
        pass
    gate.set()
    assert f.result(timeout=WAIT) is True
    pool.shutdown(wait=True)


# -- module functions ----------------------------------------------------------


@pytest.mark.parametrize("fn_name", ["sleep", "spin"])
@pytest.mark.parametrize(
    "bad, error",
    [
        (-1, ValueError),
        (-0.001, ValueError),
        (NAN, ValueError),
        ("x", TypeError),
        (None, TypeError),
        ([1], TypeError),
        (1j, TypeError),
    ],
    ids=["neg-int", "neg-float", "nan", "str", "none", "list", "complex"],
)
def test_native_bad_seconds(taskdemo, fn_name, bad, error):
    fn = getattr(taskdemo.native, fn_name)
    with pytest.raises(error):
        fn(bad)
    fn(0)  # still fine


@pytest.mark.parametrize("fn_name", ["sleep", "spin"])
def test_native_wrong_arity(taskdemo, fn_name):
    fn = getattr(taskdemo.native, fn_name)
    with pytest.raises(TypeError):
        fn()
    with pytest.raises(TypeError):
        fn(0, 0)


UNREPRESENTABLE = ["1e300", "float('inf')", "2**80"]

# One child tries every (function, duration) pair on its main thread, where
# native calls answer signals: a timer interrupts any call still running
# after 0.5 s, so a wrong implementation costs half a second, not a hang.
UNREPRESENTABLE_SCRIPT = """
import signal, taskdemo

class StillRunning(Exception):
    pass

def on_alarm(signum, frame):
    raise StillRunning

signal.signal(signal.SIGALRM, on_alarm)
for fn in ("sleep", "spin"):
    for text in {values!r}:
        signal.setitimer(signal.ITIMER_REAL, 0.5)
        try:
            getattr(taskdemo.native, fn)(eval(text))
        except (ValueError, OverflowError) as exc:
            outcome = "rejected"
        except StillRunning:
            outcome = "still running after 0.5s"
        else:
            outcome = "returned"
        finally:
            signal.setitimer(signal.ITIMER_REAL, 0)
        print(fn, text, "->", outcome, flush=True)
"""


@pytest.fixture(scope="module")
def unrepresentable_outcomes(run_in_subprocess):
    code = UNREPRESENTABLE_SCRIPT.format(values=UNREPRESENTABLE)
    rc, out, err = run_in_subprocess(code, timeout=20)
    assert rc == 0, f"rc={rc}\n{out}\n{err}"
    outcomes = {}
    for line in out.splitlines():
        call, _, outcome = line.partition(" -> ")
        outcomes[call] = outcome
    return outcomes


@pytest.mark.parametrize("fn_name", ["sleep", "spin"])
@pytest.mark.parametrize("seconds", UNREPRESENTABLE, ids=["1e300", "inf", "2**80"])
def test_native_unrepresentable_seconds(unrepresentable_outcomes, fn_name, seconds):
    """A duration too large for the C clock is rejected (ValueError or
    OverflowError, as time.sleep raises OverflowError), not clamped or
    wrapped to some other duration: on a pool worker, where Ctrl-C cannot
    reach it, a near-endless call would block shutdown and exit forever."""
    assert unrepresentable_outcomes.get(f"{fn_name} {seconds}") == "rejected", (
        unrepresentable_outcomes
    )


def test_thread_count_functions_take_no_arguments(taskdemo):
    with pytest.raises(TypeError):
        taskdemo.thread_count(1)
    with pytest.raises(TypeError):
        taskdemo.additional_thread_count(1)
    assert taskdemo.thread_count() >= 1


def test_stopwatch_extra_argument(taskdemo):
    with pytest.raises(TypeError):
        taskdemo.stopwatch("a", "b")


def test_everything_usable_after_bad_input(taskdemo, capsys):
    """After a burst of rejected calls the module's pieces all still work."""
    for call in (
        lambda: taskdemo.native.sleep(-1),
        lambda: taskdemo.native.spin("x"),
        lambda: taskdemo.ThreadPoolExecutor(max_workers=0),
        lambda: taskdemo.ThreadPoolExecutor(thread_name_prefix=1),
        lambda: taskdemo.ThreadPoolExecutor(initializer=1),
    ):
        with pytest.raises((TypeError, ValueError)):
            call()
    with taskdemo.stopwatch("after") as sw:
        with taskdemo.ThreadPoolExecutor(max_workers=2) as pool:
            results = list(pool.map(taskdemo.native.sleep, [0.01, 0.01], timeout=WAIT))
            assert len(results) == 2
    assert sw.elapsed >= 0.01 - 0.002
    assert "Stopwatch: after: Stopped:" in capsys.readouterr().out
