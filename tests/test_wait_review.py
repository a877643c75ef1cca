"""Regression tests for defects found reviewing taskdemo.as_completed() and
taskdemo.wait() (csrc/py_wait.c, commits 99278de and 5a9524c).

Each test names what broke.  Some need a garbage collection to start
inside the C code, which CPython 3.9 to 3.11 do on allocation (3.12+ defer
it to the eval loop): they run in a child interpreter with the GC threshold
steered, and check that the collection really happened there where it can.
"""

from __future__ import annotations

import concurrent.futures as cf
import sys
import threading

import pytest

import taskdemo

WAIT = 60.0

# CPython 3.9-3.11 collect garbage inside an allocation, so inside C code.
GC_AT_ALLOCATION = sys.version_info < (3, 12)


# -- watch_all: the waiter's arrays, and each future watched once ------------


GROWING_FS_SCRIPT = """
import gc, sys
import taskdemo

which = sys.argv[1]
fs = [taskdemo.Future() for _ in range(2)]
extra = [taskdemo.Future() for _ in range(2000)]
for f in fs + extra:
    f.set_result(1)
armed = [False]
fired = []

class Sentinel:
    # Cyclic garbage: only a collection frees it, and each collection
    # makes the next one.
    def __init__(self):
        self.me = self

    def __del__(self):
        if armed[0]:
            armed[0] = False
            fs.extend(extra)
            fired.append(1)
        Sentinel()

Sentinel()
for trial in range(3000):
    del fs[2:]
    fired.clear()
    if which == "as_completed":
        it = taskdemo.as_completed(fs)
        gc.set_threshold(1)
        armed[0] = True
        out = [next(it)]
        armed[0] = False
        gc.set_threshold(700)
        out += list(it)
    else:
        gc.set_threshold(1)
        armed[0] = True
        r = taskdemo.wait(fs)
        armed[0] = False
        gc.set_threshold(700)
        out = list(r.done) + list(r.not_done)
    assert len(set(map(id, out))) == len(out), "a future came back twice"
    assert all(any(f is g for g in fs) for f in out)
    if fired:
        print("collected inside the call", len(out), flush=True)
        break
else:
    print("never collected inside the call", flush=True)
"""


@pytest.mark.parametrize("which", ["as_completed", "wait"])
def test_fs_growing_during_the_call_stays_in_bounds(run_in_subprocess, which):
    """watch_all() re-read len(fs) and filled the waiter's arrays up to it,
    but the arrays were sized from an earlier len(fs), and fs was the
    caller's own list.  A finalizer run by a collection at the waiter's
    allocation (3.9-3.11) that appended to fs made it write past the
    arrays (heap-buffer-overflow under ASan, a segfault without).  The
    loop now stops at the arrays' capacity."""
    rc, out, err = run_in_subprocess(GROWING_FS_SCRIPT, timeout=WAIT,
                                     args=(which,))
    assert rc == 0, f"rc={rc}\n{out}\n{err[-3000:]}"
    if GC_AT_ALLOCATION:
        assert "collected inside the call" in out, out


SLOT_FREED_SCRIPT = """
import gc, sys
import taskdemo

class Mark:
    fired = False
    def __del__(self):
        Mark.fired = True

hits = dups = 0
for k in range(8):
    gc.collect()
    gc.disable()
    f, g, d = taskdemo.Future(), taskdemo.Future(), taskdemo.Future()
    g.set_result(0)
    d.set_result(0)
    b = taskdemo.as_completed([g, f])
    assert next(b) is g          # b keeps f in its C slot
    cyc = [b, Mark()]
    cyc.append(cyc)              # b is reachable only through a cycle
    del b
    it = taskdemo.as_completed((d, f, f))
    Mark.fired = False
    del cyc
    gc.set_threshold(gc.get_count()[0] + k)
    gc.enable()
    assert next(it) is d         # watches f, which is twice in fs
    gc.set_threshold(700)
    if Mark.fired and len(f._waiters) == 1:
        hits += 1                # b freed f's slot in the middle of it
    f.set_result(1)
    rest = list(it)
    dups += sum(x is f for x in rest) > 1
print("hits", hits, "dups", dups, flush=True)
"""


def test_slot_freed_by_gc_during_watch_does_not_watch_twice(run_in_subprocess):
    """fs = (d, f, f) with f's C slot held by an abandoned iterator b in a
    reference cycle.  The first f went the _waiters way; the allocation of
    the index dict (3.9-3.11) collected b, whose finalizer freed the slot;
    the second f then took the slot, so f was watched twice and
    as_completed() yielded it twice.  A future already in the index is now
    recognised as a duplicate before its slot is tried."""
    rc, out, err = run_in_subprocess(SLOT_FREED_SCRIPT, timeout=WAIT)
    assert rc == 0, f"rc={rc}\n{out}\n{err[-3000:]}"
    hits, dups = (int(x) for x in out.split()[1::2])
    assert dups == 0, out
    if GC_AT_ALLOCATION:
        assert hits >= 1, out


class Duck:
    """What the stdlib's as_completed() and wait() need of a future; all
    Ducks share one hash, so the waiter's index dict compares them with
    __eq__, which runs `hook` once if set."""

    hook = None

    def __init__(self, state="PENDING"):
        self._condition = threading.Condition()
        self._state = state
        self._waiters = []

    def __hash__(self):
        return 1

    def __eq__(self, other):
        hook, Duck.hook = Duck.hook, None
        if hook is not None:
            hook()
        return self is other

    def set_result(self, value):
        with self._condition:
            self._state = "FINISHED"
            for w in list(self._waiters):
                w.add_result(self)


def test_slot_freed_by_an_items_hash_does_not_watch_twice():
    """fs = [f, x, f] with f's C slot held by another iterator b: the
    first f went the _waiters way; x's __hash__ (run by the index dict)
    closes b, freeing the slot; the second f took it, so as_completed()
    yielded f twice.  The stdlib's set(fs) yields it once."""
    counts = {}
    for name, as_completed in (("stdlib", cf.as_completed),
                               ("taskdemo", taskdemo.as_completed)):
        f, g = taskdemo.Future(), taskdemo.Future()
        g.set_result(0)
        b = taskdemo.as_completed([g, f])
        assert next(b) is g           # b holds f's C slot

        class HashCloses(Duck):
            def __hash__(self):
                b.close()
                return 7

        x = HashCloses("FINISHED")
        it = as_completed([f, x, f])
        f.set_result(1)
        out = list(it)
        counts[name] = (sum(o is f for o in out), len(out))
    assert counts["taskdemo"] == counts["stdlib"] == (1, 2)


# -- wait(): fs is read before return_when runs Python code ------------------


def test_fs_is_read_before_return_when_is_compared():
    """wait() indexed the caller's list after comparing return_when (its
    __eq__ is Python code), so whatever __eq__ put into fs was watched,
    past the checks that choose the C path: here a non-future, which made
    wait() raise AttributeError where the stdlib, which took set(fs)
    first, returns."""
    results = {}
    for name, wait in (("stdlib", cf.wait), ("taskdemo", taskdemo.wait)):
        fs = [taskdemo.Future(), cf.Future()]
        for f in fs:
            f.set_result(1)

        class ReturnWhen:
            def __eq__(self, other):
                fs.append(object())
                return NotImplemented

            __hash__ = object.__hash__

        r = wait(fs, return_when=ReturnWhen())
        results[name] = (len(r.done), len(r.not_done))
    assert results["taskdemo"] == results["stdlib"] == (2, 0)


# -- add_result(): the index dict outlives its lookup -------------------------


def test_add_result_holds_the_index_while_looking_up():
    """waiter.add_result(d2) looked d2 up in the waiter's index dict
    through the waiter's own (borrowed) pointer.  The lookup calls d1's
    __eq__ first (same hash), which here closes the iterator: that freed
    the dict in the middle of the lookup (valgrind: invalid reads in
    dictkeys_generic_lookup), and a dict made next took its memory, so the
    lookup returned that dict's value ("an integer is required")."""
    planted = []
    ours = taskdemo.Future()
    ours.set_result(0)
    d1, d2 = Duck(), Duck()
    it = taskdemo.as_completed([ours, d1, d2])
    assert next(it) is ours           # both ducks are watched by _waiters

    def close_and_reuse():
        it.close()
        planted.append({d1: 0, d2: "not an index"})

    Duck.hook = close_and_reuse
    d2.set_result(1)                  # must not raise
    assert planted and d1._waiters == [] and d2._waiters == []


# -- watch_by_list: a notification from inside the append --------------------


EAGER_SCRIPT = """
import concurrent.futures as cf, sys
import taskdemo

class EagerList(list):
    # Tells a new waiter at once about a future that is already done.
    def __init__(self, owner):
        super().__init__()
        self.owner = owner

    def append(self, waiter):
        super().append(waiter)
        if self.owner.done():
            waiter.add_result(self.owner)

class Eager(cf.Future):
    def __init__(self):
        super().__init__()
        self._waiters = EagerList(self)

ours, e = taskdemo.Future(), Eager()
ours.set_result(0)
e.set_result(1)
if sys.argv[1] == "as_completed":
    out = list(taskdemo.as_completed([ours, e]))
    print(len(out), len(set(map(id, out))))
else:
    r = taskdemo.wait([ours, e, taskdemo.Future()], timeout=0)
    print(len(r.done), len(r.not_done))
    r = taskdemo.wait([ours, e])      # all done: returns at once
    print(len(r.done), len(r.not_done))
"""


@pytest.mark.parametrize("which", ["as_completed", "wait"])
def test_waiters_that_notify_on_append(run_in_subprocess, which):
    """A future whose _waiters notifies a waiter appended after it is done
    (Python code the stdlib copes with: it yields such a future once).
    watch_by_list counted the future done only after the append, so the
    notification from inside it queued the future a second time:
    as_completed() wrote past its queue and then yielded the future again
    from an emptied slot (a segfault); now it is counted before the append
    and an index is queued at most once.  wait() is checked too: the
    future must be counted done exactly once, or wait() never returns."""
    rc, out, err = run_in_subprocess(EAGER_SCRIPT, timeout=WAIT,
                                     args=(which,))
    assert rc == 0, f"rc={rc}\n{out}\n{err[-3000:]}"
    expected = "2 2\n" if which == "as_completed" else "2 1\n2 0\n"
    assert out == expected
