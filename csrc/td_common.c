/*
 * td_common.c - error strings and the allocator hooks of the core.
 *
 * The hooks are the only mutable file-scope state in the core.  They are
 * atomic pointers because tests swap them while pools created earlier may
 * still have workers running; the pair is not swapped as one unit, so a swap
 * is only safe while no allocation is under way (see td_common.h).
 */
#include "td_common.h"

#include <stdatomic.h>
#include <stdlib.h>

static _Atomic(td_malloc_fn) malloc_hook = malloc;
static _Atomic(td_free_fn) free_hook = free;

const char *td_strerror(int rc)
{
    switch (rc) {
    case TD_OK:
        return "success";
    case TD_EINVAL:
        return "invalid argument";
    case TD_ENOMEM:
        return "out of memory";
    case TD_EAGAIN:
        return "resource temporarily unavailable (cannot start a thread)";
    case TD_ESHUTDOWN:
        return "the pool has been shut down";
    case TD_ETIMEDOUT:
        return "timed out";
    case TD_ENOSYS:
        return "not implemented on this platform";
    case TD_EDEADLK:
        return "the calling thread would wait for itself";
    default:
        return "unknown error";
    }
}

int td_replace_allocator(td_malloc_fn malloc_fn, td_free_fn free_fn)
{
    if ((malloc_fn == NULL) != (free_fn == NULL)) {
        return TD_EINVAL;
    }
    atomic_store(&malloc_hook, malloc_fn ? malloc_fn : malloc);
    atomic_store(&free_hook, free_fn ? free_fn : free);
    return TD_OK;
}

void *td__malloc(size_t size)
{
    return atomic_load_explicit(&malloc_hook, memory_order_relaxed)(size);
}

void td__free(void *ptr)
{
    atomic_load_explicit(&free_hook, memory_order_relaxed)(ptr);
}
