/*
 * mpmc.c - bounded multi-producer/multi-consumer queue of fixed-size slots in shared memory.
 *
 * Dmitry Vyukov's bounded queue: every cell carries a 64-bit sequence word. Cell i starts with
 * seq = i. A producer that reads enq = pos and finds seq == pos owns the right to fill the cell
 * once its CAS moves enq to pos+1; it copies the payload and publishes with seq = pos+1. A
 * consumer that reads deq = pos and finds seq == pos+1 claims the cell by CAS on deq, copies the
 * payload out and frees the cell for the next lap with seq = pos+slots. Producers and consumers
 * only contend on their own index; a producer and a consumer meet only on a cell's seq word.
 *
 * The queue lives in a segment shared with processes we do not trust, so the private ferry_mpmc
 * keeps the shape (slots, slot size) seen at init and every call re-checks the shared shape
 * against it; cell indices are always masked, lengths are checked against the slot size, and
 * each retry loop is bounded so a scribbled index cannot make a caller spin forever.
 *
 * Known limitation (inherent to the algorithm, documented in ring.h and docs/ring.md): a producer
 * that dies between its claim and its publish leaves its cell at seq == pos forever. Consumers
 * then see the head cell "not yet published" and get FERRY_EAGAIN, and once producers have
 * lapped the ring it is full. ferry_mpmc_stalled() lets the user detect the situation.
 */
#include "ferry/ring.h"
#include "ring/multi_layout.h"
#include "ring/wait_internal.h"

#include <stdint.h>
#include <string.h>

/* Retries of the claim loop before giving up with FERRY_EAGAIN. Every retry means another
 * producer/consumer made progress (or the shared words are being scribbled), so legitimate
 * callers never get near this; it exists so a hostile peer cannot pin a CPU. */
#define FY_MPMC_MAX_TRIES 65536u

_Static_assert(sizeof(fy_mpmc_hdr) == 3 * FY_MULTI_LINE, "mpmc header is three lines");
_Static_assert(sizeof(fy_mpmc_cell) == 16, "mpmc cell header is two words");

static bool fy_mpmc_shape_ok(uint64_t slots, uint64_t slot_size)
{
    return slots >= 2 && slots <= FY_MPMC_MAX_SLOTS && (slots & (slots - 1)) == 0 &&
           slot_size >= 1 && slot_size <= FY_MPMC_MAX_SLOT_SIZE;
}

size_t ferry_mpmc_footprint(size_t slots, size_t slot_size)
{
    if (!fy_mpmc_shape_ok(slots, slot_size))
        return 0;
    /* slots <= 2^30 and stride <= 2^30 + 128: the product fits in 61 bits. */
    uint64_t bytes = (uint64_t)sizeof(fy_mpmc_hdr) + (uint64_t)slots * fy_mpmc_stride(slot_size);
    if (bytes > SIZE_MAX)
        return 0;
    return (size_t)bytes;
}

int ferry_mpmc_format(void *mem, size_t mem_size, size_t slots, size_t slot_size)
{
    if (!mem || ((uintptr_t)mem & (FY_MULTI_LINE - 1)) != 0)
        return FERRY_EINVAL;
    size_t need = ferry_mpmc_footprint(slots, slot_size);
    if (need == 0)
        return FERRY_EINVAL;
    if (mem_size < need)
        return FERRY_EMSGSIZE;
    fy_mpmc_hdr *h = mem;
    /* The creator formats before anyone else can see the memory, so plain initialisation is
     * enough; the magic is stored last with release so an attacher that checks it reads the rest
     * (pairs with the acquire load of magic in ferry_mpmc_init). */
    memset(mem, 0, need);
    atomic_store_explicit(&h->version, FY_MPMC_VERSION, memory_order_relaxed);
    atomic_store_explicit(&h->slots, slots, memory_order_relaxed);
    atomic_store_explicit(&h->slot_size, slot_size, memory_order_relaxed);
    atomic_store_explicit(&h->enq, 0, memory_order_relaxed);
    atomic_store_explicit(&h->deq, 0, memory_order_relaxed);
    uint8_t *cells = (uint8_t *)mem + sizeof(fy_mpmc_hdr);
    uint64_t stride = fy_mpmc_stride(slot_size);
    for (uint64_t i = 0; i < slots; i++) {
        fy_mpmc_cell *c = (fy_mpmc_cell *)(cells + i * stride);
        atomic_store_explicit(&c->seq, i, memory_order_relaxed);
        atomic_store_explicit(&c->len, 0, memory_order_relaxed);
    }
    atomic_store_explicit(&h->magic, FY_MPMC_MAGIC, memory_order_release);
    return 0;
}

int ferry_mpmc_init(ferry_mpmc *q, void *mem, size_t mem_size)
{
    if (!q)
        return FERRY_EINVAL;
    memset(q, 0, sizeof *q);
    if (!mem || ((uintptr_t)mem & (FY_MULTI_LINE - 1)) != 0)
        return FERRY_EINVAL;
    if (mem_size < sizeof(fy_mpmc_hdr))
        return FERRY_EPROTO;
    fy_mpmc_hdr *h = mem;
    /* Pairs with the release store of magic at the end of ferry_mpmc_format. */
    if (atomic_load_explicit(&h->magic, memory_order_acquire) != FY_MPMC_MAGIC ||
        atomic_load_explicit(&h->version, memory_order_relaxed) != FY_MPMC_VERSION)
        return FERRY_EPROTO;
    uint64_t slots = atomic_load_explicit(&h->slots, memory_order_relaxed);
    uint64_t slot_size = atomic_load_explicit(&h->slot_size, memory_order_relaxed);
    if (!fy_mpmc_shape_ok(slots, slot_size))
        return FERRY_EPROTO;
    size_t need = ferry_mpmc_footprint(slots, slot_size);
    if (need == 0 || need > mem_size)
        return FERRY_EPROTO;
    q->shared_ = mem;
    q->cells_ = (uint8_t *)mem + sizeof(fy_mpmc_hdr);
    q->slots_ = slots;
    q->mask_ = slots - 1;
    q->slot_size_ = slot_size;
    q->stride_ = fy_mpmc_stride(slot_size);
    q->err_ = 0;
    q->strong_ = !fy_wait_asym_register();
    ferry_wait_policy_init(&q->pol_);
    return 0;
}

void ferry_mpmc_set_wait(ferry_mpmc *q, const ferry_wait_policy *pol)
{
    if (!q)
        return;
    if (pol)
        q->pol_ = *pol;
    else
        ferry_wait_policy_init(&q->pol_);
}

static int fy_mpmc_fail(ferry_mpmc *q)
{
    q->err_ = FERRY_EPROTO;
    return FERRY_EPROTO;
}

/* The shape line is never written after format; a change means someone scribbled on it. The
 * private copy stays authoritative, so this is a tripwire rather than a safety requirement. */
static bool fy_mpmc_shape_intact(const ferry_mpmc *q)
{
    fy_mpmc_hdr *h = q->shared_;
    return atomic_load_explicit(&h->slots, memory_order_relaxed) == q->slots_ &&
           atomic_load_explicit(&h->slot_size, memory_order_relaxed) == q->slot_size_;
}

static fy_mpmc_cell *fy_mpmc_cell_at(const ferry_mpmc *q, uint64_t pos)
{
    return (fy_mpmc_cell *)(q->cells_ + (pos & q->mask_) * q->stride_);
}

/*
 * The claim both sides make (Vyukov's queue): from the position of our index (enq for a producer,
 * deq for a consumer), find the cell whose seq says it is ours to take (producer: seq == pos, free
 * for this lap; consumer: seq == pos+1, published) and move the index past it with a CAS. A
 * consumer whose buffer (cap) is smaller than a slot looks at the record's length first, so that
 * FERRY_EMSGSIZE leaves the record in the queue. Returns 0 with *cell and *pos_out set to the
 * claimed cell, FERRY_EAGAIN (full or empty, or FY_MPMC_MAX_TRIES retries), FERRY_EMSGSIZE or
 * FERRY_EPROTO.
 */
static inline int fy_mpmc_claim(ferry_mpmc *q, bool consumer, size_t cap, fy_mpmc_cell **cell,
                                uint64_t *pos_out)
{
    fy_mpmc_hdr *h = q->shared_;
    _Atomic uint64_t *index = consumer ? &h->deq : &h->enq;
    uint64_t ahead = consumer ? 1 : 0;
    uint64_t pos = atomic_load_explicit(index, memory_order_relaxed);
    for (unsigned tries = 0;; tries++) {
        if (tries >= FY_MPMC_MAX_TRIES)
            return FERRY_EAGAIN;
        fy_mpmc_cell *c = fy_mpmc_cell_at(q, pos);
        /* Producer: pairs with the consumer's release store seq = pos+slots in ferry_mpmc_pop:
         * once we see the cell free, the previous lap's consumer has finished copying out of it.
         * Consumer: pairs with the producer's release store seq = pos+1 in ferry_mpmc_push. */
        uint64_t seq = atomic_load_explicit(&c->seq, memory_order_acquire);
        int64_t diff = (int64_t)(seq - (pos + ahead));
        if (diff == 0) {
            if (consumer && cap < q->slot_size_) {
                /* The caller's buffer may be too small: look at the length before claiming so
                 * that FERRY_EMSGSIZE leaves the record in the queue. The length is only ours
                 * to trust if seq has not moved while we read it (seqlock-style re-check). */
                uint64_t len = atomic_load_explicit(&c->len, memory_order_relaxed);
                if (len > cap) {
                    /* Pairs with the release fence in ferry_mpmc_push before its len store. */
                    atomic_thread_fence(memory_order_acquire);
                    if (atomic_load_explicit(&c->seq, memory_order_relaxed) == seq) {
                        if (len > q->slot_size_)
                            return fy_mpmc_fail(q);
                        return FERRY_EMSGSIZE;
                    }
                    pos = atomic_load_explicit(index, memory_order_relaxed);
                    continue;
                }
            }
            /* Relaxed is enough: the claim only has to be unique; the payload is ordered by the
             * seq words (the producer's release publish after it fills the cell, the consumer's
             * acquire load above before it copies out). */
            if (atomic_compare_exchange_weak_explicit(index, &pos, pos + 1, memory_order_relaxed,
                                                      memory_order_relaxed)) {
                *cell = c;
                *pos_out = pos;
                return 0;
            }
        } else if (diff < 0) {
            /* Producer: the cell still holds the record of the previous lap: the queue is full.
             * Consumer: empty, or the producer that claimed pos has not published yet (or died:
             * see the file comment). Either way there is nothing to take now. */
            return FERRY_EAGAIN;
        } else {
            /* Another producer claimed pos (another consumer took it). It moved the index before
             * publishing (freeing) the cell, and our acquire load above saw that (or a later
             * publish), so the index must now read past pos; if it does not, the shared words are
             * corrupt. */
            uint64_t now = atomic_load_explicit(index, memory_order_relaxed);
            if (now == pos)
                return fy_mpmc_fail(q);
            pos = now;
        }
    }
}

int ferry_mpmc_push(ferry_mpmc *q, const void *buf, size_t len)
{
    if (!q || !q->shared_ || (!buf && len))
        return FERRY_EINVAL;
    if (q->err_)
        return q->err_;
    if (len > q->slot_size_)
        return FERRY_EMSGSIZE;
    if (!fy_mpmc_shape_intact(q))
        return fy_mpmc_fail(q);
    fy_mpmc_hdr *h = q->shared_;
    fy_mpmc_cell *c;
    uint64_t pos;
    int claim = fy_mpmc_claim(q, false, 0, &c, &pos);
    if (claim < 0)
        return claim;
    /* Pairs with the acquire fence in ferry_mpmc_pop's size pre-check: a consumer that reads the
     * len we are about to store is guaranteed to see that the cell's seq has moved on. */
    atomic_thread_fence(memory_order_release);
    atomic_store_explicit(&c->len, (uint64_t)len, memory_order_relaxed);
    if (len)
        memcpy((uint8_t *)c + FY_MPMC_CELL_HDR, buf, len);
    /* Publish. Release: pairs with the consumer's acquire load of seq in ferry_mpmc_pop (which
     * then sees the len and payload written above). The sleepers check after it is the waker's
     * half of the Dekker pair with ferry_wait_arm in a consumer going to sleep (see
     * fy_multi_publish): either we see its sleepers count or it sees this publish. */
    if (fy_multi_publish(&c->seq, pos + 1, &h->readable, q->strong_))
        ferry_wait_wake_slow_(&h->readable, &q->pol_);
    return 0;
}

ssize_t ferry_mpmc_pop(ferry_mpmc *q, void *buf, size_t cap)
{
    if (!q || !q->shared_ || (!buf && cap))
        return FERRY_EINVAL;
    if (q->err_)
        return q->err_;
    if (!fy_mpmc_shape_intact(q))
        return fy_mpmc_fail(q);
    fy_mpmc_hdr *h = q->shared_;
    fy_mpmc_cell *c;
    uint64_t pos;
    int claim = fy_mpmc_claim(q, true, cap, &c, &pos);
    if (claim < 0)
        return claim;
    /* The cell is ours until we store seq below; len was written before the producer's publish
     * that our acquire load observed. It is still untrusted. */
    uint64_t len = atomic_load_explicit(&c->len, memory_order_relaxed);
    ssize_t rc;
    if (len > q->slot_size_ || len > cap) {
        /* len > cap is impossible here unless the word changed under us after the pre-check. */
        rc = fy_mpmc_fail(q);
    } else {
        if (len)
            memcpy(buf, (const uint8_t *)c + FY_MPMC_CELL_HDR, len);
        rc = (ssize_t)len;
    }
    /* Free the cell for the producer of the next lap, even on failure, so that other endpoints
     * on a corrupt queue are not left waiting on this cell. Release: pairs with the acquire load
     * of seq in ferry_mpmc_push (our reads above are complete before the producer overwrites the
     * cell). The sleepers check: the Dekker pair with ferry_wait_arm in a producer waiting for
     * room, as in push. */
    if (fy_multi_publish(&c->seq, pos + q->slots_, &h->writable, q->strong_))
        ferry_wait_wake_slow_(&h->writable, &q->pol_);
    return rc;
}

/* Wait conditions: cheap looks at the cell an index points to. They only decide whether to keep
 * sleeping; push/pop re-validate everything, so a scribbled word costs a spurious wake-up at
 * most. The acquire loads of seq pair with the release stores in push/pop. */
static bool fy_mpmc_readable(void *arg)
{
    const ferry_mpmc *q = arg;
    fy_mpmc_hdr *h = q->shared_;
    uint64_t pos = atomic_load_explicit(&h->deq, memory_order_relaxed);
    uint64_t seq = atomic_load_explicit(&fy_mpmc_cell_at(q, pos)->seq, memory_order_acquire);
    /* The same test as ferry_mpmc_pop: seq == pos+1 is published, beyond it deq is stale; below
     * it the cell is empty, claimed but not published, or still being copied out by a consumer
     * of the previous lap. */
    return (int64_t)(seq - (pos + 1)) >= 0;
}

static bool fy_mpmc_writable(void *arg)
{
    const ferry_mpmc *q = arg;
    fy_mpmc_hdr *h = q->shared_;
    uint64_t pos = atomic_load_explicit(&h->enq, memory_order_relaxed);
    uint64_t seq = atomic_load_explicit(&fy_mpmc_cell_at(q, pos)->seq, memory_order_acquire);
    /* seq < pos: the cell still holds the previous lap (full). */
    return (int64_t)(seq - pos) >= 0;
}

/* The checks the waits and ferry_mpmc_stalled start with: an attached queue that has not failed
 * and whose shape is intact. Returns 0, FERRY_EINVAL or the endpoint's error (FERRY_EPROTO). */
static int fy_mpmc_check(ferry_mpmc *q)
{
    if (!q || !q->shared_)
        return FERRY_EINVAL;
    if (q->err_)
        return q->err_;
    if (!fy_mpmc_shape_intact(q))
        return fy_mpmc_fail(q);
    return 0;
}

/* Both blocking waits: a consumer sleeps on readable until a cell is published, a producer on
 * writable until one is free. */
static int fy_mpmc_wait(ferry_mpmc *q, bool readable, int timeout_ms)
{
    int rc = fy_mpmc_check(q);
    if (rc != 0)
        return rc;
    fy_mpmc_hdr *h = q->shared_;
    if (readable)
        return ferry_wait_block(&h->readable, fy_mpmc_readable, q, &q->pol_, timeout_ms);
    return ferry_wait_block(&h->writable, fy_mpmc_writable, q, &q->pol_, timeout_ms);
}

int ferry_mpmc_wait_readable(ferry_mpmc *q, int timeout_ms)
{
    return fy_mpmc_wait(q, true, timeout_ms);
}

int ferry_mpmc_wait_writable(ferry_mpmc *q, int timeout_ms)
{
    return fy_mpmc_wait(q, false, timeout_ms);
}

int ferry_mpmc_stalled(ferry_mpmc *q, uint64_t *pos)
{
    int rc = fy_mpmc_check(q);
    if (rc != 0)
        return rc;
    fy_mpmc_hdr *h = q->shared_;
    /* A snapshot for diagnosis only: relaxed loads, no claim. The head position is stalled when a
     * producer has moved enq past it but its cell still shows seq == deq (claimed, unpublished). */
    uint64_t deq = atomic_load_explicit(&h->deq, memory_order_relaxed);
    /* enq before seq (acquire keeps that order) so a claim we count is older than the seq we
     * look at. A producer between claim and publish looks stalled for a moment: that is why the
     * caller must see the same position stalled twice, some time apart (see ring.h). */
    uint64_t enq = atomic_load_explicit(&h->enq, memory_order_acquire);
    uint64_t seq = atomic_load_explicit(&fy_mpmc_cell_at(q, deq)->seq, memory_order_relaxed);
    if (pos)
        *pos = deq;
    return seq == deq && (int64_t)(enq - deq) > 0 ? 1 : 0;
}
