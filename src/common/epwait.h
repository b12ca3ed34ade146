/*
 * epwait.h - epoll waits with nanosecond timeouts that still work where epoll_pwait2 does not.
 *
 * ferry's sleeps are deadline-driven (SNDTIMEO/RCVTIMEO, heartbeats, reconnect backoff, the tail
 * flush tick) and want sub-millisecond precision, which only epoll_pwait2 (Linux 5.11) gives.
 * Older kernels and valgrind answer ENOSYS; a caller that just retried would spin a core forever.
 * fy_epoll_wait remembers the ENOSYS once and from then on uses epoll_wait with the timeout rounded
 * UP to whole milliseconds (waking a little late is harmless, waking early would busy-loop).
 */
#ifndef FERRY_COMMON_EPWAIT_H
#define FERRY_COMMON_EPWAIT_H

#include <stdint.h>
#include <sys/epoll.h>

/* Waits up to timeout_ns (UINT64_MAX = no timeout) on epfd. Returns what epoll_wait returns:
 * the number of events, or -1 with errno set (EINTR, ...). */
int fy_epoll_wait(int epfd, struct epoll_event *evs, int max, uint64_t timeout_ns);

/* Milliseconds for epoll_wait: rounded up, UINT64_MAX -> -1 (infinite), capped at INT_MAX. */
int fy_epoll_timeout_ms(uint64_t timeout_ns);

#endif
