/*
 * pair.c - PAIR: exactly one peer, both directions. The reference for a single-pipe pattern: a
 * second peer is refused at attach; with no peer, send and recv wait (FERRY_EAGAIN to the core).
 *
 * A peer that died keeps its pipe attached until the application has received what it sent before
 * dying (pipe.h). That dead pipe must not keep the place taken: a PAIR that only sends would never
 * drain it, and refusing every returning peer would leave its send blocked forever (and the peer's
 * recv too). So a new peer replaces a dead one at once; the dead pipe stays as `draining`, and
 * recv delivers its remaining input before anything from the new peer, so nothing is lost or
 * reordered.
 */
#include "pattern/pattern.h"

typedef struct pair_state {
    fy_pipe *peer;
    fy_pipe *draining;  /* a dead former peer whose input is still being received, or NULL */
    bool mid;           /* a message is half sent to peer */
    bool send_dropping; /* the peer died mid-message: swallow the rest of it */
} pair_state;

static int pair_attach(fy_socket *s, void *st, fy_pipe *p)
{
    (void)s;
    pair_state *ps = st;
    if (ps->peer) {
        fy_pipe *old = ps->peer;
        bool gone = atomic_load(&old->dead) || old->saw_epipe;
        if (!gone || ps->draining)
            return FERRY_EBUSY;
        /* The dead peer only has input left to give: it steps aside for the new one. */
        ps->draining = old;
        if (ps->mid) {
            ps->mid = false;
            ps->send_dropping = true;
        }
    }
    ps->peer = p;
    return 0;
}

static void pair_detach(fy_socket *s, void *st, fy_pipe *p)
{
    (void)s;
    pair_state *ps = st;
    if (ps->draining == p) {
        ps->draining = NULL;
        return;
    }
    if (ps->peer == p) {
        ps->peer = NULL;
        if (ps->mid) {
            ps->mid = false;
            ps->send_dropping = true;
        }
    }
}

static int pair_send(fy_socket *s, void *st, fy_msg *m)
{
    (void)s;
    pair_state *ps = st;
    bool more = fy_msg_more(m);
    if (ps->send_dropping) {
        fy_msg_fini(m);
        ps->send_dropping = more;
        return 0;
    }
    if (!ps->peer)
        return FERRY_EAGAIN;
    int rc = ps->mid ? fy_pipe_send_bound(ps->peer, m) : fy_pipe_send(ps->peer, m);
    if (rc == 0) {
        ps->mid = more;
        return 0;
    }
    if (rc == FERRY_EPIPE || rc == FERRY_EPROTO) {
        /* A first frame waits for the next peer; the rest of a started message has nowhere to
         * go. */
        if (!ps->mid)
            return FERRY_EAGAIN;
        fy_msg_fini(m);
        ps->mid = false;
        ps->send_dropping = more;
        return 0;
    }
    return rc;
}

static int pair_recv(fy_socket *s, void *st, fy_msg *m)
{
    (void)s;
    pair_state *ps = st;
    if (ps->draining) {
        int rc = fy_pipe_recv(ps->draining, m);
        if (rc == 0)
            return 0;
        /* Drained (the core detaches it at its next sync); the new peer's input comes next. */
        ps->draining = NULL;
    }
    if (!ps->peer)
        return FERRY_EAGAIN;
    int rc = fy_pipe_recv(ps->peer, m);
    return rc == 0 ? 0 : FERRY_EAGAIN;
}

static int pair_events(fy_socket *s, void *st)
{
    (void)s;
    pair_state *ps = st;
    int ev = 0;
    if (ps->draining && fy_pipe_poll_in(ps->draining))
        ev |= FERRY_POLLIN;
    if (!ps->peer)
        return ev;
    if (fy_pipe_poll_in(ps->peer))
        ev |= FERRY_POLLIN;
    if (fy_pipe_can_send(ps->peer) && !atomic_load(&ps->peer->dead))
        ev |= FERRY_POLLOUT;
    return ev;
}

static fy_pipe *pair_direct(fy_socket *s, void *st, bool out)
{
    (void)s;
    pair_state *ps = st;
    if (out)
        return ps->mid || ps->send_dropping ? NULL : ps->peer;
    return ps->draining ? NULL : ps->peer;
}

const fy_pattern_ops fy_pattern_pair = {
    .type = FERRY_PAIR,
    .name = "PAIR",
    .state_size = sizeof(pair_state),
    .attach = pair_attach,
    .detach = pair_detach,
    .send = pair_send,
    .recv = pair_recv,
    .events = pair_events,
    .direct = pair_direct,
};
