/*
 * shm_batch.c - many frames per ring publish for ferry_socket_send_many/recv_many (shm_batch.h).
 *
 * The ordinary pipe ops (shm_pipe.c) pay, per frame, the tail-flush lock check, the wake-up
 * disarm, the overflow queue test, a heap or cached message, and a publish of the ring index with
 * its sleepers check. A batch of single-frame messages needs none of that per frame: the records
 * are written straight from (or copied straight into) the caller's buffers and the index is
 * published once. The ring is walked in spans (ferry_spsc_reserve_span / peek_span): one window
 * per stretch of free room or published records, the records put or taken inline with the ring
 * state in registers, one index update per span instead of a reserve/commit or peek/release
 * call pair per record. Anything unusual is left to the ordinary ops, so this file only ever
 * handles a pipe in its plain streaming state, which it leaves in that same state.
 *
 * The record format and its checks are shared with shm_pipe.c (shm_pipe_impl.h, shm_record.h):
 * a record written here is indistinguishable from one written by sp_put, and a record read here
 * passes the same fy_shm_rec_check, so a hostile peer gets the same FERRY_EPROTO either way.
 */
#include "transport/shm_batch.h"
#include "core/socket.h"
#include "transport/shm_pipe_impl.h"
#include "transport/shm_record.h"

#include <string.h>

/* The receiver publishes its releases at least this often within one batch (bytes). */
#define BATCH_RX_PUBLISH 65536u

/* A frame copy. Small frames (the batch calls' reason to exist) are copied with two
 * overlapping fixed-size moves instead of a call into the C library's memcpy, whose call and
 * size dispatch cost about as much as the copy itself at 8-64 bytes; larger ones go to fy_copy.
 * The moves go through 16-byte vector values, which the compiler keeps in registers (byte-array
 * temporaries were also written to the stack, four extra stores per 64-byte frame). */
typedef uint8_t batch_v16 __attribute__((vector_size(16)));

static inline void batch_copy(void *dst, const void *src, size_t n)
{
    uint8_t *d = dst;
    const uint8_t *s = src;
    if (n >= 32) {
        if (n > 64) {
            fy_copy(d, s, n);
            return;
        }
        batch_v16 a, b, c, e;
        memcpy(&a, s, 16);
        memcpy(&b, s + 16, 16);
        memcpy(&c, s + n - 32, 16);
        memcpy(&e, s + n - 16, 16);
        memcpy(d, &a, 16);
        memcpy(d + 16, &b, 16);
        memcpy(d + n - 32, &c, 16);
        memcpy(d + n - 16, &e, 16);
    } else if (n >= 16) {
        batch_v16 a, b;
        memcpy(&a, s, 16);
        memcpy(&b, s + n - 16, 16);
        memcpy(d, &a, 16);
        memcpy(d + n - 16, &b, 16);
    } else if (n >= 8) {
        uint64_t a, b;
        memcpy(&a, s, 8);
        memcpy(&b, s + n - 8, 8);
        memcpy(d, &a, 8);
        memcpy(d + n - 8, &b, 8);
    } else if (n >= 4) {
        uint32_t a, b;
        memcpy(&a, s, 4);
        memcpy(&b, s + n - 4, 4);
        memcpy(d, &a, 4);
        memcpy(d + n - 4, &b, 4);
    } else {
        for (size_t i = 0; i < n; i++)
            d[i] = s[i];
    }
}

/* An entry the send loop writes as one plain record: flags 0, a buffer unless empty, a size
 * within lim (one record, max_msg). */
static inline bool batch_tx_plain(int flags, const void *buf, size_t len, uint64_t lim)
{
    return flags == 0 && (uint64_t)len <= lim && (buf || !len);
}

ssize_t fy_shm_batch_send(fy_pipe *p, const ferry_iov *v, size_t n, bool checked, uint64_t *bytes,
                          bool *full)
{
    fy_shm_pipe *sp = (fy_shm_pipe *)p;
    *bytes = 0;
    *full = false;
    /* acquire: pairs with the release store of ovf_pending in sp_tx_leave and
     * fy_shm_pipe_ctl_flush. While it reads 0 the queue is empty and the control thread touches
     * neither the queue nor tx; only the owner (us) could make it non-empty again. */
    if (atomic_load_explicit(&sp->ovf_pending, memory_order_acquire) || sp->ovf_n || sp->loan_on) {
        *full = true; /* a record now would overtake queued output or the open loan */
        return 0;
    }
    if (sp->out_mid || sp->tx_armed || sp->rx_armed ||
        atomic_load_explicit(&p->dead, memory_order_relaxed))
        return 0;
    /* Everything the loop reads more than once is in a local: the frame copies store through
     * byte pointers, which may alias any memory, so a field read through sp or through a span
     * whose address was passed out of line would be loaded again after every copy. */
    const uint64_t lim = sp->whole_max < sp->max_msg ? sp->whole_max : sp->max_msg;
    ferry_spsc_tx *tx = &sp->tx;
    const ferry_iov *e = v, *const end = v + n;
    uint64_t total = 0;
    /* One span per stretch of free ring: the records go straight in (meta word, one copy each)
     * with the ring state in registers, then one commit. A span ends at the consumer's published
     * position or the end of the lap; the next reserve_span starts the next one (or says full).
     * The loop takes an entry whose flags are 0 (a whole message: no FERRY_MORE, and no flag
     * ferry_socket_send_many refuses) with a buffer (or nothing to copy) and a size that fits one
     * record: so every entry it writes is a valid one, checked as it is read. */
    while (e < end && batch_tx_plain(e->flags, e->buf, e->len, lim)) {
        ferry_spsc_span opened;
        int rc = ferry_spsc_reserve_span(tx, e->len + FY_SHM_REC_META, &opened);
        if (rc != 0) {
            if (rc == FERRY_EAGAIN)
                *full = true;
            else if (rc != FERRY_EBUSY && !atomic_load_explicit(&p->dead, memory_order_relaxed))
                fy_shm_pipe_fail(sp, FERRY_EPROTO); /* the ring refused a sane reservation */
            break;
        }
        ferry_spsc_span span = opened; /* only ever passed to the inline steps: registers */
        do {
            /* Each field read once: the stores below may alias the array. */
            size_t len = e->len;
            const void *buf = e->buf;
            if (!batch_tx_plain(e->flags, buf, len, lim))
                break;
            uint8_t *dst = ferry_spsc_span_put(&span, len + FY_SHM_REC_META);
            if (!dst)
                break;                          /* the span is full: commit it, then the next one */
            uint64_t meta = (uint64_t)len << 8; /* what fy_shm_rec_is_plain accepts */
            memcpy(dst, &meta, FY_SHM_REC_META);
            batch_copy(dst + FY_SHM_REC_META, buf, len);
            total += len;
        } while (++e < end);
        /* Entries the caller did not check: those written were checked above, the rest are
         * checked before anything becomes visible. A bad one cancels the span (nothing put)
         * and the call fails with nothing sent, as ferry_socket_send_many promises. */
        if (!checked && e < end) {
            int bad = fy_batch_check_tx(e, (size_t)(end - e));
            if (bad < 0) {
                (void)ferry_spsc_commit_span(tx, &opened, FERRY_RING_DEFER);
                return bad;
            }
        }
        checked = true;
        if (ferry_spsc_commit_span(tx, &span, FERRY_RING_DEFER) < 0) {
            fy_shm_pipe_fail(sp, FERRY_EPROTO);
            break;
        }
    }
    /* One publish for the batch; it wakes the consumer only if it announced a sleep. Also run
     * when nothing was written: a full ring must show the consumer what an earlier call
     * deferred. */
    if (ferry_spsc_flush(tx) < 0)
        fy_shm_pipe_fail(sp, FERRY_EPROTO);
    size_t i = (size_t)(e - v);
    if (i > 0)
        sp->out_refused = false; /* as an accepted ordinary send: see known bug 3 in sp_flush */
    *bytes = total;
    return (ssize_t)i;
}

size_t fy_shm_batch_recv(fy_pipe *p, ferry_iov *v, size_t n, uint64_t *bytes, bool *empty)
{
    fy_shm_pipe *sp = (fy_shm_pipe *)p;
    *bytes = 0;
    *empty = false;
    if (sp->has_stash || sp->asm_on || sp->hold_on || sp->rx_armed || sp->tx_armed)
        return 0;
    /* Locals for what the loop reads more than once (see fy_shm_batch_send: the copies store
     * through byte pointers). */
    const uint64_t max_msg = sp->max_msg;
    ferry_spsc_rx *rx = &sp->rx;
    ferry_iov *e = v, *const end = v + n;
    uint64_t total = 0, unpublished = 0;
    int stop = 0; /* 1: a record only the ordinary recv handles; 2: a broken one */
    /* One span per stretch of published records: each record is checked and copied out with
     * the ring state in registers, and the span is released with one (deferred) update. */
    while (e < end && !stop) {
        ferry_spsc_span opened;
        int rc = ferry_spsc_peek_span(rx, &opened);
        if (rc == FERRY_EAGAIN) {
            *empty = true; /* a dead peer's end of input is the ordinary recv's business */
            break;
        }
        if (rc < 0) {
            fy_shm_pipe_fail(sp, FERRY_EPROTO);
            break;
        }
        ferry_spsc_span span = opened; /* only ever passed to the inline steps: registers */
        while (e < end && unpublished < BATCH_RX_PUBLISH) {
            ferry_spsc_span before = span;
            const void *data;
            size_t len;
            /* The end of the span, padding or a broken header: release what we took and ask
             * peek_span again, which skips the padding or reports the broken header. */
            if (ferry_spsc_span_next(&span, &data, &len) != 0)
                break;
            uint64_t meta = 0;
            if (len >= REC_META)
                memcpy(&meta, data, REC_META); /* read once: the peer may change it behind us */
            /* The common record inline (fy_shm_rec_is_plain: exactly what fy_shm_rec_check
             * accepts as a whole frame without flags, fuzzed for every length). Anything else
             * gets the full check, which either rejects it or names what it is. */
            if (!fy_shm_rec_is_plain(meta, len, max_msg)) {
                span = before; /* the record stays in the ring */
                const fy_shm_rec_asm none = {0};
                fy_shm_rec r;
                if (fy_shm_rec_check(&none, meta, len, max_msg, &r) < 0)
                    stop = 2;
                else
                    /* A multi-frame message, a subscription or a chunked frame: the pattern
                     * and the ordinary recv deliver it (and keep a message on one pipe). */
                    stop = 1;
                break;
            }
            size_t size = len - REC_META;
            batch_copy(e->buf, (const uint8_t *)data + REC_META, size < e->len ? size : e->len);
            e->size = size;
            e->flags = 0;
            total += size;
            unpublished += len;
            e++;
        }
        if (ferry_spsc_release_span(rx, &span, FERRY_RING_DEFER) < 0) {
            fy_shm_pipe_fail(sp, FERRY_EPROTO);
            break;
        }
        if (stop == 2) {
            fy_shm_pipe_fail(sp, FERRY_EPROTO);
            break;
        }
        if (unpublished >= BATCH_RX_PUBLISH) {
            unpublished = 0;
            if (ferry_spsc_rx_flush(rx) < 0) {
                fy_shm_pipe_fail(sp, FERRY_EPROTO);
                break;
            }
        }
    }
    /* One publish of the releases (and of any the ordinary recv deferred before): it wakes the
     * producer only if it announced a wait for room. */
    sp->rx_deferred = 0;
    if (!atomic_load_explicit(&p->dead, memory_order_relaxed) && ferry_spsc_rx_flush(rx) < 0)
        fy_shm_pipe_fail(sp, FERRY_EPROTO);
    *bytes = total;
    return (size_t)(e - v);
}
