/*
 * backlog.c - the IMMEDIATE=0 send queue of PUSH and DEALER (see backlog.h).
 */
#include "pattern/backlog.h"

void fy_backlog_fini(fy_backlog *b)
{
    fy_msgq_fini(&b->q);
}

void fy_backlog_drain(fy_backlog *b, fy_pipelist *l)
{
    while (!fy_msgq_empty(&b->q)) {
        fy_msg *h = fy_msgq_peek(&b->q);
        bool more = fy_msg_more(h);
        /* A first frame needs a pipe with room; later frames always follow (pipe.h). */
        if (fy_pipelist_lb_send(l, h) != 0)
            return;
        fy_msgq_advance(&b->q, !more); /* h's content moved into the pipe */
    }
}

/* Whether a new message may be queued: IMMEDIATE=0, a connect endpoint, and room below SNDHWM. */
static bool backlog_room(const fy_backlog *b, fy_socket *s)
{
    const fy_sockopts *o = fy_socket_opts(s);
    if (o->immediate || o->connects == 0)
        return false;
    return o->sndhwm == 0 || b->q.msgs < (size_t)o->sndhwm;
}

int fy_backlog_lb_send(fy_backlog *b, fy_pipelist *l, fy_socket *s, fy_msg *m)
{
    if (!fy_msgq_empty(&b->q))
        fy_backlog_drain(b, l);
    if (fy_msgq_empty(&b->q)) {
        /* lb_send returns FERRY_EAGAIN only for a first frame (pipe.h): queue such a new
         * message only while no peer is up at all. */
        int rc = fy_pipelist_lb_send(l, m);
        if (rc != FERRY_EAGAIN || l->n != 0 || !backlog_room(b, s))
            return rc;
        return fy_msgq_push(&b->q, m);
    }
    /* Messages are queued: later ones go behind them (order), the rest of a queued message
     * always, a new one if there is room. */
    if (!fy_msgq_tail_more(&b->q) && !backlog_room(b, s))
        return FERRY_EAGAIN;
    return fy_msgq_push(&b->q, m);
}

int fy_backlog_lb_poll(fy_backlog *b, fy_pipelist *l, fy_socket *s)
{
    if (!fy_msgq_empty(&b->q))
        fy_backlog_drain(b, l);
    if (!fy_msgq_empty(&b->q))
        return fy_msgq_tail_more(&b->q) || backlog_room(b, s) ? FERRY_POLLOUT : 0;
    int ev = fy_pipelist_lb_poll(l);
    if (!ev && l->n == 0 && backlog_room(b, s))
        ev = FERRY_POLLOUT;
    return ev;
}
