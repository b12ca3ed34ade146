/*
 * dist.c - fan-out with per-pipe HWM drops (see dist.h).
 */
#include "pattern/dist.h"

#include "common/grow.h"

#include <stdlib.h>
#include <string.h>

void fy_dist_fini(fy_dist *d)
{
    for (uint32_t i = 0; i < d->owed_n; i++)
        fy_msgq_fini(&d->owed[i].q);
    free(d->owed);
    d->owed = NULL;
    d->owed_n = d->owed_cap = 0;
}

/* Forgets entry i (its pipe completed what it owed, or is going away). */
static void dist_owed_rm(fy_dist *d, uint32_t i)
{
    fy_dist_owed *o = &d->owed[i];
    o->p->pattern_u64 &= ~(uint64_t)FY_DIST_OWES;
    fy_msgq_fini(&o->q);
    *o = d->owed[--d->owed_n];
}

/* p's entry, NULL when it owes nothing. */
static fy_dist_owed *dist_owed_find(fy_dist *d, const fy_pipe *p)
{
    if (fy_dist_owes(p))
        for (uint32_t i = 0; i < d->owed_n; i++)
            if (d->owed[i].p == p)
                return &d->owed[i];
    return NULL;
}

void fy_dist_detach(fy_dist *d, fy_pipe *p)
{
    fy_dist_owed *o = dist_owed_find(d, p);
    if (o)
        dist_owed_rm(d, (uint32_t)(o - d->owed));
}

/* p's queue, made on its first refusal. NULL: out of memory. */
static fy_dist_owed *dist_owed_get(fy_dist *d, fy_pipe *p)
{
    fy_dist_owed *o = dist_owed_find(d, p);
    if (o)
        return o;
    if (d->owed_n == d->owed_cap &&
        fy_grow32(&d->owed, sizeof *d->owed, &d->owed_cap, d->owed_n, 1, 4, UINT32_MAX) != 0)
        return NULL;
    o = &d->owed[d->owed_n++];
    o->p = p;
    memset(&o->q, 0, sizeof o->q);
    p->pattern_u64 |= FY_DIST_OWES;
    return o;
}

/*
 * Queues *c (a reference to a frame of the message p is owed, moved in) behind what p is owed.
 * When even that fails, p cannot be given the rest of its message: it is dropped (the core
 * closes the link at its next call), which its peer sees as a link cut mid-message, never as
 * another message's frames appended to this one's.
 */
static void dist_owe(fy_dist *d, fy_socket *s, fy_pipe *p, fy_msg *c)
{
    fy_dist_owed *o = dist_owed_get(d, p);
    if (o && fy_msgq_push(&o->q, c) == 0)
        return;
    fy_msg_fini(c);
    if (o)
        dist_owed_rm(d, (uint32_t)(o - d->owed));
    fy_socket_drop_pipe(s, p);
}

void fy_dist_flush_owed_(fy_dist *d)
{
    for (uint32_t i = 0; i < d->owed_n;) {
        fy_dist_owed *o = &d->owed[i];
        fy_msg *f;
        bool more = false;
        int rc = 0;
        while ((f = fy_msgq_peek(&o->q))) {
            more = fy_msg_more(f);
            rc = fy_pipe_send_bound(o->p, f);
            if (rc != 0)
                break;
            fy_msgq_advance(&o->q, !more);
        }
        if (rc == FERRY_ENOMEM) {
            i++; /* still owed: next time */
            continue;
        }
        /* All out (or the pipe died: the core detaches it). Its last frame had MORE: the message
         * being sent is still open, and its later frames go straight to the pipe again. */
        if (rc == 0 && more)
            o->p->pattern_u64 |= FY_DIST_ACTIVE;
        fy_pipe *p = o->p;
        dist_owed_rm(d, i);
        if (rc != 0 && rc != FERRY_EPIPE && rc != FERRY_EPROTO)
            fy_socket_drop_pipe(p->sock, p); /* as in fy_dist_send */
    }
}

int fy_dist_send(fy_dist *d, fy_socket *s, fy_pipelist *l, fy_msg *m, fy_dist_want_fn *want,
                 void *ctx)
{
    fy_dist_flush(d);
    bool first = !d->in_msg;
    bool more = fy_msg_more(m);
    uint64_t drops = 0;
    for (uint32_t i = 0; i < l->n; i++) {
        fy_pipe *p = l->v[i];
        if (first) {
            p->pattern_u64 &= ~(uint64_t)FY_DIST_ACTIVE;
            if (want && !want(ctx, p, m))
                continue;
            if (__builtin_expect(fy_dist_owes(p), 0)) {
                drops++; /* still owed an earlier message: misses this one */
                continue;
            }
        } else if (!(p->pattern_u64 & FY_DIST_ACTIVE)) {
            /* Owed the head of this very message (its queue ends with MORE): this frame goes
             * behind it. */
            fy_dist_owed *o = dist_owed_find(d, p);
            if (__builtin_expect(o != NULL, 0) && fy_msgq_tail_more(&o->q)) {
                fy_msg c;
                fy_msg_init(&c);
                fy_msg_copy(&c, m);
                dist_owe(d, s, p, &c);
            }
            continue;
        }
        fy_msg c;
        fy_msg_init(&c);
        fy_msg_copy(&c, m);
        /* A later frame goes to a pipe its message is open on: the bound send (pattern.h), whose
         * test-only fault site makes the pipe refuse it as if out of memory. */
        int rc = first ? fy_pipe_send(p, &c) : fy_pipe_send_bound(p, &c);
        if (rc == 0) {
            if (first && more)
                p->pattern_u64 |= FY_DIST_ACTIVE;
            continue;
        }
        p->pattern_u64 &= ~(uint64_t)FY_DIST_ACTIVE;
        if (!first && rc == FERRY_ENOMEM) {
            /* The message stays open on p with c not taken (pipe.h): p is owed c and the rest
             * of the message. */
            dist_owe(d, s, p, &c);
            continue;
        }
        fy_msg_fini(&c);
        /* EAGAIN only happens on a first frame (pipe.h): that subscriber misses
         * this message, as it does when a first frame is refused for lack of memory.
         * EPIPE/EPROTO: the pipe is going away; the core detaches it at the next call. */
        if (rc == FERRY_EAGAIN)
            drops++;
        else if (!first && rc != FERRY_EPIPE && rc != FERRY_EPROTO)
            fy_socket_drop_pipe(s, p); /* a frame it can never take (EMSGSIZE): cut, not spliced */
    }
    if (drops)
        fy_socket_count_drop(s, drops);
    d->in_msg = more;
    if (!more && !first)
        for (uint32_t i = 0; i < l->n; i++)
            l->v[i]->pattern_u64 &= ~(uint64_t)FY_DIST_ACTIVE;
    fy_msg_fini(m);
    return 0;
}
