/*
 * test_common.c - td_strerror and the replaceable allocator (td_common.h).
 *
 * The allocator hooks are process-global, which is safe here because each
 * test runs in its own process (run_tests.c) and these tests start no
 * threads.  The OOM loop that uses the hooks on a real pool is in
 * test_pool.c.
 */
#include <stdatomic.h>
#include <stdlib.h>
#include <string.h>

#include "harness.h"
#include "td_common.h"

/* Every code td_common.h declares. */
static const int all_codes[] = {
    TD_OK,       TD_EINVAL,    TD_ENOMEM, TD_EAGAIN,
    TD_ESHUTDOWN, TD_ETIMEDOUT, TD_ENOSYS, TD_EDEADLK,
};
#define NCODES (sizeof(all_codes) / sizeof(all_codes[0]))

TEST(strerror_known_codes)
{
    const char *unknown = td_strerror(-1000);
    ASSERT_NOT_NULL(unknown);
    for (size_t i = 0; i < NCODES; i++) {
        const char *s = td_strerror(all_codes[i]);
        ASSERT_NOT_NULL(s);
        ASSERT_GT(strlen(s), 0);
        /* A known code never falls through to the unknown text... */
        ASSERT_STR_NE(s, unknown);
        /* ...and no two codes share a description. */
        for (size_t j = 0; j < i; j++) {
            ASSERT_STR_NE(s, td_strerror(all_codes[j]));
        }
        /* The string is static: the same pointer every time. */
        ASSERT_PTR_EQ(s, td_strerror(all_codes[i]));
    }
}

TEST(strerror_unknown_codes)
{
    static const int unknown[] = {1, 42, -8, -1000, INT32_MIN, INT32_MAX};
    const char *first = td_strerror(unknown[0]);
    ASSERT_NOT_NULL(first);
    ASSERT_GT(strlen(first), 0);
    for (size_t i = 0; i < sizeof(unknown) / sizeof(unknown[0]); i++) {
        ASSERT_NOT_NULL(td_strerror(unknown[i]));
        ASSERT_STR_EQ(first, td_strerror(unknown[i]));
    }
}

static atomic_int counting_mallocs;
static atomic_int counting_frees;

static void *counting_malloc(size_t size)
{
    atomic_fetch_add(&counting_mallocs, 1);
    return malloc(size);
}

static void counting_free(void *ptr)
{
    atomic_fetch_add(&counting_frees, 1);
    free(ptr);
}

TEST(replace_allocator_args)
{
    /* Exactly one NULL hook is rejected. */
    ASSERT_RC(TD_EINVAL, td_replace_allocator(malloc, NULL));
    ASSERT_RC(TD_EINVAL, td_replace_allocator(NULL, free));
    ASSERT_RC(TD_EINVAL, td_replace_allocator(counting_malloc, NULL));
    ASSERT_RC(TD_EINVAL, td_replace_allocator(NULL, counting_free));
    /* Both NULL restores malloc/free; both set installs the pair. */
    ASSERT_OK(td_replace_allocator(NULL, NULL));
    ASSERT_OK(td_replace_allocator(malloc, free));
    ASSERT_OK(td_replace_allocator(NULL, NULL));
}

TEST(replace_allocator_routes_calls)
{
    void *ptr;

    ASSERT_OK(td_replace_allocator(counting_malloc, counting_free));
    ptr = td__malloc(24);
    ASSERT_NOT_NULL(ptr);
    memset(ptr, 0xab, 24);
    td__free(ptr);
    ASSERT_EQ(1, atomic_load(&counting_mallocs));
    ASSERT_EQ(1, atomic_load(&counting_frees));

    /* A rejected pair leaves the installed hooks in place. */
    ASSERT_RC(TD_EINVAL, td_replace_allocator(malloc, NULL));
    td__free(td__malloc(8));
    ASSERT_EQ(2, atomic_load(&counting_mallocs));
    ASSERT_EQ(2, atomic_load(&counting_frees));

    /* Restoring the defaults stops the counting. */
    ASSERT_OK(td_replace_allocator(NULL, NULL));
    ptr = td__malloc(8);
    ASSERT_NOT_NULL(ptr);
    td__free(ptr);
    ASSERT_EQ(2, atomic_load(&counting_mallocs));
    ASSERT_EQ(2, atomic_load(&counting_frees));
}
