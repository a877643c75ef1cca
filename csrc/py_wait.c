/*
 * py_wait.c - taskdemo.as_completed() and taskdemo.wait(): drop-ins for
 * the functions of the same names in concurrent.futures (_base.py of
 * CPython 3.9 to 3.13), doing the work per future in C for taskdemo's
 * futures.
 *
 * Design.  A waiter (the _Waiter type) holds the futures of one call in an
 * array, with a flag byte each, duplicates collapsed as set(fs) collapses
 * them.  It watches a taskdemo future through the future's C slot
 * (py_future_watch): completion calls py_waiter_notify() with the future's
 * index, and no Python code runs.  Anything else in fs (another
 * concurrent.futures.Future, any object with the stdlib's `_condition`,
 * `_state` and `_waiters`, or a taskdemo future whose slot another waiter
 * holds) gets the waiter appended to its `_waiters` under its
 * `_condition`, as the stdlib does; the waiter's add_result/add_exception/
 * add_cancelled methods then find its index in a dict, which also
 * collapses duplicates among them as set(fs) does.  When fs holds no
 * taskdemo future, the stdlib's own function does the call.
 *
 * Threads.  Everything but the sleep runs with the GIL held, and a
 * waiter's fields change only under the GIL.  The waiting thread releases
 * the GIL and sleeps on the waiter's atomic word in the module's td_waitset
 * (py_wait_word: 50 ms slices, so Ctrl-C raises KeyboardInterrupt).  A
 * notification bumps the word when the waiting thread has something to do
 * (each completion for as_completed and FIRST_COMPLETED, an exception for
 * FIRST_EXCEPTION, the last pending future otherwise) and wakes it, or
 * leaves the wake to the worker, which pays it after giving up the GIL
 * the woken thread wants (owed_wake, see py_future_run).  The word is only
 * a hint: the waiting thread re-checks its condition after every wake.
 *
 * Invariant.  A taskdemo future's slot names a waiter only while that
 * waiter's array holds a reference to the future, so the slot is a
 * borrowed pointer: the waiter empties the slot before it drops the future
 * (on yield, at cleanup, in tp_clear and dealloc).
 *
 * Kept from the stdlib: as_completed() reads fs and starts its clock at
 * the first next(); futures done by then come first, the others in the
 * order they finish, each no longer referenced once yielded; the deadline
 * is checked between batches of completions, and TimeoutError says "%d (of
 * %d) futures unfinished"; a CANCELLED future counts as pending until its
 * waiters are notified (CANCELLED_AND_NOTIFIED, by the pool's worker or
 * set_running_or_notify_cancel).  wait() returns early where the stdlib
 * does, checks return_when and the timeout only when it has to wait, and
 * returns DoneAndNotDoneFutures.  Different: the waiter is removed on
 * every exit, also after Ctrl-C (the stdlib's wait() leaves it installed);
 * no future's condition stays acquired when an item fails (the stdlib's
 * would, see watch_all); a NaN timeout is a ValueError and one of years
 * means no limit, as for taskdemo's Future.result().
 */
#include "py_module.h"

#include <stdint.h>

#include "td_clock.h"

enum {
    KIND_AS_COMPLETED,
    KIND_FIRST_COMPLETED,
    KIND_FIRST_EXCEPTION,
    KIND_ALL_COMPLETED,
    KIND_INVALID,    /* wait(): an unknown return_when, an error if used */
};

/* A future's flags in its waiter. */
enum {
    FL_SLOT = 1,     /* watched through its C slot */
    FL_LIST = 2,     /* watched through its _waiters list */
    FL_BY_LIST = 4,  /* is or will be watched through _waiters */
    FL_DONE = 8,     /* done when watched, or notified since */
    FL_INITIAL = 16, /* done when watched */
    FL_RAISED = 32,  /* a slot future that finished with an exception */
};

typedef struct {
    PyObject_HEAD
    py_state *st;
    int kind;                    /* KIND_*: when to bump the word */
    _Atomic int word;            /* bumped when the waiting thread should look */
    _Atomic unsigned nwaiters;   /* threads sleeping on word */
    Py_ssize_t n;                /* futures in futs */
    Py_ssize_t cap;              /* room in futs, flags and queue */
    PyObject **futs;             /* owned; NULL once let go of */
    unsigned char *flags;        /* FL_* per future */
    int32_t *queue;              /* as_completed: indices of done futures */
    Py_ssize_t head, tail;       /* queue[head..tail) not yet yielded */
    Py_ssize_t pending;          /* watched while not done, not notified */
    Py_ssize_t ninitial;         /* done when watched */
    Py_ssize_t nnotified;        /* notified since watched */
    Py_ssize_t nraised;          /* of them, with an exception */
    PyObject *index;             /* dict: FL_BY_LIST future -> index */
} waiter_object;

/* Raises saved again (a new reference, stolen); NULL is a no-op. */
static void restore_exception(PyObject *saved)
{
    if (saved == NULL) {
        return;
    }
#if PY_VERSION_HEX >= 0x030C0000
    PyErr_SetRaisedException(saved);
#else
    PyErr_Restore(Py_NewRef((PyObject *)Py_TYPE(saved)), saved,
                  PyException_GetTraceback(saved));
#endif
}

/* ---- the waiter ------------------------------------------------------ */

static waiter_object *waiter_new(py_state *st, int kind, Py_ssize_t cap)
{
    PyTypeObject *tp = st->wait.WaiterType;
    waiter_object *w = (waiter_object *)tp->tp_alloc(tp, 0);
    if (w == NULL) {
        return NULL;
    }
    w->st = st;
    w->kind = kind;
    w->cap = cap;
    w->futs = PyMem_Calloc(cap ? cap : 1, sizeof(PyObject *));
    w->flags = PyMem_Calloc(cap ? cap : 1, 1);
    if (kind == KIND_AS_COMPLETED) {
        w->queue = PyMem_Calloc(cap ? cap : 1, sizeof(int32_t));
    }
    if (w->futs == NULL || w->flags == NULL ||
        (kind == KIND_AS_COMPLETED && w->queue == NULL)) {
        Py_DECREF(w);
        PyErr_NoMemory();
        return NULL;
    }
    return w;
}

void py_waiter_notify(PyObject *self, int32_t index, int how,
                      int *owed_wake)
{
    waiter_object *w = (waiter_object *)self;
    if (w->flags == NULL || index < 0 || index >= w->n ||
        (w->flags[index] & FL_DONE)) {
        return;   /* told twice, or after cleanup: nothing to do */
    }
    w->flags[index] |= FL_DONE;
    w->pending--;
    w->nnotified++;
    if (how == PY_NOTIFY_EXCEPTION) {
        w->nraised++;
    }
    int look;
    switch (w->kind) {
    case KIND_AS_COMPLETED:
        w->queue[w->tail++] = index;   /* each index once: tail <= n */
        look = 1;
        break;
    case KIND_FIRST_COMPLETED:
        look = 1;
        break;
    case KIND_FIRST_EXCEPTION:
        look = how == PY_NOTIFY_EXCEPTION || w->pending == 0;
        break;
    default:
        look = w->pending == 0;
        break;
    }
    if (!look) {
        return;
    }
    /* The word is stored before nwaiters is read (td_waitset.h). */
    atomic_fetch_add(&w->word, 1);
    if (owed_wake == NULL) {
        td_waitset_wake(&w->st->waitset, &w->nwaiters);
    } else if (atomic_load(&w->nwaiters) > 0) {
        *owed_wake = 1;
    }
}

/* add_result(future) and its siblings: the stdlib's waiter protocol, for
 * the futures watched through their _waiters list. */
static PyObject *waiter_add(PyObject *self, PyObject *future, int how)
{
    waiter_object *w = (waiter_object *)self;
    if (w->index == NULL) {
        Py_RETURN_NONE;   /* not watching (any more) */
    }
    /* The lookup may run a key's __eq__ (Python code): the waiter may be
     * cleaned up meanwhile, which py_waiter_notify tolerates, but the
     * dict must outlive the lookup and the value it returns, so it is
     * held here rather than borrowed from the waiter. */
    PyObject *dict = Py_NewRef(w->index);
    PyObject *i = PyDict_GetItemWithError(dict, future);
    Py_ssize_t index = i != NULL ? PyLong_AsSsize_t(i) : -1;
    Py_DECREF(dict);
    if (index == -1 && PyErr_Occurred()) {
        return NULL;
    }
    if (i != NULL) {   /* else not one of ours: ignore, as a set would */
        py_waiter_notify(self, (int32_t)index, how, NULL);
    }
    Py_RETURN_NONE;
}

static PyObject *waiter_add_result(PyObject *self, PyObject *future)
{
    return waiter_add(self, future, PY_NOTIFY_RESULT);
}

static PyObject *waiter_add_exception(PyObject *self, PyObject *future)
{
    return waiter_add(self, future, PY_NOTIFY_EXCEPTION);
}

static PyObject *waiter_add_cancelled(PyObject *self, PyObject *future)
{
    return waiter_add(self, future, PY_NOTIFY_CANCELLED);
}

/* Counts a future that was done when watched.  Never twice, nor after a
 * notification (Python code may notify at odd times): each index enters
 * the queue once, so tail <= n. */
static void watched_done(waiter_object *w, Py_ssize_t i)
{
    if (w->flags[i] & FL_DONE) {
        return;
    }
    w->flags[i] |= FL_DONE | FL_INITIAL;
    w->ninitial++;
    if (w->kind == KIND_AS_COMPLETED) {
        w->queue[w->tail++] = (int32_t)i;
    }
}

static int is_done_state(py_state *st, PyObject *state)
{
    int r = PyObject_RichCompareBool(
        state, st->state_names[PY_CANCELLED_AND_NOTIFIED], Py_EQ);
    if (r == 0) {
        r = PyObject_RichCompareBool(state, st->state_names[PY_FINISHED],
                                     Py_EQ);
    }
    return r;
}

/* Watches futs[i] the stdlib's way: under f._condition, reads f._state
 * and appends the waiter to f._waiters. */
static int watch_by_list(waiter_object *w, Py_ssize_t i)
{
    py_state *st = w->st;
    PyObject *f = Py_NewRef(w->futs[i]);
    PyObject *cond = PyObject_GetAttr(f, st->wait.str_condition);
    PyObject *r = cond ? PyObject_CallMethodNoArgs(cond, st->str_acquire)
                       : NULL;
    if (r == NULL) {
        Py_XDECREF(cond);
        Py_DECREF(f);
        return -1;
    }
    Py_DECREF(r);
    int rc = -1;
    PyObject *state = PyObject_GetAttr(f, st->wait.str_state);
    int done = state ? is_done_state(st, state) : -1;
    Py_XDECREF(state);
    if (done >= 0) {
        /* Counted before the append: with the condition held, the future
         * cannot notify us before we are done here, but the append is
         * Python code that may (a _waiters that tells a new waiter about a
         * future already done), and a done future counted after it would
         * then be queued twice. */
        if (done) {
            watched_done(w, i);
        } else {
            w->pending++;
        }
        PyObject *waiters = PyObject_GetAttr(f, st->wait.str_waiters);
        r = waiters ? PyObject_CallMethodOneArg(waiters, st->wait.str_append,
                                                (PyObject *)w)
                    : NULL;
        Py_XDECREF(waiters);
        if (r != NULL) {
            Py_DECREF(r);
            w->flags[i] |= FL_LIST;
            rc = 0;
        } else if (!done) {
            w->pending--;
        }
    }
    PyObject *saved = td_fetch_exception();
    r = PyObject_CallMethodNoArgs(cond, st->str_release);
    if (r == NULL) {
        rc = -1;
        Py_XDECREF(saved);   /* the release error wins, as in Python */
    } else {
        Py_DECREF(r);
        restore_exception(saved);
    }
    Py_DECREF(cond);
    Py_DECREF(f);
    return rc;
}

/*
 * Watches every future of seq (a list or tuple), duplicates collapsed.
 * Taskdemo futures first, through their slots, with no Python code run
 * for them; then the others through their _waiters.  Returns 0, or -1
 * with an exception set (set(fs)'s TypeError for an unhashable item, the
 * AttributeError of an item without `_condition`...); what was watched
 * stays watched, for unwatch_all to undo.  Unlike the stdlib, which
 * acquires every future's condition and leaves them acquired when one of
 * them fails, this holds one condition at a time: taskdemo futures share
 * theirs, so a leaked acquire would block every worker.
 */
static int watch_all(waiter_object *w, PyObject *seq)
{
    py_state *st = w->st;
    /* seq may be the caller's list, which Python code can change: an
     * item's __hash__ or __eq__, or a finaliser run by a GC an allocation
     * starts (also in waiter_new, after the arrays were sized).  So the
     * size is re-read, and the arrays' capacity bounds the loop. */
    for (Py_ssize_t j = 0;
         j < PySequence_Fast_GET_SIZE(seq) && w->n < w->cap; j++) {
        PyObject *f = PySequence_Fast_GET_ITEM(seq, j);
        Py_ssize_t i = w->n;
        if (Py_TYPE(f) == st->FutureType) {
            /* Already watched through _waiters: its slot was taken then,
             * and Python code run since (an item's __hash__ or __eq__, a
             * finaliser run by the GC) may have freed it, closing that
             * slot's waiter.  Taking it now would watch it twice. */
            int dup = w->index != NULL ? PyDict_Contains(w->index, f) : 0;
            if (dup != 0) {
                if (dup < 0) {
                    return -1;
                }
                continue;
            }
            int state;
            int rc = py_future_watch(f, (PyObject *)w, (int32_t)i, &state);
            if (rc == 0) {
                continue;   /* a duplicate: the slot is already ours */
            }
            if (rc > 0) {
                w->futs[i] = Py_NewRef(f);
                w->flags[i] = FL_SLOT;
                w->n++;
                if (state >= PY_CANCELLED_AND_NOTIFIED) {
                    if (py_future_raised(f)) {
                        w->flags[i] |= FL_RAISED;
                    }
                    watched_done(w, i);
                } else {
                    w->pending++;
                }
                continue;
            }
            /* Another waiter holds the slot: the _waiters protocol. */
        }
        Py_INCREF(f);
        PyObject *key = PyLong_FromSsize_t(i);
        if (key == NULL ||
            (w->index == NULL && (w->index = PyDict_New()) == NULL)) {
            Py_XDECREF(key);
            Py_DECREF(f);
            return -1;
        }
        PyObject *got = PyDict_SetDefault(w->index, f, key);
        Py_DECREF(key);
        if (got != key) {
            Py_DECREF(f);
            if (got == NULL) {
                return -1;
            }
            continue;   /* a duplicate */
        }
        w->futs[i] = f;
        w->flags[i] = FL_BY_LIST;
        w->n++;
    }
    for (Py_ssize_t i = 0; i < w->n; i++) {
        if ((w->flags[i] & FL_BY_LIST) && watch_by_list(w, i) < 0) {
            return -1;
        }
    }
    return 0;
}

/* Stops watching futs[i]: empties its slot, or removes the waiter from its
 * _waiters under its _condition, as the stdlib does.  0 or -1. */
static int unwatch(waiter_object *w, Py_ssize_t i)
{
    py_state *st = w->st;
    PyObject *f = w->futs[i];
    unsigned char fl = w->flags[i];
    if (fl & FL_SLOT) {
        py_future_unwatch(f, (PyObject *)w);
        w->flags[i] &= (unsigned char)~FL_SLOT;
        return 0;
    }
    if (!(fl & FL_LIST)) {
        return 0;
    }
    w->flags[i] &= (unsigned char)~FL_LIST;
    Py_INCREF(f);
    PyObject *cond = PyObject_GetAttr(f, st->wait.str_condition);
    PyObject *r = cond ? PyObject_CallMethodNoArgs(cond, st->str_acquire)
                       : NULL;
    if (r == NULL) {
        Py_XDECREF(cond);
        Py_DECREF(f);
        return -1;
    }
    Py_DECREF(r);
    PyObject *waiters = PyObject_GetAttr(f, st->wait.str_waiters);
    r = waiters ? PyObject_CallMethodOneArg(waiters, st->wait.str_remove,
                                            (PyObject *)w)
                : NULL;
    Py_XDECREF(waiters);
    int rc = r != NULL ? 0 : -1;
    Py_XDECREF(r);
    PyObject *saved = td_fetch_exception();
    r = PyObject_CallMethodNoArgs(cond, st->str_release);
    if (r == NULL) {
        rc = -1;
        Py_XDECREF(saved);
    } else {
        Py_DECREF(r);
        restore_exception(saved);
    }
    Py_DECREF(cond);
    Py_DECREF(f);
    return rc;
}

/* Stops watching every future (with lists_only, only those watched
 * through _waiters), going on after an error.  An exception set on entry
 * stays set unless cleanup raises, which then replaces it with the old one
 * as __context__, as an exception in a finally block does.  Returns 0, or
 * -1 if cleanup raised. */
static int unwatch_some(waiter_object *w, int lists_only)
{
    PyObject *saved = td_fetch_exception();
    PyObject *first = NULL;
    for (Py_ssize_t i = 0; i < w->n; i++) {
        if (w->futs[i] == NULL ||
            (lists_only && !(w->flags[i] & FL_LIST))) {
            continue;
        }
        if (unwatch(w, i) < 0) {
            PyObject *exc = td_fetch_exception();
            if (first == NULL) {
                first = exc;
            } else {
                PyErr_WriteUnraisable((PyObject *)w);
                Py_XDECREF(exc);
            }
        }
    }
    if (first == NULL) {
        restore_exception(saved);
        return 0;
    }
    if (saved != NULL) {
        PyException_SetContext(first, saved);   /* steals saved */
    }
    restore_exception(first);
    return -1;
}

static int unwatch_all(waiter_object *w)
{
    return unwatch_some(w, 0);
}

/* Lets go of everything: empties the slots (C only, so it may run from
 * tp_clear), then drops the futures.  The arrays are detached first: a
 * future's deallocation can run code that reaches this waiter. */
static void waiter_drop_all(waiter_object *w)
{
    PyObject **futs = w->futs;
    unsigned char *flags = w->flags;
    Py_ssize_t n = w->n;
    w->futs = NULL;
    w->flags = NULL;
    w->n = 0;
    PyMem_Free(w->queue);
    w->queue = NULL;
    w->head = w->tail = 0;
    for (Py_ssize_t i = 0; futs != NULL && i < n; i++) {
        if (futs[i] != NULL && (flags[i] & FL_SLOT)) {
            py_future_unwatch(futs[i], (PyObject *)w);
        }
    }
    for (Py_ssize_t i = 0; futs != NULL && i < n; i++) {
        Py_XDECREF(futs[i]);
    }
    PyMem_Free(futs);
    PyMem_Free(flags);
    Py_CLEAR(w->index);
}

static int waiter_traverse(PyObject *self, visitproc visit, void *arg)
{
    waiter_object *w = (waiter_object *)self;
    Py_VISIT(Py_TYPE(self));
    for (Py_ssize_t i = 0; w->futs != NULL && i < w->n; i++) {
        Py_VISIT(w->futs[i]);
    }
    Py_VISIT(w->index);
    return 0;
}

static int waiter_clear(PyObject *self)
{
    waiter_drop_all((waiter_object *)self);
    return 0;
}

static void waiter_dealloc(PyObject *self)
{
    PyTypeObject *tp = Py_TYPE(self);
    PyObject_GC_UnTrack(self);
    waiter_drop_all((waiter_object *)self);
    tp->tp_free(self);
    Py_DECREF(tp);
}

static PyMethodDef waiter_methods[] = {
    {"add_result", waiter_add_result, METH_O, NULL},
    {"add_exception", waiter_add_exception, METH_O, NULL},
    {"add_cancelled", waiter_add_cancelled, METH_O, NULL},
    {NULL, NULL, 0, NULL},
};

static PyType_Slot waiter_slots[] = {
    {Py_tp_doc, "The waiter of one taskdemo.as_completed() or wait() call, "
                "as found in a future's _waiters."},
    {Py_tp_dealloc, waiter_dealloc},
    {Py_tp_traverse, waiter_traverse},
    {Py_tp_clear, waiter_clear},
    {Py_tp_methods, waiter_methods},
    {0, NULL},
};

static PyType_Spec waiter_spec = {
    .name = "taskdemo._taskdemo._Waiter",
    .basicsize = sizeof(waiter_object),
    .flags = Py_TPFLAGS_DEFAULT | Py_TPFLAGS_HAVE_GC
             | TD_TPFLAGS_IMMUTABLE | TD_TPFLAGS_NO_INSTANCES,
    .slots = waiter_slots,
};

/* ---- what both functions share --------------------------------------- */

/* fs as a list or tuple we may index: the argument itself when it is
 * exactly one, else list(fs) (with the error set(fs) would raise). */
static PyObject *as_sequence(PyObject *fs)
{
    if (PyList_CheckExact(fs) || PyTuple_CheckExact(fs)) {
        return Py_NewRef(fs);
    }
    return PySequence_List(fs);
}

/*
 * 1 if the C path takes this call: fs holds a taskdemo future.  Taskdemo
 * futures hash and compare by identity, so the slots collapse their
 * duplicates as set(fs) would, and the dict does for the rest; only an
 * item that claims to equal a taskdemo future (same hash, __eq__ true)
 * would be told apart where set(fs) would merge them.  0 sends the call to
 * the stdlib's function.
 */
static int c_path_fits(py_state *st, PyObject *seq)
{
    Py_ssize_t n = PySequence_Fast_GET_SIZE(seq);
    PyTypeObject *tp = st->FutureType;
    if (n > INT32_MAX) {
        return 0;   /* indices are int32_t in the future's slot */
    }
    if (tp->tp_hash != PyBaseObject_Type.tp_hash ||
        tp->tp_richcompare != PyBaseObject_Type.tp_richcompare) {
        return 0;   /* somebody gave concurrent.futures.Future an __eq__ */
    }
    PyObject **items = PySequence_Fast_ITEMS(seq);
    for (Py_ssize_t i = 0; i < n; i++) {
        if (Py_TYPE(items[i]) == st->FutureType) {
            return 1;
        }
    }
    return 0;
}

/* ---- as_completed ---------------------------------------------------- */

enum { AC_NEW, AC_STARTED, AC_DONE };

typedef struct {
    PyObject_HEAD
    py_state *st;
    PyObject *fs;          /* the arguments, until the first next() */
    PyObject *timeout;
    PyObject *delegate;    /* the stdlib's generator, if it does the work */
    waiter_object *w;      /* from the first next() to the end */
    int64_t deadline;      /* td_clock ns; -1: no limit */
    Py_ssize_t total;      /* distinct futures */
    Py_ssize_t remaining;  /* not yet yielded */
    Py_ssize_t batch_end;  /* queue[head..batch_end): the batch to yield */
    int state;             /* AC_* */
    int busy;              /* in next() or close() */
} ac_object;

/* Ends the iteration and stops watching.  Keeps a raised exception, but a
 * cleanup error replaces it (see unwatch_all).  0, or -1 if cleanup
 * raised. */
static int ac_finish(ac_object *it)
{
    it->state = AC_DONE;
    Py_CLEAR(it->fs);
    Py_CLEAR(it->timeout);
    Py_CLEAR(it->delegate);
    waiter_object *w = it->w;
    if (w == NULL) {
        return 0;
    }
    it->w = NULL;
    int rc = unwatch_all(w);
    waiter_drop_all(w);
    Py_DECREF(w);
    return rc;
}

/* The first next(): what the stdlib's generator does before its first
 * yield, in its order. */
static int ac_start(ac_object *it)
{
    py_state *st = it->st;
    it->deadline = -1;
    if (it->timeout != Py_None) {
        /* end_time = timeout + time.monotonic(), for the same errors. */
        PyObject *now = PyObject_CallNoArgs(st->wait.monotonic);
        PyObject *end = now ? PyNumber_Add(it->timeout, now) : NULL;
        Py_XDECREF(now);
        if (end == NULL) {
            return -1;
        }
        Py_DECREF(end);
        int64_t ns;
        if (py_timeout_ns(it->timeout, &ns) < 0) {
            return -1;
        }
        if (ns >= 0) {
            it->deadline = (int64_t)td_clock_now_ns() + ns;
        }
    }
    PyObject *seq = as_sequence(it->fs);
    if (seq == NULL) {
        return -1;
    }
    Py_CLEAR(it->fs);
    if (!c_path_fits(st, seq)) {
        it->delegate = PyObject_CallFunctionObjArgs(
            st->wait.std_as_completed, seq, it->timeout, NULL);
        Py_DECREF(seq);
        return it->delegate != NULL ? 0 : -1;
    }
    it->w = waiter_new(st, KIND_AS_COMPLETED, PySequence_Fast_GET_SIZE(seq));
    int rc = it->w != NULL ? watch_all(it->w, seq) : -1;
    Py_DECREF(seq);
    if (rc < 0) {
        return -1;
    }
    it->total = it->remaining = it->w->n;
    it->batch_end = it->w->tail;   /* the futures done already */
    return 0;
}

/* One step of the C path: the next future, or NULL with an exception set
 * or, at the end, none. */
static PyObject *ac_step(ac_object *it)
{
    py_state *st = it->st;
    waiter_object *w = it->w;
    for (;;) {
        if (w->head < it->batch_end) {
            Py_ssize_t i = w->queue[w->head++];
            if (unwatch(w, i) < 0) {
                return NULL;
            }
            PyObject *f = w->futs[i];
            w->futs[i] = NULL;   /* the caller's now: no stale reference */
            it->remaining--;
            if ((w->flags[i] & FL_BY_LIST) && w->index != NULL &&
                PyDict_DelItem(w->index, f) < 0) {
                Py_DECREF(f);
                return NULL;
            }
            return f;
        }
        if (it->remaining == 0) {
            return NULL;
        }
        /* The batch is yielded.  As the stdlib: check the deadline, then
         * take what finished meanwhile, or wait for it. */
        int64_t left = -1;
        if (it->deadline >= 0) {
            left = it->deadline - (int64_t)td_clock_now_ns();
            if (left < 0) {
                PyErr_Format(st->TimeoutError,
                             "%zd (of %zd) futures unfinished",
                             it->remaining, it->total);
                return NULL;
            }
        }
        if (w->tail == it->batch_end) {
            int seen = atomic_load(&w->word);
            if (py_wait_word(st, &w->word, seen, &w->nwaiters, left) < 0) {
                return NULL;
            }
        }
        it->batch_end = w->tail;
    }
}

static PyObject *ac_next(PyObject *self)
{
    ac_object *it = (ac_object *)self;
    if (it->busy) {
        PyErr_SetString(PyExc_ValueError,
                        "as_completed() iterator already executing");
        return NULL;
    }
    if (it->state == AC_DONE) {
        return NULL;
    }
    if (it->st == NULL) {   /* made by calling the type (3.9 allows it) */
        PyErr_SetString(PyExc_TypeError, "use taskdemo.as_completed()");
        return NULL;
    }
    it->busy = 1;
    PyObject *r = NULL;
    if (it->state == AC_NEW) {
        it->state = AC_STARTED;
        if (ac_start(it) < 0) {
            goto finish;
        }
    }
    r = it->delegate != NULL ? PyIter_Next(it->delegate) : ac_step(it);
    if (r != NULL) {
        it->busy = 0;
        return r;
    }
finish:
    /* The end, an error, a timeout or Ctrl-C: as the stdlib's finally
     * block, stop watching the futures not yielded. */
    ac_finish(it);
    it->busy = 0;
    return NULL;
}

static PyObject *ac_close(PyObject *self, PyObject *unused)
{
    (void)unused;
    ac_object *it = (ac_object *)self;
    if (it->busy) {
        PyErr_SetString(PyExc_ValueError,
                        "as_completed() iterator already executing");
        return NULL;
    }
    if (it->state == AC_DONE) {
        Py_RETURN_NONE;
    }
    it->busy = 1;
    int rc = 0;
    if (it->delegate != NULL) {
        PyObject *r = PyObject_CallMethod(it->delegate, "close", NULL);
        rc = r != NULL ? 0 : -1;
        Py_XDECREF(r);
    }
    if (ac_finish(it) < 0) {
        rc = -1;
    }
    it->busy = 0;
    if (rc < 0) {
        return NULL;
    }
    Py_RETURN_NONE;
}

/* Dropped before the end: stop watching, as the generator's finally. */
static void ac_finalize(PyObject *self)
{
    ac_object *it = (ac_object *)self;
    if (it->state == AC_DONE) {
        return;
    }
    PyObject *saved = td_fetch_exception();
    if (ac_finish(it) < 0) {
        PyErr_WriteUnraisable(self);
    }
    restore_exception(saved);
}

static int ac_traverse(PyObject *self, visitproc visit, void *arg)
{
    ac_object *it = (ac_object *)self;
    Py_VISIT(Py_TYPE(self));
    Py_VISIT(it->fs);
    Py_VISIT(it->timeout);
    Py_VISIT(it->delegate);
    Py_VISIT((PyObject *)it->w);
    return 0;
}

static int ac_clear(PyObject *self)
{
    ac_object *it = (ac_object *)self;
    Py_CLEAR(it->fs);
    Py_CLEAR(it->timeout);
    Py_CLEAR(it->delegate);
    if (it->w != NULL) {
        waiter_drop_all(it->w);   /* the slots must not outlive it */
        Py_CLEAR(it->w);
    }
    return 0;
}

static void ac_dealloc(PyObject *self)
{
    if (PyObject_CallFinalizerFromDealloc(self) < 0) {
        return;   /* resurrected */
    }
    PyTypeObject *tp = Py_TYPE(self);
    PyObject_GC_UnTrack(self);
    ac_clear(self);
    tp->tp_free(self);
    Py_DECREF(tp);
}

static PyMethodDef ac_methods[] = {
    {"close", ac_close, METH_NOARGS,
     "close()\n--\n\nStop iterating and stop watching the futures not yet "
     "yielded (what closing the stdlib's generator does)."},
    {NULL, NULL, 0, NULL},
};

static PyType_Slot ac_slots[] = {
    {Py_tp_doc, "The iterator taskdemo.as_completed() returns."},
    {Py_tp_dealloc, ac_dealloc},
    {Py_tp_finalize, ac_finalize},
    {Py_tp_traverse, ac_traverse},
    {Py_tp_clear, ac_clear},
    {Py_tp_iter, PyObject_SelfIter},
    {Py_tp_iternext, ac_next},
    {Py_tp_methods, ac_methods},
    {0, NULL},
};

static PyType_Spec ac_spec = {
    .name = "taskdemo._taskdemo._AsCompleted",
    .basicsize = sizeof(ac_object),
    .flags = Py_TPFLAGS_DEFAULT | Py_TPFLAGS_HAVE_GC
             | TD_TPFLAGS_IMMUTABLE | TD_TPFLAGS_NO_INSTANCES,
    .slots = ac_slots,
};

PyDoc_STRVAR(as_completed_doc,
"as_completed(fs, timeout=None)\n--\n\n"
"Return an iterator over the futures in fs that yields each once it is\n"
"done (finished or cancelled).\n\n"
"concurrent.futures.as_completed() with taskdemo's futures watched in C.\n"
"Duplicates in fs are yielded once; futures already done come first.\n"
"fs is read and the timeout (seconds, int or float; None: no limit)\n"
"starts at the first next(); TimeoutError ('N (of M) futures\n"
"unfinished') if the futures are not all done in time.  Any\n"
"concurrent.futures.Future may take part.  Releases the GIL while\n"
"waiting and answers Ctrl-C with KeyboardInterrupt.  Stops watching the\n"
"futures at the end, on an error, on close() and when dropped.");

static PyObject *td_as_completed(PyObject *module, PyObject *args,
                                 PyObject *kwargs)
{
    static char *kwlist[] = {"fs", "timeout", NULL};
    PyObject *fs, *timeout = Py_None;
    if (!PyArg_ParseTupleAndKeywords(args, kwargs, "O|O:as_completed",
                                     kwlist, &fs, &timeout)) {
        return NULL;
    }
    py_state *st = PyModule_GetState(module);
    PyTypeObject *tp = st->wait.AsCompletedType;
    ac_object *it = (ac_object *)tp->tp_alloc(tp, 0);
    if (it == NULL) {
        return NULL;
    }
    it->st = st;
    it->fs = Py_NewRef(fs);
    it->timeout = Py_NewRef(timeout);
    it->state = AC_NEW;
    return (PyObject *)it;
}

/* ---- wait ------------------------------------------------------------ */

/* The return_when category: KIND_*, KIND_INVALID, or -1 on error.  The
 * stdlib compares with ==, and takes its private _AS_COMPLETED too. */
static int wait_kind(py_state *st, PyObject *return_when)
{
    static const int kinds[4] = {KIND_AS_COMPLETED, KIND_FIRST_COMPLETED,
                                 KIND_FIRST_EXCEPTION, KIND_ALL_COMPLETED};
    for (int k = 0; k < 4; k++) {
        int eq = PyObject_RichCompareBool(return_when,
                                          st->wait.return_when[k], Py_EQ);
        if (eq != 0) {
            return eq < 0 ? -1 : kinds[k];
        }
    }
    return KIND_INVALID;
}

/* The stdlib's any(f for f in done if not f.cancelled() and
 * f.exception() is not None) over the futures done when watched. */
static int any_raised(waiter_object *w)
{
    py_state *st = w->st;
    for (Py_ssize_t i = 0; i < w->n; i++) {
        if (!(w->flags[i] & FL_INITIAL)) {
            continue;
        }
        if (w->flags[i] & FL_SLOT) {
            if (w->flags[i] & FL_RAISED) {
                return 1;
            }
            continue;
        }
        PyObject *f = Py_NewRef(w->futs[i]);
        PyObject *r = PyObject_CallMethodNoArgs(f, st->wait.str_cancelled);
        int hit = r ? PyObject_Not(r) : -1;
        Py_XDECREF(r);
        if (hit > 0) {
            r = PyObject_CallMethodNoArgs(f, st->wait.str_exception);
            hit = r ? r != Py_None : -1;
            Py_XDECREF(r);
        }
        if (hit > 0) {
            hit = PyObject_IsTrue(f);
        }
        Py_DECREF(f);
        if (hit != 0) {
            return hit;
        }
    }
    return 0;
}

/* Whether wait() may return: the stdlib's waiter event. */
static int wait_satisfied(waiter_object *w)
{
    switch (w->kind) {
    case KIND_FIRST_COMPLETED:
        return w->nnotified > 0;
    case KIND_FIRST_EXCEPTION:
        return w->nraised > 0 || w->pending == 0;
    default:
        return w->pending == 0;
    }
}

/* DoneAndNotDoneFutures(done, not_done) from the flags, once the futures
 * watched through _waiters are no longer watched.  Each slot is emptied
 * and the future dropped in the same pass, which touches each of them
 * once instead of three times (they are scattered over megabytes). */
static PyObject *wait_result(waiter_object *w)
{
    PyObject *done = PySet_New(NULL);
    PyObject *not_done = PySet_New(NULL);
    PyObject *r = NULL;
    if (done == NULL || not_done == NULL) {
        goto out;
    }
    for (Py_ssize_t i = 0; i < w->n; i++) {
        PyObject *f = w->futs[i];
        if (PySet_Add((w->flags[i] & FL_DONE) ? done : not_done, f) < 0) {
            goto out;
        }
        unwatch(w, i);   /* a slot at most here: no error */
        w->futs[i] = NULL;
        Py_DECREF(f);
    }
    r = PyObject_CallFunctionObjArgs(w->st->wait.DoneAndNotDoneFutures,
                                     done, not_done, NULL);
out:
    Py_XDECREF(done);
    Py_XDECREF(not_done);
    return r;
}

/* Waits with the GIL released until wait_satisfied or the timeout. */
static int wait_loop(waiter_object *w, int64_t timeout_ns)
{
    int64_t deadline = timeout_ns < 0
        ? -1 : (int64_t)td_clock_now_ns() + timeout_ns;
    while (!wait_satisfied(w)) {
        int64_t left = -1;
        if (deadline >= 0) {
            left = deadline - (int64_t)td_clock_now_ns();
            if (left <= 0) {
                break;
            }
        }
        int seen = atomic_load(&w->word);
        if (py_wait_word(w->st, &w->word, seen, &w->nwaiters, left) < 0) {
            return -1;
        }
    }
    return 0;
}

PyDoc_STRVAR(wait_doc,
"wait(fs, timeout=None, return_when=ALL_COMPLETED)\n--\n\n"
"Wait for the futures in fs; return DoneAndNotDoneFutures(done, not_done).\n\n"
"concurrent.futures.wait() with taskdemo's futures watched in C: the two\n"
"sets hold the futures done (finished or cancelled) and not done when it\n"
"returns, duplicates collapsed.  return_when is FIRST_COMPLETED,\n"
"FIRST_EXCEPTION or ALL_COMPLETED; timeout is in seconds (int or float;\n"
"None: no limit), after which it returns what is done.  Any\n"
"concurrent.futures.Future may take part.  Releases the GIL while\n"
"waiting and answers Ctrl-C with KeyboardInterrupt (the futures are no\n"
"longer watched then).");

static PyObject *td_wait(PyObject *module, PyObject *args, PyObject *kwargs)
{
    static char *kwlist[] = {"fs", "timeout", "return_when", NULL};
    py_state *st = PyModule_GetState(module);
    PyObject *fs, *timeout = Py_None;
    PyObject *return_when = st->wait.return_when[KIND_ALL_COMPLETED];
    if (!PyArg_ParseTupleAndKeywords(args, kwargs, "O|OO:wait", kwlist, &fs,
                                     &timeout, &return_when)) {
        return NULL;
    }
    PyObject *seq = as_sequence(fs);
    if (seq == NULL) {
        return NULL;
    }
    if (!c_path_fits(st, seq)) {
        PyObject *r = PyObject_CallFunctionObjArgs(
            st->wait.std_wait, seq, timeout, return_when, NULL);
        Py_DECREF(seq);
        return r;
    }
    /* Comparing return_when runs its __eq__ unless it is a str (the
     * constants are), and that Python code could change a list fs before
     * it is read: take a copy then, as the stdlib reads set(fs) first. */
    if (PyList_CheckExact(seq) && !PyUnicode_CheckExact(return_when)) {
        Py_SETREF(seq, PySequence_List(seq));
        if (seq == NULL) {
            return NULL;
        }
    }
    int kind = wait_kind(st, return_when);
    if (kind < 0) {
        Py_DECREF(seq);
        return NULL;
    }
    /* The stdlib's _AS_COMPLETED waiter wakes on any completion, like
     * FIRST_COMPLETED's, but without its early return. */
    int wkind = kind == KIND_INVALID ? KIND_ALL_COMPLETED
              : kind == KIND_AS_COMPLETED ? KIND_FIRST_COMPLETED : kind;
    waiter_object *w = waiter_new(st, wkind, PySequence_Fast_GET_SIZE(seq));
    if (w == NULL) {
        Py_DECREF(seq);
        return NULL;
    }
    int rc = watch_all(w, seq);
    Py_DECREF(seq);
    if (rc < 0) {
        goto fail;
    }
    /* The stdlib's early returns, in its order. */
    if (kind == KIND_FIRST_COMPLETED && w->ninitial > 0) {
        goto done;
    }
    if (kind == KIND_FIRST_EXCEPTION && w->ninitial > 0) {
        int any = any_raised(w);
        if (any < 0) {
            goto fail;
        }
        if (any) {
            goto done;
        }
    }
    if (w->ninitial == w->n) {
        goto done;
    }
    if (kind == KIND_INVALID) {
        PyErr_Format(PyExc_ValueError, "Invalid return condition: %R",
                     return_when);
        goto fail;
    }
    /* As Event.wait(timeout): the timeout is looked at only if it must
     * wait. */
    if (!wait_satisfied(w)) {
        int64_t ns;
        if (py_timeout_ns(timeout, &ns) < 0 || wait_loop(w, ns) < 0) {
            goto fail;
        }
    }
done:
    if (unwatch_some(w, 1) < 0) {
        goto fail;
    }
    PyObject *r = wait_result(w);
    if (r == NULL) {
        goto fail;
    }
    waiter_drop_all(w);
    Py_DECREF(w);
    return r;
fail:
    unwatch_all(w);   /* keeps the exception, or replaces it as finally */
    waiter_drop_all(w);
    Py_DECREF(w);
    return NULL;
}

/* ---- module setup ---------------------------------------------------- */

static PyMethodDef wait_functions[] = {
    {"as_completed", (PyCFunction)(void (*)(void))td_as_completed,
     METH_VARARGS | METH_KEYWORDS, as_completed_doc},
    {"wait", (PyCFunction)(void (*)(void))td_wait,
     METH_VARARGS | METH_KEYWORDS, wait_doc},
    {NULL, NULL, 0, NULL},
};

int py_wait_init(PyObject *module, py_state *st)
{
    py_wait_state *ws = &st->wait;
    static const char *const return_when[4] = {
        "_AS_COMPLETED", "FIRST_COMPLETED", "FIRST_EXCEPTION",
        "ALL_COMPLETED",
    };
    for (int k = 0; k < 4; k++) {
        ws->return_when[k] = py_import_attr("concurrent.futures._base",
                                     return_when[k]);
        if (ws->return_when[k] == NULL ||
            (k > 0 && PyModule_AddObjectRef(module, return_when[k],
                                            ws->return_when[k]) < 0)) {
            return -1;
        }
    }
    if ((ws->std_as_completed = py_import_attr("concurrent.futures._base",
                                        "as_completed")) == NULL ||
        (ws->std_wait = py_import_attr("concurrent.futures._base", "wait")) ==
            NULL ||
        (ws->DoneAndNotDoneFutures = py_import_attr(
             "concurrent.futures._base", "DoneAndNotDoneFutures")) == NULL ||
        (ws->monotonic = py_import_attr("time", "monotonic")) == NULL ||
        (ws->str_condition = PyUnicode_InternFromString("_condition")) ==
            NULL ||
        (ws->str_state = PyUnicode_InternFromString("_state")) == NULL ||
        (ws->str_waiters = PyUnicode_InternFromString("_waiters")) == NULL ||
        (ws->str_append = PyUnicode_InternFromString("append")) == NULL ||
        (ws->str_remove = PyUnicode_InternFromString("remove")) == NULL ||
        (ws->str_cancelled = PyUnicode_InternFromString("cancelled")) ==
            NULL ||
        (ws->str_exception = PyUnicode_InternFromString("exception")) ==
            NULL) {
        return -1;
    }
    ws->WaiterType = (PyTypeObject *)PyType_FromModuleAndSpec(
        module, &waiter_spec, NULL);
    if (ws->WaiterType == NULL) {
        return -1;
    }
    ws->AsCompletedType = (PyTypeObject *)PyType_FromModuleAndSpec(
        module, &ac_spec, NULL);
    if (ws->AsCompletedType == NULL) {
        return -1;
    }
    return PyModule_AddFunctions(module, wait_functions);
}

int py_wait_traverse(py_wait_state *ws, visitproc visit, void *arg)
{
    Py_VISIT(ws->WaiterType);
    Py_VISIT(ws->AsCompletedType);
    Py_VISIT(ws->std_as_completed);
    Py_VISIT(ws->std_wait);
    Py_VISIT(ws->DoneAndNotDoneFutures);
    for (int k = 0; k < 4; k++) {
        Py_VISIT(ws->return_when[k]);
    }
    Py_VISIT(ws->monotonic);
    return 0;
}

void py_wait_clear(py_wait_state *ws)
{
    Py_CLEAR(ws->WaiterType);
    Py_CLEAR(ws->AsCompletedType);
    Py_CLEAR(ws->std_as_completed);
    Py_CLEAR(ws->std_wait);
    Py_CLEAR(ws->DoneAndNotDoneFutures);
    for (int k = 0; k < 4; k++) {
        Py_CLEAR(ws->return_when[k]);
    }
    Py_CLEAR(ws->monotonic);
    Py_CLEAR(ws->str_condition);
    Py_CLEAR(ws->str_state);
    Py_CLEAR(ws->str_waiters);
    Py_CLEAR(ws->str_append);
    Py_CLEAR(ws->str_remove);
    Py_CLEAR(ws->str_cancelled);
    Py_CLEAR(ws->str_exception);
}
