/*
 * msgq.h - a FIFO of frames owned by a pattern (XPUB's subscription notices and
 * upstream messages waiting for the application).
 *
 * A growable ring of fy_msg: frames are moved in and out (no copies of bodies),
 * and after the ring has grown to the working size pushes no longer allocate.
 * It counts complete messages (frames without FY_MSG_MORE) so a pattern can
 * apply RCVHWM in messages, as libzmq does.
 */
#ifndef FY_PATTERN_MSGQ_H
#define FY_PATTERN_MSGQ_H

#include "core/msg.h"

#include <stdbool.h>
#include <stddef.h>

typedef struct fy_msgq {
    fy_msg *v;
    size_t cap; /* 0 or a power of two */
    size_t head, count;
    size_t msgs;    /* complete messages (a trailing partial message is not counted) */
    bool taken_mid; /* the last frame taken out (pop, advance) had FY_MSG_MORE */
} fy_msgq;

/* Zeroed storage is an empty queue; fini releases every frame and the array.
 * Accepts NULL. */
void fy_msgq_fini(fy_msgq *q);
/* Moves m's content to the tail (m is left empty). FERRY_ENOMEM leaves m
 * untouched. */
int fy_msgq_push(fy_msgq *q, fy_msg *m);
/* Like fy_msgq_push for a whole one-frame message (m without FY_MSG_MORE), but placed in front
 * of a message still being appended at the tail (trailing frames with FY_MSG_MORE), so it never
 * lands between that message's frames. When the consumer is already inside that message
 * (fy_msgq_inside_open) there is no such place: the caller must hold m until the message ends.
 * FERRY_ENOMEM leaves m untouched. */
int fy_msgq_push_before_open(fy_msgq *q, fy_msg *m);
/* Moves the head frame into m (old content released). Returns 0 or FERRY_EAGAIN
 * when empty. */
int fy_msgq_pop(fy_msgq *q, fy_msg *m);
/* Whether the last queued frame has FY_MSG_MORE (a message is still being
 * appended). */
bool fy_msgq_tail_more(const fy_msgq *q);
/* Ends the message at the tail, whose sender vanished: clears FY_MSG_MORE on the last queued
 * frame, or, with nothing of it left in the queue, stops counting the consumer as inside it. */
void fy_msgq_end_tail(fy_msgq *q);

/* The head frame, left in place (NULL when empty): to hand it on with a call that moves its
 * content only on success, then fy_msgq_advance. */
static inline fy_msg *fy_msgq_peek(fy_msgq *q)
{
    return q->count ? &q->v[q->head] : NULL;
}
/* Drops the head slot whose content was moved out; was_last: it was a message's last frame (its
 * flags are gone with the move, so the caller says). */
void fy_msgq_advance(fy_msgq *q, bool was_last);

static inline bool fy_msgq_empty(const fy_msgq *q)
{
    return q->count == 0;
}

/* Whether the consumer is inside the message at the tail: it has taken that message's first
 * frames, and every frame still queued (if any) belongs to it. Nothing can then be placed in
 * front of that message's remaining frames without becoming one of them. */
static inline bool fy_msgq_inside_open(const fy_msgq *q)
{
    return q->taken_mid && q->msgs == 0;
}

#endif
