/*
 * py_module.h - what the binding files (_taskdemo.c, py_future.c,
 * py_executor.c, py_wait.c) share: the module state and the functions each
 * file exports to the others.  Only binding files include Python.h.
 */
#ifndef TD_PY_MODULE_H
#define TD_PY_MODULE_H

#define PY_SSIZE_T_CLEAN
#include <Python.h>

#include <stdatomic.h>

#include "py_compat.h"

#include "td_pool.h"
#include "td_waitset.h"

/* Future states, ordered so that "done" is state >= PY_CANCELLED. */
enum {
    PY_PENDING = 0,
    PY_RUNNING = 1,
    PY_CANCELLED = 2,
    PY_CANCELLED_AND_NOTIFIED = 3,
    PY_FINISHED = 4,
    PY_NSTATES = 5
};

typedef struct py_pool py_pool;
typedef struct py_map_job py_map_job;

/* What py_wait.c (taskdemo.as_completed and wait) keeps in the state. */
typedef struct py_wait_state {
    PyTypeObject *WaiterType;
    PyTypeObject *AsCompletedType;
    PyObject *std_as_completed;    /* concurrent.futures' own functions */
    PyObject *std_wait;
    PyObject *DoneAndNotDoneFutures;
    PyObject *return_when[4];      /* _AS_COMPLETED, FIRST_COMPLETED, ... */
    PyObject *monotonic;           /* time.monotonic */
    PyObject *str_condition, *str_state, *str_waiters, *str_append,
             *str_remove, *str_cancelled, *str_exception;   /* interned */
} py_wait_state;

typedef struct py_state {
    PyTypeObject *FutureType;
    PyTypeObject *ExecutorType;
    PyTypeObject *StopwatchType;
    PyTypeObject *MapJobType;      /* py_map.c */
    PyTypeObject *MapIterType;
    PyObject *TaskError;

    /* Borrowed from concurrent.futures and threading at exec time. */
    PyObject *BaseFuture;          /* concurrent.futures.Future */
    PyObject *CancelledError;
    PyObject *TimeoutError;        /* concurrent.futures.TimeoutError */
    PyObject *InvalidStateError;
    PyObject *BrokenThreadPool;
    PyObject *condition;   /* one threading.Condition for all futures */
    PyObject *condition_waiters;   /* its _waiters deque, never replaced */
    PyObject *str_acquire, *str_release, *str_notify_all;   /* interned */
    PyObject *logger;              /* logging.getLogger("concurrent.futures") */
    PyObject *gil_yield;           /* a no-op Python function: calling it
                                      lets a GIL waiter in (py_executor.c) */
    PyObject *state_names[PY_NSTATES];   /* 'PENDING', ... as the stdlib */

    /* Set by taskdemo/__init__.py: give a worker its threading.Thread. */
    PyObject *register_worker;
    PyObject *unregister_worker;

    td_waitset waitset;    /* every C-level wait on a future sleeps here */
    int waitset_ready;
    unsigned long executor_counter;   /* names ThreadPoolExecutor-N */
    int exiting;           /* interpreter shutdown began: refuse new work */
    py_pool *pools;        /* every core pool not yet destroyed (GIL) */
    py_wait_state wait;    /* py_wait.c */
} py_state;

/* Module state from any of our heap types, or from the module. */
py_state *py_state_from_type(PyTypeObject *tp);

/* Raises the Python exception for a core error code; returns NULL. */
PyObject *py_raise(py_state *st, int rc);

/* module.name as a new reference, importing module; NULL with an
 * exception set. */
PyObject *py_import_attr(const char *module, const char *name);

/* Converts a timeout argument (None, int or float seconds) to ns: -1 for
 * None, 0 for negative values (as the stdlib), capped at ~292 years.
 * Returns 0 on success, -1 with an exception set. */
int py_timeout_ns(PyObject *timeout, int64_t *out_ns);

/*
 * Blocks with the GIL released until *word != expected, for at most
 * timeout_ns (< 0: no limit), waking every 50 ms to run signal handlers so
 * Ctrl-C raises KeyboardInterrupt.  Returns 1 when the word changed, 0 on
 * timeout, -1 with an exception set.
 */
int py_wait_word(py_state *st, const _Atomic int *word, int expected,
                 _Atomic unsigned *nwaiters, int64_t timeout_ns);

/* As py_wait_word, until *word >= least (td_waitset_wait_below). */
int py_wait_word_below(py_state *st, const _Atomic int *word, int least,
                       _Atomic unsigned *nwaiters, int64_t timeout_ns);

/* py_future.c */
int py_future_init_type(PyObject *module, py_state *st);
/* A new pending future that will call fn(*args, **kwargs). */
PyObject *py_future_new_task(py_state *st, PyObject *fn, PyObject *args,
                             PyObject *kwargs);
/*
 * Runs the future's call on this thread and completes it (GIL held).  If a
 * thread waits for the result, the wake-up is left to the caller: it
 * returns the waitset to broadcast on, else NULL.  The woken thread wants
 * the GIL at once, so a worker gives the GIL up first and then wakes it;
 * waking first would only make the waiter sleep again on the GIL.
 */
td_waitset *py_future_run(PyObject *future);
/*
 * The C waiter slot (see py_wait.c), GIL held, no Python code run:
 * py_future_watch puts waiter in the future's slot with its index there
 * and returns 1, returns 0 if the slot already holds this waiter, -1 if it
 * holds another one; *state gets the future's state either way.  Once done,
 * the future calls py_waiter_notify(waiter, index, ...) exactly once.
 * py_future_unwatch empties the slot if it holds waiter.
 * py_future_raised: finished with an exception.
 */
int py_future_watch(PyObject *future, PyObject *waiter, int32_t index,
                    int *state);
void py_future_unwatch(PyObject *future, PyObject *waiter);
int py_future_raised(PyObject *future);
/* Completes a future with exc unless it is already done (GIL held). */
void py_future_fail(PyObject *future, PyObject *exc);
/* The same in a fork child, without callbacks, waiters or condition. */
void py_future_fail_in_fork_child(PyObject *future, PyObject *exc);

/* py_wait.c */
enum { PY_NOTIFY_RESULT, PY_NOTIFY_EXCEPTION, PY_NOTIFY_CANCELLED };
int py_wait_init(PyObject *module, py_state *st);
int py_wait_traverse(py_wait_state *ws, visitproc visit, void *arg);
void py_wait_clear(py_wait_state *ws);
/* A watched future is done (how: PY_NOTIFY_*).  GIL held; runs no Python
 * code.  Wakes the waiting thread, or, when owed_wake is not NULL, sets
 * *owed_wake for the caller to wake it later (see py_future_run). */
void py_waiter_notify(PyObject *waiter, int32_t index, int how,
                      int *owed_wake);

/* py_executor.c */
int py_executor_init_type(PyObject *module, py_state *st);
PyObject *py_executors_shutdown_all(PyObject *module, PyObject *unused);
PyObject *py_executors_after_fork_child(PyObject *module, PyObject *unused);
void py_executors_clear_all(py_state *st);
/* For py_map.c (GIL held).  The executor's pool, or NULL with an
 * exception; -1 with the stdlib's exception when pp takes no new work;
 * the core, max_workers, whether it keeps a timeline, the timeline tag
 * for fn, and the head of its list of map jobs with runners. */
py_pool *py_executor_pool(PyObject *executor);
int py_pool_check_open(py_pool *pp);
td_pool *py_pool_core(py_pool *pp);
unsigned py_pool_max_workers(py_pool *pp);
int py_pool_timing(py_pool *pp);
uint32_t py_pool_tag(py_pool *pp, PyObject *fn);
py_map_job **py_pool_map_jobs(py_pool *pp);
/* Queues a runner of the map job; the queue holds a new reference.
 * Returns a TD_* code. */
int py_pool_submit_runner(py_pool *pp, PyObject *job);
/* After a submit that may have started workers, once the caller's state
 * is consistent (it releases the GIL): waits until they have registered
 * with threading, as Thread.start() does.  Cheap when none started. */
void py_pool_await_new_workers(py_pool *pp);
/* On a worker, between units of work of one task: gives the GIL to other
 * threads if this worker has held it too long.  Returns 1 if it did.  It
 * reads the clock: call it every few dozen units, not after each. */
int py_worker_breathe(void);

/* py_map.c */
int py_map_init_types(PyObject *module, py_state *st);
/* ExecutorBase.map(fn, *iterables, timeout=None, chunksize=1,
 * buffersize=None). */
extern const char py_map_doc[];
PyObject *py_map(PyObject *executor, PyObject *const *args,
                 Py_ssize_t nargs, PyObject *kwnames);
/* A runner task's body, GIL held: runs items until none is left.  Like
 * py_future_run, returns the waitset to wake once the GIL is given up, or
 * NULL.  The caller then drops the queue's reference to the job. */
td_waitset *py_map_run(PyObject *job);
/* A queued runner that will never run (drained, lost in fork): forgets it
 * and drops the queue's reference. */
void py_map_runner_dropped(PyObject *job);
/* Stops every job on a pool's list: items not started never start, and
 * raise exc when reached (NULL: CancelledError); with running_too, so do
 * items running now (their threads are gone after fork()). */
void py_map_stop_all(py_map_job *list, PyObject *exc, int running_too);
/* Takes every job off the list (the pool is being freed). */
void py_map_detach_all(py_map_job **list);

#endif /* TD_PY_MODULE_H */
