/*
 * td_spin.h - a short bounded spin before a thread goes to sleep.
 *
 * Putting a thread to sleep and waking it costs two system calls and a
 * trip through the scheduler: 15-30 us per wake-up on the VMs we measure
 * on, which is most of a round trip through a pool (submit, run, result).
 * When the event a thread is about to sleep for comes within a few tens
 * of microseconds (the next task of a busy caller, the result of a short
 * task), watching a word for that long instead catches it without either
 * wake-up.  The spin is bounded (TD_SPIN_NS) and pauses the CPU between
 * looks, so a thread whose event does not come soon wastes at most that
 * much CPU time before it sleeps as it would have anyway.
 *
 * Setting the environment variable TASKDEMO_SPIN_US (read once per
 * process) changes the bound; 0 turns spinning off.
 */
#ifndef TD_SPIN_H
#define TD_SPIN_H

#include <stdatomic.h>
#include <stdint.h>

#if defined(__x86_64__) || defined(__i386__)
#include <immintrin.h>
#endif

/* The default bound: long enough to cover a wake-up of the other side
 * plus a short task, short enough to be noise next to any task that
 * matters to a person (0.05 ms). */
#define TD_SPIN_NS 50000

/* The bound in ns for this process: TD_SPIN_NS, or TASKDEMO_SPIN_US. */
int64_t td_spin_limit_ns(void);

/* Tells the CPU this is a spin loop (saves power, lets a sibling
 * hyper-thread run). */
static inline void td_cpu_relax(void)
{
#if defined(__x86_64__) || defined(__i386__)
    _mm_pause();
#elif defined(__aarch64__)
    __asm__ __volatile__("yield");
#endif
}

/*
 * When a spin that starts now may end: max_ns from now, capped at
 * td_spin_limit_ns(), as a td_clock_now_ns() time; 0 when it may not spin
 * at all (spinning off, or max_ns <= 0).
 */
uint64_t td_spin_until(int64_t max_ns);

/*
 * Spins while *word == seen, until until_ns (a td_spin_until() value; 0:
 * just look once).  Returns 1 once *word differs, 0 when the time is up.
 * Only a hint: the caller still checks its real condition under its lock
 * afterwards.
 */
int td_spin_while_equal(const _Atomic unsigned *word, unsigned seen,
                        uint64_t until_ns);

#endif /* TD_SPIN_H */
