/*
 * test_pool.c - the thread pool (td_pool.h).
 *
 * How these tests stay deterministic without sleeping:
 * - A task that must keep a worker busy blocks on a struct gate (harness.h)
 *   until the test opens it; gate_await() tells the test that n tasks are
 *   inside, which fixes the pool's state (running, queued, threads) exactly.
 * - Counts are C11 atomics, checked exactly after td_pool_wait() or a join.
 * - Hooks report through gates too, so "a worker went idle" or "a worker
 *   exited" is an event the test waits for, not a guess.
 * Every wait is bounded (the gate helpers, and the runner's per-test
 * timeout, which reports a possible deadlock).
 */
#include <limits.h>
#include <pthread.h>
#include <signal.h>
#include <stdatomic.h>
#include <stdlib.h>
#include <string.h>
#include <sys/wait.h>
#include <unistd.h>

#include "harness.h"
#include "td_pool.h"

/* ---- helpers ----------------------------------------------------------- */

static td_pool *make_pool(unsigned max_threads, const char *prefix,
                          const td_pool_hooks *hooks)
{
    td_pool_config cfg = {max_threads, prefix, hooks, 0};
    td_pool *p = NULL;
    ASSERT_OK(td_pool_create(&p, &cfg));
    ASSERT_NOT_NULL(p);
    return p;
}

static td_pool_stats get_stats(td_pool *p)
{
    td_pool_stats st;
    memset(&st, 0xff, sizeof(st));
    td_pool_get_stats(p, &st);
    return st;
}

static void count_task(void *arg)
{
    atomic_fetch_add((atomic_long *)arg, 1);
}

/* Records the (fn, arg) pairs that td_pool_drain or after_fork reports. */
enum { LOG_MAX = 256 };

typedef struct visit_log {
    size_t n;
    td_task_fn fn[LOG_MAX];
    void *arg[LOG_MAX];
} visit_log;

static void log_visit(void *ctx, td_task_fn fn, void *arg)
{
    visit_log *log = ctx;
    ASSERT_LT(log->n, LOG_MAX);
    log->fn[log->n] = fn;
    log->arg[log->n] = arg;
    log->n++;
}

/* ---- create, submit, destroy ------------------------------------------- */

TEST(pool_create_errors)
{
    td_pool_config cfg = {2, NULL, NULL, 0};
    td_pool_config zero = {0, NULL, NULL, 0};
    td_pool *p = NULL;

    ASSERT_RC(TD_EINVAL, td_pool_create(NULL, &cfg));
    ASSERT_RC(TD_EINVAL, td_pool_create(&p, NULL));
    ASSERT_RC(TD_EINVAL, td_pool_create(&p, &zero));
}

TEST(pool_create_starts_no_thread)
{
    td_pool *p = make_pool(8, NULL, NULL);
    td_pool_stats st = get_stats(p);

    ASSERT_EQ(0, st.threads);
    ASSERT_EQ(0, st.idle);
    ASSERT_EQ(0, st.running);
    ASSERT_EQ(0, st.queued);
    ASSERT_EQ(0, st.spawned);
    ASSERT_OK(td_pool_wait(p, 0));    /* nothing to wait for */
    ASSERT_OK(td_pool_wait(p, -1));
    ASSERT_FALSE(td_pool_is_worker(p));
    ASSERT_OK(td_pool_destroy(p));    /* never started a thread */
}

TEST(pool_submit_null_fn)
{
    atomic_long n = 0;
    td_pool *p = make_pool(1, NULL, NULL);

    ASSERT_RC(TD_EINVAL, td_pool_submit(p, NULL, &n));
    ASSERT_EQ(0, get_stats(p).queued);
    ASSERT_EQ(0, get_stats(p).spawned);   /* a rejected task starts none */
    ASSERT_OK(td_pool_submit(p, count_task, &n));
    ASSERT_OK(td_pool_wait(p, -1));
    ASSERT_EQ(1, atomic_load(&n));
    ASSERT_OK(td_pool_destroy(p));
}

TEST(pool_destroy_null)
{
    ASSERT_OK(td_pool_destroy(NULL));
}

TEST(pool_many_tasks)
{
    enum { N = 100000, MAX = 4 };
    atomic_long n = 0;
    td_pool *p = make_pool(MAX, NULL, NULL);
    td_pool_stats st;

    for (long i = 0; i < N; i++) {
        ASSERT_OK(td_pool_submit(p, count_task, &n));
    }
    ASSERT_OK(td_pool_wait(p, -1));
    ASSERT_EQ(N, atomic_load(&n));
    st = get_stats(p);
    ASSERT_EQ(0, st.queued);
    ASSERT_EQ(0, st.running);
    ASSERT_GE(st.spawned, 1);
    ASSERT_LE(st.spawned, MAX);
    ASSERT_LE(st.threads, MAX);
    ASSERT_OK(td_pool_destroy(p));
    ASSERT_EQ(N, atomic_load(&n));
}

TEST(pool_destroy_runs_queued)
{
    /* destroy waits for queued tasks to run; it does not drop them. */
    enum { N = 50 };
    atomic_long n = 0;
    gate g;
    td_pool *p = make_pool(1, NULL, NULL);

    gate_init(&g);
    ASSERT_OK(td_pool_submit(p, gate_task, &g));
    gate_await(&g, 1);
    for (int i = 0; i < N; i++) {
        ASSERT_OK(td_pool_submit(p, count_task, &n));
    }
    ASSERT_EQ(N, get_stats(p).queued);
    gate_open(&g);
    ASSERT_OK(td_pool_destroy(p));
    ASSERT_EQ(N, atomic_load(&n));
    gate_destroy(&g);
}

TEST(pool_two_pools_independent)
{
    /* Regression guard for C-Thread-Pool's global keepalive flag:
     * destroying one pool must not stop another pool's workers. */
    atomic_long na = 0;
    atomic_long nb = 0;
    gate g;
    td_pool *a = make_pool(2, "a", NULL);
    td_pool *b = make_pool(2, "b", NULL);

    gate_init(&g);
    ASSERT_OK(td_pool_submit(b, gate_task, &g));   /* b's worker is busy */
    gate_await(&g, 1);
    for (int i = 0; i < 100; i++) {
        ASSERT_OK(td_pool_submit(a, count_task, &na));
    }
    ASSERT_OK(td_pool_destroy(a));
    ASSERT_EQ(100, atomic_load(&na));

    gate_open(&g);
    for (int i = 0; i < 100; i++) {
        ASSERT_OK(td_pool_submit(b, count_task, &nb));
    }
    ASSERT_OK(td_pool_wait(b, -1));
    ASSERT_EQ(100, atomic_load(&nb));
    ASSERT_OK(td_pool_destroy(b));
    gate_destroy(&g);
}

/* ---- lazy spawn and stats ---------------------------------------------- */

TEST(pool_lazy_spawn)
{
    enum { MAX = 3, TASKS = 5 };
    gate g;
    td_pool *p = make_pool(MAX, NULL, NULL);
    td_pool_stats st;

    gate_init(&g);
    ASSERT_EQ(0, get_stats(p).spawned);

    /* One blocked task needs exactly one worker. */
    ASSERT_OK(td_pool_submit(p, gate_task, &g));
    gate_await(&g, 1);
    st = get_stats(p);
    ASSERT_EQ(1, st.spawned);
    ASSERT_EQ(1, st.threads);
    ASSERT_EQ(1, st.running);

    /* Each further blocked task needs one more, up to MAX and no more. */
    for (int i = 1; i < TASKS; i++) {
        ASSERT_OK(td_pool_submit(p, gate_task, &g));
        ASSERT_LE(get_stats(p).spawned, MAX);
    }
    gate_await(&g, MAX);
    st = get_stats(p);
    ASSERT_EQ(MAX, st.spawned);
    ASSERT_EQ(MAX, st.threads);
    ASSERT_EQ(MAX, st.running);
    ASSERT_EQ(0, st.idle);
    ASSERT_EQ(TASKS - MAX, st.queued);

    gate_open(&g);
    ASSERT_OK(td_pool_wait(p, -1));
    st = get_stats(p);
    ASSERT_EQ(TASKS, gate_arrived(&g));
    ASSERT_EQ(MAX, st.spawned);
    ASSERT_EQ(MAX, st.threads);        /* alive until shutdown */
    ASSERT_EQ(0, st.running);
    ASSERT_EQ(0, st.queued);
    ASSERT_LE(st.idle, MAX);
    ASSERT_OK(td_pool_destroy(p));
    gate_destroy(&g);
}

TEST(pool_idle_worker_reused)
{
    /* Submit, wait, submit again: the worker that ran the first task is
     * idle once td_pool_wait() returns, so no second thread may start.
     * Many rounds, because the window between "task done" and "worker
     * asleep" is short. */
    enum { ROUNDS = 2000 };
    atomic_long n = 0;
    td_pool *p = make_pool(4, NULL, NULL);

    for (long i = 1; i <= ROUNDS; i++) {
        ASSERT_OK(td_pool_submit(p, count_task, &n));
        ASSERT_OK(td_pool_wait(p, -1));
        ASSERT_EQ(i, atomic_load(&n));
        if (get_stats(p).spawned != 1) {
            HARNESS_FAIL("round %ld: spawned %u threads, expected 1", i,
                         get_stats(p).spawned);
        }
    }
    ASSERT_EQ(1, get_stats(p).threads);
    ASSERT_OK(td_pool_destroy(p));
}

static void nop_idle(void *ctx)
{
    (void)ctx;
}

TEST(pool_idle_worker_reused_idle_hook)
{
    /* The same with a thread_idle hook, as the Python binding always
     * installs one.  td_pool_wait() returns as soon as the last task ends,
     * while the worker may still be in thread_idle (outside the lock, not
     * yet counted idle); a submit then must not start a second thread,
     * since that worker looks at the queue again after the hook. */
    enum { ROUNDS = 2000 };
    atomic_long n = 0;
    td_pool_hooks hooks = {NULL, NULL, nop_idle, NULL};
    td_pool *p = make_pool(4, NULL, &hooks);

    for (long i = 1; i <= ROUNDS; i++) {
        ASSERT_OK(td_pool_submit(p, count_task, &n));
        ASSERT_OK(td_pool_wait(p, -1));
        if (get_stats(p).spawned != 1) {
            HARNESS_FAIL("round %ld: spawned %u threads, expected 1", i,
                         get_stats(p).spawned);
        }
    }
    ASSERT_OK(td_pool_destroy(p));
    ASSERT_EQ(ROUNDS, atomic_load(&n));
}

/* ---- order and concurrency --------------------------------------------- */

enum { FIFO_N = 1000 };

typedef struct fifo {
    int order[FIFO_N];
    atomic_int next;
} fifo;

typedef struct fifo_slot {
    fifo *f;
    int id;
} fifo_slot;

static void fifo_task(void *arg)
{
    fifo_slot *s = arg;
    s->f->order[atomic_fetch_add(&s->f->next, 1)] = s->id;
}

TEST(pool_fifo_single_worker)
{
    static fifo f;
    static fifo_slot slots[FIFO_N];
    gate g;
    td_pool *p = make_pool(1, NULL, NULL);

    gate_init(&g);
    atomic_init(&f.next, 0);
    /* Hold the only worker so that every task below is queued first. */
    ASSERT_OK(td_pool_submit(p, gate_task, &g));
    gate_await(&g, 1);
    for (int i = 0; i < FIFO_N; i++) {
        slots[i].f = &f;
        slots[i].id = i;
        ASSERT_OK(td_pool_submit(p, fifo_task, &slots[i]));
    }
    ASSERT_EQ(FIFO_N, get_stats(p).queued);
    gate_open(&g);
    ASSERT_OK(td_pool_wait(p, -1));
    ASSERT_EQ(FIFO_N, atomic_load(&f.next));
    for (int i = 0; i < FIFO_N; i++) {
        ASSERT_EQ(i, f.order[i]);
    }
    ASSERT_OK(td_pool_destroy(p));
    gate_destroy(&g);
}

/* A binary tree of tasks: each node of depth d > 0 submits two children. */
enum { TREE_DEPTH = 12, CHAIN_LEN = 10000 };

typedef struct spawn_ctx {
    td_pool *p;
    atomic_long ran;
    atomic_long errors;
    atomic_long chain_left;
} spawn_ctx;

typedef struct tree_node {
    spawn_ctx *c;
    int depth;
} tree_node;

static tree_node tree_levels[TREE_DEPTH + 1];

static void tree_task(void *arg)
{
    tree_node *t = arg;
    atomic_fetch_add(&t->c->ran, 1);
    if (t->depth > 0) {
        for (int i = 0; i < 2; i++) {
            if (td_pool_submit(t->c->p, tree_task,
                               &tree_levels[t->depth - 1]) != TD_OK) {
                atomic_fetch_add(&t->c->errors, 1);
            }
        }
    }
}

/* A chain: each task submits the next before it returns, so the queue is
 * empty and one task is running at every instant until the end. */
static void chain_task(void *arg)
{
    spawn_ctx *c = arg;
    atomic_fetch_add(&c->ran, 1);
    if (atomic_fetch_sub(&c->chain_left, 1) > 1) {
        if (td_pool_submit(c->p, chain_task, c) != TD_OK) {
            atomic_fetch_add(&c->errors, 1);
        }
    }
}

TEST(pool_tasks_submit_tasks)
{
    spawn_ctx c;

    c.p = make_pool(4, NULL, NULL);
    atomic_init(&c.ran, 0);
    atomic_init(&c.errors, 0);
    for (int d = 0; d <= TREE_DEPTH; d++) {
        tree_levels[d].c = &c;
        tree_levels[d].depth = d;
    }
    ASSERT_OK(td_pool_submit(c.p, tree_task, &tree_levels[TREE_DEPTH]));
    ASSERT_OK(td_pool_wait(c.p, -1));
    ASSERT_EQ(0, atomic_load(&c.errors));
    ASSERT_EQ((1L << (TREE_DEPTH + 1)) - 1, atomic_load(&c.ran));

    atomic_store(&c.ran, 0);
    atomic_store(&c.chain_left, CHAIN_LEN);
    ASSERT_OK(td_pool_submit(c.p, chain_task, &c));
    ASSERT_OK(td_pool_wait(c.p, -1));   /* must not return mid-chain */
    ASSERT_EQ(CHAIN_LEN, atomic_load(&c.ran));
    ASSERT_EQ(0, atomic_load(&c.errors));
    ASSERT_OK(td_pool_destroy(c.p));
}

enum { SUBMITTERS = 8, PER_SUBMITTER = 10000 };

typedef struct submitters {
    td_pool *p;
    pthread_barrier_t start;
    atomic_uchar hits[SUBMITTERS * PER_SUBMITTER];
    atomic_long errors;
} submitters;

typedef struct submitter_arg {
    submitters *s;
    int index;
} submitter_arg;

static submitters subs;

static void hit_task(void *arg)
{
    atomic_fetch_add((atomic_uchar *)arg, 1);
}

static void *submitter_main(void *arg)
{
    submitter_arg *a = arg;
    submitters *s = a->s;
    pthread_barrier_wait(&s->start);   /* all submit at once */
    for (int i = 0; i < PER_SUBMITTER; i++) {
        atomic_uchar *hit = &s->hits[a->index * PER_SUBMITTER + i];
        if (td_pool_submit(s->p, hit_task, hit) != TD_OK) {
            atomic_fetch_add(&s->errors, 1);
        }
    }
    return NULL;
}

TEST(pool_concurrent_submitters)
{
    pthread_t t[SUBMITTERS];
    submitter_arg args[SUBMITTERS];

    subs.p = make_pool(4, NULL, NULL);
    ASSERT_PT(pthread_barrier_init(&subs.start, NULL, SUBMITTERS));
    for (int i = 0; i < SUBMITTERS; i++) {
        args[i].s = &subs;
        args[i].index = i;
        ASSERT_PT(pthread_create(&t[i], NULL, submitter_main, &args[i]));
    }
    for (int i = 0; i < SUBMITTERS; i++) {
        ASSERT_PT(pthread_join(t[i], NULL));
    }
    ASSERT_OK(td_pool_wait(subs.p, -1));
    ASSERT_EQ(0, atomic_load(&subs.errors));
    /* Every task ran exactly once. */
    for (int i = 0; i < SUBMITTERS * PER_SUBMITTER; i++) {
        if (atomic_load(&subs.hits[i]) != 1) {
            HARNESS_FAIL("task %d ran %d times", i,
                         (int)atomic_load(&subs.hits[i]));
        }
    }
    ASSERT_LE(get_stats(subs.p).spawned, 4);
    ASSERT_OK(td_pool_destroy(subs.p));
    ASSERT_PT(pthread_barrier_destroy(&subs.start));
}

/* ---- td_pool_wait ------------------------------------------------------ */

TEST(pool_wait_timeout)
{
    const int64_t timeout = 20 * 1000 * 1000;
    gate g;
    uint64_t t0;
    td_pool *p = make_pool(1, NULL, NULL);

    gate_init(&g);
    ASSERT_OK(td_pool_submit(p, gate_task, &g));
    gate_await(&g, 1);   /* the task is running and cannot finish */

    ASSERT_RC(TD_ETIMEDOUT, td_pool_wait(p, 0));
    t0 = harness_now_ns();
    ASSERT_RC(TD_ETIMEDOUT, td_pool_wait(p, timeout));
    ASSERT_U64_GE(harness_now_ns() - t0, (uint64_t)timeout);
    ASSERT_EQ(1, get_stats(p).running);

    gate_open(&g);
    ASSERT_OK(td_pool_wait(p, -1));
    ASSERT_OK(td_pool_wait(p, 0));
    ASSERT_OK(td_pool_destroy(p));
    gate_destroy(&g);
}

typedef struct huge_wait {
    gate waiting;
    gate *task_gate;
} huge_wait;

static void *open_when_waiting(void *arg)
{
    huge_wait *h = arg;
    gate_await(&h->waiting, 1);
    gate_open(h->task_gate);
    return NULL;
}

TEST(pool_wait_huge_timeout)
{
    /* INT64_MAX is a valid finite timeout: the wait must last until the
     * task ends, not expire at once because the deadline overflowed. */
    gate g;
    huge_wait h;
    pthread_t t;
    td_pool *p = make_pool(1, NULL, NULL);

    gate_init(&g);
    gate_init(&h.waiting);
    h.task_gate = &g;
    ASSERT_OK(td_pool_submit(p, gate_task, &g));
    gate_await(&g, 1);
    ASSERT_PT(pthread_create(&t, NULL, open_when_waiting, &h));
    gate_arrive(&h.waiting);
    ASSERT_OK(td_pool_wait(p, INT64_MAX));
    ASSERT_EQ(0, get_stats(p).running);
    ASSERT_PT(pthread_join(t, NULL));
    ASSERT_OK(td_pool_destroy(p));
    gate_destroy(&h.waiting);
    gate_destroy(&g);
}

enum { WAITERS = 4 };

typedef struct waiter_arg {
    td_pool *p;
    gate *ready;
    int rc;
} waiter_arg;

static void *waiter_main(void *arg)
{
    waiter_arg *w = arg;
    gate_arrive(w->ready);
    w->rc = td_pool_wait(w->p, -1);
    return NULL;
}

TEST(pool_wait_many_waiters)
{
    /* Every waiter is released when the pool drains, not just one. */
    gate g;
    gate ready;
    pthread_t t[WAITERS];
    waiter_arg w[WAITERS];
    td_pool *p = make_pool(2, NULL, NULL);

    gate_init(&g);
    gate_init(&ready);
    ASSERT_OK(td_pool_submit(p, gate_task, &g));
    ASSERT_OK(td_pool_submit(p, gate_task, &g));
    gate_await(&g, 2);
    for (int i = 0; i < WAITERS; i++) {
        w[i].p = p;
        w[i].ready = &ready;
        w[i].rc = 99;
        ASSERT_PT(pthread_create(&t[i], NULL, waiter_main, &w[i]));
    }
    gate_await(&ready, WAITERS);
    gate_open(&g);
    for (int i = 0; i < WAITERS; i++) {
        ASSERT_PT(pthread_join(t[i], NULL));
        ASSERT_RC(TD_OK, w[i].rc);
    }
    ASSERT_OK(td_pool_destroy(p));
    gate_destroy(&ready);
    gate_destroy(&g);
}

typedef struct self_call {
    td_pool *p;
    td_pool *other;
    int wait_rc;
    int wait0_rc;
    int is_worker;
    int is_other_worker;
    int join_rc;
    int destroy_rc;
} self_call;

static void wait_from_worker_task(void *arg)
{
    self_call *s = arg;
    s->is_worker = td_pool_is_worker(s->p);
    s->is_other_worker = td_pool_is_worker(s->other);
    s->wait_rc = td_pool_wait(s->p, -1);
    s->wait0_rc = td_pool_wait(s->p, 0);
}

TEST(pool_wait_from_worker)
{
    self_call s;

    memset(&s, 0, sizeof(s));
    s.p = make_pool(2, NULL, NULL);
    s.other = make_pool(1, NULL, NULL);
    s.wait_rc = s.wait0_rc = 99;
    ASSERT_OK(td_pool_submit(s.p, wait_from_worker_task, &s));
    ASSERT_OK(td_pool_wait(s.p, -1));
    ASSERT_RC(TD_EDEADLK, s.wait_rc);
    ASSERT_RC(TD_EDEADLK, s.wait0_rc);
    ASSERT_TRUE(s.is_worker);
    ASSERT_FALSE(s.is_other_worker);
    ASSERT_FALSE(td_pool_is_worker(s.p));
    ASSERT_OK(td_pool_destroy(s.other));
    ASSERT_OK(td_pool_destroy(s.p));
}

static void wait_other_pool_task(void *arg)
{
    self_call *s = arg;
    s->wait_rc = td_pool_wait(s->other, -1);
}

TEST(pool_wait_other_pool_from_worker)
{
    /* Only waiting on one's own pool is a deadlock; waiting on another
     * pool from a worker is fine. */
    atomic_long n = 0;
    self_call s;

    memset(&s, 0, sizeof(s));
    s.p = make_pool(1, NULL, NULL);
    s.other = make_pool(2, NULL, NULL);
    s.wait_rc = 99;
    for (int i = 0; i < 1000; i++) {
        ASSERT_OK(td_pool_submit(s.other, count_task, &n));
    }
    ASSERT_OK(td_pool_submit(s.p, wait_other_pool_task, &s));
    ASSERT_OK(td_pool_wait(s.p, -1));
    ASSERT_RC(TD_OK, s.wait_rc);
    ASSERT_EQ(1000, atomic_load(&n));
    ASSERT_OK(td_pool_destroy(s.p));
    ASSERT_OK(td_pool_destroy(s.other));
}

/* ---- shutdown, drain, join, destroy ------------------------------------ */

TEST(pool_shutdown_then_submit)
{
    atomic_long n = 0;
    td_pool *p = make_pool(2, NULL, NULL);

    ASSERT_OK(td_pool_submit(p, count_task, &n));
    ASSERT_OK(td_pool_shutdown(p));
    ASSERT_RC(TD_ESHUTDOWN, td_pool_submit(p, count_task, &n));
    ASSERT_OK(td_pool_shutdown(p));   /* idempotent */
    ASSERT_RC(TD_ESHUTDOWN, td_pool_submit(p, count_task, &n));
    ASSERT_OK(td_pool_join(p, -1));
    ASSERT_EQ(1, atomic_load(&n));
    ASSERT_OK(td_pool_destroy(p));
}

TEST(pool_shutdown_unused)
{
    /* Shut down before any worker started: join has nothing to wait for. */
    td_pool *p = make_pool(2, NULL, NULL);
    ASSERT_OK(td_pool_shutdown(p));
    ASSERT_OK(td_pool_join(p, 0));
    ASSERT_OK(td_pool_join(p, -1));
    ASSERT_EQ(0, get_stats(p).spawned);
    ASSERT_OK(td_pool_destroy(p));
}

TEST(pool_queued_run_after_shutdown)
{
    enum { N = 100 };
    atomic_long n = 0;
    gate g;
    td_pool *p = make_pool(1, NULL, NULL);
    td_pool_stats st;

    gate_init(&g);
    ASSERT_OK(td_pool_submit(p, gate_task, &g));
    gate_await(&g, 1);
    for (int i = 0; i < N; i++) {
        ASSERT_OK(td_pool_submit(p, count_task, &n));
    }
    ASSERT_OK(td_pool_shutdown(p));
    ASSERT_RC(TD_ESHUTDOWN, td_pool_submit(p, count_task, &n));
    ASSERT_EQ(N, get_stats(p).queued);
    gate_open(&g);
    ASSERT_OK(td_pool_join(p, -1));
    ASSERT_EQ(N, atomic_load(&n));
    st = get_stats(p);
    ASSERT_EQ(0, st.threads);
    ASSERT_EQ(0, st.queued);
    ASSERT_EQ(0, st.running);
    ASSERT_OK(td_pool_destroy(p));
    gate_destroy(&g);
}

static atomic_long late_runs;

static void shutdown_from_worker_task(void *arg)
{
    self_call *s = arg;
    s->wait_rc = td_pool_shutdown(s->p);
    s->join_rc = td_pool_submit(s->p, count_task, &late_runs);
}

TEST(pool_shutdown_from_worker)
{
    self_call s;

    memset(&s, 0, sizeof(s));
    s.p = make_pool(1, NULL, NULL);
    s.wait_rc = s.join_rc = 99;
    ASSERT_OK(td_pool_submit(s.p, shutdown_from_worker_task, &s));
    ASSERT_OK(td_pool_wait(s.p, -1));
    ASSERT_OK(td_pool_join(s.p, -1));   /* the task shut the pool down */
    ASSERT_RC(TD_OK, s.wait_rc);
    ASSERT_RC(TD_ESHUTDOWN, s.join_rc);
    ASSERT_EQ(0, atomic_load(&late_runs));
    ASSERT_OK(td_pool_destroy(s.p));
}

static int drain_ids[10];

static void never_run_task(void *arg)
{
    (void)arg;
    FAIL("a drained task ran");
}

TEST(pool_drain)
{
    atomic_long n = 0;
    visit_log log;
    gate g;
    td_pool *p = make_pool(1, NULL, NULL);

    memset(&log, 0, sizeof(log));
    gate_init(&g);
    ASSERT_OK(td_pool_submit(p, gate_task, &g));
    gate_await(&g, 1);
    for (int i = 0; i < 10; i++) {
        ASSERT_OK(td_pool_submit(p, never_run_task, &drain_ids[i]));
    }
    ASSERT_EQ(10, td_pool_drain(p, log_visit, &log));
    ASSERT_EQ(10, log.n);
    for (int i = 0; i < 10; i++) {   /* in queue order */
        ASSERT_TRUE(log.fn[i] == never_run_task);
        ASSERT_PTR_EQ(&drain_ids[i], log.arg[i]);
    }
    ASSERT_EQ(0, get_stats(p).queued);
    ASSERT_EQ(1, get_stats(p).running);   /* the running task stays */

    /* An empty queue drains nothing and visits nothing. */
    ASSERT_EQ(0, td_pool_drain(p, log_visit, &log));
    ASSERT_EQ(10, log.n);

    gate_open(&g);
    ASSERT_OK(td_pool_wait(p, -1));
    ASSERT_OK(td_pool_submit(p, count_task, &n));   /* still usable */
    ASSERT_OK(td_pool_wait(p, -1));
    ASSERT_EQ(1, atomic_load(&n));
    ASSERT_OK(td_pool_destroy(p));
    gate_destroy(&g);
}

typedef struct resubmit {
    td_pool *p;
    atomic_long n;
    size_t visited;
} resubmit;

static void resubmit_visit(void *ctx, td_task_fn fn, void *arg)
{
    /* Runs after drain released the lock, so calling back into the pool
     * cannot deadlock. */
    resubmit *r = ctx;
    td_pool_stats st;
    (void)fn;
    (void)arg;
    td_pool_get_stats(r->p, &st);
    ASSERT_EQ(r->visited, st.queued);   /* only what we resubmitted */
    ASSERT_OK(td_pool_submit(r->p, count_task, &r->n));
    r->visited++;
}

TEST(pool_drain_visit_unlocked)
{
    gate g;
    resubmit r;

    gate_init(&g);
    r.p = make_pool(1, NULL, NULL);
    atomic_init(&r.n, 0);
    r.visited = 0;
    ASSERT_OK(td_pool_submit(r.p, gate_task, &g));
    gate_await(&g, 1);
    for (int i = 0; i < 5; i++) {
        ASSERT_OK(td_pool_submit(r.p, never_run_task, NULL));
    }
    ASSERT_EQ(5, td_pool_drain(r.p, resubmit_visit, &r));
    ASSERT_EQ(5, r.visited);
    gate_open(&g);
    ASSERT_OK(td_pool_wait(r.p, -1));
    ASSERT_EQ(5, atomic_load(&r.n));
    ASSERT_OK(td_pool_destroy(r.p));
    gate_destroy(&g);
}

TEST(pool_drain_after_shutdown)
{
    /* Cancel pending work during shutdown: drained tasks never run. */
    visit_log log;
    gate g;
    td_pool *p = make_pool(1, NULL, NULL);

    memset(&log, 0, sizeof(log));
    gate_init(&g);
    ASSERT_OK(td_pool_submit(p, gate_task, &g));
    gate_await(&g, 1);
    for (int i = 0; i < 10; i++) {
        ASSERT_OK(td_pool_submit(p, never_run_task, &drain_ids[i]));
    }
    ASSERT_OK(td_pool_shutdown(p));
    ASSERT_EQ(10, td_pool_drain(p, log_visit, &log));
    gate_open(&g);
    ASSERT_OK(td_pool_join(p, -1));
    ASSERT_EQ(10, log.n);
    ASSERT_OK(td_pool_destroy(p));
    gate_destroy(&g);
}

TEST(pool_join_before_shutdown)
{
    atomic_long n = 0;
    td_pool *p = make_pool(1, NULL, NULL);

    ASSERT_RC(TD_EINVAL, td_pool_join(p, -1));   /* no worker yet */
    ASSERT_RC(TD_EINVAL, td_pool_join(p, 0));
    ASSERT_OK(td_pool_submit(p, count_task, &n));
    ASSERT_OK(td_pool_wait(p, -1));
    ASSERT_RC(TD_EINVAL, td_pool_join(p, -1));   /* a live worker */
    ASSERT_RC(TD_EINVAL, td_pool_join(p, 1000));
    ASSERT_OK(td_pool_submit(p, count_task, &n));   /* pool unaffected */
    ASSERT_OK(td_pool_wait(p, -1));
    ASSERT_EQ(2, atomic_load(&n));
    ASSERT_OK(td_pool_destroy(p));
}

TEST(pool_join_timeout)
{
    const int64_t timeout = 20 * 1000 * 1000;
    gate g;
    uint64_t t0;
    td_pool *p = make_pool(1, NULL, NULL);

    gate_init(&g);
    ASSERT_OK(td_pool_submit(p, gate_task, &g));
    gate_await(&g, 1);
    ASSERT_OK(td_pool_shutdown(p));
    ASSERT_RC(TD_ETIMEDOUT, td_pool_join(p, 0));
    t0 = harness_now_ns();
    ASSERT_RC(TD_ETIMEDOUT, td_pool_join(p, timeout));
    ASSERT_U64_GE(harness_now_ns() - t0, (uint64_t)timeout);
    ASSERT_EQ(1, get_stats(p).threads);
    gate_open(&g);
    ASSERT_OK(td_pool_join(p, -1));
    ASSERT_EQ(0, get_stats(p).threads);
    ASSERT_OK(td_pool_join(p, 0));   /* nothing left to join */
    ASSERT_OK(td_pool_destroy(p));
    gate_destroy(&g);
}

typedef struct join_self {
    td_pool *p;
    gate ready;        /* A is running */
    gate go;           /* main has shut the pool down */
    gate b;            /* B blocks here */
    gate returned;     /* A's join has returned */
    atomic_int b_done;
    int join_rc;
    int b_done_at_return;
} join_self;

static void join_self_b(void *arg)
{
    join_self *j = arg;
    gate_pass(&j->b);
    atomic_store(&j->b_done, 1);
}

static void join_self_a(void *arg)
{
    join_self *j = arg;
    gate_arrive(&j->ready);
    gate_pass(&j->go);
    j->join_rc = td_pool_join(j->p, -1);
    j->b_done_at_return = atomic_load(&j->b_done);
    gate_arrive(&j->returned);
}

TEST(pool_join_from_worker)
{
    /* A worker cannot join itself, and must not wait for the other workers
     * either (one of them could be joining too, waiting for it): its join
     * reports TD_EDEADLK at once, while B is still blocked. */
    join_self j;

    gate_init(&j.ready);
    gate_init(&j.go);
    gate_init(&j.b);
    gate_init(&j.returned);
    atomic_init(&j.b_done, 0);
    j.join_rc = 99;
    j.b_done_at_return = -1;
    j.p = make_pool(2, NULL, NULL);

    ASSERT_OK(td_pool_submit(j.p, join_self_b, &j));
    gate_await(&j.b, 1);
    ASSERT_OK(td_pool_submit(j.p, join_self_a, &j));
    gate_await(&j.ready, 1);
    ASSERT_OK(td_pool_shutdown(j.p));
    gate_open(&j.go);      /* A now joins */
    gate_await(&j.returned, 1);
    ASSERT_RC(TD_EDEADLK, j.join_rc);
    ASSERT_EQ(0, j.b_done_at_return);
    gate_open(&j.b);       /* let B finish */
    ASSERT_OK(td_pool_join(j.p, -1));
    ASSERT_OK(td_pool_destroy(j.p));
    gate_destroy(&j.returned);
    gate_destroy(&j.b);
    gate_destroy(&j.go);
    gate_destroy(&j.ready);
}

static void destroy_from_worker_task(void *arg)
{
    self_call *s = arg;
    s->destroy_rc = td_pool_destroy(s->p);
}

TEST(pool_destroy_from_worker)
{
    atomic_long n = 0;
    self_call s;

    memset(&s, 0, sizeof(s));
    s.p = make_pool(1, NULL, NULL);
    s.destroy_rc = 99;
    ASSERT_OK(td_pool_submit(s.p, destroy_from_worker_task, &s));
    ASSERT_OK(td_pool_wait(s.p, -1));
    ASSERT_RC(TD_EDEADLK, s.destroy_rc);
    /* It freed nothing (ASan would see a use after free) and left the
     * pool working. */
    ASSERT_OK(td_pool_submit(s.p, count_task, &n));
    ASSERT_OK(td_pool_wait(s.p, -1));
    ASSERT_EQ(1, atomic_load(&n));
    ASSERT_OK(td_pool_destroy(s.p));
}

/* ---- hooks ------------------------------------------------------------- */

typedef struct hook_rec {
    td_pool *p;
    atomic_uint fail_from;     /* thread_start fails for index >= this */
    atomic_uint seen;          /* bit i: thread_start saw index i */
    atomic_int starts;
    atomic_int exits;
    atomic_int idles;
    atomic_int errors;         /* wrong ctx, duplicate index, not a worker */
    gate exit_ev;              /* one arrival per thread_exit */
    gate idle_ev;              /* one arrival per thread_idle */
} hook_rec;

static void hook_rec_init(hook_rec *r, unsigned fail_from)
{
    memset(r, 0, sizeof(*r));
    atomic_init(&r->fail_from, fail_from);
    gate_init(&r->exit_ev);
    gate_init(&r->idle_ev);
}

static void hook_rec_destroy(hook_rec *r)
{
    gate_destroy(&r->exit_ev);
    gate_destroy(&r->idle_ev);
}

static int rec_start(void *ctx, unsigned index)
{
    hook_rec *r = ctx;
    td_pool_stats st;
    unsigned bit = index < 32 ? 1u << index : 0;

    /* Hooks run without the pool lock: querying the pool must not hang. */
    td_pool_get_stats(r->p, &st);
    if (bit == 0 || (atomic_fetch_or(&r->seen, bit) & bit) != 0) {
        atomic_fetch_add(&r->errors, 1);
    }
    if (!td_pool_is_worker(r->p)) {
        atomic_fetch_add(&r->errors, 1);
    }
    atomic_fetch_add(&r->starts, 1);
    return index >= atomic_load(&r->fail_from) ? TD_EAGAIN : TD_OK;
}

static void rec_idle(void *ctx)
{
    hook_rec *r = ctx;
    td_pool_stats st;
    td_pool_get_stats(r->p, &st);
    atomic_fetch_add(&r->idles, 1);
    gate_arrive(&r->idle_ev);
}

static void rec_exit(void *ctx)
{
    hook_rec *r = ctx;
    td_pool_stats st;
    td_pool_get_stats(r->p, &st);
    atomic_fetch_add(&r->exits, 1);
    gate_arrive(&r->exit_ev);
}

TEST(pool_hooks_start_exit)
{
    enum { MAX = 4 };
    hook_rec r;
    td_pool_hooks hooks = {NULL, rec_start, rec_idle, rec_exit};
    gate g;

    hook_rec_init(&r, UINT_MAX);
    hooks.ctx = &r;
    gate_init(&g);
    r.p = make_pool(MAX, NULL, &hooks);
    ASSERT_EQ(0, atomic_load(&r.starts));   /* no thread yet */
    for (int i = 0; i < MAX; i++) {
        ASSERT_OK(td_pool_submit(r.p, gate_task, &g));
    }
    gate_await(&g, MAX);
    /* thread_start ran once per worker, with indices 0..MAX-1. */
    ASSERT_EQ(MAX, atomic_load(&r.starts));
    ASSERT_EQ((1u << MAX) - 1, atomic_load(&r.seen));
    ASSERT_EQ(0, atomic_load(&r.exits));
    gate_open(&g);
    ASSERT_OK(td_pool_destroy(r.p));
    /* thread_exit ran once per worker, before destroy returned. */
    ASSERT_EQ(MAX, atomic_load(&r.exits));
    ASSERT_EQ(MAX, atomic_load(&r.starts));
    ASSERT_EQ(0, atomic_load(&r.errors));
    hook_rec_destroy(&r);
    gate_destroy(&g);
}

TEST(pool_hooks_idle)
{
    atomic_long n = 0;
    hook_rec r;
    td_pool_hooks hooks = {NULL, rec_start, rec_idle, rec_exit};

    hook_rec_init(&r, UINT_MAX);
    hooks.ctx = &r;
    r.p = make_pool(1, NULL, &hooks);
    ASSERT_OK(td_pool_submit(r.p, count_task, &n));
    ASSERT_OK(td_pool_wait(r.p, -1));
    /* With the queue empty and no shutdown, the worker must go to sleep,
     * and thread_idle runs just before it does. */
    gate_await(&r.idle_ev, 1);
    ASSERT_OK(td_pool_submit(r.p, count_task, &n));
    ASSERT_OK(td_pool_wait(r.p, -1));
    gate_await(&r.idle_ev, 2);   /* and again after the next task */
    ASSERT_OK(td_pool_destroy(r.p));
    ASSERT_EQ(2, atomic_load(&n));
    ASSERT_EQ(1, atomic_load(&r.starts));
    ASSERT_EQ(1, atomic_load(&r.exits));
    ASSERT_EQ(0, atomic_load(&r.errors));
    hook_rec_destroy(&r);
}

static int bad_start(void *ctx, unsigned index)
{
    (void)ctx;
    (void)index;
    FAIL("the pool used the caller's hooks after create returned");
}

static void bad_idle(void *ctx)
{
    (void)ctx;
    FAIL("the pool used the caller's hooks after create returned");
}

TEST(pool_hooks_copied_at_create)
{
    atomic_long n = 0;
    hook_rec r;
    td_pool_hooks hooks = {NULL, rec_start, NULL, rec_exit};

    hook_rec_init(&r, UINT_MAX);
    hooks.ctx = &r;
    r.p = make_pool(1, NULL, &hooks);
    /* Overwrite the caller's struct: the pool must use its own copy. */
    hooks.ctx = NULL;
    hooks.thread_start = bad_start;
    hooks.thread_idle = bad_idle;
    hooks.thread_exit = NULL;
    ASSERT_OK(td_pool_submit(r.p, count_task, &n));
    ASSERT_OK(td_pool_wait(r.p, -1));
    ASSERT_OK(td_pool_destroy(r.p));
    ASSERT_EQ(1, atomic_load(&n));
    ASSERT_EQ(1, atomic_load(&r.starts));
    ASSERT_EQ(1, atomic_load(&r.exits));
    hook_rec_destroy(&r);
}

TEST(pool_hooks_partial)
{
    /* Any hook may be NULL. */
    atomic_long n = 0;
    hook_rec r;
    td_pool_hooks only_exit = {NULL, NULL, NULL, rec_exit};

    hook_rec_init(&r, UINT_MAX);
    only_exit.ctx = &r;
    r.p = make_pool(2, NULL, &only_exit);
    for (int i = 0; i < 100; i++) {
        ASSERT_OK(td_pool_submit(r.p, count_task, &n));
    }
    ASSERT_OK(td_pool_wait(r.p, -1));
    ASSERT_OK(td_pool_destroy(r.p));
    ASSERT_EQ(100, atomic_load(&n));
    ASSERT_GE(atomic_load(&r.exits), 1);
    hook_rec_destroy(&r);
}

TEST(pool_hook_start_failure)
{
    /* Worker 0's thread_start fails: it exits at once (thread_exit still
     * runs) without taking the task; the next submit starts worker 1,
     * which runs both tasks. */
    atomic_long n = 0;
    hook_rec r;
    td_pool_hooks hooks = {NULL, rec_start, NULL, rec_exit};
    td_pool_stats st;

    hook_rec_init(&r, 0);
    hooks.ctx = &r;
    r.p = make_pool(2, NULL, &hooks);
    ASSERT_OK(td_pool_submit(r.p, count_task, &n));
    gate_await(&r.exit_ev, 1);
    ASSERT_EQ(1, atomic_load(&r.starts));
    ASSERT_EQ(0, atomic_load(&n));       /* the failed worker ran nothing */
    ASSERT_EQ(1, get_stats(r.p).queued);

    atomic_store(&r.fail_from, UINT_MAX);
    ASSERT_OK(td_pool_submit(r.p, count_task, &n));
    ASSERT_OK(td_pool_wait(r.p, -1));
    ASSERT_EQ(2, atomic_load(&n));
    /* (threads is not checked: worker 0 may still be between its
     * thread_exit hook and counting itself out.) */
    st = get_stats(r.p);
    ASSERT_EQ(2, st.spawned);
    ASSERT_OK(td_pool_destroy(r.p));
    ASSERT_EQ(2, atomic_load(&r.starts));
    ASSERT_EQ(2, atomic_load(&r.exits));
    ASSERT_EQ(3, atomic_load(&r.seen));   /* indices 0 and 1 */
    ASSERT_EQ(0, atomic_load(&r.errors));
    hook_rec_destroy(&r);
}

/* A thread_start hook that holds each new worker at a gate, as the
 * binding's waits for the GIL do, and then, if told to, drains the queue
 * and fails (as a failed initializer does). */
typedef struct held_start {
    td_pool *p;
    gate g;
    int drain_and_fail;
    visit_log log;
} held_start;

static int held_start_hook(void *ctx, unsigned index)
{
    held_start *h = ctx;
    (void)index;
    gate_pass(&h->g);
    if (h->drain_and_fail) {
        td_pool_drain(h->p, log_visit, &h->log);
        return TD_EAGAIN;
    }
    return TD_OK;
}

static const char handed_ids[5];

TEST(pool_drain_spares_tasks_handed_to_new_workers)
{
    /* Submit starts a worker for a task and hands it that task: a drain
     * (shutdown(cancel_futures=True)) before the worker gets going spares
     * it, as the stdlib's pool spares the task its new thread takes. */
    atomic_long n = 0;
    held_start h;
    td_pool_hooks hooks = {NULL, held_start_hook, NULL, NULL};
    visit_log log;

    memset(&h, 0, sizeof(h));
    memset(&log, 0, sizeof(log));
    gate_init(&h.g);
    hooks.ctx = &h;
    h.p = make_pool(2, NULL, &hooks);
    for (int i = 0; i < 5; i++) {
        ASSERT_OK(td_pool_submit(h.p, count_task, &n));
    }
    gate_await(&h.g, 2);           /* both workers wait in thread_start */
    ASSERT_EQ(5, get_stats(h.p).queued);   /* 2 handed + 3 queued */
    ASSERT_OK(td_pool_shutdown(h.p));
    ASSERT_EQ(3, td_pool_drain(h.p, log_visit, &log));
    ASSERT_EQ(2, get_stats(h.p).queued);
    ASSERT_RC(TD_ETIMEDOUT, td_pool_wait(h.p, 0));   /* handed: not done */
    gate_open(&h.g);
    ASSERT_OK(td_pool_wait(h.p, -1));
    ASSERT_EQ(2, atomic_load(&n));
    ASSERT_OK(td_pool_destroy(h.p));
    gate_destroy(&h.g);
}

TEST(pool_failed_start_drains_its_handed_task_first)
{
    /* A worker whose thread_start fails and drains (the binding's failed
     * initializer) reports the task it was handed, the oldest, first. */
    held_start h;
    td_pool_hooks hooks = {NULL, held_start_hook, NULL, NULL};

    memset(&h, 0, sizeof(h));
    gate_init(&h.g);
    h.drain_and_fail = 1;
    hooks.ctx = &h;
    h.p = make_pool(1, NULL, &hooks);
    for (int i = 0; i < 3; i++) {
        ASSERT_OK(td_pool_submit(h.p, never_run_task,
                                 (void *)&handed_ids[i]));
    }
    gate_open(&h.g);
    ASSERT_OK(td_pool_wait(h.p, -1));
    ASSERT_EQ(0, get_stats(h.p).queued);
    /* The drain visits after releasing the lock, so the waiter may be
     * told before the visits end: read the log once the worker is gone. */
    ASSERT_OK(td_pool_destroy(h.p));
    ASSERT_EQ(3, h.log.n);
    for (int i = 0; i < 3; i++) {
        ASSERT_PTR_EQ(&handed_ids[i], h.log.arg[i]);
    }
    gate_destroy(&h.g);
}

static void noop_task(void *arg)
{
    (void)arg;
}

static int fork_handed_child(td_pool *p)
{
    visit_log log;
    memset(&log, 0, sizeof(log));
    td_pool_after_fork_child(p, log_visit, &log);
    /* The handed task (the oldest) first, then the queued ones. */
    ASSERT_EQ(3, log.n);
    for (int i = 0; i < 3; i++) {
        ASSERT_PTR_EQ(&handed_ids[i], log.arg[i]);
    }
    ASSERT_EQ(0, get_stats(p).queued);
    ASSERT_OK(td_pool_destroy(p));
    return 0;
}

TEST(pool_fork_reports_tasks_handed_to_starting_workers)
{
    /* A worker still in thread_start at fork() vanishes in the child with
     * the task it was handed: after_fork_child reports that task too. */
    held_start h;
    td_pool_hooks hooks = {NULL, held_start_hook, NULL, NULL};
    pid_t pid;
    int status;

    memset(&h, 0, sizeof(h));
    gate_init(&h.g);
    hooks.ctx = &h;
    h.p = make_pool(1, NULL, &hooks);
    for (int i = 0; i < 3; i++) {
        ASSERT_OK(td_pool_submit(h.p, noop_task, (void *)&handed_ids[i]));
    }
    gate_await(&h.g, 1);
    fflush(stdout);
    fflush(stderr);
    pid = fork();
    if (pid == 0) {
        exit(fork_handed_child(h.p));
    }
    ASSERT_GE(pid, 0);
    ASSERT_EQ(pid, waitpid(pid, &status, 0));
    if (!WIFEXITED(status) || WEXITSTATUS(status) != 0) {
        HARNESS_FAIL("forked child failed: status %d", status);
    }
    gate_open(&h.g);   /* the parent's pool runs all three */
    ASSERT_OK(td_pool_wait(h.p, -1));
    ASSERT_EQ(0, get_stats(h.p).queued);
    ASSERT_OK(td_pool_destroy(h.p));
    gate_destroy(&h.g);
}

TEST(pool_destroy_stranded_tasks)
{
    /* Every thread_start fails, so a queued task has no worker left to run
     * it.  destroy must still return (not wait forever for the queue to
     * empty) and free the stranded task's node (ASan checks). */
    atomic_long n = 0;
    hook_rec r;
    td_pool_hooks hooks = {NULL, rec_start, NULL, rec_exit};

    hook_rec_init(&r, 0);
    hooks.ctx = &r;
    r.p = make_pool(1, NULL, &hooks);
    ASSERT_OK(td_pool_submit(r.p, count_task, &n));
    gate_await(&r.exit_ev, 1);
    ASSERT_OK(td_pool_destroy(r.p));
    ASSERT_EQ(0, atomic_load(&n));
    ASSERT_EQ(atomic_load(&r.starts), atomic_load(&r.exits));
    hook_rec_destroy(&r);
}

/* ---- thread names ------------------------------------------------------ */

typedef struct name_slot {
    gate *g;
    char name[32];
    int rc;
} name_slot;

static void name_task(void *arg)
{
    name_slot *s = arg;
    s->rc = pthread_getname_np(pthread_self(), s->name, sizeof(s->name));
    gate_pass(s->g);   /* hold the worker so each task gets its own */
}

/* Runs n tasks on n workers of a pool named prefix; checks their names. */
static void check_names(const char *prefix, unsigned n,
                        const char *const *want)
{
    name_slot slots[4];
    int found[4] = {0};
    gate g;
    td_pool *p = make_pool(n, prefix, NULL);

    ASSERT_LE(n, 4);
    gate_init(&g);
    for (unsigned i = 0; i < n; i++) {
        slots[i].g = &g;
        slots[i].rc = 99;
        ASSERT_OK(td_pool_submit(p, name_task, &slots[i]));
    }
    gate_await(&g, n);
    gate_open(&g);
    ASSERT_OK(td_pool_destroy(p));
    /* Workers may pick tasks in any order: match the names as a set. */
    for (unsigned i = 0; i < n; i++) {
        ASSERT_EQ(0, slots[i].rc);
        ASSERT_LE(strlen(slots[i].name), 15);
        unsigned j = 0;
        while (j < n && (found[j] || strcmp(slots[i].name, want[j]) != 0)) {
            j++;
        }
        if (j == n) {
            HARNESS_FAIL("unexpected worker name \"%s\" (prefix \"%s\")",
                         slots[i].name, prefix ? prefix : "(null)");
        }
        found[j] = 1;
    }
    gate_destroy(&g);
}

TEST(pool_thread_names)
{
    static const char *const want[] = {"worker_0", "worker_1", "worker_2"};
    check_names("worker", 3, want);
}

TEST(pool_thread_names_default)
{
    static const char *const want[] = {"td_0", "td_1"};
    check_names(NULL, 2, want);
}

TEST(pool_thread_names_truncated)
{
    /* Linux allows 15 bytes plus the NUL.  The prefix is cut, not the
     * whole "{prefix}_{i}", so the index survives and names stay distinct
     * (td_pool.c set_thread_name; td_pool.h only says "cut to the OS
     * limit"). */
    static const char *const exact[] = {"abcdefghijklm_0"};      /* 15 */
    static const char *const cut1[] = {"abcdefghijklm_0"};       /* 16 */
    static const char *const cut_long[] = {"averyveryvery_0",
                                           "averyveryvery_1"};
    check_names("abcdefghijklm", 1, exact);
    check_names("abcdefghijklmn", 1, cut1);
    check_names("averyveryverylongprefix", 2, cut_long);
}

TEST(pool_thread_names_utf8)
{
    /* Cutting never splits a UTF-8 character: seven 2-byte "\xc3\xa9"
     * leave room for six before "_0". */
    static const char *const want[] = {
        "\xc3\xa9\xc3\xa9\xc3\xa9\xc3\xa9\xc3\xa9\xc3\xa9_0"};
    check_names("\xc3\xa9\xc3\xa9\xc3\xa9\xc3\xa9\xc3\xa9\xc3\xa9\xc3\xa9", 1,
                want);
}

TEST(pool_thread_name_prefix_copied)
{
    /* Workers start lazily, long after create: the prefix must be copied
     * at create, not read from the caller's buffer at spawn time. */
    char prefix[16] = "copied";
    name_slot slot;
    gate g;
    td_pool *p = make_pool(1, prefix, NULL);

    memset(prefix, 'X', sizeof(prefix) - 1);
    gate_init(&g);
    slot.g = &g;
    slot.rc = 99;
    ASSERT_OK(td_pool_submit(p, name_task, &slot));
    gate_await(&g, 1);
    gate_open(&g);
    ASSERT_OK(td_pool_destroy(p));
    ASSERT_EQ(0, slot.rc);
    ASSERT_STR_EQ("copied_0", slot.name);
    gate_destroy(&g);
}

/* ---- fork -------------------------------------------------------------- */

static void fork_record_task(void *arg)
{
    atomic_fetch_add((atomic_long *)arg, 1);
}

/* The child: check what after_fork_child reports, then start afresh. */
static int fork_child(td_pool *p, gate *g, atomic_long *ran)
{
    visit_log log;
    td_pool_stats st;
    atomic_long n = 0;
    td_pool *fresh;

    memset(&log, 0, sizeof(log));
    td_pool_after_fork_child(p, log_visit, &log);
    /* Queued tasks first, in order, then the one that was running. */
    ASSERT_EQ(4, log.n);
    for (int i = 0; i < 3; i++) {
        ASSERT_TRUE(log.fn[i] == fork_record_task);
        ASSERT_PTR_EQ(ran, log.arg[i]);
    }
    ASSERT_TRUE(log.fn[3] == gate_task);
    ASSERT_PTR_EQ(g, log.arg[3]);

    /* Shut down, with no workers and nothing left queued or running. */
    st = get_stats(p);
    ASSERT_EQ(0, st.threads);
    ASSERT_EQ(0, st.idle);
    ASSERT_EQ(0, st.queued);
    ASSERT_EQ(0, st.running);
    ASSERT_RC(TD_ESHUTDOWN, td_pool_submit(p, count_task, &n));
    ASSERT_OK(td_pool_join(p, 0));
    ASSERT_OK(td_pool_destroy(p));   /* joins no (nonexistent) thread */

    if (HARNESS_TSAN) {
        /* ThreadSanitizer cannot start threads in the child of a
         * multi-threaded fork ("starting new threads after multi-threaded
         * fork is not supported"), so the fresh pool is checked only in
         * the plain and ASan builds. */
        printf("    tsan: fresh pool in the forked child not checked\n");
        return 0;
    }
    fresh = make_pool(2, "child", NULL);
    for (int i = 0; i < 1000; i++) {
        ASSERT_OK(td_pool_submit(fresh, count_task, &n));
    }
    ASSERT_OK(td_pool_wait(fresh, -1));
    ASSERT_EQ(1000, atomic_load(&n));
    ASSERT_OK(td_pool_destroy(fresh));
    return 0;
}

TEST(pool_fork)
{
    atomic_long ran = 0;
    gate g;
    td_pool *p = make_pool(1, "fork", NULL);
    pid_t pid;
    int status;

    gate_init(&g);
    ASSERT_OK(td_pool_submit(p, gate_task, &g));   /* running at fork */
    gate_await(&g, 1);
    for (int i = 0; i < 3; i++) {                  /* queued at fork */
        ASSERT_OK(td_pool_submit(p, fork_record_task, &ran));
    }

    fflush(stdout);
    fflush(stderr);
    pid = fork();   /* the pool's lock is taken around fork() itself */
    if (pid == 0) {
        /* exit(), not _exit(), so LeakSanitizer checks the child too.  It
         * prints "Running thread N was not suspended": its thread registry
         * still lists the parent's worker, which the child does not have.
         * That warns of possible false leaks, and there are none. */
        exit(fork_child(p, &g, &ran));
    }
    ASSERT_GE(pid, 0);

    /* The parent's pool is unaffected: all four tasks run here. */
    ASSERT_EQ(3, get_stats(p).queued);
    gate_open(&g);
    ASSERT_OK(td_pool_wait(p, -1));
    ASSERT_EQ(3, atomic_load(&ran));
    ASSERT_OK(td_pool_submit(p, fork_record_task, &ran));
    ASSERT_OK(td_pool_wait(p, -1));
    ASSERT_EQ(4, atomic_load(&ran));

    ASSERT_EQ(pid, waitpid(pid, &status, 0));
    if (!WIFEXITED(status) || WEXITSTATUS(status) != 0) {
        HARNESS_FAIL("forked child failed: %s %d",
                     WIFEXITED(status) ? "exit status" : "signal",
                     WIFEXITED(status) ? WEXITSTATUS(status)
                                       : WTERMSIG(status));
    }
    ASSERT_OK(td_pool_destroy(p));
    gate_destroy(&g);
}

static void count_visit(void *ctx, td_task_fn fn, void *arg)
{
    (void)fn;
    (void)arg;
    (*(unsigned *)ctx)++;
}

TEST(pool_fork_many_running)
{
    /* Every task running in the parent is reported in the child, however
     * many workers the pool has (not only the first 64). */
    enum { N = 70 };
    gate g;
    td_pool *p = make_pool(N, NULL, NULL);
    pid_t pid;
    int status;

    gate_init(&g);
    for (int i = 0; i < N; i++) {
        ASSERT_OK(td_pool_submit(p, gate_task, &g));
    }
    gate_await(&g, N);
    fflush(stdout);
    fflush(stderr);
    pid = fork();   /* the pool's lock is taken around fork() itself */
    if (pid == 0) {
        unsigned visits = 0;
        td_pool_after_fork_child(p, count_visit, &visits);
        ASSERT_OK(td_pool_destroy(p));
        if (visits != N) {
            fprintf(stderr, "child: %u running tasks reported, expected "
                    "%d\n", visits, N);
            exit(1);
        }
        exit(0);
    }
    ASSERT_GE(pid, 0);
    ASSERT_EQ(pid, waitpid(pid, &status, 0));
    gate_open(&g);
    ASSERT_OK(td_pool_destroy(p));
    ASSERT_TRUE(WIFEXITED(status));
    ASSERT_EQ(0, WEXITSTATUS(status));
    gate_destroy(&g);
}

/* ---- out of memory ----------------------------------------------------- */

/* Allocations left before the hook starts failing, and live blocks. */
static atomic_long oom_budget;
static atomic_long oom_live;

static void *oom_malloc(size_t size)
{
    void *ptr;
    if (atomic_fetch_sub(&oom_budget, 1) <= 0) {
        return NULL;
    }
    ptr = malloc(size);
    if (ptr != NULL) {
        atomic_fetch_add(&oom_live, 1);
    }
    return ptr;
}

static void oom_free(void *ptr)
{
    if (ptr != NULL) {
        atomic_fetch_sub(&oom_live, 1);
    }
    free(ptr);
}

static int oom_start(void *ctx, unsigned index)
{
    (void)ctx;
    (void)index;
    return TD_OK;
}

/* Enough queued tasks to make any queue grow past its first allocation. */
enum { OOM_TASKS = 600, OOM_MAX_N = 100000 };

TEST(pool_oom)
{
    /* libuv's test-loop-oom.c, for the pool: allow n allocations, raise n
     * from 0 until create and OOM_TASKS submits all succeed.  Every
     * failure must be TD_ENOMEM and leave no block allocated once the
     * pool (if any) is destroyed; ASan/valgrind double-check. */
    td_pool_hooks hooks = {NULL, oom_start, NULL, NULL};
    td_pool_config cfg = {1, "oom", &hooks, 16};
    long create_failures = 0;
    long submit_failures = 0;
    long n;

    ASSERT_OK(td_replace_allocator(oom_malloc, oom_free));
    for (n = 0;; n++) {
        td_pool *p = NULL;
        atomic_long ran = 0;
        long accepted = 0;
        int rc = TD_OK;
        gate g;

        if (n > OOM_MAX_N) {
            HARNESS_FAIL("no success after %ld allocations", n);
        }
        atomic_store(&oom_live, 0);
        atomic_store(&oom_budget, n);
        rc = td_pool_create(&p, &cfg);
        if (rc != TD_OK) {
            ASSERT_RC(TD_ENOMEM, rc);
            ASSERT_EQ(0, atomic_load(&oom_live));
            create_failures++;
            continue;
        }
        gate_init(&g);
        /* Hold the worker so that every task stays queued. */
        rc = td_pool_submit(p, gate_task, &g);
        if (rc == TD_OK) {
            gate_await(&g, 1);
            while (accepted < OOM_TASKS) {
                rc = td_pool_submit(p, count_task, &ran);
                if (rc != TD_OK) {
                    break;
                }
                accepted++;
            }
        }
        if (rc != TD_OK) {
            ASSERT_RC(TD_ENOMEM, rc);
            submit_failures++;
        }
        gate_open(&g);
        ASSERT_OK(td_pool_wait(p, -1));
        /* A failed submit queued nothing; every accepted task ran. */
        ASSERT_EQ(accepted, atomic_load(&ran));
        ASSERT_OK(td_pool_destroy(p));
        ASSERT_EQ(0, atomic_load(&oom_live));
        gate_destroy(&g);
        if (rc == TD_OK) {
            break;
        }
    }
    ASSERT_OK(td_replace_allocator(NULL, NULL));
    /* The loop really failed both phases before it succeeded. */
    ASSERT_GE(create_failures, 1);
    ASSERT_GE(submit_failures, 1);
    printf("    succeeded with %ld allocations (%ld create, %ld submit "
           "failures)\n", n, create_failures, submit_failures);
}
