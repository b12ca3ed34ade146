/*
 * engine.c - the ZMTP 3.1 stream engine shared by tcp://, ipc:// and fd://.
 *
 * One engine is one peer connection over a byte stream. The control thread runs the handshake
 * (greeting + READY are queued together the moment the connection exists, so no round trip is
 * spent waiting for the peer's greeting) and then publishes the engine as a pipe. From then on the
 * socket's owner thread reads and writes the fds directly:
 *  - output: frames up to FY_ENG_COPY_MAX bytes are copied into one output buffer, larger bodies
 *    are queued by reference; one sendmsg/writev hands many frames to the kernel. A message is
 *    written at once when the link had been quiet for FY_ENG_BATCH_NS (so isolated messages see
 *    no added latency); in a burst frames accumulate until FY_ENG_OUT_HIGH bytes or
 *    FY_ENG_MAX_DELAY_NS since the last write. The socket flushes before it blocks, and the
 *    control thread drains a batch the application left behind (tail flush) so nothing accepted
 *    is stranded in user space.
 *  - input: reads of up to FY_ENG_IN_CAP bytes are parsed into many frames; bodies too large for
 *    the read buffer are read straight into their own message buffer, which grows with the bytes
 *    that actually arrive (a peer's size claim never drives a large allocation on its own).
 * Both directions have a lock because the control thread also writes (PING, PONG, tail flush)
 * and reads (answering PINGs while the application is not receiving); in steady state only the
 * owner takes them, so they are uncontended (eng_lock: one atomic in, one out).
 */
#include "common/grow.h"
#include "core/ctl.h"
#include "core/socket.h"
#include "transport/shm.h"
#include "transport/transport.h"
#include "wire/zmtp.h"

#include <errno.h>
#include <linux/futex.h>
#include <pthread.h>
#include <signal.h>
#include <stdlib.h>
#include <string.h>
#include <sys/epoll.h>
#include <sys/ioctl.h>
#include <sys/socket.h>
#include <sys/syscall.h>
#include <sys/uio.h>
#include <time.h>
#include <unistd.h>

#define FY_ENG_IN_CAP   (64u * 1024u)
#define FY_ENG_BIG_MIN  (FY_ENG_IN_CAP / 2) /* bodies above this bypass the read buffer */
#define FY_ENG_COPY_MAX 8192u               /* bodies up to this are copied on send */
#define FY_ENG_OUT_HIGH (16u * 1024u)       /* write at once above this many bytes */
/* The two batching times can be raised at build time for profiling: under callgrind a sender
 * runs ~50x slower, so every message would look isolated and be written on its own. */
#ifndef FY_ENG_BATCH_NS
#define FY_ENG_BATCH_NS 10000u /* link quiet this long: write at once */
#endif
#ifndef FY_ENG_MAX_DELAY_NS
#define FY_ENG_MAX_DELAY_NS 100000u /* in a burst, write at least this often */
#endif
#define FY_ENG_BIG_FIRST_ALLOC (256u * 1024u) /* first allocation for a large body */
#define FY_ENG_CLOCK_EVERY     16u            /* batched frames per clock read (eng_send_done) */
#define FY_ENG_IOV             64
#define FY_ENG_HANDSHAKE_NS    (30ull * 1000000000ull)
#define FY_ENG_IDLE_SCAN_NS    (50ull * 1000000ull)

enum { ENG_GREETING, ENG_READY, ENG_SHM, ENG_LIVE }; /* ENG_SHM: shm.c hand-over */

typedef struct eng_seg {
    uint64_t len;  /* bytes still to send from this segment */
    uint64_t done; /* message segments: body bytes already sent */
    fy_msg m;      /* message segments: the body; buffer segments: empty */
    /* A message segment whose body is still the caller's (send_many's large frames, written
     * with the batch's writev): only within that call, under out_lock; before the call returns
     * what the kernel did not take is copied into m (eng_batch_own). */
    const uint8_t *ext;
    bool is_msg;
} eng_seg;

/*
 * The two engine locks. The owner takes one per send or receive and the control thread only
 * now and then (tail flush, heartbeats, idle input scan), so nearly every acquisition is
 * uncontended: one compare-and-swap in and one exchange out, a fraction of what a
 * pthread_mutex_lock/unlock pair costs. Contended, it is a futex lock (0 free, 1 held, 2 held
 * with sleepers), so a holder preempted in a write(2) costs the waiter a sleep, not a spin.
 */
typedef struct eng_lock {
    _Atomic uint32_t v;
} eng_lock;

static void eng_lock_slow(eng_lock *l)
{
    uint32_t c = atomic_exchange_explicit(&l->v, 2, memory_order_acquire);
    while (c != 0) {
        syscall(SYS_futex, &l->v, FUTEX_WAIT_PRIVATE, 2, NULL, NULL, 0);
        c = atomic_exchange_explicit(&l->v, 2, memory_order_acquire);
    }
}

static inline void eng_lock_take(eng_lock *l)
{
    uint32_t z = 0;
    if (!atomic_compare_exchange_strong_explicit(&l->v, &z, 1, memory_order_acquire,
                                                 memory_order_relaxed))
        eng_lock_slow(l);
}

static inline bool eng_lock_try(eng_lock *l)
{
    uint32_t z = 0;
    return atomic_compare_exchange_strong_explicit(&l->v, &z, 1, memory_order_acquire,
                                                   memory_order_relaxed);
}

static inline void eng_lock_drop(eng_lock *l)
{
    /* release: pairs with the acquire of the next taker. */
    if (atomic_exchange_explicit(&l->v, 0, memory_order_release) == 2)
        syscall(SYS_futex, &l->v, FUTEX_WAKE_PRIVATE, 1, NULL, NULL, 0);
}

typedef struct fy_engine {
    fy_pipe pipe; /* first: a fy_pipe * is a fy_engine * */
    fy_socket *sock;
    fy_link_cfg cfg;
    bool is_sock; /* sockets get MSG_NOSIGNAL; pipes need SIGPIPE blocked around writes */
    int state;    /* control thread until live */
    int err;      /* why it died */
    uint64_t handshake_deadline;
    fy_zmtp_greeting_decoder gd;
    fy_zmtp_limits lim;

    /* input, under in_lock */
    eng_lock in_lock;
    uint8_t *in;
    size_t in_r, in_w;
    uint64_t in_abs;   /* stream offset of in[in_r] */
    uint64_t scan_abs; /* PINGs before this offset were answered by the control thread */
    fy_msg big;        /* large body being read in place */
    uint64_t big_have, big_alloc;
    bool big_on;
    fy_msg_content *rx_cache; /* body block reused for received frames (msg.h) */
    fy_msg peeked;            /* a frame poll_in took out already */
    bool has_peeked;
    bool in_eof;
    bool in_mid; /* the last frame delivered had MORE */
    _Atomic uint64_t last_rx_ns;
    _Atomic uint64_t owner_in_seq; /* bumped by every owner receive */
    uint64_t ctl_seen_in_seq;

    /* output, under out_lock */
    eng_lock out_lock;
    uint8_t *out;
    size_t out_r, out_w, out_cap;
    eng_seg *segs;
    uint32_t seg_head, seg_n, seg_cap;
    uint64_t *ends; /* stream offsets where queued messages end (SNDHWM accounting) */
    uint32_t ends_head, ends_n, ends_cap;
    uint64_t out_total, out_sent;
    uint64_t last_write_ns, last_append_ns; /* last_append_ns: clock at a recent append */
    uint64_t sock_write_at_append;          /* the socket's eng_write_ns at that append */
    uint32_t appends_unclocked;             /* frames appended since the clock was read */
    bool out_mid;
    bool out_dead;

    /* heartbeats (control thread) */
    uint64_t next_ping_ns, ping_deadline_ns, ping_sent_ns, next_scan_ns;
    _Atomic uint64_t peer_ttl_ns;
} fy_engine;

static const fy_pipe_ops fy_engine_ops;

static fy_engine *eng(fy_pipe *p)
{
    return (fy_engine *)p;
}

bool fy_pipe_is_engine(const fy_pipe *p)
{
    return p->ops == &fy_engine_ops || fy_pipe_uses_shm(p);
}

int fy_engine_rfd(const fy_pipe *p)
{
    return fy_pipe_uses_shm(p) ? fy_shm_eng_ufd(p) : p->rfd;
}

int fy_engine_wfd(const fy_pipe *p)
{
    return fy_pipe_uses_shm(p) ? fy_shm_eng_ufd(p) : p->wfd;
}

bool fy_engine_live(const fy_pipe *p)
{
    return ((const fy_engine *)p)->state == ENG_LIVE;
}

/* ------------------------------------------------------------------------------------------- */
/* output                                                                                      */
/* ------------------------------------------------------------------------------------------- */

static size_t eng_out_pending(const fy_engine *e)
{
    return (size_t)(e->out_total - e->out_sent);
}

static int eng_out_room(fy_engine *e, size_t need)
{
    if (e->out_cap - e->out_w >= need)
        return 0;
    if (e->out_r > 0) {
        memmove(e->out, e->out + e->out_r, e->out_w - e->out_r);
        e->out_w -= e->out_r;
        e->out_r = 0;
    }
    return fy_grow(&e->out, 1, &e->out_cap, e->out_w, need, 16384, SIZE_MAX);
}

/* Room for k more segments, so the appends of one message cannot fail half-way. */
static int eng_seg_reserve(fy_engine *e, uint32_t k)
{
    if ((uint64_t)e->seg_head + e->seg_n + k <= e->seg_cap)
        return 0;
    if (e->seg_head > 0) {
        memmove(e->segs, e->segs + e->seg_head, e->seg_n * sizeof *e->segs);
        e->seg_head = 0;
    }
    return fy_grow32(&e->segs, sizeof *e->segs, &e->seg_cap, e->seg_n, k, 16, UINT32_MAX / 2);
}

static eng_seg *eng_seg_push(fy_engine *e)
{
    if (e->seg_head + e->seg_n == e->seg_cap && eng_seg_reserve(e, 1) != 0)
        return NULL;
    eng_seg *g = &e->segs[e->seg_head + e->seg_n++];
    memset(g, 0, sizeof *g);
    return g;
}

/* The stream's last segment when the next bytes can join it, NULL when they need a new one (none
 * yet, or the last is a body sent by reference). */
static eng_seg *eng_out_tail_seg(fy_engine *e)
{
    eng_seg *last = e->seg_n ? &e->segs[e->seg_head + e->seg_n - 1] : NULL;
    return last && !last->is_msg ? last : NULL;
}

/* Appends len bytes (written by the caller at the returned pointer) to the byte stream, into room
 * the caller made (eng_out_room, and a segment slot when eng_out_tail_seg says one is needed):
 * cannot fail. */
static uint8_t *eng_out_put(fy_engine *e, size_t len)
{
    eng_seg *last = eng_out_tail_seg(e);
    if (!last)
        last = eng_seg_push(e); /* reserved by the caller */
    uint8_t *at = e->out + e->out_w;
    e->out_w += len;
    last->len += len;
    e->out_total += len;
    return at;
}

/* Appends len bytes (written by the caller at the returned pointer) to the byte stream. NULL:
 * out of memory, nothing appended. */
static uint8_t *eng_out_append(fy_engine *e, size_t len)
{
    if (eng_out_room(e, len) != 0)
        return NULL;
    if (!eng_out_tail_seg(e) && (fy_fault(FY_FAULT_ENG_SEG) || eng_seg_reserve(e, 1) != 0))
        return NULL;
    return eng_out_put(e, len);
}

static int eng_out_bytes(fy_engine *e, const void *data, size_t len)
{
    uint8_t *at = eng_out_append(e, len);
    if (!at)
        return FERRY_ENOMEM;
    memcpy(at, data, len);
    return 0;
}

/* Room for one more end offset (SNDHWM accounting); the ring stays a power of two. */
static int eng_ends_reserve(fy_engine *e)
{
    if (e->ends_n < e->ends_cap)
        return 0;
    uint32_t old = e->ends_cap;
    if (fy_grow32(&e->ends, sizeof *e->ends, &e->ends_cap, e->ends_n, 1, 64, UINT32_MAX) != 0)
        return FERRY_ENOMEM;
    fy_grow_unwrap(e->ends, sizeof *e->ends, old, e->ends_head);
    return 0;
}

/* Records that a message ends at the current end of the stream (SNDHWM accounting), in room
 * eng_ends_reserve made. */
static void eng_end_mark(fy_engine *e)
{
    e->ends[(e->ends_head + e->ends_n) & (e->ends_cap - 1)] = e->out_total;
    e->ends_n++;
}

/* eng_ends_reserve behind the test-only fault site (pattern.h), off the per-frame path. */
static __attribute__((noinline, cold)) int eng_end_reserve(fy_engine *e)
{
    if (fy_fault(FY_FAULT_ENG_END))
        return FERRY_ENOMEM;
    return eng_ends_reserve(e);
}

static void eng_out_advance(fy_engine *e, uint64_t n)
{
    e->out_sent += n;
    while (n > 0 && e->seg_n > 0) {
        eng_seg *g = &e->segs[e->seg_head];
        uint64_t take = n < g->len ? n : g->len;
        if (g->is_msg)
            g->done += take;
        else
            e->out_r += take;
        g->len -= take;
        n -= take;
        if (g->len == 0) {
            if (g->is_msg)
                fy_msg_fini(&g->m);
            e->seg_head++;
            e->seg_n--;
        }
    }
    if (e->seg_n == 0) {
        e->seg_head = 0;
        e->out_r = e->out_w = 0;
    }
    while (e->ends_n > 0 && e->ends[e->ends_head & (e->ends_cap - 1)] <= e->out_sent) {
        e->ends_head = (e->ends_head + 1) & (e->ends_cap - 1);
        e->ends_n--;
    }
}

static ssize_t eng_sys_write(fy_engine *e, struct iovec *iov, int n)
{
    if (e->is_sock) {
        struct msghdr mh;
        memset(&mh, 0, sizeof mh);
        mh.msg_iov = iov;
        mh.msg_iovlen = (size_t)n;
        return sendmsg(e->pipe.wfd, &mh, MSG_NOSIGNAL | MSG_DONTWAIT);
    }
    /* A pipe raises SIGPIPE when its reader is gone; keep it from killing the application. */
    sigset_t set, old;
    sigemptyset(&set);
    sigaddset(&set, SIGPIPE);
    pthread_sigmask(SIG_BLOCK, &set, &old);
    ssize_t r = writev(e->pipe.wfd, iov, n);
    if (r < 0 && errno == EPIPE) {
        int saved = errno;
        struct timespec zero = {0, 0};
        while (sigtimedwait(&set, NULL, &zero) > 0) {
        }
        errno = saved;
    }
    pthread_sigmask(SIG_SETMASK, &old, NULL);
    return r;
}

/* Writes queued output until done or the kernel is full. Under out_lock. 0 = all out,
 * 1 = pending, < 0 = dead. */
static int eng_write(fy_engine *e, uint64_t now)
{
    if (e->out_dead)
        return FERRY_EPIPE;
    while (e->seg_n > 0) {
        struct iovec iov[FY_ENG_IOV];
        int n = 0;
        size_t pos = e->out_r;
        for (uint32_t i = 0; i < e->seg_n && n < FY_ENG_IOV; i++) {
            eng_seg *g = &e->segs[e->seg_head + i];
            if (g->ext) {
                iov[n].iov_base = (void *)(uintptr_t)(g->ext + g->done);
            } else if (g->is_msg) {
                iov[n].iov_base = fy_msg_data(&g->m) + g->done;
            } else {
                iov[n].iov_base = e->out + pos;
                pos += g->len;
            }
            iov[n].iov_len = g->len;
            n++;
        }
        ssize_t r = eng_sys_write(e, iov, n);
        if (r < 0) {
            if (errno == EINTR)
                continue;
            if (errno == EAGAIN || errno == EWOULDBLOCK)
                return 1;
            e->out_dead = true;
            return FERRY_EPIPE;
        }
        e->last_write_ns = now;
        eng_out_advance(e, (uint64_t)r);
    }
    return 0;
}

/* ------------------------------------------------------------------------------------------- */
/* death                                                                                       */
/* ------------------------------------------------------------------------------------------- */

void fy_engine_kill(fy_pipe *p, int err)
{
    fy_engine *e = eng(p);
    int expected = 0;
    if (!atomic_compare_exchange_strong(&p->dead, &expected, 1))
        return;
    e->err = err;
    fy_shm_eng_kill(p, err);
    /* Shutting the socket down makes the control thread's epoll report the hang-up, so the
     * control thread learns of deaths the owner found (protocol errors) and reconnects. */
    if (e->is_sock)
        shutdown(fy_engine_rfd(p), SHUT_RDWR);
    if (e->state == ENG_LIVE && p->ctl_published)
        fy_socket_notify(e->sock);
}

/* ------------------------------------------------------------------------------------------- */
/* input                                                                                       */
/* ------------------------------------------------------------------------------------------- */

/* Reads more bytes into the input buffer. Under in_lock. > 0 bytes, 0 EOF, FERRY_EAGAIN, < 0. */
static ssize_t eng_read(fy_engine *e)
{
    if (e->in_eof)
        return 0;
    /* Move the unconsumed tail (a partial frame) to the front when the buffer is used up or
     * the space after it is too small for a worthwhile read: a batch receive that decoded all
     * whole frames reads once, and a read of a few hundred bytes would cost it the rest. */
    if (e->in_r > 0 && (e->in_r == e->in_w || FY_ENG_IN_CAP - e->in_w < FY_ENG_IN_CAP / 4)) {
        memmove(e->in, e->in + e->in_r, e->in_w - e->in_r);
        e->in_w -= e->in_r;
        e->in_r = 0;
    }
    if (e->in_w == FY_ENG_IN_CAP)
        return FERRY_EAGAIN; /* full of unconsumed frames */
    for (;;) {
        ssize_t r = read(e->pipe.rfd, e->in + e->in_w, FY_ENG_IN_CAP - e->in_w);
        if (r > 0) {
            e->in_w += (size_t)r;
            atomic_store_explicit(&e->last_rx_ns, fy_now_ns(), memory_order_relaxed);
            return r;
        }
        if (r == 0) {
            e->in_eof = true;
            return 0;
        }
        if (errno == EINTR)
            continue;
        if (errno == EAGAIN || errno == EWOULDBLOCK)
            return FERRY_EAGAIN;
        e->in_eof = true;
        return errno == ECONNRESET ? FERRY_ECONNRESET : FERRY_EIO;
    }
}

static void eng_consume(fy_engine *e, size_t n)
{
    e->in_r += n;
    e->in_abs += n;
}

static int eng_queue_pong(fy_engine *e, const fy_zmtp_command *c)
{
    uint8_t buf[64];
    ssize_t n = fy_zmtp_pong_encode(buf, sizeof buf, c->arg, c->arg_len);
    if (n < 0)
        return (int)n;
    eng_lock_take(&e->out_lock);
    int rc = eng_out_bytes(e, buf, (size_t)n);
    if (rc == 0)
        rc = eng_write(e, fy_now_ns()) < 0 ? FERRY_EPIPE : 0;
    eng_lock_drop(&e->out_lock);
    return rc;
}

/* A command frame arrived on a live link. Returns 1 when it must be delivered as a frame
 * (subscriptions for PUB/XPUB, in *m), 0 when handled, < 0 when the link must die. */
static int eng_command(fy_engine *e, const uint8_t *body, size_t len, uint64_t abs, fy_msg *m,
                       bool from_ctl)
{
    fy_zmtp_command c;
    int rc = fy_zmtp_command_decode(body, len, &c);
    if (rc < 0)
        return FERRY_EPROTO;
    switch (c.type) {
    case FY_ZMTP_CMD_PING:
        if (c.ttl_ds)
            atomic_store_explicit(&e->peer_ttl_ns, (uint64_t)c.ttl_ds * 100000000ull,
                                  memory_order_relaxed);
        if (!from_ctl && abs < e->scan_abs)
            return 0; /* the control thread answered this one already */
        return eng_queue_pong(e, &c) < 0 ? FERRY_EPIPE : 0;
    case FY_ZMTP_CMD_PONG:
    case FY_ZMTP_CMD_UNKNOWN:
        return 0;
    case FY_ZMTP_CMD_SUBSCRIBE:
    case FY_ZMTP_CMD_CANCEL:
        if (from_ctl || (e->cfg.type != FERRY_PUB && e->cfg.type != FERRY_XPUB))
            return 0;
        if (fy_msg_init_size(m, c.arg_len + 1) != 0)
            return FERRY_ENOMEM;
        fy_msg_data(m)[0] = c.type == FY_ZMTP_CMD_SUBSCRIBE ? 1 : 0;
        if (c.arg_len)
            memcpy(fy_msg_data(m) + 1, c.arg, c.arg_len);
        m->flags = FY_MSG_SUB;
        return 1;
    case FY_ZMTP_CMD_ERROR:
        return FERRY_ECONNABORTED;
    default: /* READY twice */
        return FERRY_EPROTO;
    }
}

/* Reads the rest of a large body straight into its buffer. Under in_lock. 0 complete,
 * FERRY_EAGAIN, or < 0. */
static int eng_big_fill(fy_engine *e)
{
    uint64_t size = e->big.size;
    while (e->big_have < size) {
        if (e->big_have == e->big_alloc) {
            uint64_t na = e->big_alloc * 2;
            if (na > size)
                na = size;
            if (fy_msg_block_grow(&e->big, (size_t)na) != 0)
                return FERRY_ENOMEM;
            e->big_alloc = na;
        }
        ssize_t r = read(e->pipe.rfd, e->big.content->data + e->big_have,
                         (size_t)(e->big_alloc - e->big_have));
        if (r > 0) {
            e->big_have += (uint64_t)r;
            e->in_abs += (uint64_t)r;
            atomic_store_explicit(&e->last_rx_ns, fy_now_ns(), memory_order_relaxed);
            continue;
        }
        if (r == 0) {
            e->in_eof = true;
            return FERRY_EPIPE;
        }
        if (errno == EINTR)
            continue;
        if (errno == EAGAIN || errno == EWOULDBLOCK)
            return FERRY_EAGAIN;
        e->in_eof = true;
        return FERRY_EPIPE;
    }
    return 0;
}

/*
 * The next frame for the owner. Under in_lock. 0 (frame in *m), FERRY_EAGAIN, FERRY_EPIPE (peer
 * gone, input drained) or FERRY_EPROTO (and the link is killed).
 */
static int eng_next(fy_engine *e, fy_msg *m)
{
    for (;;) {
        if (e->big_on) {
            int rc = eng_big_fill(e);
            if (rc == FERRY_EAGAIN)
                return rc;
            if (rc < 0) {
                fy_msg_fini(&e->big);
                e->big_on = false;
                return rc == FERRY_ENOMEM ? rc : FERRY_EPIPE;
            }
            e->big_on = false;
            /* The next large body of this socket reuses the block once it is released. */
            fy_msg_pool_keep(&e->sock->rx_pool, &e->big);
            fy_msg_move(m, &e->big);
            return 0;
        }
        fy_zmtp_frame f;
        uint64_t need = 0;
        size_t avail = e->in_w - e->in_r;
        int rc = avail ? fy_zmtp_frame_decode(e->in + e->in_r, avail, &e->lim, &f, &need) : 0;
        if (avail == 0)
            f.header_len = 0;
        if (rc < 0)
            return FERRY_EPROTO;
        if (rc == 1) {
            const uint8_t *body = e->in + e->in_r + f.header_len;
            size_t total = f.header_len + (size_t)f.size;
            uint64_t abs = e->in_abs;
            if (fy_zmtp_frame_is_command(&f)) {
                int c = eng_command(e, body, (size_t)f.size, abs, m, false);
                eng_consume(e, total);
                if (c == 1)
                    return 0;
                if (c < 0)
                    return c == FERRY_ENOMEM ? c : FERRY_EPROTO;
                continue;
            }
            if (fy_msg_init_cached(m, &e->rx_cache, (size_t)f.size) != 0)
                return FERRY_ENOMEM;
            if (f.size)
                memcpy(fy_msg_data(m), body, (size_t)f.size);
            m->flags = fy_zmtp_frame_more(&f) ? FY_MSG_MORE : 0;
            eng_consume(e, total);
            return 0;
        }
        /* Incomplete. A large message body is read in place rather than through the buffer. */
        if (f.header_len && !fy_zmtp_frame_is_command(&f) && f.size > FY_ENG_BIG_MIN) {
            /* A free block of the socket's pool already exists, so using it is not an
             * allocation driven by the peer's claim; a new block grows as bytes arrive. */
            if (fy_msg_pool_take(&e->big, &e->sock->rx_pool, (size_t)f.size)) {
                e->big_alloc = f.size;
            } else {
                uint64_t first = f.size < FY_ENG_BIG_FIRST_ALLOC ? f.size : FY_ENG_BIG_FIRST_ALLOC;
                int brc = fy_msg_init_block(&e->big, (size_t)f.size, (size_t)first);
                if (brc != 0)
                    return brc;
                e->big_alloc = first;
            }
            e->big.flags = fy_zmtp_frame_more(&f) ? FY_MSG_MORE : 0;
            size_t have = avail - f.header_len;
            memcpy(fy_msg_data(&e->big), e->in + e->in_r + f.header_len, have);
            e->big_have = have;
            e->big_on = true;
            eng_consume(e, avail);
            continue;
        }
        ssize_t r = eng_read(e);
        if (r > 0)
            continue;
        if (r == FERRY_EAGAIN)
            return FERRY_EAGAIN;
        return FERRY_EPIPE; /* EOF or error with no complete frame left */
    }
}

/* ------------------------------------------------------------------------------------------- */
/* pipe ops (owner thread)                                                                     */
/* ------------------------------------------------------------------------------------------- */

/*
 * After a frame was appended, under out_lock (which this drops). Batching: an isolated message
 * (the link was quiet) goes out at once; in a burst frames accumulate until FY_ENG_OUT_HIGH
 * bytes or FY_ENG_MAX_DELAY_NS since the last write. Returns 0: the frame was accepted (a write
 * failure is reported as the pipe's death, not as this frame's error).
 *
 * The clock is read only when the output was empty before this frame (the isolated-message
 * case, where the quiet gap decides) and on every FY_ENG_CLOCK_EVERY-th frame of a batch: a
 * clock_gettime costs 20-250 ns on this VM (kvm-clock, more under load), as much as the rest
 * of a 64 B send, and a batch only needs time to within a few frames (at full speed 16 frames
 * take ~2 us, well inside the 10 us quiet gap and the 100 us write interval).
 */
static int eng_send_done(fy_engine *e, bool more, bool was_idle)
{
    fy_pipe *p = &e->pipe;
    _Atomic uint64_t *wsum = p->sock ? &p->sock->eng_write_ns : NULL;
    uint64_t now;
    if (was_idle || ++e->appends_unclocked >= FY_ENG_CLOCK_EVERY) {
        now = fy_now_ns();
        e->appends_unclocked = 0;
    } else {
        now = e->last_append_ns;
    }
    /* The gap since this link's last append, less the time the socket's links spent writing
     * in between: a PUB fanning out to N links writes to the others between two appends here,
     * and counting those writes as the application's silence made every link write every
     * message at once (tcp fan-out to 4 subscribers on 2 CPUs: ~45 k msgs/s). */
    uint64_t quiet = now - e->last_append_ns;
    if (wsum) {
        uint64_t w = atomic_load_explicit(wsum, memory_order_relaxed);
        uint64_t busy = w - e->sock_write_at_append;
        quiet = quiet > busy ? quiet - busy : 0;
        e->sock_write_at_append = w;
    }
    e->last_append_ns = now;
    size_t pending = eng_out_pending(e);
    if (pending >= FY_ENG_OUT_HIGH ||
        (!more && (quiet >= FY_ENG_BATCH_NS || now - e->last_write_ns >= FY_ENG_MAX_DELAY_NS))) {
        if (eng_write(e, now) < 0) {
            eng_lock_drop(&e->out_lock);
            fy_engine_kill(p, FERRY_EPIPE);
            return 0;
        }
        if (wsum) {
            uint64_t spent = fy_now_ns() - now;
            atomic_fetch_add_explicit(wsum, spent, memory_order_relaxed);
            e->sock_write_at_append += spent; /* our own write is not the others' */
        }
    }
    if (eng_out_pending(e) > 0) {
        p->dirty = true;
        eng_lock_drop(&e->out_lock);
        fy_ctl_flush_watch();
        return 0;
    }
    eng_lock_drop(&e->out_lock);
    return 0;
}

static int eng_pipe_send(fy_pipe *p, fy_msg *m)
{
    fy_engine *e = eng(p);
    if (atomic_load_explicit(&p->dead, memory_order_relaxed))
        return FERRY_EPIPE;
    bool sub = (m->flags & FY_MSG_SUB) != 0;
    bool more = (m->flags & FY_MSG_MORE) != 0;
    size_t size = fy_msg_size(m);
    eng_lock_take(&e->out_lock);
    int rc = 0;
    if (e->out_dead) {
        rc = FERRY_EPIPE;
        goto out;
    }
    bool was_idle = e->out_total == e->out_sent;
    if (!e->out_mid && !sub && e->cfg.sndhwm > 0 && e->ends_n >= (uint32_t)e->cfg.sndhwm) {
        /* At SNDHWM: the kernel may have taken bytes since the last write; try before refusing,
         * so the socket's spin window can make progress without the control thread. */
        if (eng_write(e, fy_now_ns()) < 0) {
            eng_lock_drop(&e->out_lock);
            fy_engine_kill(p, FERRY_EPIPE);
            return FERRY_EPIPE;
        }
        if (e->ends_n >= (uint32_t)e->cfg.sndhwm) {
            rc = FERRY_EAGAIN;
            goto out;
        }
    }
    /* FERRY_ENOMEM means that nothing of the frame was queued (docs/api.md: the caller sends
     * the same frame again), so what a message's last frame needs besides its bytes, room to
     * record where the message ends, is reserved before the frame is queued. Recording it
     * afterwards queued the frame and then refused it, and the retry reached the peer twice.
     * The ring has room except when it must grow (or a test program hooks the fault site). */
    if (!more && __builtin_expect(e->ends_n == e->ends_cap || fy_test_fault, 0) &&
        e->cfg.sndhwm > 0 && (rc = eng_end_reserve(e)) != 0)
        goto out;
    if (sub && size >= 1 && !more &&
        fy_zmtp_version_has_sub_commands(FY_ZMTP_MAJOR, (uint8_t)p->peer.zmtp_minor)) {
        const uint8_t *d = fy_msg_data(m);
        ssize_t n = fy_zmtp_subscription_encode(NULL, 0, FY_ZMTP_MAJOR, (uint8_t)p->peer.zmtp_minor,
                                                d[0] == 1, d + 1, size - 1);
        uint8_t *at = n > 0 ? eng_out_append(e, (size_t)n) : NULL;
        if (!at) {
            rc = n < 0 ? (int)n : FERRY_ENOMEM;
            goto out;
        }
        fy_zmtp_subscription_encode(at, (size_t)n, FY_ZMTP_MAJOR, (uint8_t)p->peer.zmtp_minor,
                                    d[0] == 1, d + 1, size - 1);
    } else {
        uint8_t hdr[FY_ZMTP_MAX_HEADER];
        int hl = fy_zmtp_frame_header_encode(hdr, more ? FY_ZMTP_FLAG_MORE : 0, size);
        if (hl < 0) {
            rc = hl;
            goto out;
        }
        if (size <= FY_ENG_COPY_MAX) {
            uint8_t *at = eng_out_append(e, (size_t)hl + size);
            if (!at) {
                rc = FERRY_ENOMEM;
                goto out;
            }
            memcpy(at, hdr, (size_t)hl);
            if (size)
                memcpy(at + hl, fy_msg_data(m), size);
            fy_msg_fini(m);
        } else {
            /* The body is queued by reference in a segment of its own behind the header's
             * bytes. Both segments and the header's room are reserved before the header is
             * queued: a header left in the stream without its body (the body's segment could not
             * be added) made the peer take the next frame's bytes for this body. */
            if (fy_fault(FY_FAULT_ENG_SEG) || eng_seg_reserve(e, 2) != 0 ||
                eng_out_room(e, (size_t)hl) != 0) {
                rc = FERRY_ENOMEM;
                goto out;
            }
            memcpy(eng_out_put(e, (size_t)hl), hdr, (size_t)hl);
            eng_seg *g = eng_seg_push(e); /* reserved above: cannot fail */
            g->is_msg = true;
            g->len = size;
            fy_msg_move(&g->m, m);
            e->out_total += size;
        }
    }
    fy_msg_init(m);
    e->out_mid = more;
    if (!more && e->cfg.sndhwm > 0)
        eng_end_mark(e); /* room reserved above */
    return eng_send_done(e, more, was_idle);
out:
    eng_lock_drop(&e->out_lock);
    return rc;
}

/*
 * A large whole message from the caller's buffer (fast path): when nothing is queued ahead of
 * it, it is written to the kernel straight from buf, so a link that keeps up costs no copy in
 * user space at all (the general path copies the body into a block first, and for 1 MiB frames
 * that memcpy and its cache misses were as large as the kernel's own copy). Only what the
 * kernel does not take is copied, into a pooled block queued like any large frame. Declines
 * when output is queued (order), at SNDHWM, or mid-message.
 */
static int eng_send_through(fy_engine *e, const void *buf, size_t len)
{
    fy_pipe *p = &e->pipe;
    eng_lock_take(&e->out_lock);
    if (e->out_dead || e->out_mid || e->out_total != e->out_sent ||
        (e->cfg.sndhwm > 0 && (e->ends_n >= (uint32_t)e->cfg.sndhwm || e->ends_n == e->ends_cap))) {
        eng_lock_drop(&e->out_lock);
        return FY_ENG_DECLINE;
    }
    uint8_t hdr[FY_ZMTP_MAX_HEADER];
    int hl = fy_zmtp_frame_header_encode(hdr, 0, len);
    if (hl < 0) {
        eng_lock_drop(&e->out_lock);
        return FY_ENG_DECLINE;
    }
    struct iovec iov[2] = {{hdr, (size_t)hl}, {(void *)(uintptr_t)buf, len}};
    ssize_t r;
    do {
        r = eng_sys_write(e, iov, 2);
    } while (r < 0 && errno == EINTR);
    if (r < 0 && errno != EAGAIN && errno != EWOULDBLOCK) {
        /* The general path queues it, finds the same error and reports the pipe's death. */
        eng_lock_drop(&e->out_lock);
        return FY_ENG_DECLINE;
    }
    uint64_t done = r > 0 ? (uint64_t)r : 0;
    uint64_t now = fy_now_ns();
    e->out_total += done;
    e->out_sent += done;
    e->last_append_ns = now;
    if (done > 0)
        e->last_write_ns = now;
    if (done == (uint64_t)hl + len) {
        eng_lock_drop(&e->out_lock);
        return 0;
    }
    /* The rest waits in user space: what is left of the header as bytes, the body's rest in a
     * block of the socket's pool (this runs on the owner thread, which owns that pool). */
    size_t hdr_left = done < (uint64_t)hl ? (size_t)hl - (size_t)done : 0;
    size_t body_off = done > (uint64_t)hl ? (size_t)(done - (uint64_t)hl) : 0;
    size_t rest = len - body_off;
    fy_msg m;
    int rc = fy_msg_init_pooled(&m, &e->sock->tx_pool, rest);
    eng_seg *g = NULL;
    if (rc == 0 && (hdr_left == 0 || eng_out_bytes(e, hdr + hl - hdr_left, hdr_left) == 0))
        g = eng_seg_push(e);
    if (!g) {
        /* Part of the frame is on the wire already: without memory the stream cannot go on. */
        fy_msg_fini(&m);
        eng_lock_drop(&e->out_lock);
        fy_engine_kill(p, FERRY_ENOMEM);
        return 0;
    }
    memcpy(fy_msg_data(&m), (const uint8_t *)buf + body_off, rest);
    g->is_msg = true;
    g->len = rest;
    fy_msg_move(&g->m, &m);
    e->out_total += rest;
    if (e->cfg.sndhwm > 0)
        eng_end_mark(e);
    p->dirty = true;
    eng_lock_drop(&e->out_lock);
    fy_ctl_flush_watch();
    return 0;
}

int fy_engine_send_buf(fy_pipe *p, const void *buf, size_t len)
{
    if (__builtin_expect(p->ops != &fy_engine_ops, 0))
        return fy_shm_send_buf(p, buf, len); /* a link switched to shm (else it declines) */
    if (atomic_load_explicit(&p->dead, memory_order_relaxed))
        return FY_ENG_DECLINE;
    fy_engine *e = eng(p);
    if (len > FY_ENG_COPY_MAX)
        return eng_send_through(e, buf, len);
    eng_lock_take(&e->out_lock);
    /* At SNDHWM the general path tries a write, then refuses or waits. The end-offset ring gets
     * its room first, so a failed allocation never leaves a frame counted nowhere. */
    if (e->out_dead || e->out_mid ||
        (e->cfg.sndhwm > 0 && (e->ends_n >= (uint32_t)e->cfg.sndhwm || e->ends_n == e->ends_cap))) {
        eng_lock_drop(&e->out_lock);
        return FY_ENG_DECLINE;
    }
    bool was_idle = e->out_total == e->out_sent;
    size_t hl = len <= 255 ? 2 : FY_ZMTP_MAX_HEADER;
    size_t need = hl + len;
    uint8_t *at;
    eng_seg *last = e->seg_n ? &e->segs[e->seg_head + e->seg_n - 1] : NULL;
    if (last && !last->is_msg && e->out_cap - e->out_w >= need) {
        /* The common case of eng_out_append, inline: room after the last buffer segment. */
        at = e->out + e->out_w;
        e->out_w += need;
        last->len += need;
        e->out_total += need;
    } else if (!(at = eng_out_append(e, need))) {
        eng_lock_drop(&e->out_lock);
        return FERRY_ENOMEM;
    }
    if (hl == 2) {
        at[0] = 0;
        at[1] = (uint8_t)len;
    } else {
        at[0] = FY_ZMTP_FLAG_LONG;
        for (int i = 0; i < 8; i++)
            at[1 + i] = (uint8_t)((uint64_t)len >> (56 - 8 * i));
    }
    if (len)
        memcpy(at + hl, buf, len);
    if (e->cfg.sndhwm > 0)
        eng_end_mark(e); /* room checked above */
    return eng_send_done(e, false, was_idle);
}

static int eng_pipe_recv(fy_pipe *p, fy_msg *m)
{
    fy_engine *e = eng(p);
    eng_lock_take(&e->in_lock);
    int rc;
    if (e->has_peeked) {
        fy_msg_move(m, &e->peeked);
        e->has_peeked = false;
        rc = 0;
    } else {
        fy_msg_fini(m);
        rc = eng_next(e, m);
    }
    if (rc == 0)
        e->in_mid = fy_msg_more(m);
    atomic_store_explicit(&e->owner_in_seq,
                          atomic_load_explicit(&e->owner_in_seq, memory_order_relaxed) + 1,
                          memory_order_relaxed);
    eng_lock_drop(&e->in_lock);
    if (rc < 0 && rc != FERRY_EAGAIN) {
        p->saw_epipe = true;
        if (rc == FERRY_EPROTO)
            fy_ctl_note_error(e->sock, "peer sent an invalid frame");
        fy_engine_kill(p, rc);
        if (rc != FERRY_EPROTO)
            rc = FERRY_EPIPE;
    }
    return rc;
}

int fy_engine_recv_buf(fy_pipe *p, void *buf, size_t cap, size_t *size)
{
    if (__builtin_expect(p->ops != &fy_engine_ops, 0))
        return fy_shm_recv_buf(p, buf, cap, size); /* a link switched to shm (else it declines) */
    fy_engine *e = eng(p);
    eng_lock_take(&e->in_lock);
    if (e->has_peeked || e->big_on || e->in_mid) {
        eng_lock_drop(&e->in_lock);
        return FY_ENG_DECLINE;
    }
    for (bool tried_read = false;; tried_read = true) {
        size_t avail = e->in_w - e->in_r;
        const uint8_t *h = e->in + e->in_r;
        /* Plain data frames only (flags 0 or LONG): MORE, commands and invalid flags go the
         * general way, which checks them (fy_zmtp_frame_decode). */
        if (avail >= 2 && (h[0] & ~FY_ZMTP_FLAG_LONG) == 0) {
            size_t hl = 2;
            uint64_t sz = h[1];
            if (h[0] == FY_ZMTP_FLAG_LONG) {
                hl = FY_ZMTP_MAX_HEADER;
                sz = 0;
                if (avail >= hl)
                    for (int i = 0; i < 8; i++)
                        sz = sz << 8 | h[1 + i];
                if (avail < hl || sz > FY_ENG_BIG_MIN)
                    goto decline; /* large bodies bypass the read buffer */
            }
            if ((uint64_t)(avail - hl) >= sz) {
                if (sz && cap)
                    memcpy(buf, h + hl, (size_t)(sz < cap ? sz : cap));
                eng_consume(e, hl + (size_t)sz);
                *size = (size_t)sz;
                atomic_store_explicit(&e->owner_in_seq,
                                      atomic_load_explicit(&e->owner_in_seq, memory_order_relaxed) +
                                          1,
                                      memory_order_relaxed);
                eng_lock_drop(&e->in_lock);
                return 0;
            }
        } else if (avail >= 2) {
            goto decline;
        }
        /* Incomplete or empty: one read, then the general path takes over. */
        if (tried_read || eng_read(e) <= 0)
            goto decline;
    }
decline:
    eng_lock_drop(&e->in_lock);
    return FY_ENG_DECLINE;
}

/* ------------------------------------------------------------------------------------------- */
/* batches (ferry_socket_send_many/recv_many, owner thread)                                    */
/* ------------------------------------------------------------------------------------------- */

/*
 * Before send_many returns, the caller's large bodies the kernel has not taken yet are copied
 * into blocks of the socket's pool and queued like any large frame. Without memory the stream
 * cannot go on (part of the batch may be on the wire): the output is declared dead and the link
 * killed after the lock is dropped (returns false).
 */
static bool eng_batch_own(fy_engine *e)
{
    for (uint32_t i = 0; i < e->seg_n; i++) {
        eng_seg *g = &e->segs[e->seg_head + i];
        if (!g->ext)
            continue;
        fy_msg m;
        if (fy_msg_init_pooled(&m, &e->sock->tx_pool, (size_t)g->len) != 0) {
            e->out_dead = true; /* eng_write never looks at a segment again */
            for (uint32_t j = i; j < e->seg_n; j++)
                e->segs[e->seg_head + j].ext = NULL;
            return false;
        }
        memcpy(fy_msg_data(&m), g->ext + g->done, (size_t)g->len);
        fy_msg_move(&g->m, &m);
        g->ext = NULL;
        g->done = 0;
    }
    return true;
}

size_t fy_engine_send_many(fy_pipe *p, const ferry_iov *v, size_t n, uint64_t *bytes, size_t *msgs,
                           bool *full)
{
    *bytes = 0;
    *msgs = 0;
    *full = false;
    if (p->ops != &fy_engine_ops || atomic_load_explicit(&p->dead, memory_order_relaxed))
        return 0; /* a link switched to shm (its own batch path), or the general path's business */
    fy_engine *e = eng(p);
    eng_lock_take(&e->out_lock);
    if (e->out_dead || e->out_mid) {
        eng_lock_drop(&e->out_lock);
        return 0;
    }
    bool was_idle = e->out_total == e->out_sent, borrowed = false, failed = false, kfull = false;
    uint32_t hwm = e->cfg.sndhwm > 0 ? (uint32_t)e->cfg.sndhwm : 0;
    uint64_t total = 0;
    size_t i = 0, nmsg = 0;
    while (i < n) {
        /* The common messages, inline: single frames that fit the output buffer's last
         * segment, below SNDHWM with room for their end offsets. The buffer position lives in
         * locals for the run (the engine's fields would be reloaded after every memcpy). */
        if (e->seg_n && !e->segs[e->seg_head + e->seg_n - 1].is_msg) {
            eng_seg *last = &e->segs[e->seg_head + e->seg_n - 1];
            uint8_t *out = e->out;
            size_t w = e->out_w, room = e->out_cap - e->out_w;
            uint64_t tot = e->out_total, seglen = last->len, high = e->out_sent + FY_ENG_OUT_HIGH;
            uint32_t en = e->ends_n, elim = hwm < e->ends_cap ? hwm : e->ends_cap;
            uint64_t *ends = e->ends;
            uint32_t eh = e->ends_head, emask = e->ends_cap - 1;
            size_t i0 = i;
            while (i < n) {
                size_t len = v[i].len;
                if ((v[i].flags & FERRY_MORE) || len > FY_ENG_COPY_MAX || (hwm && en >= elim))
                    break;
                size_t need = (len <= 255 ? 2 : FY_ZMTP_MAX_HEADER) + len;
                if (room < need)
                    break;
                uint8_t *at = out + w;
                size_t hl = (size_t)fy_zmtp_frame_header_encode(at, 0, len);
                if (len)
                    memcpy(at + hl, v[i].buf, len);
                w += need;
                room -= need;
                tot += need;
                seglen += need;
                total += len;
                if (hwm)
                    ends[(eh + en++) & emask] = tot;
                i++;
                if (tot >= high)
                    break; /* a write is due (below) */
            }
            if (i > i0) {
                e->out_w = w;
                e->out_total = tot;
                last->len = seglen;
                e->ends_n = en;
                nmsg += i - i0;
                if (!kfull && eng_out_pending(e) >= FY_ENG_OUT_HIGH) {
                    int wr = eng_write(e, fy_now_ns());
                    if (wr < 0) {
                        failed = true;
                        break;
                    }
                    kfull = wr == 1;
                }
                continue;
            }
        }
        /* Any other message: its extent and the bytes it adds to the output buffer are
         * reserved first, so a message is either queued whole or not at all. */
        size_t j = i;
        uint64_t need = 0;
        uint32_t nbig = 0;
        for (;; j++) {
            if (j == n)
                goto stop; /* its last frame is not in this batch: the general path */
            uint64_t len = v[j].len;
            if (len > FY_ENG_COPY_MAX) {
                need += FY_ZMTP_MAX_HEADER;
                nbig++;
            } else {
                need += (len <= 255 ? 2 : FY_ZMTP_MAX_HEADER) + len;
            }
            if (!(v[j].flags & FERRY_MORE))
                break;
        }
        if (hwm) {
            if (e->ends_n >= hwm) {
                /* As the single send: the kernel may have taken bytes since the last write. */
                if (eng_write(e, fy_now_ns()) < 0) {
                    failed = true;
                    break;
                }
                if (e->ends_n >= hwm) {
                    *full = true;
                    break;
                }
            }
            if (eng_ends_reserve(e) != 0)
                break;
        }
        if (need > SIZE_MAX / 2 || eng_out_room(e, (size_t)need) != 0 ||
            eng_seg_reserve(e, 2 * nbig + 1) != 0)
            break;
        eng_seg *last = e->seg_n ? &e->segs[e->seg_head + e->seg_n - 1] : NULL;
        for (size_t k = i; k <= j; k++) {
            size_t len = v[k].len;
            bool big = len > FY_ENG_COPY_MAX;
            if (!last || last->is_msg)
                last = eng_seg_push(e); /* reserved above: cannot fail */
            uint8_t *at = e->out + e->out_w;
            /* Cannot fail: the flags are valid and len < 2^63. */
            size_t hl = (size_t)fy_zmtp_frame_header_encode(
                at, (v[k].flags & FERRY_MORE) ? FY_ZMTP_FLAG_MORE : 0, len);
            size_t add = hl + (big ? 0 : len);
            if (!big && len)
                memcpy(at + hl, v[k].buf, len);
            e->out_w += add;
            last->len += add;
            e->out_total += add;
            if (big) {
                /* The body stays the caller's until the write below (no copy when the
                 * kernel takes it, which is the point). */
                last = eng_seg_push(e);
                last->is_msg = true;
                last->ext = v[k].buf;
                last->len = len;
                e->out_total += len;
                borrowed = true;
            }
            total += len;
        }
        if (hwm)
            eng_end_mark(e);
        nmsg++;
        i = j + 1;
        /* In a long batch, hand the kernel what makes a good write as the single path does
         * (until it reports full: the end of the batch tries again). */
        if (!kfull && eng_out_pending(e) >= FY_ENG_OUT_HIGH) {
            int w = eng_write(e, fy_now_ns());
            if (w < 0) {
                failed = true;
                break;
            }
            kfull = w == 1;
        }
    }
stop:
    if (i > 0 && !failed) {
        /* The single path's batching rule, applied once for the batch: written at once when the
         * link had been quiet (or the caller's bodies are in it), else with the next batch that
         * fills a write or at most FY_ENG_MAX_DELAY_NS later. One clock read per
         * FY_ENG_CLOCK_EVERY frames at most. */
        uint64_t now;
        e->appends_unclocked += (uint32_t)(i < UINT32_MAX ? i : UINT32_MAX);
        if (was_idle || borrowed || e->appends_unclocked >= FY_ENG_CLOCK_EVERY) {
            now = fy_now_ns();
            e->appends_unclocked = 0;
        } else {
            now = e->last_append_ns;
        }
        uint64_t quiet = now - e->last_append_ns;
        e->last_append_ns = now;
        if ((borrowed || eng_out_pending(e) >= FY_ENG_OUT_HIGH || quiet >= FY_ENG_BATCH_NS ||
             now - e->last_write_ns >= FY_ENG_MAX_DELAY_NS) &&
            eng_write(e, now) < 0)
            failed = true;
    }
    if (borrowed && !eng_batch_own(e))
        failed = true;
    bool pending = !failed && eng_out_pending(e) > 0;
    if (pending)
        p->dirty = true;
    eng_lock_drop(&e->out_lock);
    if (failed)
        fy_engine_kill(p, FERRY_EPIPE); /* accepted frames: reported as the pipe's death */
    else if (pending)
        fy_ctl_flush_watch();
    *bytes = total;
    *msgs = nmsg;
    return i;
}

/*
 * One plain data frame header at h (avail bytes): 1 = complete frame (*hl, *size set), 0 = not
 * complete yet, 2 = something the batch leaves to the general path (a command, a body that
 * bypasses the read buffer, flags only fy_zmtp_frame_decode judges), 3 = invalid (the decoder
 * says so).
 */
static int eng_batch_frame(const fy_engine *e, const uint8_t *h, size_t avail, size_t *hl,
                           uint64_t *size)
{
    if (avail < 2)
        return 0;
    if (h[0] & ~(FY_ZMTP_FLAG_MORE | FY_ZMTP_FLAG_LONG)) {
        fy_zmtp_frame f;
        return fy_zmtp_frame_decode(h, avail, &e->lim, &f, NULL) < 0 ? 3 : 2;
    }
    uint64_t sz = h[1];
    *hl = 2;
    if (h[0] & FY_ZMTP_FLAG_LONG) {
        if (avail < FY_ZMTP_MAX_HEADER)
            return 0;
        sz = 0;
        for (int k = 0; k < 8; k++)
            sz = sz << 8 | h[1 + k];
        if (sz > FY_ENG_BIG_MIN)
            return 2; /* large bodies bypass the read buffer (and the decoder checks the size) */
        *hl = FY_ZMTP_MAX_HEADER;
    }
    *size = sz;
    return (uint64_t)(avail - *hl) >= sz ? 1 : 0;
}

size_t fy_engine_recv_many(fy_pipe *p, ferry_iov *v, size_t n, uint64_t *bytes, size_t *msgs,
                           int *why)
{
    *bytes = 0;
    *msgs = 0;
    *why = FY_ENG_BATCH_OTHER;
    if (p->ops != &fy_engine_ops)
        return 0;
    fy_engine *e = eng(p);
    eng_lock_take(&e->in_lock);
    if (e->has_peeked || e->big_on || e->in_mid) {
        eng_lock_drop(&e->in_lock);
        return 0;
    }
    uint64_t total = 0;
    size_t i = 0, nmsg = 0;
    bool tried_read = false;
    while (i < n) {
        const uint8_t *h = e->in + e->in_r;
        size_t avail = e->in_w - e->in_r, hl = 0;
        uint64_t sz = 0;
        int st = eng_batch_frame(e, h, avail, &hl, &sz);
        if (st == 1 && !(h[0] & FY_ZMTP_FLAG_MORE)) {
            /* The common case: a whole single-frame message. */
            size_t c = sz < v[i].len ? (size_t)sz : v[i].len;
            if (c)
                memcpy(v[i].buf, h + hl, c);
            v[i].size = (size_t)sz;
            v[i].flags = 0;
            total += sz;
            eng_consume(e, hl + (size_t)sz);
            i++;
            nmsg++;
            continue;
        }
        if (st == 1) {
            /* A multi-frame message: taken only when all of its frames are in the buffer and
             * fit the entries left, so the pattern never sees a message half received. */
            size_t off = hl + (size_t)sz, k = i + 1;
            bool more = true;
            while (more) {
                st = eng_batch_frame(e, h + off, avail - off, &hl, &sz);
                if (st != 1)
                    break;
                if (k == n) {
                    st = 2; /* more frames than entries: the general path, frame by frame */
                    break;
                }
                more = (h[off] & FY_ZMTP_FLAG_MORE) != 0;
                off += hl + (size_t)sz;
                k++;
            }
            if (st == 1) {
                size_t at = 0;
                for (size_t x = i; x < k; x++) {
                    (void)eng_batch_frame(e, h + at, avail - at, &hl, &sz); /* seen whole above */
                    size_t c = sz < v[x].len ? (size_t)sz : v[x].len;
                    if (c)
                        memcpy(v[x].buf, h + at + hl, c);
                    v[x].size = (size_t)sz;
                    v[x].flags = x + 1 < k ? FERRY_MORE : 0;
                    at += hl + (size_t)sz;
                    total += sz;
                }
                eng_consume(e, off);
                i = k;
                nmsg++;
                continue;
            }
        }
        if (st == 0 && !tried_read) {
            /* Incomplete or empty: one read per call, then go on with what it brought. */
            tried_read = true;
            ssize_t r = eng_read(e);
            if (r > 0)
                continue;
            *why = r == FERRY_EAGAIN ? FY_ENG_BATCH_EMPTY : FY_ENG_BATCH_OTHER;
            break;
        }
        *why = st == 0 ? FY_ENG_BATCH_EMPTY : st == 3 ? FY_ENG_BATCH_BAD : FY_ENG_BATCH_OTHER;
        break;
    }
    if (i == n)
        *why = FY_ENG_BATCH_FULL;
    atomic_store_explicit(&e->owner_in_seq,
                          atomic_load_explicit(&e->owner_in_seq, memory_order_relaxed) + 1,
                          memory_order_relaxed);
    eng_lock_drop(&e->in_lock);
    *bytes = total;
    *msgs = nmsg;
    return i;
}

static int eng_pipe_poll_in(fy_pipe *p)
{
    fy_engine *e = eng(p);
    eng_lock_take(&e->in_lock);
    int rc = 0;
    if (!e->has_peeked) {
        fy_msg_init(&e->peeked);
        rc = eng_next(e, &e->peeked);
        if (rc == 0)
            e->has_peeked = true;
    }
    bool ready = e->has_peeked;
    eng_lock_drop(&e->in_lock);
    if (rc < 0 && rc != FERRY_EAGAIN)
        fy_engine_kill(p, rc);
    return ready;
}

static bool eng_pipe_can_send(fy_pipe *p)
{
    fy_engine *e = eng(p);
    if (atomic_load_explicit(&p->dead, memory_order_relaxed))
        return true;
    eng_lock_take(&e->out_lock);
    bool ok = e->out_dead || e->cfg.sndhwm <= 0 || e->ends_n < (uint32_t)e->cfg.sndhwm;
    eng_lock_drop(&e->out_lock);
    return ok;
}

static int eng_pipe_flush(fy_pipe *p)
{
    fy_engine *e = eng(p);
    eng_lock_take(&e->out_lock);
    uint32_t ends_before = e->ends_n;
    int rc = e->seg_n ? eng_write(e, fy_now_ns()) : 0;
    if (rc == 0)
        p->dirty = false;
    bool freed = e->ends_n < ends_before;
    eng_lock_drop(&e->out_lock);
    if (rc < 0)
        fy_engine_kill(p, rc);
    /* The socket flushes right before it sleeps, after its last attempt saw SNDHWM full. When
     * this very flush moves messages out of the HWM window (the peer read in the meantime) and
     * leaves nothing pending, no EPOLLOUT gets armed and nobody else would wake the owner: it
     * slept until SNDTIMEO while the peer, having read everything, slept in recv (known bug 2).
     * fy_socket_wake raises the owner's eventfd only when it announced the sleep. */
    if (freed)
        fy_socket_wake(e->sock);
    return rc;
}

static bool eng_pipe_has_input(fy_pipe *p)
{
    fy_engine *e = eng(p);
    eng_lock_take(&e->in_lock);
    bool any = e->has_peeked;
    if (!any && !e->big_on && e->in_w > e->in_r) {
        fy_zmtp_frame f;
        any = fy_zmtp_frame_decode(e->in + e->in_r, e->in_w - e->in_r, &e->lim, &f, NULL) != 0;
    }
    eng_lock_drop(&e->in_lock);
    return any;
}

static void eng_pipe_release(fy_pipe *p)
{
    fy_ctl_release_pipe(p);
}

static const fy_pipe_ops fy_engine_ops = {
    .send = eng_pipe_send,
    .recv = eng_pipe_recv,
    .poll_in = eng_pipe_poll_in,
    .can_send = eng_pipe_can_send,
    .flush = eng_pipe_flush,
    .has_input = eng_pipe_has_input,
    .release = eng_pipe_release,
};

/* ------------------------------------------------------------------------------------------- */
/* life cycle and control thread                                                               */
/* ------------------------------------------------------------------------------------------- */

static uint64_t fy_engine_next_id(void)
{
    static _Atomic uint64_t next = 1;
    return atomic_fetch_add_explicit(&next, 1, memory_order_relaxed);
}

int fy_engine_new(fy_pipe **out, fy_socket *s, int rfd, int wfd, const fy_link_cfg *cfg)
{
    *out = NULL;
    fy_engine *e = calloc(1, sizeof *e);
    uint8_t *in = malloc(FY_ENG_IN_CAP);
    if (!e || !in) {
        free(e);
        free(in);
        close(rfd);
        if (wfd != rfd)
            close(wfd);
        return FERRY_ENOMEM;
    }
    e->in = in;
    e->pipe.ops = &fy_engine_ops;
    e->pipe.sock = s;
    e->pipe.id = fy_engine_next_id();
    e->pipe.rfd = rfd;
    e->pipe.wfd = wfd;
    e->sock = s;
    e->cfg = *cfg;
    int st;
    socklen_t sl = sizeof st;
    e->is_sock = getsockopt(wfd, SOL_SOCKET, SO_TYPE, &st, &sl) == 0;
    e->state = ENG_GREETING;
    fy_zmtp_greeting_decoder_init(&e->gd);
    e->lim.max_msg_size = FY_ZMTP_DEFAULT_MAX_MSG;
    e->lim.max_command_size = FY_ENG_BIG_MIN; /* a command must fit the read buffer */
    fy_msg_init(&e->big);
    fy_msg_init(&e->peeked);
    uint64_t now = fy_now_ns();
    e->handshake_deadline = now + FY_ENG_HANDSHAKE_NS;
    atomic_store(&e->last_rx_ns, now);

    uint8_t greet[FY_ZMTP_GREETING_SIZE];
    uint8_t ready[600];
    int rc = fy_zmtp_greeting_encode(greet, FY_ZMTP_MINOR, "NULL", 0);
    ssize_t rl = rc < 0 ? rc
                        : fy_zmtp_ready_encode(ready, sizeof ready, cfg->type, cfg->routing_id,
                                               cfg->routing_id_len, fy_shm_ferry_caps(rfd, cfg));
    if (rc < 0 || rl < 0 || eng_out_bytes(e, greet, sizeof greet) != 0 ||
        eng_out_bytes(e, ready, (size_t)rl) != 0) {
        fy_engine_free(&e->pipe);
        return rc < 0 ? rc : rl < 0 ? (int)rl : FERRY_ENOMEM;
    }
    *out = &e->pipe;
    return 0;
}

/* The handshake's input side, on the control thread. 0 = more needed, 1 = done, < 0 = fail. */
static int eng_handshake_input(fy_engine *e)
{
    if (e->state == ENG_SHM)
        return 0; /* the shm hand-over owns the socket now */
    for (;;) {
        if (e->state == ENG_GREETING) {
            size_t used = 0;
            int g = fy_zmtp_greeting_feed(&e->gd, e->in + e->in_r, e->in_w - e->in_r, &used);
            eng_consume(e, used);
            if (g < 0) {
                fy_ctl_note_error(e->sock, "peer greeting rejected (not ZMTP 3.x with NULL)");
                return g;
            }
            if (g == 1) {
                e->state = ENG_READY;
                e->pipe.peer.zmtp_minor = e->gd.greeting.major > 3 ? 1 : e->gd.greeting.minor;
                if (e->pipe.peer.zmtp_minor > 1)
                    e->pipe.peer.zmtp_minor = 1;
                continue;
            }
        } else {
            fy_zmtp_frame f;
            int rc = fy_zmtp_frame_decode(e->in + e->in_r, e->in_w - e->in_r, &e->lim, &f, NULL);
            if (rc < 0)
                return FERRY_EPROTO;
            if (rc == 1) {
                if (!fy_zmtp_frame_is_command(&f)) {
                    fy_ctl_note_error(e->sock, "peer sent data before READY");
                    return FERRY_EPROTO;
                }
                fy_zmtp_command c;
                if (fy_zmtp_command_decode(e->in + e->in_r + f.header_len, (size_t)f.size, &c) < 0)
                    return FERRY_EPROTO;
                if (c.type == FY_ZMTP_CMD_ERROR) {
                    fy_ctl_note_error(e->sock, "peer refused the handshake (ERROR)");
                    return FERRY_ECONNABORTED;
                }
                fy_zmtp_peer_info info;
                const char *why = NULL;
                rc = fy_zmtp_ready_peer(&c, e->cfg.type, &info, &why);
                if (rc < 0) {
                    fy_ctl_note_error(e->sock, why ? why : "bad READY");
                    return rc;
                }
                e->pipe.peer.type = info.socket_type;
                e->pipe.peer.is_ferry = info.ferry != 0;
                e->pipe.peer.id_len = (uint8_t)info.identity_len;
                if (info.identity_len)
                    memcpy(e->pipe.peer.id, info.identity, info.identity_len);
                eng_consume(e, f.header_len + (size_t)f.size);
                /* Both ferry and both offering shm: hand the socket to the shm hand-over. */
                rc = fy_shm_eng_ready(&e->pipe, e->pipe.rfd, &e->cfg, &info, e->in + e->in_r,
                                      e->in_w - e->in_r);
                if (rc < 0)
                    return rc;
                if (rc == 1) {
                    eng_consume(e, e->in_w - e->in_r);
                    e->state = ENG_SHM;
                    return 0;
                }
                e->state = ENG_LIVE;
                return 1;
            }
        }
        ssize_t r = eng_read(e);
        if (r > 0)
            continue;
        if (r == FERRY_EAGAIN)
            return 0;
        return FERRY_ECONNRESET;
    }
}

static void eng_idle_scan(fy_engine *e);

int fy_engine_ctl_event(fy_pipe *p, uint32_t events, bool on_wfd)
{
    fy_engine *e = eng(p);
    if (atomic_load(&p->dead))
        return FERRY_EPIPE;
    int rc = 0;
    if (events & EPOLLOUT) {
        eng_lock_take(&e->out_lock);
        uint32_t ends_before = e->ends_n;
        int w = eng_write(e, fy_now_ns());
        bool freed = e->ends_n < ends_before;
        eng_lock_drop(&e->out_lock);
        if (w < 0)
            return w;
        fy_ctl_want_out(p, w == 1);
        /* The owner may sleep at SNDHWM with its own EPOLLOUT reported to us first: when this
         * write refills the kernel buffer, its level-triggered EPOLLOUT is gone again. */
        if (freed)
            fy_socket_wake(e->sock);
    }
    if (e->state != ENG_LIVE) {
        if (!on_wfd && (events & (EPOLLIN | EPOLLHUP | EPOLLERR))) {
            eng_lock_take(&e->in_lock);
            rc = eng_handshake_input(e);
            eng_lock_drop(&e->in_lock);
        }
        if (rc == 0 && e->state == ENG_SHM && eng_out_pending(e) == 0) {
            bool wo = false;
            rc = fy_shm_eng_step(p, &wo);
            if (rc == 1)
                e->state = ENG_LIVE;
            else if (rc == 0)
                fy_ctl_want_out(p, wo);
        }
        if (rc == 0 && (events & (EPOLLHUP | EPOLLERR)))
            rc = FERRY_ECONNRESET;
        return rc;
    }
    if (events & (EPOLLHUP | EPOLLERR | EPOLLRDHUP))
        return FERRY_EPIPE;
    if (!on_wfd && (events & EPOLLIN)) {
        uint64_t seq = atomic_load_explicit(&e->owner_in_seq, memory_order_relaxed);
        if (seq != e->ctl_seen_in_seq) {
            /* The owner is receiving again: leave the input to it. */
            e->ctl_seen_in_seq = seq;
            fy_ctl_watch_in(p, false);
            e->next_scan_ns = fy_now_ns() + FY_ENG_IDLE_SCAN_NS;
        } else {
            eng_idle_scan(e);
        }
    }
    return 0;
}

int fy_engine_ctl_flush(fy_pipe *p)
{
    fy_engine *e = eng(p);
    if (fy_pipe_uses_shm(p))
        return fy_shm_eng_ctl_flush(p);
    if (atomic_load(&p->dead))
        return 0;
    eng_lock_take(&e->out_lock);
    int pending = e->seg_n > 0;
    uint32_t ends_before = e->ends_n;
    if (pending) {
        uint64_t now = fy_now_ns();
        /* Leave the batch to the owner while it is still appending to it. */
        if (now - e->last_append_ns >= FY_ENG_BATCH_NS) {
            int w = eng_write(e, now);
            if (w < 0) {
                eng_lock_drop(&e->out_lock);
                fy_engine_kill(p, w);
                return 0;
            }
            fy_ctl_want_out(p, w == 1);
            /* Kernel buffer full: the EPOLLOUT just armed brings the control thread back when
             * the peer reads, so no tick is needed (retrying every tick would spin for as long
             * as the peer stalls). */
            pending = w == 1 && !(p->ctl_events & EPOLLOUT);
        }
    }
    bool freed = e->ends_n < ends_before;
    eng_lock_drop(&e->out_lock);
    /* Messages left the HWM window: an owner blocked in send at SNDHWM sleeps in epoll with no
     * EPOLLOUT armed (its own flush found nothing left to write), so only this wake lets it
     * retry. Without it a sender at SNDHWM slept until SNDTIMEO while its peer sat idle. */
    if (freed)
        fy_socket_wake(e->sock);
    return pending;
}

/* Control thread: the owner has not read for a while; read what waits and answer PINGs so the
 * peer's heartbeat does not declare us dead while the application is busy elsewhere. */
static void eng_idle_scan(fy_engine *e)
{
    if (!eng_lock_try(&e->in_lock))
        return;
    size_t before = e->in_w - e->in_r;
    if (!e->big_on && !e->has_peeked)
        (void)eng_read(e);
    size_t off = 0;
    /* Walk the buffered frames; answer PINGs not answered yet. */
    bool bad = false;
    while (!e->big_on) {
        size_t avail = e->in_w - e->in_r - off;
        fy_zmtp_frame f;
        int rc = avail ? fy_zmtp_frame_decode(e->in + e->in_r + off, avail, &e->lim, &f, NULL) : 0;
        if (rc < 0)
            bad = true; /* a protocol violation: drop the peer even while nobody reads */
        if (rc != 1)
            break;
        uint64_t abs = e->in_abs + off;
        if (fy_zmtp_frame_is_command(&f) && abs >= e->scan_abs) {
            fy_msg dummy;
            fy_msg_init(&dummy);
            (void)eng_command(e, e->in + e->in_r + off + f.header_len, (size_t)f.size, abs, &dummy,
                              true);
            fy_msg_fini(&dummy);
        }
        off += f.header_len + (size_t)f.size;
        if (abs + f.header_len + f.size > e->scan_abs)
            e->scan_abs = abs + f.header_len + f.size;
    }
    bool grew = e->in_w - e->in_r > before;
    eng_lock_drop(&e->in_lock);
    if (bad) {
        fy_ctl_note_error(e->sock, "peer sent an invalid frame");
        fy_engine_kill(&e->pipe, FERRY_EPROTO);
        return;
    }
    if (grew)
        fy_socket_raise(e->sock);
}

int fy_engine_ctl_tick(fy_pipe *p, uint64_t now, uint64_t *next_ns)
{
    fy_engine *e = eng(p);
    if (atomic_load(&p->dead))
        return 0;
    if (e->state != ENG_LIVE) {
        if (now >= e->handshake_deadline) {
            fy_ctl_note_error(e->sock, "handshake timed out");
            return FERRY_ETIMEDOUT;
        }
        if (e->handshake_deadline < *next_ns)
            *next_ns = e->handshake_deadline;
        return 0;
    }
    if (fy_pipe_uses_shm(p))
        return 0; /* no ZMTP on the socket any more: its hang-up is the liveness signal */
    uint64_t last_rx = atomic_load_explicit(&e->last_rx_ns, memory_order_relaxed);
    if (e->cfg.hb_ivl > 0) {
        uint64_t ivl = (uint64_t)e->cfg.hb_ivl * 1000000ull;
        if (e->ping_deadline_ns && last_rx > e->ping_sent_ns)
            e->ping_deadline_ns = 0;
        if (e->ping_deadline_ns && now >= e->ping_deadline_ns) {
            int avail = 0;
            if (ioctl(p->rfd, FIONREAD, &avail) == 0 && avail > 0) {
                e->ping_deadline_ns = 0;
            } else {
                fy_ctl_note_error(e->sock, "heartbeat timeout: peer silent");
                return FERRY_ETIMEDOUT;
            }
        }
        if (e->next_ping_ns == 0)
            e->next_ping_ns = now + ivl;
        if (now >= e->next_ping_ns) {
            uint8_t buf[32];
            uint16_t ttl = (uint16_t)(e->cfg.hb_ttl > 0 ? e->cfg.hb_ttl / 100 : 0);
            ssize_t n = fy_zmtp_ping_encode(buf, sizeof buf, ttl, NULL, 0);
            if (n > 0) {
                eng_lock_take(&e->out_lock);
                if (eng_out_bytes(e, buf, (size_t)n) == 0) {
                    int w = eng_write(e, now);
                    if (w >= 0)
                        fy_ctl_want_out(p, w == 1);
                }
                eng_lock_drop(&e->out_lock);
            }
            e->ping_sent_ns = now;
            if (!e->ping_deadline_ns) {
                uint64_t to = (uint64_t)(e->cfg.hb_timeout > 0 ? e->cfg.hb_timeout : e->cfg.hb_ivl);
                e->ping_deadline_ns = now + to * 1000000ull;
            }
            e->next_ping_ns = now + ivl;
        }
        if (e->next_ping_ns < *next_ns)
            *next_ns = e->next_ping_ns;
        if (e->ping_deadline_ns && e->ping_deadline_ns < *next_ns)
            *next_ns = e->ping_deadline_ns;
    }
    uint64_t ttl = atomic_load_explicit(&e->peer_ttl_ns, memory_order_relaxed);
    if (ttl && now > last_rx + ttl) {
        int avail = 0;
        if (!(ioctl(p->rfd, FIONREAD, &avail) == 0 && avail > 0)) {
            fy_ctl_note_error(e->sock, "peer heartbeat TTL expired");
            return FERRY_ETIMEDOUT;
        }
    }
    if (ttl && last_rx + ttl < *next_ns)
        *next_ns = last_rx + ttl + 1;
    /* Is the owner receiving? While it is not, watch the input (edge-triggered) so PINGs are
     * answered at once; while watching no timer is needed (input events re-check). */
    if (!p->ctl_watch_in) {
        if (e->next_scan_ns == 0)
            e->next_scan_ns = now + FY_ENG_IDLE_SCAN_NS;
        if (now >= e->next_scan_ns) {
            uint64_t seq = atomic_load_explicit(&e->owner_in_seq, memory_order_relaxed);
            if (seq == e->ctl_seen_in_seq) {
                fy_ctl_watch_in(p, true);
                eng_idle_scan(e);
            }
            e->ctl_seen_in_seq = seq;
            e->next_scan_ns = now + FY_ENG_IDLE_SCAN_NS;
        }
    } else {
        e->next_scan_ns = UINT64_MAX;
    }
    if (e->next_scan_ns < *next_ns)
        *next_ns = e->next_scan_ns;
    return 0;
}

void fy_engine_free(fy_pipe *p)
{
    if (!p)
        return;
    fy_engine *e = eng(p);
    fy_shm_eng_free(p);
    if (p->rfd >= 0)
        close(p->rfd);
    if (p->wfd >= 0 && p->wfd != p->rfd)
        close(p->wfd);
    for (uint32_t i = 0; i < e->seg_n; i++)
        fy_msg_fini(&e->segs[e->seg_head + i].m);
    fy_msg_fini(&e->big);
    fy_msg_fini(&e->peeked);
    fy_msg_cache_drop(&e->rx_cache);
    free(e->segs);
    free(e->ends);
    free(e->out);
    free(e->in);
    free(e);
}
