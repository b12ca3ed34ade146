/*
 * push.c - PUSH: round-robin each message to the next peer below its SNDHWM; blocks (FERRY_EAGAIN
 * to the core) when every peer is full or none is connected. The reference for load-balancing.
 */
#include "pattern/pattern.h"

typedef struct push_state {
    fy_pipelist pipes;
} push_state;

static int push_attach(fy_socket *s, void *st, fy_pipe *p)
{
    (void)s;
    return fy_pipelist_add(&((push_state *)st)->pipes, p);
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
}

static int push_send(fy_socket *s, void *st, fy_msg *m)
{
    (void)s;
    return fy_pipelist_lb_send(&((push_state *)st)->pipes, m);
}

static int push_events(fy_socket *s, void *st)
{
    (void)s;
    return fy_pipelist_lb_poll(&((push_state *)st)->pipes);
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
};
