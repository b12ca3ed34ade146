/*
 * dist.c - fan-out with per-pipe HWM drops (see dist.h).
 */
#include "pattern/dist.h"

int fy_dist_send(fy_dist *d, fy_socket *s, fy_pipelist *l, fy_msg *m, fy_dist_want_fn *want,
                 void *ctx)
{
    bool first = !d->in_msg;
    bool more = fy_msg_more(m);
    uint64_t drops = 0;
    for (uint32_t i = 0; i < l->n; i++) {
        fy_pipe *p = l->v[i];
        if (first) {
            p->pattern_u64 &= ~(uint64_t)FY_DIST_ACTIVE;
            if (want && !want(ctx, p, m))
                continue;
        } else if (!(p->pattern_u64 & FY_DIST_ACTIVE)) {
            continue;
        }
        fy_msg c;
        fy_msg_init(&c);
        fy_msg_copy(&c, m);
        /* A later frame goes to a pipe its message is open on: the bound send (pattern.h), whose
         * test-only fault site makes the pipe refuse it as if out of memory. */
        int rc = first ? fy_pipe_send(p, &c) : fy_pipe_send_bound(p, &c);
        if (rc == 0) {
            if (first && more)
                p->pattern_u64 |= FY_DIST_ACTIVE;
            continue;
        }
        fy_msg_fini(&c);
        /* EAGAIN only happens on a first frame (pipe.h): that subscriber misses
         * this message. EPIPE/EPROTO: the pipe is going away; the core detaches it
         * at the next call. */
        if (rc == FERRY_EAGAIN)
            drops++;
        p->pattern_u64 &= ~(uint64_t)FY_DIST_ACTIVE;
    }
    if (drops)
        fy_socket_count_drop(s, drops);
    d->in_msg = more;
    if (!more && !first)
        for (uint32_t i = 0; i < l->n; i++)
            l->v[i]->pattern_u64 &= ~(uint64_t)FY_DIST_ACTIVE;
    fy_msg_fini(m);
    return 0;
}
