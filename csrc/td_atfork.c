/*
 * td_atfork.c - the registry behind td_atfork.h.
 *
 * This file holds the core's only process-wide mutable state, because
 * pthread_atfork handlers take no argument: the list of entries and the
 * mutex guarding it.  The prepare handler takes the registry mutex and
 * then every entry's lock; no owner lock is ever held while taking another
 * owner's lock or the registry mutex, so the order cannot deadlock.
 */
#include "td_atfork.h"

#include <pthread.h>

static pthread_mutex_t registry_mu = PTHREAD_MUTEX_INITIALIZER;
static td_atfork_entry *registry;   /* protected by registry_mu */
static pthread_once_t install_once = PTHREAD_ONCE_INIT;
static int install_rc = TD_OK;      /* written once under install_once */

static void prepare(void)
{
    pthread_mutex_lock(&registry_mu);
    for (td_atfork_entry *e = registry; e != NULL; e = e->next) {
        e->prepare(e->ctx);
    }
}

static void parent(void)
{
    for (td_atfork_entry *e = registry; e != NULL; e = e->next) {
        e->parent(e->ctx);
    }
    pthread_mutex_unlock(&registry_mu);
}

static void child(void)
{
    for (td_atfork_entry *e = registry; e != NULL; e = e->next) {
        e->child(e->ctx);
    }
    /* The forking thread took registry_mu in prepare and is the only
     * thread here, so it may release it. */
    pthread_mutex_unlock(&registry_mu);
}

static void install(void)
{
    if (pthread_atfork(prepare, parent, child) != 0) {
        install_rc = TD_EAGAIN;
    }
}

int td_atfork_register(td_atfork_entry *e)
{
    pthread_once(&install_once, install);
    if (install_rc != TD_OK) {
        return install_rc;
    }
    pthread_mutex_lock(&registry_mu);
    e->prev = NULL;
    e->next = registry;
    if (registry != NULL) {
        registry->prev = e;
    }
    registry = e;
    pthread_mutex_unlock(&registry_mu);
    return TD_OK;
}

void td_atfork_unregister(td_atfork_entry *e)
{
    pthread_mutex_lock(&registry_mu);
    if (e->prev != NULL) {
        e->prev->next = e->next;
    } else if (registry == e) {
        registry = e->next;
    }
    if (e->next != NULL) {
        e->next->prev = e->prev;
    }
    e->prev = e->next = NULL;
    pthread_mutex_unlock(&registry_mu);
}
