/*
 * td_clock.h - the monotonic clock and GIL-free busy work of the core.
 *
 * All times are uint64_t nanoseconds of CLOCK_MONOTONIC (never the wall
 * clock, which jumps when it is set); float seconds exist only in the
 * binding.
 */
#ifndef TD_CLOCK_H
#define TD_CLOCK_H

#include <stdint.h>

#include "td_common.h"

/* Nanoseconds since an arbitrary fixed point; never goes backwards. */
uint64_t td_clock_now_ns(void);

/* Sleeps at least ns nanoseconds (restarting after signals). */
void td_clock_sleep_ns(uint64_t ns);

/*
 * Keeps the CPU busy for at least ns nanoseconds of monotonic time, doing
 * arithmetic that the compiler cannot remove.  Returns a value derived from
 * that arithmetic so callers can show the work happened.
 */
uint64_t td_clock_spin_ns(uint64_t ns);

/* The absolute deadline timeout_ns from now, as a timespec for
 * pthread_cond_timedwait on CLOCK_MONOTONIC; timeout_ns >= 0. */
struct timespec;
void td__deadline_after(struct timespec *out, int64_t timeout_ns);

#endif /* TD_CLOCK_H */
