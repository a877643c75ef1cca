/*
 * td_atfork.h - fork() safety for the core's locks.
 *
 * Every pool and waitset registers an entry here.  One set of
 * pthread_atfork handlers, installed on first use, takes every registered
 * lock just before fork() and releases it in the parent, or resets it in
 * the child.  Running inside fork() itself matters: a language runtime's
 * own before-fork hooks (CPython's, which may give up the GIL) have all run
 * by then, so no lock is held while another thread waits for something the
 * forking thread needs.
 *
 * Ownership: entries are embedded in their owner; the owner registers it
 * once it can be locked and unregisters it before it is freed.
 */
#ifndef TD_ATFORK_H
#define TD_ATFORK_H

#include "td_common.h"

typedef struct td_atfork_entry {
    void (*prepare)(void *ctx);   /* take the owner's lock */
    void (*parent)(void *ctx);    /* release it */
    void (*child)(void *ctx);     /* make it usable by the lone thread */
    void *ctx;
    struct td_atfork_entry *prev, *next;   /* the registry's */
} td_atfork_entry;

/* Adds e.  Returns TD_OK, or TD_EAGAIN if the handlers could not be
 * installed (then fork() is not made safe for e's owner). */
int td_atfork_register(td_atfork_entry *e);

/* Removes e; it must have been registered. */
void td_atfork_unregister(td_atfork_entry *e);

#endif /* TD_ATFORK_H */
