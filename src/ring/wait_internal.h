/*
 * wait_internal.h - the asymmetric-barrier side of ferry waiting, shared by wait.c and spsc.c.
 *
 * A waker must order "publish the index" before "look at the sleeper count" (Dekker). Doing that
 * with a full fence on every publish costs a locked instruction per record. Instead, a process
 * that publishes registers once for MEMBARRIER_CMD_GLOBAL_EXPEDITED, and a sleeper, just before
 * its last re-check, issues that membarrier: the kernel then forces a full barrier on every CPU
 * running a registered process, which is the fence the waker skipped. Sleeping is rare and slow
 * anyway; publishing is the hot path.
 */
#ifndef FERRY_RING_WAIT_INTERNAL_H
#define FERRY_RING_WAIT_INTERNAL_H

#include <stdbool.h>
#include <stdint.h>

/*
 * ferry_waitword.sleepers: the number of announced sleepers in the low 30 bits, and two flags
 * (wait.c explains them). The word is shared with the peer, so every reader treats any value
 * as possible; 0 always means "nobody sleeps", which keeps the wakers' inline check one load.
 */
#define FY_WAIT_COUNT 0x3fffffffu
#define FY_WAIT_FUTEX 0x40000000u /* a sleeper waits in FUTEX_WAIT on seq */
#define FY_WAIT_WOKEN 0x80000000u /* the current sleepers were woken; later publishes skip it */

/*
 * Registers this process (once; again in every fork child) to receive global expedited memory
 * barriers. Returns true when registered, i.e. this process's wakers may publish with a release
 * store and a compiler barrier; false means they must use a full fence.
 */
bool fy_wait_asym_register(void);

/*
 * One pause of a busy-poll that has been looking for spun_ns: a CPU pause for the first
 * FY_WAIT_SPIN_PURE_NS (a reply that comes quickly is seen within nanoseconds), then
 * sched_yield, so that a poller sharing its CPU with runnable processes (its producer, or other
 * consumers with data waiting) hands the CPU over instead of burning the rest of its window.
 * Alone on its CPU, sched_yield returns at once and the poll goes on.
 */
#define FY_WAIT_SPIN_PURE_NS 5000u
void fy_wait_spin_pause(uint64_t spun_ns);

#endif
