/*
 * inproc.c - inproc:// : two sockets of one process linked by a pair of SPSC rings, no kernel.
 *
 * A ring record is a whole fy_msg (64 bytes): sending moves the frame's ownership into the ring
 * and receiving moves it out, so bodies are never copied. Each link has two ends (one pipe per
 * socket) and is freed when both ends are released. A receiver that found its ring empty sets a
 * flag; a sender that finds the flag set after publishing signals the receiving socket's eventfd
 * (Dekker pair through the ring's seq_cst index store), so a sleeping owner wakes and an idle one
 * costs nothing. The same flag in the other direction wakes a sender blocked on a full ring.
 *
 * Binding registers a name in a process-wide table. Connecting before the bind exists is allowed:
 * the connect waits in the table and completes when the bind appears (like libzmq >= 4.2).
 * Capacity: the ring holds about SNDHWM + RCVHWM messages (libzmq's inproc HWM is their sum).
 */
#include "core/ctl.h"
#include "core/socket.h"
#include "ferry/ring.h"
#include "transport/transport.h"
#include "wire/zmtp.h"

#include <pthread.h>
#include <stdio.h>
#include <stdlib.h>
#include <string.h>

#define FY_INPROC_REC      sizeof(fy_msg)
#define FY_INPROC_MAX_RING (1u << 24)

typedef struct inproc_link inproc_link;

typedef struct inproc_pipe {
    fy_pipe pipe; /* first */
    inproc_link *link;
    int side;
    ferry_spsc_tx tx;
    ferry_spsc_rx rx;
    fy_msg *over; /* frames of a started message that did not fit the ring */
    uint32_t over_n, over_cap;
    bool out_mid;
    uint64_t produced;    /* records this end pushed */
    uint64_t out_records; /* conservative capacity of the outbound ring in records */
} inproc_pipe;

struct inproc_link {
    pthread_mutex_t lock;         /* sock[], refs */
    fy_socket *sock[2];           /* NULL once that side released its pipe */
    _Atomic int closed[2];        /* side released: the other end sees EPIPE once drained */
    _Atomic int rx_wait[2];       /* side found its inbound ring empty: wake it on publish */
    _Atomic int tx_wait[2];       /* side found its outbound ring full: wake it on release */
    _Atomic uint64_t consumed[2]; /* records side i took from its inbound ring */
    int refs;
    void *ring[2]; /* ring[i]: messages towards side i */
    size_t ring_size;
    inproc_pipe end[2];
};

static const fy_pipe_ops inproc_ops;

static void inproc_wake(inproc_link *l, int side)
{
    pthread_mutex_lock(&l->lock);
    if (l->sock[side])
        fy_socket_raise(l->sock[side]);
    pthread_mutex_unlock(&l->lock);
}

static int inproc_push(inproc_pipe *ip, fy_msg *m)
{
    void *at;
    int rc = ferry_spsc_reserve(&ip->tx, FY_INPROC_REC, &at);
    if (rc != 0)
        return rc;
    memcpy(at, m, sizeof *m);
    fy_msg_init(m);
    ferry_spsc_commit(&ip->tx, FY_INPROC_REC, 0);
    ip->produced++;
    int peer = 1 - ip->side;
    /* Pairs with the receiver's store of rx_wait followed by its re-check of the ring: the
     * commit above is a seq_cst store of the tail. */
    if (atomic_load(&ip->link->rx_wait[peer]))
        inproc_wake(ip->link, peer);
    return 0;
}

/* Moves overflow frames into the ring. 0 all moved, 1 some left. */
static int inproc_drain_over(inproc_pipe *ip)
{
    uint32_t i = 0;
    while (i < ip->over_n && inproc_push(ip, &ip->over[i]) == 0)
        i++;
    if (i) {
        memmove(ip->over, ip->over + i, (ip->over_n - i) * sizeof *ip->over);
        ip->over_n -= i;
    }
    return ip->over_n ? 1 : 0;
}

static int inproc_send(fy_pipe *p, fy_msg *m)
{
    inproc_pipe *ip = (inproc_pipe *)p;
    inproc_link *l = ip->link;
    if (atomic_load_explicit(&l->closed[1 - ip->side], memory_order_acquire))
        return FERRY_EPIPE;
    bool more = fy_msg_more(m);
    if (ip->over_n && inproc_drain_over(ip) == 0)
        p->dirty = false;
    if (ip->over_n == 0) {
        int rc = inproc_push(ip, m);
        if (rc == 0) {
            ip->out_mid = more;
            return 0;
        }
        if (rc != FERRY_EAGAIN)
            return FERRY_EPROTO;
        if (!ip->out_mid && !(m->flags & FY_MSG_SUB)) {
            atomic_store(&l->tx_wait[ip->side], 1);
            /* Re-check after announcing the wait (pairs with the receiver's release). */
            rc = inproc_push(ip, m);
            if (rc == 0) {
                atomic_store(&l->tx_wait[ip->side], 0);
                ip->out_mid = more;
                return 0;
            }
            return FERRY_EAGAIN;
        }
    } else if (!ip->out_mid && !(m->flags & FY_MSG_SUB)) {
        return FERRY_EAGAIN;
    }
    /* A started message is never split: park the frame until the ring has room. */
    if (ip->over_n == ip->over_cap) {
        uint32_t cap = ip->over_cap ? ip->over_cap * 2 : 8;
        fy_msg *n = realloc(ip->over, cap * sizeof *n);
        if (!n)
            return FERRY_ENOMEM;
        ip->over = n;
        ip->over_cap = cap;
    }
    ip->over[ip->over_n++] = *m;
    fy_msg_init(m);
    ip->out_mid = more;
    atomic_store(&l->tx_wait[ip->side], 1);
    p->dirty = true;
    return 0;
}

static int inproc_pop(inproc_pipe *ip, fy_msg *m)
{
    const void *d;
    size_t len;
    int rc = ferry_spsc_peek(&ip->rx, &d, &len);
    if (rc != 0)
        return rc;
    if (len != FY_INPROC_REC) {
        ferry_spsc_release(&ip->rx, 0);
        return FERRY_EPROTO;
    }
    fy_msg_fini(m);
    memcpy(m, d, sizeof *m);
    ferry_spsc_release(&ip->rx, 0);
    atomic_fetch_add_explicit(&ip->link->consumed[ip->side], 1, memory_order_relaxed);
    int peer = 1 - ip->side;
    if (atomic_load(&ip->link->tx_wait[peer])) {
        atomic_store(&ip->link->tx_wait[peer], 0);
        inproc_wake(ip->link, peer);
    }
    return 0;
}

static int inproc_recv(fy_pipe *p, fy_msg *m)
{
    inproc_pipe *ip = (inproc_pipe *)p;
    inproc_link *l = ip->link;
    int rc = inproc_pop(ip, m);
    if (rc == 0) {
        atomic_store_explicit(&l->rx_wait[ip->side], 0, memory_order_relaxed);
        return 0;
    }
    if (rc != FERRY_EAGAIN)
        return FERRY_EPROTO;
    atomic_store(&l->rx_wait[ip->side], 1);
    /* Re-check after announcing the wait (pairs with the sender's publish). */
    rc = inproc_pop(ip, m);
    if (rc == 0)
        return 0;
    if (atomic_load(&l->closed[1 - ip->side])) {
        rc = inproc_pop(ip, m); /* the last frames may have landed just before the close */
        if (rc == 0)
            return 0;
        p->saw_epipe = true;
        return FERRY_EPIPE;
    }
    return FERRY_EAGAIN;
}

static bool inproc_has_input(fy_pipe *p)
{
    inproc_pipe *ip = (inproc_pipe *)p;
    const void *d;
    size_t len;
    if (ferry_spsc_peek(&ip->rx, &d, &len) != 0) {
        /* Empty: ask the sender for a wake-up, then look once more (see inproc_recv). */
        atomic_store(&ip->link->rx_wait[ip->side], 1);
        if (ferry_spsc_peek(&ip->rx, &d, &len) != 0)
            return false;
    }
    ip->rx.peeked_ = 0; /* leave the record where it is */
    return true;
}

static int inproc_poll_in(fy_pipe *p)
{
    return inproc_has_input(p);
}

static bool inproc_can_send(fy_pipe *p)
{
    inproc_pipe *ip = (inproc_pipe *)p;
    if (atomic_load(&ip->link->closed[1 - ip->side]) || ip->out_mid)
        return true;
    if (ip->over_n)
        return false;
    uint64_t gone = atomic_load_explicit(&ip->link->consumed[1 - ip->side], memory_order_relaxed);
    if (ip->produced - gone + 1 >= ip->out_records) {
        atomic_store(&ip->link->tx_wait[ip->side], 1);
        return false;
    }
    return true;
}

static int inproc_flush(fy_pipe *p)
{
    inproc_pipe *ip = (inproc_pipe *)p;
    if (!ip->over_n)
        return 0;
    if (atomic_load(&ip->link->closed[1 - ip->side]))
        return FERRY_EPIPE;
    /* There is no fd to wait on: report "done" and rely on the receiver's wake-up (tx_wait). */
    if (inproc_drain_over(ip) == 0)
        p->dirty = false;
    return 0;
}

static void inproc_link_free(inproc_link *l)
{
    for (int i = 0; i < 2; i++) {
        fy_msg m;
        fy_msg_init(&m);
        while (inproc_pop(&l->end[i], &m) == 0)
            fy_msg_fini(&m);
        for (uint32_t k = 0; k < l->end[i].over_n; k++)
            fy_msg_fini(&l->end[i].over[k]);
        free(l->end[i].over);
        free(l->ring[i]);
    }
    pthread_mutex_destroy(&l->lock);
    free(l);
}

static void inproc_release(fy_pipe *p)
{
    inproc_pipe *ip = (inproc_pipe *)p;
    inproc_link *l = ip->link;
    int side = ip->side;
    atomic_store_explicit(&l->closed[side], 1, memory_order_release);
    pthread_mutex_lock(&l->lock);
    l->sock[side] = NULL;
    fy_socket *other = l->sock[1 - side];
    atomic_store(&l->end[1 - side].pipe.dead, 1);
    if (other)
        fy_socket_notify(other);
    bool last = --l->refs == 0;
    pthread_mutex_unlock(&l->lock);
    if (last)
        inproc_link_free(l);
}

static const fy_pipe_ops inproc_ops = {
    .send = inproc_send,
    .recv = inproc_recv,
    .poll_in = inproc_poll_in,
    .can_send = inproc_can_send,
    .flush = inproc_flush,
    .has_input = inproc_has_input,
    .release = inproc_release,
};

/* ---- registry ---- */

typedef struct inproc_entry {
    char name[FY_EP_INPROC_MAX + 1];
    fy_socket *sock;
    fy_link_cfg cfg;
    bool bound; /* else a pending connect */
    struct inproc_entry *next;
} inproc_entry;

static pthread_mutex_t inproc_lock = PTHREAD_MUTEX_INITIALIZER;
static inproc_entry *inproc_table;

static size_t inproc_ring_bytes(const fy_link_cfg *a, const fy_link_cfg *b)
{
    uint64_t msgs;
    if (a->sndhwm <= 0 || b->rcvhwm <= 0)
        msgs = FY_INPROC_MAX_RING / 128;
    else
        msgs = (uint64_t)a->sndhwm + (uint64_t)b->rcvhwm;
    uint64_t want = msgs * FERRY_SPSC_REC_SIZE_(FY_INPROC_REC) * 2;
    size_t cap = 4096;
    while (cap < want && cap < FY_INPROC_MAX_RING)
        cap *= 2;
    return cap;
}

static uint64_t inproc_next_id(void)
{
    static _Atomic uint64_t next = 1;
    return (UINT64_C(1) << 63) | atomic_fetch_add(&next, 1);
}

/* Creates a link between connecting socket c and bound socket b and publishes both ends. Under
 * inproc_lock. */
static int inproc_link_make(fy_socket *c, const fy_link_cfg *ccfg, fy_socket *b,
                            const fy_link_cfg *bcfg)
{
    if (!fy_zmtp_socket_types_compatible(ccfg->type, bcfg->type))
        return FERRY_EPROTONOSUPPORT;
    inproc_link *l = calloc(1, sizeof *l);
    if (!l)
        return FERRY_ENOMEM;
    pthread_mutex_init(&l->lock, NULL);
    /* ring[0] carries c -> b traffic is towards side 1; name rings by destination side. */
    size_t cap_to_b = inproc_ring_bytes(ccfg, bcfg);
    size_t cap_to_c = inproc_ring_bytes(bcfg, ccfg);
    size_t caps[2] = {cap_to_c, cap_to_b}; /* side 0 = c, side 1 = b */
    for (int i = 0; i < 2; i++) {
        size_t fp = ferry_spsc_footprint(caps[i]);
        l->ring[i] = fp ? aligned_alloc(128, (fp + 127) & ~(size_t)127) : NULL;
        if (!l->ring[i] || ferry_spsc_format(l->ring[i], fp, caps[i]) != 0) {
            free(l->ring[0]);
            free(l->ring[1]);
            pthread_mutex_destroy(&l->lock);
            free(l);
            return FERRY_ENOMEM;
        }
    }
    l->sock[0] = c;
    l->sock[1] = b;
    l->refs = 2;
    const fy_link_cfg *cfgs[2] = {ccfg, bcfg};
    for (int i = 0; i < 2; i++) {
        inproc_pipe *ip = &l->end[i];
        ip->link = l;
        ip->side = i;
        fy_pipe *p = &ip->pipe;
        p->ops = &inproc_ops;
        p->sock = l->sock[i];
        p->id = inproc_next_id();
        p->rfd = p->wfd = -1;
        const fy_link_cfg *peer = cfgs[1 - i];
        p->peer.type = peer->type;
        p->peer.zmtp_minor = 1;
        p->peer.is_ferry = true;
        p->peer.id_len = peer->routing_id_len;
        memcpy(p->peer.id, peer->routing_id, peer->routing_id_len);
        size_t fp_out = ferry_spsc_footprint(caps[1 - i]);
        size_t fp_in = ferry_spsc_footprint(caps[i]);
        ferry_spsc_tx_init(&ip->tx, l->ring[1 - i], fp_out);
        ferry_spsc_rx_init(&ip->rx, l->ring[i], fp_in);
        /* Records never wrap (a padding record fills the end), so count one in two spare. */
        ip->out_records = caps[1 - i] / FERRY_SPSC_REC_SIZE_(FY_INPROC_REC) - 1;
    }
    fy_socket_publish_pipe(c, &l->end[0].pipe);
    fy_socket_publish_pipe(b, &l->end[1].pipe);
    return 0;
}

int fy_inproc_bind(fy_socket *s, const char *name, const fy_link_cfg *cfg)
{
    pthread_mutex_lock(&inproc_lock);
    for (inproc_entry *e = inproc_table; e; e = e->next) {
        if (e->bound && strcmp(e->name, name) == 0) {
            pthread_mutex_unlock(&inproc_lock);
            return FERRY_EADDRINUSE;
        }
    }
    inproc_entry *b = calloc(1, sizeof *b);
    if (!b) {
        pthread_mutex_unlock(&inproc_lock);
        return FERRY_ENOMEM;
    }
    snprintf(b->name, sizeof b->name, "%s", name);
    b->sock = s;
    b->cfg = *cfg;
    b->bound = true;
    /* Complete the connects that were waiting for this name. */
    for (inproc_entry **pe = &inproc_table; *pe;) {
        inproc_entry *e = *pe;
        if (!e->bound && strcmp(e->name, name) == 0) {
            if (inproc_link_make(e->sock, &e->cfg, s, cfg) != 0)
                fy_ctl_note_error(e->sock, "inproc peer has an incompatible socket type");
            *pe = e->next;
            free(e);
            continue;
        }
        pe = &e->next;
    }
    b->next = inproc_table;
    inproc_table = b;
    pthread_mutex_unlock(&inproc_lock);
    return 0;
}

int fy_inproc_connect(fy_socket *s, const char *name, const fy_link_cfg *cfg)
{
    pthread_mutex_lock(&inproc_lock);
    int rc = 0;
    inproc_entry *e;
    for (e = inproc_table; e; e = e->next)
        if (e->bound && strcmp(e->name, name) == 0)
            break;
    if (e) {
        rc = inproc_link_make(s, cfg, e->sock, &e->cfg);
    } else {
        inproc_entry *w = calloc(1, sizeof *w);
        if (!w) {
            rc = FERRY_ENOMEM;
        } else {
            snprintf(w->name, sizeof w->name, "%s", name);
            w->sock = s;
            w->cfg = *cfg;
            w->next = inproc_table;
            inproc_table = w;
        }
    }
    pthread_mutex_unlock(&inproc_lock);
    return rc;
}

int fy_inproc_unbind(fy_socket *s, const char *name)
{
    pthread_mutex_lock(&inproc_lock);
    for (inproc_entry **pe = &inproc_table; *pe; pe = &(*pe)->next) {
        inproc_entry *e = *pe;
        if (e->bound && e->sock == s && strcmp(e->name, name) == 0) {
            *pe = e->next;
            free(e);
            pthread_mutex_unlock(&inproc_lock);
            return 0;
        }
    }
    pthread_mutex_unlock(&inproc_lock);
    return FERRY_ENOENT;
}

void fy_inproc_socket_closed(fy_socket *s)
{
    pthread_mutex_lock(&inproc_lock);
    for (inproc_entry **pe = &inproc_table; *pe;) {
        inproc_entry *e = *pe;
        if (e->sock == s) {
            *pe = e->next;
            free(e);
            continue;
        }
        pe = &e->next;
    }
    pthread_mutex_unlock(&inproc_lock);
}
