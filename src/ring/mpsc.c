/*
 * mpsc.c - multi-producer/single-consumer byte ring of variable-length records in shared memory.
 *
 * Producers reserve space with a CAS on the shared tail (a fetch-add could overshoot when the ring
 * is full and then no one could undo it), checked against the consumer's published head. A
 * producer then writes its payload and commits by storing the record's 64-bit header word last,
 * with release semantics. A header of 0 means "not committed yet", so the consumer can meet an
 * uncommitted record in the middle of committed ones and simply waits for it (FERRY_EAGAIN):
 * records are consumed strictly in reservation order. A record that would run past the end of the
 * data area is preceded by a padding record that fills the rest of the area.
 *
 * Invariant: every byte outside [head, tail) is zero. The consumer zeroes each record it consumes
 * (header and payload) before publishing the new head. Zeroing only the header would not do:
 * records have different sizes, so a later record's header can land where an earlier record had
 * payload bytes, and stale payload must never read as a committed header.
 *
 * Everything the consumer reads from the ring (header words, the shape line) is validated before
 * use: a bad header, a length beyond the ring or a padding record that does not end exactly at the
 * end of the data area yields FERRY_EPROTO, and the endpoint stays failed. The consumer's head is
 * private and authoritative; the shared copy only tells producers how much room there is.
 *
 * Known limitation: a producer that dies between its reservation and its commit leaves a zero
 * header that the consumer can never pass. ferry_mpsc_stalled() detects it (see ring.h).
 */
#include "ferry/ring.h"
#include "ring/multi_layout.h"
#include "ring/wait_internal.h"

#include <stdint.h>
#include <string.h>

/* Bound on the reservation loop; see FY_MPMC_MAX_TRIES in mpmc.c for why it exists. */
#define FY_MPSC_MAX_TRIES 65536u

_Static_assert(sizeof(fy_mpsc_hdr) == 3 * FY_MULTI_LINE, "mpsc header is three lines");

static bool fy_mpsc_cap_ok(uint64_t cap)
{
    return cap >= FY_MPSC_MIN_CAPACITY && cap <= FY_MPSC_MAX_CAPACITY && (cap & (cap - 1)) == 0;
}

size_t ferry_mpsc_footprint(size_t capacity)
{
    if (!fy_mpsc_cap_ok(capacity))
        return 0;
    uint64_t bytes = (uint64_t)sizeof(fy_mpsc_hdr) + (uint64_t)capacity;
    if (bytes > SIZE_MAX)
        return 0;
    return (size_t)bytes;
}

int ferry_mpsc_format(void *mem, size_t mem_size, size_t capacity)
{
    if (!mem || ((uintptr_t)mem & (FY_MULTI_LINE - 1)) != 0)
        return FERRY_EINVAL;
    size_t need = ferry_mpsc_footprint(capacity);
    if (need == 0)
        return FERRY_EINVAL;
    if (mem_size < need)
        return FERRY_EMSGSIZE;
    fy_mpsc_hdr *h = mem;
    /* Zero everything (the free-space invariant), then publish the magic last with release;
     * pairs with the acquire load of magic in ferry_mpsc_init. */
    memset(mem, 0, need);
    atomic_store_explicit(&h->version, FY_MPSC_VERSION, memory_order_relaxed);
    atomic_store_explicit(&h->capacity, capacity, memory_order_relaxed);
    atomic_store_explicit(&h->tail, 0, memory_order_relaxed);
    atomic_store_explicit(&h->head, 0, memory_order_relaxed);
    atomic_store_explicit(&h->magic, FY_MPSC_MAGIC, memory_order_release);
    return 0;
}

int ferry_mpsc_init(ferry_mpsc *r, void *mem, size_t mem_size)
{
    if (!r)
        return FERRY_EINVAL;
    memset(r, 0, sizeof *r);
    if (!mem || ((uintptr_t)mem & (FY_MULTI_LINE - 1)) != 0)
        return FERRY_EINVAL;
    if (mem_size < sizeof(fy_mpsc_hdr))
        return FERRY_EPROTO;
    fy_mpsc_hdr *h = mem;
    /* Pairs with the release store of magic at the end of ferry_mpsc_format. */
    if (atomic_load_explicit(&h->magic, memory_order_acquire) != FY_MPSC_MAGIC ||
        atomic_load_explicit(&h->version, memory_order_relaxed) != FY_MPSC_VERSION)
        return FERRY_EPROTO;
    uint64_t cap = atomic_load_explicit(&h->capacity, memory_order_relaxed);
    if (!fy_mpsc_cap_ok(cap))
        return FERRY_EPROTO;
    size_t need = ferry_mpsc_footprint(cap);
    if (need == 0 || need > mem_size)
        return FERRY_EPROTO;
    /* Only the consumer uses head_; records start on 8-byte boundaries, so must the head.
     * Acquire: pairs with the release store in fy_mpsc_publish_head, so a re-attaching consumer
     * (or a producer seeding its head cache) sees the records below it consumed and zeroed. */
    uint64_t head = atomic_load_explicit(&h->head, memory_order_acquire);
    if (head & 7)
        return FERRY_EPROTO;
    r->shared_ = mem;
    r->data_ = (uint8_t *)mem + sizeof(fy_mpsc_hdr);
    r->cap_ = cap;
    r->mask_ = cap - 1;
    r->head_ = head;
    r->head_cache_ = head;
    r->err_ = 0;
    r->strong_ = !fy_wait_asym_register();
    ferry_wait_policy_init(&r->pol_);
    return 0;
}

void ferry_mpsc_set_wait(ferry_mpsc *r, const ferry_wait_policy *pol)
{
    if (!r)
        return;
    if (pol)
        r->pol_ = *pol;
    else
        ferry_wait_policy_init(&r->pol_);
}

static int fy_mpsc_fail(ferry_mpsc *r)
{
    r->err_ = FERRY_EPROTO;
    return FERRY_EPROTO;
}

static bool fy_mpsc_shape_intact(const ferry_mpsc *r)
{
    fy_mpsc_hdr *h = r->shared_;
    return atomic_load_explicit(&h->capacity, memory_order_relaxed) == r->cap_;
}

/* The header word of the record at data offset off (a multiple of 8, below cap). */
static _Atomic uint64_t *fy_mpsc_word(const ferry_mpsc *r, uint64_t off)
{
    return (_Atomic uint64_t *)(void *)(r->data_ + off);
}

/* Pairs with the consumer's release store of head in fy_mpsc_publish_head: everything
 * before the head we read has been read and zeroed, so we may write there. */
static uint64_t fy_mpsc_load_head(fy_mpsc_hdr *h)
{
    return atomic_load_explicit(&h->head, memory_order_acquire);
}

/* Ring bytes a record of `total` bytes takes when reserved at data offset off: itself, plus the
 * padding to the end of the data area when it would not fit before it. */
static uint64_t fy_mpsc_need(uint64_t cap, uint64_t off, uint64_t total)
{
    return total > cap - off ? (cap - off) + total : total;
}

int ferry_mpsc_write(ferry_mpsc *r, const void *buf, size_t len)
{
    if (!r || !r->shared_ || (!buf && len))
        return FERRY_EINVAL;
    if (r->err_)
        return r->err_;
    if ((uint64_t)len > fy_mpsc_max_record(r->cap_))
        return FERRY_EMSGSIZE;
    if (!fy_mpsc_shape_intact(r))
        return fy_mpsc_fail(r);
    fy_mpsc_hdr *h = r->shared_;
    const uint64_t cap = r->cap_;
    const uint64_t total = fy_mpsc_total(len);
    uint64_t tail, off, need;
    /* The room check starts from our cached head (a lower bound of the real one, so the check is
     * conservative) and loads the consumer's line only when the cache says "no room": with a
     * consumer keeping up, producers rarely touch its line. `fresh` records that head was loaded
     * after tail, which the corruption test below relies on. */
    uint64_t head = r->head_cache_;
    bool fresh = false;
    /* Acquire: pairs with the acq_rel CAS of the producer that wrote this tail, so the head that
     * producer checked against is visible to our head loads (see the corruption test). */
    tail = atomic_load_explicit(&h->tail, memory_order_acquire);
    for (unsigned tries = 0;; tries++) {
        if (tries >= FY_MPSC_MAX_TRIES)
            return FERRY_EAGAIN;
        uint64_t used = tail - head;
        if (used > cap || (tail & 7) != 0) {
            if (!fresh) {
                head = fy_mpsc_load_head(h);
                fresh = true;
                continue;
            }
            /* Legitimately our tail can be stale (head already moved past it); then a reload
             * returns a newer tail, because the head we saw was published after the records
             * below it were reserved. An unchanged tail means the shared words are corrupt. */
            uint64_t now = atomic_load_explicit(&h->tail, memory_order_acquire);
            if (now == tail)
                return fy_mpsc_fail(r);
            tail = now;
            fresh = false;
            continue;
        }
        off = tail & r->mask_;
        need = fy_mpsc_need(cap, off, total);
        if (need > cap - used) {
            if (!fresh) {
                head = fy_mpsc_load_head(h);
                fresh = true;
                continue;
            }
            r->head_cache_ = head;
            return FERRY_EAGAIN;
        }
        /* acq_rel on success: release so the next producer reading this tail also sees the head
         * we checked against (pairs with the acquire loads of tail above); acquire on failure
         * for the same reason with the winner's tail. */
        if (atomic_compare_exchange_weak_explicit(&h->tail, &tail, tail + need,
                                                  memory_order_acq_rel, memory_order_acquire))
            break;
        fresh = false; /* tail moved on: our head is no longer younger than it */
    }
    r->head_cache_ = head;
    uint64_t at = need == total ? off : 0;
    if (len)
        memcpy(r->data_ + at + FY_MPSC_HDR, buf, len);
    _Atomic uint64_t *last = fy_mpsc_word(r, at);
    uint64_t last_word = FY_MPSC_COMMIT | (uint64_t)len;
    if (need != total) {
        /* The record first (pairs with the consumer's acquire load of the header word in
         * ferry_mpsc_read, which then sees the payload copied above), the padding in front of
         * it last, by the commit below. */
        atomic_store_explicit(last, last_word, memory_order_release);
        last = fy_mpsc_word(r, off);
        last_word = FY_MPSC_COMMIT | FY_MPSC_PAD | (cap - off);
    }
    /* Commit. Release: pairs with the consumer's acquire load of the header word in
     * ferry_mpsc_read (payload visible before the header says so). The sleepers check: the
     * waker's half of the Dekker pair with ferry_wait_arm in a consumer going to sleep (see
     * fy_multi_publish; either we see its sleepers count or it sees this header). */
    if (fy_multi_publish(last, last_word, &h->readable, r->strong_))
        ferry_wait_wake_slow_(&h->readable, &r->pol_);
    return 0;
}

/* Makes the consumer's progress visible to producers. Release: pairs with the acquire load of
 * head in fy_mpsc_load_head (our reads of the consumed records and the zeroing of them are
 * complete before any producer can reserve that space again). The sleepers check: the Dekker
 * pair with ferry_wait_arm in a producer waiting for room (see fy_multi_publish). */
static void fy_mpsc_publish_head(ferry_mpsc *r)
{
    fy_mpsc_hdr *h = r->shared_;
    if (fy_multi_publish(&h->head, r->head_, &h->writable, r->strong_))
        ferry_wait_wake_slow_(&h->writable, &r->pol_);
}

ssize_t ferry_mpsc_read(ferry_mpsc *r, void *buf, size_t cap)
{
    if (!r || !r->shared_ || (!buf && cap))
        return FERRY_EINVAL;
    if (r->err_)
        return r->err_;
    if (!fy_mpsc_shape_intact(r))
        return fy_mpsc_fail(r);
    const uint64_t rcap = r->cap_;
    bool skipped = false;
    /* At most two rounds: a padding record is never followed by another one (a pad only ever
     * runs to the end of the data area, so the next record starts at offset 0 and fits). */
    for (;;) {
        uint64_t off = r->head_ & r->mask_;
        _Atomic uint64_t *wp = fy_mpsc_word(r, off);
        /* Pairs with the producer's release store of the header word (commit) in
         * ferry_mpsc_write: a non-zero header means the payload before it is visible. */
        uint64_t w = atomic_load_explicit(wp, memory_order_acquire);
        if (w == 0) {
            if (skipped)
                fy_mpsc_publish_head(r);
            return FERRY_EAGAIN;
        }
        if ((w & FY_MPSC_COMMIT) == 0 || (w & ~FY_MPSC_KNOWN) != 0)
            return fy_mpsc_fail(r);
        uint64_t n = w & FY_MPSC_LEN_MASK;
        if (w & FY_MPSC_PAD) {
            if (skipped || off == 0 || n != rcap - off)
                return fy_mpsc_fail(r);
            /* The producer wrote only this word of the padding; the rest is still zero.
             * Relaxed: published to producers by the head store in fy_mpsc_publish_head. */
            atomic_store_explicit(wp, 0, memory_order_relaxed);
            r->head_ += n;
            skipped = true;
            continue;
        }
        if (n > fy_mpsc_max_record(rcap))
            return fy_mpsc_fail(r);
        uint64_t total = fy_mpsc_total(n);
        if (total > rcap - off)
            return fy_mpsc_fail(r);
        if (n > cap) {
            if (skipped)
                fy_mpsc_publish_head(r);
            return FERRY_EMSGSIZE;
        }
        if (n)
            memcpy(buf, r->data_ + off + FY_MPSC_HDR, (size_t)n);
        /* Restore the free-space invariant (see the file comment) before handing the space
         * back; fy_mpsc_publish_head's release orders these stores before the new head. */
        memset(r->data_ + off + FY_MPSC_HDR, 0, (size_t)(total - FY_MPSC_HDR));
        atomic_store_explicit(wp, 0, memory_order_relaxed);
        r->head_ += total;
        fy_mpsc_publish_head(r);
        return (ssize_t)n;
    }
}

int ferry_mpsc_stalled(ferry_mpsc *r, uint64_t *pos)
{
    if (!r || !r->shared_)
        return FERRY_EINVAL;
    if (r->err_)
        return r->err_;
    if (!fy_mpsc_shape_intact(r))
        return fy_mpsc_fail(r);
    fy_mpsc_hdr *h = r->shared_;
    /* Consumer-side snapshot: space past our head is reserved but the record there has no header
     * yet. Reading tail first (acquire keeps the order) means the reservation we count is older
     * than the header we look at; a producer in the middle of its copy looks stalled for a moment,
     * which is why the caller must see the same position twice, some time apart. */
    uint64_t tail = atomic_load_explicit(&h->tail, memory_order_acquire);
    uint64_t w = atomic_load_explicit(fy_mpsc_word(r, r->head_ & r->mask_), memory_order_relaxed);
    if (pos)
        *pos = r->head_;
    return w == 0 && tail != r->head_ ? 1 : 0;
}

/* Wait conditions: cheap looks at shared words that only decide whether to keep sleeping; read
 * and write re-validate everything, so a scribbled word costs a spurious wake-up at most. */
static bool fy_mpsc_readable(void *arg)
{
    const ferry_mpsc *r = arg;
    /* Pairs with the producers' release commit store in ferry_mpsc_write. */
    return atomic_load_explicit(fy_mpsc_word(r, r->head_ & r->mask_), memory_order_acquire) != 0;
}

typedef struct fy_mpsc_room {
    const ferry_mpsc *r;
    uint64_t total;
} fy_mpsc_room;

static bool fy_mpsc_writable(void *arg)
{
    const fy_mpsc_room *w = arg;
    fy_mpsc_hdr *h = w->r->shared_;
    uint64_t cap = w->r->cap_;
    uint64_t tail = atomic_load_explicit(&h->tail, memory_order_acquire);
    uint64_t used = tail - fy_mpsc_load_head(h);
    if (used > cap)
        return true; /* stale or corrupt: let ferry_mpsc_write sort it out */
    return fy_mpsc_need(cap, tail & w->r->mask_, w->total) <= cap - used;
}

int ferry_mpsc_wait_readable(ferry_mpsc *r, int timeout_ms)
{
    if (!r || !r->shared_)
        return FERRY_EINVAL;
    if (r->err_)
        return r->err_;
    if (!fy_mpsc_shape_intact(r))
        return fy_mpsc_fail(r);
    fy_mpsc_hdr *h = r->shared_;
    return ferry_wait_block(&h->readable, fy_mpsc_readable, r, &r->pol_, timeout_ms);
}

int ferry_mpsc_wait_writable(ferry_mpsc *r, size_t len, int timeout_ms)
{
    if (!r || !r->shared_)
        return FERRY_EINVAL;
    if (r->err_)
        return r->err_;
    if ((uint64_t)len > fy_mpsc_max_record(r->cap_))
        return FERRY_EMSGSIZE;
    if (!fy_mpsc_shape_intact(r))
        return fy_mpsc_fail(r);
    fy_mpsc_hdr *h = r->shared_;
    fy_mpsc_room w = {.r = r, .total = fy_mpsc_total(len)};
    return ferry_wait_block(&h->writable, fy_mpsc_writable, &w, &r->pol_, timeout_ms);
}
