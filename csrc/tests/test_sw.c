/*
 * test_sw.c - the stopwatch (td_sw.h).
 *
 * Exact arithmetic is checked with an injected fake clock whose time the
 * test sets by hand (like yappi's _set_test_timings); the real clock is only
 * checked for lower bounds and monotonicity, never for exact durations.
 */
#include <stdint.h>

#include "harness.h"
#include "td_clock.h"
#include "td_sw.h"

typedef struct fake_clock {
    uint64_t now;
    unsigned calls;
} fake_clock;

static uint64_t fake_now(void *ctx)
{
    fake_clock *fc = ctx;
    fc->calls++;
    return fc->now;
}

TEST(sw_fake_clock_arithmetic)
{
    fake_clock fc = {1000, 0};
    td_sw sw;

    td_sw_init(&sw, fake_now, &fc);
    ASSERT_EQ(TD_SW_IDLE, sw.state);
    ASSERT_U64_EQ(0, td_sw_elapsed_ns(&sw));   /* never started */

    ASSERT_OK(td_sw_start(&sw));
    ASSERT_EQ(TD_SW_RUNNING, sw.state);
    ASSERT_U64_EQ(0, td_sw_elapsed_ns(&sw));
    fc.now = 1050;
    ASSERT_U64_EQ(50, td_sw_elapsed_ns(&sw));  /* up to now while running */
    fc.now = 2000;
    ASSERT_U64_EQ(1000, td_sw_elapsed_ns(&sw));

    fc.now = 2345;
    ASSERT_OK(td_sw_stop(&sw));
    ASSERT_EQ(TD_SW_STOPPED, sw.state);
    ASSERT_U64_EQ(1345, td_sw_elapsed_ns(&sw));
    fc.now = 99999;                            /* frozen once stopped */
    ASSERT_U64_EQ(1345, td_sw_elapsed_ns(&sw));
}

TEST(sw_restart)
{
    fake_clock fc = {10, 0};
    td_sw sw;

    td_sw_init(&sw, fake_now, &fc);
    ASSERT_OK(td_sw_start(&sw));
    fc.now = 30;
    ASSERT_OK(td_sw_stop(&sw));
    ASSERT_U64_EQ(20, td_sw_elapsed_ns(&sw));

    /* Starting a stopped stopwatch begins a new interval from zero. */
    fc.now = 100;
    ASSERT_OK(td_sw_start(&sw));
    ASSERT_U64_EQ(0, td_sw_elapsed_ns(&sw));
    fc.now = 107;
    ASSERT_U64_EQ(7, td_sw_elapsed_ns(&sw));

    /* Starting a running stopwatch restarts it. */
    fc.now = 200;
    ASSERT_OK(td_sw_start(&sw));
    fc.now = 205;
    ASSERT_U64_EQ(5, td_sw_elapsed_ns(&sw));
    fc.now = 211;
    ASSERT_OK(td_sw_stop(&sw));
    ASSERT_U64_EQ(11, td_sw_elapsed_ns(&sw));
}

TEST(sw_stop_not_running)
{
    fake_clock fc = {5, 0};
    td_sw sw;

    td_sw_init(&sw, fake_now, &fc);
    ASSERT_RC(TD_EINVAL, td_sw_stop(&sw));     /* idle */
    ASSERT_EQ(TD_SW_IDLE, sw.state);
    ASSERT_U64_EQ(0, td_sw_elapsed_ns(&sw));

    ASSERT_OK(td_sw_start(&sw));
    fc.now = 8;
    ASSERT_OK(td_sw_stop(&sw));
    fc.now = 20;
    ASSERT_RC(TD_EINVAL, td_sw_stop(&sw));     /* already stopped */
    ASSERT_EQ(TD_SW_STOPPED, sw.state);
    ASSERT_U64_EQ(3, td_sw_elapsed_ns(&sw));   /* a failed stop changes
                                                  nothing */
}

TEST(sw_start_null)
{
    ASSERT_RC(TD_EINVAL, td_sw_start(NULL));
}

TEST(sw_clock_ctx_passed)
{
    fake_clock fc = {0, 0};
    td_sw sw;

    td_sw_init(&sw, fake_now, &fc);
    ASSERT_OK(td_sw_start(&sw));
    fc.now = 3;
    ASSERT_OK(td_sw_stop(&sw));
    /* The clock saw our ctx: it is the only thing that counts calls. */
    ASSERT_GE(fc.calls, 2);
    ASSERT_PTR_EQ(&fc, sw.clock_ctx);
    ASSERT_U64_EQ(3, td_sw_elapsed_ns(&sw));
}

TEST(sw_real_clock)
{
    const uint64_t work_ns = 5 * 1000 * 1000;
    uint64_t prev, cur, stopped;
    td_sw sw;

    td_sw_init(&sw, NULL, NULL);   /* NULL: td_clock_now_ns */
    ASSERT_U64_EQ(0, td_sw_elapsed_ns(&sw));
    ASSERT_OK(td_sw_start(&sw));
    prev = td_sw_elapsed_ns(&sw);
    for (int i = 0; i < 1000; i++) {   /* never decreases while running */
        cur = td_sw_elapsed_ns(&sw);
        ASSERT_U64_GE(cur, prev);
        prev = cur;
    }
    /* The sleep is the measured work, not synchronisation. */
    td_clock_sleep_ns(work_ns);
    ASSERT_U64_GE(td_sw_elapsed_ns(&sw), work_ns);
    ASSERT_OK(td_sw_stop(&sw));
    stopped = td_sw_elapsed_ns(&sw);
    ASSERT_U64_GE(stopped, work_ns);
    td_clock_sleep_ns(1000 * 1000);
    ASSERT_U64_EQ(stopped, td_sw_elapsed_ns(&sw));
}
