/*
 * dist.h - fan-out of one message to many pipes (PUB, XPUB, and XSUB's upstream
 * messages).
 *
 * The first frame decides which pipes take the message (a caller predicate:
 * subscription match, or everyone); those pipes then get every later frame of
 * it, so a message is never split or interleaved. A pipe at SNDHWM on the first
 * frame is skipped for the whole message and the drop is counted (libzmq PUB
 * semantics: never block, never stall the other subscribers). Bodies are shared
 * by reference (fy_msg_copy), not copied per peer.
 *
 * A pipe that took a message's first frame gets the whole message: a pipe never
 * refuses a later frame for SNDHWM (pipe.h), but it may for lack of memory
 * (FERRY_ENOMEM, the message staying open on it). Skipping such a pipe for the
 * rest of the message would splice its next message onto the frames it already
 * has, so the pipe is *owed* the rest instead: the refused frame and every later
 * one of that message are queued here (references, not copies) and retried,
 * first thing, on each later fy_dist_send and fy_dist_flush, never blocking. A
 * pipe that still owes frames misses every message that starts meanwhile
 * (counted as a drop, like SNDHWM). Only when even that queue cannot grow, or the
 * pipe can never take the frame (FERRY_EMSGSIZE: larger than an shm link's
 * limit), is the pipe dropped (fy_socket_drop_pipe): its peer then sees a link
 * cut in the middle of a message, never a message with another's frames in it.
 *
 * Per-pipe state lives in bits 0 and 2 of fy_pipe.pattern_u64 (FY_DIST_ACTIVE,
 * FY_DIST_OWES): patterns using this helper must leave those bits alone, must
 * send nothing else on a pipe that owes (fy_dist_owes), and must call
 * fy_dist_detach and fy_dist_fini.
 */
#ifndef FY_PATTERN_DIST_H
#define FY_PATTERN_DIST_H

#include "pattern/msgq.h"
#include "pattern/pattern.h"

#include <stdbool.h>

#define FY_DIST_ACTIVE 0x1u /* takes the frames of the message being sent */
#define FY_DIST_OWES   0x4u /* has frames queued in fy_dist.owed (bit 1 is subside.c's) */

typedef bool fy_dist_want_fn(void *ctx, fy_pipe *p, const fy_msg *first);

/* The rest of a message a pipe refused part of, in order. */
typedef struct fy_dist_owed {
    fy_pipe *p;
    fy_msgq q;
} fy_dist_owed;

typedef struct fy_dist {
    bool in_msg; /* a message's first frame went out and its last has not yet */
    fy_dist_owed *owed;
    uint32_t owed_n, owed_cap;
} fy_dist;

/* Releases the owed frames (zeroed storage is a valid fy_dist). */
void fy_dist_fini(fy_dist *d);
/* p is going away: forget what it is owed. */
void fy_dist_detach(fy_dist *d, fy_pipe *p);
void fy_dist_flush_owed_(fy_dist *d);
/* Retries every owed frame now (never blocks). A pattern calls it when the application polls,
 * so a publisher that stops sending still completes what it owes. Inline: with nothing owed (the
 * rule) it is one compare, on every send and poll. */
static inline void fy_dist_flush(fy_dist *d)
{
    if (__builtin_expect(d->owed_n != 0, 0))
        fy_dist_flush_owed_(d);
}

/* p is owed the rest of a message: nothing else may be sent on it before that. */
static inline bool fy_dist_owes(const fy_pipe *p)
{
    return (p->pattern_u64 & FY_DIST_OWES) != 0;
}

/*
 * Sends one frame of a message to the pipes of l, after retrying what is owed. On
 * the first frame of a message want(ctx, p, m) selects pipes (NULL want = all).
 * Always consumes m (returns 0): nothing blocks a fan-out.
 */
int fy_dist_send(fy_dist *d, fy_socket *s, fy_pipelist *l, fy_msg *m, fy_dist_want_fn *want,
                 void *ctx);

#endif
