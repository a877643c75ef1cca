/*
 * test_threads.c - counting the OS threads of the process (td_threads.h),
 * with raw pthreads and with a pool's workers.
 *
 * A joined thread can still be listed for a moment: on Linux, pthread_join
 * returns when the exiting thread clears its tid (in mm_release), before
 * the kernel unhashes it from /proc/self/task (release_task).  About 1 join
 * in 2,000 shows the stale entry on a 2-CPU machine.  No event reports the
 * unhashing, so await_thread_count() re-reads the count, yielding between
 * reads, for at most HARNESS_WAIT_S; it is the only polling in the suite.
 */
#include <pthread.h>
#include <sched.h>
#include <stdio.h>
#include <unistd.h>

#include "harness.h"
#include "td_pool.h"
#include "td_threads.h"

static unsigned thread_count(void)
{
    unsigned n = 0;
    ASSERT_OK(td_thread_count(&n));
    return n;
}

/* Waits until td_thread_count() reports want; see the comment at the top. */
static void await_thread_count(unsigned want)
{
    uint64_t deadline = harness_now_ns() + HARNESS_WAIT_S * 1000000000ull;
    unsigned n = thread_count();
    while (n != want) {
        if (harness_now_ns() > deadline) {
            HARNESS_FAIL("td_thread_count: %u threads, expected %u", n,
                         want);
        }
        sched_yield();
        n = thread_count();
    }
}

static void *tid_thread(void *arg)
{
    *(pid_t *)arg = gettid();
    return NULL;
}

/*
 * The thread count of this process once the helper threads that a runtime
 * starts lazily exist: ThreadSanitizer starts one in a forked child and
 * another with the first pthread_create.  So: create and join one thread,
 * wait until the kernel has unhashed it (see the top of the file), and
 * count what is left.
 */
static unsigned baseline(void)
{
    uint64_t deadline = harness_now_ns() + HARNESS_WAIT_S * 1000000000ull;
    char path[64];
    pthread_t t;
    pid_t tid = 0;

    ASSERT_PT(pthread_create(&t, NULL, tid_thread, &tid));
    ASSERT_PT(pthread_join(t, NULL));
    ASSERT_GT(tid, 0);
    snprintf(path, sizeof(path), "/proc/self/task/%d", (int)tid);
    while (access(path, F_OK) == 0) {
        if (harness_now_ns() > deadline) {
            HARNESS_FAIL("joined thread %d still listed", (int)tid);
        }
        sched_yield();
    }
    return thread_count();
}

TEST(thread_count_einval)
{
    ASSERT_RC(TD_EINVAL, td_thread_count(NULL));
}

TEST(thread_count_single)
{
    /* Each test runs in a fresh process with only the main thread, but
     * ThreadSanitizer adds a background thread of its own. */
    if (HARNESS_TSAN) {
        ASSERT_GE(thread_count(), 1);
    } else {
        ASSERT_EQ(1, thread_count());
    }
}

static void *block_on_gate(void *arg)
{
    gate_pass(arg);
    return NULL;
}

TEST(thread_count_pthreads)
{
    enum { N = 5 };
    pthread_t t[N];
    gate g;
    unsigned base = baseline();

    gate_init(&g);
    for (unsigned i = 0; i < N; i++) {
        ASSERT_PT(pthread_create(&t[i], NULL, block_on_gate, &g));
    }
    gate_await(&g, N);
    /* All N are alive and blocked: the count is exact. */
    ASSERT_EQ(base + N, thread_count());
    gate_open(&g);
    for (unsigned i = 0; i < N; i++) {
        ASSERT_PT(pthread_join(t[i], NULL));
    }
    await_thread_count(base);
    gate_destroy(&g);
}

TEST(thread_count_pool_workers)
{
    enum { N = 3 };
    td_pool_config cfg = {N, "tc", NULL, 0};
    td_pool *p;
    td_pool_stats st;
    gate g;
    unsigned base = baseline();

    gate_init(&g);
    ASSERT_OK(td_pool_create(&p, &cfg));
    ASSERT_EQ(base, thread_count());   /* threads start only on demand */
    for (unsigned i = 0; i < N; i++) {
        ASSERT_OK(td_pool_submit(p, gate_task, &g));
    }
    gate_await(&g, N);
    ASSERT_EQ(base + N, thread_count());
    td_pool_get_stats(p, &st);
    ASSERT_EQ(N, st.threads);
    gate_open(&g);

    /* After shutdown + join the workers are joined, so the count returns
     * to the baseline (modulo the unhashing delay described above). */
    ASSERT_OK(td_pool_shutdown(p));
    ASSERT_OK(td_pool_join(p, -1));
    td_pool_get_stats(p, &st);
    ASSERT_EQ(0, st.threads);
    await_thread_count(base);
    ASSERT_OK(td_pool_destroy(p));
    ASSERT_EQ(base, thread_count());
    gate_destroy(&g);
}

TEST(thread_count_pool_destroy)
{
    td_pool_config cfg = {4, NULL, NULL, 0};
    td_pool *p;
    gate g;
    unsigned base = baseline();

    gate_init(&g);
    ASSERT_OK(td_pool_create(&p, &cfg));
    for (unsigned i = 0; i < 4; i++) {
        ASSERT_OK(td_pool_submit(p, gate_task, &g));
    }
    gate_await(&g, 4);
    ASSERT_EQ(base + 4, thread_count());
    gate_open(&g);
    ASSERT_OK(td_pool_destroy(p));
    await_thread_count(base);
    gate_destroy(&g);
}
