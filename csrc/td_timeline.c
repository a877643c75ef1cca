/*
 * td_timeline.c - the ring of task records behind pool timelines.
 *
 * A ring of fixed capacity keeps memory bounded however many tasks run:
 * the newest records are the interesting ones for a chart, so the oldest
 * are overwritten, and the count of those lost is kept so a reader knows
 * the picture is partial.
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
    if (tl->count == tl->capacity) {
        tl->ring[tl->head] = *r;   /* the oldest slot becomes the newest */
        tl->head = (tl->head + 1) % tl->capacity;
        tl->dropped++;
        return;
    }
    tl->ring[(tl->head + tl->count) % tl->capacity] = *r;
    tl->count++;
}

void td_timeline_push_many(td_timeline *tl, const td_task_record *r,
                           size_t n)
{
    size_t cap = tl->capacity;
    if (cap == 0 || n == 0) {
        return;
    }
    if (n >= cap) {
        /* Only the newest cap records survive: they fill the ring. */
        tl->dropped += tl->count + (n - cap);
        memcpy(tl->ring, r + (n - cap), cap * sizeof(*r));
        tl->head = 0;
        tl->count = cap;
        return;
    }
    size_t tail = (tl->head + tl->count) % cap;
    size_t first = cap - tail < n ? cap - tail : n;
    memcpy(tl->ring + tail, r, first * sizeof(*r));
    memcpy(tl->ring, r + first, (n - first) * sizeof(*r));
    if (tl->count + n > cap) {
        /* The new records overwrote the oldest ones. */
        size_t over = tl->count + n - cap;
        tl->dropped += over;
        tl->head = (tl->head + over) % cap;
        tl->count = cap;
    } else {
        tl->count += n;
    }
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
