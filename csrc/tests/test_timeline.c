/*
 * test_timeline.c - the task-record ring (td_timeline) and the pool's
 * timeline: bounded memory, oldest dropped and counted, records that say
 * which worker ran what, when.
 */
#include <stdatomic.h>
#include <time.h>

#include "harness.h"
#include "td_clock.h"
#include "td_pool.h"
#include "td_timeline.h"

static td_task_record rec(uint32_t tag)
{
    td_task_record r = {tag, tag + 1u, tag + 2u, 0, tag, 1};
    return r;
}

TEST(timeline_off_keeps_nothing)
{
    td_timeline tl;
    ASSERT_EQ(TD_OK, td_timeline_init(&tl, 0));
    td_task_record r = rec(1);
    td_timeline_push(&tl, &r);
    td_task_record out[2];
    ASSERT_EQ(0, td_timeline_copy(&tl, out, 2));
    ASSERT_EQ(0, tl.dropped);
    td_timeline_destroy(&tl);
}

TEST(timeline_ring_drops_oldest)
{
    td_timeline tl;
    ASSERT_EQ(TD_OK, td_timeline_init(&tl, 3));
    for (uint32_t i = 0; i < 5; i++) {
        td_task_record r = rec(i);
        td_timeline_push(&tl, &r);
    }
    td_task_record out[8];
    ASSERT_EQ(3, td_timeline_copy(&tl, out, 8));
    /* The three newest, oldest first; two were dropped and counted. */
    ASSERT_EQ(2, out[0].tag);
    ASSERT_EQ(3, out[1].tag);
    ASSERT_EQ(4, out[2].tag);
    ASSERT_EQ(2, tl.dropped);
    /* A smaller buffer gets the oldest that fit. */
    ASSERT_EQ(2, td_timeline_copy(&tl, out, 2));
    ASSERT_EQ(2, out[0].tag);
    ASSERT_EQ(3, out[1].tag);
    td_timeline_destroy(&tl);
}

TEST(timeline_ring_counts_dropped_items)
{
    /* A dropped record that stood for several tasks drops them all. */
    td_timeline tl;
    ASSERT_EQ(TD_OK, td_timeline_init(&tl, 2));
    for (uint32_t i = 0; i < 4; i++) {
        td_task_record r = rec(i);
        r.items = 10 * (i + 1);
        td_timeline_push(&tl, &r);
    }
    td_task_record out[4];
    ASSERT_EQ(2, td_timeline_copy(&tl, out, 4));
    ASSERT_EQ(30, out[0].items);
    ASSERT_EQ(40, out[1].items);
    ASSERT_EQ(10 + 20, tl.dropped);
    td_timeline_destroy(&tl);
}

static void noop_task(void *arg)
{
    atomic_fetch_add((atomic_long *)arg, 1);
}

TEST(pool_timeline_records_every_task)
{
    enum { N = 500, WORKERS = 3 };
    td_pool_config cfg = {WORKERS, "tl", NULL, 1024};
    td_pool *p = NULL;
    atomic_long n;
    atomic_init(&n, 0);
    ASSERT_EQ(TD_OK, td_pool_create(&p, &cfg));
    uint64_t before = td_clock_now_ns();
    for (uint32_t i = 0; i < N; i++) {
        ASSERT_EQ(TD_OK, td_pool_submit_tagged(p, noop_task, &n, i));
    }
    ASSERT_EQ(TD_OK, td_pool_wait(p, -1));
    uint64_t after = td_clock_now_ns();

    static td_task_record out[N + 10];
    size_t count = 0;
    uint64_t dropped = 99;
    ASSERT_EQ(TD_OK, td_pool_timeline(p, out, N + 10, &count, &dropped));
    ASSERT_EQ(N, count);
    ASSERT_EQ(0, dropped);
    static int seen[N];
    for (size_t i = 0; i < count; i++) {
        ASSERT_LT(out[i].tag, N);
        seen[out[i].tag]++;
        ASSERT_LT(out[i].worker, WORKERS);
        /* The first submit follows `before` by nanoseconds, less than
         * the error of converting the pool's ticks to ns: allow it. */
        ASSERT_U64_LE(before, out[i].submit_ns + HARNESS_TICKS_SLACK_NS);
        ASSERT_U64_LE(out[i].submit_ns, out[i].start_ns);
        ASSERT_U64_LE(out[i].start_ns, out[i].end_ns);
        ASSERT_U64_LE(out[i].end_ns, after + HARNESS_TICKS_SLACK_NS);
    }
    for (int i = 0; i < N; i++) {
        ASSERT_EQ(1, seen[i]);   /* each task recorded exactly once */
    }
    ASSERT_EQ(TD_OK, td_pool_destroy(p));
}

TEST(pool_timeline_bounded)
{
    td_pool_config cfg = {1, "tl", NULL, 8};
    td_pool *p = NULL;
    atomic_long n;
    atomic_init(&n, 0);
    ASSERT_EQ(TD_OK, td_pool_create(&p, &cfg));
    for (uint32_t i = 0; i < 20; i++) {
        ASSERT_EQ(TD_OK, td_pool_submit_tagged(p, noop_task, &n, i));
    }
    ASSERT_EQ(TD_OK, td_pool_wait(p, -1));
    td_task_record out[20];
    size_t count = 0;
    uint64_t dropped = 0;
    ASSERT_EQ(TD_OK, td_pool_timeline(p, out, 20, &count, &dropped));
    ASSERT_EQ(8, count);
    ASSERT_EQ(12, dropped);
    /* One worker runs in FIFO order: the newest eight, in order. */
    for (size_t i = 0; i < count; i++) {
        ASSERT_EQ(12 + i, out[i].tag);
        if (i > 0) {
            ASSERT_U64_LE(out[i - 1].end_ns, out[i].start_ns);
        }
    }
    ASSERT_EQ(TD_EINVAL, td_pool_timeline(p, NULL, 1, &count, &dropped));
    ASSERT_EQ(TD_OK, td_pool_destroy(p));
}

TEST(pool_timeline_off)
{
    td_pool_config cfg = {1, "tl", NULL, 0};
    td_pool *p = NULL;
    atomic_long n;
    atomic_init(&n, 0);
    ASSERT_EQ(TD_OK, td_pool_create(&p, &cfg));
    ASSERT_EQ(TD_OK, td_pool_submit(p, noop_task, &n));
    ASSERT_EQ(TD_OK, td_pool_wait(p, -1));
    size_t count = 1;
    uint64_t dropped = 1;
    ASSERT_EQ(TD_OK, td_pool_timeline(p, NULL, 0, &count, &dropped));
    ASSERT_EQ(0, count);
    ASSERT_EQ(0, dropped);
    ASSERT_EQ(TD_OK, td_pool_destroy(p));
}

static void sleep_task(void *arg)
{
    (void)arg;
    struct timespec ts = {0, 2000000};   /* 2 ms: far from "short" */
    nanosleep(&ts, NULL);
}

/* A one-worker pool whose worker is held in a gate_task (tag 1): tasks
 * submitted meanwhile queue behind it and run back to back once
 * run_queued() opens the gate. */
typedef struct held_pool {
    td_pool *p;
    gate g;
} held_pool;

static void hold_worker(held_pool *h, size_t timeline_capacity)
{
    td_pool_config cfg = {1, "tl", NULL, timeline_capacity};
    h->p = NULL;
    ASSERT_EQ(TD_OK, td_pool_create(&h->p, &cfg));
    gate_init(&h->g);
    ASSERT_EQ(TD_OK, td_pool_submit_tagged(h->p, gate_task, &h->g, 1));
    gate_await(&h->g, 1);   /* the worker is in the gate */
}

static void run_queued(held_pool *h)
{
    gate_open(&h->g);
    ASSERT_EQ(TD_OK, td_pool_wait(h->p, -1));
    gate_destroy(&h->g);
}

/* Copies p's timeline into out (max records) and checks what holds for
 * every record: in order on one worker, times ordered, items in bounds.
 * Returns the number of records; *items gets the tasks they stand for. */
static size_t read_runs(td_pool *p, td_task_record *out, size_t max,
                        uint64_t *items)
{
    size_t count = 0;
    uint64_t dropped = 1;
    ASSERT_EQ(TD_OK, td_pool_timeline(p, out, max, &count, &dropped));
    ASSERT_EQ(0, dropped);
    *items = 0;
    for (size_t i = 0; i < count; i++) {
        ASSERT_LE(1, out[i].items);
        ASSERT_LE(out[i].items, TD_RUN_MAX);
        ASSERT_U64_LE(out[i].submit_ns, out[i].start_ns);
        ASSERT_U64_LE(out[i].start_ns, out[i].end_ns);
        if (i > 0) {
            ASSERT_U64_LE(out[i - 1].end_ns, out[i].start_ns);
        }
        *items += out[i].items;
    }
    return count;
}

TEST(pool_timeline_short_tasks_share_records)
{
    /* 2,000 empty tasks of one tag, queued behind a gate on one worker,
     * run back to back: they share records, which account for each of
     * them exactly once. */
    enum { N = 2000 };
    held_pool h;
    hold_worker(&h, 4096);
    td_pool *p = h.p;
    atomic_long n;
    atomic_init(&n, 0);
    for (int i = 0; i < N; i++) {
        ASSERT_EQ(TD_OK, td_pool_submit_tagged(p, noop_task, &n, 2));
    }
    run_queued(&h);
    ASSERT_EQ(N, atomic_load(&n));

    static td_task_record out[N + 1];
    uint64_t items = 0;
    size_t count = read_runs(p, out, N + 1, &items);
    ASSERT_EQ(N + 1, items);
    ASSERT_EQ(1, out[0].tag);
    ASSERT_EQ(1, out[0].items);   /* the gate: alone, and long */
    /* Tasks are short when each takes under a microsecond, pool overhead
     * included; under TSan or valgrind they may not be.  When they took
     * under a quarter of that (by the records' own times), strides grow
     * 1, 2, 4, ... 64: about N / 64 records, not N. */
    uint64_t each_ns = (out[count - 1].end_ns - out[1].start_ns) / N;
    if (each_ns < 250) {
        ASSERT_LT(count, N / 8);
    } else {
        printf("    %llu ns per task: not short here, %zu records\n",
               (unsigned long long)each_ns, count);
    }
    ASSERT_EQ(TD_OK, td_pool_destroy(p));
}

TEST(pool_timeline_long_tasks_keep_their_own_records)
{
    /* Tasks of 2 ms are never "short": one record each, even queued back
     * to back with one tag. */
    enum { N = 6 };
    held_pool h;
    hold_worker(&h, 64);
    td_pool *p = h.p;
    for (int i = 0; i < N; i++) {
        ASSERT_EQ(TD_OK, td_pool_submit_tagged(p, sleep_task, NULL, 2));
    }
    run_queued(&h);
    td_task_record out[N + 1];
    uint64_t items = 0;
    ASSERT_EQ(N + 1, read_runs(p, out, N + 1, &items));
    for (size_t i = 1; i <= N; i++) {
        ASSERT_EQ(2, out[i].tag);
        ASSERT_EQ(1, out[i].items);
        ASSERT_U64_LE(2000000u, out[i].end_ns - out[i].start_ns);
    }
    ASSERT_EQ(TD_OK, td_pool_destroy(p));
}

TEST(pool_timeline_runs_split_where_the_tag_changes)
{
    /* Short tasks tagged 2, 3, 2 in blocks of 300: records never mix
     * tags, and each block's items add up to 300. */
    enum { BLOCK = 300 };
    held_pool h;
    hold_worker(&h, 4096);
    td_pool *p = h.p;
    atomic_long n;
    atomic_init(&n, 0);
    const uint32_t tags[3] = {2, 3, 2};
    for (int b = 0; b < 3; b++) {
        for (int i = 0; i < BLOCK; i++) {
            ASSERT_EQ(TD_OK, td_pool_submit_tagged(p, noop_task, &n,
                                                   tags[b]));
        }
    }
    run_queued(&h);
    static td_task_record out[3 * BLOCK + 1];
    uint64_t items = 0;
    size_t count = read_runs(p, out, 3 * BLOCK + 1, &items);
    ASSERT_EQ(3 * BLOCK + 1, items);
    uint64_t block_items[3] = {0, 0, 0};
    int block = 0;
    for (size_t i = 1; i < count; i++) {
        if (out[i].tag != tags[block]) {
            block++;
            ASSERT_LT(block, 3);
            ASSERT_EQ(tags[block], out[i].tag);
        }
        block_items[block] += out[i].items;
    }
    ASSERT_EQ(2, block);
    for (int b = 0; b < 3; b++) {
        ASSERT_EQ(BLOCK, block_items[b]);
    }
    ASSERT_EQ(TD_OK, td_pool_destroy(p));
}

/* A task that runs three units of work itself and records them as one
 * run, as the binding's map runners do. */
typedef struct units_ctx {
    td_pool *pool;
    int add_rc;
    uint64_t submit;
} units_ctx;

static void units_task(void *arg)
{
    units_ctx *c = arg;
    uint64_t start = td_pool_stamp();
    /* An end before its start (stamps from two CPUs can disagree): the
     * pool must put it back in order. */
    c->add_rc = td_pool_timeline_add_run(c->pool, c->submit, start,
                                         start - 1, 3, 100);
}

TEST(pool_timeline_add_run_records_units)
{
    td_pool_config cfg = {1, "tl", NULL, 16};
    td_pool *p = NULL;
    ASSERT_EQ(TD_OK, td_pool_create(&p, &cfg));
    uint64_t before = td_clock_now_ns();
    units_ctx c = {p, -99, td_pool_stamp()};
    ASSERT_EQ(TD_OK, td_pool_submit_tagged(p, units_task, &c,
                                           TD_POOL_TAG_UNRECORDED));
    ASSERT_EQ(TD_OK, td_pool_wait(p, -1));
    uint64_t after = td_clock_now_ns();
    ASSERT_EQ(TD_OK, c.add_rc);

    td_task_record out[8];
    size_t count = 0;
    uint64_t dropped = 1;
    ASSERT_EQ(TD_OK, td_pool_timeline(p, out, 8, &count, &dropped));
    /* One record for the three units, and none for the task. */
    ASSERT_EQ(1, count);
    ASSERT_EQ(0, dropped);
    ASSERT_EQ(100, out[0].tag);
    ASSERT_EQ(3, out[0].items);
    ASSERT_EQ(0, out[0].worker);   /* filled in by the pool */
    ASSERT_U64_LE(before, out[0].submit_ns + HARNESS_TICKS_SLACK_NS);
    ASSERT_U64_LE(out[0].submit_ns, out[0].start_ns);
    ASSERT_U64_LE(out[0].start_ns, out[0].end_ns);
    ASSERT_U64_LE(out[0].end_ns, after + HARNESS_TICKS_SLACK_NS);
    ASSERT_EQ(TD_OK, td_pool_destroy(p));
}

/* A task that records a run of its own, starting when it starts (as a
 * map runner does). */
static void own_run_task(void *arg)
{
    units_ctx *c = arg;
    uint64_t start = td_pool_stamp();
    c->add_rc = td_pool_timeline_add_run(c->pool, c->submit, start,
                                         td_pool_stamp(), 5, 100);
}

TEST(pool_timeline_run_ends_before_a_task_that_records_its_own)
{
    /* Short tasks of one tag, then a task that records its own run: the
     * short tasks' last record is in the ring before the task's, so the
     * worker's records stay in order. */
    enum { N = 300 };
    held_pool h;
    hold_worker(&h, 1024);
    td_pool *p = h.p;
    atomic_long n;
    atomic_init(&n, 0);
    units_ctx c = {p, -99, td_pool_stamp()};
    for (int i = 0; i < N; i++) {
        ASSERT_EQ(TD_OK, td_pool_submit_tagged(p, noop_task, &n, 2));
    }
    ASSERT_EQ(TD_OK, td_pool_submit_tagged(p, own_run_task, &c,
                                           TD_POOL_TAG_UNRECORDED));
    run_queued(&h);
    ASSERT_EQ(TD_OK, c.add_rc);
    static td_task_record out[N + 2];
    uint64_t items = 0;
    size_t count = read_runs(p, out, N + 2, &items);   /* checks order */
    ASSERT_EQ(1 + N + 5, items);
    ASSERT_EQ(100, out[count - 1].tag);   /* the task's own run is last */
    ASSERT_EQ(TD_OK, td_pool_destroy(p));
}

/* Runs that overflow the ring: the oldest go, and their items count as
 * dropped. */
static void many_runs_task(void *arg)
{
    units_ctx *c = arg;
    for (int i = 0; i < 10 && c->add_rc == TD_OK; i++) {
        uint64_t start = c->submit + 10 * (uint64_t)i;
        c->add_rc = td_pool_timeline_add_run(c->pool, c->submit, start,
                                             start + 10, 5, 7);
    }
}

TEST(pool_timeline_add_run_longer_than_ring)
{
    td_pool_config cfg = {1, "tl", NULL, 4};
    td_pool *p = NULL;
    ASSERT_EQ(TD_OK, td_pool_create(&p, &cfg));
    units_ctx c = {p, TD_OK, td_pool_stamp()};
    ASSERT_EQ(TD_OK, td_pool_submit_tagged(p, many_runs_task, &c,
                                           TD_POOL_TAG_UNRECORDED));
    ASSERT_EQ(TD_OK, td_pool_wait(p, -1));
    ASSERT_EQ(TD_OK, c.add_rc);
    td_task_record out[8];
    size_t count = 0;
    uint64_t dropped = 0;
    ASSERT_EQ(TD_OK, td_pool_timeline(p, out, 8, &count, &dropped));
    ASSERT_EQ(4, count);
    ASSERT_EQ(6 * 5, dropped);
    /* The last four runs, each starting where the one before ended. */
    for (size_t i = 1; i < count; i++) {
        ASSERT_EQ(5, out[i].items);
        ASSERT_U64_LE(out[i - 1].end_ns, out[i].start_ns);
    }
    ASSERT_EQ(TD_OK, td_pool_destroy(p));
}

TEST(pool_timeline_add_run_errors)
{
    td_pool_config cfg = {1, "tl", NULL, 16};
    td_pool *p = NULL;
    ASSERT_EQ(TD_OK, td_pool_create(&p, &cfg));
    /* Only a task of the pool may add records, and of at least one item. */
    ASSERT_EQ(TD_EINVAL, td_pool_timeline_add_run(p, 1, 2, 3, 1, 7));
    ASSERT_EQ(TD_EINVAL, td_pool_timeline_add_run(NULL, 1, 2, 3, 1, 7));
    ASSERT_EQ(TD_EINVAL, td_pool_timeline_add_run(p, 1, 2, 3, 0, 7));
    size_t count = 1;
    uint64_t dropped = 1;
    ASSERT_EQ(TD_OK, td_pool_timeline(p, NULL, 0, &count, &dropped));
    ASSERT_EQ(0, count);
    ASSERT_EQ(TD_OK, td_pool_destroy(p));
}

TEST(pool_timeline_add_run_without_timeline)
{
    /* No timeline: adding a run is a no-op. */
    td_pool_config cfg = {1, "tl", NULL, 0};
    td_pool *p = NULL;
    ASSERT_EQ(TD_OK, td_pool_create(&p, &cfg));
    units_ctx c = {p, -99, td_pool_stamp()};
    ASSERT_EQ(TD_OK, td_pool_submit_tagged(p, units_task, &c,
                                           TD_POOL_TAG_UNRECORDED));
    ASSERT_EQ(TD_OK, td_pool_wait(p, -1));
    ASSERT_EQ(TD_OK, c.add_rc);
    size_t count = 1;
    uint64_t dropped = 1;
    ASSERT_EQ(TD_OK, td_pool_timeline(p, NULL, 0, &count, &dropped));
    ASSERT_EQ(0, count);
    ASSERT_EQ(TD_OK, td_pool_destroy(p));
}
