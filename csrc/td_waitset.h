/*
 * td_waitset.h - futex-like waiting on many atomic words with one lock.
 *
 * A future, or anything else with a small atomic state word, waits with
 * td_waitset_wait(ws, &word, expected, &nwaiters, timeout) until the word
 * changes, and the thread that changes it calls td_waitset_wake() after the
 * store.  Objects carry only an int and a waiter count, not a mutex and a
 * condition variable each; the waker touches the lock only when the count
 * says somebody waits, so completing an unobserved object costs one atomic
 * load.
 *
 * Protocol (sequentially consistent atomics make it race-free): the waiter
 * increments *nwaiters before it reads *word; the waker stores *word before
 * it reads *nwaiters.  So either the waiter sees the new word, or the waker
 * sees the waiter and broadcasts under the lock the waiter sleeps on.
 *
 * Before sleeping, a waiter spins for a while (td_spin.h) until the word
 * has changed AND a wake has happened since it registered: a waker that
 * defers its wake until it has released a lock the waiter wants next (the
 * binding's worker and the GIL) is then waited for, so the waiter does
 * not run into that lock and sleep on it instead.
 *
 * Ownership: the caller owns the td_waitset storage and the words.
 */
#ifndef TD_WAITSET_H
#define TD_WAITSET_H

#include <pthread.h>
#include <stdatomic.h>
#include <stdint.h>

#include "td_atfork.h"
#include "td_common.h"

typedef struct td_waitset {
    pthread_mutex_t mu;
    pthread_cond_t cv;   /* broadcast on every wake; waiters re-check */
    _Atomic unsigned wakes;   /* bumped by every wake, for spinning waiters */
    td_atfork_entry fork_entry;   /* fork() takes mu; the child resets */
} td_waitset;

/* Returns TD_OK, or TD_EAGAIN / TD_ENOMEM when pthreads refuse.  fork()
 * is safe: the child gets a usable waitset with no waiters. */
int td_waitset_init(td_waitset *ws);
void td_waitset_destroy(td_waitset *ws);

/*
 * Blocks while *word == expected, for at most timeout_ns (< 0: no limit,
 * 0: just test).  *nwaiters counts the threads waiting on this word and
 * is restored before returning.  Returns TD_OK once *word != expected (it
 * may have changed back; the caller re-reads it), or TD_ETIMEDOUT.
 */
int td_waitset_wait(td_waitset *ws, const _Atomic int *word, int expected,
                    _Atomic unsigned *nwaiters, int64_t timeout_ns);

/*
 * As td_waitset_wait, but blocks while *word < least: for a word that only
 * grows when its waiters care about one threshold only (a future's state
 * passes "running" on its way to "done"; a result() waiter wants "done",
 * and need not wake, take the GIL and wait again at "running").  Returns
 * TD_OK once *word >= least, or TD_ETIMEDOUT.
 */
int td_waitset_wait_below(td_waitset *ws, const _Atomic int *word,
                          int least, _Atomic unsigned *nwaiters,
                          int64_t timeout_ns);

/* Wakes the waiters of a word whose value was just stored. */
void td_waitset_wake(td_waitset *ws, const _Atomic unsigned *nwaiters);

/* Wakes every waiter unconditionally: for a waker that checked the waiter
 * count after its store, as td_waitset_wake does, but wakes later (the
 * binding first gives up the GIL the woken thread will want). */
void td_waitset_broadcast(td_waitset *ws);

#endif /* TD_WAITSET_H */
