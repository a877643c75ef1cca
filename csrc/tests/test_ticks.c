/*
 * test_ticks.c - cheap timestamps and their conversion (td_ticks.h), and
 * the pool timeline records made from them.
 *
 * Which source a run uses depends on the machine (the TSC where the kernel
 * keeps time with it, else CLOCK_MONOTONIC); each test prints it.  The
 * fallback is tested everywhere by forcing it with the test hook, which
 * cannot leak into other tests: each runs in its own process.
 *
 * Converted stamps are checked against CLOCK_MONOTONIC read directly
 * (harness_now_ns) around them, allowing HARNESS_TICKS_SLACK_NS for the
 * conversion's error.
 */
#include <stdatomic.h>

#include "harness.h"
#include "td_pool.h"
#include "td_ticks.h"

#define TICKS_SLACK_NS HARNESS_TICKS_SLACK_NS

static void print_source(void)
{
    printf("    ticks: %s\n",
           td_ticks_source() == TD_TICKS_TSC ? "TSC" : "CLOCK_MONOTONIC");
    fflush(stdout);
}

/* ---- ticks never go backwards within a thread ------------------------- */

enum { MONO_THREADS = 3, MONO_READS = 200000 };

static void *read_ticks_in_order(void *arg)
{
    (void)arg;
    uint64_t prev = td_ticks_now();
    for (int i = 0; i < MONO_READS; i++) {
        uint64_t cur = td_ticks_now();
        ASSERT_U64_GE(cur, prev);
        prev = cur;
    }
    return NULL;
}

/* Several threads at once, so that they also get moved between CPUs. */
static void check_ticks_monotonic(void)
{
    pthread_t threads[MONO_THREADS];
    for (int i = 0; i < MONO_THREADS; i++) {
        ASSERT_PT(pthread_create(&threads[i], NULL, read_ticks_in_order,
                                 NULL));
    }
    read_ticks_in_order(NULL);
    for (int i = 0; i < MONO_THREADS; i++) {
        ASSERT_PT(pthread_join(threads[i], NULL));
    }
}

TEST(ticks_monotonic_per_thread)
{
    print_source();
    check_ticks_monotonic();
}

/* ---- conversion ------------------------------------------------------- */

/* A stamp and the CLOCK_MONOTONIC reads on both sides of it. */
typedef struct sample {
    uint64_t lo, ticks, hi;
} sample;

static sample take_sample(void)
{
    sample s;
    s.lo = harness_now_ns();
    s.ticks = td_ticks_now();
    s.hi = harness_now_ns();
    return s;
}

static void check_converted(const td_ticks_map *m, const sample *s)
{
    uint64_t ns = td_ticks_to_ns(m, s->ticks);
    ASSERT_U64_GE(ns + TICKS_SLACK_NS, s->lo);
    ASSERT_U64_LE(ns, s->hi + TICKS_SLACK_NS);
}

TEST(ticks_convert_accuracy)
{
    /* The first use takes the map's first pair; a stamp 25 ms later lies
     * midway to the readout 25 ms after that, where the straight line
     * between the pairs is furthest from both. */
    print_source();
    sample first = take_sample();
    td_clock_sleep_ns(25 * 1000 * 1000);
    sample mid = take_sample();
    td_clock_sleep_ns(25 * 1000 * 1000);
    sample last = take_sample();

    td_ticks_map m;
    td_ticks_map_init(&m);
    check_converted(&m, &first);
    check_converted(&m, &mid);
    check_converted(&m, &last);
    /* The 50 ms between them comes out as 50 ms (and at least the sleep). */
    uint64_t span = td_ticks_to_ns(&m, last.ticks) -
                    td_ticks_to_ns(&m, first.ticks);
    ASSERT_U64_GE(span + TICKS_SLACK_NS, 50 * 1000 * 1000);
    ASSERT_U64_LE(span, last.hi - first.lo + TICKS_SLACK_NS);

    /* A stamp taken after the map was made still converts (forward). */
    sample after = take_sample();
    check_converted(&m, &after);
}

TEST(ticks_convert_keeps_order)
{
    /* Every stamp between two readouts, and stamps after the map was made,
     * convert to non-decreasing ns: the map never reorders. */
    print_source();
    enum { N = 2000 };
    static uint64_t ticks[N];
    for (int i = 0; i < N / 2; i++) {
        ticks[i] = td_ticks_now();
    }
    td_ticks_map m;
    td_ticks_map_init(&m);
    for (int i = N / 2; i < N; i++) {
        ticks[i] = td_ticks_now();
    }
    uint64_t prev = 0;
    for (int i = 0; i < N; i++) {
        uint64_t ns = td_ticks_to_ns(&m, ticks[i]);
        ASSERT_U64_GE(ns, prev);
        prev = ns;
    }
    /* Far-off values do not wrap around. */
    ASSERT_U64_LE(td_ticks_to_ns(&m, 0), td_ticks_to_ns(&m, ticks[0]));
}

/* ---- the fallback, forced --------------------------------------------- */

TEST(ticks_fallback_forced)
{
    td__ticks_force_fallback();
    ASSERT_EQ(TD_TICKS_NS, td_ticks_source());
    print_source();

    /* Ticks are CLOCK_MONOTONIC ns: exactly between reads of it. */
    for (int i = 0; i < 1000; i++) {
        sample s = take_sample();
        ASSERT_U64_LE(s.lo, s.ticks);
        ASSERT_U64_LE(s.ticks, s.hi);
    }
    check_ticks_monotonic();

    /* And the conversion is the identity, for any value. */
    td_ticks_map m;
    td_ticks_map_init(&m);
    static const uint64_t values[] = {0, 1, 1000000007u, UINT64_MAX};
    for (size_t i = 0; i < sizeof(values) / sizeof(values[0]); i++) {
        ASSERT_U64_EQ(values[i], td_ticks_to_ns(&m, values[i]));
    }
}

/* ---- pool records: submit <= start <= end, in ns ----------------------- */

static atomic_long ran;

static void short_task(void *arg)
{
    /* Every eighth task does a little work, so that tasks overlap and
     * queue up behind each other in varied ways. */
    if ((uintptr_t)arg % 8 == 0) {
        (void)td_clock_spin_ns(2000);
    }
    atomic_fetch_add(&ran, 1);
}

enum { ORDER_TASKS = 4000, ORDER_WORKERS = 2 };

static void *submit_half(void *arg)
{
    td_pool *p = arg;
    for (uintptr_t i = 0; i < ORDER_TASKS / 2; i++) {
        ASSERT_EQ(TD_OK, td_pool_submit_tagged(p, short_task, (void *)i,
                                               (uint32_t)i));
    }
    return NULL;
}

static void check_pool_records_ordered(void)
{
    td_pool_config cfg = {ORDER_WORKERS, "ord", NULL, ORDER_TASKS};
    td_pool *p = NULL;
    uint64_t before = harness_now_ns();
    ASSERT_EQ(TD_OK, td_pool_create(&p, &cfg));

    /* Two submitters on top of the two workers: stamps are taken on every
     * CPU, and tasks start both fresh and straight after another. */
    pthread_t other;
    ASSERT_PT(pthread_create(&other, NULL, submit_half, p));
    submit_half(p);
    ASSERT_PT(pthread_join(other, NULL));
    ASSERT_EQ(TD_OK, td_pool_wait(p, -1));
    uint64_t after = harness_now_ns();

    static td_task_record out[ORDER_TASKS];
    size_t count = 0;
    uint64_t dropped = 1;
    ASSERT_EQ(TD_OK, td_pool_timeline(p, out, ORDER_TASKS, &count,
                                      &dropped));
    ASSERT_EQ(ORDER_TASKS, count);
    ASSERT_EQ(0, dropped);
    uint64_t last_end[ORDER_WORKERS] = {0};
    for (size_t i = 0; i < count; i++) {
        const td_task_record *r = &out[i];
        ASSERT_U64_LE(r->submit_ns, r->start_ns);
        ASSERT_U64_LE(r->start_ns, r->end_ns);
        ASSERT_U64_GE(r->submit_ns + TICKS_SLACK_NS, before);
        ASSERT_U64_LE(r->end_ns, after + TICKS_SLACK_NS);
        /* A worker's tasks follow one another: the ring takes each
         * worker's records in the order it ran them. */
        ASSERT_LT(r->worker, ORDER_WORKERS);
        ASSERT_U64_LE(last_end[r->worker], r->start_ns);
        last_end[r->worker] = r->end_ns;
    }
    ASSERT_EQ(ORDER_TASKS, atomic_load(&ran));
    ASSERT_EQ(TD_OK, td_pool_destroy(p));
}

TEST(pool_timeline_ns_ordered)
{
    print_source();
    check_pool_records_ordered();
}

TEST(pool_timeline_ns_ordered_fallback)
{
    td__ticks_force_fallback();
    print_source();
    check_pool_records_ordered();
}
