/*
 * xsub.c - the XSUB socket: a SUB whose subscriptions are messages the
 * application sends (0x01+prefix subscribes, 0x00+prefix cancels, one frame
 * each); every other message it sends is passed upstream to all publishers (an
 * XPUB application receives it). ferry_socket_subscribe works too and is
 * equivalent to sending the 0x01 message. See subside.h.
 */
#include "pattern/pattern.h"
#include "pattern/subside.h"

static int xsub_send(fy_socket *s, void *st, fy_msg *m)
{
    return fy_subside_send(st, s, m);
}

static int xsub_events(fy_socket *s, void *st)
{
    (void)s;
    /* Publishers owed the rest of an upstream message (dist.h) get it when the application
     * polls, then any subscription they missed meanwhile (the repair in the poll). */
    fy_dist_flush(&((fy_subside *)st)->dist);
    int rc = fy_subside_poll(st);
    if (rc < 0)
        return rc;
    /* Upstream sends never block (full publishers miss the message), so POLLOUT
     * always holds. */
    return FERRY_POLLOUT | (rc ? FERRY_POLLIN : 0);
}

const fy_pattern_ops fy_pattern_xsub = {
    .type = FERRY_XSUB,
    .name = "XSUB",
    .state_size = sizeof(fy_subside),
    .init = fy_subside_op_init,
    .fini = fy_subside_op_fini,
    .link_up = fy_subside_op_link_up,
    .attach = fy_subside_op_attach,
    .detach = fy_subside_op_detach,
    .send = xsub_send,
    .recv = fy_subside_op_recv,
    .events = xsub_events,
    .has_input = fy_subside_op_has_input,
    .setopt = fy_subside_op_setopt,
};
