/*
 * td_threads.c - how many OS threads this process has right now.
 *
 * Linux lists one directory per thread in /proc/self/task; macOS reports
 * them through the Mach task_threads() call.  The count is a snapshot: it is
 * exact at the moment of the call, and threads may come and go right after.
 */
#include "td_threads.h"

#if defined(__linux__)
#include <dirent.h>
#elif defined(__APPLE__)
#include <mach/mach.h>
#endif

int td_thread_count(unsigned *out)
{
    if (out == NULL) {
        return TD_EINVAL;
    }
#if defined(__linux__)
    DIR *dir = opendir("/proc/self/task");
    if (dir == NULL) {
        return TD_EAGAIN;
    }
    unsigned n = 0;
    struct dirent *entry;
    while ((entry = readdir(dir)) != NULL) {
        if (entry->d_name[0] != '.') {   /* skip "." and ".." */
            n++;
        }
    }
    closedir(dir);
    *out = n;
    return TD_OK;
#elif defined(__APPLE__)
    thread_act_array_t threads;
    mach_msg_type_number_t n = 0;
    if (task_threads(mach_task_self(), &threads, &n) != KERN_SUCCESS) {
        return TD_EAGAIN;
    }
    /* task_threads hands us a send right per thread and the array itself;
     * both must be given back or every call leaks. */
    for (mach_msg_type_number_t i = 0; i < n; i++) {
        mach_port_deallocate(mach_task_self(), threads[i]);
    }
    vm_deallocate(mach_task_self(), (vm_address_t)threads,
                  n * sizeof(*threads));
    *out = (unsigned)n;
    return TD_OK;
#else
    *out = 0;
    return TD_ENOSYS;
#endif
}
