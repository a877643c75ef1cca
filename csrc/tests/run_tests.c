/*
 * run_tests.c - the one registry of the C tests, and their runner.
 *
 * Each test runs in its own forked child (libuv's runner.c does the same):
 * a crash, an abort() from a failed ASSERT, a sanitizer report or a leak
 * fails that test alone, and global state (allocator hooks, signal
 * handlers, threads) never leaks into the next one.  The runner itself
 * starts no thread, so every fork happens in a single-threaded process,
 * which ThreadSanitizer requires.
 *
 * The parent blocks SIGCHLD and waits for it with sigtimedwait(), so a test
 * that does not finish within the timeout (TD_TEST_TIMEOUT seconds, default
 * 30) is killed, with any process it forked, and reported as a possible
 * deadlock.  Exit status 77 means "skipped" (SKIP() in harness.h).
 *
 * Usage: run_tests [--list | NAME...]   (no NAME: every test, in order)
 *        run_tests --no-fork NAME       (run in-process, for a debugger)
 * The last line is "N passed, N failed"; the exit status is 1 if any test
 * failed.
 */
#include <errno.h>
#include <signal.h>
#include <stdio.h>
#include <stdlib.h>
#include <string.h>
#ifdef __linux__
#include <sys/prctl.h>
#endif
#include <sys/types.h>
#include <sys/wait.h>
#include <time.h>
#include <unistd.h>

#include "harness.h"

#define TEST_LIST(X)                                                        \
    X(strerror_known_codes)                                                 \
    X(strerror_unknown_codes)                                               \
    X(replace_allocator_args)                                               \
    X(replace_allocator_routes_calls)                                       \
    X(clock_monotonic)                                                      \
    X(clock_sleep_at_least)                                                 \
    X(clock_spin_at_least)                                                  \
    X(clock_sleep_restarts_after_signal)                                    \
    X(clock_deadline_after)                                                 \
    X(clock_deadline_after_huge)                                            \
    X(sw_fake_clock_arithmetic)                                             \
    X(sw_restart)                                                           \
    X(sw_stop_not_running)                                                  \
    X(sw_start_null)                                                        \
    X(sw_clock_ctx_passed)                                                  \
    X(sw_real_clock)                                                        \
    X(timeline_off_keeps_nothing)                                           \
    X(timeline_ring_drops_oldest)                                           \
    X(timeline_ring_counts_dropped_items)                                   \
    X(pool_timeline_records_every_task)                                     \
    X(pool_timeline_bounded)                                                \
    X(pool_timeline_off)                                                    \
    X(pool_timeline_short_tasks_share_records)                              \
    X(pool_timeline_long_tasks_keep_their_own_records)                      \
    X(pool_timeline_runs_split_where_the_tag_changes)                       \
    X(pool_timeline_add_run_records_units)                                  \
    X(pool_timeline_run_ends_before_a_task_that_records_its_own)            \
    X(pool_timeline_add_run_longer_than_ring)                               \
    X(pool_timeline_add_run_errors)                                         \
    X(pool_timeline_add_run_without_timeline)                               \
    X(ticks_monotonic_per_thread)                                           \
    X(ticks_convert_accuracy)                                               \
    X(ticks_convert_keeps_order)                                            \
    X(ticks_fallback_forced)                                                \
    X(pool_timeline_ns_ordered)                                             \
    X(pool_timeline_ns_ordered_fallback)                                    \
    X(spin_default_bound)                                                   \
    X(spin_bound_from_environment)                                          \
    X(spin_bad_environment_keeps_default)                                   \
    X(spin_returns_at_once_when_changed)                                    \
    X(spin_gives_up_after_its_bound)                                        \
    X(spin_off_only_looks)                                                  \
    X(spin_sees_another_threads_store)                                      \
    X(spin_one_idle_worker_at_a_time)                                       \
    X(waitset_init_destroy)                                                 \
    X(waitset_timeout_unchanged)                                            \
    X(waitset_timeout_zero_tests)                                           \
    X(waitset_nwaiters_is_a_count)                                          \
    X(waitset_ping_pong)                                                    \
    X(waitset_ping_pong_timed)                                              \
    X(waitset_ping_pong_broadcast)                                          \
    X(waitset_ping_pong_without_spinning)                                   \
    X(waitset_wait_below_skips_intermediate_values)                         \
    X(waitset_broadcast)                                                    \
    X(waitset_many_words)                                                   \
    X(waitset_fork)                                                         \
    X(thread_count_einval)                                                  \
    X(thread_count_single)                                                  \
    X(thread_count_pthreads)                                                \
    X(thread_count_pool_workers)                                            \
    X(thread_count_pool_destroy)                                            \
    X(pool_create_errors)                                                   \
    X(pool_create_starts_no_thread)                                         \
    X(pool_submit_null_fn)                                                  \
    X(pool_destroy_null)                                                    \
    X(pool_many_tasks)                                                      \
    X(pool_destroy_runs_queued)                                             \
    X(pool_two_pools_independent)                                           \
    X(pool_lazy_spawn)                                                      \
    X(pool_idle_worker_reused)                                              \
    X(pool_idle_worker_reused_idle_hook)                                    \
    X(pool_fifo_single_worker)                                              \
    X(pool_tasks_submit_tasks)                                              \
    X(pool_concurrent_submitters)                                           \
    X(pool_wait_timeout)                                                    \
    X(pool_wait_huge_timeout)                                               \
    X(pool_wait_many_waiters)                                               \
    X(pool_wait_from_worker)                                                \
    X(pool_wait_other_pool_from_worker)                                     \
    X(pool_shutdown_then_submit)                                            \
    X(pool_shutdown_unused)                                                 \
    X(pool_queued_run_after_shutdown)                                       \
    X(pool_shutdown_from_worker)                                            \
    X(pool_drain)                                                           \
    X(pool_drain_visit_unlocked)                                            \
    X(pool_drain_after_shutdown)                                            \
    X(pool_join_before_shutdown)                                            \
    X(pool_join_timeout)                                                    \
    X(pool_join_from_worker)                                                \
    X(pool_destroy_from_worker)                                             \
    X(pool_hooks_start_exit)                                                \
    X(pool_hooks_idle)                                                      \
    X(pool_hooks_copied_at_create)                                          \
    X(pool_hooks_partial)                                                   \
    X(pool_hook_start_failure)                                              \
    X(pool_drain_spares_tasks_handed_to_new_workers)                        \
    X(pool_failed_start_drains_its_handed_task_first)                       \
    X(pool_fork_reports_tasks_handed_to_starting_workers)                   \
    X(pool_destroy_stranded_tasks)                                          \
    X(pool_thread_names)                                                    \
    X(pool_thread_names_default)                                            \
    X(pool_thread_names_truncated)                                          \
    X(pool_thread_names_utf8)                                               \
    X(pool_thread_name_prefix_copied)                                       \
    X(pool_fork)                                                            \
    X(pool_fork_many_running)                                               \
    X(pool_oom)

#define DECLARE(name) void test_##name(void);
TEST_LIST(DECLARE)
#undef DECLARE

typedef struct test_entry {
    const char *name;
    void (*fn)(void);
} test_entry;

#define ENTRY(name) {#name, test_##name},
static const test_entry tests[] = {TEST_LIST(ENTRY)};
#undef ENTRY

#define NTESTS (sizeof(tests) / sizeof(tests[0]))

enum { RESULT_PASS, RESULT_FAIL, RESULT_SKIP };

static unsigned timeout_seconds(void)
{
    const char *s = getenv("TD_TEST_TIMEOUT");
    long v = s ? strtol(s, NULL, 10) : 0;
    return v > 0 ? (unsigned)v : 30;
}

static uint64_t ms_since(uint64_t t0)
{
    return (harness_now_ns() - t0) / 1000000u;
}

/* Runs one test in a child; prints its line; returns a RESULT_*. */
static int run_one(const test_entry *t, unsigned timeout_s)
{
    sigset_t chld;
    uint64_t t0 = harness_now_ns();
    uint64_t deadline = t0 + (uint64_t)timeout_s * 1000000000u;
    pid_t pid;
    int status = 0;

    sigemptyset(&chld);
    sigaddset(&chld, SIGCHLD);
    fflush(stdout);
    fflush(stderr);
    pid = fork();
    if (pid < 0) {
        printf("FAIL %s: fork: %s\n", t->name, strerror(errno));
        return RESULT_FAIL;
    }
    if (pid == 0) {
        /* Own process group, so a timeout kills the test's own children;
         * SIGCHLD unblocked, so the test sees the defaults. */
        setpgid(0, 0);
        sigprocmask(SIG_UNBLOCK, &chld, NULL);
        t->fn();
        fflush(stdout);
        exit(0);   /* exit(), not _exit(): LeakSanitizer runs at exit */
    }
    setpgid(pid, pid);   /* also here, so kill(-pid) works at once */

    for (;;) {
        siginfo_t info;
        memset(&info, 0, sizeof(info));
        /* WNOWAIT: leave the zombie, which keeps the process group id
         * reserved until the kill(-pid) below. */
        if (waitid(P_PID, (id_t)pid, &info, WEXITED | WNOHANG | WNOWAIT)
                == 0 && info.si_pid == pid) {
            break;
        }
        uint64_t now = harness_now_ns();
        if (now >= deadline) {
            kill(-pid, SIGKILL);
            kill(pid, SIGKILL);
            while (waitpid(-pid, NULL, 0) > 0 || errno == EINTR) {
            }
            printf("FAIL %s: timed out after %u s (possible deadlock)\n",
                   t->name, timeout_s);
            return RESULT_FAIL;
        }
        uint64_t left = deadline - now;
        struct timespec ts = {(time_t)(left / 1000000000u),
                              (long)(left % 1000000000u)};
        /* Returns on SIGCHLD (ours or a stale one) or at the deadline. */
        (void)sigtimedwait(&chld, NULL, &ts);
    }
    /* Kill anything of the test's group that outlived it, then reap the
     * test and (as subreaper) its orphans. */
    kill(-pid, SIGKILL);
    waitpid(pid, &status, 0);
    while (waitpid(-pid, NULL, 0) > 0 || errno == EINTR) {
    }

    if (WIFEXITED(status) && WEXITSTATUS(status) == 0) {
        printf("ok   %s (%llu ms)\n", t->name,
               (unsigned long long)ms_since(t0));
        return RESULT_PASS;
    }
    if (WIFEXITED(status) && WEXITSTATUS(status) == HARNESS_SKIP_STATUS) {
        printf("skip %s\n", t->name);
        return RESULT_SKIP;
    }
    if (WIFEXITED(status)) {
        printf("FAIL %s: exit status %d\n", t->name, WEXITSTATUS(status));
    } else if (WIFSIGNALED(status)) {
        printf("FAIL %s: killed by signal %d (%s)\n", t->name,
               WTERMSIG(status), strsignal(WTERMSIG(status)));
    } else {
        printf("FAIL %s: status 0x%x\n", t->name, (unsigned)status);
    }
    return RESULT_FAIL;
}

static const test_entry *find_test(const char *name)
{
    for (size_t i = 0; i < NTESTS; i++) {
        if (strcmp(tests[i].name, name) == 0) {
            return &tests[i];
        }
    }
    return NULL;
}

int main(int argc, char **argv)
{
    unsigned timeout_s = timeout_seconds();
    unsigned counts[3] = {0, 0, 0};
    sigset_t chld;

    setvbuf(stdout, NULL, _IOLBF, 0);
    if (argc == 2 && strcmp(argv[1], "--list") == 0) {
        for (size_t i = 0; i < NTESTS; i++) {
            printf("%s\n", tests[i].name);
        }
        return 0;
    }
    if (argc == 3 && strcmp(argv[1], "--no-fork") == 0) {
        const test_entry *t = find_test(argv[2]);
        if (t == NULL) {
            fprintf(stderr, "no test named %s\n", argv[2]);
            return 2;
        }
        t->fn();
        printf("ok   %s\n", t->name);
        return 0;
    }
    for (int i = 1; i < argc; i++) {
        if (find_test(argv[i]) == NULL) {
            fprintf(stderr, "no test named %s (try --list)\n", argv[i]);
            return 2;
        }
    }

#ifdef __linux__
    /* Orphans of a killed test re-parent to us, so we can reap them. */
    (void)prctl(PR_SET_CHILD_SUBREAPER, 1);
#endif
    /* SIGCHLD stays blocked in the runner and is taken by sigtimedwait. */
    sigemptyset(&chld);
    sigaddset(&chld, SIGCHLD);
    sigprocmask(SIG_BLOCK, &chld, NULL);

    if (argc > 1) {
        for (int i = 1; i < argc; i++) {
            counts[run_one(find_test(argv[i]), timeout_s)]++;
        }
    } else {
        for (size_t i = 0; i < NTESTS; i++) {
            counts[run_one(&tests[i], timeout_s)]++;
        }
    }
    if (counts[RESULT_SKIP] > 0) {
        printf("%u skipped\n", counts[RESULT_SKIP]);
    }
    printf("%u passed, %u failed\n", counts[RESULT_PASS],
           counts[RESULT_FAIL]);
    return counts[RESULT_FAIL] > 0 ? 1 : 0;
}
