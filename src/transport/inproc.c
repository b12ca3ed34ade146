/*
 * inproc.c - inproc:// : two sockets of one process linked by a pair of SPSC rings, no kernel.
 *
 * Each link has two directions; each direction is an SPSC byte ring in private memory plus a
 * small overflow queue. A frame of up to copy_max bytes is copied into a ring record (the sender's
 * body block goes straight back to its socket's cache, and the receiver rebuilds the frame in a
 * block of its own cache: no malloc, no free, no cache line of the allocator shared between the
 * two threads); a larger frame moves through the ring as a pointer to its reference-counted body,
 * so big bodies are never copied. A send or receive is then a handful of loads and stores with
 * no lock, no system call and no fence.
 *
 * Waking: a side that is about to sleep (its socket's `sleeping` flag, set by sock_run right
 * before the last re-check) or whose pollfd is in use arms a flag and re-checks; the other side
 * looks at the flag after every publish (a load of a read-mostly line) and signals the socket's
 * eventfd only when it is set, once per arming. The Dekker pair "publish, then look at the flag" /
 * "arm, then look at the ring" is made with the asymmetric barrier of the ring layer
 * (ring/wait_internal.h): the sleeper issues membarrier() after arming, so the publishers need no
 * fence at all. A spinning receiver never arms, so a busy link costs no system call. A sender
 * blocked at the HWM is woken once the receiver has taken half the HWM (libzmq's low-water mark)
 * or found the link empty, so a blocked sender costs one wake-up per half ring, not one per
 * message.
 *
 * HWM: exactly SNDHWM + RCVHWM messages in flight per direction (libzmq's inproc rule; 0 on either
 * side means none), counted in messages, not frames or bytes: the sender counts messages it
 * started, the receiver publishes how many it finished. The ring is only the fast path: a frame
 * that does not fit (a message with more frames than the ring holds, large HWMs) is parked in the
 * overflow queue, under the link's mutex, behind everything in the ring; the receiver takes from
 * it once the ring is empty, so a started message always completes even if its sender never calls
 * again, and nothing accepted is ever lost.
 *
 * Binding registers a name in a process-wide table. Connecting before the bind exists is allowed:
 * the connect waits in the table and completes when the bind appears (like libzmq >= 4.2). Each
 * link is freed when both of its ends are released.
 */
#include "common/grow.h"
#include "core/ctl.h"
#include "core/socket.h"
#include "ferry/ring.h"
#include "ring/wait_internal.h"
#include "transport/transport.h"
#include "wire/zmtp.h"

#include <linux/membarrier.h>
#include <pthread.h>
#include <stdalign.h>
#include <stdio.h>
#include <stdlib.h>
#include <string.h>
#include <sys/syscall.h>
#include <unistd.h>

/* Record payload: u64 meta (frame flags, IP_REC_REF for a body passed by pointer), then either
 * the body bytes (a copy record: size = record length - 8) or u64 size + the content pointer. */
#define IP_REC_REF   0x80000000u
#define IP_FLAG_MASK (FY_MSG_MORE | FY_MSG_SUB)
#define IP_META      8u
#define IP_REF_LEN   (IP_META + 16u)
/* Ring bytes per message of HWM: a 64-byte frame copied in takes 80. */
#define IP_BYTES_PER_MSG 128u
/* Ring size bounds. Above the maximum the overflow queue holds the excess: a ring that cycles
 * through more memory than the caches hold would make every record a cache miss. */
#define IP_RING_MIN ((size_t)4096)
#define IP_RING_MAX ((size_t)1 << 20)

typedef struct inproc_link inproc_link;

/* One direction of a link: messages towards side `to`. */
typedef struct ip_dir {
    /* Messages the receiver finished (frames without MORE taken). Written by the receiver once
     * per message; read by the sender only when its cached copy says the HWM is reached. */
    alignas(128) _Atomic uint64_t consumed;
    /* The receiver sleeps (or uses its pollfd) and wants a signal on the next publish. Read by
     * the sender after every publish, written rarely: a line of its own. */
    alignas(128) _Atomic int rx_armed;
    /* The sender waits for room: wake it once consumed reaches tx_wake_at or the link is empty.
     * Read by the receiver after every message, written rarely. */
    alignas(128) _Atomic int tx_armed;
    _Atomic uint64_t tx_wake_at;
    /* Overflow queue (link mutex; over_n is also read without it: only the sender raises it, only
     * the receiver lowers it, both under the mutex). over[over_head .. over_head + over_n). */
    alignas(128) _Atomic uint32_t over_n;
    uint32_t over_head, over_cap;
    fy_msg *over;
    void *ring;
    size_t ring_cap;
    uint64_t limit; /* messages in flight allowed; UINT64_MAX: no HWM */
} ip_dir;

typedef struct inproc_pipe {
    fy_pipe pipe; /* first */
    inproc_link *link;
    int side;
    ip_dir *out; /* towards the peer */
    ip_dir *in;  /* towards us */
    ferry_spsc_tx tx;
    ferry_spsc_rx rx;
    /* sender side (owner thread) */
    uint64_t sent;          /* messages started */
    uint64_t consumed_seen; /* last out->consumed read */
    size_t copy_max;        /* larger frames travel by pointer */
    bool out_mid;           /* a message is being sent */
    /* receiver side (owner thread) */
    uint64_t got;             /* messages finished */
    fy_msg_content *rx_cache; /* body blocks for copied frames (msg.h) */
} inproc_pipe;

struct inproc_link {
    ip_dir dir[2]; /* dir[i]: towards side i (side 0 connected, side 1 bound) */
    inproc_pipe end[2];
    pthread_mutex_t lock;  /* sock[], refs, the overflow queues */
    fy_socket *sock[2];    /* NULL once that side released its pipe */
    _Atomic int closed[2]; /* side released: the other end sees EPIPE once drained */
    _Atomic int strong;    /* no asymmetric barrier: publishers fence before looking at flags */
    int refs;
    char name[FY_EP_INPROC_MAX + 1]; /* the endpoint, for ferry_socket_disconnect */
};

static const fy_pipe_ops inproc_ops;

/* ---- waking ---- */

static void ip_wake(inproc_link *l, int side)
{
    pthread_mutex_lock(&l->lock);
    if (l->sock[side])
        fy_socket_raise(l->sock[side]);
    pthread_mutex_unlock(&l->lock);
}

/* Whether the owner is about to sleep or keeps a pollfd: only then is arming worth a barrier. */
static inline bool ip_should_arm(const inproc_pipe *ip)
{
    fy_socket *s = ip->pipe.sock;
    return atomic_load_explicit(&s->sleeping, memory_order_relaxed) ||
           atomic_load_explicit(&s->pollfd_on, memory_order_relaxed);
}

/*
 * Announces a wait on flag; the caller re-checks its condition afterwards. The seq_cst store and
 * fence pair with the fence of a strong publisher; the membarrier is the fence the ordinary
 * publishers skipped (ip_published, ip_consumed): after it, either their publish is visible to
 * our re-check or their look at the flag comes after our store. An armed flag stays armed until
 * the other side takes it, so arming again costs nothing.
 */
static void ip_arm(inproc_pipe *ip, _Atomic int *flag)
{
    if (atomic_load_explicit(flag, memory_order_relaxed))
        return;
    atomic_store_explicit(flag, 1, memory_order_seq_cst);
    atomic_thread_fence(memory_order_seq_cst);
    if (atomic_load_explicit(&ip->link->strong, memory_order_relaxed))
        return;
    if (syscall(SYS_membarrier, MEMBARRIER_CMD_GLOBAL_EXPEDITED, 0, 0) != 0) {
        /* From now on publishers fence. One that already skipped its fence may have missed us:
         * wake ourselves so the sleep that follows is a re-check, not a hang. */
        atomic_store_explicit(&ip->link->strong, 1, memory_order_seq_cst);
        fy_socket_raise(ip->pipe.sock);
    }
}

/* The barrier a publisher needs between its publish and its look at the other side's flag. */
static inline void ip_order(const inproc_link *l)
{
    if (__builtin_expect(atomic_load_explicit(&l->strong, memory_order_relaxed), 0))
        atomic_thread_fence(memory_order_seq_cst); /* pairs with the fence in ip_arm */
    else
        atomic_signal_fence(memory_order_seq_cst); /* the CPU half is ip_arm's membarrier */
}

/* Sender, after making frames visible (ring publish or overflow): wake an armed receiver. */
static inline void ip_published(inproc_pipe *ip)
{
    ip_order(ip->link);
    _Atomic int *f = &ip->out->rx_armed;
    if (__builtin_expect(atomic_load_explicit(f, memory_order_relaxed), 0) &&
        atomic_exchange_explicit(f, 0, memory_order_relaxed))
        ip_wake(ip->link, 1 - ip->side);
}

/* Receiver, after taking a frame (empty: after finding nothing): wake an armed sender once it has
 * room worth waking for. */
static inline void ip_consumed(inproc_pipe *ip, bool empty)
{
    ip_order(ip->link);
    ip_dir *d = ip->in;
    if (__builtin_expect(atomic_load_explicit(&d->tx_armed, memory_order_relaxed), 0) &&
        (empty || ip->got >= atomic_load_explicit(&d->tx_wake_at, memory_order_relaxed)) &&
        atomic_exchange_explicit(&d->tx_armed, 0, memory_order_relaxed))
        ip_wake(ip->link, 1 - ip->side);
}

/* Sender about to report a full link: ask for a wake-up at the low-water mark. */
static void ip_arm_tx(inproc_pipe *ip)
{
    ip_dir *d = ip->out;
    uint64_t half = d->limit != UINT64_MAX ? d->limit / 2 : 0;
    atomic_store_explicit(&d->tx_wake_at, ip->consumed_seen + (half ? half : 1),
                          memory_order_relaxed);
    ip_arm(ip, &d->tx_armed);
}

/* ---- frames in and out of the ring ---- */

/*
 * Drops a frame whose bytes were copied into the ring. The common case is ferry_socket_send's
 * reused block (msg.h fy_msg_init_cached) with two references, the socket's cache and m, both
 * held by this thread: nobody else can change the count, so it is set back to 1 with a plain
 * store instead of an atomic read-modify-write (whose implicit full fence would also wait for the
 * ring stores just made, lines the consumer still has in its cache). Anything else goes through
 * fy_msg_fini.
 */
static inline void ip_drop_copied(inproc_pipe *ip, fy_msg *m)
{
    fy_msg_content *c = m->content;
    if (c && c == ip->pipe.sock->tx_cache &&
        atomic_load_explicit(&c->refs, memory_order_relaxed) == 2) {
        atomic_store_explicit(&c->refs, 1, memory_order_relaxed);
        fy_msg_init(m);
        return;
    }
    fy_msg_fini(m); /* the body block goes back to whoever caches it */
}

/* Moves m into the ring: 0 (m left empty), FERRY_EAGAIN (no room) or FERRY_EPROTO. */
static int ip_push(inproc_pipe *ip, fy_msg *m)
{
    uint64_t size = m->size;
    uint64_t meta = m->flags & IP_FLAG_MASK;
    void *at;
    int rc;
    if (size <= ip->copy_max || !m->content) {
        rc = ferry_spsc_reserve(&ip->tx, IP_META + (size_t)size, &at);
        if (rc == 0) {
            memcpy(at, &meta, 8);
            memcpy((uint8_t *)at + IP_META, fy_msg_cdata(m), (size_t)size);
            ferry_spsc_commit(&ip->tx, IP_META + (size_t)size, 0);
            ip_drop_copied(ip, m);
            return 0;
        }
        if (rc != FERRY_EAGAIN && rc != FERRY_EMSGSIZE)
            return FERRY_EPROTO;
        if (!m->content)
            return FERRY_EAGAIN;
    }
    /* By pointer: the content reference moves into the record (still one copy fewer for a big
     * body, and the only way when the ring is short of bytes). */
    rc = ferry_spsc_reserve(&ip->tx, IP_REF_LEN, &at);
    if (rc != 0)
        return rc == FERRY_EAGAIN ? FERRY_EAGAIN : FERRY_EPROTO;
    meta |= IP_REC_REF;
    memcpy(at, &meta, 8);
    memcpy((uint8_t *)at + 8, &size, 8);
    memcpy((uint8_t *)at + 16, &m->content, sizeof m->content);
    ferry_spsc_commit(&ip->tx, IP_REF_LEN, 0);
    fy_msg_init(m);
    return 0;
}

/* Receiver: a message finished. */
static inline void ip_finished(inproc_pipe *ip, const fy_msg *m)
{
    if (!fy_msg_more(m)) {
        ip->got++;
        atomic_store_explicit(&ip->in->consumed, ip->got, memory_order_relaxed);
    }
}

/* Takes the next ring record into m (old content released): 0, FERRY_EAGAIN (ring empty),
 * FERRY_ENOMEM (no block for the body: the record stays) or FERRY_EPROTO. */
static int ip_pop(inproc_pipe *ip, fy_msg *m)
{
    const void *d;
    size_t len;
    int rc = ferry_spsc_peek(&ip->rx, &d, &len);
    if (rc != 0)
        return rc == FERRY_EAGAIN ? rc : FERRY_EPROTO;
    const uint8_t *b = d;
    uint64_t meta;
    if (len < IP_META) {
        ferry_spsc_release(&ip->rx, 0);
        return FERRY_EPROTO;
    }
    memcpy(&meta, b, 8);
    if (m->content)
        fy_msg_fini(m);
    else
        m->size = 0;
    if (meta & IP_REC_REF) {
        if (len != IP_REF_LEN) {
            ferry_spsc_release(&ip->rx, 0);
            return FERRY_EPROTO;
        }
        memcpy(&m->size, b + 8, 8);
        memcpy(&m->content, b + 16, sizeof m->content);
    } else {
        size_t size = len - IP_META;
        if (size <= FY_MSG_INLINE) {
            m->size = size;
            memcpy(m->inline_, b + IP_META, size);
        } else {
            fy_msg_content *c = ip->rx_cache;
            /* The cache protocol of msg.h (fy_msg_init_cached), inline for its common case:
             * only the cache holds the block (acquire: pairs with the acq_rel release of the
             * frame that used it last, possibly on another thread), so nobody can take a
             * reference concurrently. */
            if (c && c->cap >= size && atomic_load_explicit(&c->refs, memory_order_acquire) == 1) {
                atomic_store_explicit(&c->refs, 2, memory_order_relaxed);
                m->content = c;
                m->size = size;
            } else if ((rc = fy_msg_init_cached(m, &ip->rx_cache, size)) != 0) {
                ip->rx.peeked_ = 0; /* leave the record where it is */
                return rc;
            }
            memcpy(m->content->data, b + IP_META, size);
        }
    }
    m->flags = (uint32_t)meta & IP_FLAG_MASK;
    ferry_spsc_release(&ip->rx, 0);
    ip_finished(ip, m);
    return 0;
}

/* Under the link mutex: moves parked frames into the ring while they fit. Returns how many are
 * left. */
static uint32_t ip_drain_over_locked(inproc_pipe *ip)
{
    ip_dir *d = ip->out;
    uint32_t n = atomic_load_explicit(&d->over_n, memory_order_relaxed);
    while (n && ip_push(ip, &d->over[d->over_head]) == 0) {
        d->over_head++;
        n--;
    }
    if (!n)
        d->over_head = 0;
    /* release: the receiver reads the queue under the mutex; the atomic is for the unlocked
     * emptiness checks, which must not see a count ahead of the ring publishes above. */
    atomic_store_explicit(&d->over_n, n, memory_order_release);
    return n;
}

/* Under the link mutex: appends m to the overflow queue (m left empty). 0 or FERRY_ENOMEM. */
static int ip_park_locked(inproc_pipe *ip, fy_msg *m)
{
    ip_dir *d = ip->out;
    uint32_t n = atomic_load_explicit(&d->over_n, memory_order_relaxed);
    if (d->over_head + n == d->over_cap) {
        if (d->over_head) {
            memmove(d->over, d->over + d->over_head, n * sizeof *d->over);
            d->over_head = 0;
        } else if (fy_grow32(&d->over, sizeof *d->over, &d->over_cap, n, 1, 16, UINT32_MAX) != 0) {
            return FERRY_ENOMEM;
        }
    }
    d->over[d->over_head + n] = *m;
    fy_msg_init(m);
    atomic_store_explicit(&d->over_n, n + 1, memory_order_release);
    return 0;
}

/* Sender slow path: frames are parked (keep the order behind them) or the ring is full. */
static int ip_send_locked(inproc_pipe *ip, fy_msg *m)
{
    inproc_link *l = ip->link;
    pthread_mutex_lock(&l->lock);
    int rc = 0;
    if (ip_drain_over_locked(ip) == 0)
        rc = ip_push(ip, m);
    else
        rc = FERRY_EAGAIN;
    if (rc == FERRY_EAGAIN)
        rc = ip_park_locked(ip, m);
    pthread_mutex_unlock(&l->lock);
    return rc;
}

/* Receiver: the ring is empty; take the first parked frame. 0, FERRY_EAGAIN (nothing parked) or
 * an ip_pop error. */
static int ip_pop_over(inproc_pipe *ip, fy_msg *m)
{
    ip_dir *d = ip->in;
    if (!atomic_load_explicit(&d->over_n, memory_order_acquire))
        return FERRY_EAGAIN;
    inproc_link *l = ip->link;
    pthread_mutex_lock(&l->lock);
    /* The sender fills the ring from the queue only under this mutex and parks only behind what
     * the ring holds: with the mutex held, an empty ring means the first parked frame is next. */
    int rc = ip_pop(ip, m);
    uint32_t n = atomic_load_explicit(&d->over_n, memory_order_relaxed);
    if (rc == FERRY_EAGAIN && n) {
        fy_msg_fini(m);
        *m = d->over[d->over_head];
        fy_msg_init(&d->over[d->over_head]);
        d->over_head = n == 1 ? 0 : d->over_head + 1;
        atomic_store_explicit(&d->over_n, n - 1, memory_order_relaxed);
        ip_finished(ip, m);
        rc = 0;
    }
    pthread_mutex_unlock(&l->lock);
    return rc;
}

/* ---- pipe ops ---- */

/* One attempt at sending m: 0, FERRY_EAGAIN (HWM), FERRY_ENOMEM or FERRY_EPROTO. */
static int ip_try_send(inproc_pipe *ip, fy_msg *m, bool gated)
{
    ip_dir *d = ip->out;
    if (gated && ip->sent - ip->consumed_seen >= d->limit) {
        ip->consumed_seen = atomic_load_explicit(&d->consumed, memory_order_relaxed);
        if (ip->sent - ip->consumed_seen >= d->limit)
            return FERRY_EAGAIN;
    }
    if (__builtin_expect(atomic_load_explicit(&d->over_n, memory_order_relaxed) != 0, 0))
        return ip_send_locked(ip, m);
    int rc = ip_push(ip, m);
    if (__builtin_expect(rc == FERRY_EAGAIN, 0))
        rc = ip_send_locked(ip, m);
    return rc;
}

static int inproc_send(fy_pipe *p, fy_msg *m)
{
    inproc_pipe *ip = (inproc_pipe *)p;
    if (atomic_load_explicit(&ip->link->closed[1 - ip->side], memory_order_acquire))
        return FERRY_EPIPE;
    bool first = !ip->out_mid;
    bool more = fy_msg_more(m);
    /* Only the first frame of a message is subject to the HWM (a started message is never
     * split), and subscriptions never are. */
    bool gated = first && !(m->flags & FY_MSG_SUB);
    int rc = ip_try_send(ip, m, gated);
    if (rc == FERRY_EAGAIN && ip_should_arm(ip)) {
        ip_arm_tx(ip);
        rc = ip_try_send(ip, m, gated); /* re-check after arming (see ip_arm) */
        /* Room after all: no sleep follows, so spare the receiver a signal (a pollfd user keeps
         * the arming: its POLLOUT is what the signal is for). */
        if (rc == 0 && !atomic_load_explicit(&p->sock->pollfd_on, memory_order_relaxed))
            atomic_store_explicit(&ip->out->tx_armed, 0, memory_order_relaxed);
    }
    if (rc != 0)
        return rc;
    ip->sent += first;
    ip->out_mid = more;
    ip_published(ip);
    return 0;
}

static int inproc_recv(fy_pipe *p, fy_msg *m)
{
    inproc_pipe *ip = (inproc_pipe *)p;
    inproc_link *l = ip->link;
    for (int pass = 0;; pass++) {
        /* acquire: the peer released its pipe after its last publish; seen here, one more look
         * below finds everything it sent. */
        bool gone = atomic_load_explicit(&l->closed[1 - ip->side], memory_order_acquire);
        int rc = ip_pop(ip, m);
        if (rc == FERRY_EAGAIN)
            rc = ip_pop_over(ip, m);
        if (rc == 0) {
            ip_consumed(ip, false);
            /* Armed for a sleep we no longer need: spare the sender a signal. A pollfd user
             * keeps it (the signal is what makes the pollfd readable). */
            _Atomic int *f = &ip->in->rx_armed;
            if (__builtin_expect(atomic_load_explicit(f, memory_order_relaxed), 0) &&
                !atomic_load_explicit(&p->sock->pollfd_on, memory_order_relaxed))
                atomic_store_explicit(f, 0, memory_order_relaxed);
            return 0;
        }
        if (rc != FERRY_EAGAIN)
            return rc;
        ip_consumed(ip, true);
        if (gone) {
            p->saw_epipe = true;
            return FERRY_EPIPE;
        }
        if (pass == 1 || !ip_should_arm(ip))
            return FERRY_EAGAIN;
        ip_arm(ip, &ip->in->rx_armed);
    }
}

/* A frame is waiting (ring or overflow). */
static bool ip_ready(inproc_pipe *ip)
{
    const void *d;
    size_t len;
    if (ferry_spsc_peek(&ip->rx, &d, &len) == 0) {
        ip->rx.peeked_ = 0; /* leave the record where it is */
        return true;
    }
    return atomic_load_explicit(&ip->in->over_n, memory_order_acquire) != 0;
}

static int inproc_poll_in(fy_pipe *p)
{
    return ip_ready((inproc_pipe *)p);
}

static bool inproc_has_input(fy_pipe *p)
{
    inproc_pipe *ip = (inproc_pipe *)p;
    if (ip_ready(ip))
        return true;
    if (!ip_should_arm(ip))
        return false;
    /* Nothing yet: ask the sender for a signal, then look once more (see ip_arm). */
    ip_arm(ip, &ip->in->rx_armed);
    return ip_ready(ip);
}

/* Room for a first frame: below the HWM (parked frames are no obstacle: a new frame parks
 * behind them). */
static bool ip_room(inproc_pipe *ip)
{
    ip_dir *d = ip->out;
    if (ip->sent - ip->consumed_seen < d->limit)
        return true;
    ip->consumed_seen = atomic_load_explicit(&d->consumed, memory_order_relaxed);
    return ip->sent - ip->consumed_seen < d->limit;
}

static bool inproc_can_send(fy_pipe *p)
{
    inproc_pipe *ip = (inproc_pipe *)p;
    if (atomic_load_explicit(&ip->link->closed[1 - ip->side], memory_order_acquire) ||
        ip->out_mid || ip_room(ip))
        return true;
    if (!ip_should_arm(ip))
        return false;
    ip_arm_tx(ip);
    return ip_room(ip);
}

static int inproc_flush(fy_pipe *p)
{
    inproc_pipe *ip = (inproc_pipe *)p;
    inproc_link *l = ip->link;
    if (atomic_load_explicit(&l->closed[1 - ip->side], memory_order_acquire))
        return FERRY_EPIPE;
    /* Parked frames need no flush (the receiver takes them itself); moving them into the ring
     * now only spares it the mutex. */
    if (atomic_load_explicit(&ip->out->over_n, memory_order_relaxed)) {
        pthread_mutex_lock(&l->lock);
        ip_drain_over_locked(ip);
        pthread_mutex_unlock(&l->lock);
        ip_published(ip);
    }
    return 0;
}

/* Drops every frame still queued towards side i (the link is being freed). */
static void ip_dir_discard(inproc_link *l, int i)
{
    ip_dir *d = &l->dir[i];
    ferry_spsc_rx *rx = &l->end[i].rx;
    const void *rec;
    size_t len;
    while (ferry_spsc_peek(rx, &rec, &len) == 0) {
        uint64_t meta = 0;
        if (len >= IP_META)
            memcpy(&meta, rec, 8);
        if ((meta & IP_REC_REF) && len == IP_REF_LEN) {
            fy_msg m;
            fy_msg_init(&m);
            memcpy(&m.size, (const uint8_t *)rec + 8, 8);
            memcpy(&m.content, (const uint8_t *)rec + 16, sizeof m.content);
            fy_msg_fini(&m);
        }
        ferry_spsc_release(rx, 0);
    }
    uint32_t n = atomic_load_explicit(&d->over_n, memory_order_relaxed);
    for (uint32_t k = 0; k < n; k++)
        fy_msg_fini(&d->over[d->over_head + k]);
    free(d->over);
    free(d->ring);
}

static void inproc_link_free(inproc_link *l)
{
    for (int i = 0; i < 2; i++) {
        ip_dir_discard(l, i);
        fy_msg_cache_drop(&l->end[i].rx_cache);
    }
    pthread_mutex_destroy(&l->lock);
    free(l);
}

static void inproc_release(fy_pipe *p)
{
    inproc_pipe *ip = (inproc_pipe *)p;
    inproc_link *l = ip->link;
    int side = ip->side;
    /* release: pairs with the acquire loads of closed (inproc_recv): our last publishes are
     * visible to whoever sees it. */
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

/* Messages in flight from a socket configured as tx to one configured as rx. */
static uint64_t inproc_limit(const fy_link_cfg *tx, const fy_link_cfg *rx)
{
    if (tx->sndhwm <= 0 || rx->rcvhwm <= 0)
        return UINT64_MAX;
    return (uint64_t)tx->sndhwm + (uint64_t)rx->rcvhwm;
}

static size_t inproc_ring_bytes(uint64_t limit)
{
    size_t cap = IP_RING_MIN;
    while (cap < IP_RING_MAX && (limit == UINT64_MAX || cap / IP_BYTES_PER_MSG < limit))
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
static int inproc_link_make(const char *name, fy_socket *c, const fy_link_cfg *ccfg, fy_socket *b,
                            const fy_link_cfg *bcfg)
{
    if (!fy_zmtp_socket_types_compatible(ccfg->type, bcfg->type))
        return FERRY_EPROTONOSUPPORT;
    inproc_link *l = aligned_alloc(alignof(inproc_link), sizeof *l);
    if (!l)
        return FERRY_ENOMEM;
    memset(l, 0, sizeof *l);
    /* side 0 = c, side 1 = b; dir[i] carries messages towards side i. */
    const fy_link_cfg *cfgs[2] = {ccfg, bcfg};
    for (int i = 0; i < 2; i++) {
        ip_dir *d = &l->dir[i];
        d->limit = inproc_limit(cfgs[1 - i], cfgs[i]);
        d->ring_cap = inproc_ring_bytes(d->limit);
        size_t fp = ferry_spsc_footprint(d->ring_cap);
        d->ring = fp ? aligned_alloc(128, (fp + 127) & ~(size_t)127) : NULL;
        if (!d->ring || ferry_spsc_format(d->ring, fp, d->ring_cap) != 0) {
            free(l->dir[0].ring);
            free(l->dir[1].ring);
            free(l);
            return FERRY_ENOMEM;
        }
    }
    pthread_mutex_init(&l->lock, NULL);
    atomic_init(&l->strong, !fy_wait_asym_register());
    l->sock[0] = c;
    l->sock[1] = b;
    l->refs = 2;
    snprintf(l->name, sizeof l->name, "%s", name);
    for (int i = 0; i < 2; i++) {
        inproc_pipe *ip = &l->end[i];
        ip->link = l;
        ip->side = i;
        ip->in = &l->dir[i];
        ip->out = &l->dir[1 - i];
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
        ferry_spsc_tx_init(&ip->tx, ip->out->ring, ferry_spsc_footprint(ip->out->ring_cap));
        ferry_spsc_rx_init(&ip->rx, ip->in->ring, ferry_spsc_footprint(ip->in->ring_cap));
        /* Copies up to an eighth of the ring: a few big frames must not starve the small ones
         * of ring space (they would then travel by pointer, which is still correct). */
        size_t cm = ip->out->ring_cap / 8;
        ip->copy_max = cm < FY_MSG_CACHE_MAX ? cm : FY_MSG_CACHE_MAX;
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
            int rc = inproc_link_make(name, e->sock, &e->cfg, s, cfg);
            if (rc == FERRY_EPROTONOSUPPORT)
                fy_ctl_note_error(e->sock, "inproc peer has an incompatible socket type");
            else if (rc != 0)
                fy_ctl_note_error(e->sock, "inproc link: out of memory");
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
        rc = inproc_link_make(name, s, cfg, e->sock, &e->cfg);
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

/* Is p the connecting end (side 0) of an inproc link to `name`? */
static bool inproc_is_connect_of(const fy_pipe *p, const char *name)
{
    const inproc_pipe *ip = (const inproc_pipe *)p;
    return p->ops == &inproc_ops && ip->side == 0 && strcmp(ip->link->name, name) == 0;
}

int fy_inproc_disconnect(fy_socket *s, const char *name)
{
    bool found = false;
    /* A connect still waiting for its bind: forget it. */
    pthread_mutex_lock(&inproc_lock);
    for (inproc_entry **pe = &inproc_table; *pe;) {
        inproc_entry *e = *pe;
        if (!e->bound && e->sock == s && strcmp(e->name, name) == 0) {
            *pe = e->next;
            free(e);
            found = true;
            continue;
        }
        pe = &e->next;
    }
    pthread_mutex_unlock(&inproc_lock);
    /* Links it made: attached ones (owner thread: this one) leave at the next sync like a pipe
     * that failed; published but unattached ones are marked dead, which the sync drops. Either
     * way the release marks the bound end dead and wakes its socket. */
    for (fy_pipe *p = s->pipes; p; p = p->sock_next) {
        if (inproc_is_connect_of(p, name)) {
            fy_socket_drop_pipe(s, p);
            found = true;
        }
    }
    pthread_mutex_lock(&s->lock);
    for (fy_pipe *p = s->incoming; p; p = p->sock_next) {
        if (inproc_is_connect_of(p, name)) {
            atomic_store(&p->dead, 1);
            p->saw_epipe = true;
            found = true;
        }
    }
    pthread_mutex_unlock(&s->lock);
    if (found)
        fy_socket_notify(s);
    return found ? 0 : FERRY_ENOENT;
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
