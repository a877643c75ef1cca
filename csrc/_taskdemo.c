/*
 * _taskdemo.c - the extension module: multi-phase init, module state, and
 * the small functions (native sleep/spin, thread_count, the Stopwatch type).
 * The future type lives in py_future.c, the executor in py_executor.c,
 * as_completed() and wait() in py_wait.c.
 *
 * Waiting: every blocking call waits in 50 ms slices with the GIL released
 * and runs signal handlers between slices (like acquire_timed in CPython's
 * _threadmodule.c), so Ctrl-C interrupts it promptly.
 */
#include "py_module.h"

#include <math.h>

#include "td_clock.h"
#include "td_sw.h"
#include "td_threads.h"

#define SLICE_NS (50 * 1000 * 1000)
#define MAX_TIMEOUT_S 9.2e9   /* ~292 years: fits int64 nanoseconds */
#define MAX_FINITE_TIMEOUT_S 1e8   /* ~3 years: deadlines stay in int64 */

static PyModuleDef module_def;

py_state *py_state_from_type(PyTypeObject *tp)
{
    /* Walk the MRO, so Python subclasses of our types find us too
     * (PyType_GetModuleByDef does this, but only from 3.11 on). */
    PyObject *mro = tp->tp_mro;
    for (Py_ssize_t i = 0; mro && i < PyTuple_GET_SIZE(mro); i++) {
        PyTypeObject *t = (PyTypeObject *)PyTuple_GET_ITEM(mro, i);
        if (!(t->tp_flags & Py_TPFLAGS_HEAPTYPE)) {
            continue;
        }
        PyObject *m = ((PyHeapTypeObject *)t)->ht_module;
        if (m != NULL && PyModule_GetDef(m) == &module_def) {
            return PyModule_GetState(m);
        }
    }
    PyErr_SetString(PyExc_TypeError, "not a taskdemo type");
    return NULL;
}

PyObject *py_raise(py_state *st, int rc)
{
    switch (rc) {
    case TD_ENOMEM:
        return PyErr_NoMemory();
    case TD_EINVAL:
        PyErr_SetString(PyExc_ValueError, td_strerror(rc));
        return NULL;
    case TD_ETIMEDOUT:
        PyErr_SetString(PyExc_TimeoutError, td_strerror(rc));
        return NULL;
    case TD_ENOSYS:
        PyErr_SetString(PyExc_NotImplementedError, td_strerror(rc));
        return NULL;
    case TD_EAGAIN:
        /* The stdlib's words when a thread cannot start. */
        PyErr_SetString(PyExc_RuntimeError, "can't start new thread");
        return NULL;
    default:
        PyErr_SetString(st->TaskError, td_strerror(rc));
        return NULL;
    }
}

/* Seconds (a real number, not NaN, >= 0 unless negative_is_zero) to ns.
 * A timeout (cap_huge 1) of more than ~3 years means no limit (-1), so a
 * deadline "now + timeout" never overflows; a duration (cap_huge 0) past
 * ~292 years (the int64 ns range) is an OverflowError, as time.sleep
 * raises, since an endless native task on a worker could never be
 * interrupted. */
static int seconds_to_ns(PyObject *obj, const char *what,
                         int negative_is_zero, int cap_huge, int64_t *out)
{
    /* Any real number will do (int, float, Fraction, Decimal), as for
     * time.sleep; strings and None do not. */
    int not_a_number = PyUnicode_Check(obj) || PyBytes_Check(obj) ||
                       obj == Py_None;
    double s = not_a_number ? -1.0 : PyFloat_AsDouble(obj);
    if (!not_a_number && s == -1.0 && PyErr_Occurred()) {
        if (PyErr_ExceptionMatches(PyExc_OverflowError) && cap_huge) {
            PyErr_Clear();   /* an int too big for a double: no limit */
            *out = -1;
            return 0;
        }
        if (!PyErr_ExceptionMatches(PyExc_TypeError)) {
            return -1;   /* OverflowError for a duration, or worse */
        }
        PyErr_Clear();
        not_a_number = 1;
    }
    if (not_a_number) {
        PyErr_Format(PyExc_TypeError,
                     "%s must be a number of seconds, not %.100s", what,
                     Py_TYPE(obj)->tp_name);
        return -1;
    }
    if (isnan(s)) {
        PyErr_Format(PyExc_ValueError, "%s must not be NaN", what);
        return -1;
    }
    if (s < 0) {
        if (!negative_is_zero) {
            PyErr_Format(PyExc_ValueError, "%s must be >= 0, not %R", what,
                         obj);
            return -1;
        }
        s = 0;
    }
    if (cap_huge && s > MAX_FINITE_TIMEOUT_S) {
        *out = -1;   /* years: wait without a limit (deadlines never wrap) */
        return 0;
    }
    if (s > MAX_TIMEOUT_S) {
        PyErr_Format(PyExc_OverflowError,
                     "%s too large: %R (at most about 292 years)", what, obj);
        return -1;
    }
    *out = (int64_t)(s * 1e9);
    return 0;
}

int py_timeout_ns(PyObject *timeout, int64_t *out_ns)
{
    if (timeout == Py_None) {
        *out_ns = -1;
        return 0;
    }
    /* Negative timeouts mean "do not wait", as Condition.wait treats them
     * in the stdlib's Future. */
    return seconds_to_ns(timeout, "timeout", 1, 1, out_ns);
}

/* py_wait_word and py_wait_word_below: waits on the waitset while the
 * word equals `value` (below == 0) or is under it (below == 1). */
static int wait_word(py_state *st, const _Atomic int *word, int value,
                     int below, _Atomic unsigned *nwaiters,
                     int64_t timeout_ns)
{
    int64_t deadline = timeout_ns < 0
        ? -1 : (int64_t)td_clock_now_ns() + timeout_ns;
    for (;;) {
        int64_t slice = SLICE_NS;
        if (deadline >= 0) {
            int64_t left = deadline - (int64_t)td_clock_now_ns();
            if (left <= 0) {
                int w = atomic_load(word);
                return below ? w >= value : w != value;
            }
            if (left < slice) {
                slice = left;
            }
        }
        int rc;
        Py_BEGIN_ALLOW_THREADS
        rc = below ? td_waitset_wait_below(&st->waitset, word, value,
                                           nwaiters, slice)
                   : td_waitset_wait(&st->waitset, word, value, nwaiters,
                                     slice);
        Py_END_ALLOW_THREADS
        if (rc == TD_OK) {
            return 1;
        }
        if (PyErr_CheckSignals() < 0) {
            return -1;   /* KeyboardInterrupt, or a handler's exception */
        }
    }
}

int py_wait_word(py_state *st, const _Atomic int *word, int expected,
                 _Atomic unsigned *nwaiters, int64_t timeout_ns)
{
    return wait_word(st, word, expected, 0, nwaiters, timeout_ns);
}

int py_wait_word_below(py_state *st, const _Atomic int *word, int least,
                       _Atomic unsigned *nwaiters, int64_t timeout_ns)
{
    return wait_word(st, word, least, 1, nwaiters, timeout_ns);
}

/* ---- native tasks ---------------------------------------------------- */

/* Runs sleep (elapsed time) or spin (this thread's CPU time) for the
 * requested time in GIL-free slices, checking for Ctrl-C between them when
 * called on the main thread. */
static PyObject *run_native(PyObject *seconds, const char *what, int spin)
{
    int64_t ns;
    if (seconds_to_ns(seconds, what, 0, 0, &ns) < 0) {
        return NULL;
    }
    uint64_t (*clock)(void) = spin ? td_clock_thread_cpu_ns : td_clock_now_ns;
    uint64_t deadline = clock() + (uint64_t)ns;
    for (;;) {
        uint64_t now = clock();
        if (now >= deadline) {
            Py_RETURN_NONE;
        }
        uint64_t slice = deadline - now;
        if (slice > SLICE_NS) {
            slice = SLICE_NS;
        }
        Py_BEGIN_ALLOW_THREADS
        if (spin) {
            td_clock_spin_ns(slice);
        } else {
            td_clock_sleep_ns(slice);
        }
        Py_END_ALLOW_THREADS
        if (PyErr_CheckSignals() < 0) {
            return NULL;
        }
    }
}

PyDoc_STRVAR(sleep_doc,
"sleep(seconds, /)\n--\n\n"
"Sleep for seconds (int or float, >= 0) in C with the GIL released.");

static PyObject *native_sleep(PyObject *module, PyObject *seconds)
{
    (void)module;
    return run_native(seconds, "seconds", 0);
}

PyDoc_STRVAR(spin_doc,
"spin(seconds, /)\n--\n\n"
"Keep one CPU busy in C, with the GIL released, until this thread has\n"
"used seconds of CPU time: a fixed amount of CPU-bound work, so several\n"
"spins on a thread pool take as long as one when each has a core, and\n"
"longer when they share cores.");

static PyObject *native_spin(PyObject *module, PyObject *seconds)
{
    (void)module;
    return run_native(seconds, "seconds", 1);
}

PyDoc_STRVAR(thread_count_doc,
"thread_count()\n--\n\n"
"Return the number of OS threads in this process, counted in C\n"
"(/proc/self/task on Linux, task_threads on macOS).");

static PyObject *thread_count(PyObject *module, PyObject *unused)
{
    (void)unused;
    unsigned n;
    int rc = td_thread_count(&n);
    if (rc != TD_OK) {
        return py_raise(PyModule_GetState(module), rc);
    }
    return PyLong_FromUnsignedLong(n);
}

PyDoc_STRVAR(monotonic_ns_doc,
"monotonic_ns()\n--\n\n"
"Return the C core's monotonic clock in integer nanoseconds.");

static PyObject *monotonic_ns(PyObject *module, PyObject *unused)
{
    (void)module;
    (void)unused;
    return PyLong_FromUnsignedLongLong(td_clock_now_ns());
}

PyDoc_STRVAR(set_worker_hooks_doc,
"_set_worker_hooks(register, unregister, /)\n--\n\n"
"Internal: register(name) -> thread object makes a worker visible to\n"
"threading; unregister(thread) removes it when the worker exits.");

static PyObject *set_worker_hooks(PyObject *module, PyObject *const *args,
                                  Py_ssize_t nargs)
{
    if (nargs != 2 || !PyCallable_Check(args[0]) ||
        !PyCallable_Check(args[1])) {
        PyErr_SetString(PyExc_TypeError,
                        "_set_worker_hooks(register, unregister) takes two "
                        "callables");
        return NULL;
    }
    py_state *st = PyModule_GetState(module);
    Py_XSETREF(st->register_worker, Py_NewRef(args[0]));
    Py_XSETREF(st->unregister_worker, Py_NewRef(args[1]));
    Py_RETURN_NONE;
}

/* ---- Stopwatch ------------------------------------------------------- */

typedef struct {
    PyObject_HEAD
    td_sw sw;
} stopwatch_object;

static PyObject *stopwatch_new(PyTypeObject *tp, PyObject *args,
                               PyObject *kwargs)
{
    if (PyTuple_GET_SIZE(args) != 0 ||
        (kwargs != NULL && PyDict_GET_SIZE(kwargs) != 0)) {
        PyErr_SetString(PyExc_TypeError, "Stopwatch() takes no arguments");
        return NULL;
    }
    stopwatch_object *self = (stopwatch_object *)tp->tp_alloc(tp, 0);
    if (self != NULL) {
        td_sw_init(&self->sw, NULL, NULL);
    }
    return (PyObject *)self;
}

static void stopwatch_dealloc(PyObject *self)
{
    PyTypeObject *tp = Py_TYPE(self);
    tp->tp_free(self);
    Py_DECREF(tp);
}

static PyObject *stopwatch_start(PyObject *self, PyObject *unused)
{
    (void)unused;
    td_sw_start(&((stopwatch_object *)self)->sw);
    Py_RETURN_NONE;
}

static PyObject *stopwatch_stop(PyObject *self, PyObject *unused)
{
    (void)unused;
    if (td_sw_stop(&((stopwatch_object *)self)->sw) != TD_OK) {
        PyErr_SetString(PyExc_RuntimeError, "the stopwatch is not running");
        return NULL;
    }
    Py_RETURN_NONE;
}

static PyObject *stopwatch_elapsed(PyObject *self, void *closure)
{
    (void)closure;
    return PyFloat_FromDouble(
        (double)td_sw_elapsed_ns(&((stopwatch_object *)self)->sw) / 1e9);
}

static PyObject *stopwatch_elapsed_ns(PyObject *self, void *closure)
{
    (void)closure;
    return PyLong_FromUnsignedLongLong(
        td_sw_elapsed_ns(&((stopwatch_object *)self)->sw));
}

static PyObject *stopwatch_running(PyObject *self, void *closure)
{
    (void)closure;
    return PyBool_FromLong(((stopwatch_object *)self)->sw.state ==
                           TD_SW_RUNNING);
}

static PyMethodDef stopwatch_methods[] = {
    {"start", stopwatch_start, METH_NOARGS,
     "start()\n--\n\nStart (or restart) timing."},
    {"stop", stopwatch_stop, METH_NOARGS,
     "stop()\n--\n\nStop timing; RuntimeError if it is not running."},
    {NULL, NULL, 0, NULL},
};

static PyGetSetDef stopwatch_getset[] = {
    {"elapsed", stopwatch_elapsed, NULL,
     "Seconds as float: up to now while running, start to stop after.",
     NULL},
    {"elapsed_ns", stopwatch_elapsed_ns, NULL,
     "The same in integer nanoseconds.", NULL},
    {"running", stopwatch_running, NULL, "True between start and stop.",
     NULL},
    {NULL, NULL, NULL, NULL, NULL},
};

static PyType_Slot stopwatch_slots[] = {
    {Py_tp_doc, "Stopwatch()\n--\n\n"
                "A stopwatch on the C core's monotonic clock."},
    {Py_tp_new, stopwatch_new},
    {Py_tp_dealloc, stopwatch_dealloc},
    {Py_tp_methods, stopwatch_methods},
    {Py_tp_getset, stopwatch_getset},
    {0, NULL},
};

static PyType_Spec stopwatch_spec = {
    .name = "taskdemo._taskdemo.Stopwatch",
    .basicsize = sizeof(stopwatch_object),
    .flags = Py_TPFLAGS_DEFAULT
             | TD_TPFLAGS_IMMUTABLE,
    .slots = stopwatch_slots,
};

/* ---- the module ------------------------------------------------------ */

static PyMethodDef module_methods[] = {
    {"sleep", native_sleep, METH_O, sleep_doc},
    {"spin", native_spin, METH_O, spin_doc},
    {"thread_count", thread_count, METH_NOARGS, thread_count_doc},
    {"monotonic_ns", monotonic_ns, METH_NOARGS, monotonic_ns_doc},
    {"_set_worker_hooks", (PyCFunction)(void (*)(void))set_worker_hooks,
     METH_FASTCALL, set_worker_hooks_doc},
    {"_shutdown_all", py_executors_shutdown_all, METH_NOARGS,
     "_shutdown_all()\n--\n\nInternal: at interpreter exit, stop accepting "
     "work and join every pool (queued tasks still run)."},
    {"_after_fork_child", py_executors_after_fork_child, METH_NOARGS,
     "Internal: os.register_at_fork(after_in_child=...)."},
    {NULL, NULL, 0, NULL},
};

PyObject *py_import_attr(const char *module, const char *name)
{
    PyObject *m = PyImport_ImportModule(module);
    if (m == NULL) {
        return NULL;
    }
    PyObject *attr = PyObject_GetAttrString(m, name);
    Py_DECREF(m);
    return attr;
}

/* A Python function that does nothing: calling it enters the eval loop,
 * whose check hands the GIL to a thread that asked for it. */
static PyObject *make_gil_yield(void)
{
    PyObject *code = Py_CompileString("def gil_yield():\n    pass\n",
                                      "<taskdemo>", Py_file_input);
    if (code == NULL) {
        return NULL;
    }
    PyObject *globals = PyDict_New();
    PyObject *fn = NULL;
    if (globals != NULL &&
        PyDict_SetItemString(globals, "__builtins__",
                             PyEval_GetBuiltins()) == 0) {
        PyObject *r = PyEval_EvalCode(code, globals, globals);
        if (r != NULL) {
            Py_DECREF(r);
            fn = PyDict_GetItemString(globals, "gil_yield");
            Py_XINCREF(fn);
        }
    }
    Py_XDECREF(globals);
    Py_DECREF(code);
    if (fn == NULL && !PyErr_Occurred()) {
        PyErr_SetString(PyExc_SystemError, "taskdemo: no gil_yield");
    }
    return fn;
}

static int module_exec(PyObject *module)
{
#if PY_VERSION_HEX < 0x030C0000
    /* Workers use PyGILState_*, which only knows the main interpreter;
     * 3.12+ refuse subinterpreters through Py_mod_multiple_interpreters. */
    if (PyInterpreterState_Get() != PyInterpreterState_Main()) {
        PyErr_SetString(PyExc_ImportError,
                        "taskdemo._taskdemo does not support "
                        "subinterpreters");
        return -1;
    }
#endif
    py_state *st = PyModule_GetState(module);
    static const char *const state_attrs[PY_NSTATES] = {
        "PENDING", "RUNNING", "CANCELLED", "CANCELLED_AND_NOTIFIED",
        "FINISHED",
    };
    for (int i = 0; i < PY_NSTATES; i++) {
        st->state_names[i] = py_import_attr("concurrent.futures._base",
                                         state_attrs[i]);
        if (st->state_names[i] == NULL) {
            return -1;
        }
    }
    if ((st->BaseFuture = py_import_attr("concurrent.futures", "Future")) ==
            NULL ||
        (st->CancelledError = py_import_attr("concurrent.futures",
                                          "CancelledError")) == NULL ||
        (st->TimeoutError = py_import_attr("concurrent.futures",
                                        "TimeoutError")) == NULL ||
        (st->InvalidStateError = py_import_attr("concurrent.futures",
                                             "InvalidStateError")) == NULL ||
        (st->BrokenThreadPool = py_import_attr("concurrent.futures.thread",
                                            "BrokenThreadPool")) == NULL ||
        (st->str_acquire = PyUnicode_InternFromString("acquire")) == NULL ||
        (st->str_release = PyUnicode_InternFromString("release")) == NULL ||
        (st->str_notify_all = PyUnicode_InternFromString("notify_all")) ==
            NULL) {
        return -1;
    }
    /* The `_condition` of every future: see py_future.c for why one. */
    PyObject *Condition = py_import_attr("threading", "Condition");
    if (Condition == NULL) {
        return -1;
    }
    st->condition = PyObject_CallNoArgs(Condition);
    Py_DECREF(Condition);
    if (st->condition == NULL ||
        (st->condition_waiters = PyObject_GetAttrString(
             st->condition, "_waiters")) == NULL) {
        return -1;
    }
    PyObject *getLogger = py_import_attr("logging", "getLogger");
    if (getLogger == NULL) {
        return -1;
    }
    st->logger = PyObject_CallFunction(getLogger, "s", "concurrent.futures");
    Py_DECREF(getLogger);
    if (st->logger == NULL) {
        return -1;
    }
    st->gil_yield = make_gil_yield();
    if (st->gil_yield == NULL) {
        return -1;
    }
    int rc = td_waitset_init(&st->waitset);
    if (rc != TD_OK) {
        py_raise(st, rc);
        return -1;
    }
    st->waitset_ready = 1;

    st->TaskError = PyErr_NewExceptionWithDoc(
        "taskdemo.TaskError", "An error reported by the taskdemo C core.",
        PyExc_RuntimeError, NULL);
    if (st->TaskError == NULL ||
        PyModule_AddObjectRef(module, "TaskError", st->TaskError) < 0) {
        return -1;
    }
    st->StopwatchType = (PyTypeObject *)PyType_FromModuleAndSpec(
        module, &stopwatch_spec, NULL);
    if (st->StopwatchType == NULL ||
        PyModule_AddType(module, st->StopwatchType) < 0) {
        return -1;
    }
    if (py_future_init_type(module, st) < 0 ||
        py_executor_init_type(module, st) < 0 ||
        py_map_init_types(module, st) < 0 ||
        py_wait_init(module, st) < 0) {
        return -1;
    }
    return 0;
}

static int module_traverse(PyObject *module, visitproc visit, void *arg)
{
    py_state *st = PyModule_GetState(module);
    Py_VISIT(st->FutureType);
    Py_VISIT(st->ExecutorType);
    Py_VISIT(st->StopwatchType);
    Py_VISIT(st->MapJobType);
    Py_VISIT(st->MapIterType);
    Py_VISIT(st->TaskError);
    Py_VISIT(st->BaseFuture);
    Py_VISIT(st->CancelledError);
    Py_VISIT(st->TimeoutError);
    Py_VISIT(st->InvalidStateError);
    Py_VISIT(st->BrokenThreadPool);
    Py_VISIT(st->condition);
    Py_VISIT(st->condition_waiters);
    Py_VISIT(st->str_acquire);
    Py_VISIT(st->str_release);
    Py_VISIT(st->str_notify_all);
    Py_VISIT(st->logger);
    Py_VISIT(st->gil_yield);
    Py_VISIT(st->register_worker);
    Py_VISIT(st->unregister_worker);
    for (int i = 0; i < PY_NSTATES; i++) {
        Py_VISIT(st->state_names[i]);
    }
    return py_wait_traverse(&st->wait, visit, arg);
}

static int module_clear(PyObject *module)
{
    py_state *st = PyModule_GetState(module);
    Py_CLEAR(st->FutureType);
    Py_CLEAR(st->ExecutorType);
    Py_CLEAR(st->StopwatchType);
    Py_CLEAR(st->MapJobType);
    Py_CLEAR(st->MapIterType);
    Py_CLEAR(st->TaskError);
    Py_CLEAR(st->BaseFuture);
    Py_CLEAR(st->CancelledError);
    Py_CLEAR(st->TimeoutError);
    Py_CLEAR(st->InvalidStateError);
    Py_CLEAR(st->BrokenThreadPool);
    Py_CLEAR(st->condition);
    Py_CLEAR(st->condition_waiters);
    Py_CLEAR(st->str_acquire);
    Py_CLEAR(st->str_release);
    Py_CLEAR(st->str_notify_all);
    Py_CLEAR(st->logger);
    Py_CLEAR(st->gil_yield);
    Py_CLEAR(st->register_worker);
    Py_CLEAR(st->unregister_worker);
    for (int i = 0; i < PY_NSTATES; i++) {
        Py_CLEAR(st->state_names[i]);
    }
    py_wait_clear(&st->wait);
    return 0;
}

static void module_free(void *module)
{
    py_state *st = PyModule_GetState((PyObject *)module);
    module_clear((PyObject *)module);
    /* Pools are joined at exit (_shutdown_all); whatever is left has no
     * threads and only needs its memory back. */
    py_executors_clear_all(st);
    if (st->waitset_ready) {
        td_waitset_destroy(&st->waitset);
        st->waitset_ready = 0;
    }
}

static PyModuleDef_Slot module_slots[] = {
    {Py_mod_exec, module_exec},
#ifdef Py_mod_multiple_interpreters
    /* Workers use PyGILState_*, which subinterpreters do not support. */
    {Py_mod_multiple_interpreters, Py_MOD_MULTIPLE_INTERPRETERS_NOT_SUPPORTED},
#endif
#ifdef Py_mod_gil
    /* Said outright (it is also the default): the binding still relies on
     * the GIL, so a free-threaded build turns it on for this module. */
    {Py_mod_gil, Py_MOD_GIL_USED},
#endif
    {0, NULL},
};

static PyModuleDef module_def = {
    PyModuleDef_HEAD_INIT,
    .m_name = "taskdemo._taskdemo",
    .m_doc = "The C core of taskdemo: a pthread pool with futures that are "
             "concurrent.futures.Future instances, a monotonic stopwatch and "
             "an OS thread counter.",
    .m_size = sizeof(py_state),
    .m_methods = module_methods,
    .m_slots = module_slots,
    .m_traverse = module_traverse,
    .m_clear = module_clear,
    .m_free = module_free,
};

PyMODINIT_FUNC PyInit__taskdemo(void)
{
    return PyModuleDef_Init(&module_def);
}
