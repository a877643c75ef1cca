/*
 * td_pool.h - a pthread pool with lazily spawned workers and a FIFO queue.
 *
 * Ownership: the pool owns its queue storage and its threads; the caller
 * owns every task argument (the pool only passes `arg` back to `fn`, or to a
 * drain callback).  After td_pool_destroy() the handle is dead.
 *
 * Threading: every function may be called from any thread, including from a
 * task running on the pool, unless its comment says otherwise.  Hooks and
 * tasks never run with the pool's lock held.
 */
#ifndef TD_POOL_H
#define TD_POOL_H

#include <stddef.h>
#include <stdint.h>

#include "td_common.h"
#include "td_ticks.h"
#include "td_timeline.h"

typedef struct td_pool td_pool;   /* defined only in td_pool.c */

typedef void (*td_task_fn)(void *arg);

/* Called once per removed task by td_pool_drain() and after fork. */
typedef void (*td_task_visit_fn)(void *ctx, td_task_fn fn, void *arg);

/*
 * Optional per-worker callbacks, all run on the worker thread without the
 * pool lock.  The Python binding uses them to give each worker a Python
 * thread state, and to hold the GIL across consecutive tasks: it takes the
 * GIL in the first task and gives it back in thread_idle.
 */
typedef struct td_pool_hooks {
    void *ctx;
    /* First thing a worker runs; index counts workers in spawn order from
     * 0.  Returning anything but TD_OK makes the worker exit at once
     * (thread_exit still runs).  Tasks queued then stay queued, and the
     * task this worker was handed (see td_pool_submit) goes back to the
     * head of the queue; if no worker is left to run them, the hook should
     * td_pool_drain() them (td_pool_wait would wait for them,
     * td_pool_destroy drops them); a drain from this hook takes the
     * handed task too. */
    int (*thread_start)(void *ctx, unsigned index);
    /* Run when the worker found the queue empty, before it spins for more
     * work and then sleeps. */
    void (*thread_idle)(void *ctx);
    /* Last thing a worker runs. */
    void (*thread_exit)(void *ctx);
} td_pool_hooks;

typedef struct td_pool_config {
    unsigned max_threads;      /* at least 1; threads start only on demand */
    const char *name_prefix;   /* OS thread name "{prefix}_{index}"; NULL
                                  means "td".  Copied at create.  Past the
                                  OS limit (15 bytes) the prefix is cut,
                                  at a UTF-8 character boundary, so that
                                  "_{index}" survives and names differ */
    const td_pool_hooks *hooks;   /* NULL for none; copied at create */
    size_t timeline_capacity;  /* task records kept (newest win); 0: off */
} td_pool_config;

typedef struct td_pool_stats {
    unsigned threads;   /* workers started and not yet exited */
    unsigned idle;      /* workers asleep waiting for work */
    unsigned running;   /* tasks being run right now */
    size_t queued;      /* tasks not begun: queued, or handed to a
                           worker that has not started them yet */
    unsigned spawned;   /* workers ever started */
} td_pool_stats;

/*
 * Creates a pool; on success *out owns it.  No thread starts until the
 * first submit.  Returns TD_OK, TD_EINVAL (out or cfg NULL, max_threads 0)
 * or TD_ENOMEM.
 */
int td_pool_create(td_pool **out, const td_pool_config *cfg);

/*
 * Queues fn(arg) at the tail; with a timeline, stamps the time.  If no
 * worker is asleep and fewer than max_threads are running, starts one
 * more, and hands it the oldest queued task: that task is the new
 * worker's from then on, and td_pool_drain (a cancel) no longer takes it,
 * as the stdlib's pool cancels no task that a thread it started for it is
 * about to take.  Returns TD_OK, TD_EINVAL (fn
 * NULL), TD_ESHUTDOWN (after td_pool_shutdown), TD_ENOMEM (queue growth
 * failed) or TD_EAGAIN (no worker exists and none could be started); on any
 * error the task was not queued.  Never blocks on tasks.
 */
int td_pool_submit(td_pool *p, td_task_fn fn, void *arg);

/*
 * td_pool_submit with a tag, a number the caller chooses to label the task
 * in the timeline (td_pool_submit uses 0).  TD_POOL_TAG_UNRECORDED keeps
 * the task itself out of the timeline: for a task that runs several units
 * of work and records them itself (td_pool_timeline_add_run).
 */
int td_pool_submit_tagged(td_pool *p, td_task_fn fn, void *arg,
                          uint32_t tag);

#define TD_POOL_TAG_UNRECORDED UINT32_MAX

/*
 * Runs.  A timeline record costs a clock read (a TSC read, ~10 ns) and a
 * ring write, which is measurable against a task of a few hundred ns, and
 * dominant against a map() item of 60 ns.  So a worker that runs short
 * tasks of one tag back to back records them in runs: one record for up
 * to TD_RUN_MAX of them, with their count in `items` (td_timeline.h), and
 * one clock read per record.  How many tasks the next record may take (the
 * stride) adapts: it starts at 1, doubles after a record whose tasks took
 * under td_ticks_short() (about a microsecond) each on average, and falls
 * back to 1 after any other record, when the tag changes and when the
 * worker goes idle.  So a
 * task that runs alone, or among tasks of a microsecond or more, gets a
 * record of its own; only a stream of sub-microsecond tasks shares records
 * (and a long task that follows such a stream directly may share the
 * stream's last record).
 */
#define TD_RUN_MAX 64u

/* The stride after a record of `items` units that took `ticks`. */
static inline unsigned td_run_next_stride(unsigned stride, uint64_t ticks,
                                          unsigned items)
{
    if (ticks >= (uint64_t)items * td_ticks_short()) {
        return 1;
    }
    return stride >= TD_RUN_MAX / 2 ? TD_RUN_MAX : stride * 2;
}

/*
 * A timestamp in the units pool timelines keep internally (ticks, see
 * td_ticks.h), for td_pool_timeline_add_run.  Inline and lock-free.
 */
static inline uint64_t td_pool_stamp(void)
{
    return td_ticks_now();
}

/*
 * From a task running on one of p's workers: records a run of `items`
 * units of work that the task ran itself, back to back, all queued at
 * `submit` and labelled `tag`, the first started at `start` and the last
 * ended at `end` (td_pool_stamp() values).  One record, on the calling
 * worker, with submit <= start <= end (stamps read on two CPUs may
 * disagree by a few ticks; the pool evens them out).  A task that runs
 * many units chooses how many share a record with td_run_next_stride, as
 * the workers do for tasks.  Returns TD_OK (also when p keeps no timeline:
 * nothing is recorded), or TD_EINVAL for NULL p, items 0, or when not
 * called from one of p's workers.
 */
int td_pool_timeline_add_run(td_pool *p, uint64_t submit, uint64_t start,
                             uint64_t end, unsigned items, uint32_t tag);

/*
 * Copies the timeline, oldest first: at most max records into out, their
 * number into *count, and into *dropped how many tasks (items) the older
 * records that the ring lost stood for.  Times come out as CLOCK_MONOTONIC nanoseconds, comparable with
 * td_clock_now_ns() (the pool stamps in ticks and converts them here; see
 * td_ticks.c for the accuracy), with submit_ns <= start_ns <= end_ns.
 * Returns TD_OK, or TD_EINVAL for NULL arguments.  A timeline of capacity
 * 0 is always empty.
 */
int td_pool_timeline(td_pool *p, td_task_record *out, size_t max,
                     size_t *count, uint64_t *dropped);

/*
 * Blocks until the queue is empty and no task is running, or until
 * timeout_ns passes (< 0: no limit; 0: just test).  Returns TD_OK,
 * TD_ETIMEDOUT, or TD_EDEADLK when called from one of p's workers (which
 * would wait for itself).
 */
int td_pool_wait(td_pool *p, int64_t timeout_ns);

/*
 * Stops accepting tasks and wakes every worker.  Queued tasks still run;
 * each worker exits once the queue is empty.  Idempotent; returns TD_OK.
 */
int td_pool_shutdown(td_pool *p);

/*
 * Removes every queued task at once (a snapshot: no worker can take one
 * after this starts), then calls visit(ctx, fn, arg) for each, in queue
 * order, without the lock, so visit may submit.  visit NULL just drops them.
 * Never allocates, so it cannot fail.  Returns how many were removed.
 * Used to cancel pending work; tasks already running are not affected,
 * nor are tasks handed to a worker at its start (td_pool_submit), except
 * the calling worker's own when called from its thread_start hook.
 */
size_t td_pool_drain(td_pool *p, td_task_visit_fn visit, void *ctx);

/*
 * After td_pool_shutdown: waits for every worker to exit and joins its
 * thread, so it is gone from the OS (and from td_thread_count) when this
 * returns TD_OK; with timeout_ns 0 it only joins workers that have already
 * exited and never sleeps (the OS may list them a moment longer).
 * timeout_ns otherwise as in td_pool_wait.  Returns TD_EDEADLK at once
 * when called from one of p's own workers (a thread cannot join itself),
 * TD_EINVAL if the pool was not shut down.
 */
int td_pool_join(td_pool *p, int64_t timeout_ns);

/*
 * Shuts the pool down, joins all workers (waiting for queued tasks to run;
 * tasks left with no worker at all are dropped unvisited) and frees it.  NULL is a no-op.  Must not be called from one of p's own
 * workers: it returns TD_EDEADLK then and frees nothing.
 */
int td_pool_destroy(td_pool *p);

/* How many workers p has ever started (stats.spawned, without the lock:
 * one relaxed atomic load, cheap enough to check after every submit). */
unsigned td_pool_spawned(td_pool *p);

/* Non-zero when the calling thread is one of p's workers. */
int td_pool_is_worker(const td_pool *p);

/* A consistent snapshot of the counters. */
void td_pool_get_stats(td_pool *p, td_pool_stats *out);

/*
 * fork() is safe without help: the pool's lock is taken around fork()
 * (td_atfork.h).  In the child the workers do not exist: the pool is shut
 * down, with no workers (but the one that forked, if a task of this pool
 * called fork: it finishes its task).  Call this in the child to report
 * the work lost with the parent's threads: every task that was queued (in
 * order), then every task that was running, through visit (NULL drops
 * them), so the caller can fail it.  Later calls report nothing.  The
 * child may then destroy the pool.
 */
void td_pool_after_fork_child(td_pool *p, td_task_visit_fn visit, void *ctx);

#endif /* TD_POOL_H */
