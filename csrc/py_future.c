/*
 * py_future.c - taskdemo's future: a C subclass of
 * concurrent.futures.Future.
 *
 * The type is made at module exec with concurrent.futures.Future as its
 * base, so isinstance() holds and the stdlib's as_completed(), wait(),
 * asyncio.wrap_future() and run_in_executor() accept it.  Every public
 * method is overridden in C; the base class's __init__ never runs, so a
 * future builds no threading.Condition and no list unless somebody asks.
 * So is `_get_snapshot()`, private, which CPython 3.15's asyncio calls on
 * every wrap_future()/run_in_executor() completion; the stdlib's takes
 * `_condition` (see future_get_snapshot), so ours is on every version.
 *
 * State lives in an atomic int (PY_PENDING ... PY_FINISHED).  It changes
 * only with the GIL held; it is atomic for the threads that wait on it with
 * the GIL released (py_wait_word on the module's td_waitset).
 *
 * The stdlib's as_completed() and wait() reach into `_condition`,
 * `_waiters` and `_state`.  `_waiters` is made on first access.
 * `_condition` is one threading.Condition (over an RLock) shared by every
 * future, handed out on first access: as_completed() acquires the
 * condition of each future it watches, which for one shared reentrant lock
 * is a cheap count, instead of building a Condition and an RLock per
 * future.  Nobody waits on it but code outside taskdemo (our result()
 * waits on the waitset), so sharing costs nothing but spurious wake-ups
 * for such code, which Condition.wait users must loop over anyway.  Once a
 * future has handed out `_condition`, every state change happens while
 * holding it, as in the stdlib, so a waiter installed under it never
 * misses a completion.  Before that, a change is atomic under the GIL and
 * no such waiter can exist.
 *
 * Object fields are writable T_OBJECT_EX members (named _td_*) so that
 * CPython's inherited subtype_traverse/clear/dealloc manage them: chaining
 * our own tp_dealloc to a Python base class's is not safe.
 *
 * Garbage collection: a pool's future starts untracked by the GC (not its
 * argument tuple and dict: the callee may keep those, as an exception
 * keeps its args, and a cycle through an untracked container would leak;
 * nor the context copy: CPython's context dealloc assumes it is tracked).  With 100,000 futures queued, the collector
 * otherwise spent more time walking them than the pool spent running
 * them.  Untracking is safe from leaks while the call is pending because
 * the call (the only way a pending future can sit in a cycle) is dropped
 * when it runs, fails or is cancelled.  The future is tracked again as soon
 * as it could take part in a lasting cycle: a GC-tracked result or an
 * exception (tracebacks hold frames), a callback, a stdlib waiter, the
 * condition, or an attribute set on it (ensure_tracked).
 *
 * taskdemo.as_completed() and wait() (py_wait.c) skip `_waiters` for our
 * futures: a future has one slot for a C waiter, and completion calls
 * py_waiter_notify() directly (notify_cwaiter), with no Python method
 * call, list or condition.  The slot is a borrowed pointer: the waiter
 * holds a reference to the future for as long as it sits in the slot and
 * empties the slot before dropping it, so the future never keeps the
 * waiter alive and can stay untracked by the GC.  A second waiter on the
 * same future falls back to `_waiters`.
 */
#include "py_module.h"

#include <math.h>
#include <stddef.h>
#include <structmember.h>

#include "td_clock.h"

/* Our fields, placed right after the base class's instance layout, whose
 * size is known only at run time. */
typedef struct future_fields {
    PyObject *fn;          /* the call; cleared once it ran */
    PyObject *args;        /* tuple */
    PyObject *kwargs;      /* dict or NULL */
    PyObject *result;
    PyObject *exception;
    PyObject *callbacks;   /* list; made by add_done_callback */
    PyObject *waiters;     /* list; made on request */
    PyObject *context;     /* the submitter's contextvars, copied */
    _Atomic int state;
    _Atomic unsigned nwaiters;   /* threads in py_wait_word on state */
    int uses_condition;    /* `_condition` was handed out (GIL) */
    int32_t cwaiter_index; /* the future's index in cwaiter (GIL) */
    PyObject *cwaiter;     /* borrowed: a py_wait.c waiter, or NULL (GIL) */
} future_fields;

/* The type is never subclassed (no Py_TPFLAGS_BASETYPE), so the fields
 * always start where its direct base's layout ends. */
static inline future_fields *F(PyObject *self)
{
    return (future_fields *)((char *)self +
                             Py_TYPE(self)->tp_base->tp_basicsize);
}

static inline int is_done(int state)
{
    return state >= PY_CANCELLED;
}

static inline py_state *fstate(PyObject *self)
{
    return PyType_GetModuleState(Py_TYPE(self));
}

/* Puts the future (back) under the GC's watch; see the top comment. */
static inline void ensure_tracked(PyObject *self)
{
    if (!PyObject_GC_IsTracked(self)) {
        PyObject_GC_Track(self);
    }
}

PyObject *py_future_new_task(py_state *st, PyObject *fn, PyObject *args,
                             PyObject *kwargs)
{
    PyTypeObject *tp = st->FutureType;
    PyObject *self = tp->tp_alloc(tp, 0);
    if (self == NULL) {
        return NULL;
    }
    future_fields *f = F(self);
    /* The call runs in a copy of the submitter's context, as
     * asyncio.to_thread does: contextvars set before submit are visible
     * in the task, and Jupyter routes the task's output to the cell that
     * submitted it (ipykernel keeps the cell in a ContextVar). */
    f->context = PyContext_CopyCurrent();
    if (f->context == NULL) {
        Py_DECREF(self);
        return NULL;
    }
    f->fn = Py_NewRef(fn);
    f->args = Py_NewRef(args);
    f->kwargs = Py_XNewRef(kwargs);
    PyObject_GC_UnTrack(self);
    return self;
}

/* ---- the condition, for as_completed() and wait() ------------------- */

/* Acquires the shared condition if this future ever handed it out.
 * Returns a new reference to it (to release later), Py_None when there is
 * none, or NULL with an exception set.  The module's current condition is
 * used, not the one handed out: a fork child replaces it (the old one may
 * be held by a thread the child does not have). */
static PyObject *enter_condition(PyObject *self)
{
    if (!F(self)->uses_condition) {
        return Py_NewRef(Py_None);
    }
    PyObject *cond = fstate(self)->condition;
    Py_INCREF(cond);
    PyObject *r = PyObject_CallMethodNoArgs(cond, fstate(self)->str_acquire);
    if (r == NULL) {
        Py_DECREF(cond);
        return NULL;
    }
    Py_DECREF(r);
    return cond;
}

/* Notifies and releases what enter_condition returned; keeps a pending
 * exception intact. */
static void exit_condition(py_state *st, PyObject *cond, int notify)
{
    if (cond == Py_None) {
        Py_DECREF(cond);
        return;
    }
    PyObject *saved = td_fetch_exception();
    /* notify_all() is Python code; with the lock held, an empty _waiters
     * deque (threading.Condition's own) means nobody is in wait(). */
    if (notify && cond == st->condition &&
        PyObject_Length(st->condition_waiters) == 0) {
        notify = 0;
    }
    PyObject *r = notify ? PyObject_CallMethodNoArgs(cond, st->str_notify_all)
                         : Py_NewRef(Py_None);
    if (r == NULL) {
        PyErr_WriteUnraisable(cond);
    }
    Py_XDECREF(r);
    r = PyObject_CallMethodNoArgs(cond, st->str_release);
    if (r == NULL) {
        PyErr_WriteUnraisable(cond);
    }
    Py_XDECREF(r);
    Py_DECREF(cond);
    if (saved != NULL) {
        PyErr_SetObject((PyObject *)Py_TYPE(saved), saved);
        Py_DECREF(saved);
    }
}

/* Calls waiter.<method>(self) for each waiter the stdlib installed. */
static void notify_waiters(PyObject *self, const char *method)
{
    PyObject *waiters = F(self)->waiters;
    if (waiters == NULL || !PyList_Check(waiters) ||
        PyList_GET_SIZE(waiters) == 0) {
        return;
    }
    Py_INCREF(waiters);
    for (Py_ssize_t i = 0; i < PyList_GET_SIZE(waiters); i++) {
        PyObject *r = PyObject_CallMethod(PyList_GET_ITEM(waiters, i),
                                          method, "O", self);
        if (r == NULL) {
            PyErr_WriteUnraisable(self);
        }
        Py_XDECREF(r);
    }
    Py_DECREF(waiters);
}

/* Tells the C waiter in the slot, if any, that the future is done; it
 * stays in the slot until it lets go of the future (py_future_unwatch).
 * Runs no Python code, so it is atomic with the state change before it. */
static void notify_cwaiter(PyObject *self, int how, int *owed_wake)
{
    future_fields *f = F(self);
    if (f->cwaiter != NULL) {
        py_waiter_notify(f->cwaiter, f->cwaiter_index, how, owed_wake);
    }
}

/* Stores a new state and wakes the C-level waiters, or, when owed_wake is
 * not NULL, sets *owed_wake if there are waiters so the caller can wake
 * them later (see py_future_run). */
static void set_state_owing(PyObject *self, int state, int *owed_wake)
{
    future_fields *f = F(self);
    atomic_store(&f->state, state);
    if (owed_wake == NULL) {
        td_waitset_wake(&fstate(self)->waitset, &f->nwaiters);
    } else if (atomic_load(&f->nwaiters) > 0) {
        *owed_wake = 1;
    }
}

static void set_state(PyObject *self, int state)
{
    set_state_owing(self, state, NULL);
}

/* Logs the raised exception as the stdlib's LOGGER.exception("exception
 * calling callback for %r", future) does inside its except block: the
 * exception is taken off first (logging must not run with one set) and
 * handed over as exc_info.  Returns 0, or -1 if logging itself failed. */
static int log_callback_error(PyObject *self)
{
    PyObject *exc = td_fetch_exception();
    PyObject *log = PyObject_GetAttrString(fstate(self)->logger,
                                           "exception");
    PyObject *args = Py_BuildValue("(sO)",
                                   "exception calling callback for %r",
                                   self);
    PyObject *kwargs = Py_BuildValue("{s:O}", "exc_info",
                                     exc ? exc : Py_None);
    PyObject *r = NULL;
    if (log != NULL && args != NULL && kwargs != NULL) {
        r = PyObject_Call(log, args, kwargs);
    }
    Py_XDECREF(log);
    Py_XDECREF(args);
    Py_XDECREF(kwargs);
    Py_XDECREF(exc);
    if (r == NULL) {
        return -1;
    }
    Py_DECREF(r);
    return 0;
}

/* Runs callbacks exactly once: the list is taken off the future before the
 * first call, so a callback added meanwhile sees the future done and runs
 * at once instead.  Exceptions are logged as the stdlib logs them. */
static void invoke_callbacks(PyObject *self)
{
    future_fields *f = F(self);
    PyObject *cbs = f->callbacks;
    if (cbs == NULL) {
        return;
    }
    f->callbacks = NULL;
    if (!PyList_Check(cbs)) {   /* a replaced _td_callbacks: ignore it */
        Py_DECREF(cbs);
        return;
    }
    for (Py_ssize_t i = 0; i < PyList_GET_SIZE(cbs); i++) {
        PyObject *r = PyObject_CallOneArg(PyList_GET_ITEM(cbs, i), self);
        if (r != NULL) {
            Py_DECREF(r);
            continue;
        }
        /* The stdlib catches only Exception; a KeyboardInterrupt from a
         * callback cannot propagate from here, so report it loudly. */
        if (!PyErr_ExceptionMatches(PyExc_Exception) ||
            log_callback_error(self) < 0) {
            PyErr_WriteUnraisable(self);
        }
    }
    Py_DECREF(cbs);
}

/* ---- state transitions ---------------------------------------------- */

/*
 * Completes the future with result or exc (exactly one non-NULL; both
 * borrowed).  If it is already done: strict raises InvalidStateError and
 * returns -1, otherwise it returns 0 and changes nothing.
 */
static int complete(PyObject *self, PyObject *result, PyObject *exc,
                    int strict, int *owed_wake)
{
    future_fields *f = F(self);
    PyObject *cond = enter_condition(self);
    if (cond == NULL) {
        return -1;
    }
    int state = atomic_load(&f->state);
    if (is_done(state)) {
        exit_condition(fstate(self), cond, 0);
        if (strict) {
            py_state *st = fstate(self);
            PyErr_Format(st->InvalidStateError, "%U: %R",
                         st->state_names[state], self);
            return -1;
        }
        return 0;
    }
    if (result != NULL) {
        Py_XSETREF(f->result, Py_NewRef(result));
    } else {
        Py_XSETREF(f->exception, Py_NewRef(exc));
    }
    /* Whether the result's type is a GC type, not whether the result is
     * tracked right now: an empty dict or a tuple of ints is untracked
     * until something that could close a cycle is put into it. */
    if (f->exception != NULL || PyObject_IS_GC(f->result)) {
        ensure_tracked(self);
    }
    set_state_owing(self, PY_FINISHED, owed_wake);
    notify_cwaiter(self, result != NULL ? PY_NOTIFY_RESULT
                                        : PY_NOTIFY_EXCEPTION, owed_wake);
    notify_waiters(self, result != NULL ? "add_result" : "add_exception");
    exit_condition(fstate(self), cond, 1);
    invoke_callbacks(self);
    return 0;
}

/* The stdlib's set_running_or_notify_cancel: 1 if now running, 0 if it
 * was cancelled (and its waiters are told now), -1 on error. */
static int start_or_notify_cancel(PyObject *self)
{
    future_fields *f = F(self);
    PyObject *cond = enter_condition(self);
    if (cond == NULL) {
        return -1;
    }
    int state = atomic_load(&f->state);
    int rc;
    if (state == PY_CANCELLED) {
        set_state(self, PY_CANCELLED_AND_NOTIFIED);
        notify_cwaiter(self, PY_NOTIFY_CANCELLED, NULL);
        notify_waiters(self, "add_cancelled");
        rc = 0;
    } else if (state == PY_PENDING) {
        atomic_store(&f->state, PY_RUNNING);
        rc = 1;
    } else {
        py_state *st = fstate(self);
        PyObject *r = PyObject_CallMethod(
            st->logger, "critical", "snO",
            "Future %s in unexpected state: %s",
            (Py_ssize_t)(uintptr_t)self, st->state_names[state]);
        Py_XDECREF(r);
        if (r != NULL) {
            PyErr_SetString(PyExc_RuntimeError,
                            "Future in unexpected state");
        }
        rc = -1;
    }
    exit_condition(fstate(self), cond, 0);
    return rc;
}

/* Drops the call once it ran or will never run. */
static void clear_call(future_fields *f)
{
    Py_CLEAR(f->fn);
    Py_CLEAR(f->args);
    Py_CLEAR(f->kwargs);
    Py_CLEAR(f->context);
}

void py_future_fail(PyObject *self, PyObject *exc)
{
    clear_call(F(self));
    if (complete(self, NULL, exc, 0, NULL) < 0) {
        PyErr_WriteUnraisable(self);
    }
}

void py_future_fail_in_fork_child(PyObject *self, PyObject *exc)
{
    future_fields *f = F(self);
    clear_call(f);
    if (is_done(atomic_load(&f->state))) {
        return;
    }
    /* Quietly: the stdlib's as_completed waiters and the condition may
     * belong to threads the child does not have, and callbacks were meant
     * for the parent (an asyncio loop there, say); running them could
     * hang the child.  The state alone lets result() answer at once. */
    Py_XSETREF(f->exception, Py_NewRef(exc));
    Py_CLEAR(f->callbacks);
    Py_CLEAR(f->waiters);
    atomic_store(&f->state, PY_FINISHED);
    /* A C waiter is only memory and the waitset (reset for the child), so
     * telling it is safe, and a thread of the child iterating
     * taskdemo.as_completed() over these futures does not hang. */
    notify_cwaiter(self, PY_NOTIFY_EXCEPTION, NULL);
}

int py_future_watch(PyObject *self, PyObject *waiter, int32_t index,
                    int *state)
{
    future_fields *f = F(self);
    *state = atomic_load(&f->state);
    if (f->cwaiter == waiter) {
        return 0;
    }
    if (f->cwaiter != NULL) {
        return -1;
    }
    f->cwaiter = waiter;
    f->cwaiter_index = index;
    return 1;
}

void py_future_unwatch(PyObject *self, PyObject *waiter)
{
    future_fields *f = F(self);
    if (f->cwaiter == waiter) {
        f->cwaiter = NULL;
    }
}

int py_future_raised(PyObject *self)
{
    future_fields *f = F(self);
    return atomic_load(&f->state) == PY_FINISHED && f->exception != NULL;
}

td_waitset *py_future_run(PyObject *self)
{
    future_fields *f = F(self);
    int started = start_or_notify_cancel(self);
    if (started <= 0) {
        if (started < 0) {
            PyErr_WriteUnraisable(self);
        }
        clear_call(f);
        return NULL;
    }
    /* Take the call off the future first: once it ran, the future must not
     * keep fn or its arguments alive (the stdlib drops its work item). */
    PyObject *fn = f->fn, *args = f->args, *kwargs = f->kwargs;
    PyObject *context = f->context;
    f->fn = f->args = f->kwargs = f->context = NULL;
    PyObject *r = NULL;
    int entered = 0;
    if (fn == NULL || args == NULL || !PyTuple_Check(args) ||
        (kwargs != NULL && !PyDict_Check(kwargs))) {
        /* Somebody deleted or replaced our private _td_* members (they
         * are writable so CPython's dealloc can clear them): fail the
         * future, do not crash. */
        PyErr_SetString(PyExc_RuntimeError,
                        "the future's call was tampered with");
    } else if (context == NULL || PyContext_Enter(context) == 0) {
        entered = context != NULL;
        r = PyObject_Call(fn, args, kwargs);
    }
    /* Like the stdlib's work item, keep any BaseException (SystemExit and
     * KeyboardInterrupt too) on the future instead of losing it. */
    PyObject *exc = r == NULL ? td_fetch_exception() : NULL;
    if (entered && PyContext_Exit(context) < 0) {
        PyErr_WriteUnraisable(self);   /* only if the task broke it */
    }
    Py_XDECREF(fn);
    Py_XDECREF(args);
    Py_XDECREF(kwargs);
    int rc, owed_wake = 0;
    if (r != NULL) {
        rc = complete(self, r, NULL, 0, &owed_wake);
        Py_DECREF(r);
    } else {
        rc = complete(self, NULL, exc, 0, &owed_wake);
        Py_XDECREF(exc);
    }
    Py_XDECREF(context);
    if (rc < 0) {
        PyErr_WriteUnraisable(self);
    }
    return owed_wake ? &fstate(self)->waitset : NULL;
}

/* ---- waiting --------------------------------------------------------- */

/* Waits until done: 1 done, 0 timed out, -1 error. */
static int wait_done(PyObject *self, PyObject *timeout)
{
    future_fields *f = F(self);
    int64_t timeout_ns = -1;
    /* Checked even when done: a bad timeout is a bug either way. */
    if (timeout != Py_None && py_timeout_ns(timeout, &timeout_ns) < 0) {
        return -1;
    }
    int state = atomic_load(&f->state);
    if (is_done(state)) {
        return 1;
    }
    py_state *st = fstate(self);
    int64_t deadline = timeout_ns < 0 ? 0
        : (int64_t)td_clock_now_ns() + timeout_ns;
    for (;;) {
        int64_t left = -1;
        if (timeout_ns >= 0) {
            int64_t now = (int64_t)td_clock_now_ns();
            left = deadline > now ? deadline - now : 0;
        }
        /* Until done: a pending future passes "running" on the way, which
         * is no reason to wake up and take the GIL. */
        int rc = py_wait_word_below(st, &f->state, PY_CANCELLED,
                                    &f->nwaiters, left);
        if (rc < 0) {
            return -1;
        }
        state = atomic_load(&f->state);
        if (is_done(state)) {
            return 1;
        }
        if (rc == 0) {
            return 0;
        }
    }
}

static PyObject *raise_timeout(PyObject *self)
{
    PyErr_SetNone(fstate(self)->TimeoutError);
    return NULL;
}

static PyObject *future_result(PyObject *self, PyObject *const *args,
                               Py_ssize_t nargs, PyObject *kwnames);
static PyObject *future_exception(PyObject *self, PyObject *const *args,
                                  Py_ssize_t nargs, PyObject *kwnames);

/* Parses the optional `timeout` of result() and exception(). */
static int parse_timeout(const char *fname, PyObject *const *args,
                         Py_ssize_t nargs, PyObject *kwnames,
                         PyObject **timeout)
{
    *timeout = Py_None;
    Py_ssize_t nkw = kwnames ? PyTuple_GET_SIZE(kwnames) : 0;
    if (nargs + nkw > 1) {
        PyErr_Format(PyExc_TypeError,
                     "%s() takes at most 1 argument (%zd given)", fname,
                     nargs + nkw);
        return -1;
    }
    if (nargs == 1) {
        *timeout = args[0];
    } else if (nkw == 1) {
        PyObject *name = PyTuple_GET_ITEM(kwnames, 0);
        if (!PyUnicode_Check(name) ||
            PyUnicode_CompareWithASCIIString(name, "timeout") != 0) {
            PyErr_Format(PyExc_TypeError,
                         "%s() got an unexpected keyword argument '%S'",
                         fname, name);
            return -1;
        }
        *timeout = args[0];
    }
    return 0;
}

PyDoc_STRVAR(result_doc,
"result(timeout=None)\n--\n\n"
"Return the call's result, waiting up to timeout seconds.\n\n"
"Raises the call's exception if it raised, CancelledError if the future\n"
"was cancelled and TimeoutError if it is not done in time.  Releases the\n"
"GIL while waiting and answers Ctrl-C with KeyboardInterrupt.");

static PyObject *future_result(PyObject *self, PyObject *const *args,
                               Py_ssize_t nargs, PyObject *kwnames)
{
    PyObject *timeout;
    if (parse_timeout("result", args, nargs, kwnames, &timeout) < 0) {
        return NULL;
    }
    int rc = wait_done(self, timeout);
    if (rc <= 0) {
        return rc < 0 ? NULL : raise_timeout(self);
    }
    future_fields *f = F(self);
    if (atomic_load(&f->state) != PY_FINISHED) {
        PyErr_SetNone(fstate(self)->CancelledError);
        return NULL;
    }
    if (f->exception != NULL) {
        if (!PyExceptionInstance_Check(f->exception)) {
            /* Only a replaced _td_exception can be anything else. */
            PyErr_SetString(PyExc_RuntimeError,
                            "the future's exception was tampered with");
            return NULL;
        }
        PyErr_SetObject((PyObject *)Py_TYPE(f->exception), f->exception);
        return NULL;
    }
    return Py_NewRef(f->result ? f->result : Py_None);
}

PyDoc_STRVAR(exception_doc,
"exception(timeout=None)\n--\n\n"
"Return the exception the call raised (None if it returned), waiting up\n"
"to timeout seconds; raises CancelledError or TimeoutError like result().");

static PyObject *future_exception(PyObject *self, PyObject *const *args,
                                  Py_ssize_t nargs, PyObject *kwnames)
{
    PyObject *timeout;
    if (parse_timeout("exception", args, nargs, kwnames, &timeout) < 0) {
        return NULL;
    }
    int rc = wait_done(self, timeout);
    if (rc <= 0) {
        return rc < 0 ? NULL : raise_timeout(self);
    }
    future_fields *f = F(self);
    if (atomic_load(&f->state) != PY_FINISHED) {
        PyErr_SetNone(fstate(self)->CancelledError);
        return NULL;
    }
    return Py_NewRef(f->exception ? f->exception : Py_None);
}

/* ---- the rest of the Future API -------------------------------------- */

PyDoc_STRVAR(cancel_doc,
"cancel()\n--\n\n"
"Cancel the future if it has not started; return True if it is cancelled.");

static PyObject *future_cancel(PyObject *self, PyObject *unused)
{
    (void)unused;
    future_fields *f = F(self);
    int state = atomic_load(&f->state);
    if (state == PY_RUNNING || state == PY_FINISHED) {
        Py_RETURN_FALSE;
    }
    if (is_done(state)) {
        Py_RETURN_TRUE;
    }
    PyObject *cond = enter_condition(self);
    if (cond == NULL) {
        return NULL;
    }
    /* Acquiring the condition may have let a worker start the call. */
    state = atomic_load(&f->state);
    if (state != PY_PENDING) {
        exit_condition(fstate(self), cond, 0);
        return PyBool_FromLong(state == PY_CANCELLED ||
                               state == PY_CANCELLED_AND_NOTIFIED);
    }
    set_state(self, PY_CANCELLED);
    exit_condition(fstate(self), cond, 1);
    clear_call(f);   /* it will never run: do not keep its arguments */
    invoke_callbacks(self);
    Py_RETURN_TRUE;
}

static PyObject *future_cancelled(PyObject *self, PyObject *unused)
{
    (void)unused;
    int state = atomic_load(&F(self)->state);
    return PyBool_FromLong(state == PY_CANCELLED ||
                           state == PY_CANCELLED_AND_NOTIFIED);
}

static PyObject *future_running(PyObject *self, PyObject *unused)
{
    (void)unused;
    return PyBool_FromLong(atomic_load(&F(self)->state) == PY_RUNNING);
}

static PyObject *future_done(PyObject *self, PyObject *unused)
{
    (void)unused;
    return PyBool_FromLong(is_done(atomic_load(&F(self)->state)));
}

PyDoc_STRVAR(get_snapshot_doc,
"_get_snapshot()\n--\n\n"
"Return (done, cancelled, result, exception), read in one go.\n\n"
"As CPython 3.15's Future._get_snapshot(), which asyncio calls when a\n"
"wrapped future completes: (True, False, result, exception) once\n"
"finished (the one not set is None), (True, True, None, None) once\n"
"cancelled, and (False, False, None, None) before.  Never blocks and\n"
"builds no threading.Condition; present on every Python version.");

static PyObject *future_get_snapshot(PyObject *self, PyObject *unused)
{
    (void)unused;
    future_fields *f = F(self);
    /* Synchronised as result() is: the state changes only with the GIL
     * held, and complete() stores the result or exception before it
     * stores PY_FINISHED, with no Python code in between, so a thread
     * holding the GIL never sees PY_FINISHED without its outcome.  The
     * stdlib takes `_condition` here because that lock is all that guards
     * its fields; ours guards only the stdlib's waiters, so it is not
     * taken even once handed out.  A finished future never changes. */
    int state = atomic_load(&f->state);
    PyObject *items[4];
    if (state == PY_FINISHED) {
        items[0] = Py_True;
        items[1] = Py_False;
        items[2] = f->result ? f->result : Py_None;
        items[3] = f->exception ? f->exception : Py_None;
    } else {
        items[0] = items[1] = is_done(state) ? Py_True : Py_False;
        items[2] = items[3] = Py_None;
    }
    /* References first: allocating the tuple can run the GC, and other
     * threads with it, which could replace a tampered-with _td_result. */
    for (int i = 0; i < 4; i++) {
        Py_INCREF(items[i]);
    }
    PyObject *snapshot = PyTuple_New(4);
    for (int i = 0; i < 4; i++) {
        if (snapshot != NULL) {
            PyTuple_SET_ITEM(snapshot, i, items[i]);
        } else {
            Py_DECREF(items[i]);
        }
    }
    return snapshot;
}

PyDoc_STRVAR(add_done_callback_doc,
"add_done_callback(fn)\n--\n\n"
"Call fn(future) once the future is done (at once if it is).  Exceptions\n"
"from fn are logged to the 'concurrent.futures' logger, never raised.");

static PyObject *future_add_done_callback(PyObject *self, PyObject *fn)
{
    if (!PyCallable_Check(fn)) {
        PyErr_Format(PyExc_TypeError,
                     "add_done_callback() needs a callable, not %.100s",
                     Py_TYPE(fn)->tp_name);
        return NULL;
    }
    future_fields *f = F(self);
    if (f->callbacks != NULL && !PyList_Check(f->callbacks)) {
        Py_CLEAR(f->callbacks);   /* a replaced _td_callbacks: start anew */
    }
    if (!is_done(atomic_load(&f->state)) && f->callbacks == NULL) {
        /* Allocate before deciding: an allocation can run the GC, whose
         * finalisers can let a worker complete the future meanwhile. */
        PyObject *list = PyList_New(0);
        if (list == NULL) {
            return NULL;
        }
        if (f->callbacks == NULL) {
            f->callbacks = list;
        } else {
            Py_DECREF(list);
        }
    }
    /* No Python code runs from this check to the append. */
    if (!is_done(atomic_load(&f->state))) {
        if (PyList_Append(f->callbacks, fn) < 0) {
            return NULL;
        }
        ensure_tracked(self);
        Py_RETURN_NONE;
    }
    PyObject *r = PyObject_CallOneArg(fn, self);
    if (r == NULL) {
        if (!PyErr_ExceptionMatches(PyExc_Exception)) {
            return NULL;   /* BaseException propagates, as in the stdlib */
        }
        if (log_callback_error(self) < 0) {
            return NULL;
        }
        Py_RETURN_NONE;
    }
    Py_DECREF(r);
    Py_RETURN_NONE;
}

static PyObject *future_set_running_or_notify_cancel(PyObject *self,
                                                     PyObject *unused)
{
    (void)unused;
    int rc = start_or_notify_cancel(self);
    if (rc < 0) {
        return NULL;
    }
    if (rc == 0) {
        invoke_callbacks(self);   /* cancel() already ran them; no-op */
    }
    return PyBool_FromLong(rc);
}

static PyObject *future_set_result(PyObject *self, PyObject *result)
{
    if (complete(self, result, NULL, 1, NULL) < 0) {
        return NULL;
    }
    Py_RETURN_NONE;
}

static PyObject *future_set_exception(PyObject *self, PyObject *exc)
{
    if (!PyExceptionInstance_Check(exc)) {
        /* The stdlib would store anything and fail later in result(). */
        PyErr_Format(PyExc_TypeError,
                     "set_exception() needs an exception instance, "
                     "not %.100s", Py_TYPE(exc)->tp_name);
        return NULL;
    }
    if (complete(self, NULL, exc, 1, NULL) < 0) {
        return NULL;
    }
    Py_RETURN_NONE;
}

static const char *const state_descriptions[PY_NSTATES] = {
    "pending", "running", "cancelled", "cancelled", "finished",
};

static PyObject *future_repr(PyObject *self)
{
    future_fields *f = F(self);
    int state = atomic_load(&f->state);
    const char *tp_name = Py_TYPE(self)->tp_name;
    const char *dot = strrchr(tp_name, '.');
    const char *name = dot ? dot + 1 : tp_name;
    if (state == PY_FINISHED) {
        PyObject *what = f->exception ? f->exception
                                      : (f->result ? f->result : Py_None);
        return PyUnicode_FromFormat("<%s at %p state=finished %s %s>", name,
                                    self,
                                    f->exception ? "raised" : "returned",
                                    Py_TYPE(what)->tp_name);
    }
    return PyUnicode_FromFormat("<%s at %p state=%s>", name, self,
                                state_descriptions[state]);
}

/* ---- the private attributes the stdlib's functions use --------------- */

static PyObject *future_get_state(PyObject *self, void *closure)
{
    (void)closure;
    return Py_NewRef(fstate(self)->state_names[atomic_load(&F(self)->state)]);
}

static PyObject *future_get_condition(PyObject *self, void *closure)
{
    (void)closure;
    F(self)->uses_condition = 1;
    ensure_tracked(self);
    return Py_NewRef(fstate(self)->condition);
}

static PyObject *future_get_waiters(PyObject *self, void *closure)
{
    (void)closure;
    future_fields *f = F(self);
    if (f->waiters == NULL) {
        PyObject *list = PyList_New(0);
        if (list == NULL) {
            return NULL;
        }
        /* The allocation may have run the GC and other threads with it. */
        if (f->waiters == NULL) {
            f->waiters = list;
        } else {
            Py_DECREF(list);
        }
    }
    ensure_tracked(self);
    return Py_NewRef(f->waiters);
}

static PyObject *future_get_result(PyObject *self, void *closure)
{
    (void)closure;
    PyObject *r = F(self)->result;
    return Py_NewRef(r ? r : Py_None);
}

static PyObject *future_get_exception(PyObject *self, void *closure)
{
    (void)closure;
    PyObject *e = F(self)->exception;
    return Py_NewRef(e ? e : Py_None);
}

/* The instance dict, through future.__dict__: whoever holds it can put
 * anything in it, which the GC reaches only through a tracked future. */
static PyObject *future_get_dict(PyObject *self, void *closure)
{
    ensure_tracked(self);
    return PyObject_GenericGetDict(self, closure);
}

static int future_set_dict(PyObject *self, PyObject *value, void *closure)
{
    ensure_tracked(self);
    return PyObject_GenericSetDict(self, value, closure);
}

/* Attributes land in the instance dict, which the GC reaches only through
 * a tracked future. */
static int future_setattro(PyObject *self, PyObject *name, PyObject *value)
{
    ensure_tracked(self);
    return PyObject_GenericSetAttr(self, name, value);
}

static PyObject *future_tp_new(PyTypeObject *tp, PyObject *args,
                               PyObject *kwargs)
{
    if (PyTuple_GET_SIZE(args) != 0 ||
        (kwargs != NULL && PyDict_GET_SIZE(kwargs) != 0)) {
        PyErr_SetString(PyExc_TypeError, "Future() takes no arguments");
        return NULL;
    }
    return tp->tp_alloc(tp, 0);
}

static int future_tp_init(PyObject *self, PyObject *args, PyObject *kwargs)
{
    (void)self;
    (void)args;
    (void)kwargs;
    return 0;   /* everything was set up by tp_new */
}

static PyMethodDef future_methods[] = {
    {"result", (PyCFunction)(void (*)(void))future_result,
     METH_FASTCALL | METH_KEYWORDS, result_doc},
    {"exception", (PyCFunction)(void (*)(void))future_exception,
     METH_FASTCALL | METH_KEYWORDS, exception_doc},
    {"cancel", future_cancel, METH_NOARGS, cancel_doc},
    {"cancelled", future_cancelled, METH_NOARGS,
     "cancelled()\n--\n\nReturn True if the future was cancelled."},
    {"running", future_running, METH_NOARGS,
     "running()\n--\n\nReturn True if the call is running now."},
    {"done", future_done, METH_NOARGS,
     "done()\n--\n\nReturn True if the future finished or was cancelled."},
    {"_get_snapshot", future_get_snapshot, METH_NOARGS, get_snapshot_doc},
    {"add_done_callback", future_add_done_callback, METH_O,
     add_done_callback_doc},
    {"set_running_or_notify_cancel", future_set_running_or_notify_cancel,
     METH_NOARGS,
     "set_running_or_notify_cancel()\n--\n\n"
     "Mark the future running (True) or notify waiters of its "
     "cancellation (False).  For executors and tests."},
    {"set_result", future_set_result, METH_O,
     "set_result(result)\n--\n\nFinish the future with a result.  For "
     "executors and tests; InvalidStateError if it is done."},
    {"set_exception", future_set_exception, METH_O,
     "set_exception(exception)\n--\n\nFinish the future with an "
     "exception.  For executors and tests; InvalidStateError if done."},
    {NULL, NULL, 0, NULL},
};

static PyGetSetDef future_getset[] = {
    {"__dict__", future_get_dict, future_set_dict, NULL, NULL},
    {"_state", future_get_state, NULL,
     "The stdlib's state string ('PENDING', ..., 'FINISHED').", NULL},
    {"_condition", future_get_condition, NULL,
     "The threading.Condition all taskdemo futures share, handed out on "
     "first use, for the stdlib's as_completed() and wait().", NULL},
    {"_waiters", future_get_waiters, NULL,
     "Waiters installed by the stdlib's as_completed() and wait().", NULL},
    {"_result", future_get_result, NULL, "The result, or None.", NULL},
    {"_exception", future_get_exception, NULL, "The exception, or None.",
     NULL},
    {NULL, NULL, NULL, NULL, NULL},
};

PyDoc_STRVAR(future_doc,
"A concurrent.futures.Future implemented in C.\n\n"
"Returned by taskdemo.ThreadPoolExecutor.submit(); works wherever the\n"
"stdlib's Future does (as_completed, wait, asyncio.wrap_future).");

int py_future_init_type(PyObject *module, py_state *st)
{
    PyTypeObject *base = (PyTypeObject *)st->BaseFuture;
    Py_ssize_t offset = base->tp_basicsize;
    /* Member offsets depend on the base's size, so the table is filled in
     * here; PyType_FromModuleAndSpec copies it into the type. */
    PyMemberDef members[] = {
#define MEMBER(name, field)                                                \
    {name, T_OBJECT_EX, offset + offsetof(future_fields, field), 0, NULL}
        MEMBER("_td_fn", fn),
        MEMBER("_td_args", args),
        MEMBER("_td_kwargs", kwargs),
        MEMBER("_td_result", result),
        MEMBER("_td_exception", exception),
        MEMBER("_td_callbacks", callbacks),
        MEMBER("_td_waiters", waiters),
        MEMBER("_td_context", context),
#undef MEMBER
        {NULL, 0, 0, 0, NULL},
    };
    PyType_Slot slots[] = {
        {Py_tp_doc, (void *)future_doc},
        {Py_tp_new, future_tp_new},
        {Py_tp_init, future_tp_init},
        {Py_tp_repr, future_repr},
        {Py_tp_setattro, future_setattro},
        {Py_tp_methods, future_methods},
        {Py_tp_getset, future_getset},
        {Py_tp_members, members},
        {0, NULL},
    };
    PyType_Spec spec = {
        .name = "taskdemo.Future",
        .basicsize = (int)(offset + sizeof(future_fields)),
        /* Not Py_TPFLAGS_IMMUTABLETYPE: CPython 3.12 deprecates an
         * immutable type with a mutable (Python) base. */
        .flags = Py_TPFLAGS_DEFAULT,
        .slots = slots,
    };
    PyObject *bases = PyTuple_Pack(1, st->BaseFuture);
    if (bases == NULL) {
        return -1;
    }
    st->FutureType = (PyTypeObject *)PyType_FromModuleAndSpec(module, &spec,
                                                              bases);
    Py_DECREF(bases);
    if (st->FutureType == NULL) {
        return -1;
    }
    return PyModule_AddType(module, st->FutureType);
}
