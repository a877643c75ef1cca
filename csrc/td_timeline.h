/*
 * td_timeline.h - a bounded record of what ran when: td_task_records of
 * finished tasks, kept in a ring that drops the oldest records when full
 * and counts the tasks they stood for.
 *
 * Not synchronised: the pool keeps one and guards it with its own mutex.
 * Ownership: the caller owns the td_timeline storage; init allocates the
 * ring, destroy frees it.
 */
#ifndef TD_TIMELINE_H
#define TD_TIMELINE_H

#include <stddef.h>
#include <stdint.h>

#include "td_common.h"

/*
 * The times are CLOCK_MONOTONIC nanoseconds (td_clock_now_ns's clock) in
 * what td_pool_timeline hands out.  Inside a pool's ring they are still
 * td_ticks_now() ticks, which are cheaper to take; td_pool_timeline
 * converts them as it copies them out (td_ticks.h).  td_timeline itself
 * only stores and copies them, whatever they are.
 */
/*
 * A record is usually one task.  It stands for `items` tasks when a worker
 * ran that many short ones of one tag back to back and recorded them
 * together (td_pool.h, "Runs"): then submit_ns is the first one's, start_ns
 * when the first began and end_ns when the last returned.
 */
typedef struct td_task_record {
    uint64_t submit_ns;   /* when it (the first of them) was queued */
    uint64_t start_ns;    /* when a worker began running it */
    uint64_t end_ns;      /* when it (the last of them) returned */
    uint32_t worker;      /* index of the worker that ran it */
    uint32_t tag;         /* the submitter's label for it */
    uint32_t items;       /* tasks it stands for, >= 1 */
} td_task_record;

typedef struct td_timeline {
    td_task_record *ring;
    size_t capacity;   /* 0: recording is off */
    size_t head;       /* oldest record */
    size_t count;
    uint64_t dropped;  /* tasks (items) of the records overwritten because
                          the ring was full */
} td_timeline;

/* Sets up an empty timeline of `capacity` records (0 turns recording off
 * and allocates nothing).  Returns TD_OK or TD_ENOMEM. */
int td_timeline_init(td_timeline *tl, size_t capacity);
void td_timeline_destroy(td_timeline *tl);

/* Appends a record, overwriting the oldest one when full (its items count
 * as dropped). */
void td_timeline_push(td_timeline *tl, const td_task_record *r);

/* Copies up to max records, oldest first, into out; returns how many. */
size_t td_timeline_copy(const td_timeline *tl, td_task_record *out,
                        size_t max);

#endif /* TD_TIMELINE_H */
