/*
 * td_sw.h - a stopwatch on the monotonic clock, with an injectable clock so
 * tests can check its arithmetic exactly.
 *
 * Ownership: td_sw is a plain value the caller owns; it allocates nothing.
 * A stopwatch is not shared between threads without the caller's locking.
 */
#ifndef TD_SW_H
#define TD_SW_H

#include <stdint.h>

#include "td_common.h"

typedef uint64_t (*td_clock_fn)(void *ctx);

typedef struct td_sw {
    td_clock_fn clock;
    void *clock_ctx;
    uint64_t started_ns;
    uint64_t stopped_ns;
    int state;   /* TD_SW_IDLE, TD_SW_RUNNING or TD_SW_STOPPED */
} td_sw;

enum { TD_SW_IDLE = 0, TD_SW_RUNNING = 1, TD_SW_STOPPED = 2 };

/* Initialises an idle stopwatch; clock NULL means td_clock_now_ns. */
void td_sw_init(td_sw *sw, td_clock_fn clock, void *clock_ctx);

/* Starts (or restarts) timing.  Returns TD_OK or TD_EINVAL (sw NULL). */
int td_sw_start(td_sw *sw);

/* Stops timing.  Returns TD_OK, or TD_EINVAL if it is not running. */
int td_sw_stop(td_sw *sw);

/* Elapsed ns: up to now while running, start to stop once stopped, 0 when
 * never started. */
uint64_t td_sw_elapsed_ns(const td_sw *sw);

#endif /* TD_SW_H */
