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
 * Per-pipe state lives in bit 0 of fy_pipe.pattern_u64 (FY_DIST_ACTIVE):
 * patterns using this helper must leave that bit alone.
 */
#ifndef FY_PATTERN_DIST_H
#define FY_PATTERN_DIST_H

#include "pattern/pattern.h"

#include <stdbool.h>

#define FY_DIST_ACTIVE 0x1u

typedef bool fy_dist_want_fn(void *ctx, fy_pipe *p, const fy_msg *first);

typedef struct fy_dist {
    bool in_msg; /* a message's first frame went out and its last has not yet */
} fy_dist;

/*
 * Sends one frame of a message to the pipes of l. On the first frame of a
 * message want(ctx, p, m) selects pipes (NULL want = all). Always consumes m
 * (returns 0): nothing blocks a fan-out.
 */
int fy_dist_send(fy_dist *d, fy_socket *s, fy_pipelist *l, fy_msg *m, fy_dist_want_fn *want,
                 void *ctx);

#endif
