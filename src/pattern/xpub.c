/*
 * xpub.c - the XPUB socket: a PUB whose application also receives what
 * subscribers send upstream.
 *
 * Each subscription change arrives as a one-frame message 0x01+prefix
 * (subscribe) or 0x00+prefix (cancel), whatever encoding the peer used on the
 * wire, reported only when the first peer takes a prefix and when the last one
 * drops it (also when a subscriber disconnects), as libzmq's default XPUB does.
 * Ordinary messages from XSUB peers are delivered as they are.
 *
 * Options (libzmq's): XPUB_VERBOSE (every subscribe reported), XPUB_VERBOSER
 * (every cancel too), XPUB_MANUAL (nothing applied: the application receives
 * every request and subscribes the requesting peer itself with
 * ferry_socket_subscribe/unsubscribe on the XPUB), XPUB_WELCOME_MSG (sent to
 * each new subscriber at link-up, by the thread that completes the link).
 */
#include "pattern/xpub.h"

#include "pattern/pubside.h"

#include <string.h>

static int xpub_init(fy_socket *s, void *st)
{
    (void)s;
    return fy_pubside_init(st, true);
}

static void xpub_fini(fy_socket *s, void *st)
{
    (void)s;
    fy_pubside_fini(st);
}

static int xpub_attach(fy_socket *s, void *st, fy_pipe *p)
{
    (void)s;
    return fy_pubside_attach(st, p);
}

static void xpub_detach(fy_socket *s, void *st, fy_pipe *p)
{
    (void)s;
    fy_pubside_detach(st, p);
}

static int xpub_send(fy_socket *s, void *st, fy_msg *m)
{
    return fy_pubside_send(st, s, m);
}

static int xpub_recv(fy_socket *s, void *st, fy_msg *m)
{
    return fy_pubside_recv(st, s, m);
}

static int xpub_events(fy_socket *s, void *st)
{
    fy_pubside *ps = st;
    fy_dist_flush(&ps->dist); /* what subscribers are owed (dist.h), as on PUB */
    int rc = fy_pubside_pump(ps, s);
    if (rc < 0 && rc != FERRY_ENOMEM && fy_msgq_empty(&ps->queue))
        return rc;
    return FERRY_POLLOUT | (fy_msgq_empty(&ps->queue) ? 0 : FERRY_POLLIN);
}

/* Notices and upstream messages queued by any call that read the subscribers (send included). */
static bool xpub_has_input(fy_socket *s, void *st)
{
    (void)s;
    return !fy_msgq_empty(&((fy_pubside *)st)->queue);
}

void fy_xpub_op_link_up(fy_socket *s, void *st, fy_pipe *p)
{
    (void)s;
    fy_pubside_link_up(st, p);
}

/* Shared with PUB (xpub.h): on a PUB, pubside queues no notice, so VERBOSE/VERBOSER change
 * nothing visible and a manual PUB's last requesting peer is never set. */
int fy_xpub_op_setopt(fy_socket *s, void *st, int opt, const void *val, size_t len)
{
    fy_pubside *ps = st;
    bool b;
    int rc;
    switch (opt) {
    case FERRY_OPT_XPUB_VERBOSE:
        /* libzmq: VERBOSE sets the subscribe half and clears the cancel half. */
        if ((rc = fy_opt_get_bool(val, len, &b)) < 0)
            return rc;
        ps->verbose = b;
        ps->verbose_unsubs = false;
        return 0;
    case FERRY_OPT_XPUB_VERBOSER:
        if ((rc = fy_opt_get_bool(val, len, &b)) < 0)
            return rc;
        ps->verbose = ps->verbose_unsubs = b;
        return 0;
    case FERRY_OPT_XPUB_MANUAL:
        return fy_opt_get_bool(val, len, &ps->manual);
    case FERRY_OPT_XPUB_WELCOME_MSG:
        return fy_pubside_set_welcome(ps, s, val, len);
    case FY_OPT_SUBSCRIBE:
    case FY_OPT_UNSUBSCRIBE:
        /* Only a manual XPUB subscribes (its last requesting peer); libzmq says EINVAL else. */
        if (!ps->manual)
            return FERRY_EINVAL;
        return fy_pubside_manual(ps, opt == FY_OPT_SUBSCRIBE, val, len);
    default:
        return FERRY_EINVAL;
    }
}

int fy_xpub_op_getopt(fy_socket *s, void *st, int opt, void *val, size_t *len)
{
    (void)s;
    fy_pubside *ps = st;
    switch (opt) {
    case FERRY_OPT_XPUB_VERBOSE:
        return fy_opt_put_bool(ps->verbose, val, len);
    case FERRY_OPT_XPUB_VERBOSER:
        return fy_opt_put_bool(ps->verbose_unsubs, val, len);
    case FERRY_OPT_XPUB_MANUAL:
        return fy_opt_put_bool(ps->manual, val, len);
    case FERRY_OPT_XPUB_WELCOME_MSG:
        /* Only the owner writes it, so the owner reads it without the link lock. */
        if (*len < ps->welcome_len) {
            *len = ps->welcome_len;
            return FERRY_EMSGSIZE;
        }
        if (ps->welcome_len)
            memcpy(val, ps->welcome, ps->welcome_len);
        *len = ps->welcome_len;
        return 0;
    default:
        return FERRY_EINVAL;
    }
}

const fy_pattern_ops fy_pattern_xpub = {
    .type = FERRY_XPUB,
    .name = "XPUB",
    .state_size = sizeof(fy_pubside),
    .init = xpub_init,
    .fini = xpub_fini,
    .link_up = fy_xpub_op_link_up,
    .attach = xpub_attach,
    .detach = xpub_detach,
    .send = xpub_send,
    .recv = xpub_recv,
    .events = xpub_events,
    .has_input = xpub_has_input,
    .setopt = fy_xpub_op_setopt,
    .getopt = fy_xpub_op_getopt,
};
