/*
 * test_timeline.c - the task-record ring (td_timeline) and the pool's
 * timeline: bounded memory, oldest dropped and counted, records that say
 * which worker ran what, when.
 */
#include <stdatomic.h>

#include "harness.h"
#include "td_clock.h"
#include "td_pool.h"
#include "td_timeline.h"

static td_task_record rec(uint32_t tag)
{
    td_task_record r = {tag, tag + 1u, tag + 2u, 0, tag};
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

TEST(timeline_push_many_as_pushes)
{
    /* Batches of every size, on rings of several sizes, end up exactly as
     * the same records pushed one at a time. */
    for (size_t cap = 1; cap <= 7; cap++) {
        td_timeline one, many;
        ASSERT_EQ(TD_OK, td_timeline_init(&one, cap));
        ASSERT_EQ(TD_OK, td_timeline_init(&many, cap));
        uint32_t tag = 0;
        for (size_t n = 0; n <= 2 * cap + 1; n++) {
            td_task_record batch[16];
            for (size_t i = 0; i < n; i++) {
                batch[i] = rec(tag++);
                td_timeline_push(&one, &batch[i]);
            }
            td_timeline_push_many(&many, batch, n);
            td_task_record a[8], b[8];
            size_t na = td_timeline_copy(&one, a, 8);
            ASSERT_EQ(na, td_timeline_copy(&many, b, 8));
            for (size_t i = 0; i < na; i++) {
                ASSERT_EQ(a[i].tag, b[i].tag);
                ASSERT_EQ(a[i].end_ns, b[i].end_ns);
            }
            ASSERT_EQ(one.dropped, many.dropped);
        }
        td_timeline_destroy(&one);
        td_timeline_destroy(&many);
    }
    td_timeline off;
    ASSERT_EQ(TD_OK, td_timeline_init(&off, 0));
    td_task_record r = rec(1);
    td_timeline_push_many(&off, &r, 1);
    ASSERT_EQ(0, off.count);
    ASSERT_EQ(0, off.dropped);
    td_timeline_destroy(&off);
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
    uint64_t ends[3];
    ends[0] = td_pool_stamp();
    ends[1] = td_pool_stamp();
    /* An end before its start (stamps from two CPUs can disagree): the
     * pool must put it back in order. */
    ends[2] = ends[1] - 1;
    c->add_rc = td_pool_timeline_add_run(c->pool, c->submit, start, ends, 3,
                                         100);
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
    /* The three units, back to back, and not the task that ran them. */
    ASSERT_EQ(3, count);
    ASSERT_EQ(0, dropped);
    for (size_t i = 0; i < count; i++) {
        ASSERT_EQ(100, out[i].tag);
        ASSERT_EQ(0, out[i].worker);   /* filled in by the pool */
        ASSERT_U64_LE(before, out[i].submit_ns + HARNESS_TICKS_SLACK_NS);
        ASSERT_U64_LE(out[i].submit_ns, out[i].start_ns);
        ASSERT_U64_LE(out[i].start_ns, out[i].end_ns);
        ASSERT_U64_LE(out[i].end_ns, after + HARNESS_TICKS_SLACK_NS);
        if (i > 0) {
            ASSERT_U64_LE(out[i - 1].end_ns, out[i].start_ns);
        }
    }
    ASSERT_EQ(TD_OK, td_pool_destroy(p));
}

/* A run longer than the ring: only its last records stay, the others
 * count as dropped, as if pushed one by one. */
static void long_run_task(void *arg)
{
    units_ctx *c = arg;
    uint64_t ends[10];
    for (int i = 0; i < 10; i++) {
        ends[i] = c->submit + 10 * (uint64_t)(i + 1);
    }
    c->add_rc = td_pool_timeline_add_run(c->pool, c->submit, c->submit,
                                         ends, 10, 7);
}

TEST(pool_timeline_add_run_longer_than_ring)
{
    td_pool_config cfg = {1, "tl", NULL, 4};
    td_pool *p = NULL;
    ASSERT_EQ(TD_OK, td_pool_create(&p, &cfg));
    units_ctx c = {p, -99, td_pool_stamp()};
    ASSERT_EQ(TD_OK, td_pool_submit_tagged(p, long_run_task, &c,
                                           TD_POOL_TAG_UNRECORDED));
    ASSERT_EQ(TD_OK, td_pool_submit_tagged(p, long_run_task, &c,
                                           TD_POOL_TAG_UNRECORDED));
    ASSERT_EQ(TD_OK, td_pool_wait(p, -1));
    ASSERT_EQ(TD_OK, c.add_rc);
    td_task_record out[8];
    size_t count = 0;
    uint64_t dropped = 0;
    ASSERT_EQ(TD_OK, td_pool_timeline(p, out, 8, &count, &dropped));
    ASSERT_EQ(4, count);
    ASSERT_EQ(16, dropped);
    /* The last four units of the second run, each starting where the one
     * before ended. */
    for (size_t i = 1; i < count; i++) {
        ASSERT_U64_LE(out[i - 1].start_ns, out[i].start_ns);
        ASSERT_U64_LE(out[i - 1].end_ns, out[i].start_ns);
    }
    ASSERT_EQ(TD_OK, td_pool_destroy(p));
}

TEST(pool_timeline_add_run_errors)
{
    td_pool_config cfg = {1, "tl", NULL, 16};
    td_pool *p = NULL;
    ASSERT_EQ(TD_OK, td_pool_create(&p, &cfg));
    uint64_t ends[1] = {3};
    /* Only a task of the pool may add records. */
    ASSERT_EQ(TD_EINVAL, td_pool_timeline_add_run(p, 1, 2, ends, 1, 7));
    ASSERT_EQ(TD_EINVAL, td_pool_timeline_add_run(NULL, 1, 2, ends, 1, 7));
    ASSERT_EQ(TD_EINVAL, td_pool_timeline_add_run(p, 1, 2, NULL, 1, 7));
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
