/*
 * pubside.c - PUB/XPUB fan-out and upstream processing (see pubside.h).
 *
 * Only a single-frame message starting with 0x01/0x00 (or a SUBSCRIBE/CANCEL
 * command) is a subscription. libzmq also interprets later frames of multipart
 * messages that start with those bytes; ferry does not, so an XSUB's multipart
 * upstream message reaches an XPUB application intact.
 */
#include "pattern/pubside.h"

#include <stdlib.h>
#include <string.h>
#include <time.h>

typedef struct pubside_peer {
    fy_subs subs;  /* what this peer subscribed to (each prefix held once) */
    bool in_mid;   /* the last frame read from this peer had MORE */
    bool upstream; /* the message being read is an ordinary (non-subscription) one */
    bool dropping; /* ...and is dropped (PUB, or the XPUB queue was at RCVHWM) */
} pubside_peer;

static uint64_t pubside_now_ns(void)
{
    struct timespec ts;
    clock_gettime(CLOCK_MONOTONIC, &ts);
    return (uint64_t)ts.tv_sec * 1000000000u + (uint64_t)ts.tv_nsec;
}

int fy_pubside_init(fy_pubside *ps, bool xpub)
{
    memset(ps, 0, sizeof *ps);
    fy_subs_init(&ps->all);
    ps->xpub = xpub;
    return 0;
}

void fy_pubside_fini(fy_pubside *ps)
{
    fy_pipelist_fini(&ps->pipes);
    fy_subs_fini(&ps->all);
    fy_msgq_fini(&ps->queue);
}

/* Queues 0x01/0x00 + prefix for the XPUB application. */
static int pubside_notify(fy_pubside *ps, int subscribe, const void *prefix, size_t len)
{
    if (!ps->xpub)
        return 0;
    fy_msg n;
    int rc = fy_msg_init_size(&n, len + 1);
    if (rc < 0)
        return rc;
    uint8_t *d = fy_msg_data(&n);
    d[0] = subscribe ? 1 : 0;
    if (len)
        memcpy(d + 1, prefix, len);
    rc = fy_msgq_push(&ps->queue, &n);
    if (rc < 0)
        fy_msg_fini(&n);
    return rc;
}

static int pubside_apply(fy_pubside *ps, pubside_peer *peer, int subscribe, const uint8_t *prefix,
                         size_t len)
{
    if (subscribe) {
        /* The peer already holds it: nothing changes anywhere, but a verbose XPUB still tells
         * the application (libzmq passes every subscribe message then). */
        if (fy_subs_refs(&peer->subs, prefix, len))
            return ps->verbose ? pubside_notify(ps, 1, prefix, len) : 0;
        int rc = fy_subs_add(&peer->subs, prefix, len);
        if (rc < 0)
            return rc;
        rc = fy_subs_add(&ps->all, prefix, len);
        if (rc < 0) {
            fy_subs_rm(&peer->subs, prefix, len);
            return rc;
        }
        return rc == 1 || ps->verbose ? pubside_notify(ps, 1, prefix, len) : 0;
    }
    if (fy_subs_rm(&peer->subs, prefix, len) != 1) {
        /* libzmq's XPUB reports a cancel for a prefix the peer never held (its
         * mtrie says "not found", which is not "values remain"); do the same so
         * proxies behave alike. */
        return pubside_notify(ps, 0, prefix, len);
    }
    return fy_subs_rm(&ps->all, prefix, len) == 1 ? pubside_notify(ps, 0, prefix, len) : 0;
}

/* Handles one frame read from p. Consumes f. */
static int pubside_frame(fy_pubside *ps, fy_pipe *p, fy_msg *f, bool full)
{
    pubside_peer *peer = p->pattern_data;
    bool more = fy_msg_more(f);
    bool first = !peer->in_mid;
    peer->in_mid = more;
    int rc = 0;
    if (first) {
        const uint8_t *d = fy_msg_cdata(f);
        size_t n = fy_msg_size(f);
        bool is_sub = (f->flags & FY_MSG_SUB) || (!more && n >= 1 && d[0] <= 1);
        if (is_sub && n >= 1 && d[0] <= 1 && !more) {
            rc = pubside_apply(ps, peer, d[0], d + 1, n - 1);
            fy_msg_fini(f);
            return rc;
        }
        if (is_sub) {
            /* A flagged frame that is not in the normalised form: the engine never
             * makes one; drop it rather than guess. */
            peer->upstream = false;
            fy_msg_fini(f);
            return 0;
        }
        peer->upstream = true;
        peer->dropping = !ps->xpub || full;
    }
    if (peer->upstream && !peer->dropping) {
        f->flags &= ~(uint32_t)FY_MSG_SUB;
        rc = fy_msgq_push(&ps->queue, f);
        if (rc < 0) {
            fy_msg_fini(f);
            /* Out of memory mid-message: end what was queued so the application never
             * sees a message without its last frame, and drop the rest of this one.
             */
            fy_msgq_end_tail(&ps->queue);
            peer->dropping = true;
        }
        return rc;
    }
    /* PUB discards upstream messages (libzmq does the same), and so does an XPUB whose
     * application lets RCVHWM messages pile up. */
    fy_msg_fini(f);
    return 0;
}

int fy_pubside_pump(fy_pubside *ps, fy_socket *s)
{
    const fy_sockopts *o = fy_socket_opts(s);
    ps->sends_since_pump = 0;
    ps->last_pump_ns = pubside_now_ns();
    for (;;) {
        /* Subscriptions are always applied (an XPUB used only for publishing must keep
         * working) and their notices always queued, as libzmq does; ordinary upstream messages
         * arriving while RCVHWM messages are queued are dropped, which bounds what a flooding
         * peer can make us hold. */
        bool full = o->rcvhwm > 0 && ps->queue.msgs >= (size_t)o->rcvhwm;
        fy_msg f;
        fy_msg_init(&f);
        fy_pipe *from = NULL;
        int rc = fy_pipelist_fq_recv(&ps->pipes, &f, &from);
        if (rc == FERRY_EAGAIN)
            return 0;
        if (rc < 0)
            return rc;
        rc = pubside_frame(ps, from, &f, full);
        if (rc < 0)
            return rc;
    }
}

int fy_pubside_attach(fy_pubside *ps, fy_pipe *p)
{
    pubside_peer *peer = calloc(1, sizeof *peer);
    if (!peer)
        return FERRY_ENOMEM;
    fy_subs_init(&peer->subs);
    int rc = fy_pipelist_add(&ps->pipes, p);
    if (rc < 0) {
        free(peer);
        return rc;
    }
    p->pattern_data = peer;
    return 0;
}

struct pubside_gone {
    fy_pubside *ps;
    int rc;
};

static int pubside_forget(void *ctx, const void *prefix, size_t len)
{
    struct pubside_gone *g = ctx;
    if (fy_subs_rm(&g->ps->all, prefix, len) == 1) {
        int rc = pubside_notify(g->ps, 0, prefix, len);
        if (rc < 0 && g->rc == 0)
            g->rc = rc;
    }
    return 0;
}

void fy_pubside_detach(fy_pubside *ps, fy_pipe *p)
{
    pubside_peer *peer = p->pattern_data;
    fy_pipelist_remove(&ps->pipes, p);
    if (!peer)
        return;
    /* A departed subscriber's topics that nobody else holds are reported
     * cancelled (libzmq's XPUB does this too), so an XPUB proxy can cancel
     * upstream. An out-of-memory while queueing a notice loses only that notice.
     */
    struct pubside_gone g = {ps, 0};
    fy_subs_foreach(&peer->subs, pubside_forget, &g);
    if (peer->in_mid && peer->upstream && !peer->dropping)
        fy_msgq_end_tail(&ps->queue);
    fy_subs_fini(&peer->subs);
    free(peer);
    p->pattern_data = NULL;
}

static bool pubside_want(void *ctx, fy_pipe *p, const fy_msg *first)
{
    (void)ctx;
    pubside_peer *peer = p->pattern_data;
    return fy_subs_match(&peer->subs, fy_msg_cdata(first), fy_msg_size(first));
}

int fy_pubside_send(fy_pubside *ps, fy_socket *s, fy_msg *m)
{
    if (!ps->dist.in_msg) {
        if (++ps->sends_since_pump >= FY_PUBSIDE_PUMP_MSGS ||
            pubside_now_ns() - ps->last_pump_ns >= FY_PUBSIDE_PUMP_NS) {
            int rc = fy_pubside_pump(ps, s);
            if (rc < 0 && rc != FERRY_ENOMEM)
                return rc;
        }
    }
    return fy_dist_send(&ps->dist, s, &ps->pipes, m, pubside_want, NULL);
}

int fy_pubside_recv(fy_pubside *ps, fy_socket *s, fy_msg *m)
{
    if (fy_msgq_empty(&ps->queue)) {
        int rc = fy_pubside_pump(ps, s);
        if (rc < 0 && fy_msgq_empty(&ps->queue))
            return rc;
    }
    return fy_msgq_pop(&ps->queue, m);
}
