/*
 * td_threads.h - counts the OS threads of the calling process.
 */
#ifndef TD_THREADS_H
#define TD_THREADS_H

#include "td_common.h"

/*
 * Stores the number of threads of this process in *out.  Linux reads
 * /proc/self/task, macOS asks task_threads().  Returns TD_OK, TD_EINVAL
 * (out NULL), TD_ENOSYS on other systems, or TD_EAGAIN if the OS query
 * failed.
 */
int td_thread_count(unsigned *out);

#endif /* TD_THREADS_H */
