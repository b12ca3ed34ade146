/*
 * shm_pipe_impl.h - the private state of a shared-memory pipe, shared by shm_pipe.c (the pipe ops,
 * one frame at a time) and shm_batch.c (ferry_socket_send_many/recv_many: many frames per ring
 * publish). Nothing outside src/transport/shm_*.c may include it.
 *
 * Record format (one ring record per frame, or per chunk of a frame larger than one record): an
 * 8-byte meta word, flags in the low byte (REC_*) and the frame's total size above, then the
 * bytes. Both files must write and validate it identically: the peer is untrusted.
 */
#ifndef FERRY_TRANSPORT_SHM_PIPE_IMPL_H
#define FERRY_TRANSPORT_SHM_PIPE_IMPL_H

#include "common/copy.h"
#include "core/msg.h"
#include "core/pipe.h"
#include "ferry/ring.h"
#include "ring/spsc_layout.h"
#include "transport/shm.h"
#include "transport/shm_record.h"

#include <pthread.h>
#include <stdatomic.h>
#include <stdbool.h>
#include <stdint.h>
#include <string.h>

/* Short names for the record format, which shm_record.h defines (one definition). */
#define REC_MORE      FY_SHM_REC_MORE
#define REC_SUB       FY_SHM_REC_SUB
#define REC_CHUNK     FY_SHM_REC_CHUNK
#define REC_CONT      FY_SHM_REC_CONT
#define REC_FLAGS     FY_SHM_REC_FLAGS
#define REC_META      FY_SHM_REC_META
#define SIZE_MAX_META ((UINT64_C(1) << 56) - 1)

/* Releases smaller than this are published in batches of up to RX_BATCH records. */
#define RX_BATCH_BYTES 4096u
#define RX_BATCH       32u

typedef struct shm_ovf {
    fy_msg m;
    uint64_t off; /* bytes of m already in the ring */
    bool last;    /* the last frame of its message */
} shm_ovf;

typedef struct fy_shm_pipe fy_shm_pipe;

/*
 * What a loan or an in-ring frame refers to. refs: one for the pipe, one per outstanding loan or
 * held frame; the last one unmaps the segment. mu guards sp, which fy_shm_pipe_free clears (on
 * the control thread for upgraded ipc:// pipes) while a message's drop may want to touch the pipe.
 */
typedef struct sp_share {
    _Atomic uint32_t refs;
    pthread_mutex_t mu;
    fy_shm_pipe *sp;
    fy_shm_link *link;
    unsigned fork_gen; /* a forked child's copy of a message must not touch the rings */
    bool loan_user;    /* the open loan came from ferry_msg_loan (counts as zc_sends) */
    fy_msg_content loan_c, hold_c;
} sp_share;

struct fy_shm_pipe {
    fy_pipe pipe; /* first: a fy_pipe * is a fy_shm_pipe * */
    fy_shm_link *link;
    sp_share *sh;
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
    bool out_refused; /* the owner's last send (or can_send) was refused at SNDHWM */
    /* fy_shm_pipe_send_loan gave up waiting for room while the consumer's published head stood
     * at stall_head: do not wait again until it moves (a consumer that stopped reading must not
     * slow every send down by a wait) */
    bool stalled;
    uint64_t stall_head;
    shm_ovf *ovf;
    uint32_t ovf_head, ovf_n, ovf_cap;
    /* The control thread drains the overflow queue when the owner stops calling (tail flush).
     * While the queue is empty only the owner touches tx and the queue, without a lock; while
     * it is not (ovf_pending), both take tx_lock. Only the owner makes the queue non-empty. */
    _Atomic int ovf_pending;
    pthread_mutex_t tx_lock;
    /* The tail flush stuck on a full ring waits for the consumer's release instead of polling
     * (fy_shm_pipe_ctl_watch): ctl_epfd >= 0 while our wake eventfd sits in the control thread's
     * epoll and the ring's writable word is armed for it (control thread only). ctl_watching
     * tells the owner that a wake-up it reads off that eventfd may have been the control
     * thread's (sp_drain_efd passes it on). */
    int ctl_epfd;
    _Atomic bool ctl_watching;

    /* input (owner) */
    uint64_t rx_last; /* size of the last frame received (fy_shm_pipe_spin_ns scales with it) */
    uint32_t rx_deferred;
    bool rx_armed;
    fy_msg stash; /* a frame poll_in completed ahead of recv */
    bool has_stash;
    fy_msg asmb; /* a chunked frame being reassembled */
    uint64_t asm_total, asm_have;
    uint32_t asm_flags;
    bool asm_on;

    /* zero copy (owner) */
    bool loan_on;      /* sh->loan_c is the ring's open reservation */
    bool hold_on;      /* sh->hold_c is a frame still in the ring: publish no release */
    uint8_t *loan_rec; /* start of the reserved record (meta word) */
    fy_spsc_shared *rx_shared;
};

/* The pipe broke the protocol or its ring failed: it dies with err and its owner detaches it at
 * the next sync. Returns err. */
static inline int fy_shm_pipe_fail(fy_shm_pipe *sp, int err)
{
    fy_shm_pipe_kill(&sp->pipe, err);
    sp->pipe.saw_epipe = true;
    return err;
}

/* Writes one whole frame without flags as a record, the common record (what sp_put writes for
 * it, and what fy_shm_rec_is_plain accepts): reserve, meta word, one copy, commit with
 * commit_flags. 0; ferry_spsc_reserve's refusal (FERRY_EAGAIN = full, ...) with nothing written;
 * or FERRY_EPROTO when the commit failed, the pipe then failed. */
static inline int fy_shm_put_plain(fy_shm_pipe *sp, const void *buf, size_t len, int commit_flags)
{
    void *dst;
    int rc = ferry_spsc_reserve(&sp->tx, len + FY_SHM_REC_META, &dst);
    if (rc != 0)
        return rc;
    uint64_t meta = (uint64_t)len << 8;
    memcpy(dst, &meta, FY_SHM_REC_META);
    if (len)
        fy_copy((uint8_t *)dst + FY_SHM_REC_META, buf, len);
    if (ferry_spsc_commit(&sp->tx, len + FY_SHM_REC_META, commit_flags) < 0)
        return fy_shm_pipe_fail(sp, FERRY_EPROTO);
    return 0;
}

/* Copies the payload of a peeked plain record (data, len: the whole record) into buf (at most
 * cap bytes) and releases it deferred. The frame's size, or FERRY_EPROTO (pipe failed). */
static inline int64_t fy_shm_take_plain(fy_shm_pipe *sp, const void *data, size_t len, void *buf,
                                        size_t cap)
{
    size_t n = len - FY_SHM_REC_META;
    if (n && cap)
        fy_copy(buf, (const uint8_t *)data + FY_SHM_REC_META, n < cap ? n : cap);
    if (ferry_spsc_release(&sp->rx, FERRY_RING_DEFER) < 0)
        return fy_shm_pipe_fail(sp, FERRY_EPROTO);
    return (int64_t)n;
}

#endif
