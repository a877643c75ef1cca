/*
 * harness.h - always-on assertions and small synchronisation helpers for the
 * C test suite of the taskdemo core (shaped like libuv's test/task.h).
 *
 * Design:
 * - The ASSERT_* macros never compile away (unlike assert(), which -DNDEBUG
 *   deletes).  On failure they print the location, both expressions and
 *   both values to stderr, then abort().  Each test runs in its own process
 *   (see run_tests.c), so an abort, even on a worker thread, fails exactly
 *   one test and the runner reports it.
 * - Tests never synchronise by sleeping.  struct gate is a mutex + condvar
 *   + counter that tasks "arrive" at (and optionally block on until the test
 *   opens it); the test waits for a given number of arrivals.  Every wait
 *   here is bounded (HARNESS_WAIT_S) and fails loudly, so a lost wake-up is
 *   reported at its site instead of only as a runner timeout.
 * - TEST(name) defines `void test_name(void)`; run_tests.c holds the one
 *   registry of all tests.
 */
#ifndef TD_TESTS_HARNESS_H
#define TD_TESTS_HARNESS_H

#include <inttypes.h>
#include <pthread.h>
#include <stdint.h>
#include <stdio.h>
#include <stdlib.h>
#include <string.h>
#include <time.h>

#include "td_common.h"

/* Which sanitizer, if any, this binary was built with. */
#if defined(__SANITIZE_THREAD__)
#define HARNESS_TSAN 1
#elif defined(__has_feature)
#if __has_feature(thread_sanitizer)
#define HARNESS_TSAN 1
#endif
#endif
#ifndef HARNESS_TSAN
#define HARNESS_TSAN 0
#endif

/* The exit status of a skipped test; the runner reports it as "skip". */
#define HARNESS_SKIP_STATUS 77

/* Upper bound of every helper wait; far above any healthy wait. */
#define HARNESS_WAIT_S 20

/* How far a pool timeline's times may stray from CLOCK_MONOTONIC read
 * around them: the pool stamps in ticks, and their conversion to ns is
 * accurate to tens of ns normally, more under valgrind (td_ticks.c). */
#define HARNESS_TICKS_SLACK_NS 20000u   /* 20 us */

#define TEST(name)                                                          \
    void test_##name(void);                                                 \
    void test_##name(void)

/* Ends the current test as skipped; say why on one line. */
#define SKIP(reason)                                                        \
    do {                                                                    \
        printf("    skipped: %s\n", (reason));                              \
        fflush(stdout);                                                     \
        exit(HARNESS_SKIP_STATUS);                                          \
    } while (0)

#define HARNESS_FAIL(...)                                                   \
    do {                                                                    \
        fprintf(stderr, "%s:%d: %s: ", __FILE__, __LINE__, __func__);       \
        fprintf(stderr, __VA_ARGS__);                                       \
        fputc('\n', stderr);                                                \
        fflush(stderr);                                                     \
        abort();                                                            \
    } while (0)

#define FAIL(msg) HARNESS_FAIL("%s", (msg))

/* Signed comparison; fits every int, unsigned, size_t and TD_* code. */
#define HARNESS_CMP_I(a, op, b, sa, sb)                                     \
    do {                                                                    \
        int64_t a_ = (int64_t)(a);                                          \
        int64_t b_ = (int64_t)(b);                                          \
        if (!(a_ op b_)) {                                                  \
            HARNESS_FAIL("assertion failed: %s %s %s (%" PRId64 " %s %"     \
                         PRId64 ")", sa, #op, sb, a_, #op, b_);             \
        }                                                                   \
    } while (0)

/* Unsigned 64-bit comparison, for nanosecond times and large counts. */
#define HARNESS_CMP_U(a, op, b, sa, sb)                                     \
    do {                                                                    \
        uint64_t a_ = (uint64_t)(a);                                        \
        uint64_t b_ = (uint64_t)(b);                                        \
        if (!(a_ op b_)) {                                                  \
            HARNESS_FAIL("assertion failed: %s %s %s (%" PRIu64 " %s %"     \
                         PRIu64 ")", sa, #op, sb, a_, #op, b_);             \
        }                                                                   \
    } while (0)

#define ASSERT_EQ(a, b) HARNESS_CMP_I(a, ==, b, #a, #b)
#define ASSERT_NE(a, b) HARNESS_CMP_I(a, !=, b, #a, #b)
#define ASSERT_LT(a, b) HARNESS_CMP_I(a, <, b, #a, #b)
#define ASSERT_LE(a, b) HARNESS_CMP_I(a, <=, b, #a, #b)
#define ASSERT_GT(a, b) HARNESS_CMP_I(a, >, b, #a, #b)
#define ASSERT_GE(a, b) HARNESS_CMP_I(a, >=, b, #a, #b)

#define ASSERT_U64_EQ(a, b) HARNESS_CMP_U(a, ==, b, #a, #b)
#define ASSERT_U64_NE(a, b) HARNESS_CMP_U(a, !=, b, #a, #b)
#define ASSERT_U64_LT(a, b) HARNESS_CMP_U(a, <, b, #a, #b)
#define ASSERT_U64_LE(a, b) HARNESS_CMP_U(a, <=, b, #a, #b)
#define ASSERT_U64_GT(a, b) HARNESS_CMP_U(a, >, b, #a, #b)
#define ASSERT_U64_GE(a, b) HARNESS_CMP_U(a, >=, b, #a, #b)

#define ASSERT_TRUE(x)                                                      \
    do {                                                                    \
        if (!(x)) {                                                         \
            HARNESS_FAIL("assertion failed: %s is false", #x);              \
        }                                                                   \
    } while (0)

#define ASSERT_FALSE(x)                                                     \
    do {                                                                    \
        if (x) {                                                            \
            HARNESS_FAIL("assertion failed: %s is true", #x);               \
        }                                                                   \
    } while (0)

#define ASSERT_PTR_EQ(a, b)                                                 \
    do {                                                                    \
        const void *a_ = (const void *)(a);                                 \
        const void *b_ = (const void *)(b);                                 \
        if (a_ != b_) {                                                     \
            HARNESS_FAIL("assertion failed: %s == %s (%p == %p)", #a, #b,   \
                         a_, b_);                                           \
        }                                                                   \
    } while (0)

#define ASSERT_PTR_NE(a, b)                                                 \
    do {                                                                    \
        const void *a_ = (const void *)(a);                                 \
        const void *b_ = (const void *)(b);                                 \
        if (a_ == b_) {                                                     \
            HARNESS_FAIL("assertion failed: %s != %s (%p != %p)", #a, #b,   \
                         a_, b_);                                           \
        }                                                                   \
    } while (0)

#define ASSERT_NULL(a) ASSERT_PTR_EQ(a, NULL)
#define ASSERT_NOT_NULL(a) ASSERT_PTR_NE(a, NULL)

#define ASSERT_STR_EQ(a, b)                                                 \
    do {                                                                    \
        const char *a_ = (a);                                               \
        const char *b_ = (b);                                               \
        if (a_ == NULL || b_ == NULL || strcmp(a_, b_) != 0) {              \
            HARNESS_FAIL("assertion failed: %s == %s (\"%s\" == \"%s\")",   \
                         #a, #b, a_ ? a_ : "(null)", b_ ? b_ : "(null)");   \
        }                                                                   \
    } while (0)

#define ASSERT_STR_NE(a, b)                                                 \
    do {                                                                    \
        const char *a_ = (a);                                               \
        const char *b_ = (b);                                               \
        if (a_ == NULL || b_ == NULL || strcmp(a_, b_) == 0) {              \
            HARNESS_FAIL("assertion failed: %s != %s (\"%s\" != \"%s\")",   \
                         #a, #b, a_ ? a_ : "(null)", b_ ? b_ : "(null)");   \
        }                                                                   \
    } while (0)

/* A TD_* return code, printed by name as well as by number. */
#define ASSERT_RC(expected, expr)                                           \
    do {                                                                    \
        int e_ = (expected);                                                \
        int r_ = (expr);                                                    \
        if (e_ != r_) {                                                     \
            HARNESS_FAIL("%s returned %d (%s), expected %d (%s)", #expr,    \
                         r_, td_strerror(r_), e_, td_strerror(e_));         \
        }                                                                   \
    } while (0)

#define ASSERT_OK(expr) ASSERT_RC(TD_OK, expr)

/* pthread calls return 0 or an errno value. */
#define ASSERT_PT(expr) ASSERT_EQ(0, expr)

/* CLOCK_MONOTONIC in ns, read directly so tests of td_clock do not depend
 * on the code under test. */
static inline uint64_t harness_now_ns(void)
{
    struct timespec ts;
    clock_gettime(CLOCK_MONOTONIC, &ts);
    return (uint64_t)ts.tv_sec * 1000000000u + (uint64_t)ts.tv_nsec;
}

static inline struct timespec harness_deadline(unsigned seconds)
{
    struct timespec ts;
    clock_gettime(CLOCK_MONOTONIC, &ts);
    ts.tv_sec += (time_t)seconds;
    return ts;
}

/* A condvar that times out on CLOCK_MONOTONIC, like harness_deadline(). */
static inline void harness_cond_init(pthread_cond_t *cv)
{
    pthread_condattr_t attr;
    ASSERT_PT(pthread_condattr_init(&attr));
    ASSERT_PT(pthread_condattr_setclock(&attr, CLOCK_MONOTONIC));
    ASSERT_PT(pthread_cond_init(cv, &attr));
    ASSERT_PT(pthread_condattr_destroy(&attr));
}

/*
 * struct gate: tasks call gate_arrive() (count and go on) or gate_pass()
 * (count, then block until gate_open()); the test calls gate_await(g, n) to
 * wait for n arrivals in total.
 */
typedef struct gate {
    pthread_mutex_t mu;
    pthread_cond_t cv;
    unsigned arrived;   /* protected by mu */
    int open;           /* protected by mu */
} gate;

static inline void gate_init(gate *g)
{
    ASSERT_PT(pthread_mutex_init(&g->mu, NULL));
    harness_cond_init(&g->cv);
    g->arrived = 0;
    g->open = 0;
}

static inline void gate_destroy(gate *g)
{
    ASSERT_PT(pthread_cond_destroy(&g->cv));
    ASSERT_PT(pthread_mutex_destroy(&g->mu));
}

static inline void gate_arrive(gate *g)
{
    ASSERT_PT(pthread_mutex_lock(&g->mu));
    g->arrived++;
    ASSERT_PT(pthread_cond_broadcast(&g->cv));
    ASSERT_PT(pthread_mutex_unlock(&g->mu));
}

static inline void gate_pass(gate *g)
{
    struct timespec dl = harness_deadline(HARNESS_WAIT_S);
    ASSERT_PT(pthread_mutex_lock(&g->mu));
    g->arrived++;
    ASSERT_PT(pthread_cond_broadcast(&g->cv));
    while (!g->open) {
        if (pthread_cond_timedwait(&g->cv, &g->mu, &dl) != 0 && !g->open) {
            FAIL("gate_pass: the test never opened the gate");
        }
    }
    ASSERT_PT(pthread_mutex_unlock(&g->mu));
}

static inline void gate_await(gate *g, unsigned n)
{
    struct timespec dl = harness_deadline(HARNESS_WAIT_S);
    ASSERT_PT(pthread_mutex_lock(&g->mu));
    while (g->arrived < n) {
        if (pthread_cond_timedwait(&g->cv, &g->mu, &dl) != 0 &&
            g->arrived < n) {
            HARNESS_FAIL("gate_await: %u of %u arrivals after %d s",
                         g->arrived, n, HARNESS_WAIT_S);
        }
    }
    ASSERT_PT(pthread_mutex_unlock(&g->mu));
}

static inline unsigned gate_arrived(gate *g)
{
    unsigned n;
    ASSERT_PT(pthread_mutex_lock(&g->mu));
    n = g->arrived;
    ASSERT_PT(pthread_mutex_unlock(&g->mu));
    return n;
}

static inline void gate_open(gate *g)
{
    ASSERT_PT(pthread_mutex_lock(&g->mu));
    g->open = 1;
    ASSERT_PT(pthread_cond_broadcast(&g->cv));
    ASSERT_PT(pthread_mutex_unlock(&g->mu));
}

/* A task (td_task_fn) that blocks its worker on the gate passed as arg. */
static inline void gate_task(void *arg)
{
    gate_pass((gate *)arg);
}

#endif /* TD_TESTS_HARNESS_H */
