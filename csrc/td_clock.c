/*
 * td_clock.c - CLOCK_MONOTONIC in nanoseconds, sleeping and busy work.
 *
 * Nothing here keeps state.  td_clock_spin_ns exists so a demo can show
 * CPU-bound work that runs truly in parallel: the binding calls it with the
 * GIL released, so two workers spinning use two cores, and it counts the
 * thread's CPU time, so on one core they take twice as long.
 */
#include "td_clock.h"

#include <errno.h>
#include <time.h>

#define NS_PER_S 1000000000ull

uint64_t td_clock_now_ns(void)
{
    struct timespec ts;
    /* CLOCK_MONOTONIC cannot fail on the systems we support. */
    clock_gettime(CLOCK_MONOTONIC, &ts);
    return (uint64_t)ts.tv_sec * NS_PER_S + (uint64_t)ts.tv_nsec;
}

void td_clock_sleep_ns(uint64_t ns)
{
    uint64_t deadline = td_clock_now_ns() + ns;
    for (;;) {
        uint64_t now = td_clock_now_ns();
        if (now >= deadline) {
            return;
        }
        uint64_t left = deadline - now;
        struct timespec ts = {
            .tv_sec = (time_t)(left / NS_PER_S),
            .tv_nsec = (long)(left % NS_PER_S),
        };
        /* A signal cuts nanosleep short; the loop re-sleeps what is left
         * against the deadline, so the total never falls short. */
        nanosleep(&ts, NULL);
    }
}

uint64_t td_clock_thread_cpu_ns(void)
{
    struct timespec ts;
    /* Cannot fail for the calling thread on the systems we support. */
    clock_gettime(CLOCK_THREAD_CPUTIME_ID, &ts);
    return (uint64_t)ts.tv_sec * NS_PER_S + (uint64_t)ts.tv_nsec;
}

uint64_t td_clock_spin_ns(uint64_t ns)
{
    uint64_t deadline = td_clock_thread_cpu_ns() + ns;
    uint64_t x = 0x9E3779B97F4A7C15ull;
    do {
        /* Rounds of xorshift between clock reads: real ALU work the
         * optimiser must keep, because the result is returned.  The thread
         * CPU clock is a system call, not a vDSO read, so read it only
         * every few microseconds of work. */
        for (int i = 0; i < 4096; i++) {
            x ^= x << 13;
            x ^= x >> 7;
            x ^= x << 17;
        }
    } while (td_clock_thread_cpu_ns() < deadline);
    return x;
}

void td__deadline_after(struct timespec *out, int64_t timeout_ns)
{
    clock_gettime(CLOCK_MONOTONIC, out);
    uint64_t ns = (uint64_t)out->tv_nsec + (uint64_t)timeout_ns % NS_PER_S;
    out->tv_sec += (time_t)((uint64_t)timeout_ns / NS_PER_S + ns / NS_PER_S);
    out->tv_nsec = (long)(ns % NS_PER_S);
}
