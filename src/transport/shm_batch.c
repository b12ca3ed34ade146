/*
 * shm_batch.c - many frames per ring publish for ferry_socket_send_many/recv_many (shm_batch.h).
 *
 * The ordinary pipe ops (shm_pipe.c) pay, per frame, the tail-flush lock check, the wake-up
 * disarm, the overflow queue test, a heap or cached message, and a publish of the ring index with
 * its sleepers check. A batch of single-frame messages needs none of that per frame: the records
 * are written straight from (or copied straight into) the caller's buffers and the index is
 * published once. Anything unusual is left to the ordinary ops, so this file only ever handles a
 * pipe in its plain streaming state, which it leaves in that same state.
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

size_t fy_shm_batch_send(fy_pipe *p, const ferry_iov *v, size_t n, uint64_t *bytes, bool *full)
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
    uint64_t lim = sp->whole_max < sp->max_msg ? sp->whole_max : sp->max_msg;
    uint64_t total = 0;
    size_t i = 0;
    for (; i < n; i++) {
        size_t len = v[i].len;
        if ((v[i].flags & FERRY_MORE) || (uint64_t)len > lim)
            break;
        int rc = fy_shm_put_plain(sp, v[i].buf, len, FERRY_RING_DEFER);
        if (rc != 0) {
            if (rc == FERRY_EAGAIN)
                *full = true;
            else if (rc != FERRY_EBUSY && !atomic_load_explicit(&p->dead, memory_order_relaxed))
                fy_shm_pipe_fail(sp, FERRY_EPROTO); /* the ring refused a sane reservation */
            break;
        }
        total += len;
    }
    /* One publish for the batch; it wakes the consumer only if it announced a sleep. Also run
     * when nothing was written: a full ring must show the consumer what an earlier call
     * deferred. */
    if (ferry_spsc_flush(&sp->tx) < 0)
        fy_shm_pipe_fail(sp, FERRY_EPROTO);
    if (i > 0)
        sp->out_refused = false; /* as an accepted ordinary send: see known bug 3 in sp_flush */
    *bytes = total;
    return i;
}

size_t fy_shm_batch_recv(fy_pipe *p, ferry_iov *v, size_t n, uint64_t *bytes, bool *empty)
{
    fy_shm_pipe *sp = (fy_shm_pipe *)p;
    *bytes = 0;
    *empty = false;
    if (sp->has_stash || sp->asm_on || sp->hold_on || sp->rx_armed || sp->tx_armed)
        return 0;
    const fy_shm_rec_asm none = {0};
    uint64_t total = 0, unpublished = 0;
    size_t i = 0;
    for (; i < n; i++) {
        const void *data;
        size_t len;
        int rc = ferry_spsc_peek(&sp->rx, &data, &len);
        if (rc == FERRY_EAGAIN) {
            *empty = true; /* a dead peer's end of input is the ordinary recv's business */
            break;
        }
        if (rc < 0) {
            fy_shm_pipe_fail(sp, FERRY_EPROTO);
            break;
        }
        uint64_t meta = 0;
        if (len >= REC_META)
            memcpy(&meta, data, REC_META); /* read once: the peer may change it behind us */
        /* The common record inline (fy_shm_rec_is_plain: exactly what fy_shm_rec_check accepts
         * as a whole frame without flags, fuzzed for every length). Anything else gets the full
         * check, which either rejects it or names what it is. */
        if (!fy_shm_rec_is_plain(meta, len, sp->max_msg)) {
            fy_shm_rec r;
            if (fy_shm_rec_check(&none, meta, len, sp->max_msg, &r) < 0) {
                ferry_spsc_unpeek(&sp->rx);
                fy_shm_pipe_fail(sp, FERRY_EPROTO);
                break;
            }
            /* A multi-frame message, a subscription or a chunked frame: the pattern and the
             * ordinary recv deliver it (and keep a message on one pipe). */
            ferry_spsc_unpeek(&sp->rx);
            break;
        }
        int64_t size = fy_shm_take_plain(sp, data, len, v[i].buf, v[i].len);
        if (size < 0)
            break;
        v[i].size = (size_t)size;
        v[i].flags = 0;
        total += (uint64_t)size;
        unpublished += len;
        if (unpublished >= BATCH_RX_PUBLISH) {
            unpublished = 0;
            if (ferry_spsc_rx_flush(&sp->rx) < 0) {
                fy_shm_pipe_fail(sp, FERRY_EPROTO);
                i++;
                break;
            }
        }
    }
    /* One publish of the releases (and of any the ordinary recv deferred before): it wakes the
     * producer only if it announced a wait for room. */
    sp->rx_deferred = 0;
    if (!atomic_load_explicit(&p->dead, memory_order_relaxed) && ferry_spsc_rx_flush(&sp->rx) < 0)
        fy_shm_pipe_fail(sp, FERRY_EPROTO);
    *bytes = total;
    return i;
}
