/*
 * pubside.c - PUB/XPUB fan-out and upstream processing (see pubside.h).
 *
 * Only a single-frame message starting with 0x01/0x00 (or a SUBSCRIBE/CANCEL
 * command) is a subscription. libzmq also interprets later frames of multipart
 * messages that start with those bytes; ferry does not, so an XSUB's multipart
 * upstream message reaches an XPUB application intact. A SUBSCRIBE/CANCEL
 * command between the frames of a peer's message is applied as a command.
 *
 * XPUB notices never land between the frames of an upstream message: they are
 * queued in front of one still arriving, or, once the application has taken its
 * first frames, held until its last frame is queued or its sender leaves.
 */
#include "pattern/pubside.h"

#include "common/grow.h"

#include <stdlib.h>
#include <string.h>
#include <time.h>

typedef struct pubside_peer {
    fy_subs subs;   /* what this peer subscribed to (each prefix held once) */
    fy_subs manual; /* XPUB_MANUAL: what it asked for (reported as cancels when it leaves) */
    bool in_mid;    /* the last frame read from this peer had MORE */
    bool upstream;  /* the message being read is an ordinary (non-subscription) one */
    bool dropping;  /* ...and is dropped (PUB, or the XPUB queue was at RCVHWM) */
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
    fy_dist_fini(&ps->dist);
    fy_subs_fini(&ps->all);
    fy_msgq_fini(&ps->queue);
    fy_msgq_fini(&ps->held);
    free(ps->note_ids);
    free(ps->welcome);
}

/* Queues 0x01/0x00 + prefix for the XPUB application, from the pipe with id `from`. */
static int pubside_notify(fy_pubside *ps, int subscribe, const void *prefix, size_t len,
                          uint64_t from)
{
    if (!ps->xpub)
        return 0;
    if (ps->note_n == ps->note_cap) {
        size_t old = ps->note_cap;
        if (fy_grow(&ps->note_ids, sizeof *ps->note_ids, &ps->note_cap, ps->note_n, 1, 16,
                    SIZE_MAX) != 0)
            return FERRY_ENOMEM;
        fy_grow_unwrap(ps->note_ids, sizeof *ps->note_ids, old, ps->note_head);
    }
    fy_msg n;
    int rc = fy_msg_init_size(&n, len + 1);
    if (rc < 0)
        return rc;
    uint8_t *d = fy_msg_data(&n);
    d[0] = subscribe ? 1 : 0;
    if (len)
        memcpy(d + 1, prefix, len);
    n.flags = FY_MSG_SUB;
    /* Never between the frames of an upstream message still arriving from another peer: in
     * front of it, or, once the application has taken its first frames, after it. */
    if (ps->held.count || fy_msgq_inside_open(&ps->queue))
        rc = fy_msgq_push(&ps->held, &n);
    else
        rc = fy_msgq_push_before_open(&ps->queue, &n);
    if (rc < 0) {
        fy_msg_fini(&n);
        return rc;
    }
    ps->note_ids[(ps->note_head + ps->note_n++) % ps->note_cap] = from;
    return 0;
}

/* The notices held while the application was inside an upstream message, once it has ended
 * (its last frame queued, or its sender gone). Without memory to move them they stay held,
 * in order, until the next call. */
static void pubside_release_held(fy_pubside *ps)
{
    while (ps->held.count && !fy_msgq_inside_open(&ps->queue)) {
        fy_msg *h = fy_msgq_peek(&ps->held);
        if (fy_msgq_push(&ps->queue, h) != 0)
            return;
        fy_msgq_advance(&ps->held, true); /* h's content moved into the queue */
    }
}

/* Ends the upstream message being queued, whose sender left or whose rest is dropped, so the
 * application never sees a message without its last frame; held notices follow it. */
static void pubside_end_open(fy_pubside *ps)
{
    fy_msgq_end_tail(&ps->queue);
    pubside_release_held(ps);
}

/* Peer starts holding prefix (it did not): its filter and the per-prefix holder counts. 1 when
 * it is the first holder, 0 when not, FERRY_ENOMEM (nothing changed). */
static int pubside_hold(fy_pubside *ps, pubside_peer *peer, const void *prefix, size_t len)
{
    int rc = fy_subs_add(&peer->subs, prefix, len);
    if (rc < 0)
        return rc;
    rc = fy_subs_add(&ps->all, prefix, len);
    if (rc < 0)
        fy_subs_rm(&peer->subs, prefix, len);
    return rc;
}

/* XPUB_MANUAL: nothing is applied; the application sees every request and decides. The
 * requests are remembered per peer only to report them cancelled when the peer leaves. */
static int pubside_apply_manual(fy_pubside *ps, pubside_peer *peer, fy_pipe *p, int subscribe,
                                const uint8_t *prefix, size_t len)
{
    bool held = fy_subs_refs(&peer->manual, prefix, len) != 0;
    if (subscribe && !held) {
        int rc = fy_subs_add(&peer->manual, prefix, len);
        if (rc < 0)
            return rc;
    } else if (!subscribe && held) {
        fy_subs_rm(&peer->manual, prefix, len);
    }
    return pubside_notify(ps, subscribe, prefix, len, p->id);
}

static int pubside_apply(fy_pubside *ps, fy_pipe *p, int subscribe, const uint8_t *prefix,
                         size_t len)
{
    pubside_peer *peer = p->pattern_data;
    if (ps->manual)
        return pubside_apply_manual(ps, peer, p, subscribe, prefix, len);
    if (subscribe) {
        /* The peer already holds it: nothing changes anywhere, but a verbose XPUB still tells
         * the application (libzmq passes every subscribe message then). */
        if (fy_subs_refs(&peer->subs, prefix, len))
            return ps->verbose ? pubside_notify(ps, 1, prefix, len, p->id) : 0;
        int rc = pubside_hold(ps, peer, prefix, len);
        if (rc < 0)
            return rc;
        return rc == 1 || ps->verbose ? pubside_notify(ps, 1, prefix, len, p->id) : 0;
    }
    if (fy_subs_rm(&peer->subs, prefix, len) != 1) {
        /* libzmq's XPUB reports a cancel for a prefix the peer never held (its
         * mtrie says "not found", which is not "values remain"); do the same so
         * proxies behave alike. */
        return pubside_notify(ps, 0, prefix, len, p->id);
    }
    return fy_subs_rm(&ps->all, prefix, len) == 1 || ps->verbose_unsubs
               ? pubside_notify(ps, 0, prefix, len, p->id)
               : 0;
}

/* Handles one frame read from p. Consumes f. */
static int pubside_frame(fy_pubside *ps, fy_pipe *p, fy_msg *f, bool full)
{
    pubside_peer *peer = p->pattern_data;
    bool more = fy_msg_more(f);
    const uint8_t *d = fy_msg_cdata(f);
    size_t n = fy_msg_size(f);
    int rc = 0;
    if (peer->in_mid && (f->flags & FY_MSG_SUB)) {
        /* A SUBSCRIBE/CANCEL command between the frames of this peer's message. ZMTP's grammar
         * has no place for one there, but a command is not part of any message: it is applied
         * (when in the normalised form the engine makes) and the message goes on untouched. */
        if (!more && n >= 1 && d[0] <= 1)
            rc = pubside_apply(ps, p, d[0], d + 1, n - 1);
        fy_msg_fini(f);
        return rc;
    }
    bool first = !peer->in_mid;
    peer->in_mid = more;
    if (first) {
        bool is_sub = (f->flags & FY_MSG_SUB) || (!more && n >= 1 && d[0] <= 1);
        if (is_sub && n >= 1 && d[0] <= 1 && !more) {
            rc = pubside_apply(ps, p, d[0], d + 1, n - 1);
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
            /* Out of memory mid-message: end what was queued and drop the rest of this one. */
            pubside_end_open(ps);
            peer->dropping = true;
        } else if (!more) {
            pubside_release_held(ps);
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
    if (ps->held.count)
        pubside_release_held(ps); /* what an earlier out-of-memory left held */
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
        fy_pipe *from = NULL, *mid = ps->pipes.recv_cur;
        int rc = fy_pipelist_fq_recv(&ps->pipes, &f, &from);
        if (rc == FERRY_EAGAIN)
            return 0;
        if (rc < 0)
            return rc;
        if (mid && from != mid) {
            /* mid's peer left before the last frame of its upstream message and the fair
             * queue moved on: end what was queued of it, so f is not appended to it. */
            pubside_peer *mp = mid->pattern_data;
            if (mp->in_mid && mp->upstream && !mp->dropping)
                pubside_end_open(ps);
            mp->in_mid = false;
        }
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
    fy_subs_init(&peer->manual);
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
    bool quiet; /* manual: the filter goes without notices (the requests are reported) */
};

static void pubside_gone_note(struct pubside_gone *g, const void *prefix, size_t len)
{
    int rc = pubside_notify(g->ps, 0, prefix, len, 0);
    if (rc < 0 && g->rc == 0)
        g->rc = rc;
}

static int pubside_forget(void *ctx, const void *prefix, size_t len)
{
    struct pubside_gone *g = ctx;
    bool last = fy_subs_rm(&g->ps->all, prefix, len) == 1;
    if (!g->quiet && (last || g->ps->verbose_unsubs))
        pubside_gone_note(g, prefix, len);
    return 0;
}

static int pubside_forget_request(void *ctx, const void *prefix, size_t len)
{
    pubside_gone_note(ctx, prefix, len);
    return 0;
}

void fy_pubside_detach(fy_pubside *ps, fy_pipe *p)
{
    pubside_peer *peer = p->pattern_data;
    fy_pipelist_remove(&ps->pipes, p);
    fy_dist_detach(&ps->dist, p);
    if (!peer)
        return;
    /* End its unfinished upstream message first: the notices below must not become its last
     * frames. */
    if (peer->in_mid && peer->upstream && !peer->dropping)
        pubside_end_open(ps);
    /* A departed subscriber's topics that nobody else holds (VERBOSER: all of its topics) are
     * reported cancelled (libzmq's XPUB does this too), so an XPUB proxy can cancel upstream;
     * with XPUB_MANUAL, what it requested is reported instead. An out-of-memory while queueing
     * a notice loses only that notice. */
    struct pubside_gone g = {ps, 0, ps->manual};
    fy_subs_foreach(&peer->subs, pubside_forget, &g);
    if (ps->manual)
        fy_subs_foreach(&peer->manual, pubside_forget_request, &g);
    fy_subs_fini(&peer->subs);
    fy_subs_fini(&peer->manual);
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
    fy_dist_flush(&ps->dist);
    if (fy_msgq_empty(&ps->queue)) {
        int rc = fy_pubside_pump(ps, s);
        if (rc < 0 && fy_msgq_empty(&ps->queue))
            return rc;
    }
    int rc = fy_msgq_pop(&ps->queue, m);
    if (rc == 0 && (m->flags & FY_MSG_SUB)) {
        m->flags &= ~(uint32_t)FY_MSG_SUB;
        uint64_t from = ps->note_ids[ps->note_head];
        ps->note_head = (ps->note_head + 1) % ps->note_cap;
        ps->note_n--;
        /* libzmq: the last subscription message received names the peer that the XPUB's own
         * subscribe/unsubscribe act on (XPUB_MANUAL). */
        ps->last_pipe = from;
    }
    return rc;
}

int fy_pubside_manual(fy_pubside *ps, int subscribe, const void *prefix, size_t len)
{
    fy_pipe *p = NULL;
    for (uint32_t i = 0; ps->last_pipe && i < ps->pipes.n; i++)
        if (ps->pipes.v[i]->id == ps->last_pipe)
            p = ps->pipes.v[i];
    if (!p)
        return 0; /* no peer to act on (none yet, or it left): libzmq ignores it too */
    pubside_peer *peer = p->pattern_data;
    bool held = fy_subs_refs(&peer->subs, prefix, len) != 0;
    if (subscribe && !held) {
        int rc = pubside_hold(ps, peer, prefix, len);
        if (rc < 0)
            return rc;
    } else if (!subscribe && held) {
        fy_subs_rm(&peer->subs, prefix, len);
        fy_subs_rm(&ps->all, prefix, len);
    }
    return 0;
}

int fy_pubside_set_welcome(fy_pubside *ps, fy_socket *s, const void *msg, size_t len)
{
    uint8_t *copy = NULL;
    if (len) {
        copy = malloc(len);
        if (!copy)
            return FERRY_ENOMEM;
        memcpy(copy, msg, len);
    }
    fy_socket_links_lock(s);
    uint8_t *old = ps->welcome;
    ps->welcome = copy;
    ps->welcome_len = len;
    fy_socket_links_unlock(s);
    free(old);
    return 0;
}

void fy_pubside_link_up(fy_pubside *ps, fy_pipe *p)
{
    if (!ps->welcome_len)
        return;
    fy_msg m;
    if (fy_msg_init_size(&m, ps->welcome_len) < 0)
        return; /* out of memory: this subscriber goes without its welcome */
    memcpy(fy_msg_data(&m), ps->welcome, ps->welcome_len);
    if (fy_pipe_send(p, &m) != 0)
        fy_msg_fini(&m);
}
