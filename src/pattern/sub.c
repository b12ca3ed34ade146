/*
 * sub.c - the SUB socket: receives the messages whose first frame starts with
 * one of its subscriptions (ferry_socket_subscribe; none at first, so nothing
 * arrives until the application subscribes, "" meaning everything). Sending is
 * not supported (FERRY_ENOTSUP). See subside.h.
 */
#include "pattern/pattern.h"
#include "pattern/subside.h"

static int sub_init(fy_socket *s, void *st)
{
    (void)s;
    return fy_subside_init(st);
}

static void sub_fini(fy_socket *s, void *st)
{
    (void)s;
    fy_subside_fini(st);
}

static int sub_attach(fy_socket *s, void *st, fy_pipe *p)
{
    (void)s;
    return fy_subside_attach(st, p);
}

static void sub_detach(fy_socket *s, void *st, fy_pipe *p)
{
    (void)s;
    fy_subside_detach(st, p);
}

static int sub_recv(fy_socket *s, void *st, fy_msg *m)
{
    (void)s;
    return fy_subside_recv(st, m);
}

static int sub_events(fy_socket *s, void *st)
{
    (void)s;
    int rc = fy_subside_poll(st);
    if (rc < 0)
        return rc;
    return rc ? FERRY_POLLIN : 0;
}

static int sub_setopt(fy_socket *s, void *st, int opt, const void *val, size_t len)
{
    (void)s;
    if (opt != FY_OPT_SUBSCRIBE && opt != FY_OPT_UNSUBSCRIBE)
        return FERRY_ENOTSUP;
    if (len && !val)
        return FERRY_EINVAL;
    return fy_subside_subscribe(st, opt == FY_OPT_SUBSCRIBE, val, len);
}

const fy_pattern_ops fy_pattern_sub = {
    .type = FERRY_SUB,
    .name = "SUB",
    .state_size = sizeof(fy_subside),
    .init = sub_init,
    .fini = sub_fini,
    .attach = sub_attach,
    .detach = sub_detach,
    .send = NULL,
    .recv = sub_recv,
    .events = sub_events,
    .setopt = sub_setopt,
};
