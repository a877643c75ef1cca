/*
 * td_waitset.c - one mutex and condition variable shared by many waiters,
 * each waiting for its own atomic word to change (see td_waitset.h for the
 * protocol).
 *
 * The condition variable runs on CLOCK_MONOTONIC so timed waits are immune
 * to the wall clock being set.  Wakes are broadcasts: waiters of other words
 * wake too, re-check their word and sleep again.  That is the price of not
 * giving every future a condition variable; the binding keeps it small by
 * waking only when the word's waiter count is non-zero.
 */
#include "td_waitset.h"

#include <errno.h>
#include <time.h>

#include "td_clock.h"
#include "td_spin.h"

static int init_cond(pthread_cond_t *cv)
{
    pthread_condattr_t attr;
    if (pthread_condattr_init(&attr) != 0) {
        return TD_ENOMEM;
    }
    int rc = pthread_condattr_setclock(&attr, CLOCK_MONOTONIC);
    if (rc == 0) {
        rc = pthread_cond_init(cv, &attr);
    }
    pthread_condattr_destroy(&attr);
    return rc == 0 ? TD_OK : (rc == ENOMEM ? TD_ENOMEM : TD_EAGAIN);
}

static void fork_prepare(void *ctx)
{
    pthread_mutex_lock(&((td_waitset *)ctx)->mu);
}

static void fork_parent(void *ctx)
{
    pthread_mutex_unlock(&((td_waitset *)ctx)->mu);
}

static void fork_child(void *ctx)
{
    td_waitset *ws = ctx;
    /* The child has only the forking thread, which took mu in prepare and
     * so may release it.  The waiters the condition variable knew of are
     * gone: make it anew rather than trust them. */
    pthread_mutex_unlock(&ws->mu);
    init_cond(&ws->cv);
}

int td_waitset_init(td_waitset *ws)
{
    if (ws == NULL) {
        return TD_EINVAL;
    }
    int rc = pthread_mutex_init(&ws->mu, NULL);
    if (rc != 0) {
        return rc == ENOMEM ? TD_ENOMEM : TD_EAGAIN;
    }
    atomic_init(&ws->wakes, 0);
    rc = init_cond(&ws->cv);
    if (rc != TD_OK) {
        pthread_mutex_destroy(&ws->mu);
        return rc;
    }
    ws->fork_entry = (td_atfork_entry){fork_prepare, fork_parent, fork_child,
                                       ws, NULL, NULL};
    rc = td_atfork_register(&ws->fork_entry);
    if (rc != TD_OK) {
        pthread_cond_destroy(&ws->cv);
        pthread_mutex_destroy(&ws->mu);
    }
    return rc;
}

void td_waitset_destroy(td_waitset *ws)
{
    if (ws == NULL) {
        return;
    }
    td_atfork_unregister(&ws->fork_entry);
    pthread_cond_destroy(&ws->cv);
    pthread_mutex_destroy(&ws->mu);
}

/* Whether a waiter must go on waiting: *word == value, or with `below`,
 * *word < value. */
static inline int still(const _Atomic int *word, int value, int below)
{
    int w = atomic_load(word);
    return below ? w < value : w == value;
}

/* With our waiter count already raised: spins until a wake finds the wait
 * over (see td_waitset.h), for at most the spin bound and timeout_ns
 * (< 0: no limit).  Returns 1 when it is over, 0 when the caller should
 * sleep. */
static int spin_for_wake(td_waitset *ws, const _Atomic int *word, int value,
                         int below, int64_t timeout_ns)
{
    uint64_t until = td_spin_until(timeout_ns < 0 ? INT64_MAX : timeout_ns);
    if (until == 0) {
        return 0;
    }
    /* `seen` is read before the word: a waker that changes the word from
     * now on saw our count, so it bumps `wakes` after its store. */
    unsigned seen = atomic_load(&ws->wakes);
    if (!still(word, value, below)) {
        return 1;
    }
    for (;;) {
        if (!td_spin_while_equal(&ws->wakes, seen, until)) {
            return 0;
        }
        /* Another word's wake, or ours: read `seen` before the word
         * again, so that a wake of ours after this read is not lost in
         * the new `seen`. */
        seen = atomic_load(&ws->wakes);
        if (!still(word, value, below)) {
            return 1;
        }
    }
}

static int wait_while(td_waitset *ws, const _Atomic int *word, int value,
                      int below, _Atomic unsigned *nwaiters,
                      int64_t timeout_ns)
{
    if (!still(word, value, below)) {
        return TD_OK;
    }
    if (timeout_ns == 0) {
        return TD_ETIMEDOUT;
    }
    struct timespec deadline;
    if (timeout_ns > 0) {
        td__deadline_after(&deadline, timeout_ns);
    }
    int rc = TD_OK;
    /* Announce ourselves before the decisive read of *word: a waker that
     * stores after our read is then sure to see us and broadcast. */
    atomic_fetch_add(nwaiters, 1);
    if (spin_for_wake(ws, word, value, below, timeout_ns)) {
        atomic_fetch_sub(nwaiters, 1);
        return TD_OK;
    }
    pthread_mutex_lock(&ws->mu);
    while (still(word, value, below)) {
        if (timeout_ns < 0) {
            pthread_cond_wait(&ws->cv, &ws->mu);
        } else if (pthread_cond_timedwait(&ws->cv, &ws->mu, &deadline)
                   == ETIMEDOUT) {
            if (still(word, value, below)) {
                rc = TD_ETIMEDOUT;
            }
            break;
        }
    }
    pthread_mutex_unlock(&ws->mu);
    atomic_fetch_sub(nwaiters, 1);
    return rc;
}

int td_waitset_wait(td_waitset *ws, const _Atomic int *word, int expected,
                    _Atomic unsigned *nwaiters, int64_t timeout_ns)
{
    return wait_while(ws, word, expected, 0, nwaiters, timeout_ns);
}

int td_waitset_wait_below(td_waitset *ws, const _Atomic int *word,
                          int least, _Atomic unsigned *nwaiters,
                          int64_t timeout_ns)
{
    return wait_while(ws, word, least, 1, nwaiters, timeout_ns);
}

void td_waitset_wake(td_waitset *ws, const _Atomic unsigned *nwaiters)
{
    if (atomic_load(nwaiters) == 0) {
        return;
    }
    td_waitset_broadcast(ws);
}

void td_waitset_broadcast(td_waitset *ws)
{
    /* Spinning waiters watch `wakes`; sleeping ones the condition.
     * Taking the lock orders this broadcast after any waiter that has read
     * the old word but not yet gone to sleep: it sleeps first, then wakes. */
    atomic_fetch_add(&ws->wakes, 1);
    pthread_mutex_lock(&ws->mu);
    pthread_cond_broadcast(&ws->cv);
    pthread_mutex_unlock(&ws->mu);
}
