/*
 * td_ticks.c - choosing the tick source and converting ticks to ns.
 *
 * Design
 * ------
 * Process-wide state, written once: the source (td__ticks_source) and the
 * (ticks, ns) pair taken when it was decided (base_ticks, base_ns).  Both
 * are set inside one pthread_once, so every reader that went through the
 * once (td__ticks_decide, td_ticks_map_init) sees them complete; the hot
 * path reads only the source, as a relaxed atomic int.  Nothing else here
 * is shared or mutable: each readout takes its own fresh pair into a
 * td_ticks_map on the caller's stack, so concurrent readouts from many
 * pools need no lock.
 *
 * Fork: a child inherits the decision and the base pair, which stay valid
 * (the TSC is one counter for the whole machine).  If fork() hits while
 * another thread is inside the once, glibc's pthread_once notices (it
 * stamps the once with a fork generation) and runs it again in the child
 * instead of waiting forever.
 *
 * Accuracy of td_ticks_to_ns
 * --------------------------
 * A pair is the TSC read just before and just after one clock_gettime,
 * keeping the midpoint; of a few tries the narrowest wins, so a pair is
 * off by at most half that width (about 15 ns here; microseconds under
 * valgrind).  The map is the straight line through the base pair and the
 * readout's pair, so at both ends it is as good as the pairs.  In between,
 * CLOCK_MONOTONIC is itself the TSC scaled by a factor that NTP adjusts
 * (typically by parts per million): the line assumes the average factor,
 * so a stamp is off by at most the pair error plus (how far the factor
 * strayed from its average) x (the stamp's distance to the nearer pair).
 * With a steady NTP that is tens of ns; a 1 ppm swing costs 1 us for a
 * stamp 1 s from either pair, 3.6 ms for one an hour old in a process
 * that has run for days.  The test clock_ticks_convert_accuracy checks a
 * stamp between the pairs, 25 ms from each, to 20 us.  Suspending the
 * machine between the pairs bends the line (CLOCK_MONOTONIC stops during
 * suspend; the TSC may not), so stamps taken before a suspend can be off
 * by up to its length.  The order of stamps is never changed: the map is
 * non-decreasing.
 */
#include "td_ticks.h"

#include <pthread.h>
#if TD__TICKS_HAVE_TSC && defined(__linux__)
#include <errno.h>
#include <fcntl.h>
#include <string.h>
#include <unistd.h>
#endif

#define PAIR_TRIES 5

_Atomic int td__ticks_source = TD_TICKS_UNDECIDED;

static pthread_once_t decide_once = PTHREAD_ONCE_INIT;

#if TD__TICKS_HAVE_TSC
static uint64_t base_ticks;   /* written once, inside decide_once */
static uint64_t base_ns;      /* written once, inside decide_once */

/* The TSC, read after every earlier instruction has finished: plain rdtsc
 * may run early, which is harmless for a stamp but would widen a pair. */
static uint64_t tsc_ordered(void)
{
    _mm_lfence();
    return __rdtsc();
}

/* Takes a (ticks, ns) pair: see "Accuracy" above. */
static void take_pair(uint64_t *ticks, uint64_t *ns)
{
    uint64_t best = UINT64_MAX;
    for (int i = 0; i < PAIR_TRIES; i++) {
        uint64_t before = tsc_ordered();
        uint64_t now = td_clock_now_ns();
        uint64_t after = tsc_ordered();
        /* after < before: the thread moved to a CPU whose counter lags
         * by a few cycles; such a try says nothing, skip it. */
        if (after >= before && after - before < best) {
            best = after - before;
            *ticks = before + best / 2;
            *ns = now;
        }
    }
    if (best == UINT64_MAX) {
        *ticks = tsc_ordered();
        *ns = td_clock_now_ns();
    }
}

/* Whether the kernel keeps time with the TSC: then it has checked that the
 * counter runs at a constant rate, through idle states, and in step on
 * every CPU, which a raw rdtsc needs as much as the kernel does. */
static int kernel_clock_is_tsc(void)
{
#if defined(__linux__)
    static const char path[] =
        "/sys/devices/system/clocksource/clocksource0/current_clocksource";
    int fd;
    do {
        fd = open(path, O_RDONLY | O_CLOEXEC);
    } while (fd < 0 && errno == EINTR);
    if (fd < 0) {
        return 0;
    }
    char buf[16];
    ssize_t n;
    do {
        n = read(fd, buf, sizeof(buf));
    } while (n < 0 && errno == EINTR);
    close(fd);
    return n >= 3 && memcmp(buf, "tsc", 3) == 0 &&
           (n == 3 || buf[3] == '\n');
#else
    return 0;   /* no way to ask the kernel: do not guess */
#endif
}
#endif /* TD__TICKS_HAVE_TSC */

static void decide(void)
{
    int src = TD_TICKS_NS;
#if TD__TICKS_HAVE_TSC
    if (kernel_clock_is_tsc()) {
        take_pair(&base_ticks, &base_ns);
        src = TD_TICKS_TSC;
    }
#endif
    atomic_store_explicit(&td__ticks_source, src, memory_order_release);
}

int td__ticks_decide(void)
{
    pthread_once(&decide_once, decide);
    return atomic_load_explicit(&td__ticks_source, memory_order_acquire);
}

int td_ticks_source(void)
{
    return td__ticks_decide();
}

void td_ticks_map_init(td_ticks_map *m)
{
    /* Through the once even if decided: that is what makes base_* safe to
     * read here. */
    int src = td__ticks_decide();
    m->identity = 1;
    m->ns_per_tick = 1.0;
    m->ticks = 0;
    m->ns = 0;
#if TD__TICKS_HAVE_TSC
    if (src == TD_TICKS_TSC) {
        take_pair(&m->ticks, &m->ns);
        m->identity = 0;
        /* Right after the decision the two pairs may coincide; the stamps
         * between them then all map to m->ns, which is as close as can be
         * told. */
        m->ns_per_tick = m->ticks > base_ticks && m->ns > base_ns
                             ? (double)(m->ns - base_ns) /
                                   (double)(m->ticks - base_ticks)
                             : 0.0;
    }
#else
    (void)src;
#endif
}

uint64_t td_ticks_to_ns(const td_ticks_map *m, uint64_t ticks)
{
    if (m->identity) {
        return ticks;
    }
    /* Count back from the fresh pair, which lies after every stamp being
     * read out (a stamp after it counts forward: the difference is
     * negative).  Truncation toward zero is non-decreasing, like every
     * other step here, so the map keeps the order of stamps. */
    double back = (double)(int64_t)(m->ticks - ticks) * m->ns_per_tick;
    if (back >= (double)m->ns) {
        return 0;
    }
    return m->ns - (uint64_t)(int64_t)back;
}

void td__ticks_force_fallback(void)
{
    td__ticks_decide();
    atomic_store_explicit(&td__ticks_source, TD_TICKS_NS,
                          memory_order_release);
}
