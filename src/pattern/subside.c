/*
 * subside.c - SUB/XSUB subscriptions and filtering (see subside.h).
 */
#include "pattern/subside.h"

#include <string.h>

int fy_subside_init(fy_subside *ss)
{
    memset(ss, 0, sizeof *ss);
    fy_subs_init(&ss->subs);
    fy_msg_init(&ss->pre);
    return 0;
}

void fy_subside_fini(fy_subside *ss)
{
    fy_pipelist_fini(&ss->pipes);
    fy_dist_fini(&ss->dist);
    fy_subs_fini(&ss->subs);
    fy_msg_fini(&ss->pre);
    ss->has_pre = false;
}

/* Builds the normalised subscription frame 0x01/0x00 + prefix, flagged for the
 * engine. */
static int subside_frame(fy_msg *f, int subscribe, const void *prefix, size_t len)
{
    int rc = fy_fault(FY_FAULT_SUB_FRAME) ? FERRY_ENOMEM : fy_msg_init_size(f, len + 1);
    if (rc < 0)
        return rc;
    uint8_t *d = fy_msg_data(f);
    d[0] = subscribe ? 1 : 0;
    if (len)
        memcpy(d + 1, prefix, len);
    f->flags = FY_MSG_SUB;
    return 0;
}

/* Sends a subscription frame to one pipe. Subscription frames bypass SNDHWM
 * (pipe.h); a dead pipe is simply skipped (its replacement gets the whole set
 * at link-up). A live pipe that could not take it (out of memory), or that is
 * still owed the rest of an XSUB upstream message (dist.h: the frame would land
 * inside that message), makes this return an error: the caller marks the pipe to
 * get the whole set again. */
static int subside_send_one(fy_pipe *p, const fy_msg *f)
{
    if (fy_dist_owes(p))
        return FERRY_EAGAIN;
    fy_msg c;
    fy_msg_init(&c);
    fy_msg_copy(&c, f);
    int rc = fy_fault(FY_FAULT_SUB_SEND) ? FERRY_ENOMEM : fy_pipe_send(p, &c);
    if (rc == 0)
        return 0;
    fy_msg_fini(&c);
    return rc == FERRY_EPIPE || rc == FERRY_EPROTO ? 0 : rc;
}

struct subside_attach_ctx {
    fy_pipe *p;
    int rc;
};

static int subside_send_existing(void *ctx, const void *prefix, size_t len)
{
    struct subside_attach_ctx *a = ctx;
    fy_msg f;
    int rc = subside_frame(&f, 1, prefix, len);
    if (rc < 0) {
        a->rc = rc;
        return 1;
    }
    rc = subside_send_one(a->p, &f);
    fy_msg_fini(&f);
    if (rc < 0) {
        a->rc = rc;
        return 1;
    }
    return 0;
}

/* pattern_u64 of a pipe that missed part of the set (out of memory at link-up or on a change):
 * it gets the whole set again (bit 0 is dist.h's). */
#define SUBSIDE_RESEND 2u

void fy_subside_link_up(fy_subside *ss, fy_pipe *p)
{
    struct subside_attach_ctx a = {p, 0};
    fy_subs_foreach(&ss->subs, subside_send_existing, &a);
    if (a.rc < 0)
        p->pattern_u64 = SUBSIDE_RESEND;
}

/* Owner: sends the whole set again to every attached pipe marked SUBSIDE_RESEND (a prefix it
 * did get goes twice: a publisher holds a prefix once per peer, so that changes nothing there).
 * A pipe whose resend fails again stays marked for the next call. Never between the frames of
 * an XSUB's upstream message. */
static void subside_repair(fy_subside *ss)
{
    if (ss->dist.in_msg)
        return;
    bool left = false;
    for (uint32_t i = 0; i < ss->pipes.n; i++) {
        fy_pipe *p = ss->pipes.v[i];
        if (!(p->pattern_u64 & SUBSIDE_RESEND))
            continue;
        struct subside_attach_ctx a = {p, 0};
        fy_subs_foreach(&ss->subs, subside_send_existing, &a);
        if (a.rc < 0)
            left = true;
        else
            p->pattern_u64 &= ~(uint64_t)SUBSIDE_RESEND;
    }
    ss->resend = left;
}

int fy_subside_attach(fy_subside *ss, fy_pipe *p)
{
    /* link_up sent the set as it was then, and every change since went to p as a pending pipe;
     * only a pipe that missed part of it (out of memory) is repaired here, or on a later call if
     * memory is still short: the publisher is never refused for it. */
    int rc = fy_pipelist_add(&ss->pipes, p);
    if (rc < 0)
        return rc;
    if (p->pattern_u64 & SUBSIDE_RESEND) {
        ss->resend = true;
        subside_repair(ss);
    }
    return 0;
}

void fy_subside_detach(fy_subside *ss, fy_pipe *p)
{
    /* A publisher that vanished in the middle of a message never sends its rest:
     * stop treating the next frames (from other pipes) as its continuation. */
    if (ss->pipes.recv_cur == p) {
        ss->in_msg = false;
        ss->discarding = false;
    }
    fy_pipelist_remove(&ss->pipes, p);
    fy_dist_detach(&ss->dist, p);
}

static void subside_send_pending(void *ctx, fy_pipe *p)
{
    if (subside_send_one(p, ctx) < 0)
        p->pattern_u64 |= SUBSIDE_RESEND; /* its attach repairs it */
}

/* Under the link lock (see fy_subside_subscribe). */
static int subside_change(fy_subside *ss, fy_socket *s, int subscribe, const void *prefix,
                          size_t len)
{
    int rc;
    if (subscribe) {
        rc = fy_subs_add(&ss->subs, prefix, len);
        if (rc < 0)
            return rc;
    } else {
        rc = fy_subs_rm(&ss->subs, prefix, len);
        if (rc == FERRY_ENOENT || rc == 0)
            return 0; /* libzmq: not subscribed, or still referenced: nothing to tell
                         anyone */
    }
    fy_msg f;
    rc = subside_frame(&f, subscribe, prefix, len);
    if (rc < 0) {
        /* Keep the local set consistent with what the publishers were told. */
        if (subscribe)
            fy_subs_rm(&ss->subs, prefix, len);
        else
            fy_subs_add(&ss->subs, prefix, len);
        return rc;
    }
    /* A pipe that misses a subscribe gets the whole set again later; a missed cancel is not
     * repeated (the local filter still drops what the publisher keeps sending). */
    for (uint32_t i = 0; i < ss->pipes.n; i++) {
        if (subside_send_one(ss->pipes.v[i], &f) < 0) {
            ss->pipes.v[i]->pattern_u64 |= SUBSIDE_RESEND;
            ss->resend = true;
        }
    }
    /* Pipes published but not attached yet got the set as it was at their link_up. */
    fy_socket_foreach_pending(s, subside_send_pending, &f);
    fy_msg_fini(&f);
    return 0;
}

int fy_subside_subscribe(fy_subside *ss, fy_socket *s, int subscribe, const void *prefix,
                         size_t len)
{
    /* A subscription frame must not land between the frames of an upstream
     * message. */
    if (ss->dist.in_msg)
        return FERRY_EFSM;
    fy_dist_flush(&ss->dist); /* a publisher owed an upstream message's rest gets it first */
    if (ss->resend)
        subside_repair(ss);
    /* The link lock orders this change against link_up on other threads: a new pipe sees the
     * set either before the change (and is then pending here) or after it, never both. */
    fy_socket_links_lock(s);
    int rc = subside_change(ss, s, subscribe, prefix, len);
    fy_socket_links_unlock(s);
    return rc;
}

/* Fetches the next deliverable frame into ss->pre. */
static int subside_fetch(fy_subside *ss)
{
    if (__builtin_expect(ss->resend, 0))
        subside_repair(ss);
    while (!ss->has_pre) {
        fy_msg f;
        fy_msg_init(&f);
        int rc = fy_pipelist_fq_recv(&ss->pipes, &f, NULL);
        if (rc < 0)
            return rc;
        bool more = fy_msg_more(&f);
        if (ss->pipes.cuts != ss->cuts) {
            /* Its publisher left mid-message: f starts a new message (filtered as such). */
            ss->cuts = ss->pipes.cuts;
            ss->in_msg = false;
            ss->discarding = false;
        }
        if (ss->discarding) {
            ss->discarding = more;
            fy_msg_fini(&f);
            continue;
        }
        if (!ss->in_msg) {
            /* Publishers never send subscription frames downstream; drop any. */
            if ((f.flags & FY_MSG_SUB) ||
                !fy_subs_match(&ss->subs, fy_msg_cdata(&f), fy_msg_size(&f))) {
                ss->discarding = more;
                fy_msg_fini(&f);
                continue;
            }
        }
        ss->in_msg = more;
        fy_msg_move(&ss->pre, &f);
        ss->has_pre = true;
    }
    return 0;
}

int fy_subside_recv(fy_subside *ss, fy_msg *m)
{
    int rc = subside_fetch(ss);
    if (rc < 0)
        return rc;
    fy_msg_move(m, &ss->pre);
    ss->has_pre = false;
    return 0;
}

int fy_subside_poll(fy_subside *ss)
{
    int rc = subside_fetch(ss);
    if (rc == FERRY_EAGAIN)
        return 0;
    return rc < 0 ? rc : 1;
}

int fy_subside_send(fy_subside *ss, fy_socket *s, fy_msg *m)
{
    if (!ss->dist.in_msg && !fy_msg_more(m) && fy_msg_size(m) >= 1 && fy_msg_cdata(m)[0] <= 1) {
        const uint8_t *d = fy_msg_cdata(m);
        int rc = fy_subside_subscribe(ss, s, d[0], d + 1, fy_msg_size(m) - 1);
        if (rc < 0)
            return rc;
        fy_msg_fini(m);
        return 0;
    }
    return fy_dist_send(&ss->dist, s, &ss->pipes, m, NULL, NULL);
}

/* ---- ops shared by SUB and XSUB ---- */

int fy_subside_op_init(fy_socket *s, void *st)
{
    (void)s;
    return fy_subside_init(st);
}

void fy_subside_op_fini(fy_socket *s, void *st)
{
    (void)s;
    fy_subside_fini(st);
}

void fy_subside_op_link_up(fy_socket *s, void *st, fy_pipe *p)
{
    (void)s;
    fy_subside_link_up(st, p);
}

int fy_subside_op_attach(fy_socket *s, void *st, fy_pipe *p)
{
    (void)s;
    return fy_subside_attach(st, p);
}

void fy_subside_op_detach(fy_socket *s, void *st, fy_pipe *p)
{
    (void)s;
    fy_subside_detach(st, p);
}

int fy_subside_op_recv(fy_socket *s, void *st, fy_msg *m)
{
    (void)s;
    return fy_subside_recv(st, m);
}

bool fy_subside_op_has_input(fy_socket *s, void *st)
{
    (void)s;
    return ((const fy_subside *)st)->has_pre;
}

int fy_subside_op_setopt(fy_socket *s, void *st, int opt, const void *val, size_t len)
{
    if (opt != FY_OPT_SUBSCRIBE && opt != FY_OPT_UNSUBSCRIBE)
        return FERRY_ENOTSUP;
    if (len && !val)
        return FERRY_EINVAL;
    return fy_subside_subscribe(st, s, opt == FY_OPT_SUBSCRIBE, val, len);
}
