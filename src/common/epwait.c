/*
 * epwait.c - epoll waits with nanosecond timeouts and a millisecond fallback (see epwait.h).
 */
#include "common/epwait.h"

#include <errno.h>
#include <limits.h>
#include <stdatomic.h>
#include <time.h>

/* Set once epoll_pwait2 answered ENOSYS; every later wait uses epoll_wait. */
static _Atomic int no_pwait2;

int fy_epoll_timeout_ms(uint64_t timeout_ns)
{
    if (timeout_ns == UINT64_MAX)
        return -1;
    uint64_t ms = timeout_ns / 1000000u + (timeout_ns % 1000000u != 0);
    return ms > (uint64_t)INT_MAX ? INT_MAX : (int)ms;
}

int fy_epoll_wait(int epfd, struct epoll_event *evs, int max, uint64_t timeout_ns)
{
    if (!atomic_load_explicit(&no_pwait2, memory_order_relaxed)) {
        struct timespec ts, *tsp = NULL;
        if (timeout_ns != UINT64_MAX) {
            ts.tv_sec = (time_t)(timeout_ns / 1000000000u);
            ts.tv_nsec = (long)(timeout_ns % 1000000000u);
            tsp = &ts;
        }
        int n = epoll_pwait2(epfd, evs, max, tsp, NULL);
        if (n >= 0 || errno != ENOSYS)
            return n;
        atomic_store_explicit(&no_pwait2, 1, memory_order_relaxed);
    }
    return epoll_wait(epfd, evs, max, fy_epoll_timeout_ms(timeout_ns));
}
