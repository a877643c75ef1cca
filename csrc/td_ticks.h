/*
 * td_ticks.h - cheap timestamps ("ticks") for hot paths, converted to
 * CLOCK_MONOTONIC nanoseconds only when someone reads them.
 *
 * td_clock_now_ns() costs one clock_gettime (about 25 ns here), which is a
 * tenth of a trivial task when a pool stamps every task twice.  On x86 the
 * time-stamp counter (TSC) reads in about 10 ns, so the pool's timeline
 * stores raw ticks and converts them to nanoseconds at readout, through a
 * td_ticks_map.
 *
 * Ticks are the TSC only where it is trustworthy: on x86-64 and i386 when
 * the kernel itself keeps time with it (its current clocksource is "tsc"),
 * which means the kernel found it invariant and in step across CPUs.
 * Everywhere else (other CPUs, other systems, another clocksource) ticks
 * ARE td_clock_now_ns() nanoseconds and the conversion is the identity.
 * The choice is made once per process, at the first td_ticks_now() or
 * td_ticks_map_init(), and never changes afterwards (except through the
 * test hook below).
 *
 * Ticks are comparable across threads of one process (and its fork()ed
 * children), never across machines or boots.  Values convert only through
 * a map made after they were read.
 */
#ifndef TD_TICKS_H
#define TD_TICKS_H

#include <stdatomic.h>
#include <stdint.h>

#include "td_clock.h"

#if defined(__x86_64__) || defined(__i386__)
#include <x86intrin.h>
#define TD__TICKS_HAVE_TSC 1
#else
#define TD__TICKS_HAVE_TSC 0
#endif

/* What ticks are, in this process. */
enum {
    TD_TICKS_UNDECIDED = 0,   /* internal: nothing has asked yet */
    TD_TICKS_TSC = 1,         /* the x86 time-stamp counter */
    TD_TICKS_NS = 2           /* td_clock_now_ns(): identity conversion */
};

/* Internal: the decided source (0 until decided).  Written only inside
 * td__ticks_decide's once (and by the test hook); read relaxed on the hot
 * path, where only its own value matters. */
extern _Atomic int td__ticks_source;

/* Internal: decides the source (once per process) and returns it. */
int td__ticks_decide(void);

/* TD_TICKS_TSC or TD_TICKS_NS; decides first if nobody has yet. */
int td_ticks_source(void);

/*
 * A timestamp in ticks: non-decreasing within a thread, comparable across
 * threads.  Lock-free once decided; the first call in a process decides
 * (reads a sysfs file and the clock).
 */
static inline uint64_t td_ticks_now(void)
{
    int src = atomic_load_explicit(&td__ticks_source, memory_order_relaxed);
    if (src == TD_TICKS_UNDECIDED) {
        src = td__ticks_decide();
    }
#if TD__TICKS_HAVE_TSC
    if (src == TD_TICKS_TSC) {
        return __rdtsc();
    }
#endif
    return td_clock_now_ns();
}

/*
 * About a microsecond in ticks, for telling short tasks from the rest
 * (td_pool.h, "Runs"), where only the order of magnitude matters: 2048
 * TSC ticks are 0.4-2 us on x86 CPUs, whose TSCs run at 1-5 GHz; 1000 ns
 * otherwise.  Call after the source is decided (any td_ticks_now()).
 */
static inline uint64_t td_ticks_short(void)
{
    int src = atomic_load_explicit(&td__ticks_source, memory_order_relaxed);
    return src == TD_TICKS_TSC ? 2048u : 1000u;
}

/*
 * A linear map from ticks to CLOCK_MONOTONIC nanoseconds, valid for ticks
 * read before it was made (and shortly after).  Plain data, owned by the
 * caller; make a new one for each readout.
 */
typedef struct td_ticks_map {
    uint64_t ticks;      /* a fresh (ticks, ns) pair ... */
    uint64_t ns;
    double ns_per_tick;  /* ... and the rate since the process's first */
    int identity;        /* ticks are ns already */
} td_ticks_map;

/*
 * Fills m from a (ticks, ns) pair taken now and the one taken when the
 * source was decided.  Costs a few clock reads; never fails, never blocks
 * (beyond the one-time decision).
 */
void td_ticks_map_init(td_ticks_map *m);

/*
 * ticks as CLOCK_MONOTONIC nanoseconds (td_clock_now_ns's clock).
 * Monotonic: t1 <= t2 gives td_ticks_to_ns(m, t1) <= td_ticks_to_ns(m, t2).
 * Accuracy: see td_ticks.c.
 */
uint64_t td_ticks_to_ns(const td_ticks_map *m, uint64_t ticks);

/*
 * Test hook: from now on ticks are td_clock_now_ns() nanoseconds, as on a
 * machine without a usable TSC.  Call it before anything reads ticks (ticks
 * read earlier would be converted wrongly); each C test runs in its own
 * process, so it cannot leak into the next.
 */
void td__ticks_force_fallback(void);

#endif /* TD_TICKS_H */
