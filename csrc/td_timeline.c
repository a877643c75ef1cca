/*
 * td_timeline.c - the ring of task records behind pool timelines.
 *
 * A ring of fixed capacity keeps memory bounded however many tasks run:
 * the newest records are the interesting ones for a chart, so the oldest
 * are overwritten, and the count of the tasks they stood for is kept so a
 * reader knows the picture is partial.
 */
#include "td_timeline.h"

#include <string.h>

int td_timeline_init(td_timeline *tl, size_t capacity)
{
    memset(tl, 0, sizeof(*tl));
    if (capacity == 0) {
        return TD_OK;
    }
    if (capacity > SIZE_MAX / sizeof(td_task_record)) {
        return TD_ENOMEM;
    }
    tl->ring = td__malloc(capacity * sizeof(td_task_record));
    if (tl->ring == NULL) {
        return TD_ENOMEM;
    }
    tl->capacity = capacity;
    return TD_OK;
}

void td_timeline_destroy(td_timeline *tl)
{
    td__free(tl->ring);
    memset(tl, 0, sizeof(*tl));
}

void td_timeline_push(td_timeline *tl, const td_task_record *r)
{
    if (tl->capacity == 0) {
        return;
    }
    /* Wrapping by comparison, not `%`: a division per task is measurable
     * when a task costs a few hundred ns and the capacity is any size. */
    size_t tail = tl->head + tl->count;
    if (tail >= tl->capacity) {
        tail -= tl->capacity;
    }
    if (tl->count == tl->capacity) {
        /* The oldest slot becomes the newest. */
        uint32_t lost = tl->ring[tl->head].items;
        tl->dropped += lost > 0 ? lost : 1;
        if (++tl->head == tl->capacity) {
            tl->head = 0;
        }
    } else {
        tl->count++;
    }
    tl->ring[tail] = *r;
}

size_t td_timeline_copy(const td_timeline *tl, td_task_record *out,
                        size_t max)
{
    size_t n = tl->count < max ? tl->count : max;
    for (size_t i = 0; i < n; i++) {
        out[i] = tl->ring[(tl->head + i) % tl->capacity];
    }
    return n;
}
