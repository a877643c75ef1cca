/*
 * test_waitset.c - futex-like waiting on atomic words (td_waitset.h).
 *
 * A lost wake-up shows up as a waiter that never returns: the ping-pong and
 * broadcast tests run thousands of rounds in which either side may arrive
 * first, so both the "word already changed" and the "asleep, then woken"
 * paths are taken, and a single lost wake-up hangs the test until the
 * runner's timeout reports it.  No test sleeps to order threads.
 */
#include <pthread.h>
#include <stdatomic.h>
#include <stdlib.h>
#include <sys/wait.h>
#include <time.h>
#include <unistd.h>

#include "harness.h"
#include "td_spin.h"
#include "td_waitset.h"

TEST(waitset_init_destroy)
{
    td_waitset ws;
    for (int i = 0; i < 100; i++) {
        ASSERT_OK(td_waitset_init(&ws));
        td_waitset_destroy(&ws);
    }
}

TEST(waitset_timeout_unchanged)
{
    const int64_t timeout = 20 * 1000 * 1000;
    td_waitset ws;
    _Atomic int word = 7;
    _Atomic unsigned nwaiters = 0;
    uint64_t t0;

    ASSERT_OK(td_waitset_init(&ws));
    t0 = harness_now_ns();
    ASSERT_RC(TD_ETIMEDOUT, td_waitset_wait(&ws, &word, 7, &nwaiters,
                                            timeout));
    ASSERT_U64_GE(harness_now_ns() - t0, (uint64_t)timeout);
    ASSERT_EQ(7, atomic_load(&word));
    ASSERT_EQ(0, atomic_load(&nwaiters));
    td_waitset_destroy(&ws);
}

TEST(waitset_timeout_zero_tests)
{
    td_waitset ws;
    _Atomic int word = 0;
    _Atomic unsigned nwaiters = 0;

    ASSERT_OK(td_waitset_init(&ws));
    /* timeout 0 only tests the word. */
    ASSERT_RC(TD_ETIMEDOUT, td_waitset_wait(&ws, &word, 0, &nwaiters, 0));
    ASSERT_EQ(0, atomic_load(&nwaiters));
    ASSERT_OK(td_waitset_wait(&ws, &word, 1, &nwaiters, 0));
    ASSERT_EQ(0, atomic_load(&nwaiters));
    /* A word that already differs returns at once, whatever the timeout. */
    ASSERT_OK(td_waitset_wait(&ws, &word, 1, &nwaiters, -1));
    ASSERT_OK(td_waitset_wait(&ws, &word, 1, &nwaiters, INT64_MAX));
    ASSERT_EQ(0, atomic_load(&nwaiters));
    /* Waking with no waiter is a harmless no-op. */
    td_waitset_wake(&ws, &nwaiters);
    td_waitset_broadcast(&ws);
    ASSERT_EQ(0, atomic_load(&word));
    td_waitset_destroy(&ws);
}

TEST(waitset_nwaiters_is_a_count)
{
    /* The count belongs to the caller and may already be non-zero (other
     * waiters); a wait adds itself and restores the previous value. */
    td_waitset ws;
    _Atomic int word = 3;
    _Atomic unsigned nwaiters = 5;

    ASSERT_OK(td_waitset_init(&ws));
    ASSERT_RC(TD_ETIMEDOUT, td_waitset_wait(&ws, &word, 3, &nwaiters,
                                            1000 * 1000));
    ASSERT_EQ(5, atomic_load(&nwaiters));
    ASSERT_OK(td_waitset_wait(&ws, &word, 4, &nwaiters, 1000 * 1000));
    ASSERT_EQ(5, atomic_load(&nwaiters));
    td_waitset_destroy(&ws);
}

/* Two threads alternate: each waits for the word to become its turn, then
 * stores the other's turn and wakes. */
enum { PING_ROUNDS = 20000 };

typedef struct ping {
    td_waitset ws;
    _Atomic int word;        /* whose turn: 0 main, 1 helper */
    _Atomic unsigned nwaiters;
    int64_t timeout;         /* < 0, or a long finite timeout */
    int broadcast;           /* wake with td_waitset_broadcast instead */
} ping;

static void take_turns(ping *pp, int me)
{
    for (int i = 0; i < PING_ROUNDS; i++) {
        while (atomic_load(&pp->word) != me) {
            int rc = td_waitset_wait(&pp->ws, &pp->word, !me,
                                     &pp->nwaiters, pp->timeout);
            ASSERT_RC(TD_OK, rc);
        }
        atomic_store(&pp->word, !me);
        if (pp->broadcast) {
            td_waitset_broadcast(&pp->ws);
        } else {
            td_waitset_wake(&pp->ws, &pp->nwaiters);
        }
    }
}

static void *ping_helper(void *arg)
{
    take_turns(arg, 1);
    return NULL;
}

static void run_ping_pong(int64_t timeout, int broadcast)
{
    ping pp;
    pthread_t t;

    ASSERT_OK(td_waitset_init(&pp.ws));
    atomic_init(&pp.word, 0);
    atomic_init(&pp.nwaiters, 0);
    pp.timeout = timeout;
    pp.broadcast = broadcast;
    ASSERT_PT(pthread_create(&t, NULL, ping_helper, &pp));
    take_turns(&pp, 0);
    ASSERT_PT(pthread_join(t, NULL));
    ASSERT_EQ(0, atomic_load(&pp.word));
    ASSERT_EQ(0, atomic_load(&pp.nwaiters));
    td_waitset_destroy(&pp.ws);
}

TEST(waitset_ping_pong)
{
    run_ping_pong(-1, 0);
}

TEST(waitset_ping_pong_timed)
{
    /* A finite but long timeout takes the timed-wait path; any wake-up must
     * still come from the store, never from the timeout. */
    run_ping_pong(INT64_C(60) * 1000 * 1000 * 1000, 0);
}

TEST(waitset_ping_pong_broadcast)
{
    /* td_waitset_broadcast wakes without looking at the waiter count. */
    run_ping_pong(-1, 1);
}

typedef struct below_waiter {
    td_waitset *ws;
    _Atomic int *word;
    _Atomic unsigned *nwaiters;
    _Atomic int returned;   /* the value the wait returned at, or -1 */
} below_waiter;

static void *wait_until_two(void *arg)
{
    below_waiter *b = arg;
    ASSERT_OK(td_waitset_wait_below(b->ws, b->word, 2, b->nwaiters, -1));
    atomic_store(&b->returned, atomic_load(b->word));
    return NULL;
}

TEST(waitset_wait_below_skips_intermediate_values)
{
    td_waitset ws;
    _Atomic int word = 0;
    _Atomic unsigned nwaiters = 0;
    ASSERT_OK(td_waitset_init(&ws));
    /* At or above the threshold: at once; below it, a timeout. */
    atomic_store(&word, 3);
    ASSERT_OK(td_waitset_wait_below(&ws, &word, 2, &nwaiters, -1));
    atomic_store(&word, 1);
    ASSERT_RC(TD_ETIMEDOUT, td_waitset_wait_below(&ws, &word, 2, &nwaiters,
                                                  0));
    ASSERT_RC(TD_ETIMEDOUT, td_waitset_wait_below(&ws, &word, 2, &nwaiters,
                                                  2000000));
    /* A waiter for 2, woken with the word at 1, waits on (a wrong return
     * would come within microseconds; 20 ms is ample to see it); at 2 it
     * returns. */
    atomic_store(&word, 0);
    below_waiter b = {&ws, &word, &nwaiters, -1};
    pthread_t t;
    ASSERT_PT(pthread_create(&t, NULL, wait_until_two, &b));
    while (atomic_load(&nwaiters) == 0) {
        td_cpu_relax();   /* until the waiter is in */
    }
    atomic_store(&word, 1);
    td_waitset_wake(&ws, &nwaiters);
    struct timespec pause = {0, 20000000};
    nanosleep(&pause, NULL);
    ASSERT_EQ(-1, atomic_load(&b.returned));
    atomic_store(&word, 2);
    td_waitset_wake(&ws, &nwaiters);
    ASSERT_PT(pthread_join(t, NULL));
    ASSERT_EQ(2, atomic_load(&b.returned));
    ASSERT_EQ(0, atomic_load(&nwaiters));
    td_waitset_destroy(&ws);
}

TEST(waitset_ping_pong_without_spinning)
{
    /* Waiters normally spin first and often catch the store that way;
     * with spinning off every wait that does not find the word changed
     * sleeps, so this takes the sleep-and-wake path thousands of times. */
    ASSERT_EQ(0, setenv("TASKDEMO_SPIN_US", "0", 1));
    ASSERT_EQ(0, td_spin_limit_ns());
    run_ping_pong(-1, 0);
    run_ping_pong(INT64_C(60) * 1000 * 1000 * 1000, 1);
}

/* Many waiters on one word, all released by one store + wake per round. */
enum { BCAST_WAITERS = 4, BCAST_ROUNDS = 2000 };

typedef struct bcast {
    td_waitset ws;
    _Atomic int word;          /* the round number released so far */
    _Atomic unsigned nwaiters;
    pthread_barrier_t barrier;
    _Atomic int seen_ok;
} bcast;

static void *bcast_waiter(void *arg)
{
    bcast *b = arg;
    for (int round = 1; round <= BCAST_ROUNDS; round++) {
        /* Everyone, the waker too, starts the round together; the waker
         * then stores while some waiters are asleep and some are not. */
        pthread_barrier_wait(&b->barrier);
        while (atomic_load(&b->word) < round) {
            ASSERT_OK(td_waitset_wait(&b->ws, &b->word, round - 1,
                                      &b->nwaiters, -1));
        }
        atomic_fetch_add(&b->seen_ok, 1);
    }
    return NULL;
}

TEST(waitset_broadcast)
{
    bcast b;
    pthread_t t[BCAST_WAITERS];

    ASSERT_OK(td_waitset_init(&b.ws));
    atomic_init(&b.word, 0);
    atomic_init(&b.nwaiters, 0);
    atomic_init(&b.seen_ok, 0);
    ASSERT_PT(pthread_barrier_init(&b.barrier, NULL, BCAST_WAITERS + 1));
    for (int i = 0; i < BCAST_WAITERS; i++) {
        ASSERT_PT(pthread_create(&t[i], NULL, bcast_waiter, &b));
    }
    for (int round = 1; round <= BCAST_ROUNDS; round++) {
        pthread_barrier_wait(&b.barrier);
        atomic_store(&b.word, round);
        td_waitset_wake(&b.ws, &b.nwaiters);
    }
    for (int i = 0; i < BCAST_WAITERS; i++) {
        ASSERT_PT(pthread_join(t[i], NULL));
    }
    ASSERT_EQ(BCAST_WAITERS * BCAST_ROUNDS, atomic_load(&b.seen_ok));
    ASSERT_EQ(0, atomic_load(&b.nwaiters));
    ASSERT_PT(pthread_barrier_destroy(&b.barrier));
    td_waitset_destroy(&b.ws);
}

/* One waitset shared by many words: waking one word's waiters must not be
 * lost among the waiters of another. */
enum { SHARED_WORDS = 4, SHARED_ROUNDS = 3000 };

typedef struct shared_word {
    td_waitset *ws;
    _Atomic int word;
    _Atomic unsigned nwaiters;
} shared_word;

static void *shared_consumer(void *arg)
{
    shared_word *sw = arg;
    for (int round = 1; round <= SHARED_ROUNDS; round++) {
        while (atomic_load(&sw->word) < round) {
            ASSERT_OK(td_waitset_wait(sw->ws, &sw->word, round - 1,
                                      &sw->nwaiters, -1));
        }
    }
    return NULL;
}

TEST(waitset_many_words)
{
    td_waitset ws;
    shared_word words[SHARED_WORDS];
    pthread_t t[SHARED_WORDS];

    ASSERT_OK(td_waitset_init(&ws));
    for (int i = 0; i < SHARED_WORDS; i++) {
        words[i].ws = &ws;
        atomic_init(&words[i].word, 0);
        atomic_init(&words[i].nwaiters, 0);
        ASSERT_PT(pthread_create(&t[i], NULL, shared_consumer, &words[i]));
    }
    for (int round = 1; round <= SHARED_ROUNDS; round++) {
        for (int i = 0; i < SHARED_WORDS; i++) {
            atomic_store(&words[i].word, round);
            td_waitset_wake(&ws, &words[i].nwaiters);
        }
    }
    for (int i = 0; i < SHARED_WORDS; i++) {
        ASSERT_PT(pthread_join(t[i], NULL));
        ASSERT_EQ(0, atomic_load(&words[i].nwaiters));
    }
    td_waitset_destroy(&ws);
}

typedef struct fork_waiter {
    td_waitset ws;
    _Atomic int word;
    _Atomic unsigned nwaiters;
    gate started;
    int rc;
} fork_waiter;

static void *fork_waiter_main(void *arg)
{
    fork_waiter *fw = arg;
    gate_arrive(&fw->started);
    fw->rc = td_waitset_wait(&fw->ws, &fw->word, 0, &fw->nwaiters, -1);
    return NULL;
}

TEST(waitset_fork)
{
    fork_waiter fw;
    pthread_t t;
    pid_t pid;
    int status;

    ASSERT_OK(td_waitset_init(&fw.ws));
    atomic_init(&fw.word, 0);
    atomic_init(&fw.nwaiters, 0);
    gate_init(&fw.started);
    fw.rc = 99;
    ASSERT_PT(pthread_create(&t, NULL, fork_waiter_main, &fw));
    gate_await(&fw.started, 1);

    pid = fork();   /* the waitset's lock is taken around fork() itself */
    ASSERT_GE(pid, 0);
    if (pid == 0) {
        /* Child: only this thread exists.  The reset waitset works, for
         * waits and for wakes, whatever the parent's waiter was doing. */
        _Atomic int word = 0;
        _Atomic unsigned nw = 0;
        ASSERT_RC(TD_ETIMEDOUT, td_waitset_wait(&fw.ws, &word, 0, &nw, 0));
        ASSERT_RC(TD_ETIMEDOUT, td_waitset_wait(&fw.ws, &word, 0, &nw,
                                                1000 * 1000));
        atomic_store(&word, 1);
        td_waitset_wake(&fw.ws, &nw);
        ASSERT_OK(td_waitset_wait(&fw.ws, &word, 0, &nw, -1));
        ASSERT_EQ(0, atomic_load(&nw));
        td_waitset_destroy(&fw.ws);
        _exit(0);
    }

    /* The parent's waiter is still reachable through the waitset. */
    atomic_store(&fw.word, 1);
    td_waitset_wake(&fw.ws, &fw.nwaiters);
    ASSERT_PT(pthread_join(t, NULL));
    ASSERT_RC(TD_OK, fw.rc);
    ASSERT_EQ(0, atomic_load(&fw.nwaiters));

    ASSERT_EQ(pid, waitpid(pid, &status, 0));
    ASSERT_TRUE(WIFEXITED(status));
    ASSERT_EQ(0, WEXITSTATUS(status));
    gate_destroy(&fw.started);
    td_waitset_destroy(&fw.ws);
}
