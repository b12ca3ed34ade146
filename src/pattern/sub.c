/*
 * sub.c - the SUB socket: receives the messages whose first frame starts with
 * one of its subscriptions (ferry_socket_subscribe; none at first, so nothing
 * arrives until the application subscribes, "" meaning everything). Sending is
 * not supported (FERRY_ENOTSUP). See subside.h.
 */
#include "pattern/pattern.h"
#include "pattern/subside.h"

static int sub_events(fy_socket *s, void *st)
{
    (void)s;
    int rc = fy_subside_poll(st);
    if (rc < 0)
        return rc;
    return rc ? FERRY_POLLIN : 0;
}

const fy_pattern_ops fy_pattern_sub = {
    .type = FERRY_SUB,
    .name = "SUB",
    .state_size = sizeof(fy_subside),
    .init = fy_subside_op_init,
    .fini = fy_subside_op_fini,
    .link_up = fy_subside_op_link_up,
    .attach = fy_subside_op_attach,
    .detach = fy_subside_op_detach,
    .send = NULL,
    .recv = fy_subside_op_recv,
    .events = sub_events,
    .has_input = fy_subside_op_has_input,
    .setopt = fy_subside_op_setopt,
};
