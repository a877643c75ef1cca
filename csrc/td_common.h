/*
 * td_common.h - error codes and the replaceable allocator shared by the
 * taskdemo C core (td_pool, td_waitset, td_clock, td_sw, td_threads).
 *
 * The core is plain C11 + pthreads and never includes Python.h, so it can be
 * lifted out as a library.  Every fallible function returns TD_OK or one of
 * the negative codes below; td_strerror() names them.  The core never prints,
 * exits or aborts.
 */
#ifndef TD_COMMON_H
#define TD_COMMON_H

#include <stddef.h>

enum {
    TD_OK = 0,
    TD_EINVAL = -1,     /* an argument is out of range or NULL */
    TD_ENOMEM = -2,     /* an allocation failed */
    TD_EAGAIN = -3,     /* the OS refused a thread or another resource */
    TD_ESHUTDOWN = -4,  /* the pool no longer accepts work */
    TD_ETIMEDOUT = -5,  /* a timed wait expired before its condition held */
    TD_ENOSYS = -6,     /* not implemented on this platform */
    TD_EDEADLK = -7     /* the call would wait for the calling thread itself */
};

/* Returns a static, human-readable description of rc; never NULL. */
const char *td_strerror(int rc);

/*
 * Every allocation of the core goes through these two hooks, so tests can
 * inject out-of-memory failures.  td_replace_allocator() installs a pair
 * (both non-NULL, or both NULL to restore malloc/free) and returns TD_OK or
 * TD_EINVAL.  It is meant for tests and start-up code: call it while no
 * other thread is inside the core.
 */
typedef void *(*td_malloc_fn)(size_t size);
typedef void (*td_free_fn)(void *ptr);
int td_replace_allocator(td_malloc_fn malloc_fn, td_free_fn free_fn);

/* Internal: allocate and free through the installed hooks. */
void *td__malloc(size_t size);
void td__free(void *ptr);

#endif /* TD_COMMON_H */
