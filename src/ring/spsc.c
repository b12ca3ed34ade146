/*
 * spsc.c - the out-of-line half of the SPSC byte ring: format, attach, the slow
 * paths of reserve/peek (cache refresh, wrap padding, validation of everything
 * the peer wrote) and the blocking waits. The per-record fast paths are static
 * inline in ferry/ring.h.
 *
 * The span entry points (reserve_span, peek_span) open a window through the same fast paths and
 * hand it to the inline span steps in ferry/ring.h, which bound every step by the window.
 *
 * The peer is untrusted: every index and record header read from the segment is
 * checked in 64-bit arithmetic against the bounds our own private state proves
 * (what we published, what we have already seen, the capacity, alignment). The
 * first violation fails the endpoint for good with FERRY_EPROTO; no value from
 * shared memory is ever used as an offset before it passes.
 *
 * Eager reads: a record's header is stored last, with release, after the slot that follows the
 * record has been zeroed, so the header slot at the consumer's position is either zero or a whole
 * record. A consumer whose producer publishes record by record (a ping-pong peer) watches that
 * slot instead of the producer's index: the record and the news of it then cross between the
 * CPUs in one cache-line transfer instead of two (index line, then record line). It goes back to
 * the index as soon as it sees the producer batch its publishes, because watching the line the
 * producer is still filling makes that line bounce between the CPUs on every record.
 */
#include "ring/spsc_layout.h"
#include "ring/wait_internal.h"

#include <string.h>

static bool fy_spsc_cap_ok(uint64_t cap)
{
    return cap >= FERRY_SPSC_MIN_CAPACITY && cap <= FERRY_SPSC_MAX_CAPACITY &&
           (cap & (cap - 1)) == 0;
}

size_t ferry_spsc_footprint(size_t capacity)
{
    if (!fy_spsc_cap_ok(capacity))
        return 0;
    return FY_SPSC_HDR_SIZE + capacity;
}

int ferry_spsc_format(void *mem, size_t mem_size, size_t capacity)
{
    if (!mem || ((uintptr_t)mem & (FY_SPSC_LINE - 1)) != 0 || !fy_spsc_cap_ok(capacity) ||
        mem_size < FY_SPSC_HDR_SIZE + capacity)
        return FERRY_EINVAL;
    fy_spsc_shared *sh = mem;
    memset(sh, 0, sizeof *sh);
    sh->magic = FY_SPSC_MAGIC;
    sh->version = FY_SPSC_VERSION;
    sh->hdr_size = FY_SPSC_HDR_SIZE;
    sh->capacity = capacity;
    atomic_store_explicit(&sh->tail, 0, memory_order_relaxed);
    atomic_store_explicit(&sh->head, 0, memory_order_relaxed);
    /* The first record's header slot: zero means "nothing yet" to an eager consumer. */
    memset((uint8_t *)mem + FY_SPSC_HDR_SIZE, 0, 8);
    /* release: the header is complete before whatever hand-off (socket message,
     * thread start) tells the peer to attach; that hand-off supplies the acquire.
     */
    atomic_thread_fence(memory_order_release);
    return 0;
}

/* Validates the header of an untrusted ring and returns its capacity (0 if
 * invalid). */
static uint64_t fy_spsc_check_header(void *mem, size_t mem_size, int *rc)
{
    *rc = FERRY_EINVAL;
    if (!mem || ((uintptr_t)mem & 7) != 0 || mem_size < FY_SPSC_HDR_SIZE)
        return 0;
    *rc = FERRY_EPROTO;
    const volatile fy_spsc_shared *sh = mem;
    uint64_t cap = sh->capacity;
    if (sh->magic != FY_SPSC_MAGIC || sh->version != FY_SPSC_VERSION ||
        sh->hdr_size != FY_SPSC_HDR_SIZE || !fy_spsc_cap_ok(cap) ||
        cap > (uint64_t)mem_size - FY_SPSC_HDR_SIZE)
        return 0;
    *rc = 0;
    return cap;
}

/* Room for records: the ring less what the consumer holds, less the 8 bytes after the last record
 * that stay free so the producer can zero the next header slot before it publishes (an honest
 * producer's tail never comes closer than that to head + cap). */
static uint64_t fy_spsc_tx_room(const ferry_spsc_tx *tx)
{
    return tx->cap_ - 8 - (tx->tail_ - tx->head_cache_);
}

/* The producer's fast-path window: up to the room above and the end of the lap. */
static void fy_spsc_tx_set_lim(ferry_spsc_tx *tx)
{
    uint64_t free_bytes = fy_spsc_tx_room(tx);
    uint64_t contig = tx->cap_ - (tx->tail_ & tx->mask_);
    tx->lim_ = tx->tail_ + (free_bytes < contig ? free_bytes : contig);
}

/* The consumer's fast-path window: published bytes, but not past the end of the lap. */
static void fy_spsc_rx_set_lim(ferry_spsc_rx *rx)
{
    uint64_t avail = rx->tail_cache_ - rx->head_;
    uint64_t contig = rx->cap_ - (rx->head_ & rx->mask_);
    rx->lim_ = rx->head_ + (avail < contig ? avail : contig);
}

int ferry_spsc_tx_init(ferry_spsc_tx *tx, void *mem, size_t mem_size)
{
    if (!tx)
        return FERRY_EINVAL;
    memset(tx, 0, sizeof *tx);
    ferry_wait_policy_init(&tx->pol_);
    int rc;
    uint64_t cap = fy_spsc_check_header(mem, mem_size, &rc);
    if (rc < 0) {
        tx->err_ = rc;
        return rc;
    }
    fy_spsc_shared *sh = mem;
    /* acquire: pairs with the release (or seq_cst) stores of tail/head in ferry_spsc_flush and
     * ferry_spsc_rx_flush of an earlier endpoint, so a producer re-attaching continues from the
     * published state. */
    uint64_t tail = atomic_load_explicit(&sh->tail, memory_order_acquire);
    uint64_t head = atomic_load_explicit(&sh->head, memory_order_acquire);
    if ((tail & 7) != 0 || (head & 7) != 0 || tail - head > cap - 8) {
        tx->err_ = FERRY_EPROTO;
        return FERRY_EPROTO;
    }
    tx->shared_ = sh;
    tx->data_ = (uint8_t *)mem + FY_SPSC_HDR_SIZE;
    tx->cap_ = cap;
    tx->mask_ = cap - 1;
    tx->len_lim_ = FERRY_SPSC_MAX_RECORD(cap) + 1;
    tx->tail_ = tail;
    tx->published_ = tail;
    tx->head_cache_ = head;
    fy_spsc_tx_set_lim(tx);
    tx->strong_ = !fy_wait_asym_register();
    tx->tail_word_ = &sh->tail;
    tx->head_word_ = &sh->head;
    tx->readable_ = &sh->readable;
    tx->writable_ = &sh->writable;
    return 0;
}

int ferry_spsc_rx_init(ferry_spsc_rx *rx, void *mem, size_t mem_size)
{
    if (!rx)
        return FERRY_EINVAL;
    memset(rx, 0, sizeof *rx);
    ferry_wait_policy_init(&rx->pol_);
    int rc;
    uint64_t cap = fy_spsc_check_header(mem, mem_size, &rc);
    if (rc < 0) {
        rx->err_ = rc;
        return rc;
    }
    fy_spsc_shared *sh = mem;
    /* acquire: pairs with the release (or seq_cst) store of head in ferry_spsc_rx_flush
     * (re-attach). */
    uint64_t head = atomic_load_explicit(&sh->head, memory_order_acquire);
    if ((head & 7) != 0) {
        rx->err_ = FERRY_EPROTO;
        return FERRY_EPROTO;
    }
    rx->shared_ = sh;
    rx->data_ = (uint8_t *)mem + FY_SPSC_HDR_SIZE;
    rx->cap_ = cap;
    rx->mask_ = cap - 1;
    rx->head_ = head;
    rx->published_ = head;
    rx->tail_cache_ = head; /* forces a validated load of tail on first peek */
    rx->tail_seen_ = head;
    rx->lim_ = head;
    rx->strong_ = !fy_wait_asym_register();
    rx->tail_word_ = &sh->tail;
    rx->head_word_ = &sh->head;
    rx->readable_ = &sh->readable;
    rx->writable_ = &sh->writable;
    return 0;
}

void ferry_spsc_tx_set_wait(ferry_spsc_tx *tx, const ferry_wait_policy *pol)
{
    if (!tx)
        return;
    if (pol)
        tx->pol_ = *pol;
    else
        ferry_wait_policy_init(&tx->pol_);
}

void ferry_spsc_rx_set_wait(ferry_spsc_rx *rx, const ferry_wait_policy *pol)
{
    if (!rx)
        return;
    if (pol)
        rx->pol_ = *pol;
    else
        ferry_wait_policy_init(&rx->pol_);
}

/* ---- producer ---- */

/* Ring bytes a record of len needs at the current tail, counting the padding
 * record at a wrap. */
static uint64_t fy_spsc_tx_need(const ferry_spsc_tx *tx, size_t len)
{
    uint64_t sz = FERRY_SPSC_REC_SIZE_(len);
    uint64_t off = tx->tail_ & tx->mask_;
    return off + sz > tx->cap_ ? (tx->cap_ - off) + sz : sz;
}

/*
 * Loads and validates the consumer's head. It may only move forward from what
 * we saw last and never past what we committed (an eager consumer may read a
 * committed record before we publish the index); anything else is a hostile or
 * corrupted consumer.
 */
static int fy_spsc_tx_refresh(ferry_spsc_tx *tx, memory_order mo)
{
    /* acquire (seq_cst when called by the waiter, after ferry_wait_arm): pairs with the release
     * (or seq_cst) store of head in ferry_spsc_rx_flush; the consumer is done with those bytes
     * before we overwrite them. */
    uint64_t head = atomic_load_explicit(tx->head_word_, mo);
    if ((head & 7) != 0 || head - tx->head_cache_ > tx->tail_ - tx->head_cache_) {
        /* No reservation is open here (callers check first); len_lim_ 0 sends every later
         * reserve to the slow path, which reports the error. */
        tx->err_ = FERRY_EPROTO;
        tx->len_lim_ = 0;
        return FERRY_EPROTO;
    }
    tx->head_cache_ = head;
    fy_spsc_tx_set_lim(tx);
    return 0;
}

/* What refuses a reservation (or a span) of a len-byte record before any room is looked at: a
 * failed endpoint, one already open, a record larger than the ring allows. 0 when none does. */
static int fy_spsc_tx_refuse(const ferry_spsc_tx *tx, size_t len)
{
    if (tx->err_)
        return tx->err_;
    if (tx->rsv_)
        return FERRY_EBUSY;
    if (len > FERRY_SPSC_MAX_RECORD(tx->cap_))
        return FERRY_EMSGSIZE;
    return 0;
}

int ferry_spsc_reserve_slow_(ferry_spsc_tx *tx, size_t len, void **out)
{
    if (!tx || !out)
        return FERRY_EINVAL;
    int refused = fy_spsc_tx_refuse(tx, len);
    if (refused)
        return refused;
    uint64_t sz = FERRY_SPSC_REC_SIZE_(len);
    uint64_t need = fy_spsc_tx_need(tx, len);
    if (fy_spsc_tx_room(tx) < need) {
        int rc = fy_spsc_tx_refresh(tx, memory_order_acquire);
        if (rc < 0)
            return rc;
        if (fy_spsc_tx_room(tx) < need)
            return FERRY_EAGAIN;
    }
    uint64_t off = tx->tail_ & tx->mask_;
    if (need != sz) {
        /* The record would cross the end: fill the rest with a padding record and
         * start at 0. Offset 0 is inside the room just checked and is zeroed before the padding
         * header appears: an eager consumer may skip the padding at once and must find "nothing
         * yet" there. */
        uint64_t pad = tx->cap_ - off;
        uint64_t at = tx->tail_;
        tx->tail_ += pad;
        ferry_spsc_put_hdr_(tx, at, (pad - 8) | ((uint64_t)FERRY_SPSC_REC_PAD_ << 32));
        off = 0;
    }
    tx->rsv_ = (uint64_t)len + 1;
    fy_spsc_tx_set_lim(tx); /* after the padding: covers this record, so commit stays inside */
    *out = tx->data_ + off + 8;
    return 0;
}

int ferry_spsc_reserve_span(ferry_spsc_tx *tx, size_t len, ferry_spsc_span *s)
{
    if (!tx || !s)
        return FERRY_EINVAL;
    int refused = fy_spsc_tx_refuse(tx, len);
    if (refused)
        return refused;
    /* A span is worth one load of the consumer's line when the cached room is short of a
     * quarter ring and the lap goes further than it: the window then reaches what the consumer
     * has freed since. */
    uint64_t contig = tx->cap_ - (tx->tail_ & tx->mask_);
    if (tx->lim_ - tx->tail_ < tx->cap_ / 4 && tx->lim_ - tx->tail_ < contig) {
        int rc = fy_spsc_tx_refresh(tx, memory_order_acquire);
        if (rc < 0)
            return rc;
    }
    void *out;
    int rc = ferry_spsc_reserve(tx, len, &out); /* room, padding at the wrap, refusals */
    if (rc != 0)
        return rc;
    /* lim_ covers the record just reserved (>= its size, a multiple of 8). rsv_ = window - 7
     * admits commit_span of up to the window and keeps reserve refusing (FERRY_EBUSY). */
    uint64_t window = tx->lim_ - tx->tail_;
    s->base_ = s->pos_ = tx->data_ + (tx->tail_ & tx->mask_);
    s->end_ = s->base_ + window;
    s->first_ = 0;
    tx->rsv_ = window - 7;
    return 0;
}

struct fy_spsc_tx_wait {
    ferry_spsc_tx *tx;
    uint64_t need;
};

static bool fy_spsc_tx_ready(void *arg)
{
    struct fy_spsc_tx_wait *w = arg;
    ferry_spsc_tx *tx = w->tx;
    if (fy_spsc_tx_refresh(tx, memory_order_seq_cst) < 0)
        return true; /* failed: stop waiting, the caller reports it */
    return fy_spsc_tx_room(tx) >= w->need;
}

int ferry_spsc_cancel(ferry_spsc_tx *tx)
{
    if (!tx)
        return FERRY_EINVAL;
    if (tx->rsv_ == 0)
        return tx->err_ ? tx->err_ : FERRY_EINVAL;
    tx->rsv_ = 0;
    return 0;
}

int ferry_spsc_unpeek(ferry_spsc_rx *rx)
{
    if (!rx)
        return FERRY_EINVAL;
    if (rx->peeked_ == 0)
        return rx->err_ ? rx->err_ : FERRY_EINVAL;
    /* head_ did not move: the next peek finds the same record and checks it again. */
    rx->peeked_ = 0;
    return 0;
}

int ferry_spsc_wait_writable(ferry_spsc_tx *tx, size_t len, int timeout_ms)
{
    if (!tx)
        return FERRY_EINVAL;
    if (tx->err_)
        return tx->err_;
    if (len > FERRY_SPSC_MAX_RECORD(tx->cap_))
        return FERRY_EMSGSIZE;
    if (tx->rsv_)
        return FERRY_EBUSY;
    /* A consumer asleep on data we have not published would never free room for
     * us. */
    int rc = ferry_spsc_flush(tx);
    if (rc < 0)
        return rc;
    struct fy_spsc_tx_wait w = {tx, fy_spsc_tx_need(tx, len)};
    if (fy_spsc_tx_room(tx) >= w.need)
        return 0;
    rc = ferry_wait_block(tx->writable_, fy_spsc_tx_ready, &w, &tx->pol_, timeout_ms);
    if (tx->err_)
        return tx->err_;
    return rc;
}

/* ---- consumer ---- */

/* Fails the consumer for good; the inline fast paths see an empty ring and no peeked record, so
 * every later call reaches a slow path that reports the error. */
static int fy_spsc_rx_fail(ferry_spsc_rx *rx)
{
    rx->err_ = FERRY_EPROTO;
    rx->tail_cache_ = rx->head_;
    rx->lim_ = rx->head_;
    rx->peeked_ = 0;
    rx->eager_ = 0;
    return FERRY_EPROTO;
}

/*
 * Loads and validates the producer's tail: it may only move forward from what
 * we loaded last and never more than one capacity ahead of what we have published
 * as consumed. A tail that has not caught up with the records eager reads already
 * showed us is no news (the producer publishes later, or in batches).
 */
static int fy_spsc_rx_refresh(ferry_spsc_rx *rx, memory_order mo)
{
    /* acquire (seq_cst when called by the waiter, after ferry_wait_arm): pairs with the release
     * (or seq_cst) store of tail in ferry_spsc_flush; the records up to tail are complete before
     * we read them. */
    uint64_t tail = atomic_load_explicit(rx->tail_word_, mo);
    /* tail_seen_ <= published_ + cap_ holds (it passed this check against an older published_),
     * so the bound cannot wrap. */
    if ((tail & 7) != 0 || tail - rx->tail_seen_ > rx->published_ + rx->cap_ - rx->tail_seen_)
        return fy_spsc_rx_fail(rx);
    rx->tail_seen_ = tail;
    if ((int64_t)(tail - rx->tail_cache_) > 0) {
        rx->tail_cache_ = tail;
        fy_spsc_rx_set_lim(rx);
    }
    return 0;
}

/*
 * The eager read's checks and hand-out (ferry_spsc_peek found hdr, non-zero, in the header slot
 * at head_ with nothing else cached). The header is untrusted: a data record must fit the rest of
 * the lap and lie within one ring of what we released; padding must run exactly to the end of
 * the lap. Every FERRY_SPSC_EAGER_CHECK_ records we look at the producer's index as well: if it
 * lags behind what the headers show, the producer batches its publishes (watching the line it is
 * still filling would make that line bounce), and if it is ahead we have fallen behind; either
 * way, back to reading the index.
 */
int ferry_spsc_peek_eager_(ferry_spsc_rx *rx, uint64_t hdr, const void **data, size_t *len)
{
    if (!rx || !data || !len)
        return FERRY_EINVAL;
    for (;;) {
        uint64_t off = rx->head_ & rx->mask_;
        uint64_t contig = rx->cap_ - off;
        uint64_t n = (uint32_t)hdr;
        uint64_t type = hdr >> 32;
        uint64_t ahead = rx->head_ - rx->published_; /* < cap: what we took but did not release */
        if (type == FERRY_SPSC_REC_PAD_) {
            if (n != contig - 8 || contig > rx->cap_ - ahead)
                return fy_spsc_rx_fail(rx);
            rx->head_ += contig;
            rx->tail_cache_ = rx->lim_ = rx->head_;
            /* acquire: as in ferry_spsc_peek (the producer zeroed offset 0 before the padding
             * header appeared). */
            hdr = atomic_load_explicit(ferry_spsc_slot_(rx->data_, 0), memory_order_acquire);
            if (hdr == 0)
                return FERRY_EAGAIN;
            continue;
        }
        uint64_t sz = ferry_spsc_eager_size_(rx, hdr, off);
        if (sz == 0)
            return fy_spsc_rx_fail(rx);
        rx->tail_cache_ = rx->lim_ = rx->head_ + sz;
        if (--rx->eager_ == 0) {
            int rc = fy_spsc_rx_refresh(rx, memory_order_acquire);
            if (rc < 0)
                return rc;
            /* Exactly at the end of this record: the producer publishes each record, stay. */
            rx->eager_ = rx->tail_seen_ == rx->head_ + sz ? FERRY_SPSC_EAGER_CHECK_ : 0;
            rx->streak_ = 0;
        }
        rx->peeked_ = sz;
        *data = rx->data_ + off + 8;
        *len = (size_t)n;
        return 0;
    }
}

int ferry_spsc_peek_slow_(ferry_spsc_rx *rx, const void **data, size_t *len)
{
    if (!rx || !data || !len)
        return FERRY_EINVAL;
    if (rx->err_)
        return rx->err_;
    if (rx->peeked_)
        return FERRY_EBUSY;
    bool refreshed = false;
    bool skipped_pad = false;
    for (;;) {
        uint64_t avail = rx->tail_cache_ - rx->head_;
        if (avail == 0) {
            if (refreshed) {
                /* Only padding was published: hand its room back to the producer now.
                 */
                if (skipped_pad)
                    return ferry_spsc_rx_flush(rx) < 0 ? rx->err_ : FERRY_EAGAIN;
                return FERRY_EAGAIN;
            }
            int rc = fy_spsc_rx_refresh(rx, memory_order_acquire);
            if (rc < 0)
                return rc;
            refreshed = true;
            continue;
        }
        /* tail and head are 8-aligned, so avail >= 8 here: a whole header is
         * published. */
        uint64_t off = rx->head_ & rx->mask_;
        uint64_t contig = rx->cap_ - off;
        uint64_t hdr;
        memcpy(&hdr, rx->data_ + off, 8); /* one load: the value we check is the value we use */
        uint64_t n = (uint32_t)hdr;
        uint64_t type = hdr >> 32;
        if (type == FERRY_SPSC_REC_PAD_) {
            if (n != contig - 8 || contig > avail)
                return fy_spsc_rx_fail(rx);
            rx->head_ += contig;
            fy_spsc_rx_set_lim(rx);
            skipped_pad = true;
            continue;
        }
        uint64_t sz = FERRY_SPSC_REC_SIZE_(n);
        if (type != FERRY_SPSC_REC_DATA_ || sz > avail || sz > contig)
            return fy_spsc_rx_fail(rx);
        rx->peeked_ = sz;
        fy_spsc_rx_set_lim(rx); /* head_ may have crossed into a new lap since lim_ was set */
        *data = rx->data_ + off + 8;
        *len = (size_t)n;
        return 0;
    }
}

int ferry_spsc_peek_span(ferry_spsc_rx *rx, ferry_spsc_span *s)
{
    if (!rx || !s)
        return FERRY_EINVAL;
    const void *data;
    size_t len;
    /* Loads the tail when nothing is cached, skips padding and checks the first header. */
    int rc = ferry_spsc_peek(rx, &data, &len);
    if (rc != 0)
        return rc;
    /* lim_: published bytes up to the end of the lap (>= the record peek just checked). The
     * window in peeked_ keeps peek refusing (FERRY_EBUSY) and bounds release_span. */
    uint64_t window = rx->lim_ - rx->head_;
    s->base_ = s->pos_ = rx->data_ + (rx->head_ & rx->mask_);
    s->end_ = s->base_ + window;
    rx->peeked_ = window;
    return 0;
}

static bool fy_spsc_rx_ready(void *arg)
{
    ferry_spsc_rx *rx = arg;
    if (rx->tail_cache_ != rx->head_)
        return true;
    /* An eager consumer takes a record as soon as its header shows (acquire: pairs with the
     * header's release store). The index below stays the condition a publish wakes us for. */
    if (rx->eager_ != 0 && atomic_load_explicit(ferry_spsc_slot_(rx->data_, rx->head_ & rx->mask_),
                                                memory_order_acquire) != 0)
        return true;
    if (fy_spsc_rx_refresh(rx, memory_order_seq_cst) < 0)
        return true; /* failed: stop waiting, the caller reports it */
    return rx->tail_cache_ != rx->head_;
}

int ferry_spsc_wait_readable(ferry_spsc_rx *rx, int timeout_ms)
{
    if (!rx)
        return FERRY_EINVAL;
    if (rx->err_)
        return rx->err_;
    /* A producer asleep waiting for room we have consumed but not published would
     * never fill. */
    int rc = ferry_spsc_rx_flush(rx);
    if (rc < 0)
        return rc;
    rc = ferry_wait_block(rx->readable_, fy_spsc_rx_ready, rx, &rx->pol_, timeout_ms);
    if (rx->err_)
        return rx->err_;
    return rc;
}

int ferry_spsc_rx_arm(ferry_spsc_rx *rx)
{
    if (!rx)
        return FERRY_EINVAL;
    if (rx->err_)
        return rx->err_;
    int rc = ferry_spsc_rx_flush(rx);
    if (rc < 0)
        return rc;
    ferry_wait_arm(rx->readable_);
    if (fy_spsc_rx_ready(rx)) {
        ferry_wait_disarm(rx->readable_);
        return rx->err_ ? rx->err_ : 1;
    }
    return 0;
}

void ferry_spsc_rx_disarm(ferry_spsc_rx *rx)
{
    if (rx && rx->readable_)
        ferry_wait_disarm(rx->readable_);
}
