/*
 * td_pool.c - the pthread pool.
 *
 * Design
 * ------
 * One mutex `mu` protects everything mutable in the pool: the task ring, the
 * worker table and the counters.  Tasks live in a growable ring buffer of
 * (fn, arg) pairs, so queueing a task allocates nothing in the steady state.
 *
 * Workers start lazily: submit starts one only when no sleeping worker is
 * free to take the task and fewer than max_threads exist, as the stdlib's
 * ThreadPoolExecutor does.  The new worker is handed the oldest queued
 * task (`first`) at once, under `mu`: that task is its own from then on,
 * so a drain (a cancel) before the thread gets going spares it, as the
 * stdlib's shutdown(cancel_futures=True) spares the task a thread it
 * started is about to take.  A worker takes tasks until the ring is empty,
 * then runs the thread_idle hook, watches `nudges` for up to 50 us
 * (td_spin.h; every push bumps it) unless another worker already does,
 * and only then sleeps on `work_cv`.
 * Submit signals `work_cv` only when a worker sleeps unclaimed
 * (idle_unclaimed), so a busy pool, or one whose caller submits again
 * within the spin, makes no wake-up system calls at all.
 *
 * Invariant: whenever the ring is non-empty, some worker is awake, or a
 * signal is on its way to a sleeping one, or the pool is starting one.  A
 * worker sleeps only after seeing the ring empty under `mu`; every push
 * under `mu` either claims a sleeping worker (and signals), or starts one,
 * or leaves the task to workers that are awake and will look again before
 * they sleep.
 *
 * Shutdown stops new submissions; workers drain the ring and then exit.
 * Exiting workers stay joinable until td_pool_join() or td_pool_destroy()
 * joins them, so "joined" means the OS thread is really gone.
 *
 * Tasks and hooks always run without `mu`; `mu` is never held while waiting
 * for anything but `mu`-protected state, so callers may take their own
 * locks (the GIL) outside it without deadlock.
 */
#include "td_pool.h"

#include <errno.h>
#include <pthread.h>
#include <signal.h>
#include <stdio.h>
#include <string.h>
#include <time.h>
#include <unistd.h>
#if defined(__linux__)
#include <sys/syscall.h>
#endif

#include "td_atfork.h"
#include "td_clock.h"
#include "td_spin.h"
#include "td_ticks.h"

#define MIN_RING 64u
#define OS_NAME_MAX 15   /* Linux limit, without the terminating NUL */

typedef struct task {
    td_task_fn fn;
    void *arg;
    uint64_t submit_ticks;   /* td_ticks_now(); 0 without a timeline */
    uint32_t tag;
} task;

typedef struct worker {
    td_pool *pool;
    pthread_t thread;
    unsigned index;
    int exited;      /* protected by mu: thread_exit ran, thread returning */
    int reaped;      /* protected by mu: joined, or claimed by a joiner */
    int lost;        /* protected by mu: vanished in fork(), not reported */
    task current;    /* protected by mu: the task it runs, fn NULL if none */
    task first;      /* protected by mu: handed to it at spawn and not yet
                        begun (counted in handed), fn NULL if none */
    long tid;        /* kernel thread id (Linux), written by the worker
                        before anything else, read after pthread_join */
} worker;

struct td_pool {
    pthread_mutex_t mu;
    pthread_cond_t work_cv;   /* workers sleep here for tasks/shutdown */
    pthread_cond_t done_cv;   /* td_pool_wait and td_pool_join sleep here */

    task *ring;           /* protected by mu */
    size_t ring_cap;      /* protected by mu; a power of two */
    size_t ring_head;     /* protected by mu */
    size_t ring_count;    /* protected by mu */

    worker **workers;     /* protected by mu; entries stable once made */
    unsigned workers_cap; /* protected by mu */
    unsigned spawned;     /* protected by mu: entries used in workers */
    _Atomic unsigned spawned_total;   /* workers ever started, written
                                         under mu, read without it */
    unsigned alive;       /* protected by mu: started and not exited */
    unsigned idle;        /* protected by mu: asleep on work_cv */
    unsigned idle_unclaimed;  /* protected by mu: idle, no task promised */
    unsigned hooking;     /* protected by mu: in thread_idle or spinning,
                             about to look at the ring again */
    unsigned hooking_unclaimed;   /* protected by mu: of those, no task
                                     promised */
    _Atomic unsigned nudges;  /* bumped (under mu) by every push and by
                                 shutdown: what a spinning worker watches */
    int spinning;         /* protected by mu: a worker spins for work (at
                             most one does) */
    unsigned running;     /* protected by mu: tasks being run */
    unsigned handed;      /* protected by mu: tasks handed to workers that
                             have not begun them (worker.first) */
    unsigned done_waiters;    /* protected by mu: sleepers on done_cv */
    unsigned joins_active;    /* protected by mu: joins still reaping */
    int shutdown;         /* protected by mu */

    td_timeline timeline; /* protected by mu */
    td_atfork_entry fork_entry;   /* fork() takes mu; see pool_fork_child */
    int timing;           /* immutable after create: timeline kept */

    unsigned max_threads;     /* immutable after create */
    td_pool_hooks hooks;      /* immutable after create */
    char prefix[OS_NAME_MAX + 1];   /* immutable after create */
};

/* The pool whose worker the calling thread is, if any, and the worker's
 * index.  Per thread, so it is not shared mutable state. */
static _Thread_local const td_pool *current_pool;
static _Thread_local unsigned current_index;
static _Thread_local worker *current_worker;

static int init_monotonic_cond(pthread_cond_t *cv)
{
    pthread_condattr_t attr;
    if (pthread_condattr_init(&attr) != 0) {
        return -1;
    }
    int rc = pthread_condattr_setclock(&attr, CLOCK_MONOTONIC);
    if (rc == 0) {
        rc = pthread_cond_init(cv, &attr);
    }
    pthread_condattr_destroy(&attr);
    return rc;
}

/* Waits on cv under p->mu until the absolute deadline (NULL: forever).
 * Returns ETIMEDOUT once the deadline passed, else 0. */
static int cond_wait_until(pthread_cond_t *cv, td_pool *p,
                           const struct timespec *deadline)
{
    if (deadline == NULL) {
        pthread_cond_wait(cv, &p->mu);
        return 0;
    }
    return pthread_cond_timedwait(cv, &p->mu, deadline);
}

/* Length of the longest prefix of s, at most max bytes, that does not end
 * inside a multi-byte UTF-8 character. */
static size_t utf8_cut(const char *s, size_t max)
{
    size_t len = strlen(s);
    if (len <= max) {
        return len;
    }
    while (max > 0 && ((unsigned char)s[max] & 0xC0) == 0x80) {
        max--;   /* s[max] continues a character: cut before it starts */
    }
    return max;
}

/* ---- fork() (run by td_atfork inside fork) ------------------------------
 * prepare takes mu, so no thread is half-way through changing the pool when
 * the process is copied; the parent just releases it.  In the child only
 * the forking thread exists: it releases mu, makes the condition variables
 * anew (they may record sleepers that are gone) and marks every other
 * worker lost.  The pool stays shut down; td_pool_after_fork_child reports
 * the lost work later, outside fork(), where the caller may run code.
 */
static void pool_fork_prepare(void *ctx)
{
    pthread_mutex_lock(&((td_pool *)ctx)->mu);
}

static void pool_fork_parent(void *ctx)
{
    pthread_mutex_unlock(&((td_pool *)ctx)->mu);
}

static void pool_fork_child(void *ctx)
{
    td_pool *p = ctx;
    pthread_mutex_unlock(&p->mu);
    init_monotonic_cond(&p->work_cv);
    init_monotonic_cond(&p->done_cv);
    /* A fork from one of our own tasks leaves that worker alive in the
     * child, finishing its task; every other worker vanished. */
    worker *survivor = NULL;
    for (unsigned i = 0; i < p->spawned; i++) {
        worker *w = p->workers[i];
        if (w->exited) {
            continue;   /* its thread is gone; nothing to join any more */
        }
        if (current_pool == p && pthread_equal(w->thread, pthread_self())) {
            survivor = w;
        } else {
            w->lost = 1;
        }
    }
    for (unsigned i = 0; i < p->spawned; i++) {
        p->workers[i]->reaped |= p->workers[i]->exited;
    }
    p->shutdown = 1;
    p->alive = survivor ? 1u : 0u;
    p->running = survivor && survivor->current.fn ? 1u : 0u;
    p->handed = 0;   /* lost with their workers; reported with them */
    p->idle = 0;
    p->idle_unclaimed = 0;
    p->hooking = 0;
    p->hooking_unclaimed = 0;
    p->spinning = 0;
    p->done_waiters = 0;
    p->joins_active = 0;
}

int td_pool_create(td_pool **out, const td_pool_config *cfg)
{
    if (out == NULL || cfg == NULL || cfg->max_threads == 0) {
        return TD_EINVAL;
    }
    td_pool *p = td__malloc(sizeof(*p));
    if (p == NULL) {
        return TD_ENOMEM;
    }
    memset(p, 0, sizeof(*p));
    atomic_init(&p->nudges, 0);
    atomic_init(&p->spawned_total, 0);
    p->ring = td__malloc(MIN_RING * sizeof(task));
    if (p->ring == NULL) {
        goto fail_pool;
    }
    p->ring_cap = MIN_RING;
    if (pthread_mutex_init(&p->mu, NULL) != 0) {
        goto fail_ring;
    }
    if (init_monotonic_cond(&p->work_cv) != 0) {
        goto fail_mutex;
    }
    if (init_monotonic_cond(&p->done_cv) != 0) {
        goto fail_work_cv;
    }
    if (td_timeline_init(&p->timeline, cfg->timeline_capacity) != TD_OK) {
        goto fail_done_cv;
    }
    p->timing = cfg->timeline_capacity > 0;
    if (p->timing) {
        /* Decide the tick source now, so the first submit does not pay
         * for it. */
        (void)td_ticks_source();
    }
    p->max_threads = cfg->max_threads;
    if (cfg->hooks != NULL) {
        p->hooks = *cfg->hooks;
    }
    const char *prefix = cfg->name_prefix ? cfg->name_prefix : "td";
    memcpy(p->prefix, prefix, utf8_cut(prefix, OS_NAME_MAX));
    p->fork_entry = (td_atfork_entry){pool_fork_prepare, pool_fork_parent,
                                      pool_fork_child, p, NULL, NULL};
    if (td_atfork_register(&p->fork_entry) != TD_OK) {
        td_timeline_destroy(&p->timeline);
        goto fail_done_cv;
    }
    *out = p;
    return TD_OK;

fail_done_cv:
    pthread_cond_destroy(&p->done_cv);
fail_work_cv:
    pthread_cond_destroy(&p->work_cv);
fail_mutex:
    pthread_mutex_destroy(&p->mu);
fail_ring:
    td__free(p->ring);
fail_pool:
    td__free(p);
    return TD_ENOMEM;
}

/* Sets the OS name "{prefix}_{index}", cutting the prefix so the index
 * survives the 15-byte limit. */
static void set_thread_name(const td_pool *p, unsigned index)
{
    char suffix[16];
    int suffix_len = snprintf(suffix, sizeof(suffix), "_%u", index);
    size_t keep = utf8_cut(p->prefix, OS_NAME_MAX - (size_t)suffix_len);
    char name[OS_NAME_MAX + 1];
    memcpy(name, p->prefix, keep);
    memcpy(name + keep, suffix, (size_t)suffix_len + 1);
#if defined(__APPLE__)
    pthread_setname_np(name);
#elif defined(__linux__)
    pthread_setname_np(pthread_self(), name);
#endif
}

/* The record of a run that starts with task t: at the end of the last
 * record (ticks; 0 if none) if t was already queued then, else now. */
static td_task_record start_run(const task *t, uint64_t last_end,
                                unsigned worker_index)
{
    uint64_t start = last_end != 0 && last_end >= t->submit_ticks
                         ? last_end
                         : td_ticks_now();
    /* Raw TSC reads on two CPUs may disagree by a few cycles (and rdtsc
     * may run a little early), so a start could precede a submit made
     * just before it on another CPU: keep submit <= start <= end. */
    if (start < t->submit_ticks) {
        start = t->submit_ticks;
    }
    return (td_task_record){t->submit_ticks, start, 0, worker_index, t->tag,
                            0};
}

/* Ends the open run of `items` tasks at `end` (ticks), returns its record
 * and adapts the stride for the next one. */
static td_task_record end_run(const td_task_record *open, unsigned items,
                              uint64_t end, unsigned *stride)
{
    td_task_record r = *open;
    r.end_ns = end > r.start_ns ? end : r.start_ns;
    r.items = items;
    *stride = td_run_next_stride(*stride, r.end_ns - r.start_ns, items);
    return r;
}

/* Nothing queued, handed or running.  Called with mu held. */
static int pool_is_done(const td_pool *p)
{
    return p->ring_count == 0 && p->handed == 0 && p->running == 0;
}

/* The next task for w: the one it was handed, else the queue's oldest.
 * Returns 0 if there is none.  Called with mu held. */
static int take_task(td_pool *p, worker *w, task *out)
{
    if (w->first.fn != NULL) {
        *out = w->first;
        w->first.fn = NULL;
        p->handed--;
        return 1;
    }
    if (p->ring_count == 0) {
        return 0;
    }
    *out = p->ring[p->ring_head];
    p->ring_head = (p->ring_head + 1) & (p->ring_cap - 1);
    p->ring_count--;
    return 1;
}

static int grow_ring(td_pool *p);

/* Puts the task w was handed back at the head of the queue.  Only if even
 * that allocation fails does w keep it (and run it: a task is never
 * dropped).  Called with mu held; returns 1 if w still has it. */
static int give_back_first(td_pool *p, worker *w)
{
    if (p->ring_count == p->ring_cap && grow_ring(p) != TD_OK) {
        return 1;
    }
    p->ring_head = (p->ring_head + p->ring_cap - 1) & (p->ring_cap - 1);
    p->ring[p->ring_head] = w->first;
    p->ring_count++;
    w->first.fn = NULL;
    p->handed--;
    return 0;
}

static void *worker_main(void *opaque)
{
    worker *w = opaque;
    td_pool *p = w->pool;
#if defined(__linux__)
    w->tid = (long)syscall(SYS_gettid);
#endif
    current_pool = p;
    current_index = w->index;
    current_worker = w;
    set_thread_name(p, w->index);

    int rc = TD_OK;
    if (p->hooks.thread_start != NULL) {
        rc = p->hooks.thread_start(p->hooks.ctx, w->index);
    }
    /* True after a task ran and until thread_idle has been told, so an idle
     * worker calls the hook once per idle spell, not per wake-up. */
    int owes_idle = 1;
    /* With a timeline: the record being built for the run of tasks this
     * worker is in (open_items tasks so far; see "Runs" in td_pool.h), how
     * many tasks it may take, and the time (in ticks) the last record
     * ended if the worker went straight on: that is the next task's start
     * too, which saves a clock read. */
    td_task_record open = {0};
    unsigned open_items = 0;
    unsigned stride = 1;
    uint64_t last_end = 0;

    pthread_mutex_lock(&p->mu);
    if (rc != TD_OK && w->first.fn != NULL) {
        /* It will never begin the task it was handed, and the hook did not
         * drain it: back to the head of the queue, for the next worker. */
        if (give_back_first(p, w)) {
            rc = TD_OK;   /* out of memory: it runs the task after all */
        }
    }
    while (rc == TD_OK) {
        task t;
        if (take_task(p, w, &t)) {
            p->running++;
            w->current = t;
            pthread_mutex_unlock(&p->mu);

            /* A run is open only while the task this worker takes next
             * has its tag (checked below, under the same hold of mu as
             * this pop), so t continues it or starts a new one. */
            td_task_record finished;
            int have_finished = 0;
            int recorded = p->timing && t.tag != TD_POOL_TAG_UNRECORDED;
            if (p->timing && t.tag != open.tag) {
                open.tag = t.tag;   /* another label: start small again */
                stride = 1;
            }
            if (recorded && open_items == 0) {
                open = start_run(&t, last_end, w->index);
            }
            t.fn(t.arg);
            owes_idle = 1;
            if (recorded && ++open_items >= stride) {
                finished = end_run(&open, open_items, td_ticks_now(),
                                   &stride);
                have_finished = 1;
            } else if (p->timing && !recorded) {
                last_end = 0;   /* the next task reads its own start */
            }

            pthread_mutex_lock(&p->mu);
            if (open_items > 0 && !have_finished &&
                (p->ring_count == 0 ||
                 p->ring[p->ring_head].tag != open.tag)) {
                /* The run ends here, under mu: with nothing queued, so
                 * that whoever waits for the pool to finish (td_pool_wait)
                 * finds every finished task recorded; before a task of
                 * another label, so that records stay in order on this
                 * worker (that task may record runs of its own). */
                finished = end_run(&open, open_items, td_ticks_now(),
                                   &stride);
                have_finished = 1;
            }
            if (have_finished) {
                /* Ticks go into the ring as they are; td_pool_timeline
                 * converts them to ns when they are read. */
                td_timeline_push(&p->timeline, &finished);
                last_end = finished.end_ns;
                open_items = 0;
            }
            w->current.fn = NULL;
            w->current.arg = NULL;
            p->running--;
            if (pool_is_done(p) && p->done_waiters) {
                pthread_cond_broadcast(&p->done_cv);
            }
            continue;
        }
        if (p->shutdown) {
            break;
        }
        /* Going idle (no run is open: the last task saw the ring empty):
         * the next start needs its own time, and the next run starts
         * small again. */
        last_end = 0;
        stride = 1;
        if (owes_idle) {
            /* Give back per-thread resources (the GIL) before sleeping,
             * without mu; then, if no other worker of this pool is doing
             * so, spin a little for the next task (td_spin.h: a caller
             * that submits again soon then costs no wake-up; one spinner
             * catches it, more would only take cores from the threads
             * doing work), and look at the ring again, since tasks may
             * have arrived meanwhile.  Meanwhile the worker counts as
             * available (hooking_unclaimed), so a submit neither signals
             * nor starts a new thread for a task this one is about to
             * find. */
            owes_idle = 0;
            p->hooking++;
            p->hooking_unclaimed++;
            int spin = !p->spinning;
            p->spinning |= spin;
            unsigned seen = atomic_load_explicit(&p->nudges,
                                                 memory_order_relaxed);
            pthread_mutex_unlock(&p->mu);
            if (p->hooks.thread_idle != NULL) {
                p->hooks.thread_idle(p->hooks.ctx);
            }
            if (spin) {
                td_spin_while_equal(&p->nudges, seen,
                                    td_spin_until(INT64_MAX));
            }
            pthread_mutex_lock(&p->mu);
            if (spin) {
                p->spinning = 0;
            }
            p->hooking--;
            if (p->hooking_unclaimed > p->hooking) {
                p->hooking_unclaimed = p->hooking;
            }
            continue;
        }
        p->idle++;
        p->idle_unclaimed++;
        pthread_cond_wait(&p->work_cv, &p->mu);
        p->idle--;
        /* Whoever woke us claimed one of the idle workers; if we woke
         * spuriously, claims still cannot exceed the workers asleep. */
        if (p->idle_unclaimed > p->idle) {
            p->idle_unclaimed = p->idle;
        }
    }
    pthread_mutex_unlock(&p->mu);

    /* thread_exit runs before the worker counts as exited, so a joiner
     * knows the hook's effects (unregistering from Python) are complete. */
    if (p->hooks.thread_exit != NULL) {
        p->hooks.thread_exit(p->hooks.ctx);
    }

    pthread_mutex_lock(&p->mu);
    p->alive--;
    w->exited = 1;
    if (p->done_waiters) {
        pthread_cond_broadcast(&p->done_cv);
    }
    pthread_mutex_unlock(&p->mu);
    return NULL;
}

/*
 * pthread_join returns once the kernel has cleared the thread's id word,
 * a moment before the kernel drops the thread from /proc/self/task.  Our
 * contract is that a joined worker is gone from the OS (thread counts see
 * it gone), and nothing signals that later point, so poll for it with a
 * short backoff, bounded at ~0.1 s.  Only joins pay for this, never tasks.
 */
static void wait_until_gone_from_os(long tid)
{
#if defined(__linux__)
    char path[48];
    snprintf(path, sizeof(path), "/proc/self/task/%ld", tid);
    long pause_ns = 1000;
    long waited_ns = 0;
    while (tid > 0 && access(path, F_OK) == 0 && waited_ns < 100000000) {
        struct timespec ts = {0, pause_ns};
        nanosleep(&ts, NULL);
        waited_ns += pause_ns;
        if (pause_ns < 1000000) {
            pause_ns *= 2;
        }
    }
#else
    (void)tid;
#endif
}

/* Starts one more worker.  Called with mu held. */
static int spawn_worker(td_pool *p)
{
    if (p->spawned == p->workers_cap) {
        unsigned cap = p->workers_cap ? p->workers_cap * 2 : 4;
        worker **grown = td__malloc(cap * sizeof(*grown));
        if (grown == NULL) {
            return TD_ENOMEM;
        }
        if (p->spawned > 0) {
            memcpy(grown, p->workers, p->spawned * sizeof(*grown));
        }
        td__free(p->workers);
        p->workers = grown;
        p->workers_cap = cap;
    }
    worker *w = td__malloc(sizeof(*w));
    if (w == NULL) {
        return TD_ENOMEM;
    }
    memset(w, 0, sizeof(*w));
    w->pool = p;
    w->index = p->spawned;

    /* Workers block every asynchronous signal, so the kernel delivers
     * process-wide signals such as SIGINT to a thread that handles them
     * (Python's main thread), never to a worker in the middle of a task. */
    sigset_t all, old;
    sigfillset(&all);
    pthread_sigmask(SIG_SETMASK, &all, &old);
    int rc = pthread_create(&w->thread, NULL, worker_main, w);
    pthread_sigmask(SIG_SETMASK, &old, NULL);
    if (rc != 0) {
        td__free(w);
        return rc == ENOMEM ? TD_ENOMEM : TD_EAGAIN;
    }
    p->workers[p->spawned++] = w;
    p->alive++;
    atomic_store_explicit(&p->spawned_total,
                          atomic_load_explicit(&p->spawned_total,
                                               memory_order_relaxed) + 1,
                          memory_order_relaxed);
    return TD_OK;
}

/* Doubles the ring (or makes one after a drain), unwrapping it.  Called
 * with mu held. */
static int grow_ring(td_pool *p)
{
    size_t cap = p->ring_cap ? p->ring_cap * 2 : MIN_RING;
    task *grown = td__malloc(cap * sizeof(task));
    if (grown == NULL) {
        return TD_ENOMEM;
    }
    size_t first = p->ring_cap - p->ring_head;
    if (first > p->ring_count) {
        first = p->ring_count;
    }
    if (p->ring_count > 0) {
        memcpy(grown, p->ring + p->ring_head, first * sizeof(task));
        memcpy(grown + first, p->ring,
               (p->ring_count - first) * sizeof(task));
    }
    td__free(p->ring);
    p->ring = grown;
    p->ring_cap = cap;
    p->ring_head = 0;
    return TD_OK;
}

int td_pool_submit(td_pool *p, td_task_fn fn, void *arg)
{
    return td_pool_submit_tagged(p, fn, arg, 0);
}

int td_pool_submit_tagged(td_pool *p, td_task_fn fn, void *arg,
                          uint32_t tag)
{
    if (p == NULL || fn == NULL) {
        return TD_EINVAL;
    }
    /* Read the clock before taking the lock: no need to hold it longer. */
    uint64_t submit_ticks = p->timing ? td_ticks_now() : 0;
    int rc = TD_OK;
    pthread_mutex_lock(&p->mu);
    if (p->shutdown) {
        rc = TD_ESHUTDOWN;
        goto out;
    }
    if (p->ring_count == p->ring_cap) {
        rc = grow_ring(p);
        if (rc != TD_OK) {
            goto out;
        }
    }
    size_t tail = (p->ring_head + p->ring_count) & (p->ring_cap - 1);
    p->ring[tail] = (task){fn, arg, submit_ticks, tag};
    p->ring_count++;
    /* Only writer (under mu): a plain load and store, no locked add. */
    atomic_store_explicit(&p->nudges,
                          atomic_load_explicit(&p->nudges,
                                               memory_order_relaxed) + 1,
                          memory_order_release);

    if (p->idle_unclaimed > 0) {
        p->idle_unclaimed--;
        pthread_cond_signal(&p->work_cv);
    } else if (p->hooking_unclaimed > 0) {
        p->hooking_unclaimed--;   /* it looks at the ring next: no signal */
    } else if (p->alive < p->max_threads) {
        rc = spawn_worker(p);
        if (rc == TD_OK) {
            /* The new worker's task: the oldest queued (this one, unless
             * busy workers left older ones queued). */
            worker *w = p->workers[p->spawned - 1];
            take_task(p, w, &w->first);
            p->handed++;
        } else if (p->alive > 0) {
            /* The workers that exist will run the task; a pool that
             * merely could not grow still works, as the stdlib's does. */
            rc = TD_OK;
        } else if (rc != TD_OK) {
            p->ring_count--;   /* nobody could ever run it: take it back */
        }
    }
out:
    pthread_mutex_unlock(&p->mu);
    return rc;
}

int td_pool_wait(td_pool *p, int64_t timeout_ns)
{
    if (p == NULL) {
        return TD_EINVAL;
    }
    if (current_pool == p) {
        return TD_EDEADLK;
    }
    struct timespec deadline;
    if (timeout_ns > 0) {
        td__deadline_after(&deadline, timeout_ns);
    }
    int rc = TD_OK;
    pthread_mutex_lock(&p->mu);
    p->done_waiters++;
    while (!pool_is_done(p)) {
        if (timeout_ns == 0 ||
            cond_wait_until(&p->done_cv, p,
                            timeout_ns < 0 ? NULL : &deadline) == ETIMEDOUT) {
            if (!pool_is_done(p)) {
                rc = TD_ETIMEDOUT;
            }
            break;
        }
    }
    p->done_waiters--;
    pthread_mutex_unlock(&p->mu);
    return rc;
}

int td_pool_shutdown(td_pool *p)
{
    if (p == NULL) {
        return TD_EINVAL;
    }
    pthread_mutex_lock(&p->mu);
    p->shutdown = 1;
    atomic_fetch_add(&p->nudges, 1);
    pthread_cond_broadcast(&p->work_cv);
    pthread_mutex_unlock(&p->mu);
    return TD_OK;
}

size_t td_pool_drain(td_pool *p, td_task_visit_fn visit, void *ctx)
{
    if (p == NULL) {
        return 0;
    }
    /* Detach the whole ring under mu and give the pool an empty one (the
     * next submit allocates it again), so draining takes an exact snapshot,
     * needs no memory and cannot fail; visit then runs without mu, free to
     * call back into the pool. */
    pthread_mutex_lock(&p->mu);
    /* A worker draining from its own thread_start hook (it will not run
     * tasks) drains the task it was handed too, first: it is the oldest.
     * Tasks handed to other workers are theirs. */
    task mine = {0};
    if (current_pool == p && current_worker->first.fn != NULL) {
        mine = current_worker->first;
        current_worker->first.fn = NULL;
        p->handed--;
    }
    task *ring = p->ring;
    size_t cap = p->ring_cap, head = p->ring_head, n = p->ring_count;
    p->ring = NULL;
    p->ring_cap = 0;
    p->ring_head = 0;
    p->ring_count = 0;
    if (pool_is_done(p) && p->done_waiters) {
        pthread_cond_broadcast(&p->done_cv);
    }
    pthread_mutex_unlock(&p->mu);

    if (mine.fn != NULL && visit != NULL) {
        visit(ctx, mine.fn, mine.arg);
    }
    for (size_t i = 0; i < n && visit != NULL; i++) {
        task t = ring[(head + i) & (cap - 1)];
        visit(ctx, t.fn, t.arg);
    }
    td__free(ring);
    return n + (mine.fn != NULL);
}

int td_pool_join(td_pool *p, int64_t timeout_ns)
{
    if (p == NULL) {
        return TD_EINVAL;
    }
    struct timespec deadline;
    if (timeout_ns > 0) {
        td__deadline_after(&deadline, timeout_ns);
    }
    pthread_mutex_lock(&p->mu);
    if (!p->shutdown) {
        pthread_mutex_unlock(&p->mu);
        return TD_EINVAL;
    }
    if (current_pool == p) {
        /* A worker cannot join itself, and waiting for the others could
         * wait for a worker that is waiting for us. */
        pthread_mutex_unlock(&p->mu);
        return TD_EDEADLK;
    }
    int rc = TD_OK;
    p->done_waiters++;
    for (;;) {
        if (p->alive == 0) {
            /* Claim the exited threads under mu, join them without it. */
            p->joins_active++;
            for (unsigned i = 0; i < p->spawned; i++) {
                worker *w = p->workers[i];
                if (w->exited && !w->reaped) {
                    w->reaped = 1;
                    pthread_mutex_unlock(&p->mu);
                    pthread_join(w->thread, NULL);
                    if (timeout_ns != 0) {
                        wait_until_gone_from_os(w->tid);
                    }
                    pthread_mutex_lock(&p->mu);
                }
            }
            p->joins_active--;
            if (p->joins_active == 0) {
                pthread_cond_broadcast(&p->done_cv);
                break;
            }
            /* Another joiner still reaps threads it claimed; "joined"
             * must mean gone for our caller too, so wait for it. */
        }
        if (timeout_ns == 0 ||
            cond_wait_until(&p->done_cv, p,
                            timeout_ns < 0 ? NULL : &deadline) == ETIMEDOUT) {
            if (p->alive > 0 || p->joins_active > 0) {
                rc = TD_ETIMEDOUT;
                break;
            }
        }
    }
    p->done_waiters--;
    pthread_mutex_unlock(&p->mu);
    return rc;
}

int td_pool_destroy(td_pool *p)
{
    if (p == NULL) {
        return TD_OK;
    }
    if (current_pool == p) {
        return TD_EDEADLK;
    }
    td_pool_shutdown(p);
    td_pool_join(p, -1);
    td_atfork_unregister(&p->fork_entry);
    for (unsigned i = 0; i < p->spawned; i++) {
        td__free(p->workers[i]);
    }
    td__free(p->workers);
    td__free(p->ring);
    td_timeline_destroy(&p->timeline);
    pthread_cond_destroy(&p->done_cv);
    pthread_cond_destroy(&p->work_cv);
    pthread_mutex_destroy(&p->mu);
    td__free(p);
    return TD_OK;
}

int td_pool_timeline(td_pool *p, td_task_record *out, size_t max,
                     size_t *count, uint64_t *dropped)
{
    if (p == NULL || count == NULL || dropped == NULL ||
        (out == NULL && max > 0)) {
        return TD_EINVAL;
    }
    pthread_mutex_lock(&p->mu);
    *count = td_timeline_copy(&p->timeline, out, max);
    *dropped = p->timeline.dropped;
    pthread_mutex_unlock(&p->mu);
    if (*count == 0) {
        return TD_OK;   /* nothing to convert: skip the clock reads */
    }
    /* Convert outside the lock, with a map made after the copy, so that
     * every stamp converted was read before the map's fresh pair. */
    td_ticks_map m;
    td_ticks_map_init(&m);
    for (size_t i = 0; i < *count; i++) {
        out[i].submit_ns = td_ticks_to_ns(&m, out[i].submit_ns);
        out[i].start_ns = td_ticks_to_ns(&m, out[i].start_ns);
        out[i].end_ns = td_ticks_to_ns(&m, out[i].end_ns);
    }
    return TD_OK;
}

int td_pool_timeline_add_run(td_pool *p, uint64_t submit, uint64_t start,
                             uint64_t end, unsigned items, uint32_t tag)
{
    if (p == NULL || items == 0 || current_pool != p) {
        return TD_EINVAL;
    }
    if (!p->timing) {
        return TD_OK;
    }
    uint64_t s = start > submit ? start : submit;
    td_task_record r = {submit, s, end > s ? end : s, current_index, tag,
                        items};
    pthread_mutex_lock(&p->mu);
    td_timeline_push(&p->timeline, &r);
    pthread_mutex_unlock(&p->mu);
    return TD_OK;
}

unsigned td_pool_spawned(td_pool *p)
{
    return atomic_load_explicit(&p->spawned_total, memory_order_relaxed);
}

int td_pool_is_worker(const td_pool *p)
{
    return p != NULL && current_pool == p;
}

void td_pool_get_stats(td_pool *p, td_pool_stats *out)
{
    if (p == NULL || out == NULL) {
        return;
    }
    pthread_mutex_lock(&p->mu);
    out->threads = p->alive;
    out->idle = p->idle;
    out->running = p->running;
    out->queued = p->ring_count + p->handed;
    out->spawned = p->spawned;
    pthread_mutex_unlock(&p->mu);
}

void td_pool_after_fork_child(td_pool *p, td_task_visit_fn visit, void *ctx)
{
    /* pool_fork_child already made the pool usable; what is left is to
     * report the work that was lost with the parent's threads: first the
     * tasks handed to workers that had not begun them (they were the
     * oldest), then the queue, then the task each vanished worker was
     * running. */
    pthread_mutex_lock(&p->mu);
    for (unsigned i = 0; i < p->spawned; i++) {
        worker *w = p->workers[i];
        task t = w->first;
        w->first.fn = NULL;
        if (w->lost && t.fn != NULL && visit != NULL) {
            pthread_mutex_unlock(&p->mu);
            visit(ctx, t.fn, t.arg);
            pthread_mutex_lock(&p->mu);
        }
    }
    pthread_mutex_unlock(&p->mu);
    td_pool_drain(p, visit, ctx);
    pthread_mutex_lock(&p->mu);
    unsigned kept = 0;
    for (unsigned i = 0; i < p->spawned; i++) {
        worker *w = p->workers[i];
        if (!w->lost) {
            p->workers[kept++] = w;
            continue;
        }
        task t = w->current;
        td__free(w);
        if (t.fn != NULL && visit != NULL) {
            pthread_mutex_unlock(&p->mu);
            visit(ctx, t.fn, t.arg);
            pthread_mutex_lock(&p->mu);
        }
    }
    p->spawned = kept;
    pthread_mutex_unlock(&p->mu);
}
