/*
 * fuzz_pool.c - a libFuzzer harness for the taskdemo C core (td_pool,
 * td_timeline through the pool, td_waitset).
 *
 * Design
 * ------
 * The input is a program: each pair of bytes (op, arg) is one operation,
 * at most MAX_OPS per input.  Operations create up to MAX_POOLS pools
 * (1, 2, 3 or 8 threads, a timeline of 0-7 records, with or without hooks, thread
 * name prefixes that need cutting), submit tasks, open gates, drain, wait
 * and join with timeouts, shut down, destroy, read timelines and stats,
 * exercise a td_waitset from two waiter threads, submit from a second
 * thread while the main thread drains or shuts down, make the Nth next
 * allocation fail, fork, and pass bad arguments.
 *
 * Tasks count their runs, sleep up to 140 us, wait at one of four gates
 * per pool that only the harness opens, submit another task to their own
 * pool, call wait/join/destroy on their own pool (which must refuse with
 * TD_EDEADLK or TD_EINVAL, never block), shut their pool down, or drain it.
 *
 * Invariants checked (any failure aborts, which libFuzzer reports with the
 * input that caused it):
 * - every accepted task runs exactly once or is drained exactly once, and
 *   a refused one never runs; submit refuses only with TD_ESHUTDOWN after
 *   a shutdown, TD_ENOMEM or TD_EAGAIN;
 * - td_pool_wait/td_pool_join never report success while a task waits at
 *   a closed gate, and always succeed without a limit once gates are open;
 * - after a successful wait, stats show nothing queued or running, and the
 *   timeline accounts for every finished task exactly once (the records'
 *   items + dropped); records are ordered submit <= start <= end, with a
 *   valid worker, tag and item count;
 * - stats stay consistent (running <= threads <= max_threads <= ...),
 *   hooks run once per worker (start == exit once joined); a worker
 *   whose start fails (op 21: after shutting the pool down and draining
 *   it, as the binding does for a failed initializer) loses no task: the
 *   one it was handed is drained with the queue;
 * - a waitset wake is never lost; timed waits time out;
 * - in a fork child, td_pool_after_fork_child reports every task that was
 *   queued or running in the parent, once, and the pool can be destroyed.
 * The sanitizers add: no memory error, no leak, no undefined behaviour.
 *
 * The harness never waits without a limit while a gate it controls is
 * closed; a hang is therefore a bug in the core, and libFuzzer's -timeout
 * reports it.
 *
 * Build with -DTD_FUZZ_REPLAY for a plain main() that runs the files (or
 * directories of files) named on its command line, e.g. the corpus, with
 * any compiler and no libFuzzer.
 */
#include <dirent.h>
#include <errno.h>
#include <pthread.h>
#include <stdatomic.h>
#include <stddef.h>
#include <stdint.h>
#include <stdio.h>
#include <stdlib.h>
#include <string.h>
#include <sys/stat.h>
#include <sys/wait.h>
#include <unistd.h>

#include "td_clock.h"
#include "td_common.h"
#include "td_pool.h"
#include "td_waitset.h"

#define MAX_POOLS 3
#define MAX_TASKS 1024
#define MAX_OPS 128
#define NGATES 4
#define TIMELINE_BUF 16

/* ThreadSanitizer does not support fork() in a multi-threaded process. */
#if defined(__SANITIZE_THREAD__)
#define FORK_UNSAFE 1
#elif defined(__has_feature)
#if __has_feature(thread_sanitizer)
#define FORK_UNSAFE 1
#endif
#endif
#ifndef FORK_UNSAFE
#define FORK_UNSAFE 0
#endif

int LLVMFuzzerInitialize(int *argc, char ***argv);
int LLVMFuzzerTestOneInput(const uint8_t *data, size_t size);

#define CHECK(cond)                                                         \
    do {                                                                    \
        if (!(cond)) {                                                      \
            check_failed(__LINE__, #cond);                                  \
        }                                                                   \
    } while (0)

static void check_failed(int line, const char *what)
{
    fprintf(stderr, "fuzz_pool.c:%d: invariant failed: %s\n", line, what);
    fflush(stderr);
    abort();
}

enum kind {
    K_COUNT,          /* just counts */
    K_SLEEP,          /* sleeps a little first */
    K_GATED,          /* waits at a gate the harness opens */
    K_NESTED,         /* submits a K_COUNT task to its own pool */
    K_SELFCALL,       /* wait/join/destroy on its own pool: must refuse */
    K_SHUTDOWN_SELF,  /* shuts its own pool down */
    K_DRAIN_SELF,     /* drains its own pool */
    K_NKINDS
};

/* A worker may fill in a record (a nested submit) while the main thread
 * scans the table for another pool: the fields a scan reads first are
 * atomic, and the counters are zeroed for every record before an input
 * starts, so a record being filled in reads as "neither ran nor was
 * drained". */
typedef struct task_rec {
    _Atomic int kind;
    _Atomic int slot;          /* pool slot ... */
    _Atomic unsigned gen;      /* ... and which pool in it */
    int gate;
    uint64_t sleep_ns;
    int nested;        /* submitted by a task, not by the main thread */
    _Atomic int accepted;   /* submit returned TD_OK */
    _Atomic int runs;       /* bumped as the task's last action */
    _Atomic int drained;    /* visited by td_pool_drain */
    _Atomic int reported;   /* visited by td_pool_after_fork_child */
} task_rec;

typedef struct slot {
    td_pool *p;                  /* NULL: free */
    unsigned gen;
    unsigned max_threads;
    size_t timeline_cap;
    int hooked;
    _Atomic int fail_next_start; /* the next worker start fails, as a
                                    failed initializer does (op 21) */
    _Atomic int start_draining;  /* that worker's drain has not returned */
    _Atomic int shut;            /* set just before td_pool_shutdown */
    _Atomic int shut_done;       /* set once a td_pool_shutdown returned */
    _Atomic unsigned completed;  /* tasks that returned */
    _Atomic unsigned starts, idles, exits;   /* hook calls */
    pthread_mutex_t gate_mu;
    pthread_cond_t gate_cv;
    int gate_open[NGATES];       /* protected by gate_mu */
} slot;

static slot slots[MAX_POOLS];
static task_rec tasks[MAX_TASKS];
static _Atomic int ntasks;
static _Atomic int fail_countdown;   /* > 0: the Nth allocation fails */
/* Set in a fork child.  The sanitizer allocators of clang/gcc up to 14 do
 * not lock themselves around fork(), so a child of a multi-threaded
 * process may find an allocator lock held for ever: the child frees
 * nothing (it exits at once anyway). */
static int in_fork_child;
static td_waitset ws;

/* ---- allocator: fails on request -------------------------------------- */

static void *fuzz_malloc(size_t n)
{
    int left = atomic_load(&fail_countdown);
    while (left > 0) {
        if (atomic_compare_exchange_weak(&fail_countdown, &left, left - 1)) {
            if (left == 1) {
                return NULL;
            }
            break;
        }
    }
    return malloc(n);
}

static void fuzz_free(void *ptr)
{
    if (!in_fork_child) {
        free(ptr);
    }
}

/* ---- gates ----------------------------------------------------------- */

static void gate_wait(slot *s, int g)
{
    pthread_mutex_lock(&s->gate_mu);
    while (!s->gate_open[g]) {
        pthread_cond_wait(&s->gate_cv, &s->gate_mu);
    }
    pthread_mutex_unlock(&s->gate_mu);
}

static void gate_open(slot *s, int g)
{
    pthread_mutex_lock(&s->gate_mu);
    s->gate_open[g] = 1;
    pthread_cond_broadcast(&s->gate_cv);
    pthread_mutex_unlock(&s->gate_mu);
}

static void open_all_gates(slot *s)
{
    for (int g = 0; g < NGATES; g++) {
        gate_open(s, g);
    }
}

static int gate_is_open(slot *s, int g)
{
    pthread_mutex_lock(&s->gate_mu);
    int open = s->gate_open[g];
    pthread_mutex_unlock(&s->gate_mu);
    return open;
}

/* True when a task of this pool that neither ran nor was drained waits
 * (or will wait) at a closed gate: the pool cannot be idle then.  While a
 * failing start drains, the tasks it took are neither, yet the pool may
 * be idle already (a drain visits after letting go of the pool's lock):
 * then nothing can be said. */
static int blocked_task_exists(slot *s)
{
    if (atomic_load(&s->start_draining)) {
        return 0;
    }
    int n = atomic_load(&ntasks);
    for (int i = 0; i < n && i < MAX_TASKS; i++) {
        task_rec *t = &tasks[i];
        /* accepted first: it is set after the other fields are written,
         * possibly by a worker that submitted the task. */
        if (atomic_load(&t->accepted) && t->slot == (int)(s - slots) &&
            t->gen == s->gen && t->kind == K_GATED &&
            atomic_load(&t->runs) == 0 && atomic_load(&t->drained) == 0 &&
            !gate_is_open(s, t->gate)) {
            return 1;
        }
    }
    return 0;
}

/* ---- hooks and tasks --------------------------------------------------- */

static void mark_drained(void *ctx, td_task_fn fn, void *arg);

static int hook_start(void *ctx, unsigned index)
{
    slot *s = ctx;
    /* Workers exit only after shutdown, which stops spawning: at most
     * max_threads are ever started. */
    CHECK(index < s->max_threads);
    atomic_fetch_add(&s->starts, 1);
    if (atomic_exchange(&s->fail_next_start, 0)) {
        /* What the binding does when an initializer fails: refuse new
         * work, then fail what is queued, the task handed to this worker
         * first; workers started meanwhile keep theirs. */
        atomic_store(&s->shut, 1);
        CHECK(td_pool_shutdown(s->p) == TD_OK);
        atomic_store(&s->shut_done, 1);
        atomic_store(&s->start_draining, 1);
        td_pool_drain(s->p, mark_drained, NULL);
        atomic_store(&s->start_draining, 0);
        return TD_EAGAIN;
    }
    return TD_OK;
}

static void hook_idle(void *ctx)
{
    atomic_fetch_add(&((slot *)ctx)->idles, 1);
}

static void hook_exit(void *ctx)
{
    atomic_fetch_add(&((slot *)ctx)->exits, 1);
}

static void mark_drained(void *ctx, td_task_fn fn, void *arg)
{
    (void)ctx;
    (void)fn;
    task_rec *t = arg;
    CHECK(atomic_fetch_add(&t->drained, 1) == 0);
}

static void mark_reported(void *ctx, td_task_fn fn, void *arg)
{
    (void)ctx;
    (void)fn;
    task_rec *t = arg;
    CHECK(atomic_fetch_add(&t->reported, 1) == 0);
}

static task_rec *new_task(int kind, int slot_index, int nested)
{
    int i = atomic_fetch_add(&ntasks, 1);
    if (i >= MAX_TASKS) {
        return NULL;
    }
    task_rec *t = &tasks[i];
    atomic_store(&t->kind, kind);
    atomic_store(&t->slot, slot_index);
    atomic_store(&t->gen, slots[slot_index].gen);
    t->gate = 0;
    t->sleep_ns = 0;
    t->nested = nested;
    return t;
}

static void task_fn(void *arg);

/* Submits t to its pool and checks the answer. */
static int submit(task_rec *t)
{
    slot *s = &slots[t->slot];
    int rc = td_pool_submit_tagged(s->p, task_fn, t, (uint32_t)t->kind);
    CHECK(rc == TD_OK || rc == TD_ENOMEM || rc == TD_EAGAIN ||
          (rc == TD_ESHUTDOWN && atomic_load(&s->shut)));
    if (rc == TD_OK) {
        atomic_store(&t->accepted, 1);
    }
    return rc;
}

static void task_fn(void *arg)
{
    task_rec *t = arg;
    slot *s = &slots[t->slot];
    CHECK(td_pool_is_worker(s->p));
    CHECK(atomic_load(&t->drained) == 0);
    switch (atomic_load(&t->kind)) {
    case K_SLEEP:
        td_clock_sleep_ns(t->sleep_ns);
        break;
    case K_GATED:
        gate_wait(s, t->gate);
        break;
    case K_NESTED: {
        task_rec *inner = new_task(K_COUNT, t->slot, 1);
        if (inner != NULL) {
            submit(inner);
        }
        break;
    }
    case K_SELFCALL: {
        /* A worker must never wait for itself. */
        CHECK(td_pool_wait(s->p, -1) == TD_EDEADLK);
        int rc = td_pool_join(s->p, -1);
        CHECK(rc == TD_EDEADLK || rc == TD_EINVAL);   /* EINVAL: not shut */
        CHECK(td_pool_destroy(s->p) == TD_EDEADLK);
        break;
    }
    case K_SHUTDOWN_SELF:
        atomic_store(&s->shut, 1);   /* before: a racing submit may see it */
        CHECK(td_pool_shutdown(s->p) == TD_OK);
        atomic_store(&s->shut_done, 1);
        break;
    case K_DRAIN_SELF:
        td_pool_drain(s->p, mark_drained, NULL);
        break;
    default:
        break;
    }
    atomic_fetch_add(&s->completed, 1);
    /* Last: a fork child that sees runs == 0 must find the task reported
     * (it was still running); see op_fork. */
    CHECK(atomic_fetch_add(&t->runs, 1) == 0);
}

/* ---- checks ------------------------------------------------------------ */

static void check_stats(slot *s)
{
    td_pool_stats st;
    td_pool_get_stats(s->p, &st);
    CHECK(st.threads <= s->max_threads);
    CHECK(st.running <= st.threads);
    CHECK(st.idle <= st.threads);
    CHECK(st.spawned >= st.threads && st.spawned <= s->max_threads);
    if (s->hooked) {
        unsigned exits = atomic_load(&s->exits);
        unsigned starts = atomic_load(&s->starts);
        CHECK(exits <= starts);
        CHECK(starts <= st.spawned);
    }
}

/* Reads the timeline; with `exact`, the pool is idle and every finished
 * task must have left a record (or be counted as dropped). */
static void check_timeline(slot *s, size_t max, int exact)
{
    td_task_record recs[TIMELINE_BUF];
    size_t count = 99;
    uint64_t dropped = 99;
    if (max > TIMELINE_BUF) {
        max = TIMELINE_BUF;
    }
    CHECK(td_pool_timeline(s->p, recs, max, &count, &dropped) == TD_OK);
    CHECK(count <= max && count <= s->timeline_cap);
    if (s->timeline_cap == 0) {
        CHECK(count == 0 && dropped == 0);
    }
    for (size_t i = 0; i < count; i++) {
        CHECK(recs[i].submit_ns <= recs[i].start_ns);
        CHECK(recs[i].start_ns <= recs[i].end_ns);
        CHECK(recs[i].worker < s->max_threads);
        CHECK(recs[i].tag < K_NKINDS);
        CHECK(recs[i].items >= 1 && recs[i].items <= TD_RUN_MAX);
    }
    if (s->timeline_cap > 0) {
        size_t nrecs = 0;
        uint64_t all_dropped = 0;
        CHECK(td_pool_timeline(s->p, recs, TIMELINE_BUF, &nrecs,
                               &all_dropped) == TD_OK);
        uint64_t all = 0;   /* tasks the records stand for */
        for (size_t i = 0; i < nrecs; i++) {
            all += recs[i].items;
        }
        unsigned completed = atomic_load(&s->completed);
        if (exact) {
            CHECK(all + all_dropped == completed);
        } else {
            CHECK(all + all_dropped <= completed);
        }
    }
}

/* Every task of this pool: accepted ones ran or were drained exactly
 * once, refused ones never ran.  Call once no worker is left. */
static void check_tasks(slot *s)
{
    int n = atomic_load(&ntasks);
    for (int i = 0; i < n && i < MAX_TASKS; i++) {
        task_rec *t = &tasks[i];
        if (t->slot != (int)(s - slots) || t->gen != s->gen) {
            continue;
        }
        int runs = atomic_load(&t->runs);
        int drained = atomic_load(&t->drained);
        if (atomic_load(&t->accepted)) {
            CHECK(runs + drained == 1);
        } else {
            CHECK(runs == 0 && drained == 0);
        }
    }
}

/* ---- operations ---------------------------------------------------------- */

static slot *live_slot(uint8_t arg)
{
    slot *s = &slots[arg % MAX_POOLS];
    return s->p != NULL ? s : NULL;
}

static void op_create(uint8_t arg)
{
    slot *s = &slots[arg % MAX_POOLS];
    if (s->p != NULL) {
        return;
    }
    static const char *const prefixes[] = {
        NULL, "fz", "a-very-long-thread-prefix",
        "\xc3\xa4\xc3\xa4\xc3\xa4\xc3\xa4\xc3\xa4\xc3\xa4\xc3\xa4\xc3\xa4",
    };
    /* 8 threads make the worker table grow past its first 4 slots. */
    static const unsigned threads[] = {1, 2, 3, 8};
    s->gen++;
    s->max_threads = threads[(arg >> 2) % 4];
    s->timeline_cap = (arg >> 4) % 8u;
    s->hooked = (arg >> 7) & 1;
    atomic_store(&s->fail_next_start, 0);
    atomic_store(&s->shut, 0);
    atomic_store(&s->shut_done, 0);
    atomic_store(&s->start_draining, 0);
    atomic_store(&s->completed, 0);
    atomic_store(&s->starts, 0);
    atomic_store(&s->idles, 0);
    atomic_store(&s->exits, 0);
    pthread_mutex_lock(&s->gate_mu);
    memset(s->gate_open, 0, sizeof(s->gate_open));
    pthread_mutex_unlock(&s->gate_mu);
    td_pool_hooks hooks = {s, hook_start, hook_idle, hook_exit};
    td_pool_config cfg = {
        .max_threads = s->max_threads,
        .name_prefix = prefixes[(arg >> 5) % 4],
        .hooks = s->hooked ? &hooks : NULL,
        .timeline_capacity = s->timeline_cap,
    };
    td_pool *p = NULL;
    int rc = td_pool_create(&p, &cfg);
    CHECK(rc == TD_OK || rc == TD_ENOMEM);
    CHECK((rc == TD_OK) == (p != NULL));
    s->p = p;
}

static void op_submit(int kind, uint8_t arg)
{
    slot *s = live_slot(arg);
    if (s == NULL) {
        return;
    }
    task_rec *t = new_task(kind, (int)(s - slots), 0);
    if (t == NULL) {
        return;
    }
    t->gate = (arg >> 2) % NGATES;
    t->sleep_ns = (uint64_t)((arg >> 4) % 8u) * 20000u;
    submit(t);
}

static void op_open_gate(uint8_t arg)
{
    slot *s = live_slot(arg);
    if (s != NULL) {
        gate_open(s, (arg >> 2) % NGATES);
    }
}

static void op_drain(uint8_t arg)
{
    slot *s = live_slot(arg);
    if (s != NULL) {
        td_pool_drain(s->p, mark_drained, NULL);
    }
}

static void op_wait(uint8_t arg)
{
    slot *s = live_slot(arg);
    if (s == NULL) {
        return;
    }
    static const int64_t timeouts[] = {0, 10000, 1000000, -1};
    int64_t timeout = timeouts[(arg >> 2) % 4];
    if (timeout < 0) {
        open_all_gates(s);
    }
    int rc = td_pool_wait(s->p, timeout);
    CHECK(rc == TD_OK || (rc == TD_ETIMEDOUT && timeout >= 0));
    if (rc == TD_OK) {
        CHECK(!blocked_task_exists(s));
        td_pool_stats st;
        td_pool_get_stats(s->p, &st);
        CHECK(st.queued == 0 && st.running == 0);
        check_timeline(s, TIMELINE_BUF, 1);
    }
}

static void op_shutdown(uint8_t arg)
{
    slot *s = live_slot(arg);
    if (s != NULL) {
        atomic_store(&s->shut, 1);
        CHECK(td_pool_shutdown(s->p) == TD_OK);
        atomic_store(&s->shut_done, 1);
    }
}

static void op_join(uint8_t arg)
{
    slot *s = live_slot(arg);
    if (s == NULL) {
        return;
    }
    static const int64_t timeouts[] = {0, 100000, -1, -1};
    int64_t timeout = timeouts[(arg >> 2) % 4];
    if (timeout < 0) {
        open_all_gates(s);
    }
    /* A task may be shutting the pool down meanwhile: only a shutdown
     * that had returned before this call rules out TD_EINVAL. */
    int was_shut = atomic_load(&s->shut_done);
    int rc = td_pool_join(s->p, timeout);
    if (rc == TD_EINVAL) {
        CHECK(!was_shut);
        return;
    }
    CHECK(atomic_load(&s->shut));
    CHECK(rc == TD_OK || (rc == TD_ETIMEDOUT && timeout >= 0));
    if (rc == TD_OK) {
        CHECK(!blocked_task_exists(s));
        td_pool_stats st;
        td_pool_get_stats(s->p, &st);
        CHECK(st.threads == 0 && st.running == 0 && st.queued == 0);
        if (s->hooked) {
            CHECK(atomic_load(&s->starts) == atomic_load(&s->exits));
            CHECK(atomic_load(&s->starts) == st.spawned);
        }
        check_timeline(s, TIMELINE_BUF, 1);
    }
}

static void destroy_slot(slot *s)
{
    open_all_gates(s);
    atomic_store(&s->shut, 1);   /* destroy shuts down first */
    CHECK(td_pool_destroy(s->p) == TD_OK);
    s->p = NULL;
    check_tasks(s);
    if (s->hooked) {
        CHECK(atomic_load(&s->starts) == atomic_load(&s->exits));
    }
}

static void op_destroy(uint8_t arg)
{
    slot *s = live_slot(arg);
    if (s != NULL) {
        destroy_slot(s);
    }
}

static void op_timeline(uint8_t arg)
{
    slot *s = live_slot(arg);
    if (s != NULL) {
        check_timeline(s, (arg >> 2) % (TIMELINE_BUF + 1), 0);
    }
}

static void op_stats(uint8_t arg)
{
    slot *s = live_slot(arg);
    if (s != NULL) {
        check_stats(s);
    }
}

/* -- a waitset, two waiters ---------------------------------------------- */

typedef struct waiter {
    _Atomic int word;
    _Atomic unsigned nwaiters;
    int64_t timeout;
    int rc;
    pthread_t thread;
} waiter;

static void *waiter_main(void *opaque)
{
    waiter *w = opaque;
    w->rc = td_waitset_wait(&ws, &w->word, 0, &w->nwaiters, w->timeout);
    return NULL;
}

static void op_waitset(uint8_t arg)
{
    waiter w[2];
    for (int i = 0; i < 2; i++) {
        atomic_store(&w[i].word, 0);
        atomic_store(&w[i].nwaiters, 0);
        /* Waiter 1 may use a short timeout it must honour. */
        w[i].timeout = (i == 1 && (arg & 1)) ? 20000 : -1;
        w[i].rc = 99;
        CHECK(pthread_create(&w[i].thread, NULL, waiter_main, &w[i]) == 0);
    }
    if (arg & 2) {
        td_clock_sleep_ns((uint64_t)(arg >> 4) * 5000u);   /* let them sleep */
    }
    int first = (arg >> 2) & 1;
    for (int k = 0; k < 2; k++) {
        waiter *x = &w[first ^ k];
        if (x->timeout > 0) {
            continue;   /* left to time out */
        }
        atomic_store(&x->word, 1);
        if (arg & 8) {
            td_waitset_broadcast(&ws);
        } else {
            td_waitset_wake(&ws, &x->nwaiters);
        }
    }
    for (int i = 0; i < 2; i++) {
        CHECK(pthread_join(w[i].thread, NULL) == 0);
        CHECK(atomic_load(&w[i].nwaiters) == 0);
        CHECK(w[i].rc == (w[i].timeout > 0 ? TD_ETIMEDOUT : TD_OK));
    }
    /* Single-threaded edges: a changed word returns at once, an unchanged
     * one times out, with or without sleeping. */
    _Atomic int word = 1;
    _Atomic unsigned nw = 0;
    CHECK(td_waitset_wait(&ws, &word, 0, &nw, -1) == TD_OK);
    CHECK(td_waitset_wait(&ws, &word, 1, &nw, 0) == TD_ETIMEDOUT);
    CHECK(td_waitset_wait(&ws, &word, 1, &nw, 1000) == TD_ETIMEDOUT);
    CHECK(atomic_load(&nw) == 0);
    td_waitset_wake(&ws, &nw);
}

/* -- a second thread racing the main thread -------------------------------- */

typedef struct burst {
    slot *s;
    int n;
    int waits;   /* waits (2 ms at most) instead of submitting */
} burst;

static void *burst_main(void *opaque)
{
    burst *b = opaque;
    if (b->waits) {
        int rc = td_pool_wait(b->s->p, 2000000);
        CHECK(rc == TD_OK || rc == TD_ETIMEDOUT);
        return NULL;
    }
    for (int i = 0; i < b->n; i++) {
        task_rec *t = new_task(K_COUNT, (int)(b->s - slots), 1);
        if (t == NULL) {
            break;
        }
        submit(t);
    }
    return NULL;
}

static void op_concurrent(uint8_t arg)
{
    slot *s = live_slot(arg);
    if (s == NULL) {
        return;
    }
    burst b = {s, 1 + (arg >> 3) % 8, (arg >> 2) & 1};
    pthread_t thread;
    CHECK(pthread_create(&thread, NULL, burst_main, &b) == 0);
    switch (arg >> 6) {
    case 0:
        td_pool_drain(s->p, mark_drained, NULL);
        break;
    case 1:
        atomic_store(&s->shut, 1);
        CHECK(td_pool_shutdown(s->p) == TD_OK);
        atomic_store(&s->shut_done, 1);
        break;
    case 2:
        check_stats(s);
        check_stats(s);
        break;
    default:
        check_timeline(s, TIMELINE_BUF, 0);
        break;
    }
    CHECK(pthread_join(thread, NULL) == 0);
}

/* The next worker of a hooked pool to start fails, as one whose
 * initializer raised does in the binding. */
static void op_fail_next_start(uint8_t arg)
{
    slot *s = live_slot(arg);
    if (s != NULL && s->hooked) {
        atomic_store(&s->fail_next_start, 1);
    }
}

static void op_oom(uint8_t arg)
{
    atomic_store(&fail_countdown, 1 + arg % 6);
}

/* -- fork ----------------------------------------------------------------- */

static void child_after_fork(void)
{
    /* Only this thread exists.  Gates may be locked by threads that are
     * gone, so nothing here touches them. */
    for (int i = 0; i < MAX_POOLS; i++) {
        slot *s = &slots[i];
        if (s->p == NULL) {
            continue;
        }
        td_pool_after_fork_child(s->p, mark_reported, NULL);
        td_pool_after_fork_child(s->p, mark_reported, NULL);   /* no-op */
        td_pool_stats st;
        td_pool_get_stats(s->p, &st);
        CHECK(st.threads == 0 && st.queued == 0 && st.running == 0);
        CHECK(td_pool_submit(s->p, task_fn, &tasks[0]) == TD_ESHUTDOWN);
        CHECK(td_pool_destroy(s->p) == TD_OK);
        int n = atomic_load(&ntasks);
        /* A K_DRAIN_SELF task, or a failing start's drain, cut short by the
         * fork owned the tasks it had taken off the queue: the pool
         * rightly reports none of them. */
        int drain_cut = atomic_load(&s->start_draining);
        for (int k = 0; k < n && k < MAX_TASKS; k++) {
            task_rec *t = &tasks[k];
            drain_cut |= atomic_load(&t->accepted) && t->slot == i &&
                         t->gen == s->gen && t->kind == K_DRAIN_SELF &&
                         atomic_load(&t->runs) == 0;
        }
        for (int k = 0; k < n && k < MAX_TASKS; k++) {
            task_rec *t = &tasks[k];
            if (!atomic_load(&t->accepted) || t->slot != i ||
                t->gen != s->gen || t->nested) {
                continue;   /* a worker's submit may have been cut short */
            }
            int runs = atomic_load(&t->runs);
            int drained = atomic_load(&t->drained);
            int reported = atomic_load(&t->reported);
            CHECK(drained + reported <= 1);
            /* Not run: it was queued or running, so it is reported.  A
             * task that returned just before the fork may be reported
             * too (its worker had not yet taken the lock again). */
            CHECK(runs == 1 || drained + reported == 1 || drain_cut);
        }
    }
    _exit(0);
}

static void op_fork(void)
{
    fflush(stdout);
    fflush(stderr);
    pid_t pid = fork();
    CHECK(pid >= 0);
    if (pid == 0) {
        in_fork_child = 1;
        child_after_fork();
    }
    int status = 0;
    pid_t got;
    do {   /* libFuzzer's timers interrupt system calls */
        got = waitpid(pid, &status, 0);
    } while (got < 0 && errno == EINTR);
    CHECK(got == pid);
    CHECK(WIFEXITED(status) && WEXITSTATUS(status) == 0);
}

static void op_bad_calls(uint8_t arg)
{
    td_pool_config cfg = {.max_threads = 0};
    td_pool *p = NULL;
    CHECK(td_pool_create(&p, &cfg) == TD_EINVAL && p == NULL);
    cfg.max_threads = 1;
    CHECK(td_pool_create(NULL, &cfg) == TD_EINVAL);
    CHECK(td_pool_create(&p, NULL) == TD_EINVAL);
    CHECK(td_pool_submit(NULL, task_fn, NULL) == TD_EINVAL);
    CHECK(td_pool_wait(NULL, 0) == TD_EINVAL);
    CHECK(td_pool_join(NULL, 0) == TD_EINVAL);
    CHECK(td_pool_shutdown(NULL) == TD_EINVAL);
    CHECK(td_pool_destroy(NULL) == TD_OK);
    CHECK(td_pool_drain(NULL, mark_drained, NULL) == 0);
    CHECK(td_pool_is_worker(NULL) == 0);
    td_pool_get_stats(NULL, NULL);
    size_t count;
    uint64_t dropped;
    CHECK(td_pool_timeline(NULL, NULL, 0, &count, &dropped) == TD_EINVAL);
    CHECK(td_strerror((int)arg - 128) != NULL);
    CHECK(td_waitset_init(NULL) == TD_EINVAL);
    td_waitset_destroy(NULL);
    CHECK(td_replace_allocator(fuzz_malloc, NULL) == TD_EINVAL);
    slot *s = live_slot(arg);
    if (s == NULL) {
        return;
    }
    CHECK(td_pool_submit(s->p, NULL, NULL) == TD_EINVAL);
    CHECK(td_pool_is_worker(s->p) == 0);
    CHECK(td_pool_timeline(s->p, NULL, 1, &count, &dropped) == TD_EINVAL);
    CHECK(td_pool_timeline(s->p, NULL, 0, &count, &dropped) == TD_OK);
    CHECK(count == 0);
    CHECK(td_pool_timeline(s->p, NULL, 0, NULL, &dropped) == TD_EINVAL);
    td_pool_get_stats(s->p, NULL);
    /* Before any shutdown a join is refused (a task may be shutting the
     * pool down meanwhile, so look at the flag after the call). */
    int rc = td_pool_join(s->p, 0);
    CHECK(rc == TD_EINVAL || atomic_load(&s->shut));
}

/* ---- the entry points -------------------------------------------------- */

int LLVMFuzzerInitialize(int *argc, char ***argv)
{
    (void)argc;
    (void)argv;
    for (int i = 0; i < MAX_POOLS; i++) {
        pthread_mutex_init(&slots[i].gate_mu, NULL);
        pthread_cond_init(&slots[i].gate_cv, NULL);
    }
    if (td_waitset_init(&ws) != TD_OK ||
        td_replace_allocator(fuzz_malloc, fuzz_free) != TD_OK) {
        fprintf(stderr, "fuzz_pool: set-up failed\n");
        exit(1);
    }
    return 0;
}

int LLVMFuzzerTestOneInput(const uint8_t *data, size_t size)
{
    /* No other thread exists between inputs. */
    for (int i = 0; i < MAX_TASKS; i++) {
        atomic_store(&tasks[i].accepted, 0);
        atomic_store(&tasks[i].runs, 0);
        atomic_store(&tasks[i].drained, 0);
        atomic_store(&tasks[i].reported, 0);
    }
    atomic_store(&ntasks, 0);
    atomic_store(&fail_countdown, 0);
    int forks = 0;
    size_t nops = size / 2 < MAX_OPS ? size / 2 : MAX_OPS;
    for (size_t i = 0; i < nops; i++) {
        uint8_t op = data[2 * i], arg = data[2 * i + 1];
        switch (op % 22) {
        case 0: op_create(arg); break;
        case 1: op_submit(K_COUNT, arg); break;
        case 2: op_submit(K_SLEEP, arg); break;
        case 3: op_submit(K_GATED, arg); break;
        case 4: op_submit(K_NESTED, arg); break;
        case 5: op_submit(K_SELFCALL, arg); break;
        case 6: op_submit(K_SHUTDOWN_SELF, arg); break;
        case 7: op_submit(K_DRAIN_SELF, arg); break;
        case 8: op_open_gate(arg); break;
        case 9: op_drain(arg); break;
        case 10: op_wait(arg); break;
        case 11: op_shutdown(arg); break;
        case 12: op_join(arg); break;
        case 13: op_destroy(arg); break;
        case 14: op_timeline(arg); break;
        case 15: op_stats(arg); break;
        case 16: op_waitset(arg); break;
        case 17: op_concurrent(arg); break;
        case 18: op_oom(arg); break;
        case 19:
            if (!FORK_UNSAFE && forks++ == 0) {
                op_fork();
            }
            break;
        case 21: op_fail_next_start(arg); break;
        default: op_bad_calls(arg); break;
        }
    }
    /* No allocation failure may leak into clean-up's checks. */
    atomic_store(&fail_countdown, 0);
    for (int i = 0; i < MAX_POOLS; i++) {
        if (slots[i].p != NULL) {
            destroy_slot(&slots[i]);
        }
    }
    return 0;
}

#ifdef TD_FUZZ_REPLAY
/* Runs each file named on the command line, or each file in each directory
 * named there, through the harness once. */
static int replay_file(const char *path)
{
    FILE *f = fopen(path, "rb");
    if (f == NULL) {
        perror(path);
        return -1;
    }
    static uint8_t buf[1 << 16];
    size_t n = fread(buf, 1, sizeof(buf), f);
    fclose(f);
    LLVMFuzzerTestOneInput(buf, n);
    return 0;
}

int main(int argc, char **argv)
{
    LLVMFuzzerInitialize(&argc, &argv);
    int runs = 0, errors = 0;
    for (int i = 1; i < argc; i++) {
        struct stat st;
        if (stat(argv[i], &st) != 0) {
            perror(argv[i]);
            errors++;
            continue;
        }
        if (!S_ISDIR(st.st_mode)) {
            errors += replay_file(argv[i]) != 0;
            runs++;
            continue;
        }
        DIR *dir = opendir(argv[i]);
        if (dir == NULL) {
            perror(argv[i]);
            errors++;
            continue;
        }
        struct dirent *e;
        while ((e = readdir(dir)) != NULL) {
            if (e->d_name[0] == '.') {
                continue;
            }
            char path[4096];
            snprintf(path, sizeof(path), "%s/%s", argv[i], e->d_name);
            errors += replay_file(path) != 0;
            runs++;
        }
        closedir(dir);
    }
    printf("fuzz_pool: replayed %d inputs, %d unreadable\n", runs, errors);
    return errors != 0;
}
#endif
