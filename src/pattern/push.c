/*
 * push.c - PUSH: round-robin each message to the next peer below its SNDHWM; blocks (FERRY_EAGAIN
 * to the core) when every peer is full or none is connected (with IMMEDIATE=0 and a connect
 * endpoint, messages are queued while no peer is up: backlog.h). The reference for
 * load-balancing.
 */
#include "pattern/backlog.h"
#include "pattern/pattern.h"

typedef struct push_state {
    fy_pipelist pipes;
    fy_backlog backlog;
} push_state;

static int push_attach(fy_socket *s, void *st, fy_pipe *p)
{
    (void)s;
    push_state *ps = st;
    int rc = fy_pipelist_add(&ps->pipes, p);
    if (rc == 0)
        fy_backlog_drain(&ps->backlog, &ps->pipes);
    return rc;
}

static void push_detach(fy_socket *s, void *st, fy_pipe *p)
{
    (void)s;
    fy_pipelist_remove(&((push_state *)st)->pipes, p);
}

static void push_fini(fy_socket *s, void *st)
{
    (void)s;
    fy_pipelist_fini(&((push_state *)st)->pipes);
    fy_backlog_fini(&((push_state *)st)->backlog);
}

static int push_send(fy_socket *s, void *st, fy_msg *m)
{
    push_state *ps = st;
    return fy_backlog_lb_send(&ps->backlog, &ps->pipes, s, m);
}

static int push_events(fy_socket *s, void *st)
{
    push_state *ps = st;
    return fy_backlog_lb_poll(&ps->backlog, &ps->pipes, s);
}

static fy_pipe *push_direct(fy_socket *s, void *st, bool out)
{
    (void)s;
    push_state *ps = st;
    return out && fy_msgq_empty(&ps->backlog.q) ? fy_pipelist_sole_out(&ps->pipes) : NULL;
}

const fy_pattern_ops fy_pattern_push = {
    .type = FERRY_PUSH,
    .name = "PUSH",
    .state_size = sizeof(push_state),
    .fini = push_fini,
    .attach = push_attach,
    .detach = push_detach,
    .send = push_send,
    .events = push_events,
    .direct = push_direct,
};
