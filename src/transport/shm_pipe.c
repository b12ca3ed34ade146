/*
 * shm_pipe.c - a pipe (pipe.h) whose frames travel through the two SPSC rings of a link segment.
 *
 * Each frame is one ring record: an 8-byte meta word (flags in the low byte, the frame's total
 * size above) followed by the bytes. A frame too large for one record is streamed as a run of
 * chunk records, so any size up to the message limit passes through a ring of any size without a
 * hang, as long as the receiver keeps receiving; the receiver reassembles it in its own memory.
 * Frames that do not fit the ring right now wait, by reference, in a private overflow queue (the
 * pipe contract never splits a started message and never blocks), drained as room appears.
 *
 * Waking: nobody signals anyone while both sides are busy. Right before the owner sleeps in its
 * socket's epoll, flush() (the core calls it for dirty pipes before sleeping; shm pipes stay
 * dirty) announces the sleep in the ring's wait word, after a full fence re-checks the ring, and
 * only then lets the caller sleep; the peer's publish (seq_cst store, then load of the sleepers
 * word: the Dekker pair documented in ring.h) sees the announcement and writes the eventfd that
 * wakes this side. Peer death is the Unix socket's hang-up, watched by whoever owns usock.
 *
 * Everything in the segment is written by the peer: record lengths and the meta word are checked
 * against the ring's bounds and our own reassembly state before use, the consumed-messages
 * counter may only move forward and never past what we sent. A violation kills the pipe with
 * FERRY_EPROTO.
 */
#include "core/ctl.h"
#include "core/socket.h"
#include "ring/spsc_layout.h"
#include "transport/shm.h"
#include "wire/zmtp.h"

#include <errno.h>
#include <pthread.h>
#include <stdlib.h>
#include <string.h>
#include <unistd.h>

#define REC_MORE      0x01u /* the frame has FY_MSG_MORE */
#define REC_SUB       0x02u /* the frame has FY_MSG_SUB */
#define REC_CHUNK     0x04u /* more chunks of this frame follow */
#define REC_CONT      0x08u /* this record continues a frame */
#define REC_FLAGS     (REC_MORE | REC_SUB | REC_CHUNK | REC_CONT)
#define REC_META      8u
#define SIZE_MAX_META ((UINT64_C(1) << 56) - 1)

/* Releases smaller than this are published in batches of up to RX_BATCH records. */
#define RX_BATCH_BYTES 4096u
#define RX_BATCH       32u

typedef struct shm_ovf {
    fy_msg m;
    uint64_t off; /* bytes of m already in the ring */
    bool last;    /* the last frame of its message */
} shm_ovf;

typedef struct fy_shm_pipe {
    fy_pipe pipe; /* first: a fy_pipe * is a fy_shm_pipe * */
    fy_shm_link *link;
    int usock;
    int side;
    int my_efd;
    _Atomic int err;
    ferry_spsc_tx tx;
    ferry_spsc_rx rx;
    fy_spsc_shared *tx_shared;

    /* output (owner) */
    int sndhwm;
    uint64_t max_msg;
    uint64_t whole_max; /* largest frame sent as one record */
    uint64_t chunk_max; /* payload per chunk record of a larger frame */
    uint32_t ovf_msgs;  /* messages that end in the overflow queue (SNDHWM counts these) */
    bool out_mid;
    bool tx_armed;
    shm_ovf *ovf;
    uint32_t ovf_head, ovf_n, ovf_cap;
    /* The control thread drains the overflow queue when the owner stops calling (tail flush).
     * While the queue is empty only the owner touches tx and the queue, without a lock; while
     * it is not (ovf_pending), both take tx_lock. Only the owner makes the queue non-empty. */
    _Atomic int ovf_pending;
    pthread_mutex_t tx_lock;

    /* input (owner) */
    uint32_t rx_deferred;
    bool rx_armed;
    fy_msg stash; /* a frame poll_in completed ahead of recv */
    bool has_stash;
    fy_msg asmb; /* a chunked frame being reassembled */
    uint64_t asm_total, asm_have;
    uint32_t asm_flags;
    bool asm_on;
} fy_shm_pipe;

static const fy_pipe_ops shm_pipe_ops;

static fy_shm_pipe *sp_of(fy_pipe *p)
{
    return (fy_shm_pipe *)p;
}

bool fy_pipe_is_shm(const fy_pipe *p)
{
    return p && p->ops == &shm_pipe_ops;
}

int fy_shm_pipe_usock(const fy_pipe *p)
{
    return ((const fy_shm_pipe *)p)->usock;
}

fy_shm_link *fy_shm_pipe_link(const fy_pipe *p)
{
    return ((const fy_shm_pipe *)p)->link;
}

int fy_shm_pipe_error(const fy_pipe *p)
{
    return atomic_load(&((fy_shm_pipe *)p)->err);
}

void fy_shm_pipe_kill(fy_pipe *p, int err)
{
    fy_shm_pipe *sp = sp_of(p);
    int zero = 0;
    atomic_compare_exchange_strong(&sp->err, &zero, err < 0 ? err : FERRY_EPIPE);
    /* release: pairs with the acquire load of dead in the owner's recv, which then looks at the
     * ring once more so nothing published before the death is lost. */
    atomic_store_explicit(&p->dead, 1, memory_order_release);
}

static int sp_fail(fy_shm_pipe *sp, int err)
{
    fy_shm_pipe_kill(&sp->pipe, err);
    sp->pipe.saw_epipe = true;
    return err;
}

/* Clears pending wake-ups of this side. */
static void sp_drain_efd(fy_shm_pipe *sp)
{
    uint64_t v;
    ssize_t r = read(sp->my_efd, &v, sizeof v);
    (void)r;
}

static void sp_disarm(fy_shm_pipe *sp)
{
    if (sp->rx_armed) {
        ferry_spsc_rx_disarm(&sp->rx);
        sp->rx_armed = false;
    }
    if (sp->tx_armed) {
        ferry_wait_disarm(&sp->tx_shared->writable);
        sp->tx_armed = false;
    }
    sp_drain_efd(sp);
}

/* ---- output ---- */

/*
 * SNDHWM counts messages waiting in our overflow queue, not messages in the ring: the ring plays
 * the part the kernel socket buffer plays for ZMTP links (libzmq does not count what the kernel
 * holds either), so a ring full of small messages behaves like a full socket buffer.
 */
static bool sp_at_hwm(const fy_shm_pipe *sp)
{
    return sp->sndhwm > 0 && sp->ovf_msgs >= (uint32_t)sp->sndhwm;
}

/*
 * Writes as much of frame m (from *off) into the ring as fits. Returns 1 when the frame is
 * completely in the ring, 0 when the ring is full (*off says how far it got), < 0 on failure.
 */
static int sp_put(fy_shm_pipe *sp, const fy_msg *m, uint64_t *off)
{
    uint64_t total = fy_msg_size(m);
    const uint8_t *src = fy_msg_cdata(m);
    uint32_t base =
        ((m->flags & FY_MSG_MORE) ? REC_MORE : 0) | ((m->flags & FY_MSG_SUB) ? REC_SUB : 0);
    bool chunked = total > sp->whole_max;
    do {
        uint64_t n = chunked ? total - *off : total;
        if (n > sp->chunk_max && chunked)
            n = sp->chunk_max;
        uint32_t fl = base | (*off > 0 ? REC_CONT : 0) | (*off + n < total ? REC_CHUNK : 0);
        void *dst;
        int rc = ferry_spsc_reserve(&sp->tx, (size_t)(n + REC_META), &dst);
        if (rc == FERRY_EAGAIN) {
            /* Full: make deferred records visible, the consumer may be waiting for them. */
            rc = ferry_spsc_flush(&sp->tx);
            return rc < 0 ? sp_fail(sp, rc) : 0;
        }
        if (rc < 0)
            return sp_fail(sp, rc);
        uint64_t meta = (uint64_t)fl | (total << 8);
        memcpy(dst, &meta, REC_META);
        if (n)
            memcpy((uint8_t *)dst + REC_META, src + *off, (size_t)n);
        /* Frames of a multi-frame message are published together at its last frame. */
        rc = ferry_spsc_commit(&sp->tx, (size_t)(n + REC_META),
                               (base & REC_MORE) && !chunked ? FERRY_RING_DEFER : 0);
        if (rc < 0)
            return sp_fail(sp, rc);
        *off += n;
    } while (*off < total);
    return 1;
}

/* Moves queued frames into the ring. 1 when the queue is empty, 0 when frames still wait. */
static int sp_drain(fy_shm_pipe *sp)
{
    while (sp->ovf_n) {
        shm_ovf *o = &sp->ovf[sp->ovf_head];
        int rc = sp_put(sp, &o->m, &o->off);
        if (rc <= 0)
            return rc;
        fy_msg_fini(&o->m);
        sp->ovf_msgs -= o->last;
        sp->ovf_head = (sp->ovf_head + 1) % sp->ovf_cap;
        sp->ovf_n--;
    }
    return 1;
}

/* Makes room for one more queued frame (before anything of it goes into the ring, so a failed
 * allocation never leaves half a frame behind). */
static int sp_ovf_room(fy_shm_pipe *sp)
{
    if (sp->ovf_n == sp->ovf_cap) {
        uint32_t ncap = sp->ovf_cap ? sp->ovf_cap * 2 : 16;
        shm_ovf *n = malloc((size_t)ncap * sizeof *n);
        if (!n)
            return FERRY_ENOMEM;
        for (uint32_t i = 0; i < sp->ovf_n; i++)
            n[i] = sp->ovf[(sp->ovf_head + i) % sp->ovf_cap];
        free(sp->ovf);
        sp->ovf = n;
        sp->ovf_head = 0;
        sp->ovf_cap = ncap;
    }
    return 0;
}

static void sp_ovf_push(fy_shm_pipe *sp, fy_msg *m, uint64_t off)
{
    shm_ovf *o = &sp->ovf[(sp->ovf_head + sp->ovf_n) % sp->ovf_cap];
    o->last = !(m->flags & FY_MSG_MORE);
    sp->ovf_msgs += o->last;
    fy_msg_init(&o->m);
    fy_msg_move(&o->m, m);
    o->off = off;
    sp->ovf_n++;
}

static int sp_send_locked(fy_pipe *p, fy_msg *m)
{
    fy_shm_pipe *sp = sp_of(p);
    if (atomic_load_explicit(&p->dead, memory_order_relaxed)) {
        int e = atomic_load(&sp->err);
        return e == FERRY_EPROTO ? FERRY_EPROTO : FERRY_EPIPE;
    }
    if (sp->tx_armed || sp->rx_armed)
        sp_disarm(sp);
    uint64_t size = fy_msg_size(m);
    if (size > sp->max_msg || size > SIZE_MAX_META)
        return FERRY_EMSGSIZE;
    bool more = (m->flags & FY_MSG_MORE) != 0;
    if (!sp->out_mid && !(m->flags & FY_MSG_SUB) && sp_at_hwm(sp) && sp_drain(sp) == 0 &&
        sp_at_hwm(sp))
        return atomic_load_explicit(&p->dead, memory_order_relaxed) ? FERRY_EPROTO : FERRY_EAGAIN;
    int rc = sp_ovf_room(sp);
    if (rc < 0)
        return rc;
    uint64_t off = 0;
    if (sp->ovf_n == 0 || (rc = sp_drain(sp)) == 1)
        rc = sp_put(sp, m, &off);
    if (rc < 0)
        return rc;
    if (rc == 0)
        sp_ovf_push(sp, m, off); /* leaves m empty */
    else
        fy_msg_fini(m);
    fy_msg_init(m);
    sp->out_mid = more;
    return 0;
}

static bool sp_can_send_locked(fy_pipe *p)
{
    fy_shm_pipe *sp = sp_of(p);
    if (atomic_load_explicit(&p->dead, memory_order_relaxed))
        return true;
    if (sp_at_hwm(sp))
        sp_drain(sp);
    return !sp_at_hwm(sp) || atomic_load_explicit(&p->dead, memory_order_relaxed);
}

static int sp_rx_publish(fy_shm_pipe *sp);
static int sp_prepare_wait_locked(fy_pipe *p, bool want_in, bool want_out);

/*
 * The core calls flush when an operation would block, before it busy-polls for its spin window,
 * and again right before it sleeps in epoll (shm pipes stay dirty so that it does), and while
 * lingering. Only a flush made while the socket says it is about to sleep (its `sleeping` flag,
 * set by the owner itself before its last check) announces the sleep to the peer: announcing it
 * during the spin window would make the peer pay a wake-up system call per message for nothing.
 * Without a socket (unit tests) every flush announces. Returns 1 while output is still queued.
 */
static int sp_flush_locked(fy_pipe *p)
{
    fy_shm_pipe *sp = sp_of(p);
    if (atomic_load_explicit(&p->dead, memory_order_relaxed))
        return FERRY_EPIPE;
    p->dirty = true;
    if (p->sock && !atomic_load_explicit(&p->sock->sleeping, memory_order_relaxed)) {
        int d = sp->ovf_n ? sp_drain(sp) : 1;
        if (d < 0)
            return d;
        int f = ferry_spsc_flush(&sp->tx);
        if (f < 0)
            return sp_fail(sp, f);
        if (sp->rx_deferred && (f = sp_rx_publish(sp)) < 0)
            return f;
        return sp->ovf_n ? 1 : 0;
    }
    int rc = sp_prepare_wait_locked(p, true, false);
    if (rc < 0)
        return rc;
    if (rc == 0) {
        /* Something is ready already: make the coming epoll_wait return at once. */
        uint64_t one = 1;
        ssize_t w = write(sp->my_efd, &one, sizeof one);
        (void)w;
    }
    return sp->ovf_n ? 1 : 0;
}

/* ---- input ---- */

/* Makes our releases and the consumed counter visible to the producer. */
static int sp_rx_publish(fy_shm_pipe *sp)
{
    sp->rx_deferred = 0;
    int rc = ferry_spsc_rx_flush(&sp->rx);
    return rc < 0 ? sp_fail(sp, rc) : 0;
}

static int sp_release(fy_shm_pipe *sp, size_t len)
{
    bool defer = len < RX_BATCH_BYTES && sp->rx_deferred + 1 < RX_BATCH;
    int rc = ferry_spsc_release(&sp->rx, FERRY_RING_DEFER);
    if (rc < 0)
        return sp_fail(sp, rc);
    sp->rx_deferred++;
    return defer ? 0 : sp_rx_publish(sp);
}

/* Reads the next complete frame out of the ring into m. 0, FERRY_EAGAIN, or < 0 (dead). */
static int sp_next(fy_shm_pipe *sp, fy_msg *m)
{
    for (;;) {
        const void *data;
        size_t len;
        int rc = ferry_spsc_peek(&sp->rx, &data, &len);
        if (rc == FERRY_EAGAIN) {
            if (sp->rx_deferred && (rc = sp_rx_publish(sp)) < 0)
                return rc;
            /* acquire: pairs with the release store in fy_shm_pipe_kill. Everything the peer
             * published before its hang-up is visible in the ring after this load. */
            if (!atomic_load_explicit(&sp->pipe.dead, memory_order_acquire))
                return FERRY_EAGAIN;
            rc = ferry_spsc_peek(&sp->rx, &data, &len);
            if (rc == FERRY_EAGAIN) {
                int e = atomic_load(&sp->err);
                return e == FERRY_EPROTO ? FERRY_EPROTO : FERRY_EPIPE;
            }
        }
        if (rc < 0)
            return sp_fail(sp, FERRY_EPROTO);
        if (len < REC_META)
            return sp_fail(sp, FERRY_EPROTO);
        uint64_t meta;
        memcpy(&meta, data, REC_META); /* read once: the peer may change it behind us */
        uint32_t fl = (uint32_t)(meta & 0xffu);
        uint64_t total = meta >> 8;
        uint64_t n = (uint64_t)len - REC_META;
        const uint8_t *src = (const uint8_t *)data + REC_META;
        if (fl & ~REC_FLAGS)
            return sp_fail(sp, FERRY_EPROTO);
        if (!sp->asm_on) {
            if (fl & REC_CONT)
                return sp_fail(sp, FERRY_EPROTO);
            if (!(fl & REC_CHUNK)) {
                if (total != n)
                    return sp_fail(sp, FERRY_EPROTO);
                if ((rc = fy_msg_init_size(m, (size_t)n)) < 0)
                    return rc; /* record stays; the caller may retry */
                if (n)
                    memcpy(fy_msg_data(m), src, (size_t)n);
                m->flags = ((fl & REC_MORE) ? FY_MSG_MORE : 0) | ((fl & REC_SUB) ? FY_MSG_SUB : 0);
                if ((rc = sp_release(sp, len)) < 0)
                    return rc;
                return 0;
            }
            if (total <= n || total > sp->max_msg)
                return sp_fail(sp, FERRY_EPROTO);
            if ((rc = fy_msg_init_size(&sp->asmb, (size_t)total)) < 0)
                return rc;
            sp->asm_on = true;
            sp->asm_total = total;
            sp->asm_have = 0;
            sp->asm_flags = fl & (REC_MORE | REC_SUB);
        } else if (!(fl & REC_CONT) || total != sp->asm_total ||
                   (fl & (REC_MORE | REC_SUB)) != sp->asm_flags ||
                   n > sp->asm_total - sp->asm_have ||
                   (!(fl & REC_CHUNK) && n != sp->asm_total - sp->asm_have) ||
                   ((fl & REC_CHUNK) && n == sp->asm_total - sp->asm_have)) {
            return sp_fail(sp, FERRY_EPROTO);
        }
        if (n)
            memcpy(fy_msg_data(&sp->asmb) + sp->asm_have, src, (size_t)n);
        sp->asm_have += n;
        /* Chunks are large: publish at once so the producer can stream the next one. */
        rc = ferry_spsc_release(&sp->rx, 0);
        if (rc < 0)
            return sp_fail(sp, rc);
        if (fl & REC_CHUNK)
            continue;
        sp->asm_on = false;
        fy_msg_move(m, &sp->asmb);
        m->flags = ((fl & REC_MORE) ? FY_MSG_MORE : 0) | ((fl & REC_SUB) ? FY_MSG_SUB : 0);
        if ((rc = sp_rx_publish(sp)) < 0)
            return rc;
        return 0;
    }
}

static int sp_recv(fy_pipe *p, fy_msg *m)
{
    fy_shm_pipe *sp = sp_of(p);
    if (sp->rx_armed || sp->tx_armed)
        sp_disarm(sp);
    if (sp->has_stash) {
        fy_msg_move(m, &sp->stash);
        sp->has_stash = false;
        return 0;
    }
    fy_msg_fini(m);
    int rc = sp_next(sp, m);
    if (rc < 0 && rc != FERRY_EAGAIN)
        p->saw_epipe = true;
    return rc;
}

static int sp_poll_in(fy_pipe *p)
{
    fy_shm_pipe *sp = sp_of(p);
    if (sp->has_stash)
        return 1;
    if (sp->rx_armed || sp->tx_armed)
        sp_disarm(sp);
    fy_msg_init(&sp->stash);
    int rc = sp_next(sp, &sp->stash);
    if (rc == FERRY_EAGAIN && fy_shm_pipe_prepare_wait(p, true, false) == 0) {
        /* The caller (events(), the pollfd upkeep, ferry_poll) may sleep on p->rfd when we say
         * "nothing": stay announced to the peer, unless something arrived meanwhile. */
        rc = sp_next(sp, &sp->stash);
    }
    if (rc == 0) {
        sp->has_stash = true;
        return 1;
    }
    return 0;
}

static bool sp_has_input(fy_pipe *p)
{
    return sp_poll_in(p) == 1;
}

/* A cheap fingerprint of how much queued output is left, to tell whether a drain moved it. */
static uint64_t sp_ovf_left(const fy_shm_pipe *sp)
{
    return sp->ovf_n ? ((uint64_t)sp->ovf_n << 40) - sp->ovf[sp->ovf_head].off : 0;
}

static int sp_prepare_wait_locked(fy_pipe *p, bool want_in, bool want_out)
{
    fy_shm_pipe *sp = sp_of(p);
    if (atomic_load_explicit(&p->dead, memory_order_relaxed))
        return 0;
    if (sp->rx_armed || sp->tx_armed)
        sp_disarm(sp);
    else
        sp_drain_efd(sp);
    int rc;
    uint64_t left = sp_ovf_left(sp);
    if (left && (rc = sp_drain(sp)) < 0)
        return rc;
    /* Whatever we deferred must be visible before the peer can be expected to act on it. */
    if ((rc = ferry_spsc_flush(&sp->tx)) < 0)
        return sp_fail(sp, rc);
    bool hwm = sp_at_hwm(sp);
    if (want_out && !sp->ovf_n && !hwm)
        return 0; /* the caller can send now */
    if (want_in) {
        if (sp->has_stash)
            return 0;
        if ((rc = sp_rx_publish(sp)) < 0)
            return rc;
        /* ferry_spsc_rx_arm: sleepers++ and a seq_cst fence (pairs with the producer's seq_cst
         * tail store + sleepers load in ferry_spsc_flush), then re-checks the ring. */
        rc = ferry_spsc_rx_arm(&sp->rx);
        if (rc < 0)
            return sp_fail(sp, FERRY_EPROTO);
        if (rc == 1)
            return 0;
        sp->rx_armed = true;
    }
    /* Queued output, or a full HWM, always needs the wake-up when the peer makes room, whatever
     * the caller says it waits for: the core's sleep does not tell (it flushes every pipe before
     * sleeping), and the peer may be waiting for the rest of a message before it frees anything. */
    if (sp->ovf_n || hwm) {
        /* Same pairing for room: the consumer's seq_cst head store + sleepers load in
         * ferry_spsc_rx_flush against this seq_cst RMW + fence; then look again. */
        ferry_wait_arm(&sp->tx_shared->writable);
        sp->tx_armed = true;
        if (sp->ovf_n && (rc = sp_drain(sp)) < 0)
            return rc;
        if (sp_ovf_left(sp) != left)
            return 0; /* progress: the caller should look again */
    } else if (!want_in) {
        return 0; /* nothing to wait for */
    }
    return 1;
}

/* ---- owner entry points that touch the output side ---- */

/* acquire: pairs with the release store in sp_tx_leave / fy_shm_pipe_ctl_flush, so what the
 * other thread did to tx and the queue under the lock is visible before we use them unlocked. */
static bool sp_tx_enter(fy_shm_pipe *sp)
{
    if (!atomic_load_explicit(&sp->ovf_pending, memory_order_acquire))
        return false;
    pthread_mutex_lock(&sp->tx_lock);
    return true;
}

static void sp_tx_leave(fy_shm_pipe *sp, bool locked)
{
    bool pending = sp->ovf_n != 0;
    if (locked || pending) {
        /* release: publishes our tx/queue writes to the control thread's acquire. Set last, so
         * the control thread can only start draining once we no longer touch the queue. */
        atomic_store_explicit(&sp->ovf_pending, pending, memory_order_release);
    }
    if (locked)
        pthread_mutex_unlock(&sp->tx_lock);
    if (pending && sp->pipe.sock)
        fy_ctl_flush_watch();
}

static int sp_send(fy_pipe *p, fy_msg *m)
{
    fy_shm_pipe *sp = sp_of(p);
    bool locked = sp_tx_enter(sp);
    int rc = sp_send_locked(p, m);
    sp_tx_leave(sp, locked);
    return rc;
}

static bool sp_can_send(fy_pipe *p)
{
    fy_shm_pipe *sp = sp_of(p);
    bool locked = sp_tx_enter(sp);
    bool ok = sp_can_send_locked(p);
    sp_tx_leave(sp, locked);
    return ok;
}

static int sp_flush(fy_pipe *p)
{
    fy_shm_pipe *sp = sp_of(p);
    bool locked = sp_tx_enter(sp);
    int rc = sp_flush_locked(p);
    sp_tx_leave(sp, locked);
    return rc;
}

int fy_shm_pipe_prepare_wait(fy_pipe *p, bool want_in, bool want_out)
{
    fy_shm_pipe *sp = sp_of(p);
    bool locked = sp_tx_enter(sp);
    int rc = sp_prepare_wait_locked(p, want_in, want_out);
    sp_tx_leave(sp, locked);
    return rc;
}

int fy_shm_pipe_ctl_flush(fy_pipe *p)
{
    fy_shm_pipe *sp = sp_of(p);
    if (!atomic_load_explicit(&sp->ovf_pending, memory_order_acquire) ||
        atomic_load_explicit(&p->dead, memory_order_relaxed))
        return 0;
    pthread_mutex_lock(&sp->tx_lock);
    int pending = 0;
    if (atomic_load_explicit(&sp->ovf_pending, memory_order_relaxed)) {
        if (sp_drain(sp) >= 0 && ferry_spsc_flush(&sp->tx) == 0)
            pending = sp->ovf_n != 0;
        /* release: see sp_tx_enter. */
        atomic_store_explicit(&sp->ovf_pending, sp->ovf_n != 0, memory_order_release);
    }
    pthread_mutex_unlock(&sp->tx_lock);
    return pending;
}

/* ---- life cycle ---- */

void fy_shm_pipe_free(fy_pipe *p)
{
    if (!p)
        return;
    fy_shm_pipe *sp = sp_of(p);
    if (sp->has_stash)
        fy_msg_fini(&sp->stash);
    fy_msg_fini(&sp->asmb);
    while (sp->ovf_n) {
        fy_msg_fini(&sp->ovf[sp->ovf_head].m);
        sp->ovf_head = (sp->ovf_head + 1) % sp->ovf_cap;
        sp->ovf_n--;
    }
    free(sp->ovf);
    pthread_mutex_destroy(&sp->tx_lock);
    fy_shm_link_free(sp->link);
    if (sp->usock >= 0)
        close(sp->usock);
    free(sp);
}

static void sp_release_op(fy_pipe *p)
{
    fy_shm_pipe_free(p);
}

static const fy_pipe_ops shm_pipe_ops = {
    .send = sp_send,
    .recv = sp_recv,
    .poll_in = sp_poll_in,
    .can_send = sp_can_send,
    .flush = sp_flush,
    .has_input = sp_has_input,
    .release = sp_release_op,
};

static uint64_t sp_next_id(void)
{
    /* High bit set: never collides with the engine's ids, which count up from 1. */
    static _Atomic uint64_t next = 1;
    return atomic_fetch_add_explicit(&next, 1, memory_order_relaxed) | (UINT64_C(1) << 63);
}

int fy_shm_pipe_new(fy_pipe **out, fy_socket *s, fy_shm_link *link, int usock,
                    const fy_shm_pipe_cfg *cfg)
{
    *out = NULL;
    fy_shm_pipe *sp = calloc(1, sizeof *sp);
    if (!sp) {
        fy_shm_link_free(link);
        if (usock >= 0)
            close(usock);
        return FERRY_ENOMEM;
    }
    pthread_mutex_init(&sp->tx_lock, NULL);
    sp->link = link;
    sp->usock = usock;
    sp->side = fy_shm_link_side(link);
    sp->my_efd = fy_shm_link_efd(link, sp->side);
    fy_msg_init(&sp->stash);
    fy_msg_init(&sp->asmb);
    fy_shm_link_view v;
    fy_shm_link_view_get(link, &v);
    int me = sp->side, peer = 1 - sp->side;
    int rc = ferry_spsc_tx_init(&sp->tx, v.ring[me], v.ring_bytes);
    if (rc == 0)
        rc = ferry_spsc_rx_init(&sp->rx, v.ring[peer], v.ring_bytes);
    if (rc < 0) {
        fy_shm_pipe_free(&sp->pipe);
        return FERRY_EPROTO;
    }
    sp->tx_shared = v.ring[me];
    /* Both of our endpoints wake the peer through the peer's eventfd. */
    ferry_wait_policy pol;
    ferry_wait_policy_init(&pol);
    pol.eventfd = fy_shm_link_efd(link, peer);
    ferry_spsc_tx_set_wait(&sp->tx, &pol);
    ferry_spsc_rx_set_wait(&sp->rx, &pol);
    sp->sndhwm = cfg ? cfg->sndhwm : 0;
    sp->max_msg = cfg && cfg->max_msg ? cfg->max_msg : FY_ZMTP_DEFAULT_MAX_MSG;
    uint64_t cap = sp->tx.cap_;
    sp->whole_max = FERRY_SPSC_MAX_RECORD(cap) - REC_META;
    sp->chunk_max = cap / 4 - 2 * REC_META;
    sp->pipe.ops = &shm_pipe_ops;
    sp->pipe.sock = s;
    sp->pipe.id = sp_next_id();
    sp->pipe.rfd = sp->my_efd;
    sp->pipe.wfd = -1;
    sp->pipe.dirty = true;
    sp->pipe.peer.zmtp_minor = 1;
    sp->pipe.peer.is_ferry = true;
    *out = &sp->pipe;
    return 0;
}
