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
