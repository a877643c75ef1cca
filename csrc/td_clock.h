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

/* CPU time the calling thread has used, in nanoseconds
 * (CLOCK_THREAD_CPUTIME_ID): it stands still while the thread waits or
 * while another thread has the core. */
uint64_t td_clock_thread_cpu_ns(void);

/*
 * Keeps the CPU busy until the calling thread has used at least ns more
 * nanoseconds of CPU time, doing arithmetic that the compiler cannot
 * remove.  CPU time, not elapsed time, makes it a fixed amount of work: two
 * spins on one core take twice as long as on two cores, which is what a
 * demo of parallelism must show.  Returns a value derived from that
 * arithmetic so callers can show the work happened.
 */
uint64_t td_clock_spin_ns(uint64_t ns);

/* The absolute deadline timeout_ns from now, as a timespec for
 * pthread_cond_timedwait on CLOCK_MONOTONIC; timeout_ns >= 0. */
struct timespec;
void td__deadline_after(struct timespec *out, int64_t timeout_ns);

#endif /* TD_CLOCK_H */
