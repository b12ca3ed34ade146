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
 *
 * Zero copy (docs/shm.md "Zero-copy"): a loan is the ring's open reservation handed to the user
 * as a message (at most one per ring; send commits it in place, fini cancels it), and an in-ring
 * frame is a whole record handed out by peek and released locally at once but not published to
 * the producer until the user drops it (at most one per pipe; later frames are copied meanwhile,
 * their releases wait behind it because the ring publishes its read index all or nothing). Both
 * message contents live in a reference-counted share object that also owns the link: the segment
 * stays mapped until the pipe and every such message are gone, so no user pointer ever leads
 * into an unmapped segment, even after the peer died.
 */
#include "common/grow.h"
#include "core/ctl.h"
#include "core/socket.h"
#include "ring/spsc_layout.h"
#include "ring/wait_internal.h"
#include "transport/shm.h"
#include "transport/shm_pipe_impl.h"
#include "transport/shm_record.h"
#include "wire/zmtp.h"

#include <errno.h>
#include <pthread.h>
#include <stdlib.h>
#include <string.h>
#include <sys/epoll.h>
#include <unistd.h>

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

/* Clears pending wake-ups of this side. The control thread may be waiting on the same eventfd
 * for room in the ring (fy_shm_pipe_ctl_watch, edge-triggered): its epoll reports the event only
 * if the counter is still non-zero when it collects it, so a wake-up we consume here while it
 * watches is passed on to it. */
static void sp_drain_efd(fy_shm_pipe *sp)
{
    uint64_t v;
    ssize_t r = read(sp->my_efd, &v, sizeof v);
    /* acquire: pairs with the release store in fy_shm_pipe_ctl_watch. */
    if (r == (ssize_t)sizeof v && atomic_load_explicit(&sp->ctl_watching, memory_order_acquire))
        fy_ctl_flush_kick();
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

/* fy_msg_fini without a call for the usual empty message (the receive paths run it per frame). */
static inline void sp_msg_clear(fy_msg *m)
{
    if (m->content) {
        fy_msg_fini(m);
    } else {
        m->size = 0;
        m->flags = 0;
    }
}

/* ---- zero-copy shares ---- */

static bool sp_tx_enter(fy_shm_pipe *sp);
static void sp_tx_leave(fy_shm_pipe *sp, bool locked);
static int sp_rx_publish(fy_shm_pipe *sp);
static int sp_drain(fy_shm_pipe *sp);

static void sp_share_unref(sp_share *sh)
{
    /* acq_rel: the last one sees everything the others did with the mapping before. */
    if (atomic_fetch_sub_explicit(&sh->refs, 1, memory_order_acq_rel) != 1)
        return;
    fy_shm_link_free(sh->link);
    pthread_mutex_destroy(&sh->mu);
    free(sh);
}

static bool sp_share_same_process(const sp_share *sh)
{
    return sh->fork_gen == fy_fork_gen();
}

/* Owner: the open reservation goes away unused (tx under the tail-flush discipline). */
static void sp_loan_cancel(fy_shm_pipe *sp)
{
    bool locked = sp_tx_enter(sp);
    ferry_spsc_cancel(&sp->tx);
    sp->loan_on = false;
    sp_tx_leave(sp, locked);
}

/* Last reference to a loan: cancel the reservation unless send committed it. */
static void sp_loan_drop(fy_msg_content *c)
{
    sp_share *sh = (sp_share *)((uint8_t *)c - offsetof(sp_share, loan_c));
    if (c->zc == FY_MSG_ZC_LOAN && sp_share_same_process(sh)) {
        pthread_mutex_lock(&sh->mu);
        if (sh->sp && sh->sp->loan_on)
            sp_loan_cancel(sh->sp);
        pthread_mutex_unlock(&sh->mu);
    }
    sp_share_unref(sh);
}

/* Last reference to an in-ring frame: the releases held back behind it may now be published. */
static void sp_hold_drop(fy_msg_content *c)
{
    sp_share *sh = (sp_share *)((uint8_t *)c - offsetof(sp_share, hold_c));
    if (sp_share_same_process(sh)) {
        pthread_mutex_lock(&sh->mu);
        fy_shm_pipe *sp = sh->sp;
        if (sp && sp->hold_on) {
            sp->hold_on = false;
            if (sp->rx_deferred && !atomic_load_explicit(&sp->pipe.dead, memory_order_relaxed))
                sp_rx_publish(sp);
        }
        pthread_mutex_unlock(&sh->mu);
    }
    sp_share_unref(sh);
}

/*
 * Transient loans and holds (the plain ferry_socket_send/recv path): the message lives only inside
 * one call on the owner thread, while its pipe is attached, so it takes no share reference and is
 * committed or released without a mutex, an atomic read-modify-write or an indirect call
 * (sp_commit_loan, fy_shm_msg_done). These drops only run when such a message is dropped some
 * other way (an error path): they do what the ordinary drops do, minus the share reference.
 */
static void sp_loan_drop_tr(fy_msg_content *c)
{
    sp_share *sh = (sp_share *)((uint8_t *)c - offsetof(sp_share, loan_c));
    if (c->zc == FY_MSG_ZC_LOAN) {
        pthread_mutex_lock(&sh->mu);
        if (sh->sp && sh->sp->loan_on)
            sp_loan_cancel(sh->sp);
        pthread_mutex_unlock(&sh->mu);
    }
}

static void sp_hold_drop_tr(fy_msg_content *c)
{
    sp_share *sh = (sp_share *)((uint8_t *)c - offsetof(sp_share, hold_c));
    pthread_mutex_lock(&sh->mu);
    fy_shm_pipe *sp = sh->sp;
    if (sp && sp->hold_on) {
        sp->hold_on = false;
        if (sp->rx_deferred && !atomic_load_explicit(&sp->pipe.dead, memory_order_relaxed))
            sp_rx_publish(sp);
    }
    pthread_mutex_unlock(&sh->mu);
}

static bool sp_content_transient(const fy_msg_content *c)
{
    return c->drop == sp_loan_drop_tr || c->drop == sp_hold_drop_tr;
}

static int sp_release_published(fy_shm_pipe *sp, size_t len);

void fy_shm_msg_done(fy_msg *m)
{
    fy_msg_content *c = m->content;
    /* refs 1: nobody copied the frame (PULL/PAIR/DEALER hand it straight back), so it is ours to
     * release here; a plain load, the owner thread is the only one that could have copied it. */
    if (c && c->drop == sp_hold_drop_tr &&
        atomic_load_explicit(&c->refs, memory_order_relaxed) == 1) {
        sp_share *sh = (sp_share *)((uint8_t *)c - offsetof(sp_share, hold_c));
        fy_shm_pipe *sp = sh->sp; /* attached to the caller's socket: alive, owner thread */
        atomic_store_explicit(&c->refs, 0, memory_order_relaxed);
        sp->hold_on = false;
        /* The record's release was counted as deferred by sp_hold: publish by the same batching
         * rule as a copied record (sp_release). */
        if (!atomic_load_explicit(&sp->pipe.dead, memory_order_relaxed))
            sp_release_published(sp, (size_t)m->size + REC_META);
        m->content = NULL;
        m->size = 0;
        m->flags = 0;
        return;
    }
    fy_msg_fini(m);
}

fy_msg_content *fy_shm_msg_transient_loan(const fy_msg *m)
{
    return m->content && m->content->drop == sp_loan_drop_tr ? m->content : NULL;
}

void fy_shm_loan_pin(fy_msg_content *c)
{
    /* refs 0: committed, cancelled or copied during the attempt; nothing outlives the call. */
    if (atomic_load_explicit(&c->refs, memory_order_relaxed) == 0)
        return;
    sp_share *sh = (sp_share *)((uint8_t *)c - offsetof(sp_share, loan_c));
    atomic_fetch_add_explicit(&sh->refs, 1, memory_order_relaxed);
    c->drop = sp_loan_drop;
}

static sp_share *sp_loan_share(const fy_msg *m)
{
    return (sp_share *)((uint8_t *)m->content - offsetof(sp_share, loan_c));
}

fy_pipe *fy_shm_pipe_of(fy_pipe *p)
{
    if (fy_pipe_is_shm(p))
        return p;
    return fy_shm_eng_inner(p);
}

int fy_shm_pipe_loan(fy_pipe *p, fy_msg *m, size_t size, bool user)
{
    fy_shm_pipe *sp = sp_of(p);
    if (atomic_load_explicit(&p->dead, memory_order_relaxed))
        return FERRY_EPIPE;
    if (sp->loan_on)
        return FERRY_EBUSY;
    if ((uint64_t)size > sp->whole_max || (uint64_t)size > sp->max_msg)
        return FERRY_EMSGSIZE;
    bool locked = sp_tx_enter(sp);
    void *dst = NULL;
    /* Frames queued behind the ring go first: a loan committed now would overtake them. */
    int rc = sp->ovf_n ? FERRY_EAGAIN : ferry_spsc_reserve(&sp->tx, size + REC_META, &dst);
    if (rc == FERRY_EAGAIN && !sp->ovf_n && ferry_spsc_flush(&sp->tx) < 0)
        rc = FERRY_EPROTO; /* full: let the consumer see what we deferred */
    if (rc == 0) {
        sp->loan_on = true; /* under the tail-flush discipline, like tx itself */
        sp->loan_rec = dst;
    }
    sp_tx_leave(sp, locked);
    if (rc < 0)
        return rc == FERRY_EPROTO ? fy_shm_pipe_fail(sp, rc) : rc;
    sp_share *sh = sp->sh;
    fy_msg_content *c = &sh->loan_c;
    atomic_store_explicit(&c->refs, 1, memory_order_relaxed);
    c->zc = FY_MSG_ZC_LOAN;
    c->ffn = NULL;
    c->hint = NULL;
    c->data = (uint8_t *)dst + REC_META;
    if (user) {
        c->drop = sp_loan_drop;
        atomic_fetch_add_explicit(&sh->refs, 1, memory_order_relaxed);
    } else {
        c->drop = sp_loan_drop_tr; /* lives inside one ferry_socket_send call */
    }
    sh->loan_user = user;
    fy_msg_init(m);
    m->content = c;
    m->size = size;
    return 0;
}

typedef struct sp_room_ctx {
    ferry_waitword *w;
    uint32_t seq0;
} sp_room_ctx;

/* The consumer woke the writable word since we looked: room may have appeared. */
static bool sp_room_moved(void *arg)
{
    const sp_room_ctx *c = arg;
    return atomic_load_explicit(&c->w->seq, memory_order_acquire) != c->seq0;
}

int fy_shm_pipe_wait_room(fy_pipe *p, size_t size, int timeout_ms)
{
    fy_shm_pipe *sp = sp_of(p);
    if (atomic_load_explicit(&p->dead, memory_order_relaxed))
        return FERRY_EPIPE;
    if (sp->loan_on)
        return FERRY_EAGAIN;
    /* ovf_n is read only while ovf_pending is 0 (then only we touch it); while it is 1 the
     * control thread's tail flush may be draining the queue under tx_lock, which the branch
     * takes. */
    if (atomic_load_explicit(&sp->ovf_pending, memory_order_acquire) || sp->ovf_n) {
        /* Queued frames go first: move them into the ring, and if some still wait, sleep until
         * the consumer publishes a release (its rx_flush wakes the writable word when someone
         * is announced there), at most timeout_ms; the caller then tries the loan again. */
        ferry_waitword *w = &sp->tx_shared->writable;
        uint32_t seq0 = atomic_load_explicit(&w->seq, memory_order_acquire);
        bool locked = sp_tx_enter(sp);
        int rc = sp->ovf_n ? sp_drain(sp) : 1;
        if (rc >= 0 && ferry_spsc_flush(&sp->tx) < 0)
            rc = fy_shm_pipe_fail(sp, FERRY_EPROTO);
        sp_tx_leave(sp, locked);
        if (rc != 0)
            return rc < 0 ? rc : 0;
        sp_room_ctx ctx = {w, seq0};
        return ferry_wait_block(w, sp_room_moved, &ctx, NULL, timeout_ms);
    }
    /* The consumer's published release wakes this (futex on the ring's writable word). */
    int rc = ferry_spsc_wait_writable(&sp->tx, size + REC_META, timeout_ms);
    return rc == FERRY_EPROTO ? fy_shm_pipe_fail(sp, rc) : rc;
}

/* How long ferry_socket_send waits for room for a frame of size bytes before it queues a heap
 * copy instead: 2 ms plus 2 ms per MiB, i.e. a consumer that copies at 500 MB/s or faster and is
 * not starved of CPU for milliseconds frees enough room in time. */
static uint64_t sp_send_wait_ns(size_t size)
{
    return (2 + 2 * (uint64_t)(size >> 20)) * 1000000u;
}

int fy_shm_pipe_send_loan(fy_pipe *p, fy_msg *m, size_t size, int timeout_ms)
{
    fy_shm_pipe *sp = sp_of(p);
    int rc = fy_shm_pipe_loan(p, m, size, false);
    if (rc != FERRY_EAGAIN || timeout_ms == 0)
        return rc;
    /*
     * The ring is full, or frames wait in the overflow queue. While the consumer keeps reading,
     * room appears within about the time it takes to copy one record out, so waiting for it
     * costs far less than the fallback (a heap copy of the frame, queued, copied into the ring
     * later: two more passes over the bytes and, for large frames, fresh pages), and it stops
     * the producer from piling up a queue of heap copies it would then have to drain. The wait
     * is bounded (sp_send_wait_ns, and SNDTIMEO), so a send still never blocks on a slow peer
     * for long before the queue takes the frame as the pipe contract says. A consumer that
     * stopped reading is not waited for again until its published head moves: a sender filling
     * the queue up to SNDHWM for an idle peer pays one wait, not one per message. The head is
     * the peer's (untrusted): it is only compared for equality.
     */
    uint64_t head = atomic_load_explicit(&sp->tx_shared->head, memory_order_relaxed);
    if (sp->stalled && head == sp->stall_head)
        return FERRY_EAGAIN;
    sp->stalled = false;
    uint64_t budget = sp_send_wait_ns(size);
    if (timeout_ms > 0 && (uint64_t)timeout_ms * 1000000u < budget)
        budget = (uint64_t)timeout_ms * 1000000u;
    uint64_t deadline = fy_now_ns() + budget;
    for (;;) {
        uint64_t now = fy_now_ns();
        if (now >= deadline) {
            sp->stalled = true;
            sp->stall_head = atomic_load_explicit(&sp->tx_shared->head, memory_order_relaxed);
            return FERRY_EAGAIN;
        }
        /* Drains the queue first when there is one, else waits for room for this frame. */
        rc = fy_shm_pipe_wait_room(p, size, (int)((deadline - now + 999999u) / 1000000u));
        if (rc == FERRY_EPIPE || rc == FERRY_EPROTO)
            return rc;
        if (rc != 0 && rc != FERRY_ETIMEDOUT)
            return FERRY_EAGAIN; /* EINTR: let the heap path take it */
        rc = fy_shm_pipe_loan(p, m, size, false);
        if (rc != FERRY_EAGAIN)
            return rc;
    }
}

bool fy_shm_loan_on(const fy_msg *m, fy_pipe *p)
{
    if (fy_msg_zc(m) != FY_MSG_ZC_LOAN || !p)
        return false;
    fy_pipe *in = fy_shm_pipe_of(p);
    return in && sp_loan_share(m) == sp_of(in)->sh && sp_of(in)->loan_on;
}

int fy_shm_msg_unloan(fy_msg *m)
{
    unsigned zc = fy_msg_zc(m);
    if (zc == FY_MSG_ZC_NONE)
        return 0;
    fy_msg h;
    int rc = fy_msg_init_copy(&h, fy_msg_cdata(m), fy_msg_size(m));
    if (rc < 0)
        return rc;
    h.flags = m->flags;
    fy_msg_move(m, &h); /* drops the loan (cancelled) or the in-ring frame (released) */
    return 0;
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
        if (rc == FERRY_EBUSY)
            return 0; /* only an open loan holds a reservation: queue behind it */
        if (rc == FERRY_EAGAIN) {
            /* Full: make deferred records visible, the consumer may be waiting for them. */
            rc = ferry_spsc_flush(&sp->tx);
            return rc < 0 ? fy_shm_pipe_fail(sp, rc) : 0;
        }
        if (rc < 0)
            return fy_shm_pipe_fail(sp, rc);
        uint64_t meta = (uint64_t)fl | (total << 8);
        memcpy(dst, &meta, REC_META);
        if (n)
            fy_copy((uint8_t *)dst + REC_META, src + *off, (size_t)n);
        /* Frames of a multi-frame message are published together at its last frame. */
        rc = ferry_spsc_commit(&sp->tx, (size_t)(n + REC_META),
                               (base & REC_MORE) && !chunked ? FERRY_RING_DEFER : 0);
        if (rc < 0)
            return fy_shm_pipe_fail(sp, rc);
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
        uint32_t old = sp->ovf_cap;
        if (fy_grow32(&sp->ovf, sizeof *sp->ovf, &sp->ovf_cap, sp->ovf_n, 1, 16, UINT32_MAX) != 0)
            return FERRY_ENOMEM;
        fy_grow_unwrap(sp->ovf, sizeof *sp->ovf, old, sp->ovf_head);
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

/* Commits the open loan m in place: the bytes are already in the ring. */
static int sp_commit_loan(fy_shm_pipe *sp, fy_msg *m)
{
    uint64_t n = fy_msg_size(m);
    uint32_t fl =
        ((m->flags & FY_MSG_MORE) ? REC_MORE : 0) | ((m->flags & FY_MSG_SUB) ? REC_SUB : 0);
    uint64_t meta = (uint64_t)fl | (n << 8);
    memcpy(sp->loan_rec, &meta, REC_META);
    int rc =
        ferry_spsc_commit(&sp->tx, (size_t)(n + REC_META), (fl & REC_MORE) ? FERRY_RING_DEFER : 0);
    sp->loan_on = false;
    m->content->zc = FY_MSG_ZC_NONE; /* committed: the drop only lets go of the share */
    if (sp->sh->loan_user && sp->pipe.sock)
        sp->pipe.sock->zc_sends++;
    if (m->content->drop == sp_loan_drop_tr &&
        atomic_load_explicit(&m->content->refs, memory_order_relaxed) == 1) {
        /* Transient and not copied: no share reference to let go of. */
        atomic_store_explicit(&m->content->refs, 0, memory_order_relaxed);
        fy_msg_init(m);
    } else {
        fy_msg_fini(m);
    }
    if (rc < 0)
        return fy_shm_pipe_fail(sp, rc);
    sp->out_mid = (fl & REC_MORE) != 0;
    return 0;
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
    if (__builtin_expect(fy_msg_zc(m) != FY_MSG_ZC_NONE, 0)) {
        if (fy_msg_zc(m) == FY_MSG_ZC_LOAN && sp_loan_share(m) == sp->sh && sp->loan_on) {
            if (!sp->ovf_n)
                return sp_commit_loan(sp, m);
            /* Frames were queued after the loan was taken: keep their order, copy the loan. The
             * reservation is cancelled here (tx may be under our lock), not by the drop. */
            fy_msg h;
            int rc = fy_msg_init_copy(&h, fy_msg_cdata(m), fy_msg_size(m));
            if (rc < 0)
                return rc;
            h.flags = m->flags;
            ferry_spsc_cancel(&sp->tx);
            sp->loan_on = false;
            fy_msg_move(m, &h);
            if (sp->pipe.sock)
                sp->pipe.sock->loan_copies++;
        }
        /* Anything else (another ring's loan, an in-ring frame forwarded) is copied by sp_put,
         * except a transient loan of another pipe, which must not outlive the call in our queue. */
        else if (sp_content_transient(m->content)) {
            int rc = fy_shm_msg_unloan(m);
            if (rc < 0)
                return rc;
        }
    }
    if (!sp->out_mid && !(m->flags & FY_MSG_SUB) && sp_at_hwm(sp) && sp_drain(sp) == 0 &&
        sp_at_hwm(sp)) {
        sp->out_refused = true;
        return atomic_load_explicit(&p->dead, memory_order_relaxed) ? FERRY_EPROTO : FERRY_EAGAIN;
    }
    sp->out_refused = false;
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
    sp->out_refused = sp_at_hwm(sp);
    return !sp->out_refused || atomic_load_explicit(&p->dead, memory_order_relaxed);
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
            return fy_shm_pipe_fail(sp, f);
        if (sp->rx_deferred && (f = sp_rx_publish(sp)) < 0)
            return f;
        return sp->ovf_n ? 1 : 0;
    }
    int rc = sp_prepare_wait_locked(p, true, false);
    if (rc < 0)
        return rc;
    if (rc == 1 && sp->out_refused && !sp_at_hwm(sp)) {
        /* Known bug 3 (lost wake-up): our last send was refused at SNDHWM, then the control
         * thread's tail flush (fy_shm_pipe_ctl_flush) emptied the queue before we got here, so
         * nothing is left for the peer's release to wake us about and the prepare above armed no
         * writable wait. The ctl drain (under tx_lock) pairs with this check (our tx_enter's
         * acquire of ovf_pending / the lock): either we see the drained queue here, or we were
         * still at SNDHWM and armed the writable word before sleeping. Report it once. */
        sp->out_refused = false;
        rc = 0;
    }
    if (rc == 0) {
        /* Something is ready already: make the coming epoll_wait return at once. */
        uint64_t one = 1;
        ssize_t w = write(sp->my_efd, &one, sizeof one);
        (void)w;
    }
    return sp->ovf_n ? 1 : 0;
}

/* ---- input ---- */

/* Makes our releases and the consumed counter visible to the producer; none while a frame is held
 * in the ring (publishing the read index would hand its bytes back to the producer). */
static int sp_rx_publish(fy_shm_pipe *sp)
{
    if (sp->hold_on)
        return 0;
    sp->rx_deferred = 0;
    int rc = ferry_spsc_rx_flush(&sp->rx);
    return rc < 0 ? fy_shm_pipe_fail(sp, rc) : 0;
}

/* The record of len bytes was released locally and counted in rx_deferred: publish the batch
 * when it is full or the record large. */
static int sp_release_published(fy_shm_pipe *sp, size_t len)
{
    bool defer = len < RX_BATCH_BYTES && sp->rx_deferred < RX_BATCH;
    return defer ? 0 : sp_rx_publish(sp);
}

static int sp_release(fy_shm_pipe *sp, size_t len)
{
    int rc = ferry_spsc_release(&sp->rx, FERRY_RING_DEFER);
    if (rc < 0)
        return fy_shm_pipe_fail(sp, rc);
    sp->rx_deferred++;
    return sp_release_published(sp, len);
}

/*
 * Hands out the peeked whole record as m without copying: m's bytes stay in the ring. The record
 * is released locally (so later records can be read) but no release is published until m is
 * dropped (sp_hold_drop), so the producer cannot reuse the bytes. The peer can still scribble on
 * them (it owns the memory): the user sees changing bytes, never bytes out of bounds.
 */
static int sp_hold(fy_shm_pipe *sp, fy_msg *m, const uint8_t *src, uint64_t n, uint32_t fl,
                   bool transient)
{
    int rc = ferry_spsc_release(&sp->rx, FERRY_RING_DEFER);
    if (rc < 0)
        return fy_shm_pipe_fail(sp, rc);
    sp->rx_deferred++;
    sp_share *sh = sp->sh;
    fy_msg_content *c = &sh->hold_c;
    atomic_store_explicit(&c->refs, 1, memory_order_relaxed);
    c->zc = FY_MSG_ZC_RING;
    c->ffn = NULL;
    c->hint = NULL;
    c->data = (uint8_t *)(uintptr_t)src;
    if (transient) {
        c->drop = sp_hold_drop_tr; /* released by fy_shm_msg_done within the same call */
    } else {
        c->drop = sp_hold_drop;
        atomic_fetch_add_explicit(&sh->refs, 1, memory_order_relaxed);
    }
    sp->hold_on = true;
    sp_msg_clear(m);
    m->content = c;
    m->size = n;
    m->flags = ((fl & REC_MORE) ? FY_MSG_MORE : 0) | ((fl & REC_SUB) ? FY_MSG_SUB : 0);
    return 0;
}

/* The reader's checks live in shm_record.c (pure, fuzzed): one format on both sides. */
_Static_assert(REC_MORE == FY_SHM_REC_MORE && REC_SUB == FY_SHM_REC_SUB &&
                   REC_CHUNK == FY_SHM_REC_CHUNK && REC_CONT == FY_SHM_REC_CONT &&
                   REC_META == FY_SHM_REC_META,
               "shm record format differs from shm_record.h");

/* Reads the next complete frame out of the ring into m. 0, FERRY_EAGAIN, or < 0 (dead).
 * direct: m goes straight to the caller of recv (not into the stash). */
static int sp_next(fy_shm_pipe *sp, fy_msg *m, bool direct)
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
            return fy_shm_pipe_fail(sp, FERRY_EPROTO);
        uint64_t meta = 0;
        if (len >= REC_META)
            memcpy(&meta, data, REC_META); /* read once: the peer may change it behind us */
        fy_shm_rec_asm st = {
            .on = sp->asm_on, .total = sp->asm_total, .have = sp->asm_have, .flags = sp->asm_flags};
        fy_shm_rec r;
        if (!sp->asm_on && len >= REC_META && (meta & 0xffu & ~(REC_MORE | REC_SUB)) == 0 &&
            (meta >> 8) == (uint64_t)len - REC_META && (meta >> 8) <= sp->max_msg) {
            /* The common case decided inline: exactly the records fy_shm_rec_check accepts as
             * WHOLE with nothing open (every other record, valid or not, goes through it). */
            r.kind = FY_SHM_REC_WHOLE;
            r.flags = (uint32_t)(meta & (REC_MORE | REC_SUB));
            r.n = r.total = meta >> 8;
        } else if (fy_shm_rec_check(&st, meta, len, sp->max_msg, &r) < 0) {
            return fy_shm_pipe_fail(sp, FERRY_EPROTO);
        }
        uint64_t n = r.n;
        uint32_t fl = r.flags;
        const uint8_t *src = (const uint8_t *)data + REC_META;
        if (r.kind == FY_SHM_REC_WHOLE) {
            sp->rx_last = n;
            if (n > FY_MSG_INLINE && !sp->hold_on && sp->pipe.sock && sp->pipe.sock->zc_rx_mode)
                return sp_hold(sp, m, src, n, fl,
                               direct && sp->pipe.sock->zc_rx_mode == FY_ZC_RX_TRANSIENT);
            if ((rc = fy_msg_init_size(m, (size_t)n)) < 0)
                return rc; /* record stays; the caller may retry */
            if (n)
                fy_copy(fy_msg_data(m), src, (size_t)n);
            m->flags = ((fl & REC_MORE) ? FY_MSG_MORE : 0) | ((fl & REC_SUB) ? FY_MSG_SUB : 0);
            if ((rc = sp_release(sp, len)) < 0)
                return rc;
            return 0;
        }
        if (r.kind == FY_SHM_REC_FIRST && (rc = fy_msg_init_size(&sp->asmb, (size_t)r.total)) < 0)
            return rc; /* record stays; the caller may retry */
        /* The check guarantees have + n <= total, the size asmb was made with. */
        uint64_t at = r.kind == FY_SHM_REC_FIRST ? 0 : st.have;
        if (n)
            fy_copy(fy_msg_data(&sp->asmb) + at, src, (size_t)n);
        fy_shm_rec_advance(&st, &r);
        sp->asm_on = st.on;
        sp->asm_total = st.total;
        sp->asm_have = st.have;
        sp->asm_flags = st.flags;
        /* Chunks are large: publish at once so the producer can stream the next one (unless a
         * frame is held: then the release waits behind it). */
        rc = ferry_spsc_release(&sp->rx, sp->hold_on ? FERRY_RING_DEFER : 0);
        if (rc < 0)
            return fy_shm_pipe_fail(sp, rc);
        sp->rx_deferred += sp->hold_on;
        if (r.kind != FY_SHM_REC_LAST)
            continue;
        sp->rx_last = r.total;
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
        /* A frame poll_in left in the ring goes out as a copy unless this call takes it so. */
        if (fy_msg_zc(&sp->stash) == FY_MSG_ZC_RING && !(p->sock && p->sock->zc_rx_mode) &&
            fy_shm_msg_unloan(&sp->stash) < 0)
            return FERRY_EAGAIN;
        fy_msg_move(m, &sp->stash);
        sp->has_stash = false;
        if (fy_msg_zc(m) == FY_MSG_ZC_RING && p->sock && p->sock->zc_rx_mode == 2)
            p->sock->zc_recvs++;
        return 0;
    }
    sp_msg_clear(m);
    int rc = sp_next(sp, m, true);
    if (rc == 0 && fy_msg_zc(m) == FY_MSG_ZC_RING && p->sock && p->sock->zc_rx_mode == 2)
        p->sock->zc_recvs++;
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
    int rc = sp_next(sp, &sp->stash, false);
    if (rc == FERRY_EAGAIN && fy_shm_pipe_prepare_wait(p, true, false) == 0) {
        /* The caller (events(), the pollfd upkeep, ferry_poll) may sleep on p->rfd when we say
         * "nothing": stay announced to the peer, unless something arrived meanwhile. */
        rc = sp_next(sp, &sp->stash, false);
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
        return fy_shm_pipe_fail(sp, rc);
    bool hwm = sp_at_hwm(sp);
    if (want_out && !sp->ovf_n && !hwm)
        return 0; /* the caller can send now */
    if (want_in) {
        if (sp->has_stash)
            return 0;
        if ((rc = sp_rx_publish(sp)) < 0)
            return rc;
        if (sp->hold_on) {
            /* ferry_spsc_rx_arm would publish the held frame's release: announce the sleep on
             * the same word by hand (same fence pairing as below) and look once more. */
            ferry_wait_arm(&sp->rx_shared->readable);
            sp->rx_armed = true;
            fy_msg_init(&sp->stash);
            rc = sp_next(sp, &sp->stash, false);
            if (rc == 0) {
                sp->has_stash = true;
                return 0;
            }
            if (rc != FERRY_EAGAIN)
                return 0; /* dead: the caller finds out at once */
            goto armed;
        }
        /* ferry_spsc_rx_arm: sleepers++ and a seq_cst fence (pairs with the producer's seq_cst
         * tail store + sleepers load in ferry_spsc_flush), then re-checks the ring. */
        rc = ferry_spsc_rx_arm(&sp->rx);
        if (rc < 0)
            return fy_shm_pipe_fail(sp, FERRY_EPROTO);
        if (rc == 1)
            return 0;
        sp->rx_armed = true;
    }
armed:
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
    /* acquire, not relaxed: between the check above and the lock, the owner may have drained
     * the queue under the lock (storing 0), then queued again unlocked and stored 1; the 1 read
     * here is that later store, and only an acquire orders the owner's unlocked queue writes
     * before our drain (the mutex only covers what happened before its unlock). */
    if (atomic_load_explicit(&sp->ovf_pending, memory_order_acquire)) {
        uint32_t before = sp->ovf_n;
        /* Still queued: 1 if the consumer made room for some (tick again soon), 2 if the ring
         * stayed full (the control thread backs off; there is no fd to wait on). */
        if (sp_drain(sp) >= 0 && ferry_spsc_flush(&sp->tx) == 0)
            pending = sp->ovf_n == 0 ? 0 : sp->ovf_n < before ? 1 : 2;
        /* release: see sp_tx_enter. */
        atomic_store_explicit(&sp->ovf_pending, sp->ovf_n != 0, memory_order_release);
    }
    pthread_mutex_unlock(&sp->tx_lock);
    return pending;
}

/*
 * Control thread. The tail flush found the ring full (fy_shm_pipe_ctl_flush reported 2): rather
 * than polling the ring on a timer, announce a sleeper on its writable word, so the consumer's
 * next published release (ferry_spsc_rx_flush) writes our wake eventfd, and put that eventfd in
 * the control thread's epoll, edge-triggered so it never has to read it (the owner's socket
 * epoll reads it: level-triggered there). The watch costs the consumer a wake-up system call
 * per announcement (wait.c wakes each announcement once), so it is only kept while the flush
 * makes no progress.
 */
int fy_shm_pipe_ctl_watch(fy_pipe *p, int epfd, uint64_t data)
{
    fy_shm_pipe *sp = sp_of(p);
    if (atomic_load_explicit(&p->dead, memory_order_relaxed))
        return 0;
    if (sp->ctl_epfd < 0) {
        struct epoll_event e = {.events = EPOLLIN | EPOLLET, .data.u64 = data};
        if (epoll_ctl(epfd, EPOLL_CTL_ADD, sp->my_efd, &e) != 0)
            return -errno;
        sp->ctl_epfd = epfd;
        /* release: pairs with the acquire load in sp_drain_efd (the owner). */
        atomic_store_explicit(&sp->ctl_watching, true, memory_order_release);
        /* seq_cst RMW, fence and membarrier: the Dekker pair with the consumer's head store and
         * sleepers load in ferry_spsc_rx_flush. The look below comes after the announcement: the
         * consumer either sees us or we see its release. */
        ferry_wait_arm(&sp->tx_shared->writable);
    } else if (atomic_load_explicit(&sp->tx_shared->writable.sleepers, memory_order_relaxed) &
               FY_WAIT_WOKEN) {
        /* Still stuck after a wake-up used our announcement: the consumer wakes each
         * announcement once (wait.c), so announce again before looking, or its next release
         * would not write our eventfd. */
        ferry_wait_disarm(&sp->tx_shared->writable);
        ferry_wait_arm(&sp->tx_shared->writable);
    }
    int r = fy_shm_pipe_ctl_flush(p);
    return r == 2 ? 1 : 0;
}

void fy_shm_pipe_ctl_unwatch(fy_pipe *p)
{
    fy_shm_pipe *sp = sp_of(p);
    if (sp->ctl_epfd < 0)
        return;
    epoll_ctl(sp->ctl_epfd, EPOLL_CTL_DEL, sp->my_efd, NULL);
    sp->ctl_epfd = -1;
    atomic_store_explicit(&sp->ctl_watching, false, memory_order_relaxed);
    ferry_wait_disarm(&sp->tx_shared->writable);
}

/* ---- the owner's direct path (ferry_socket_send/recv without a fy_msg or the pattern) ---- */

/*
 * A whole single-frame message from buf straight into the ring: one reserve, the meta word, one
 * copy, one publish. Only in the pipe's plain streaming state (nothing queued or loaned, no
 * message half sent, alive); anything else, and a full ring, is FY_SHM_DECLINE and goes the
 * general way (fy_shm_pipe_send_loan waits for room there, the queue keeps order). What it
 * leaves behind is exactly what sp_send leaves after the same frame, so either path may follow.
 */
int fy_shm_pipe_send_buf(fy_pipe *p, const void *buf, size_t len)
{
    fy_shm_pipe *sp = sp_of(p);
    /* acquire: pairs with the release store of ovf_pending in sp_tx_leave and
     * fy_shm_pipe_ctl_flush; while it reads 0 only the owner (us) touches tx and the queue. */
    if (atomic_load_explicit(&sp->ovf_pending, memory_order_acquire))
        return FY_SHM_DECLINE; /* the control thread may be draining: ovf_n is under tx_lock */
    if (sp->ovf_n | sp->loan_on | sp->out_mid | (len > sp->whole_max) | (len > sp->max_msg) |
        atomic_load_explicit(&p->dead, memory_order_relaxed))
        return FY_SHM_DECLINE;
    if (sp->tx_armed || sp->rx_armed)
        sp_disarm(sp);
    /* Full: the general path waits or queues; failed: the general path reports the dead pipe. */
    if (fy_shm_put_plain(sp, buf, len, 0) != 0)
        return FY_SHM_DECLINE;
    sp->out_refused = false;
    return 0;
}

/*
 * The next frame straight from the ring into buf when it is a whole single-frame data record
 * (no MORE, no subscription, not chunked): its first min(size, cap) bytes copied, the record
 * released by the same batching rule as sp_next's. Anything else is put back untouched and is
 * FY_SHM_DECLINE (the general path reads, validates and reports it, or waits when the ring is
 * empty). Checks the record exactly as fy_shm_rec_check does for a whole record: a lying peer
 * gets FERRY_EPROTO from the general path, never a read out of bounds here.
 */
int fy_shm_pipe_recv_buf(fy_pipe *p, void *buf, size_t cap, size_t *size)
{
    fy_shm_pipe *sp = sp_of(p);
    if (sp->has_stash | sp->asm_on | sp->hold_on)
        return FY_SHM_DECLINE;
    if (sp->rx_armed || sp->tx_armed)
        sp_disarm(sp);
    const void *data;
    size_t len;
    int rc = ferry_spsc_peek(&sp->rx, &data, &len);
    if (rc == FERRY_EAGAIN) {
        /* Empty: let the producer have the room we batched up, as sp_next does. */
        if (sp->rx_deferred)
            (void)sp_rx_publish(sp);
        return FY_SHM_EMPTY;
    }
    if (rc != 0)
        return FY_SHM_DECLINE; /* the general path reports it */
    uint64_t meta = 0;
    if (len >= REC_META)
        memcpy(&meta, data, REC_META); /* read once: the peer may change it behind us */
    if (!fy_shm_rec_is_plain(meta, len, sp->max_msg)) {
        if (ferry_spsc_unpeek(&sp->rx) < 0)
            fy_shm_pipe_fail(sp, FERRY_EPROTO);
        return FY_SHM_DECLINE;
    }
    int64_t n = fy_shm_take_plain(sp, data, len, buf, cap);
    if (n < 0)
        return FY_SHM_DECLINE; /* the general path reports the dead pipe */
    sp->rx_deferred++;
    (void)sp_release_published(sp, len); /* a failure kills the pipe; the frame is ours anyway */
    sp->rx_last = (uint64_t)n;
    *size = (size_t)n;
    return 0;
}

/*
 * The receive's spin window scales with the size of the last frame received: a peer answering a
 * frame of that size must copy it out of one ring and its answer into the other before anything
 * can arrive, so a window of SPIN_NS alone is sure to be missed for large frames, and each miss
 * costs a sleep and a wake-up (tens to hundreds of microseconds on a VM) on top of the copies.
 * FY_SHM_SPIN_PS_PER_BYTE covers two copies at 4 GB/s; the extra is capped at
 * FY_SHM_SPIN_MAX_EXTRA. It spins once per receive call, so an idle receiver still sleeps (at most
 * one window per call).
 */
#define FY_SHM_SPIN_PS_PER_BYTE 500u
#define FY_SHM_SPIN_MAX_EXTRA   1000000u /* ns */

uint64_t fy_shm_pipe_spin_ns(const fy_pipe *p, uint64_t base_ns)
{
    const fy_shm_pipe *sp = (const fy_shm_pipe *)p;
    if (base_ns == 0)
        return 0;
    uint64_t extra = sp->rx_last >= FY_SHM_SPIN_MAX_EXTRA * 1000u / FY_SHM_SPIN_PS_PER_BYTE
                         ? FY_SHM_SPIN_MAX_EXTRA
                         : sp->rx_last * FY_SHM_SPIN_PS_PER_BYTE / 1000u;
    return base_ns + extra;
}

/*
 * ferry_msg_send's direct path for a user loan (ferry_msg_loan) on the pattern's direct pipe: the
 * open reservation is committed in place as a whole single-frame record, with none of the
 * general path's layers (sock_run, pattern, pipe ops). Only in the plain streaming state, as
 * fy_shm_pipe_send_buf; anything else is FY_SHM_DECLINE and m is untouched. On 0 m is consumed
 * (left empty). A commit the ring refuses (only a peer that broke the ring) fails the pipe: m is
 * consumed and FERRY_EPROTO returned, as sp_send would.
 */
int fy_shm_pipe_send_loan_direct(fy_pipe *p, fy_msg *m)
{
    fy_shm_pipe *sp = sp_of(p);
    /* acquire: as in fy_shm_pipe_send_buf (ovf_pending 0: only the owner touches tx). */
    if (atomic_load_explicit(&sp->ovf_pending, memory_order_acquire))
        return FY_SHM_DECLINE;
    if (!sp->loan_on || fy_msg_zc(m) != FY_MSG_ZC_LOAN || sp_loan_share(m) != sp->sh ||
        (sp->ovf_n | sp->out_mid) || m->flags ||
        atomic_load_explicit(&p->dead, memory_order_relaxed))
        return FY_SHM_DECLINE;
    if (sp->tx_armed || sp->rx_armed)
        sp_disarm(sp);
    sp->out_refused = false;
    return sp_commit_loan(sp, m);
}

/* ---- life cycle ---- */

void fy_shm_pipe_free(fy_pipe *p)
{
    if (!p)
        return;
    fy_shm_pipe *sp = sp_of(p);
    fy_shm_pipe_ctl_unwatch(p); /* the control thread frees watched pipes (engine pipes) */
    if (sp->has_stash)
        fy_msg_fini(&sp->stash);
    fy_msg_fini(&sp->asmb);
    sp_share *sh = sp->sh;
    if (sh) {
        /* Loans and held frames outlive the pipe: they keep the mapping, not the pipe. */
        pthread_mutex_lock(&sh->mu);
        sh->sp = NULL;
        pthread_mutex_unlock(&sh->mu);
    }
    while (sp->ovf_n) {
        fy_msg_fini(&sp->ovf[sp->ovf_head].m);
        sp->ovf_head = (sp->ovf_head + 1) % sp->ovf_cap;
        sp->ovf_n--;
    }
    free(sp->ovf);
    pthread_mutex_destroy(&sp->tx_lock);
    if (sh)
        sp_share_unref(sh); /* the last reference unmaps the segment */
    else
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
    sp->ctl_epfd = -1;
    sp->link = link;
    sp->usock = usock;
    sp_share *sh = calloc(1, sizeof *sh);
    if (!sh) {
        fy_shm_pipe_free(&sp->pipe);
        return FERRY_ENOMEM;
    }
    atomic_init(&sh->refs, 1);
    pthread_mutex_init(&sh->mu, NULL);
    sh->sp = sp;
    sh->link = link;
    sh->fork_gen = fy_fork_gen();
    sp->sh = sh;
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
    sp->rx_shared = v.ring[peer];
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
