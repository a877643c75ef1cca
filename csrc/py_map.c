/*
 * py_map.c - ExecutorBase.map(): one job per call, no future per item.
 *
 * map(fn, *iterables) collects its inputs at the call, as the stdlib does
 * (zip(*iterables) consumed at once, its errors raised by map itself),
 * into a map job: fn, a flat array of arguments (nargs per item, no
 * tuples; once an item ran, its first slot holds its outcome), a state
 * byte per item, and a copy of the caller's contextvars context.  It then
 * queues min(items, max_workers) runners, ordinary pool tasks that each
 * claim the next unstarted item, run fn(*args) in a copy of that context
 * (as submit() runs each task; see "contexts" below), store the result or
 * the exception, and go on until no item is left.  The returned
 * MapIterator yields the results in order, waiting in C with the GIL
 * released, and raises an item's exception when it reaches it.  With a
 * timeline, items are recorded as tasks are, labelled with fn's name:
 * each its own record, except runs of sub-microsecond items, which share
 * records ("Runs" in td_pool.h); the runners themselves are not recorded.
 *
 * Threading: everything in a job but the wake word is read and written
 * with the GIL held.  Runners hold it while they claim an item and run it
 * (the worker keeps the GIL across tasks, py_executor.c), so claiming is a
 * plain increment of `next`, one item at a time (a batch would hold
 * items back from a runner that is free while another one blocks).  Two
 * runners never claim at once, and a runner that checked `stop` and
 * marked an item running did so before any stop() that follows.  That
 * gives the stdlib's cancellation rule exactly: items below `next` have
 * started and finish; items from `next` on never start once the job is
 * stopped.  The iterator waits without the GIL on
 * `wake_seq` through the module's td_waitset; a runner bumps it when it
 * finishes the item the iterator waits for (`waiting_for`), and stop()
 * bumps it too.
 *
 * Lifetime: the job is a GC-tracked object referenced by the iterator and
 * by each runner still queued or running.  A runner's reference is not
 * visible to the GC, so a job with runners, and everything it holds (fn,
 * arguments, results), is never collected from under them; a cycle
 * through the iterator (fn or a result referring back to it) is collected
 * once the runners are done.  While it has runners the job sits on its
 * pool's list, so shutdown(cancel_futures=True), a failed initializer and
 * fork() can stop it even when none of its runners is queued any more.
 *
 * What the iterator does follows the stdlib's generator: timeout counts
 * from the map call; an exception, a timeout or Ctrl-C while waiting ends
 * the iteration and stops the job (items not started never run); so does
 * close() or dropping the iterator once started, while an iterator never
 * started lets every item run (a generator never started runs no
 * `finally`).
 *
 * buffersize=N (3.14's Executor.map; accepted on every version): the same
 * job, but fed lazily, at the moments the stdlib's map pulls its inputs:
 * the first N items at the call, then one more at the start of each
 * next() while results are outstanding (before waiting for the oldest), so
 * at most N + 1 items are pulled and not yet yielded.  The rows are then a
 * ring (item i in row i & mask) that grows by doubling up to that bound;
 * runners claim up to `n`, the items pulled so far, and end when they
 * reach it, and each pull queues another runner while fewer runners are
 * waiting to claim than items are unclaimed (at most max_workers).  Rows
 * may move when the ring grows, which only a pull does, with the GIL held:
 * so a runner takes an item's arguments out of its row before calling fn,
 * which may release the GIL, and finds the row again afterwards.  As the
 * stdlib's generator holds only a weak reference to its executor until
 * its first next() and a strong one from then on, so does the iterator:
 * an executor gone by the first next() pulls nothing more.
 */
#include "py_module.h"

#include <string.h>

#include "td_clock.h"

/* Item states (job->state), written with the GIL held. */
enum {
    ITEM_PENDING = 0,    /* not claimed; index >= next */
    ITEM_RUNNING = 1,    /* claimed by a runner, fn is running */
    ITEM_RETURNED = 2,   /* its outcome slot holds fn's return value */
    ITEM_RAISED = 3      /* ... the exception fn raised */
};

/* Why a job stopped; items not started never will. */
enum {
    STOP_NONE = 0,
    STOP_CLOSED,      /* its iterator ended or was closed: nobody looks */
    STOP_CANCELLED,   /* shutdown(cancel_futures=True): CancelledError */
    STOP_FAILED       /* stop_exc for items not run (broken pool, fork) */
};

/* Items a runner runs between two looks at how long it held the GIL. */
#define BREATHE_EVERY 32

struct py_map_job {
    PyObject_HEAD
    py_state *st;
    PyObject *fn;
    PyObject *context;     /* the caller's context; each item runs in a
                              copy of it */
    PyObject **slots;      /* rows * nargs: item i's arguments from
                              (i & mask) * nargs on; once it ran they are
                              dropped and the first slot holds its
                              outcome, handed to the iterator when it
                              yields or raises it (the row is empty
                              then, free for reuse in a ring) */
    unsigned char *state;  /* rows: ITEM_* */
    uint64_t *stamps;      /* ring with a timeline: each row's submit
                              stamp; else NULL (all are submit_stamp) */
    Py_ssize_t n, nargs;   /* GIL: n items so far (all, without a ring) */
    Py_ssize_t rows;       /* GIL: rows allocated: n, or the ring's size */
    Py_ssize_t mask;       /* GIL: item i is in row i & mask */
    int ring;              /* buffersize given: items come in over time */
    unsigned max_runners;  /* ring: the pool's max_workers */
    unsigned active;       /* GIL: ring items claimed, not finished */
    Py_ssize_t next;       /* GIL: the next item to claim */
    int stop;              /* GIL: STOP_* */
    int stop_running;      /* GIL: running items are lost too (fork) */
    PyObject *stop_exc;    /* GIL: raised for items that never ran, or NULL
                              for CancelledError */
    unsigned runners;      /* GIL: runner tasks queued or running */
    Py_ssize_t waiting_for;   /* GIL: the item the iterator waits on, -1 */
    _Atomic int wake_seq;     /* bumped to wake the iterator */
    _Atomic unsigned nwaiters;   /* threads waiting on wake_seq */
    td_pool *core;         /* while runners > 0: where to record items */
    int timing;            /* the pool keeps a timeline */
    uint32_t tag;          /* fn's timeline label */
    uint64_t submit_stamp; /* when map() queued the items (timeline units) */
    py_map_job **list;     /* GIL: the pool's list we are on, or NULL */
    py_map_job *prev, *next_job;
};

typedef struct {
    PyObject_HEAD
    py_map_job *job;       /* NULL once the iteration is over */
    Py_ssize_t pos;        /* the next item to yield */
    int64_t deadline_ns;   /* td_clock_now_ns() deadline; -1: none */
    int started;           /* __next__ was called: closing stops the job */
    int running;           /* inside __next__ (waiting, GIL released) */
    /* With a ring (buffersize) only, else NULL: */
    PyObject *source;      /* zip(*iterables), pulled from lazily */
    PyObject *exec_weak;   /* the executor, until the first next() */
    PyObject *executor;    /* ... from then on (NULL if it was gone) */
} map_iter;

/* ---- the pool's list of jobs with runners ---------------------------- */

static void list_add(py_map_job **list, py_map_job *job)
{
    job->list = list;
    job->prev = NULL;
    job->next_job = *list;
    if (*list != NULL) {
        (*list)->prev = job;
    }
    *list = job;
}

static void list_remove(py_map_job *job)
{
    if (job->list == NULL) {
        return;
    }
    if (job->prev != NULL) {
        job->prev->next_job = job->next_job;
    } else {
        *job->list = job->next_job;
    }
    if (job->next_job != NULL) {
        job->next_job->prev = job->prev;
    }
    job->list = NULL;
    job->prev = job->next_job = NULL;
}

/* ---- stopping and waking --------------------------------------------- */

/* Bumps the wake word.  Returns 1 when the iterator waits on it and the
 * caller chose to wake it later (owe), else wakes it now and returns 0. */
static int wake_iterator(py_map_job *job, int owe)
{
    atomic_fetch_add(&job->wake_seq, 1);
    if (atomic_load(&job->nwaiters) == 0) {
        return 0;
    }
    if (owe) {
        return 1;
    }
    td_waitset_broadcast(&job->st->waitset);
    return 0;
}

/* Stops the job: no item starts from now on.  The first reason wins. */
static void job_stop(py_map_job *job, int why, PyObject *exc,
                     int running_too)
{
    if (job->stop != STOP_NONE) {
        return;
    }
    job->stop = why;
    job->stop_running = running_too;
    job->stop_exc = exc ? Py_NewRef(exc) : NULL;
    wake_iterator(job, 0);
}

void py_map_stop_all(py_map_job *list, PyObject *exc, int running_too)
{
    for (py_map_job *job = list; job != NULL; job = job->next_job) {
        job_stop(job, exc ? STOP_FAILED : STOP_CANCELLED, exc, running_too);
    }
}

void py_map_detach_all(py_map_job **list)
{
    while (*list != NULL) {
        list_remove(*list);
    }
}

/* A runner is done with the job (ran out of items, stopped, or dropped
 * from the queue unrun).  The caller still drops its reference. */
static void runner_done(py_map_job *job)
{
    if (job->runners > 0 && --job->runners == 0) {
        list_remove(job);
    }
}

void py_map_runner_dropped(PyObject *job)
{
    runner_done((py_map_job *)job);
    Py_DECREF(job);   /* the queue's reference */
}

/* ---- contexts ------------------------------------------------------------
 *
 * Each item must start in the caller's context as map() captured it, and
 * see nothing an earlier item set, as if submitted on its own.  A fresh
 * copy per item (copy, enter, exit, free) costs about 8 ns, an eighth of a
 * trivial item, so a runner keeps one entered copy for as long as items
 * leave its variables as they were, and makes a new one after an item
 * changed them.  ContextVar.set() always gives the context a new mapping
 * object (unless the variable already had that very value), so "as they
 * were" is: the copy still has the base's mapping object.  Identity, not
 * equality: comparing values could run user __eq__ and would call 1 and
 * 1.0 the same.  The one difference from a fresh copy per item: a Token
 * from setting a variable to the value it already had can reset it in a
 * later item on the same runner, where a fresh copy would raise.
 *
 * CPython has no public accessor for a context's mapping; it is the
 * second field after the object header of its PyContext
 * (Include/internal/pycore_context.h, unchanged from 3.9 to 3.13).
 * probe_context_layout() checks that at import; if it does not hold, every
 * item gets a fresh copy.
 */

typedef struct context_head {
    PyObject_HEAD
    PyObject *prev;
    PyObject *vars;
} context_head;

static inline PyObject *context_vars(PyObject *ctx)
{
    return ((context_head *)ctx)->vars;
}

/* 1 when contexts are laid out as context_head says: a copy shares its
 * original's mapping, and setting a variable in it replaces its own. */
static int context_layout_known;

static int probe_context_layout(void)
{
#if PY_VERSION_HEX >= 0x030E0000
    return 0;   /* not checked against this version's sources */
#else
    int ok = 0;
    PyObject *a = PyContext_New();
    PyObject *b = a != NULL ? PyContext_Copy(a) : NULL;
    PyObject *var = PyContextVar_New("taskdemo._probe", NULL);
    if (a != NULL && b != NULL && var != NULL) {
        PyObject *vars = context_vars(a);
        ok = vars != NULL && vars == context_vars(b) &&
             strcmp(Py_TYPE(vars)->tp_name, "hamt") == 0;
        if (ok && PyContext_Enter(b) == 0) {
            PyObject *token = PyContextVar_Set(var, Py_None);
            ok = token != NULL && context_vars(a) == vars &&
                 context_vars(b) != vars && context_vars(b) != NULL &&
                 Py_TYPE(context_vars(b)) == Py_TYPE(vars);
            Py_XDECREF(token);
            ok &= PyContext_Exit(b) == 0;
        } else {
            ok = 0;
        }
    }
    PyErr_Clear();
    Py_XDECREF(var);
    Py_XDECREF(b);
    Py_XDECREF(a);
    return ok;
#endif
}

/* Enters a fresh copy of the job's base context.  Returns it, or NULL with
 * an exception set. */
static PyObject *enter_copy(py_map_job *job)
{
    PyObject *ctx = PyContext_Copy(job->context);
    if (ctx != NULL && PyContext_Enter(ctx) < 0) {
        Py_CLEAR(ctx);
    }
    return ctx;
}

static void exit_copy(py_map_job *job, PyObject *ctx)
{
    if (PyContext_Exit(ctx) < 0) {
        /* Only if the item entered a context it did not leave. */
        PyErr_WriteUnraisable(job->fn);
    }
    Py_DECREF(ctx);
}

/* After an item: keeps the entered copy *ctx for the next one if the item
 * left it as it found it, else leaves and drops it. */
static void after_item(py_map_job *job, PyObject **ctx)
{
    if (!context_layout_known ||
        PyThreadState_Get()->context != *ctx ||
        context_vars(*ctx) != context_vars(job->context)) {
        exit_copy(job, *ctx);
        *ctx = NULL;
    }
}

/* ---- the runner -------------------------------------------------------- */

/* Item i's row: its first slot.  Valid until a pull grows the ring. */
static inline PyObject **row_of(const py_map_job *job, Py_ssize_t i)
{
    return job->slots + (i & job->mask) * job->nargs;
}

/* Item i's row number.  The runner's functions take `ring` as a constant
 * from py_map_run, so that the path without a ring (the eager map, the
 * fast one) compiles to no masking, no moving of arguments and no ring
 * bookkeeping at all. */
static inline Py_ssize_t row_index(const py_map_job *job, Py_ssize_t i,
                                   int ring)
{
    return ring ? i & job->mask : i;
}

/* A ring item's arguments, taken out of its row for the call, live on the
 * runner's stack up to this many, else on the heap. */
#define STACK_ARGS 8

/* Runs item i with the GIL held, in *ctx (entered first if NULL; NULL
 * again if the item changed it), and stores its outcome. */
static inline void run_item(py_map_job *job, Py_ssize_t i, PyObject **ctx,
                            int ring)
{
    Py_ssize_t nargs = job->nargs;
    PyObject **args = job->slots + row_index(job, i, ring) * nargs;
    PyObject *stack[STACK_ARGS], **held = NULL;
    PyObject *r = NULL, *exc = NULL;
    int ok = 1;
    if (ring) {
        /* fn may give up the GIL, and a pull then may move the rows: the
         * call gets the arguments out of the row, which the runner owns
         * until they go (their row holds nothing meanwhile). */
        held = nargs <= STACK_ARGS
                   ? stack
                   : PyMem_Malloc((size_t)nargs * sizeof(PyObject *));
        if (held != NULL) {
            for (Py_ssize_t j = 0; j < nargs; j++) {
                held[j] = args[j];
                args[j] = NULL;
            }
            args = held;
        } else {
            PyErr_NoMemory();
            ok = 0;
        }
    }
    if ((!ring || ok) && *ctx == NULL) {
        *ctx = enter_copy(job);
    }
    if ((!ring || ok) && *ctx != NULL) {
        r = PyObject_Vectorcall(job->fn, args, (size_t)nargs, NULL);
        if (r == NULL) {
            exc = td_fetch_exception();
        }
        after_item(job, ctx);
    }
    if (r == NULL && exc == NULL) {
        /* Copying or entering the context failed, or fn returned NULL
         * without an exception (a broken C function). */
        exc = td_fetch_exception();
        if (exc == NULL) {
            PyErr_SetString(PyExc_SystemError,
                            "map item failed without an exception");
            exc = td_fetch_exception();
        }
    }
    /* Like the stdlib's work item, the call's arguments go once it ran. */
    for (Py_ssize_t j = 0; j < nargs; j++) {
        /* In a ring, read again each time: a finaliser run here may let a
         * pull move the rows (when they still hold the arguments). */
        PyObject **left = !ring ? args : held != NULL ? held : row_of(job, i);
        Py_CLEAR(left[j]);
    }
    if (ring && held != NULL && held != stack) {
        PyMem_Free(held);
    }
    /* Found again: in a ring, the row may have moved meanwhile. */
    Py_ssize_t row = row_index(job, i, ring);
    (ring ? job->slots + row * nargs : args)[0] = r != NULL ? r : exc;
    job->state[row] = r != NULL ? ITEM_RETURNED : ITEM_RAISED;
}

/* What a runner knows of the record it is building (see "Runs" in
 * td_pool.h): when its first item was submitted and started, how many
 * items ran since, and how many the record may take. */
typedef struct run_meter {
    uint64_t submit;
    uint64_t start;
    unsigned items;
    unsigned stride;
} run_meter;

/* Records the items run since m->start as one record ending at `end`; the
 * next record starts there. */
static void end_run_at(py_map_job *job, run_meter *m, uint64_t end)
{
    if (m->items == 0) {
        return;
    }
    td_pool_timeline_add_run(job->core, m->submit, m->start, end,
                             m->items, job->tag);
    m->stride = td_run_next_stride(m->stride, end - m->start, m->items);
    m->start = end;
    m->items = 0;
}

static void end_run(py_map_job *job, run_meter *m)
{
    if (m->items > 0) {
        end_run_at(job, m, td_pool_stamp());
    }
}

/* The runner's loop; see row_index for `ring`. */
static inline td_waitset *run_items(py_map_job *job, int ring)
{
    /* With a timeline: items run back to back, so a record's end is the
     * next one's start, and a record may stand for several short items. */
    run_meter meter = {job->submit_stamp, job->timing ? td_pool_stamp() : 0,
                       0, 1};
    unsigned since_check = 0;
    int owed = 0;
    PyObject *ctx = NULL;   /* the context copy entered for the items */
    while (job->stop == STOP_NONE && job->next < job->n) {
        Py_ssize_t i = job->next++;
        job->state[row_index(job, i, ring)] = ITEM_RUNNING;
        if (ring) {
            if (job->stamps != NULL && meter.items == 0) {
                /* A record of ring items says when its first one came
                 * in. */
                meter.submit = job->stamps[i & job->mask];
            }
            job->active++;
        }
        run_item(job, i, &ctx, ring);
        if (ring) {
            job->active--;
        }
        if (job->timing && ++meter.items >= meter.stride) {
            end_run(job, &meter);
        }
        if (i == job->waiting_for) {
            /* The iterator waits for this item.  If this runner has no
             * item left, wake it after the worker gives up the GIL (which
             * the iterator wants at once); else now, while going on. */
            owed |= wake_iterator(job, job->next >= job->n);
        }
        /* Builtins never reach the eval loop's switch check: let other
         * threads in now and then, as run_task does between tasks. */
        if (++since_check == BREATHE_EVERY) {
            since_check = 0;
            /* The GIL may go elsewhere now: note when the items so far
             * ended, in case it does. */
            uint64_t before = job->timing ? td_pool_stamp() : 0;
            if (py_worker_breathe() && job->timing) {
                /* It did: the run ended before, and the next item starts
                 * now, not when the last one ended. */
                end_run_at(job, &meter, before);
                meter.start = td_pool_stamp();
            }
        }
    }
    if (ctx != NULL) {
        exit_copy(job, ctx);
    }
    if (job->timing) {
        end_run(job, &meter);
    }
    runner_done(job);
    return owed ? &job->st->waitset : NULL;
}

td_waitset *py_map_run(PyObject *op)
{
    py_map_job *job = (py_map_job *)op;
    return job->ring ? run_items(job, 1) : run_items(job, 0);
}

/* ---- the job type ------------------------------------------------------ */

static int job_traverse(PyObject *op, visitproc visit, void *arg)
{
    py_map_job *job = (py_map_job *)op;
    Py_VISIT(Py_TYPE(op));
    Py_VISIT(job->fn);
    Py_VISIT(job->context);
    Py_VISIT(job->stop_exc);
    if (job->slots != NULL) {
        for (Py_ssize_t i = 0; i < job->rows * job->nargs; i++) {
            Py_VISIT(job->slots[i]);
        }
    }
    return 0;
}

static int job_clear(PyObject *op)
{
    /* Only reached with no runner left: each holds a reference the GC
     * cannot see, which keeps the job alive. */
    py_map_job *job = (py_map_job *)op;
    Py_CLEAR(job->fn);
    Py_CLEAR(job->context);
    Py_CLEAR(job->stop_exc);
    if (job->slots != NULL) {
        for (Py_ssize_t i = 0; i < job->rows * job->nargs; i++) {
            Py_CLEAR(job->slots[i]);
        }
    }
    return 0;
}

static void job_dealloc(PyObject *op)
{
    py_map_job *job = (py_map_job *)op;
    PyTypeObject *tp = Py_TYPE(op);
    PyObject_GC_UnTrack(op);
    list_remove(job);
    job_clear(op);
    PyMem_Free(job->slots);
    PyMem_Free(job->state);
    PyMem_Free(job->stamps);
    tp->tp_free(op);
    Py_DECREF(tp);
}

static PyType_Slot job_slots[] = {
    {Py_tp_doc, "The items of one ThreadPoolExecutor.map() call (internal)."},
    {Py_tp_dealloc, job_dealloc},
    {Py_tp_traverse, job_traverse},
    {Py_tp_clear, job_clear},
    {0, NULL},
};

static PyType_Spec job_spec = {
    .name = "taskdemo._taskdemo._MapJob",
    .basicsize = sizeof(py_map_job),
    .flags = Py_TPFLAGS_DEFAULT | Py_TPFLAGS_HAVE_GC
             | TD_TPFLAGS_IMMUTABLE | TD_TPFLAGS_NO_INSTANCES,
    .slots = job_slots,
};

/* ---- the ring: buffersize ------------------------------------------------ */

/* Makes room in the ring for item n, the oldest item not yet yielded
 * being pos: doubles it when full, keeping each item's row at i & mask.
 * Returns 0, or -1 with MemoryError.  Only a pull calls it, with the GIL
 * held: no runner holds a pointer into the rows then (run_item). */
static int ring_reserve(py_map_job *job, Py_ssize_t pos)
{
    if (job->n - pos < job->rows) {
        return 0;
    }
    Py_ssize_t width = job->nargs > 0 ? job->nargs : 1;
    if (job->rows > PY_SSIZE_T_MAX / 2 / width /
                        (Py_ssize_t)sizeof(PyObject *)) {
        PyErr_NoMemory();
        return -1;
    }
    Py_ssize_t rows = job->rows * 2, mask = rows - 1;
    PyObject **slots = PyMem_Calloc((size_t)(rows * width),
                                    sizeof(PyObject *));
    unsigned char *state = PyMem_Calloc((size_t)rows, 1);
    uint64_t *stamps = job->stamps != NULL
                           ? PyMem_Calloc((size_t)rows, sizeof(uint64_t))
                           : NULL;
    if (slots == NULL || state == NULL ||
        (job->stamps != NULL && stamps == NULL)) {
        PyMem_Free(slots);
        PyMem_Free(state);
        PyMem_Free(stamps);
        PyErr_NoMemory();
        return -1;
    }
    /* Rows before pos are empty (their outcomes were handed over). */
    for (Py_ssize_t i = pos; i < job->n; i++) {
        memcpy(slots + (i & mask) * job->nargs, row_of(job, i),
               (size_t)job->nargs * sizeof(PyObject *));
        state[i & mask] = job->state[i & job->mask];
        if (stamps != NULL) {
            stamps[i & mask] = job->stamps[i & job->mask];
        }
    }
    PyMem_Free(job->slots);
    PyMem_Free(job->state);
    PyMem_Free(job->stamps);
    job->slots = slots;
    job->state = state;
    job->stamps = stamps;
    job->rows = rows;
    job->mask = mask;
    return 0;
}

/* Queues one more runner of the job.  Returns a TD_* code. */
static int add_runner(py_pool *pp, py_map_job *job)
{
    if (job->runners == 0) {
        job->core = py_pool_core(pp);
        list_add(py_pool_map_jobs(pp), job);
    }
    int rc = py_pool_submit_runner(pp, (PyObject *)job);
    if (rc == TD_OK) {
        job->runners++;
        py_pool_await_new_workers(pp);   /* counted: the GIL may go now */
    } else if (job->runners == 0) {
        list_remove(job);
    }
    return rc;
}

/*
 * Pulls one item from the iterator's inputs into its job and makes sure a
 * runner will claim it: what the stdlib does with next(zipped_iterables)
 * and submit(fn, *args).  Returns 1, 0 when the inputs had no item (they
 * are asked again next time, as zip is), or -1 with an exception set: the
 * inputs' own, or, after the item was taken, submit()'s for a pool that
 * takes no work (RuntimeError, BrokenThreadPool).
 */
static int pull(map_iter *it, py_pool *pp)
{
    py_map_job *job = it->job;
    PyObject *row = Py_TYPE(it->source)->tp_iternext(it->source);
    if (row == NULL) {
        if (PyErr_Occurred()) {
            if (!PyErr_ExceptionMatches(PyExc_StopIteration)) {
                return -1;
            }
            PyErr_Clear();
        }
        return 0;
    }
    if (py_pool_check_open(pp) < 0 || ring_reserve(job, it->pos) < 0) {
        Py_DECREF(row);
        return -1;
    }
    Py_ssize_t r = job->n & job->mask;
    PyObject **dst = job->slots + r * job->nargs;
    if (job->nargs == 1) {
        dst[0] = row;   /* the source is the one iterable, not a zip */
    } else {
        for (Py_ssize_t j = 0; j < job->nargs; j++) {
            dst[j] = Py_NewRef(PyTuple_GET_ITEM(row, j));
        }
    }
    job->state[r] = ITEM_PENDING;
    if (job->stamps != NULL) {
        job->stamps[r] = td_pool_stamp();
    }
    job->n++;
    if (job->nargs != 1) {
        Py_DECREF(row);   /* zip reuses its tuple when nothing else holds it */
    }
    /* Each runner not running an item will claim one: another is needed
     * only when fewer of those are left than unclaimed items.  (After
     * fork() lost a running item, active may exceed runners.) */
    unsigned free_runners =
        job->runners > job->active ? job->runners - job->active : 0;
    if (job->runners < job->max_runners &&
        (Py_ssize_t)free_runners < job->n - job->next) {
        int rc = add_runner(pp, job);
        if (rc != TD_OK && job->runners == 0) {
            /* No runner at all: the item would never run. */
            py_raise(job->st, rc);
            return -1;
        }
    }
    return 1;
}

/* PyWeakref_GetRef, which 3.13 added (and deprecated the older call). */
static int weakref_get(PyObject *ref, PyObject **out)
{
#if PY_VERSION_HEX >= 0x030D0000
    return PyWeakref_GetRef(ref, out);
#else
    PyObject *obj = PyWeakref_GetObject(ref);
    *out = NULL;
    if (obj == NULL) {
        return -1;
    }
    if (obj != Py_None) {
        *out = Py_NewRef(obj);
    }
    return *out != NULL;
#endif
}

/* The pull at the start of each next() with results outstanding: none if
 * the executor is gone.  The first next() turns the weak reference into a
 * strong one, as the stdlib's generator keeps the executor in a local.
 * Returns 0, or -1 with an exception set. */
static int pull_on_next(map_iter *it)
{
    if (it->exec_weak != NULL) {
        PyObject *executor;
        if (weakref_get(it->exec_weak, &executor) < 0) {
            return -1;
        }
        Py_CLEAR(it->exec_weak);
        it->executor = executor;
    }
    if (it->executor == NULL) {
        return 0;
    }
    py_pool *pp = py_executor_pool(it->executor);
    if (pp == NULL) {
        return -1;
    }
    return pull(it, pp) < 0 ? -1 : 0;
}

/* ---- the iterator ------------------------------------------------------ */

/* Ends the iteration; stops the job if it was started (as a started
 * generator's `finally` cancels what it had not reached). */
static void iter_finish(map_iter *it)
{
    py_map_job *job = it->job;
    if (job == NULL) {
        return;
    }
    it->job = NULL;
    if (it->started) {
        job_stop(job, STOP_CLOSED, NULL, 0);
    }
    /* Last: dropping the inputs may run any code (a generator's
     * `finally`), which finds the iteration over. */
    PyObject *source = it->source, *weak = it->exec_weak;
    PyObject *executor = it->executor;
    it->source = it->exec_weak = it->executor = NULL;
    Py_DECREF(job);
    Py_XDECREF(weak);
    Py_XDECREF(executor);
    Py_XDECREF(source);
}

/* 1 when item k can be yielded or raised now: it finished, or it never
 * will (the job stopped before it started, or lost it in fork()). */
static inline int item_ready(const py_map_job *job, Py_ssize_t k, int ring)
{
    if (k >= job->next) {
        return job->stop != STOP_NONE;
    }
    int s = job->state[row_index(job, k, ring)];
    return s >= ITEM_RETURNED || (s == ITEM_RUNNING && job->stop_running);
}

/* Waits until item k is ready: 1, or 0 past the deadline, or -1 with an
 * exception (KeyboardInterrupt) set.  Releases the GIL while waiting. */
static int wait_ready(map_iter *it, py_map_job *job, Py_ssize_t k)
{
    int rc = 1;
    it->running = 1;
    while (!item_ready(job, k, job->ring)) {
        int64_t left = -1;
        if (it->deadline_ns >= 0) {
            int64_t now = (int64_t)td_clock_now_ns();
            if (now >= it->deadline_ns) {
                rc = 0;
                break;
            }
            left = it->deadline_ns - now;
        }
        /* Set with the GIL held: a runner finishing item k from now on
         * sees it and bumps the word the wait below compares with. */
        job->waiting_for = k;
        int seq = atomic_load(&job->wake_seq);
        int w = py_wait_word(job->st, &job->wake_seq, seq, &job->nwaiters,
                             left);
        job->waiting_for = -1;
        if (w < 0) {
            rc = -1;
            break;
        }
    }
    it->running = 0;
    return rc;
}

static inline PyObject *iter_yield(map_iter *it, py_map_job *job,
                                   Py_ssize_t k, int ring);

static PyObject *iter_next(PyObject *op)
{
    map_iter *it = (map_iter *)op;
    py_map_job *job = it->job;
    if (job == NULL) {
        return NULL;
    }
    if (it->running) {
        PyErr_SetString(PyExc_ValueError, "generator already executing");
        return NULL;
    }
    Py_ssize_t k = it->pos;
    if (k >= job->n) {
        iter_finish(it);
        return NULL;
    }
    it->started = 1;
    if (!job->ring) {
        return iter_yield(it, job, k, 0);
    }
    /* As the stdlib's generator, first one more input, then the wait for
     * the oldest result.  An error here (from the inputs, or the pool
     * refusing work) ends the iteration like any other; the oldest
     * result, ready or not, is not seen. */
    it->running = 1;
    int rc = pull_on_next(it);
    it->running = 0;
    if (rc < 0) {
        iter_finish(it);
        return NULL;
    }
    return iter_yield(it, job, k, 1);
}

/* The rest of __next__: waits for item k, then yields or raises it.  See
 * row_index for `ring`. */
static inline PyObject *iter_yield(map_iter *it, py_map_job *job,
                                   Py_ssize_t k, int ring)
{
    if (!item_ready(job, k, ring)) {
        int rc = wait_ready(it, job, k);
        if (rc <= 0) {
            if (rc == 0) {
                PyErr_SetNone(job->st->TimeoutError);
            }
            iter_finish(it);
            return NULL;
        }
    }
    Py_ssize_t row = row_index(job, k, ring);
    if (k < job->next && job->state[row] != ITEM_RUNNING) {
        /* Hand the value or exception over: the stdlib's iterator does
         * not keep a future it has yielded from either.  In a ring, that
         * empties the row for a later item. */
        PyObject *out = job->slots[row * job->nargs];
        job->slots[row * job->nargs] = NULL;
        if (job->state[row] == ITEM_RETURNED) {
            it->pos = k + 1;
            return out;
        }
        PyErr_SetObject((PyObject *)Py_TYPE(out), out);
        Py_DECREF(out);
    } else if (job->stop_exc != NULL) {
        PyErr_SetObject((PyObject *)Py_TYPE(job->stop_exc), job->stop_exc);
    } else {
        PyErr_SetNone(job->st->CancelledError);
    }
    iter_finish(it);
    return NULL;
}

static PyObject *iter_close(PyObject *op, PyObject *unused)
{
    (void)unused;
    map_iter *it = (map_iter *)op;
    if (it->running) {
        PyErr_SetString(PyExc_ValueError, "generator already executing");
        return NULL;
    }
    iter_finish(it);
    Py_RETURN_NONE;
}

static PyObject *iter_length_hint(PyObject *op, PyObject *unused)
{
    (void)unused;
    map_iter *it = (map_iter *)op;
    Py_ssize_t left = it->job != NULL ? it->job->n - it->pos : 0;
    return PyLong_FromSsize_t(left);
}

static int iter_traverse(PyObject *op, visitproc visit, void *arg)
{
    map_iter *it = (map_iter *)op;
    Py_VISIT(Py_TYPE(op));
    Py_VISIT(it->job);
    Py_VISIT(it->source);
    Py_VISIT(it->exec_weak);
    Py_VISIT(it->executor);
    return 0;
}

static int iter_clear(PyObject *op)
{
    /* Collected in a cycle: what a generator's finaliser would do. */
    iter_finish((map_iter *)op);
    return 0;
}

static void iter_dealloc(PyObject *op)
{
    PyTypeObject *tp = Py_TYPE(op);
    PyObject_GC_UnTrack(op);
    iter_finish((map_iter *)op);
    tp->tp_free(op);
    Py_DECREF(tp);
}

static PyMethodDef iter_methods[] = {
    {"close", iter_close, METH_NOARGS,
     "close()\n--\n\nEnd the iteration.  Once it has started, calls not "
     "yet started are cancelled; before that, every call still runs (as "
     "with the stdlib's generator)."},
    {"__length_hint__", iter_length_hint, METH_NOARGS,
     "Results not yet yielded."},
    {NULL, NULL, 0, NULL},
};

PyDoc_STRVAR(iter_doc,
"The iterator ThreadPoolExecutor.map() returns: results in input order.\n\n"
"Waiting releases the GIL and answers Ctrl-C.  A call's exception is\n"
"raised when its result is reached, and ends the iteration.");

static PyType_Slot iter_slots[] = {
    {Py_tp_doc, (void *)iter_doc},
    {Py_tp_dealloc, iter_dealloc},
    {Py_tp_traverse, iter_traverse},
    {Py_tp_clear, iter_clear},
    {Py_tp_iter, PyObject_SelfIter},
    {Py_tp_iternext, iter_next},
    {Py_tp_methods, iter_methods},
    {0, NULL},
};

static PyType_Spec iter_spec = {
    .name = "taskdemo._taskdemo.MapIterator",
    .basicsize = sizeof(map_iter),
    .flags = Py_TPFLAGS_DEFAULT | Py_TPFLAGS_HAVE_GC
             | TD_TPFLAGS_IMMUTABLE | TD_TPFLAGS_NO_INSTANCES,
    .slots = iter_slots,
};

/* ---- map() ------------------------------------------------------------- */

/* The inputs as collected: n rows of nargs arguments. */
typedef struct inputs {
    PyObject **items;
    Py_ssize_t n, cap;   /* rows */
    Py_ssize_t nargs;
} inputs;

static void inputs_free(inputs *in)
{
    for (Py_ssize_t i = 0; i < in->n * in->nargs; i++) {
        Py_DECREF(in->items[i]);
    }
    PyMem_Free(in->items);
    in->items = NULL;
    in->n = in->cap = 0;
}

static int inputs_reserve(inputs *in, Py_ssize_t rows)
{
    if (rows <= in->cap) {
        return 0;
    }
    if (rows > PY_SSIZE_T_MAX / (Py_ssize_t)sizeof(PyObject *) /
                   (in->nargs > 0 ? in->nargs : 1)) {
        PyErr_NoMemory();
        return -1;
    }
    PyObject **grown = PyMem_Realloc(
        in->items, (size_t)(rows * in->nargs) * sizeof(PyObject *));
    if (grown == NULL) {
        PyErr_NoMemory();
        return -1;
    }
    in->items = grown;
    in->cap = rows;
    return 0;
}

/* Room for one more row. */
static inline int inputs_grow(inputs *in)
{
    if (in->n < in->cap) {
        return 0;
    }
    return inputs_reserve(in, in->cap < 64 ? 64 : in->cap * 2);
}

/*
 * Consumes zip(*iterables) into in.  The pool must take work once there
 * is a first item, as the stdlib's first submit() checks; whether it did
 * is in *checked.  Returns 0, or -1 with an exception set, the items
 * consumed before it kept in `in`.
 */
static int collect(py_pool *pp, PyObject *const *iterables, Py_ssize_t k,
                   inputs *in, int *checked)
{
    in->nargs = k;
    *checked = 0;
    if (k == 0) {
        return 0;   /* zip() is empty */
    }
    PyObject *it;
    if (k == 1) {
        /* zip(x) would only wrap each item in a tuple. */
        it = PyObject_GetIter(iterables[0]);
        PyObject *src = iterables[0];
        /* Size it up front only for the built-in sequences, whose length
         * no user code computes (zip never asks for a length). */
        if (it != NULL && (PyList_CheckExact(src) ||
                           PyTuple_CheckExact(src) || PyRange_Check(src))) {
            Py_ssize_t len = PyObject_Size(src);
            if (len < 0) {
                PyErr_Clear();   /* a range too long: grow as we go */
            } else if (inputs_reserve(in, len) < 0) {
                Py_DECREF(it);
                return -1;
            }
        }
    } else {
        it = PyObject_Vectorcall((PyObject *)&PyZip_Type, iterables,
                                 (size_t)k, NULL);
    }
    if (it == NULL) {
        return -1;
    }
    iternextfunc next = Py_TYPE(it)->tp_iternext;
    int rc = 0;
    for (;;) {
        PyObject *row = next(it);
        if (row == NULL) {
            if (PyErr_Occurred()) {
                if (PyErr_ExceptionMatches(PyExc_StopIteration)) {
                    PyErr_Clear();
                } else {
                    rc = -1;
                }
            }
            break;
        }
        if (inputs_grow(in) < 0) {
            Py_DECREF(row);
            rc = -1;
            break;
        }
        if (k == 1) {
            in->items[in->n++] = row;   /* the reference moves in */
        } else {
            PyObject **dst = in->items + in->n++ * k;
            for (Py_ssize_t j = 0; j < k; j++) {
                dst[j] = Py_NewRef(PyTuple_GET_ITEM(row, j));
            }
            /* zip reuses its tuple when nothing else holds it. */
            Py_DECREF(row);
        }
        if (!*checked) {
            /* As the stdlib's first submit(), after the first item. */
            if (py_pool_check_open(pp) < 0) {
                rc = -1;
                break;
            }
            *checked = 1;
        }
    }
    Py_DECREF(it);
    return rc;
}

/* Moves the inputs into a new job.  Returns NULL with an exception set
 * (the inputs are freed then too). */
static py_map_job *job_new(py_state *st, PyObject *fn, inputs *in)
{
    unsigned char *state = NULL;
    if (in->n > 0) {
        state = PyMem_Calloc((size_t)in->n, 1);
    }
    PyObject *context = PyContext_CopyCurrent();
    py_map_job *job = NULL;
    if (context != NULL && (in->n == 0 || state != NULL)) {
        job = (py_map_job *)st->MapJobType->tp_alloc(st->MapJobType, 0);
    } else if (context != NULL) {
        PyErr_NoMemory();
    }
    if (job == NULL) {
        Py_XDECREF(context);
        PyMem_Free(state);
        inputs_free(in);
        return NULL;
    }
    /* Nothing below allocates, so the GC never sees half a job. */
    job->st = st;
    job->fn = Py_NewRef(fn);
    job->context = context;
    job->slots = in->items;
    job->state = state;
    job->nargs = in->nargs;
    job->n = in->n;
    job->rows = in->n;
    job->mask = PY_SSIZE_T_MAX;   /* i & mask == i: no ring */
    job->waiting_for = -1;
    in->items = NULL;
    in->n = in->cap = 0;
    return job;
}

/* Queues the job's runners.  Returns 0, or -1 with an exception set when
 * none could be queued (then no item will ever run). */
static int job_launch(py_pool *pp, py_map_job *job)
{
    if (job->n == 0) {
        return 0;
    }
    job->core = py_pool_core(pp);
    job->tag = py_pool_tag(pp, job->fn);
    job->timing = py_pool_timing(pp);
    job->submit_stamp = job->timing ? td_pool_stamp() : 0;
    unsigned want = py_pool_max_workers(pp);
    if ((Py_ssize_t)want > job->n) {
        want = (unsigned)job->n;
    }
    /* Runners cannot start before we give up the GIL, so counting them
     * as they are queued is safe. */
    list_add(py_pool_map_jobs(pp), job);
    int rc = TD_OK;
    for (unsigned i = 0; i < want; i++) {
        rc = py_pool_submit_runner(pp, (PyObject *)job);
        if (rc != TD_OK) {
            break;
        }
        job->runners++;
    }
    if (job->runners > 0) {
        /* Counted: the GIL may go now, to let new workers register. */
        py_pool_await_new_workers(pp);
        return 0;   /* fewer runners still run every item */
    }
    list_remove(job);
    if (py_pool_check_open(pp) == 0) {
        py_raise(job->st, rc);
    }
    return -1;
}

const char py_map_doc[] = (
"map($self, fn, *iterables, timeout=None, chunksize=1, buffersize=None)\n"
"--\n\n"
"Return an iterator of fn(*args) over zip(*iterables), in order.\n\n"
"Without buffersize, the inputs are collected at once and the calls\n"
"start on the workers straight away; results are yielded in input order\n"
"as they come, and a call's exception is raised when its result is\n"
"reached, which ends the iteration.  timeout (seconds) bounds the whole\n"
"iteration from this call on (TimeoutError).  Ending the iteration\n"
"early (an exception, a timeout, close(), dropping a started iterator)\n"
"cancels the calls not yet started.\n\n"
"buffersize=N (an int >= 1) bounds the calls submitted ahead of the\n"
"consumer, as Python 3.14's Executor.map does, on every Python version\n"
"(3.10-3.13 too): the first N inputs are taken from the iterables at\n"
"this call, then one more at each next() while results are outstanding,\n"
"so infinite iterables work; an error from the inputs, or RuntimeError\n"
"if the pool was shut down meanwhile, is raised by that next() and ends\n"
"the iteration.\n\n"
"chunksize is accepted for compatibility (the stdlib ignores it for\n"
"threads) but must be an int >= 1.  Raises TypeError if fn is not\n"
"callable, RuntimeError after shutdown.  Waiting releases the GIL and\n"
"answers Ctrl-C.");

/* Parses fn=, timeout=, chunksize= and buffersize=; returns 0 or -1
 * with an exception.  fn= can only come with no iterables at all. */
static int map_keywords(PyObject *const *kwvalues, PyObject *kwnames,
                        PyObject **fn, PyObject **timeout,
                        PyObject **chunksize, PyObject **buffersize)
{
    Py_ssize_t nkw = kwnames ? PyTuple_GET_SIZE(kwnames) : 0;
    for (Py_ssize_t i = 0; i < nkw; i++) {
        PyObject *name = PyTuple_GET_ITEM(kwnames, i);
        if (PyUnicode_CompareWithASCIIString(name, "fn") == 0) {
            if (*fn != NULL) {
                PyErr_SetString(PyExc_TypeError,
                                "map() got multiple values for argument "
                                "'fn'");
                return -1;
            }
            *fn = kwvalues[i];
        } else if (PyUnicode_CompareWithASCIIString(name, "timeout") == 0) {
            *timeout = kwvalues[i];
        } else if (PyUnicode_CompareWithASCIIString(name, "chunksize") ==
                   0) {
            *chunksize = kwvalues[i];
        } else if (PyUnicode_CompareWithASCIIString(name, "buffersize") ==
                   0) {
            *buffersize = kwvalues[i];
        } else {
            PyErr_Format(PyExc_TypeError,
                         "map() got an unexpected keyword argument '%S'",
                         name);
            return -1;
        }
    }
    return 0;
}

static int check_chunksize(PyObject *chunksize)
{
    if (chunksize == NULL) {
        return 0;
    }
    if (PyBool_Check(chunksize) || !PyLong_Check(chunksize)) {
        PyErr_SetString(PyExc_TypeError, "chunksize must be an int");
        return -1;
    }
    int overflow;
    long long n = PyLong_AsLongLongAndOverflow(chunksize, &overflow);
    if (n == -1 && PyErr_Occurred()) {
        return -1;
    }
    if (overflow < 0 || (overflow == 0 && n < 1)) {
        PyErr_SetString(PyExc_ValueError, "chunksize must be >= 1.");
        return -1;
    }
    return 0;
}

/* buffersize= as the stdlib checks it (so True is 1): *out 0 for None,
 * else N >= 1; *too_big when N does not fit a Py_ssize_t, which the
 * stdlib's islice refuses only after zip(*iterables) was made. */
static int check_buffersize(PyObject *buffersize, Py_ssize_t *out,
                            int *too_big)
{
    *out = 0;
    *too_big = 0;
    if (buffersize == NULL || buffersize == Py_None) {
        return 0;
    }
    if (!PyLong_Check(buffersize)) {
        PyErr_SetString(PyExc_TypeError,
                        "buffersize must be an integer or None");
        return -1;
    }
    int overflow;
    long long n = PyLong_AsLongLongAndOverflow(buffersize, &overflow);
    if (n == -1 && PyErr_Occurred()) {
        return -1;
    }
    if (overflow < 0 || (overflow == 0 && n < 1)) {
        PyErr_SetString(PyExc_ValueError, "buffersize must be None or > 0");
        return -1;
    }
    if (overflow > 0 || n > (long long)PY_SSIZE_T_MAX) {
        *too_big = 1;
        n = PY_SSIZE_T_MAX;
    }
    *out = (Py_ssize_t)n;
    return 0;
}

/* A job with an empty ring for map(..., buffersize=N). */
static py_map_job *ring_job_new(py_state *st, py_pool *pp, PyObject *fn,
                                Py_ssize_t nargs, Py_ssize_t buffersize)
{
    /* At most N + 1 items are live; start small, ring_reserve doubles. */
    Py_ssize_t rows = 2;
    while (rows < 64 && rows <= buffersize) {
        rows *= 2;
    }
    int timing = py_pool_timing(pp);
    PyObject **slots = PyMem_Calloc((size_t)(rows * (nargs > 0 ? nargs : 1)),
                                    sizeof(PyObject *));
    unsigned char *state = PyMem_Calloc((size_t)rows, 1);
    uint64_t *stamps = timing ? PyMem_Calloc((size_t)rows, sizeof(uint64_t))
                              : NULL;
    inputs in = {NULL, 0, 0, nargs};
    py_map_job *job = NULL;
    if (slots == NULL || state == NULL || (timing && stamps == NULL)) {
        PyErr_NoMemory();
    } else {
        job = job_new(st, fn, &in);
    }
    if (job == NULL) {
        PyMem_Free(slots);
        PyMem_Free(state);
        PyMem_Free(stamps);
        return NULL;
    }
    job->slots = slots;
    job->state = state;
    job->stamps = stamps;
    job->rows = rows;
    job->mask = rows - 1;
    job->ring = 1;
    job->max_runners = py_pool_max_workers(pp);
    job->core = py_pool_core(pp);
    job->timing = timing;
    job->submit_stamp = timing ? td_pool_stamp() : 0;
    job->tag = py_pool_tag(pp, fn);
    return job;
}

/* Raises exc (a normalised exception) again. */
static void reraise(PyObject *exc)
{
    PyErr_SetObject((PyObject *)Py_TYPE(exc), exc);
    Py_DECREF(exc);
}

/*
 * map(fn, *iterables, buffersize=N), after the arguments were checked:
 * as the stdlib, zip(*iterables) is made (its TypeError raised), then N
 * items are pulled and each submitted at once, so they may start while
 * the rest are pulled.  An error from the inputs or the pool is raised
 * here, and the items pulled before it still run (the stdlib had
 * submitted them, and no generator ever cancels them).
 */
static PyObject *map_buffered(py_state *st, py_pool *pp, PyObject *executor,
                              PyObject *fn, PyObject *const *iterables,
                              Py_ssize_t k, Py_ssize_t buffersize,
                              int too_big, int64_t deadline_ns)
{
    /* With one iterable, zip(x) would only wrap each item in a tuple. */
    PyObject *source = k == 1 ? PyObject_GetIter(iterables[0])
                              : PyObject_Vectorcall((PyObject *)&PyZip_Type,
                                                    iterables, (size_t)k,
                                                    NULL);
    if (source == NULL) {
        return NULL;
    }
    if (too_big) {
        Py_DECREF(source);
        PyErr_SetString(PyExc_ValueError,
                        "Stop argument for islice() must be None or an "
                        "integer: 0 <= x <= sys.maxsize.");
        return NULL;
    }
    py_map_job *job = ring_job_new(st, pp, fn, k, buffersize);
    map_iter *it = NULL;
    if (job != NULL) {
        it = (map_iter *)st->MapIterType->tp_alloc(st->MapIterType, 0);
    }
    if (it == NULL) {
        Py_XDECREF(job);
        Py_DECREF(source);
        return NULL;
    }
    it->job = job;
    it->deadline_ns = deadline_ns;
    it->source = source;
    /* As the stdlib's generator: a weak reference until the first next().
     * The bare C base type takes none; keep it then. */
    it->exec_weak = PyWeakref_NewRef(executor, NULL);
    int rc = 1;
    if (it->exec_weak == NULL) {
        if (PyErr_ExceptionMatches(PyExc_TypeError)) {
            PyErr_Clear();
            it->executor = Py_NewRef(executor);
        } else {
            rc = -1;
        }
    }
    /* The inputs' code may find the iterator (gc.get_objects()): it is
     * busy, as a generator is. */
    it->running = 1;
    for (Py_ssize_t i = 0; i < buffersize && rc > 0; i++) {
        rc = pull(it, pp);
    }
    it->running = 0;
    if (rc < 0) {
        PyObject *exc = td_fetch_exception();
        Py_DECREF(it);   /* never started: what was pulled still runs */
        reraise(exc);
        return NULL;
    }
    return (PyObject *)it;
}

PyObject *py_map(PyObject *executor, PyObject *const *args,
                 Py_ssize_t nargs, PyObject *kwnames)
{
    py_pool *pp = py_executor_pool(executor);
    if (pp == NULL) {
        return NULL;
    }
    py_state *st = py_state_from_type(Py_TYPE(executor));
    if (st == NULL) {
        return NULL;
    }
    PyObject *fn = nargs > 0 ? args[0] : NULL;
    PyObject *timeout = Py_None, *chunksize = NULL, *buffersize = NULL;
    if (map_keywords(args + nargs, kwnames, &fn, &timeout, &chunksize,
                     &buffersize) < 0) {
        return NULL;
    }
    if (fn == NULL) {
        PyErr_SetString(PyExc_TypeError,
                        "map() missing 1 required positional argument: "
                        "'fn'");
        return NULL;
    }
    /* The iterables follow fn, if it came positionally. */
    PyObject *const *iterables = nargs > 0 ? args + 1 : args;
    Py_ssize_t niterables = nargs > 0 ? nargs - 1 : 0;
    /* The stdlib checks buffersize before anything else. */
    Py_ssize_t nbuffer;
    int too_big;
    if (check_buffersize(buffersize, &nbuffer, &too_big) < 0) {
        return NULL;
    }
    if (!PyCallable_Check(fn)) {
        PyErr_Format(PyExc_TypeError, "map() needs a callable, not %.100s",
                     Py_TYPE(fn)->tp_name);
        return NULL;
    }
    if (check_chunksize(chunksize) < 0) {
        return NULL;
    }
    /* The deadline counts from here, before the inputs are collected, as
     * the stdlib computes end_time before it submits. */
    int64_t timeout_ns = -1, deadline_ns = -1;
    if (py_timeout_ns(timeout, &timeout_ns) < 0) {
        return NULL;
    }
    if (timeout_ns >= 0) {
        deadline_ns = (int64_t)td_clock_now_ns() + timeout_ns;
    }
    if (nbuffer > 0) {
        return map_buffered(st, pp, executor, fn, iterables, niterables,
                            nbuffer, too_big, deadline_ns);
    }

    inputs in = {NULL, 0, 0, 0};
    int checked;
    int collected = collect(pp, iterables, niterables, &in, &checked);
    if (collected < 0 && !checked) {
        /* Nothing was submitted in the stdlib either. */
        inputs_free(&in);
        return NULL;
    }
    /* When an iterable raised after some items, those items still run,
     * as the futures the stdlib had submitted do; the error propagates. */
    PyObject *pending = collected < 0 ? td_fetch_exception() : NULL;
    py_map_job *job = job_new(st, fn, &in);
    if (job == NULL || job_launch(pp, job) < 0) {
        Py_XDECREF(job);
        if (pending != NULL) {
            /* The iterable's error wins over ours, as it came first. */
            PyErr_Clear();
            PyErr_SetObject((PyObject *)Py_TYPE(pending), pending);
            Py_DECREF(pending);
        }
        return NULL;
    }
    if (pending != NULL) {
        Py_DECREF(job);   /* never started: every item still runs */
        PyErr_SetObject((PyObject *)Py_TYPE(pending), pending);
        Py_DECREF(pending);
        return NULL;
    }
    map_iter *it = (map_iter *)st->MapIterType->tp_alloc(st->MapIterType,
                                                         0);
    if (it == NULL) {
        Py_DECREF(job);
        return NULL;
    }
    it->job = job;
    it->deadline_ns = deadline_ns;
    return (PyObject *)it;
}

static PyTypeObject *make_type(PyObject *module, PyType_Spec *spec)
{
    PyTypeObject *tp = (PyTypeObject *)PyType_FromModuleAndSpec(module, spec,
                                                                NULL);
#ifndef Py_TPFLAGS_DISALLOW_INSTANTIATION
    if (tp != NULL) {
        tp->tp_new = NULL;   /* 3.9: made by map() only */
    }
#endif
    return tp;
}

int py_map_init_types(PyObject *module, py_state *st)
{
    context_layout_known = probe_context_layout();
    st->MapJobType = make_type(module, &job_spec);
    if (st->MapJobType == NULL) {
        return -1;
    }
    st->MapIterType = make_type(module, &iter_spec);
    if (st->MapIterType == NULL) {
        return -1;
    }
    return PyModule_AddType(module, st->MapIterType);
}
