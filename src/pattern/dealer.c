/*
 * dealer.c - the DEALER socket: round-robin send over peers that can take a
 * message, fair-queued receive, no envelope handling (libzmq semantics).
 * Sending blocks (FERRY_EAGAIN to the core) only when every peer is at SNDHWM
 * or there is none (with IMMEDIATE=0 and a connect endpoint, messages are
 * queued while no peer is up: backlog.h).
 */
#include "pattern/backlog.h"
#include "pattern/pattern.h"

typedef struct dealer_state {
    fy_pipelist pipes;
    fy_backlog backlog;
} dealer_state;

static void dealer_fini(fy_socket *s, void *st)
{
    (void)s;
    dealer_state *d = st;
    fy_pipelist_fini(&d->pipes);
    fy_backlog_fini(&d->backlog);
}

static int dealer_attach(fy_socket *s, void *st, fy_pipe *p)
{
    (void)s;
    dealer_state *d = st;
    int rc = fy_pipelist_add(&d->pipes, p);
    if (rc == 0)
        fy_backlog_drain(&d->backlog, &d->pipes);
    return rc;
}

static void dealer_detach(fy_socket *s, void *st, fy_pipe *p)
{
    (void)s;
    dealer_state *d = st;
    fy_pipelist_remove(&d->pipes, p);
}

static int dealer_send(fy_socket *s, void *st, fy_msg *m)
{
    dealer_state *d = st;
    return fy_backlog_lb_send(&d->backlog, &d->pipes, s, m);
}

static int dealer_recv(fy_socket *s, void *st, fy_msg *m)
{
    (void)s;
    dealer_state *d = st;
    return fy_pipelist_fq_recv(&d->pipes, m, NULL);
}

static int dealer_events(fy_socket *s, void *st)
{
    dealer_state *d = st;
    int in = fy_pipelist_fq_poll(&d->pipes);
    if (in < 0)
        return in;
    int out = fy_backlog_lb_poll(&d->backlog, &d->pipes, s);
    if (out < 0)
        return out;
    return in | out;
}

static fy_pipe *dealer_direct(fy_socket *s, void *st, bool out)
{
    (void)s;
    dealer_state *d = st;
    if (out)
        return fy_msgq_empty(&d->backlog.q) ? fy_pipelist_sole_out(&d->pipes) : NULL;
    return fy_pipelist_sole_in(&d->pipes);
}

const fy_pattern_ops fy_pattern_dealer = {
    .type = FERRY_DEALER,
    .name = "DEALER",
    .state_size = sizeof(dealer_state),
    .fini = dealer_fini,
    .attach = dealer_attach,
    .detach = dealer_detach,
    .send = dealer_send,
    .recv = dealer_recv,
    .events = dealer_events,
    .direct = dealer_direct,
};
