/*
 * pull.c - PULL: fair-queues whole messages from every connected peer. The reference for
 * fair-queued receive.
 */
#include "pattern/pattern.h"

typedef struct pull_state {
    fy_pipelist pipes;
} pull_state;

static int pull_attach(fy_socket *s, void *st, fy_pipe *p)
{
    (void)s;
    return fy_pipelist_add(&((pull_state *)st)->pipes, p);
}

static void pull_detach(fy_socket *s, void *st, fy_pipe *p)
{
    (void)s;
    fy_pipelist_remove(&((pull_state *)st)->pipes, p);
}

static void pull_fini(fy_socket *s, void *st)
{
    (void)s;
    fy_pipelist_fini(&((pull_state *)st)->pipes);
}

static int pull_recv(fy_socket *s, void *st, fy_msg *m)
{
    (void)s;
    return fy_pipelist_fq_recv(&((pull_state *)st)->pipes, m, NULL);
}

static int pull_events(fy_socket *s, void *st)
{
    (void)s;
    return fy_pipelist_fq_poll(&((pull_state *)st)->pipes);
}

static fy_pipe *pull_direct(fy_socket *s, void *st, bool out)
{
    (void)s;
    return out ? NULL : fy_pipelist_sole_in(&((pull_state *)st)->pipes);
}

const fy_pattern_ops fy_pattern_pull = {
    .type = FERRY_PULL,
    .name = "PULL",
    .state_size = sizeof(pull_state),
    .fini = pull_fini,
    .attach = pull_attach,
    .detach = pull_detach,
    .recv = pull_recv,
    .events = pull_events,
    .direct = pull_direct,
};
