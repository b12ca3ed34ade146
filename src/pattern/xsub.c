/*
 * xsub.c - the XSUB socket: a SUB whose subscriptions are messages the
 * application sends (0x01+prefix subscribes, 0x00+prefix cancels, one frame
 * each); every other message it sends is passed upstream to all publishers (an
 * XPUB application receives it). ferry_socket_subscribe works too and is
 * equivalent to sending the 0x01 message. See subside.h.
 */
#include "pattern/pattern.h"
#include "pattern/subside.h"

static int xsub_init(fy_socket *s, void *st)
{
    (void)s;
    return fy_subside_init(st);
}

static void xsub_fini(fy_socket *s, void *st)
{
    (void)s;
    fy_subside_fini(st);
}

static int xsub_attach(fy_socket *s, void *st, fy_pipe *p)
{
    (void)s;
    return fy_subside_attach(st, p);
}

static void xsub_detach(fy_socket *s, void *st, fy_pipe *p)
{
    (void)s;
    fy_subside_detach(st, p);
}

static int xsub_send(fy_socket *s, void *st, fy_msg *m)
{
    return fy_subside_send(st, s, m);
}

static int xsub_recv(fy_socket *s, void *st, fy_msg *m)
{
    (void)s;
    return fy_subside_recv(st, m);
}

static int xsub_events(fy_socket *s, void *st)
{
    (void)s;
    int rc = fy_subside_poll(st);
    if (rc < 0)
        return rc;
    /* Upstream sends never block (full publishers miss the message), so POLLOUT
     * always holds. */
    return FERRY_POLLOUT | (rc ? FERRY_POLLIN : 0);
}

static int xsub_setopt(fy_socket *s, void *st, int opt, const void *val, size_t len)
{
    (void)s;
    if (opt != FY_OPT_SUBSCRIBE && opt != FY_OPT_UNSUBSCRIBE)
        return FERRY_ENOTSUP;
    if (len && !val)
        return FERRY_EINVAL;
    return fy_subside_subscribe(st, opt == FY_OPT_SUBSCRIBE, val, len);
}

const fy_pattern_ops fy_pattern_xsub = {
    .type = FERRY_XSUB,
    .name = "XSUB",
    .state_size = sizeof(fy_subside),
    .init = xsub_init,
    .fini = xsub_fini,
    .attach = xsub_attach,
    .detach = xsub_detach,
    .send = xsub_send,
    .recv = xsub_recv,
    .events = xsub_events,
    .setopt = xsub_setopt,
};
