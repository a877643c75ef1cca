/*
 * py_executor.c - the C base of taskdemo.ThreadPoolExecutor.
 *
 * taskdemo.ThreadPoolExecutor (Python) derives from this type and from
 * concurrent.futures.ThreadPoolExecutor; this type comes first in the MRO,
 * so __init__, submit and shutdown are ours and none of the stdlib pool's
 * machinery (queue, semaphore, Python threads) is ever built.
 *
 * Each executor owns a py_pool: the core td_pool plus what its workers need
 * from Python (initializer, thread name prefix, broken flag).  The py_pool
 * can outlive its executor: an executor dropped without shutdown() behaves
 * like the stdlib's (its queued tasks still run, then its workers exit), so
 * the py_pool stays on the module's list until its workers have exited and
 * is freed then (reap_orphans), or at interpreter exit (_shutdown_all).
 *
 * Workers and the GIL: a worker takes the GIL for its first task and keeps
 * it while it finds more work, giving it back when the queue runs dry (the
 * thread_idle hook), and after holding it for a switch interval lets a
 * thread that asked for it in (let_waiting_threads_in), so a busy pool
 * pays one GIL hand-off per batch, not per task.  Every C wait
 * releases the GIL; the pool lock is never held while taking the GIL.
 */
#include "py_module.h"

#include <time.h>

#include "td_clock.h"

#define SLICE_NS (50 * 1000 * 1000)
/* After holding the GIL this long across tasks, even with work queued,
 * let a thread that waits for it in, so submitters and waiters get to run
 * (CPython's own switch interval is 5 ms). */
#define GIL_HOLD_NS (5 * 1000 * 1000)
#define GIL_CHECK_EVERY 32
/* Task records a pool keeps by default (32 bytes each), and at most. */
#define DEFAULT_TIMELINE_SIZE 4096
#define MAX_TIMELINE_SIZE (1 << 24)
/* Distinct task labels a pool remembers; later ones show as "?". */
#define MAX_LABELS 4096

struct py_pool {
    td_pool *core;
    py_state *st;
    PyObject *initializer;   /* NULL or a callable */
    PyObject *initargs;      /* tuple */
    PyObject *prefix;        /* str: threads are named {prefix}_{i} */
    PyObject *broken;        /* str, once an initializer failed */
    PyObject *broken_type;   /* the executor class's BROKEN (3.14+; else
                                BrokenThreadPool): what a broken pool
                                raises and fails its futures with */
    PyObject *live_threads;  /* set: the threading.Thread stand-ins of
                                workers that started and have not exited
                                (executor._threads) */
    unsigned started;        /* workers that ran worker_start */
    unsigned max_workers;
    size_t timeline_size;    /* records the core keeps; 0: none */
    PyObject *labels;        /* list of str: timeline tag -> label */
    PyObject *label_tags;    /* dict: label_key(fn) -> tag */
    PyObject *last_key;      /* borrowed from label_tags: a one-entry cache */
    uint32_t last_tag;
    int shutdown;            /* refuses new work */
    int forked;              /* inherited by this child of fork() */
    int orphaned;            /* its executor was deallocated */
    int joiners;             /* threads in join_workers: do not free */
    py_map_job *map_jobs;    /* map jobs with runners (GIL), py_map.c */
    py_pool *prev, *next;    /* st->pools, guarded by the GIL */
};

typedef struct {
    PyObject_HEAD
    py_pool *pool;
} executor_object;

/* What a worker thread keeps between tasks. */
typedef struct worker_tls {
    PyGILState_STATE gstate;
    PyThreadState *tstate;   /* valid while the GIL is given back */
    int holds_gil;
    uint64_t gil_since_ns;   /* when it last took the GIL */
    unsigned tasks_since_check;   /* tasks run since the clock was read */
    td_waitset *owed_wake;   /* a finished result's waiters to wake */
    PyObject *thread;        /* its threading.Thread stand-in */
    py_state *st;            /* its module's state */
} worker_tls;

static _Thread_local worker_tls tls;

/* ---- the worker side (td_pool hooks and the task function) ---------- */

static void take_gil(void)
{
    if (!tls.holds_gil) {
        PyEval_RestoreThread(tls.tstate);
        tls.holds_gil = 1;
        tls.gil_since_ns = td_clock_now_ns();
    }
}

static void give_gil(void)
{
    if (tls.holds_gil) {
        tls.holds_gil = 0;
        tls.tstate = PyEval_SaveThread();
    }
}

/* Wakes the threads waiting for the last result, if any.  Best done after
 * give_gil(), since they want the GIL at once, and after the core counts
 * this worker as available again: a waiter that submits straight away must
 * find it so, or the pool starts a thread it did not need. */
static void pay_owed_wake(void)
{
    if (tls.owed_wake != NULL) {
        td_waitset_broadcast(tls.owed_wake);
        tls.owed_wake = NULL;
    }
}

static void run_map_task(void *arg);

static void fail_with_broken(void *ctx, td_task_fn fn, void *arg)
{
    py_pool *pp = ctx;
    if (fn == run_map_task) {
        py_map_runner_dropped(arg);   /* its job was failed already */
        return;
    }
    PyObject *exc = PyObject_CallOneArg(pp->broken_type, pp->broken);
    if (exc == NULL) {
        exc = td_fetch_exception();
    }
    py_future_fail(arg, exc);
    Py_XDECREF(exc);
    Py_DECREF((PyObject *)arg);   /* the queue's reference */
}

/* The initializer failed: log it as the stdlib does, mark the pool broken
 * and fail everything queued with BrokenThreadPool. */
static void initializer_failed(py_pool *pp, PyObject *exc)
{
    PyObject *kwargs = Py_BuildValue("{s:O}", "exc_info", exc);
    PyObject *r = NULL;
    if (kwargs != NULL) {
        PyObject *critical = PyObject_GetAttrString(pp->st->logger,
                                                    "critical");
        if (critical != NULL) {
            PyObject *args = Py_BuildValue("(s)",
                                           "Exception in initializer:");
            if (args != NULL) {
                r = PyObject_Call(critical, args, kwargs);
                Py_DECREF(args);
            }
            Py_DECREF(critical);
        }
        Py_DECREF(kwargs);
    }
    if (r == NULL) {
        PyErr_WriteUnraisable(exc);
    }
    Py_XDECREF(r);
    if (pp->broken == NULL) {
        pp->broken = PyUnicode_FromString(
            "A thread initializer failed, the thread pool is not usable "
            "anymore");
        if (pp->broken == NULL) {
            PyErr_WriteUnraisable(exc);
            return;
        }
    }
    /* Map items not started fail as the queued futures do, even those of
     * jobs whose runners all run already. */
    PyObject *broken = PyObject_CallOneArg(pp->broken_type, pp->broken);
    if (broken == NULL) {
        broken = td_fetch_exception();
    }
    py_map_stop_all(pp->map_jobs, broken, 0);
    Py_XDECREF(broken);
    td_pool_drain(pp->core, fail_with_broken, pp);
}

static int worker_start(void *ctx, unsigned index)
{
    py_pool *pp = ctx;
    tls.gstate = PyGILState_Ensure();
    tls.holds_gil = 1;
    tls.gil_since_ns = td_clock_now_ns();
    tls.thread = NULL;
    tls.st = pp->st;

    py_state *st = pp->st;
    if (st->register_worker != NULL) {
        PyObject *name = PyUnicode_FromFormat("%U_%u", pp->prefix, index);
        if (name != NULL) {
            tls.thread = PyObject_CallOneArg(st->register_worker, name);
            Py_DECREF(name);
        }
        if (tls.thread == NULL) {
            PyErr_WriteUnraisable(st->register_worker);
        } else if (PySet_Add(pp->live_threads, tls.thread) < 0) {
            PyErr_WriteUnraisable(pp->live_threads);
        }
    }
    pp->started++;
    if (pp->broken != NULL) {
        /* Another worker's initializer failed while this one started: it
         * takes no tasks, and fails the one it was handed (td_pool.h). */
        td_pool_drain(pp->core, fail_with_broken, pp);
        return TD_ESHUTDOWN;
    }
    if (pp->initializer == NULL) {
        return TD_OK;
    }
    PyObject *init = Py_NewRef(pp->initializer);
    PyObject *initargs = Py_NewRef(pp->initargs);
    PyObject *r = PyObject_Call(init, initargs, NULL);
    Py_DECREF(init);
    Py_DECREF(initargs);
    if (r != NULL) {
        Py_DECREF(r);
        return TD_OK;
    }
    PyObject *exc = td_fetch_exception();
    initializer_failed(pp, exc);
    Py_XDECREF(exc);
    return TD_ESHUTDOWN;   /* this worker takes no tasks */
}

static void worker_idle(void *ctx)
{
    (void)ctx;
    give_gil();
    pay_owed_wake();
}

static void worker_exit(void *ctx)
{
    py_pool *pp = ctx;
    take_gil();
    if (tls.thread != NULL) {
        if (PySet_Discard(pp->live_threads, tls.thread) < 0) {
            PyErr_WriteUnraisable(pp->live_threads);
        }
        PyObject *r = PyObject_CallOneArg(pp->st->unregister_worker,
                                          tls.thread);
        if (r == NULL) {
            PyErr_WriteUnraisable(pp->st->unregister_worker);
        }
        Py_XDECREF(r);
        Py_CLEAR(tls.thread);
    }
    tls.holds_gil = 0;
    /* Deletes this thread's Python thread state and releases the GIL. */
    PyGILState_Release(tls.gstate);
    pay_owed_wake();
}

/* Whether this worker has held the GIL for long enough to let others in.
 * Reading the clock costs ~25 ns, as much as a fifth of a trivial task,
 * so look only every GIL_CHECK_EVERY tasks. */
static int gil_held_too_long(void)
{
    return tls.holds_gil && ++tls.tasks_since_check >= GIL_CHECK_EVERY &&
           (tls.tasks_since_check = 0,
            td_clock_now_ns() - tls.gil_since_ns > GIL_HOLD_NS);
}

/*
 * Lets a thread that waits for the GIL have it, if one does, the way
 * CPython shares it: a thread that got no GIL for a switch interval asks
 * for it, and the holder's eval loop hands it over at its next check and
 * waits until the asker has it.  A worker running builtins never reaches
 * that check, so enter the eval loop here (a no-op Python function).
 * Giving the GIL up and taking it back by hand does not do it: the worker
 * takes it straight back before the waiter wakes, and CPython counts that
 * as a switch, which tells the waiter not to ask (threads started while a
 * pool ran short tasks back to back waited seconds for their first GIL).
 */
static void let_waiting_threads_in(void)
{
    PyObject *r = PyObject_CallNoArgs(tls.st->gil_yield);
    if (r == NULL) {
        PyErr_WriteUnraisable(tls.st->gil_yield);   /* an async exception */
    }
    Py_XDECREF(r);
    tls.gil_since_ns = td_clock_now_ns();
}

/* The start of every task: the GIL, and no wake-up left owing. */
static void begin_task(void)
{
    /* More work was queued right behind the last task: its waiters must
     * not wait for this one too. */
    pay_owed_wake();
    take_gil();
    if (gil_held_too_long()) {
        /* Between tasks, not after the last one: the GIL must not be
         * given up between dropping a task's reference and the core
         * forgetting the task (a fork then would make the child drop it
         * again). */
        let_waiting_threads_in();
    }
}

/* The td_task_fn of every Python task: arg is the future, carrying the
 * queue's reference. */
static void run_task(void *arg)
{
    begin_task();
    tls.owed_wake = py_future_run(arg);
    Py_DECREF((PyObject *)arg);
    /* The wake is paid by worker_idle, once the queue is empty and the GIL
     * given back, or by the next task. */
}

/* The td_task_fn of a map job's runner: arg is the job, carrying the
 * queue's reference.  The runner runs many items in one task. */
static void run_map_task(void *arg)
{
    begin_task();
    tls.owed_wake = py_map_run(arg);
    Py_DECREF((PyObject *)arg);
}

int py_worker_breathe(void)
{
    if (!tls.holds_gil ||
        td_clock_now_ns() - tls.gil_since_ns <= GIL_HOLD_NS) {
        return 0;
    }
    /* Between two map items, with the job's reference still held, the
     * GIL may go: a fork meanwhile reports the runner as lost, once. */
    pay_owed_wake();
    let_waiting_threads_in();
    return 1;
}

static const td_pool_hooks worker_hooks_template = {
    .ctx = NULL,
    .thread_start = worker_start,
    .thread_idle = worker_idle,
    .thread_exit = worker_exit,
};

/* ---- the pool registry ------------------------------------------------ */

static void registry_add(py_state *st, py_pool *pp)
{
    pp->prev = NULL;
    pp->next = st->pools;
    if (st->pools != NULL) {
        st->pools->prev = pp;
    }
    st->pools = pp;
}

static void registry_remove(py_pool *pp)
{
    if (pp->prev != NULL) {
        pp->prev->next = pp->next;
    } else {
        pp->st->pools = pp->next;
    }
    if (pp->next != NULL) {
        pp->next->prev = pp->prev;
    }
    pp->prev = pp->next = NULL;
}

/* Frees a py_pool whose workers are all joined (GIL held). */
static void pool_free(py_pool *pp)
{
    /* A job still listed had runners no worker will ever run: let its
     * iterator raise instead of waiting for them. */
    py_map_stop_all(pp->map_jobs, NULL, 1);
    py_map_detach_all(&pp->map_jobs);
    registry_remove(pp);
    td_pool_destroy(pp->core);
    Py_CLEAR(pp->initializer);
    Py_CLEAR(pp->initargs);
    Py_CLEAR(pp->prefix);
    Py_CLEAR(pp->broken);
    Py_CLEAR(pp->live_threads);
    Py_CLEAR(pp->broken_type);
    Py_CLEAR(pp->labels);
    Py_CLEAR(pp->label_tags);
    PyMem_Free(pp);
}

/* Frees every orphaned pool whose workers have all exited.  Never blocks:
 * a join with timeout 0 only reaps threads that are already gone. */
static void reap_orphans(py_state *st)
{
    py_pool *pp = st->pools;
    while (pp != NULL) {
        if (pp->orphaned && pp->joiners == 0 &&
            td_pool_join(pp->core, 0) == TD_OK) {
            /* Freeing drops Python references, whose finalisers may run
             * anything, this function included: walk again from the top. */
            pool_free(pp);
            pp = st->pools;
            continue;
        }
        pp = pp->next;
    }
}

/* Joins the pool's workers with the GIL released, in slices so Ctrl-C
 * works.  Returns 0, or -1 with KeyboardInterrupt (or another exception
 * from a signal handler) set.  Called from one of the pool's own workers
 * it returns at once: a thread cannot join itself, and waiting for the
 * other workers could wait for one that waits for us. */
static int join_workers(py_pool *pp)
{
    /* The GIL is released below: keep reap_orphans off this pool. */
    pp->joiners++;
    int rc;
    for (;;) {
        Py_BEGIN_ALLOW_THREADS
        rc = td_pool_join(pp->core, SLICE_NS);
        Py_END_ALLOW_THREADS
        if (rc != TD_ETIMEDOUT) {
            rc = 0;   /* TD_OK, or TD_EDEADLK: called from a worker */
            break;
        }
        if (PyErr_CheckSignals() < 0) {
            rc = -1;
            break;
        }
    }
    pp->joiners--;
    return rc;
}

void py_executors_clear_all(py_state *st)
{
    /* At module teardown every pool was joined by _shutdown_all; destroy
     * cannot block on threads that are gone. */
    while (st->pools != NULL) {
        py_pool *pp = st->pools;
        td_pool_shutdown(pp->core);
        if (td_pool_join(pp->core, 0) != TD_OK) {
            /* Workers still alive (exit hook bypassed): leak the pool
             * rather than free memory they still use. */
            registry_remove(pp);
            continue;
        }
        pool_free(pp);
    }
}

static void cancel_queued(void *ctx, td_task_fn fn, void *arg);

PyObject *py_executors_shutdown_all(PyObject *module, PyObject *unused)
{
    (void)unused;
    py_state *st = PyModule_GetState(module);
    st->exiting = 1;
    for (py_pool *pp = st->pools; pp != NULL; pp = pp->next) {
        pp->shutdown = 1;
        td_pool_shutdown(pp->core);
    }
    /* Queued tasks still run, as in the stdlib: the workers drain the
     * queues before they exit.  The list may change while a join has
     * the GIL released, so look for an unjoined pool from the top each
     * time. */
    for (;;) {
        py_pool *pending = NULL;
        for (py_pool *pp = st->pools; pp != NULL; pp = pp->next) {
            if (!td_pool_is_worker(pp->core) &&
                td_pool_join(pp->core, 0) == TD_ETIMEDOUT) {
                pending = pp;
                break;
            }
        }
        if (pending == NULL) {
            break;
        }
        if (join_workers(pending) < 0) {
            /* Ctrl-C at exit: cancel what has not started, so workers
             * finish soon instead of running into finalisation. */
            for (py_pool *pp = st->pools; pp != NULL; pp = pp->next) {
                py_map_stop_all(pp->map_jobs, NULL, 0);
                td_pool_drain(pp->core, cancel_queued, NULL);
            }
            return NULL;
        }
    }
    reap_orphans(st);
    Py_RETURN_NONE;
}

/* Collects the futures and map runners td_pool_after_fork_child reports
 * (no Python code may run meanwhile: a callback could reach a pool being
 * walked). */
typedef struct lost_task {
    td_task_fn fn;
    PyObject *arg;
} lost_task;

typedef struct lost_futures {
    lost_task *items;
    size_t count, capacity;
} lost_futures;

static void collect_lost(void *ctx, td_task_fn fn, void *arg)
{
    lost_futures *lost = ctx;
    if (lost->count == lost->capacity) {
        size_t cap = lost->capacity ? lost->capacity * 2 : 64;
        lost_task *grown = PyMem_Realloc(lost->items, cap * sizeof(*grown));
        if (grown == NULL) {
            /* Out of memory: drop the reference uncompleted (a waiter in
             * the child would wait, but nothing is corrupted). */
            if (fn == run_map_task) {
                py_map_runner_dropped(arg);
            } else {
                Py_DECREF((PyObject *)arg);
            }
            return;
        }
        lost->items = grown;
        lost->capacity = cap;
    }
    lost->items[lost->count++] = (lost_task){fn, arg};
}

PyObject *py_executors_after_fork_child(PyObject *module, PyObject *unused)
{
    (void)unused;
    py_state *st = PyModule_GetState(module);
    /* fork() itself left every pool and the waitset unlocked and shut
     * down (td_atfork).  The shared condition may be held by a thread the
     * child does not have: replace it before anything can use it. */
    PyObject *fresh = PyObject_CallNoArgs((PyObject *)Py_TYPE(st->condition));
    PyObject *fresh_waiters = fresh ? PyObject_GetAttrString(fresh,
                                                             "_waiters")
                                    : NULL;
    if (fresh_waiters == NULL) {
        Py_XDECREF(fresh);
        return NULL;
    }
    Py_SETREF(st->condition, fresh);
    Py_SETREF(st->condition_waiters, fresh_waiters);

    lost_futures lost = {NULL, 0, 0};
    for (py_pool *pp = st->pools; pp != NULL; pp = pp->next) {
        pp->forked = 1;
        pp->shutdown = 1;
        td_pool_after_fork_child(pp->core, collect_lost, &lost);
        /* Only the worker that forked, if any, exists in the child. */
        PySet_Clear(pp->live_threads);
        if (td_pool_is_worker(pp->core) && tls.thread != NULL &&
            PySet_Add(pp->live_threads, tls.thread) < 0) {
            PyErr_WriteUnraisable(pp->live_threads);
        }
    }
    int jobs = 0;
    for (py_pool *pp = st->pools; pp != NULL; pp = pp->next) {
        jobs |= pp->map_jobs != NULL;
    }
    PyObject *exc = NULL;
    if (lost.count > 0 || jobs) {
        exc = PyObject_CallFunction(
            PyExc_RuntimeError, "s",
            "this task was queued or running in a taskdemo pool when the "
            "process forked; the pool's threads do not exist in the child");
    }
    if (exc != NULL) {
        /* Map items that had not finished never will: their runners'
         * threads are gone, or the one that forked stops after its item. */
        for (py_pool *pp = st->pools; pp != NULL; pp = pp->next) {
            py_map_stop_all(pp->map_jobs, exc, 1);
        }
    }
    for (size_t i = 0; i < lost.count; i++) {
        lost_task t = lost.items[i];
        if (t.fn == run_map_task) {
            py_map_runner_dropped(t.arg);
            continue;
        }
        if (exc != NULL) {
            py_future_fail_in_fork_child(t.arg, exc);
        }
        Py_DECREF(t.arg);   /* the queue's or the lost worker's */
    }
    PyMem_Free(lost.items);
    if ((lost.count > 0 || jobs) && exc == NULL) {
        return NULL;
    }
    Py_XDECREF(exc);
    Py_RETURN_NONE;
}

/* ---- the executor type ------------------------------------------------ */

static int default_max_workers(unsigned *out)
{
    /* The stdlib's default: min(32, cpu_count + 4), with
     * os.process_cpu_count() where it exists (3.13+). */
    PyObject *os = PyImport_ImportModule("os");
    if (os == NULL) {
        return -1;
    }
    PyObject *fn = PyObject_GetAttrString(os, "process_cpu_count");
    if (fn == NULL) {
        PyErr_Clear();
        fn = PyObject_GetAttrString(os, "cpu_count");
    }
    Py_DECREF(os);
    if (fn == NULL) {
        return -1;
    }
    PyObject *n = PyObject_CallNoArgs(fn);
    Py_DECREF(fn);
    if (n == NULL) {
        return -1;
    }
    long cpus = n == Py_None ? 1 : PyLong_AsLong(n);
    Py_DECREF(n);
    if (cpus == -1 && PyErr_Occurred()) {
        return -1;
    }
    *out = (unsigned)(cpus + 4 < 32 ? cpus + 4 : 32);
    return 0;
}

/* The exception class a broken pool raises: the class attribute BROKEN
 * (CPython 3.14 added it to ThreadPoolExecutor, for subclasses to
 * override), else BrokenThreadPool. */
static int broken_type_of(PyObject *self, py_state *st, PyObject **out)
{
    PyObject *type = NULL;
    if (PyObject_GetOptionalAttrString((PyObject *)Py_TYPE(self), "BROKEN",
                                       &type) < 0) {
        return -1;
    }
    if (type == NULL) {
        type = Py_NewRef(st->BrokenThreadPool);
    }
    if (!PyExceptionClass_Check(type)) {
        PyErr_Format(PyExc_TypeError,
                     "%.100s.BROKEN must be an exception class, not %.100s",
                     Py_TYPE(self)->tp_name, Py_TYPE(type)->tp_name);
        Py_DECREF(type);
        return -1;
    }
    *out = type;
    return 0;
}

static int parse_max_workers(PyObject *obj, unsigned *out)
{
    if (obj == Py_None) {
        return default_max_workers(out);
    }
    if (!PyLong_Check(obj)) {
        PyErr_Format(PyExc_TypeError,
                     "max_workers must be an int or None, not %.100s",
                     Py_TYPE(obj)->tp_name);
        return -1;
    }
    int overflow;
    long long n = PyLong_AsLongLongAndOverflow(obj, &overflow);
    if (n == -1 && PyErr_Occurred()) {
        return -1;
    }
    if (overflow < 0 || (overflow == 0 && n <= 0)) {
        PyErr_SetString(PyExc_ValueError,
                        "max_workers must be greater than 0");
        return -1;
    }
    /* Threads start lazily, so a huge limit costs nothing up front. */
    *out = overflow > 0 || n > (long long)UINT32_MAX ? UINT32_MAX
                                                      : (unsigned)n;
    return 0;
}

static int executor_init(PyObject *op, PyObject *args, PyObject *kwargs)
{
    static char *kwlist[] = {"max_workers", "thread_name_prefix",
                             "initializer", "initargs", "timeline_size",
                             NULL};
    executor_object *self = (executor_object *)op;
    PyObject *max_workers = Py_None, *prefix = NULL, *initializer = Py_None;
    PyObject *initargs = NULL, *timeline_size = NULL;
    if (!PyArg_ParseTupleAndKeywords(args, kwargs,
                                     "|OOOO$O:ThreadPoolExecutor", kwlist,
                                     &max_workers, &prefix, &initializer,
                                     &initargs, &timeline_size)) {
        return -1;
    }
    if (self->pool != NULL) {
        PyErr_SetString(PyExc_RuntimeError,
                        "ThreadPoolExecutor.__init__ called twice");
        return -1;
    }
    py_state *st = py_state_from_type(Py_TYPE(op));
    if (st == NULL) {
        return -1;
    }
    unsigned nmax;
    if (parse_max_workers(max_workers, &nmax) < 0) {
        return -1;
    }
    if (prefix != NULL && !PyUnicode_Check(prefix)) {
        PyErr_Format(PyExc_TypeError,
                     "thread_name_prefix must be a str, not %.100s",
                     Py_TYPE(prefix)->tp_name);
        return -1;
    }
    if (initializer != Py_None && !PyCallable_Check(initializer)) {
        PyErr_SetString(PyExc_TypeError, "initializer must be a callable");
        return -1;
    }
    if (initargs != NULL && !PyTuple_Check(initargs)) {
        PyErr_Format(PyExc_TypeError, "initargs must be a tuple, not %.100s",
                     Py_TYPE(initargs)->tp_name);
        return -1;
    }
    size_t ntimeline = DEFAULT_TIMELINE_SIZE;
    if (timeline_size != NULL) {
        if (!PyLong_Check(timeline_size)) {
            PyErr_Format(PyExc_TypeError,
                         "timeline_size must be an int, not %.100s",
                         Py_TYPE(timeline_size)->tp_name);
            return -1;
        }
        Py_ssize_t n = PyLong_AsSsize_t(timeline_size);
        if (n == -1 && PyErr_Occurred()) {
            return -1;
        }
        if (n < 0 || n > MAX_TIMELINE_SIZE) {
            PyErr_Format(PyExc_ValueError,
                         "timeline_size must be from 0 to %d, not %zd",
                         MAX_TIMELINE_SIZE, n);
            return -1;
        }
        ntimeline = (size_t)n;
    }

    py_pool *pp = PyMem_Calloc(1, sizeof(*pp));
    if (pp == NULL) {
        PyErr_NoMemory();
        return -1;
    }
    pp->st = st;
    pp->max_workers = nmax;
    pp->timeline_size = ntimeline;
    pp->labels = Py_BuildValue("[s]", "?");
    pp->label_tags = PyDict_New();
    pp->live_threads = PySet_New(NULL);
    if (broken_type_of((PyObject *)self, st, &pp->broken_type) < 0) {
        goto fail;
    }
    if (prefix != NULL && PyUnicode_GET_LENGTH(prefix) > 0) {
        pp->prefix = Py_NewRef(prefix);
    } else {
        pp->prefix = PyUnicode_FromFormat("ThreadPoolExecutor-%lu",
                                          st->executor_counter++);
    }
    pp->initializer = initializer == Py_None ? NULL
                                             : Py_NewRef(initializer);
    pp->initargs = initargs ? Py_NewRef(initargs) : PyTuple_New(0);
    const char *prefix_utf8 = pp->prefix ? PyUnicode_AsUTF8(pp->prefix)
                                         : NULL;
    if (prefix_utf8 == NULL || pp->initargs == NULL || pp->labels == NULL ||
        pp->label_tags == NULL || pp->live_threads == NULL) {
        goto fail;
    }
    td_pool_hooks hooks = worker_hooks_template;
    hooks.ctx = pp;
    td_pool_config cfg = {
        .max_threads = nmax,
        .name_prefix = prefix_utf8,
        .hooks = &hooks,
        .timeline_capacity = ntimeline,
    };
    int rc = td_pool_create(&pp->core, &cfg);
    if (rc != TD_OK) {
        py_raise(st, rc);
        goto fail;
    }
    registry_add(st, pp);
    self->pool = pp;
    /* A convenient moment to free pools dropped earlier. */
    reap_orphans(st);
    return 0;

fail:
    Py_CLEAR(pp->labels);
    Py_CLEAR(pp->label_tags);
    Py_CLEAR(pp->live_threads);
    Py_CLEAR(pp->broken_type);
    Py_CLEAR(pp->prefix);
    Py_CLEAR(pp->initializer);
    Py_CLEAR(pp->initargs);
    PyMem_Free(pp);
    return -1;
}

static py_pool *live_pool(executor_object *self)
{
    if (self->pool == NULL) {
        PyErr_SetString(PyExc_RuntimeError,
                        "ThreadPoolExecutor.__init__ was not called");
    }
    return self->pool;
}

/* ---- timeline labels ---------------------------------------------------
 *
 * The core records a 32-bit tag per task; the binding maps tags to the
 * task's name.  Naming happens once per distinct callable "kind": the code
 * object of a function (every lambda made by one line of source shares
 * it), the builtin, the class, or else the callable's type.  A one-entry
 * cache makes submitting the same function again cost a pointer compare.
 */

static PyObject *label_key(PyObject *fn)
{
    if (PyMethod_Check(fn)) {
        fn = PyMethod_GET_FUNCTION(fn);
    }
    if (PyFunction_Check(fn)) {
        return PyFunction_GET_CODE(fn);
    }
    if (PyCFunction_Check(fn) || PyType_Check(fn)) {
        return fn;
    }
    return (PyObject *)Py_TYPE(fn);
}

static PyObject *label_of(PyObject *fn, PyObject *key)
{
    static const char *const attrs[] = {"co_qualname", "co_name",
                                        "__qualname__", "__name__"};
    PyObject *sources[] = {key, key, fn, fn};
    for (size_t i = 0; i < sizeof(attrs) / sizeof(attrs[0]); i++) {
        PyObject *name = PyObject_GetAttrString(sources[i], attrs[i]);
        if (name != NULL && PyUnicode_Check(name)) {
            return name;
        }
        Py_XDECREF(name);
        PyErr_Clear();
    }
    return PyUnicode_FromString(Py_TYPE(fn)->tp_name);
}

/* The timeline tag for fn; 0 ("?") when out of labels or memory. */
static uint32_t label_tag(py_pool *pp, PyObject *fn)
{
    PyObject *key = label_key(fn);
    if (key == pp->last_key) {
        return pp->last_tag;
    }
    PyObject *found = PyDict_GetItemWithError(pp->label_tags, key);
    if (found != NULL) {
        pp->last_key = key;
        pp->last_tag = (uint32_t)PyLong_AsUnsignedLong(found);
        return pp->last_tag;
    }
    if (PyErr_Occurred() ||
        PyList_GET_SIZE(pp->labels) >= MAX_LABELS) {
        PyErr_Clear();
        return 0;
    }
    uint32_t tag = (uint32_t)PyList_GET_SIZE(pp->labels);
    PyObject *label = label_of(fn, key);
    PyObject *tag_obj = PyLong_FromUnsignedLong(tag);
    if (label == NULL || tag_obj == NULL ||
        PyList_Append(pp->labels, label) < 0 ||
        PyDict_SetItem(pp->label_tags, key, tag_obj) < 0) {
        Py_XDECREF(label);
        Py_XDECREF(tag_obj);
        PyErr_Clear();
        return 0;
    }
    Py_DECREF(label);
    Py_DECREF(tag_obj);
    pp->last_key = key;
    pp->last_tag = tag;
    return tag;
}

PyDoc_STRVAR(timeline_raw_doc,
"_timeline_raw()\n--\n\n"
"The C pool's task records, oldest first, as a list of (label, worker,\n"
"submit_ns, start_ns, end_ns) tuples, and how many older ones were\n"
"dropped.  Use ThreadPoolExecutor.timeline().");

static PyObject *executor_timeline_raw(PyObject *op, PyObject *unused);

int py_pool_check_open(py_pool *pp)
{
    py_state *st = pp->st;
    if (pp->broken != NULL) {
        PyErr_SetObject(pp->broken_type, pp->broken);
        return -1;
    }
    if (pp->forked) {
        PyErr_SetString(PyExc_RuntimeError,
                        "cannot schedule new futures on a pool inherited "
                        "across fork(); create a new pool in the child");
        return -1;
    }
    if (pp->shutdown) {
        PyErr_SetString(PyExc_RuntimeError,
                        "cannot schedule new futures after shutdown");
        return -1;
    }
    if (st->exiting) {
        PyErr_SetString(PyExc_RuntimeError,
                        "cannot schedule new futures after interpreter "
                        "shutdown");
        return -1;
    }
    return 0;
}

py_pool *py_executor_pool(PyObject *executor)
{
    return live_pool((executor_object *)executor);
}

td_pool *py_pool_core(py_pool *pp)
{
    return pp->core;
}

unsigned py_pool_max_workers(py_pool *pp)
{
    return pp->max_workers;
}

int py_pool_timing(py_pool *pp)
{
    return pp->timeline_size > 0;
}

uint32_t py_pool_tag(py_pool *pp, PyObject *fn)
{
    return pp->timeline_size > 0 ? label_tag(pp, fn) : 0;
}

py_map_job **py_pool_map_jobs(py_pool *pp)
{
    return &pp->map_jobs;
}

/* How long a submit waits for the workers it started to register, at
 * most: they need only the GIL, so this bounds the unforeseen. */
#define WORKER_REGISTER_NS (5LL * 1000 * 1000 * 1000)

/* A submit that started a worker waits, with the GIL released, until the
 * worker has registered with threading (worker_start), as the stdlib's
 * Thread.start() waits for its thread: threading.active_count(),
 * enumerate() and executor._threads then count it when submit returns.
 * Only submits that start a worker wait, at most max_workers per pool;
 * the check costs one atomic load.  No signal check here: the task is
 * queued already, and the signal is handled at the next opportunity. */
void py_pool_await_new_workers(py_pool *pp)
{
    if (pp->started >= td_pool_spawned(pp->core)) {
        return;
    }
    uint64_t start = td_clock_now_ns();
    while (!pp->forked && pp->started < td_pool_spawned(pp->core) &&
           td_clock_now_ns() - start < WORKER_REGISTER_NS) {
        Py_BEGIN_ALLOW_THREADS
        struct timespec pause = {0, 10 * 1000};
        nanosleep(&pause, NULL);
        Py_END_ALLOW_THREADS
    }
}

int py_pool_submit_runner(py_pool *pp, PyObject *job)
{
    Py_INCREF(job);   /* the queue's reference, dropped by run_map_task */
    int rc = td_pool_submit_tagged(pp->core, run_map_task, job,
                                   TD_POOL_TAG_UNRECORDED);
    if (rc != TD_OK) {
        Py_DECREF(job);
    }
    return rc;
}

PyDoc_STRVAR(submit_doc,
"submit(fn, /, *args, **kwargs)\n--\n\n"
"Schedule fn(*args, **kwargs) on a worker and return its Future.\n\n"
"Raises TypeError if fn is not callable, RuntimeError after shutdown and\n"
"BrokenThreadPool once an initializer failed.");

static PyObject *executor_submit(PyObject *op, PyObject *const *args,
                                 Py_ssize_t nargs, PyObject *kwnames)
{
    py_pool *pp = live_pool((executor_object *)op);
    if (pp == NULL) {
        return NULL;
    }
    py_state *st = pp->st;
    if (nargs < 1) {
        PyErr_SetString(PyExc_TypeError,
                        "submit() missing 1 required positional argument: "
                        "'fn'");
        return NULL;
    }
    PyObject *fn = args[0];
    if (!PyCallable_Check(fn)) {
        PyErr_Format(PyExc_TypeError,
                     "submit() needs a callable, not %.100s",
                     Py_TYPE(fn)->tp_name);
        return NULL;
    }
    if (py_pool_check_open(pp) < 0) {
        return NULL;
    }
    Py_ssize_t nkw = kwnames ? PyTuple_GET_SIZE(kwnames) : 0;
    PyObject *call_args = PyTuple_New(nargs - 1);
    if (call_args == NULL) {
        return NULL;
    }
    for (Py_ssize_t i = 1; i < nargs; i++) {
        PyTuple_SET_ITEM(call_args, i - 1, Py_NewRef(args[i]));
    }
    PyObject *call_kwargs = NULL;
    if (nkw > 0) {
        call_kwargs = PyDict_New();
        if (call_kwargs == NULL) {
            Py_DECREF(call_args);
            return NULL;
        }
        for (Py_ssize_t i = 0; i < nkw; i++) {
            if (PyDict_SetItem(call_kwargs, PyTuple_GET_ITEM(kwnames, i),
                               args[nargs + i]) < 0) {
                Py_DECREF(call_args);
                Py_DECREF(call_kwargs);
                return NULL;
            }
        }
    }
    PyObject *future = py_future_new_task(st, fn, call_args, call_kwargs);
    Py_DECREF(call_args);
    Py_XDECREF(call_kwargs);
    if (future == NULL) {
        return NULL;
    }
    uint32_t tag = pp->timeline_size > 0 ? label_tag(pp, fn) : 0;
    Py_INCREF(future);   /* the queue's reference, dropped by run_task */
    int rc = td_pool_submit_tagged(pp->core, run_task, future, tag);
    if (rc != TD_OK) {
        Py_DECREF(future);
        Py_DECREF(future);
        return py_raise(st, rc);
    }
    py_pool_await_new_workers(pp);
    return future;
}

static void cancel_queued(void *ctx, td_task_fn fn, void *arg)
{
    (void)ctx;
    if (fn == run_map_task) {
        py_map_runner_dropped(arg);   /* its job was stopped already */
        return;
    }
    PyObject *future = arg;
    /* cancel() then notify: unlike the stdlib, which only cancels, waiters
     * in as_completed() and wait() hear of it instead of hanging. */
    PyObject *r = PyObject_CallMethod(future, "cancel", NULL);
    if (r != NULL) {
        Py_DECREF(r);
        r = PyObject_CallMethod(future, "set_running_or_notify_cancel",
                                NULL);
    }
    if (r == NULL) {
        PyErr_WriteUnraisable(future);
    }
    Py_XDECREF(r);
    Py_DECREF(future);   /* the queue's reference */
}

PyDoc_STRVAR(shutdown_doc,
"shutdown(wait=True, *, cancel_futures=False)\n--\n\n"
"Stop accepting work.  cancel_futures cancels what has not started; the\n"
"rest still runs.  wait=True blocks (GIL released, Ctrl-C works) until\n"
"every worker has exited and been joined; called from one of this pool's\n"
"own tasks it does not wait (a worker cannot wait for itself).");

static PyObject *executor_shutdown(PyObject *op, PyObject *args,
                                   PyObject *kwargs)
{
    static char *kwlist[] = {"wait", "cancel_futures", NULL};
    int wait = 1, cancel_futures = 0;
    if (!PyArg_ParseTupleAndKeywords(args, kwargs, "|p$p:shutdown", kwlist,
                                     &wait, &cancel_futures)) {
        return NULL;
    }
    py_pool *pp = live_pool((executor_object *)op);
    if (pp == NULL) {
        return NULL;
    }
    pp->shutdown = 1;
    if (cancel_futures) {
        /* Map items not started are cancelled as queued futures are, even
         * those of jobs whose runners all run already. */
        py_map_stop_all(pp->map_jobs, NULL, 0);
        td_pool_drain(pp->core, cancel_queued, NULL);
    }
    td_pool_shutdown(pp->core);
    if (wait && join_workers(pp) < 0) {
        return NULL;
    }
    Py_RETURN_NONE;
}

static PyObject *executor_stats(PyObject *op, PyObject *unused)
{
    (void)unused;
    py_pool *pp = live_pool((executor_object *)op);
    if (pp == NULL) {
        return NULL;
    }
    td_pool_stats s;
    td_pool_get_stats(pp->core, &s);
    return Py_BuildValue("{s:I,s:I,s:I,s:n,s:I}", "threads", s.threads,
                         "idle", s.idle, "running", s.running, "queued",
                         (Py_ssize_t)s.queued, "spawned", s.spawned);
}

static PyObject *executor_timeline_raw(PyObject *op, PyObject *unused)
{
    (void)unused;
    py_pool *pp = live_pool((executor_object *)op);
    if (pp == NULL) {
        return NULL;
    }
    size_t max = pp->timeline_size, count = 0;
    uint64_t dropped = 0;
    td_task_record *recs = NULL;
    if (max > 0) {
        recs = PyMem_Malloc(max * sizeof(*recs));
        if (recs == NULL) {
            return PyErr_NoMemory();
        }
    }
    td_pool_timeline(pp->core, recs, max, &count, &dropped);
    PyObject *list = PyList_New((Py_ssize_t)count);
    for (size_t i = 0; list != NULL && i < count; i++) {
        td_task_record *r = &recs[i];
        PyObject *label = r->tag < (uint32_t)PyList_GET_SIZE(pp->labels)
                              ? PyList_GET_ITEM(pp->labels, r->tag)
                              : PyList_GET_ITEM(pp->labels, 0);
        PyObject *item = Py_BuildValue("(OIKKKI)", label, r->worker,
                                       (unsigned long long)r->submit_ns,
                                       (unsigned long long)r->start_ns,
                                       (unsigned long long)r->end_ns,
                                       r->items);
        if (item == NULL) {
            Py_CLEAR(list);
            break;
        }
        PyList_SET_ITEM(list, (Py_ssize_t)i, item);
    }
    PyMem_Free(recs);
    if (list == NULL) {
        return NULL;
    }
    return Py_BuildValue("(NK)", list, (unsigned long long)dropped);
}

PyDoc_STRVAR(worker_threads_doc,
"_worker_threads()\n--\n\n"
"The set of the workers' threading.Thread objects, kept up to date by the\n"
"workers: executor._threads' data.");

static PyObject *executor_worker_threads(PyObject *op, PyObject *unused)
{
    (void)unused;
    py_pool *pp = live_pool((executor_object *)op);
    return pp ? Py_NewRef(pp->live_threads) : NULL;
}

static PyObject *executor_get_max_workers(PyObject *op, void *closure)
{
    (void)closure;
    py_pool *pp = live_pool((executor_object *)op);
    return pp ? PyLong_FromUnsignedLong(pp->max_workers) : NULL;
}

static PyObject *executor_get_prefix(PyObject *op, void *closure)
{
    (void)closure;
    py_pool *pp = live_pool((executor_object *)op);
    return pp ? Py_NewRef(pp->prefix) : NULL;
}

static PyObject *executor_get_shutdown(PyObject *op, void *closure)
{
    (void)closure;
    py_pool *pp = live_pool((executor_object *)op);
    return pp ? PyBool_FromLong(pp->shutdown) : NULL;
}

static PyObject *executor_get_broken(PyObject *op, void *closure)
{
    (void)closure;
    py_pool *pp = live_pool((executor_object *)op);
    if (pp == NULL) {
        return NULL;
    }
    return pp->broken ? Py_NewRef(pp->broken) : Py_NewRef(Py_False);
}

static int executor_traverse(PyObject *op, visitproc visit, void *arg)
{
    executor_object *self = (executor_object *)op;
    Py_VISIT(Py_TYPE(op));
    if (self->pool != NULL) {
        Py_VISIT(self->pool->initializer);
        Py_VISIT(self->pool->initargs);
    }
    return 0;
}

static int executor_clear(PyObject *op)
{
    /* The initializer stays: workers that start after the executor is
     * collected still need it (the py_pool owns it).  A cycle through it
     * is broken by clearing the cycle's other members. */
    (void)op;
    return 0;
}

static void executor_dealloc(PyObject *op)
{
    executor_object *self = (executor_object *)op;
    PyTypeObject *tp = Py_TYPE(op);
    PyObject_GC_UnTrack(op);
    py_pool *pp = self->pool;
    if (pp != NULL) {
        /* Like the stdlib's pool when its executor is collected: queued
         * tasks still run, then the workers exit.  No joining here, so
         * garbage collection never blocks; reap_orphans frees it later. */
        self->pool = NULL;
        pp->orphaned = 1;
        pp->shutdown = 1;
        td_pool_shutdown(pp->core);
        reap_orphans(pp->st);
    }
    tp->tp_free(op);
    Py_DECREF(tp);
}

static PyMethodDef executor_methods[] = {
    {"submit", (PyCFunction)(void (*)(void))executor_submit,
     METH_FASTCALL | METH_KEYWORDS, submit_doc},
    {"map", (PyCFunction)(void (*)(void))py_map,
     METH_FASTCALL | METH_KEYWORDS, py_map_doc},
    {"shutdown", (PyCFunction)(void (*)(void))executor_shutdown,
     METH_VARARGS | METH_KEYWORDS, shutdown_doc},
    {"_timeline_raw", executor_timeline_raw, METH_NOARGS, timeline_raw_doc},
    {"_worker_threads", executor_worker_threads, METH_NOARGS,
     worker_threads_doc},
    {"_stats", executor_stats, METH_NOARGS,
     "_stats()\n--\n\nCounters of the C pool: threads, idle, running, "
     "queued, spawned."},
    {NULL, NULL, 0, NULL},
};

static PyGetSetDef executor_getset[] = {
    {"_max_workers", executor_get_max_workers, NULL,
     "The maximum number of worker threads.", NULL},
    {"_thread_name_prefix", executor_get_prefix, NULL,
     "Workers are named {prefix}_{i}.", NULL},
    {"_shutdown", executor_get_shutdown, NULL,
     "True once shutdown() was called.", NULL},
    {"_broken", executor_get_broken, NULL,
     "False, or why the pool is broken.", NULL},
    {NULL, NULL, NULL, NULL, NULL},
};

static PyType_Slot executor_slots[] = {
    {Py_tp_doc, "The C part of taskdemo.ThreadPoolExecutor."},
    {Py_tp_new, PyType_GenericNew},
    {Py_tp_init, executor_init},
    {Py_tp_dealloc, executor_dealloc},
    {Py_tp_traverse, executor_traverse},
    {Py_tp_clear, executor_clear},
    {Py_tp_methods, executor_methods},
    {Py_tp_getset, executor_getset},
    {0, NULL},
};

static PyType_Spec executor_spec = {
    .name = "taskdemo._taskdemo.ExecutorBase",
    .basicsize = sizeof(executor_object),
    .flags = Py_TPFLAGS_DEFAULT | Py_TPFLAGS_BASETYPE | Py_TPFLAGS_HAVE_GC,
    .slots = executor_slots,
};

int py_executor_init_type(PyObject *module, py_state *st)
{
    st->ExecutorType = (PyTypeObject *)PyType_FromModuleAndSpec(
        module, &executor_spec, NULL);
    if (st->ExecutorType == NULL) {
        return -1;
    }
    return PyModule_AddType(module, st->ExecutorType);
}
