/*
 * msgq.c - growable ring of frames (see msgq.h).
 */
#include "pattern/msgq.h"

#include "common/grow.h"

#include <stdlib.h>

void fy_msgq_fini(fy_msgq *q)
{
    if (!q)
        return;
    for (size_t i = 0; i < q->count; i++)
        fy_msg_fini(&q->v[(q->head + i) & (q->cap - 1)]);
    free(q->v);
    q->v = NULL;
    q->cap = q->head = q->count = q->msgs = 0;
    q->taken_mid = false;
}

static int msgq_grow(fy_msgq *q)
{
    size_t cap = fy_grow_cap(q->cap, q->count, 1, 16, SIZE_MAX, sizeof(fy_msg));
    fy_msg *v = cap ? malloc(cap * sizeof *v) : NULL;
    if (!v)
        return FERRY_ENOMEM;
    /* fy_msg bodies may be inline, so frames are moved (fy_msg_move), never
     * memcpy'd blindly. */
    for (size_t i = 0; i < q->count; i++) {
        fy_msg_init(&v[i]);
        fy_msg_move(&v[i], &q->v[(q->head + i) & (q->cap - 1)]);
    }
    free(q->v);
    q->v = v;
    q->cap = cap;
    q->head = 0;
    return 0;
}

int fy_msgq_push(fy_msgq *q, fy_msg *m)
{
    if (q->count == q->cap) {
        int rc = msgq_grow(q);
        if (rc < 0)
            return rc;
    }
    fy_msg *slot = &q->v[(q->head + q->count) & (q->cap - 1)];
    fy_msg_init(slot);
    fy_msg_move(slot, m);
    q->count++;
    if (!fy_msg_more(slot))
        q->msgs++;
    return 0;
}

int fy_msgq_push_before_open(fy_msgq *q, fy_msg *m)
{
    size_t open = 0; /* frames of the message still being appended */
    while (open < q->count && fy_msg_more(&q->v[(q->head + q->count - 1 - open) & (q->cap - 1)]))
        open++;
    int rc = fy_msgq_push(q, m);
    if (rc < 0 || open == 0)
        return rc;
    /* Rotate the new frame in front of the open message's frames (moves, never copies). */
    fy_msg t;
    fy_msg_init(&t);
    size_t at = q->head + q->count - 1;
    fy_msg_move(&t, &q->v[at & (q->cap - 1)]);
    for (size_t i = 0; i < open; i++, at--) {
        fy_msg *dst = &q->v[at & (q->cap - 1)];
        fy_msg_init(dst);
        fy_msg_move(dst, &q->v[(at - 1) & (q->cap - 1)]);
    }
    fy_msg *dst = &q->v[at & (q->cap - 1)];
    fy_msg_init(dst);
    fy_msg_move(dst, &t);
    return 0;
}

int fy_msgq_pop(fy_msgq *q, fy_msg *m)
{
    if (!q->count)
        return FERRY_EAGAIN;
    fy_msg *slot = &q->v[q->head];
    bool last = !fy_msg_more(slot);
    q->taken_mid = !last;
    fy_msg_move(m, slot);
    q->head = (q->head + 1) & (q->cap - 1);
    q->count--;
    if (last)
        q->msgs--;
    return 0;
}

void fy_msgq_advance(fy_msgq *q, bool was_last)
{
    if (!q->count)
        return;
    fy_msg_fini(&q->v[q->head]);
    q->head = (q->head + 1) & (q->cap - 1);
    q->count--;
    q->taken_mid = !was_last;
    if (was_last)
        q->msgs--;
}

bool fy_msgq_tail_more(const fy_msgq *q)
{
    return q->count && fy_msg_more(&q->v[(q->head + q->count - 1) & (q->cap - 1)]);
}

void fy_msgq_end_tail(fy_msgq *q)
{
    if (!fy_msgq_tail_more(q)) {
        /* Nothing of it queued: the consumer has taken every frame there was. No frame can end
         * it now; the next one queued starts a new message. */
        if (!q->count)
            q->taken_mid = false;
        return;
    }
    q->v[(q->head + q->count - 1) & (q->cap - 1)].flags &= ~FY_MSG_MORE;
    q->msgs++;
}
