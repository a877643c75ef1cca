/*
 * test_spin.c - the bounded spin before sleeping (td_spin.h): it returns
 * as soon as the word changes, gives up after its bound, and the bound
 * comes from TASKDEMO_SPIN_US when that is a sane number.  Each test runs
 * in its own process, so the once-per-process bound can differ per test.
 */
#include <pthread.h>
#include <stdatomic.h>
#include <stdlib.h>
#include <sys/wait.h>
#include <unistd.h>

#include "harness.h"
#include "td_pool.h"
#include "td_spin.h"

TEST(spin_default_bound)
{
    ASSERT_EQ(0, unsetenv("TASKDEMO_SPIN_US"));
    ASSERT_EQ(TD_SPIN_NS, td_spin_limit_ns());
}

TEST(spin_bound_from_environment)
{
    ASSERT_EQ(0, setenv("TASKDEMO_SPIN_US", "7", 1));
    ASSERT_EQ(7000, td_spin_limit_ns());
    /* Read once: later changes do not count. */
    ASSERT_EQ(0, setenv("TASKDEMO_SPIN_US", "9", 1));
    ASSERT_EQ(7000, td_spin_limit_ns());
}

TEST(spin_bad_environment_keeps_default)
{
    /* Not a number, negative, or over a second: the default, so a typo
     * never makes idle threads spin for long. */
    static const char *bad[] = {"abc", "-5", "5x", "1000001"};
    for (size_t i = 0; i < sizeof(bad) / sizeof(bad[0]); i++) {
        pid_t pid = fork();
        ASSERT_LE(0, pid);
        if (pid == 0) {
            setenv("TASKDEMO_SPIN_US", bad[i], 1);
            _exit(td_spin_limit_ns() == TD_SPIN_NS ? 0 : 1);
        }
        int status = 0;
        ASSERT_EQ(pid, waitpid(pid, &status, 0));
        ASSERT_TRUE(WIFEXITED(status) && WEXITSTATUS(status) == 0);
    }
}

TEST(spin_returns_at_once_when_changed)
{
    _Atomic unsigned word = 5;
    ASSERT_EQ(1, td_spin_while_equal(&word, 4, td_spin_until(TD_SPIN_NS)));
    ASSERT_EQ(1, td_spin_while_equal(&word, 4, td_spin_until(0)));
    /* No time: one look. */
    ASSERT_EQ(0, td_spin_while_equal(&word, 5, td_spin_until(0)));
}

TEST(spin_gives_up_after_its_bound)
{
    ASSERT_EQ(0, unsetenv("TASKDEMO_SPIN_US"));
    _Atomic unsigned word = 0;
    uint64_t t0 = harness_now_ns();
    /* 1 s asked for: */
    ASSERT_EQ(0, td_spin_while_equal(&word, 0, td_spin_until(1000000000)));
    uint64_t took = harness_now_ns() - t0;
    /* Capped at the process bound (50 us), never below it; the upper
     * bound leaves room for a busy machine. */
    ASSERT_U64_GE(took, (uint64_t)TD_SPIN_NS);
    ASSERT_U64_LE(took, 500000000u);
    /* A shorter time asked for is kept. */
    t0 = harness_now_ns();
    ASSERT_EQ(0, td_spin_while_equal(&word, 0, td_spin_until(10000)));
    took = harness_now_ns() - t0;
    ASSERT_U64_GE(took, 10000u);
}

TEST(spin_off_only_looks)
{
    ASSERT_EQ(0, setenv("TASKDEMO_SPIN_US", "0", 1));
    ASSERT_EQ(0, td_spin_limit_ns());
    _Atomic unsigned word = 0;
    uint64_t t0 = harness_now_ns();
    /* 1 s asked for: */
    ASSERT_EQ(0, td_spin_while_equal(&word, 0, td_spin_until(1000000000)));
    /* One look, not a second of spinning (50 ms: room for valgrind). */
    ASSERT_U64_LE(harness_now_ns() - t0, 50000000u);
}

typedef struct flip {
    _Atomic unsigned word;
    _Atomic int ready;
} flip;

static void *flip_later(void *arg)
{
    flip *f = arg;
    while (!atomic_load(&f->ready)) {
        td_cpu_relax();
    }
    atomic_store(&f->word, 1);
    return NULL;
}

TEST(spin_sees_another_threads_store)
{
    /* With a bound of a second, the store (within microseconds once the
     * thread runs) ends the spin: 1, not a timeout. */
    ASSERT_EQ(0, setenv("TASKDEMO_SPIN_US", "1000000", 1));
    flip f;
    atomic_init(&f.word, 0);
    atomic_init(&f.ready, 0);
    pthread_t t;
    ASSERT_PT(pthread_create(&t, NULL, flip_later, &f));
    atomic_store(&f.ready, 1);
    ASSERT_EQ(1,
              td_spin_while_equal(&f.word, 0, td_spin_until(1000000000)));
    ASSERT_PT(pthread_join(t, NULL));
}

static void count_task(void *arg)
{
    atomic_fetch_add((_Atomic int *)arg, 1);
}

TEST(spin_one_idle_worker_at_a_time)
{
    /* With a spin of a whole second, four workers that go idle together:
     * one spins, three sleep at once (more spinners would only take cores
     * from working threads).  The spinner takes the next task without a
     * signal, and shutdown ends its spin: join is quick. */
    ASSERT_EQ(0, setenv("TASKDEMO_SPIN_US", "1000000", 1));
    enum { WORKERS = 4 };
    td_pool_config cfg = {WORKERS, "sp", NULL, 0};
    td_pool *p = NULL;
    ASSERT_EQ(TD_OK, td_pool_create(&p, &cfg));
    gate g;
    gate_init(&g);
    for (int i = 0; i < WORKERS; i++) {
        ASSERT_EQ(TD_OK, td_pool_submit(p, gate_task, &g));
    }
    gate_await(&g, WORKERS);   /* all four started */
    gate_open(&g);
    ASSERT_EQ(TD_OK, td_pool_wait(p, -1));
    gate_destroy(&g);

    td_pool_stats st;
    uint64_t give_up = harness_now_ns() + 500000000u;   /* 0.5 s */
    do {
        td_pool_get_stats(p, &st);
    } while (st.idle < WORKERS - 1 && harness_now_ns() < give_up);
    ASSERT_EQ(WORKERS - 1, st.idle);   /* one is not asleep: it spins */

    _Atomic int ran = 0;
    ASSERT_EQ(TD_OK, td_pool_submit(p, count_task, (void *)&ran));
    ASSERT_EQ(TD_OK, td_pool_wait(p, -1));
    ASSERT_EQ(1, atomic_load(&ran));

    uint64_t t0 = harness_now_ns();
    ASSERT_EQ(TD_OK, td_pool_destroy(p));   /* shutdown and join */
    ASSERT_U64_LE(harness_now_ns() - t0, 500000000u);
}
