/*
 * td_spin.c - the bounded spin of td_spin.h.
 *
 * The bound is process-wide state written once (pthread_once) from the
 * environment; afterwards it is only read.
 */
#include "td_spin.h"

#include <pthread.h>
#include <stdlib.h>

#include "td_clock.h"

/* Looks between two clock reads: a clock read costs ~25 ns, a pause
 * 10-40 ns, so the clock is read about every microsecond. */
#define LOOKS_PER_CLOCK_READ 32

static pthread_once_t limit_once = PTHREAD_ONCE_INIT;
static int64_t limit_ns = TD_SPIN_NS;   /* written once, in limit_once */

static void read_limit(void)
{
    const char *env = getenv("TASKDEMO_SPIN_US");
    if (env == NULL || *env == '\0') {
        return;
    }
    char *end = NULL;
    long long us = strtoll(env, &end, 10);
    if (end != NULL && *end == '\0' && us >= 0 && us <= 1000000) {
        limit_ns = (int64_t)us * 1000;
    }
    /* Anything else (not a number, negative, over a second) keeps the
     * default: a typo must not make every idle thread spin for minutes. */
}

int64_t td_spin_limit_ns(void)
{
    pthread_once(&limit_once, read_limit);
    return limit_ns;
}

uint64_t td_spin_until(int64_t max_ns)
{
    int64_t limit = td_spin_limit_ns();
    if (max_ns > limit) {
        max_ns = limit;
    }
    return max_ns > 0 ? td_clock_now_ns() + (uint64_t)max_ns : 0;
}

int td_spin_while_equal(const _Atomic unsigned *word, unsigned seen,
                        uint64_t until_ns)
{
    for (;;) {
        for (int i = 0; i < LOOKS_PER_CLOCK_READ; i++) {
            if (atomic_load_explicit(word, memory_order_acquire) != seen) {
                return 1;
            }
            if (until_ns == 0) {
                return 0;   /* no spinning: one look */
            }
            td_cpu_relax();
        }
        if (td_clock_now_ns() >= until_ns) {
            return atomic_load_explicit(word, memory_order_acquire) != seen;
        }
    }
}
