/*
 * test_clock.c - the monotonic clock, sleep and spin (td_clock.h).
 *
 * Durations are checked against CLOCK_MONOTONIC read directly
 * (harness_now_ns), and only as lower bounds: a loaded machine makes any
 * upper bound flaky.  The signal test interrupts a sleep with SIGALRM, which
 * only this test's process receives (each test runs in its own process).
 */
#include <errno.h>
#include <signal.h>
#include <stdatomic.h>
#include <string.h>
#include <sys/time.h>
#include <time.h>

#include "harness.h"
#include "td_clock.h"

TEST(clock_monotonic)
{
    uint64_t first = td_clock_now_ns();
    uint64_t prev = first;
    uint64_t h0, h1, t0, t1;

    for (int i = 0; i < 100000; i++) {
        uint64_t cur = td_clock_now_ns();
        ASSERT_U64_GE(cur, prev);
        prev = cur;
    }

    /* It runs at the rate of CLOCK_MONOTONIC: an interval measured by both
     * around the same sleep is at least the sleep for both. */
    h0 = harness_now_ns();
    t0 = td_clock_now_ns();
    td_clock_sleep_ns(20 * 1000 * 1000);
    t1 = td_clock_now_ns();
    h1 = harness_now_ns();
    ASSERT_U64_GE(t1 - t0, 20 * 1000 * 1000);
    ASSERT_U64_LE(t1 - t0, h1 - h0);
}

static void check_sleep(uint64_t ns)
{
    uint64_t t0 = harness_now_ns();
    td_clock_sleep_ns(ns);
    ASSERT_U64_GE(harness_now_ns() - t0, ns);
}

TEST(clock_sleep_at_least)
{
    check_sleep(0);
    check_sleep(1);
    check_sleep(999);
    check_sleep(1000 * 1000);
    check_sleep(999999999 / 100);
    check_sleep(20 * 1000 * 1000);
    check_sleep(1000000000u + 1000);   /* more than a second: tv_sec */
}

static void check_spin(uint64_t ns)
{
    uint64_t t0 = harness_now_ns();
    (void)td_clock_spin_ns(ns);
    ASSERT_U64_GE(harness_now_ns() - t0, ns);
}

TEST(clock_spin_at_least)
{
    check_spin(0);
    check_spin(1);
    check_spin(1000);
    check_spin(1000 * 1000);
    check_spin(20 * 1000 * 1000);
}

static atomic_int alarms;

static void on_alarm(int sig)
{
    (void)sig;
    atomic_fetch_add(&alarms, 1);
}

TEST(clock_sleep_restarts_after_signal)
{
    const uint64_t ns = 100 * 1000 * 1000;
    struct sigaction sa;
    struct itimerval it;
    uint64_t t0;

    /* No SA_RESTART: nanosleep returns EINTR and td_clock_sleep_ns must
     * sleep the rest of the time itself. */
    memset(&sa, 0, sizeof(sa));
    sa.sa_handler = on_alarm;
    sigemptyset(&sa.sa_mask);
    ASSERT_EQ(0, sigaction(SIGALRM, &sa, NULL));

    /* Several alarms, 10 ms apart, fire during the 100 ms sleep. */
    memset(&it, 0, sizeof(it));
    it.it_value.tv_usec = 10 * 1000;
    it.it_interval.tv_usec = 10 * 1000;
    ASSERT_EQ(0, setitimer(ITIMER_REAL, &it, NULL));

    t0 = harness_now_ns();
    td_clock_sleep_ns(ns);
    ASSERT_U64_GE(harness_now_ns() - t0, ns);

    memset(&it, 0, sizeof(it));
    ASSERT_EQ(0, setitimer(ITIMER_REAL, &it, NULL));
    ASSERT_GE(atomic_load(&alarms), 1);   /* the sleep really was hit */
}

static uint64_t ts_ns(const struct timespec *ts)
{
    return (uint64_t)ts->tv_sec * 1000000000u + (uint64_t)ts->tv_nsec;
}

static void check_deadline(int64_t timeout_ns)
{
    struct timespec ts;
    uint64_t before = harness_now_ns();
    uint64_t after;

    td__deadline_after(&ts, timeout_ns);
    after = harness_now_ns();
    ASSERT_GE(ts.tv_nsec, 0);
    ASSERT_LT(ts.tv_nsec, 1000000000);   /* normalised */
    ASSERT_U64_GE(ts_ns(&ts), before + (uint64_t)timeout_ns);
    ASSERT_U64_LE(ts_ns(&ts), after + (uint64_t)timeout_ns);
}

TEST(clock_deadline_after)
{
    /* Values around the nanosecond carry into tv_sec. */
    static const int64_t timeouts[] = {
        0, 1, 999, 1000000, 999999999, 1000000000, 1000000001,
        1999999999, 2500000000, INT64_C(86400) * 1000000000,
    };
    for (size_t i = 0; i < sizeof(timeouts) / sizeof(timeouts[0]); i++) {
        check_deadline(timeouts[i]);
    }
}

TEST(clock_deadline_after_huge)
{
    /* INT64_MAX ns (292 years) is a valid timeout_ns >= 0: the deadline
     * must lie far in the future, not wrap into the past (UBSan reports a
     * signed overflow here, if any). */
    struct timespec ts;
    struct timespec now;

    clock_gettime(CLOCK_MONOTONIC, &now);
    td__deadline_after(&ts, INT64_MAX);
    ASSERT_GE(ts.tv_nsec, 0);
    ASSERT_LT(ts.tv_nsec, 1000000000);
    ASSERT_GE((int64_t)ts.tv_sec - (int64_t)now.tv_sec,
              INT64_MAX / 1000000000 - 1);
}
