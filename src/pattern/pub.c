/*
 * pub.c - the PUB socket: fan-out of each message to every peer whose
 * subscriptions match its first frame. It never blocks: a peer at SNDHWM misses
 * the message (counted in drops_hwm), as with libzmq. Receiving is not
 * supported (FERRY_ENOTSUP); subscriptions from peers are read in the
 * background of send/poll calls (pubside.h).
 */
#include "pattern/pattern.h"
#include "pattern/pubside.h"
#include "pattern/xpub.h"

static int pub_init(fy_socket *s, void *st)
{
    (void)s;
    return fy_pubside_init(st, false);
}

static void pub_fini(fy_socket *s, void *st)
{
    (void)s;
    fy_pubside_fini(st);
}

static int pub_attach(fy_socket *s, void *st, fy_pipe *p)
{
    (void)s;
    return fy_pubside_attach(st, p);
}

static void pub_detach(fy_socket *s, void *st, fy_pipe *p)
{
    (void)s;
    fy_pubside_detach(st, p);
}

static int pub_send(fy_socket *s, void *st, fy_msg *m)
{
    return fy_pubside_send(st, s, m);
}

static int pub_events(fy_socket *s, void *st)
{
    /* Polling is a natural moment to apply pending subscriptions, and to hand subscribers the
     * rest of a message they are owed (dist.h) when the application has stopped sending. */
    fy_pubside *ps = st;
    fy_dist_flush(&ps->dist);
    int rc = fy_pubside_pump(ps, s);
    if (rc < 0 && rc != FERRY_ENOMEM)
        return rc;
    return FERRY_POLLOUT;
}

const fy_pattern_ops fy_pattern_pub = {
    .type = FERRY_PUB,
    .name = "PUB",
    .state_size = sizeof(fy_pubside),
    .init = pub_init,
    .fini = pub_fini,
    .attach = pub_attach,
    .detach = pub_detach,
    .send = pub_send,
    .recv = NULL,
    .events = pub_events,
    /* libzmq's PUB takes the XPUB_* options (xpub.h). */
    .link_up = fy_xpub_op_link_up,
    .setopt = fy_xpub_op_setopt,
    .getopt = fy_xpub_op_getopt,
};
