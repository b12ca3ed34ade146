/*
 * ring.h - ferry's shared-memory primitives, usable on their own without sockets.
 *
 *  - ferry_segment: a sealed memfd (or named POSIX shm object) mapped into this process.
 *  - ferry_spsc: a lock-free single-producer/single-consumer byte ring of variable-length records
 *    with reserve/commit (write in place) and peek/release (read in place).
 *  - ferry_mpmc: a bounded multi-producer/multi-consumer queue of fixed-size slots, and
 *    ferry_mpsc: a multi-producer/single-consumer byte ring.
 *  - ferry_wait: spin -> yield -> futex waiting on a word in shared memory.
 *
 * Every ring keeps its shared words (indices, flags, futex words) in the segment and its
 * authoritative bookkeeping in caller-owned private structs. Anything read from shared memory is
 * treated as hostile: a value that breaks an invariant makes the call return FERRY_EPROTO and never
 * causes an out-of-bounds access. After FERRY_EPROTO an endpoint stays failed (every later call
 * returns FERRY_EPROTO).
 *
 * Thread safety: an endpoint (SPSC tx or rx, MPMC or MPSC endpoint) belongs to one thread at a
 * time. Any number of MPMC/MPSC producer endpoints (and MPMC consumer endpoints) may work on the
 * same ring concurrently from any thread or process.
 *
 * This header is the contract written before the implementation; see docs/ring.md for the layout.
 */
#ifndef FERRY_RING_H
#define FERRY_RING_H

#include "ferry/ferry.h"

#include <stdatomic.h>
#include <stdbool.h>

#ifdef __cplusplus
extern "C" {
#endif

/* ------------------------------------------------------------------------------------------- */
/* Segments                                                                                    */
/* ------------------------------------------------------------------------------------------- */

typedef struct ferry_segment ferry_segment;

#define FERRY_SEG_HUGEPAGES 0x1u /* try MAP_HUGETLB, fall back to madvise(MADV_HUGEPAGE) */
#define FERRY_SEG_READONLY  0x2u /* attach: map PROT_READ only */
#define FERRY_SEG_NUMA      0x4u /* bind the pages to opts->numa_node (needs libnuma at build) */
#define FERRY_SEG_TRUSTED                                                                          \
    0x8u /* attach: accept an fd without seals (only from a peer you trust, e.g. your own fork) */

typedef struct ferry_segment_opts {
    size_t size;      /* bytes; rounded up to the page (or huge page) size */
    unsigned flags;   /* FERRY_SEG_HUGEPAGES | FERRY_SEG_NUMA */
    int numa_node;    /* with FERRY_SEG_NUMA */
    const char *name; /* NULL: anonymous sealed memfd; else a POSIX shm name created O_EXCL */
    unsigned mode;    /* named segments: permission bits, 0 means 0600 */
} ferry_segment_opts;

/*
 * Creates and maps a segment. Anonymous segments are memfd_create(MFD_CLOEXEC|MFD_ALLOW_SEALING),
 * fully allocated with posix_fallocate (FERRY_ENOSPC now instead of SIGBUS later), then sealed with
 * F_SEAL_SHRINK|F_SEAL_GROW|F_SEAL_SEAL. Named segments are unlinked by ferry_segment_close() of
 * the creator. On success *out is owned by the caller (ferry_segment_close).
 * Errors: FERRY_EINVAL (bad size, flags, mode or name), FERRY_ENOMEM (larger than RAM + swap, or
 * mapping failed), FERRY_ENOSPC (the memory file system cannot hold it), FERRY_EEXIST (named
 * segment exists), FERRY_ENOTSUP (FERRY_SEG_NUMA without libnuma), FERRY_EMFILE, or -errno.
 */
FERRY_API int ferry_segment_open(ferry_segment **out, const ferry_segment_opts *opts);
/*
 * Maps a segment received as an fd (e.g. over SCM_RIGHTS). flags: FERRY_SEG_READONLY,
 * FERRY_SEG_TRUSTED. Unless FERRY_SEG_TRUSTED is given, the fd must carry F_SEAL_SHRINK,
 * F_SEAL_GROW and F_SEAL_SEAL; an fd that is not a memfd or lacks a seal is refused with
 * FERRY_EPROTO (the peer broke the protocol), as is a size that is zero or not page-aligned.
 * On success the segment owns fd; on failure the caller still owns it.
 */
FERRY_API int ferry_segment_attach(ferry_segment **out, int fd, unsigned flags);
/*
 * Opens and maps an existing named segment (flags: FERRY_SEG_READONLY). POSIX shm objects cannot
 * be sealed, so only attach to names created by processes you trust.
 */
FERRY_API int ferry_segment_attach_named(ferry_segment **out, const char *name, unsigned flags);
FERRY_API void *ferry_segment_base(const ferry_segment *seg);
FERRY_API size_t ferry_segment_size(const ferry_segment *seg);
/* The segment's fd (still owned by the segment): pass it to a peer with SCM_RIGHTS. */
FERRY_API int ferry_segment_fd(const ferry_segment *seg);
/* Unmaps, closes the fd and (creator of a named segment) unlinks it. Accepts NULL. */
FERRY_API void ferry_segment_close(ferry_segment *seg);

/* ------------------------------------------------------------------------------------------- */
/* Waiting                                                                                     */
/* ------------------------------------------------------------------------------------------- */

/*
 * A wait word lives in shared memory. The sleeper bumps `sleepers`, issues a full fence and
 * membarrier(MEMBARRIER_CMD_GLOBAL_EXPEDITED), re-checks its condition, then futex-waits on `seq`;
 * the waker makes its change, orders it before reading `sleepers` (a full fence in
 * ferry_wait_wake; only a compiler barrier in the SPSC fast paths, whose processes registered for
 * the sleeper's membarrier), and only when `sleepers` is non-zero bumps `seq` and calls
 * FUTEX_WAKE, so an uncontended wake costs no system call. `sleepers` holds the sleeper count in
 * its low bits and two flags (src/ring/wait.c): WOKEN, set by the first waker so later wakers of
 * the same sleep make no system call, cleared by every new sleep; FUTEX, set when some sleeper
 * waits in the futex rather than on an eventfd. The value is read as untrusted. See docs/ring.md.
 */
typedef struct ferry_waitword {
    _Atomic uint32_t seq;
    _Atomic uint32_t sleepers;
} ferry_waitword;

typedef struct ferry_wait_policy {
    uint32_t spin_ns;  /* busy-poll window before yielding; default 20000 */
    uint32_t yield_ns; /* sched_yield window before sleeping; default 20000 */
    int eventfd;       /* >= 0: the WAKER also writes 1 to this eventfd when it wakes sleepers */
} ferry_wait_policy;

/* Fills a policy with the defaults above and eventfd = -1. */
FERRY_API void ferry_wait_policy_init(ferry_wait_policy *pol);

/* Returns true when the awaited condition holds. Must be cheap and side-effect free. */
typedef bool (*ferry_wait_ready_fn)(void *arg);

/*
 * Waits until ready(arg) is true: spin (pol->spin_ns), then sched_yield (pol->yield_ns), then
 * futex sleep on w->seq. pol NULL means the defaults. timeout_ms < 0 waits forever, 0 checks
 * once. Returns 0 when ready, FERRY_ETIMEDOUT, FERRY_EINTR (a signal handler without SA_RESTART
 * interrupted the sleep) or FERRY_EINVAL. The waker must make the condition true before calling
 * ferry_wait_wake (which fences), or with a seq_cst store followed by a seq_cst load of sleepers.
 */
FERRY_API int ferry_wait_block(ferry_waitword *w, ferry_wait_ready_fn ready, void *arg,
                               const ferry_wait_policy *pol, int timeout_ms);
/*
 * Wakes every sleeper on w (and signals pol->eventfd if set); no system call when nobody sleeps.
 * pol may be NULL.
 */
FERRY_API void ferry_wait_wake(ferry_waitword *w, const ferry_wait_policy *pol);
/*
 * For users who sleep elsewhere (epoll on an eventfd the waker signals): arm announces a sleeper
 * and fences (including the membarrier above); re-check the condition after it, sleep only if
 * still false, then disarm.
 */
FERRY_API void ferry_wait_arm(ferry_waitword *w);
FERRY_API void ferry_wait_disarm(ferry_waitword *w);
/* Internal: the system-call half of a wake (bump seq, FUTEX_WAKE, eventfd). */
FERRY_API void ferry_wait_wake_slow_(ferry_waitword *w, const ferry_wait_policy *pol);

/* ------------------------------------------------------------------------------------------- */
/* SPSC byte ring                                                                              */
/* ------------------------------------------------------------------------------------------- */

/*
 * Records are an 8-byte header (u32 length, u32 type) plus the payload padded to 8 bytes; a
 * record never wraps (a padding record fills the end of the ring instead). The producer stores
 * a record's header last (release) after zeroing the header slot that follows it, so a header
 * slot holds either zero or a complete record: a consumer waiting for the next record of a
 * ping-pong peer watches that slot instead of the producer's index (docs/ring.md, "Eager
 * reads"). The producer therefore keeps 8 bytes of the ring free at all times.
 */

/* Largest record a ring of data capacity `cap` can carry (records never wrap; padding + the
 * largest record + the zeroed slot after it always fit an empty ring). */
#define FERRY_SPSC_MAX_RECORD(cap) ((cap) / 2 - 8)
/* Smallest and largest data capacity (powers of two). */
#define FERRY_SPSC_MIN_CAPACITY ((size_t)4096)
#define FERRY_SPSC_MAX_CAPACITY ((size_t)1 << 32)

/* Flags for commit/release. */
/* Do not publish the index (or wake a sleeping peer) yet; a later call without it, or flush, does.
 * A committed record is complete all the same: a consumer reading eagerly (docs/ring.md) may
 * take it before the index is published. */
#define FERRY_RING_DEFER 0x1u

/* Internal: record types and the ring-bytes a record of len payload bytes occupies. */
#define FERRY_SPSC_REC_DATA_    1u
#define FERRY_SPSC_REC_PAD_     2u
#define FERRY_SPSC_REC_SIZE_(n) (((uint64_t)(n) + 15u) & ~(uint64_t)7u)
/* Internal: a consumer reading headers eagerly loads the producer's index every this many records
 * to see whether the producer batches its publishes (then it goes back to reading the index). */
#define FERRY_SPSC_EAGER_CHECK_ 64u
/* Internal: after this many index loads in a row that each found exactly one new record, the
 * consumer starts reading headers eagerly. */
#define FERRY_SPSC_EAGER_AFTER_ 4u

/* Bytes of shared memory needed for a ring with `capacity` data bytes (a power of two >= 4096);
 * 0 if capacity is invalid. */
FERRY_API size_t ferry_spsc_footprint(size_t capacity);
/* Formats a ring in mem (the creator does this once, before any endpoint attaches). mem must be
 * 128-byte aligned and at least ferry_spsc_footprint(capacity) bytes. Returns 0 or FERRY_EINVAL. */
FERRY_API int ferry_spsc_format(void *mem, size_t mem_size, size_t capacity);

/*
 * Private endpoint state (caller-owned storage, ferry_spsc_tx_init/rx_init fill it). The fields are
 * visible only so the structs can live on the stack or inside other structs and so the fast paths
 * below can be inlined; do not touch them. Nothing here is shared: the authoritative indices are
 * private, the pointers lead to the few shared words.
 */
typedef struct ferry_spsc_tx {
    uint8_t *data_;
    uint64_t mask_;
    uint64_t cap_;
    uint64_t len_lim_;    /* FERRY_SPSC_MAX_RECORD(cap) + 1; 0 once failed */
    uint64_t tail_;       /* authoritative write index */
    uint64_t lim_;        /* tail may reach this without a refresh or a wrap (>= tail_) */
    uint64_t head_cache_; /* last consumer index seen (validated) */
    uint64_t rsv_;        /* 1 + payload bytes of the open reservation, 0 if none (or failed) */
    uint64_t published_;  /* last tail made visible to the consumer */
    _Atomic uint64_t *tail_word_;
    _Atomic uint64_t *head_word_;
    ferry_waitword *readable_; /* the consumer sleeps here; we wake it */
    ferry_waitword *writable_; /* we sleep here when full */
    void *shared_;
    int err_;
    int strong_; /* 1: publish with a full fence (this process has no membarrier registration) */
    ferry_wait_policy pol_;
} ferry_spsc_tx;

typedef struct ferry_spsc_rx {
    uint8_t *data_;
    uint64_t mask_;
    uint64_t cap_;
    uint64_t head_;       /* authoritative read index */
    uint64_t lim_;        /* min(tail_cache_, end of head_'s lap); head_ once failed */
    uint64_t tail_cache_; /* end of what we know is written: tail_seen_ or a header read eagerly */
    uint64_t peeked_;     /* ring bytes of the record handed out by peek, 0 if none */
    uint64_t published_;  /* last head made visible to the producer */
    uint64_t tail_seen_;  /* last producer index loaded (validated; never moves backwards) */
    uint32_t eager_;      /* > 0: read the next header instead of the index; counts down to a
                             look at the index (FERRY_SPSC_EAGER_CHECK_) */
    uint32_t streak_;     /* index loads in a row that found exactly one record */
    _Atomic uint64_t *tail_word_;
    _Atomic uint64_t *head_word_;
    ferry_waitword *readable_; /* we sleep here when empty */
    ferry_waitword *writable_; /* the producer sleeps here; we wake it */
    void *shared_;
    int err_;
    int strong_; /* 1: publish with a full fence (this process has no membarrier registration) */
    ferry_wait_policy pol_;
} ferry_spsc_rx;

/* Attach an endpoint to a formatted ring; validates the shared header (untrusted). Returns 0,
 * FERRY_EINVAL (NULL/misaligned/too small) or FERRY_EPROTO (header is not a valid ring). */
FERRY_API int ferry_spsc_tx_init(ferry_spsc_tx *tx, void *mem, size_t mem_size);
FERRY_API int ferry_spsc_rx_init(ferry_spsc_rx *rx, void *mem, size_t mem_size);

/*
 * Spans: many records per call pair, for batch producers and consumers. A span is a window of
 * ring bytes the endpoint hands out (reserve_span: free room; peek_span: published records) that
 * the caller walks with inline steps (span_put / span_next) kept in its own registers, then ends
 * with one index update (commit_span / release_span). The records are the ordinary ones: a span
 * writer and a per-record reader (or the reverse) interoperate, and the consumer checks every
 * record header of a span as peek does. A span is a plain value: copying it before a step and
 * restoring the copy undoes the step. While a span is open the endpoint refuses reserve/peek
 * (FERRY_EBUSY); ferry_spsc_cancel / ferry_spsc_unpeek abandon it.
 */
typedef struct ferry_spsc_span {
    uint8_t *pos_;   /* next record */
    uint8_t *end_;   /* end of the window */
    uint8_t *base_;  /* start of the window */
    uint64_t first_; /* producer: the first record's header, stored by commit_span (last) */
} ferry_spsc_span;

/*
 * Producer: opens a span of free room holding at least one record of len bytes (the room up to
 * the consumer's last published position or the end of the ring's lap, whichever is nearer; a
 * stale cached position is refreshed first). Returns 0, FERRY_EAGAIN (not even one such record
 * fits now), FERRY_EMSGSIZE, FERRY_EBUSY (a reservation or span is open), FERRY_EINVAL or
 * FERRY_EPROTO. Fill it with ferry_spsc_span_put, end it with ferry_spsc_commit_span.
 */
FERRY_API int ferry_spsc_reserve_span(ferry_spsc_tx *tx, size_t len, ferry_spsc_span *s);
/*
 * Consumer: opens a span over the published records from the next one to the producer's last
 * published position or the end of the lap (at least one record; its header already checked).
 * Returns 0, FERRY_EAGAIN (empty), FERRY_EBUSY (a record or span is open), FERRY_EINVAL or
 * FERRY_EPROTO. Walk it with ferry_spsc_span_next, end it with ferry_spsc_release_span.
 */
FERRY_API int ferry_spsc_peek_span(ferry_spsc_rx *rx, ferry_spsc_span *s);

/* Internal slow paths the inline fast paths fall back to. */
FERRY_API int ferry_spsc_reserve_slow_(ferry_spsc_tx *tx, size_t len, void **out);
FERRY_API int ferry_spsc_peek_slow_(ferry_spsc_rx *rx, const void **data, size_t *len);
FERRY_API int ferry_spsc_peek_eager_(ferry_spsc_rx *rx, uint64_t hdr, const void **data,
                                     size_t *len);

/* Internal: the header slot at ring offset off, for the release store that publishes a record
 * and the consumer's acquire load of it. Offsets are 8-aligned and the data area starts 128-byte
 * aligned, so the slot is a naturally aligned 64-bit word. */
static inline _Atomic uint64_t *ferry_spsc_slot_(uint8_t *data, uint64_t off)
{
    return (_Atomic uint64_t *)(void *)(data + off);
}

/* Internal: makes the record starting at index at (tail_ already past it) visible with header
 * hdr. The slot after it is free (the producer keeps 8 bytes spare) and is zeroed first, so an
 * eager consumer that reaches it sees "nothing yet", never a stale header of an earlier lap; then
 * the header, release: pairs with the acquire load of the slot in ferry_spsc_peek's eager read
 * (payload and the zeroed next slot are visible before the header is). Used by commit,
 * commit_span and the padding record of ferry_spsc_reserve_slow_. */
static inline void ferry_spsc_put_hdr_(ferry_spsc_tx *tx, uint64_t at, uint64_t hdr)
{
    atomic_store_explicit(ferry_spsc_slot_(tx->data_, tx->tail_ & tx->mask_), 0,
                          memory_order_relaxed);
    atomic_store_explicit(ferry_spsc_slot_(tx->data_, at & tx->mask_), hdr, memory_order_release);
}

/* Internal: the ring bytes of the data record with header hdr at offset off of the consumer's
 * position when an eager consumer may take it: it fits the rest of the lap and lies within a
 * ring of what was released. 0 otherwise (padding, a broken header: the caller decides). */
static inline uint64_t ferry_spsc_eager_size_(const ferry_spsc_rx *rx, uint64_t hdr, uint64_t off)
{
    uint64_t sz = FERRY_SPSC_REC_SIZE_((uint32_t)hdr);
    bool ok = ((hdr >> 32) == FERRY_SPSC_REC_DATA_) & (sz <= rx->cap_ - off) &
              (rx->head_ - rx->published_ + sz <= rx->cap_);
    return ok ? sz : 0;
}

/* Internal: the publish half of ferry_spsc_flush and ferry_spsc_rx_flush. If idx (the
 * endpoint's own index: the producer's tail, the consumer's head) moved since *published, stores
 * it in word (tail_word_, head_word_) and wakes the peer if it sleeps on w (the producer wakes the
 * consumer on readable_, the consumer the producer on writable_; pol is the endpoint's policy).
 * strong (the endpoint's strong_: 1 without membarrier registration) and w point at the
 * endpoint's fields so they are read only when idx moved and only where used (passed by value,
 * the compiler loads them ahead of the check).
 * always_inline: under link-time optimisation the exported flush/rx_flush otherwise pull the
 * wake's system-call half inline, and their common path grows by a frame (callgrind). */
__attribute__((always_inline)) static inline void
ferry_spsc_publish_(_Atomic uint64_t *word, uint64_t *published, uint64_t idx, const int *strong,
                    ferry_waitword *const *w, const ferry_wait_policy *pol)
{
    if (idx != *published) {
        *published = idx;
        bool sleeping;
        if (__builtin_expect(*strong == 0, 1)) {
            /* release: a tail store pairs with the acquire load of tail in ferry_spsc_peek_slow_
             * (records are complete before the index says so); a head store pairs with the
             * acquire load of head in ferry_spsc_reserve_slow_ (the consumer finished reading
             * before the producer reuses the bytes). The compiler barrier keeps the sleepers load
             * after it; the CPU-level fence is supplied by the sleeper's membarrier in
             * ferry_wait_arm (asymmetric Dekker, see docs/ring.md). */
            atomic_store_explicit(word, idx, memory_order_release);
            atomic_signal_fence(memory_order_seq_cst);
            sleeping = atomic_load_explicit(&(*w)->sleepers, memory_order_relaxed) != 0;
        } else {
            /* No membarrier registration: seq_cst store + load pair with ferry_wait_arm's
             * seq_cst increment and fence (Dekker); release half as above. */
            atomic_store_explicit(word, idx, memory_order_seq_cst);
            sleeping = atomic_load_explicit(&(*w)->sleepers, memory_order_seq_cst) != 0;
        }
        if (__builtin_expect(sleeping, 0))
            ferry_wait_wake_slow_(*w, pol);
    }
}

/*
 * The fast paths (reserve, commit, flush, write, peek, release, rx_flush, read) are static inline
 * so a record costs a few nanoseconds. The library also exports each of them as an ordinary
 * symbol of the same name for FFI users (dlsym, ctypes). C callers get the inline copies unless
 * they define FERRY_SPSC_NO_INLINE before including this header: then the names refer to the
 * exported functions (the inline copies are compiled under private names and unused).
 */
#if defined(FERRY_SPSC_EXPORT_)
#define FERRY_SPSC_FAST_ FERRY_API
FERRY_API int ferry_spsc_reserve(ferry_spsc_tx *tx, size_t len, void **out);
FERRY_API int ferry_spsc_commit(ferry_spsc_tx *tx, size_t len, unsigned flags);
FERRY_API int ferry_spsc_flush(ferry_spsc_tx *tx);
FERRY_API int ferry_spsc_write(ferry_spsc_tx *tx, const void *buf, size_t len, unsigned flags);
FERRY_API int ferry_spsc_peek(ferry_spsc_rx *rx, const void **data, size_t *len);
FERRY_API int ferry_spsc_release(ferry_spsc_rx *rx, unsigned flags);
FERRY_API int ferry_spsc_rx_flush(ferry_spsc_rx *rx);
FERRY_API ssize_t ferry_spsc_read(ferry_spsc_rx *rx, void *buf, size_t cap, unsigned flags);
FERRY_API void *ferry_spsc_span_put(ferry_spsc_span *s, size_t len);
FERRY_API int ferry_spsc_commit_span(ferry_spsc_tx *tx, const ferry_spsc_span *s, unsigned flags);
FERRY_API int ferry_spsc_span_next(ferry_spsc_span *s, const void **data, size_t *len);
FERRY_API int ferry_spsc_release_span(ferry_spsc_rx *rx, const ferry_spsc_span *s, unsigned flags);
#else
#define FERRY_SPSC_FAST_ static inline
#if defined(FERRY_SPSC_NO_INLINE)
#define ferry_spsc_reserve      ferry_spsc_reserve_inl_
#define ferry_spsc_commit       ferry_spsc_commit_inl_
#define ferry_spsc_flush        ferry_spsc_flush_inl_
#define ferry_spsc_write        ferry_spsc_write_inl_
#define ferry_spsc_peek         ferry_spsc_peek_inl_
#define ferry_spsc_release      ferry_spsc_release_inl_
#define ferry_spsc_rx_flush     ferry_spsc_rx_flush_inl_
#define ferry_spsc_read         ferry_spsc_read_inl_
#define ferry_spsc_span_put     ferry_spsc_span_put_inl_
#define ferry_spsc_commit_span  ferry_spsc_commit_span_inl_
#define ferry_spsc_span_next    ferry_spsc_span_next_inl_
#define ferry_spsc_release_span ferry_spsc_release_span_inl_
#endif
#endif

/*
 * Reserves room for a record of len bytes and returns where to write it in *out. Returns 0,
 * FERRY_EAGAIN (full), FERRY_EMSGSIZE (len > FERRY_SPSC_MAX_RECORD), FERRY_EBUSY (a reservation is
 * already open) or FERRY_EPROTO. Nothing is visible to the consumer until commit.
 */
FERRY_SPSC_FAST_ int ferry_spsc_reserve(ferry_spsc_tx *tx, size_t len, void **out)
{
    /* One window check covers "room" and "no wrap"; len < len_lim_ keeps sz from overflowing and
     * is false for a failed endpoint. */
    uint64_t sz = FERRY_SPSC_REC_SIZE_(len);
    if (__builtin_expect((tx->rsv_ == 0) & (len < tx->len_lim_) & (tx->lim_ - tx->tail_ >= sz),
                         1)) {
        tx->rsv_ = (uint64_t)len + 1;
        *out = tx->data_ + (tx->tail_ & tx->mask_) + 8;
        return 0;
    }
    return ferry_spsc_reserve_slow_(tx, len, out);
}

/* Publishes deferred commits and wakes a sleeping consumer. Returns 0 or FERRY_EPROTO. */
FERRY_SPSC_FAST_ int ferry_spsc_flush(ferry_spsc_tx *tx)
{
    if (__builtin_expect(tx->err_ != 0, 0))
        return tx->err_;
    ferry_spsc_publish_(tx->tail_word_, &tx->published_, tx->tail_, &tx->strong_, &tx->readable_,
                        &tx->pol_);
    return 0;
}

/* Commits the open reservation with its final length (<= reserved). flags: FERRY_RING_DEFER.
 * Returns 0, FERRY_EINVAL (no reservation, or len larger than reserved) or FERRY_EPROTO. */
FERRY_SPSC_FAST_ int ferry_spsc_commit(ferry_spsc_tx *tx, size_t len, unsigned flags)
{
    /* A failed endpoint never has a reservation open, so rsv_ alone decides. */
    if (__builtin_expect(len < tx->rsv_, 1)) {
        uint64_t hdr = (uint64_t)len | ((uint64_t)FERRY_SPSC_REC_DATA_ << 32);
        uint64_t at = tx->tail_;
        tx->tail_ += FERRY_SPSC_REC_SIZE_(len);
        ferry_spsc_put_hdr_(tx, at, hdr);
        tx->rsv_ = 0;
        return (flags & FERRY_RING_DEFER) ? 0 : ferry_spsc_flush(tx);
    }
    return tx->err_ ? tx->err_ : FERRY_EINVAL;
}

/* Copy-in convenience: reserve + memcpy + commit(flags). */
FERRY_SPSC_FAST_ int ferry_spsc_write(ferry_spsc_tx *tx, const void *buf, size_t len,
                                      unsigned flags)
{
    void *p;
    int rc = ferry_spsc_reserve(tx, len, &p);
    if (rc < 0)
        return rc;
    if (len)
        __builtin_memcpy(p, buf, len);
    return ferry_spsc_commit(tx, len, flags);
}

/* Abandons the open reservation: nothing becomes visible and the next reserve starts where this
 * one did (a padding record the reserve placed at the wrap stays; consumers skip it). Returns 0 or
 * FERRY_EINVAL (no reservation open). */
FERRY_API int ferry_spsc_cancel(ferry_spsc_tx *tx);

/* Blocks (ferry_wait policy) until len bytes fit; flushes deferred commits first. Returns 0,
 * FERRY_ETIMEDOUT, FERRY_EINTR, FERRY_EMSGSIZE or FERRY_EPROTO. */
FERRY_API int ferry_spsc_wait_writable(ferry_spsc_tx *tx, size_t len, int timeout_ms);

/*
 * Returns the next record in place: *data points into the ring and stays valid until release.
 * Returns 0, FERRY_EAGAIN (empty), FERRY_EBUSY (a peeked record is not released yet) or
 * FERRY_EPROTO. The bytes at *data are shared memory: a hostile producer can still change them.
 */
FERRY_SPSC_FAST_ int ferry_spsc_peek(ferry_spsc_rx *rx, const void **data, size_t *len)
{
    /* room: published bytes before the end of the ring, so one check bounds the record on both
     * sides. A failed endpoint has lim_ == head_ (room 0) and err_ set: the slow path reports
     * it. */
    uint64_t room = rx->lim_ - rx->head_;
    if (__builtin_expect(room < 8, 0)) {
        /* Nothing cached. A new lap, padding, a peeked record or an error go to the slow path;
         * the common "did the producer publish?" is answered here, so polling an empty ring is
         * one load and a new record is returned without a call. */
        if (((rx->peeked_ | (uint64_t)rx->err_) != 0) | (rx->tail_cache_ != rx->head_))
            return ferry_spsc_peek_slow_(rx, data, len);
        if (rx->eager_ != 0) {
            /* A ping-pong peer: its next record shows in the header slot (zero until then)
             * before its index does, and that slot's line carries the payload too. acquire:
             * pairs with the release store of the header in ferry_spsc_commit (and
             * commit_span, and the padding in ferry_spsc_reserve_slow_). */
            uint64_t off = rx->head_ & rx->mask_;
            uint64_t hdr =
                atomic_load_explicit(ferry_spsc_slot_(rx->data_, off), memory_order_acquire);
            if (hdr == 0) {
                /* The record's next line: fetched while we wait, it arrives with the header's
                 * instead of after it (a 64-byte payload spans two lines). */
                __builtin_prefetch(rx->data_ + ((rx->head_ + 64) & rx->mask_));
                return FERRY_EAGAIN;
            }
            /* Untrusted: checked by ferry_spsc_eager_size_. Padding, a broken header and the
             * periodic look at the index are the out-of-line half's (ferry_spsc_peek_eager_). */
            uint64_t sz = ferry_spsc_eager_size_(rx, hdr, off);
            if (__builtin_expect((sz != 0) & (rx->eager_ > 1), 1)) {
                rx->eager_--;
                rx->tail_cache_ = rx->lim_ = rx->head_ + sz;
                rx->peeked_ = sz;
                *data = rx->data_ + off + 8;
                *len = (uint32_t)hdr;
                return 0;
            }
            return ferry_spsc_peek_eager_(rx, hdr, data, len);
        }
        /* acquire: pairs with the release (or seq_cst) store of tail in ferry_spsc_flush. */
        uint64_t t = atomic_load_explicit(rx->tail_word_, memory_order_acquire);
        if (t == rx->tail_seen_)
            return FERRY_EAGAIN;
        /* Untrusted: 8-aligned, never behind the value loaded last, at most a ring ahead of what
         * we released (tail_seen_ never is: the subtraction cannot wrap), and past what headers
         * read eagerly already showed us (indices differ by less than 2^63: a signed difference
         * orders them). Anything else (a bad value, or a publish that has not caught up with
         * those headers yet) is the slow path's. */
        if (((t & 7) != 0) | (t - rx->tail_seen_ > rx->published_ + rx->cap_ - rx->tail_seen_) |
            ((int64_t)(t - rx->tail_cache_) <= 0))
            return ferry_spsc_peek_slow_(rx, data, len);
        rx->tail_cache_ = rx->tail_seen_ = t;
        uint64_t avail = t - rx->head_; /* >= 8: t moved forward by a multiple of 8 */
        uint64_t contig = rx->cap_ - (rx->head_ & rx->mask_);
        rx->lim_ = rx->head_ + (avail < contig ? avail : contig);
        room = rx->lim_ - rx->head_;
        uint64_t hdr;
        __builtin_memcpy(&hdr, rx->data_ + (rx->head_ & rx->mask_), 8);
        /* One record per index load, again and again: the producer publishes record by record
         * and we keep up, so the next header is quicker to watch than the index. */
        rx->streak_ = FERRY_SPSC_REC_SIZE_((uint32_t)hdr) == avail ? rx->streak_ + 1 : 0;
        if (rx->streak_ >= FERRY_SPSC_EAGER_AFTER_)
            rx->eager_ = FERRY_SPSC_EAGER_CHECK_;
    }
    if (__builtin_expect(rx->peeked_ == 0, 1)) {
        uint64_t off = rx->head_ & rx->mask_;
        uint64_t hdr;
        __builtin_memcpy(&hdr, rx->data_ + off, 8);
        uint64_t sz = FERRY_SPSC_REC_SIZE_((uint32_t)hdr);
        if (__builtin_expect(((hdr >> 32) == FERRY_SPSC_REC_DATA_) & (sz <= room), 1)) {
            rx->peeked_ = sz;
            *data = rx->data_ + off + 8;
            *len = (uint32_t)hdr;
            return 0;
        }
    }
    return ferry_spsc_peek_slow_(rx, data, len);
}

/* Publishes deferred releases and wakes a producer waiting for room. Returns 0 or FERRY_EPROTO. */
FERRY_SPSC_FAST_ int ferry_spsc_rx_flush(ferry_spsc_rx *rx)
{
    if (__builtin_expect(rx->err_ != 0, 0))
        return rx->err_;
    ferry_spsc_publish_(rx->head_word_, &rx->published_, rx->head_, &rx->strong_, &rx->writable_,
                        &rx->pol_);
    return 0;
}

/* Releases the peeked record. flags: FERRY_RING_DEFER. Returns 0, FERRY_EINVAL (nothing peeked)
 * or FERRY_EPROTO. */
FERRY_SPSC_FAST_ int ferry_spsc_release(ferry_spsc_rx *rx, unsigned flags)
{
    /* A failed endpoint never has a record peeked, so peeked_ alone decides. */
    if (__builtin_expect(rx->peeked_ != 0, 1)) {
        rx->head_ += rx->peeked_;
        rx->peeked_ = 0;
        return (flags & FERRY_RING_DEFER) ? 0 : ferry_spsc_rx_flush(rx);
    }
    return rx->err_ ? rx->err_ : FERRY_EINVAL;
}

/* Puts the peeked record back unreleased: the next peek returns it again. For a reader that
 * looked at a record and leaves it to another code path (e.g. a batch loop that handles only
 * some record kinds). Returns 0, FERRY_EINVAL (nothing peeked) or FERRY_EPROTO. */
FERRY_API int ferry_spsc_unpeek(ferry_spsc_rx *rx);

/*
 * Copy-out convenience: returns the record length (>= 0) after copying it to buf, FERRY_EMSGSIZE
 * if cap is too small (record left in the ring), or FERRY_EAGAIN/FERRY_EBUSY/FERRY_EPROTO.
 * flags: FERRY_RING_DEFER (applies to the release).
 */
FERRY_SPSC_FAST_ ssize_t ferry_spsc_read(ferry_spsc_rx *rx, void *buf, size_t cap, unsigned flags)
{
    const void *p;
    size_t len;
    int rc = ferry_spsc_peek(rx, &p, &len);
    if (rc < 0)
        return rc;
    if (len > cap) {
        rx->peeked_ = 0; /* leave the record in the ring */
        return FERRY_EMSGSIZE;
    }
    if (len)
        __builtin_memcpy(buf, p, len);
    rc = ferry_spsc_release(rx, flags);
    return rc < 0 ? rc : (ssize_t)len;
}

/*
 * Producer span step: writes the header of a record of len bytes at the span's position and
 * returns where its payload goes (fill all len bytes before commit_span), or NULL when the rest
 * of the span cannot hold it (nothing written; commit what you have and reserve a new span).
 */
FERRY_SPSC_FAST_ void *ferry_spsc_span_put(ferry_spsc_span *s, size_t len)
{
    /* room and len are compared before len is rounded, so no len can overflow the size. The
     * window is a multiple of 8, so len + 8 <= room implies the rounded size fits. */
    uint64_t room = (uint64_t)(s->end_ - s->pos_);
    if (__builtin_expect((room >= 8) & ((uint64_t)len <= room - 8), 1)) {
        uint64_t hdr = (uint64_t)len | ((uint64_t)FERRY_SPSC_REC_DATA_ << 32);
        uint8_t *p = s->pos_;
        /* The first record's slot stays zero until commit_span stores its header last: the
         * later headers are out of a consumer's reach until then. */
        if (p == s->base_)
            s->first_ = hdr;
        else
            __builtin_memcpy(p, &hdr, 8);
        s->pos_ = p + FERRY_SPSC_REC_SIZE_(len);
        return p + 8;
    }
    return NULL;
}

/* Ends the producer's span: the records put into it become one commit (flags: FERRY_RING_DEFER;
 * none put is a cancel). Returns 0, FERRY_EINVAL (no span open, or s is not the span it opened)
 * or FERRY_EPROTO. */
FERRY_SPSC_FAST_ int ferry_spsc_commit_span(ferry_spsc_tx *tx, const ferry_spsc_span *s,
                                            unsigned flags)
{
    /* reserve_span set rsv_ to window - 7; a failed endpoint never has one open. */
    uint64_t used = (uint64_t)(s->pos_ - s->base_);
    if (__builtin_expect((tx->rsv_ != 0) & (used <= tx->rsv_ + 7) & ((used & 7) == 0) &
                             (s->base_ == tx->data_ + (tx->tail_ & tx->mask_)),
                         1)) {
        if (used != 0) {
            uint64_t at = tx->tail_;
            tx->tail_ += used;
            ferry_spsc_put_hdr_(tx, at, s->first_); /* the later headers went in at span_put */
        }
        tx->rsv_ = 0;
        return (flags & FERRY_RING_DEFER) ? 0 : ferry_spsc_flush(tx);
    }
    return tx->err_ ? tx->err_ : FERRY_EINVAL;
}

/*
 * Consumer span step: the next record of the span in place (valid until release_span), or
 * FERRY_EAGAIN at the end of the span. A padding record or a header that breaks the format also
 * ends the span: release what you took and peek again; the next peek skips the padding or
 * reports FERRY_EPROTO. The bytes at *data are shared memory (a hostile producer can still
 * change them); the header was read once and checked against the span.
 */
FERRY_SPSC_FAST_ int ferry_spsc_span_next(ferry_spsc_span *s, const void **data, size_t *len)
{
    uint64_t room = (uint64_t)(s->end_ - s->pos_);
    if (__builtin_expect(room >= 8, 1)) {
        uint64_t hdr;
        __builtin_memcpy(&hdr, s->pos_, 8);
        uint64_t sz = FERRY_SPSC_REC_SIZE_((uint32_t)hdr);
        if (__builtin_expect(((hdr >> 32) == FERRY_SPSC_REC_DATA_) & (sz <= room), 1)) {
            *data = s->pos_ + 8;
            *len = (uint32_t)hdr;
            s->pos_ += sz;
            return 0;
        }
    }
    return FERRY_EAGAIN;
}

/* Ends the consumer's span: releases the records span_next returned (flags: FERRY_RING_DEFER;
 * none is an unpeek). Returns 0, FERRY_EINVAL (no span open, or s is not the span it opened) or
 * FERRY_EPROTO. */
FERRY_SPSC_FAST_ int ferry_spsc_release_span(ferry_spsc_rx *rx, const ferry_spsc_span *s,
                                             unsigned flags)
{
    /* peek_span set peeked_ to the window; a failed endpoint never has one open. */
    uint64_t used = (uint64_t)(s->pos_ - s->base_);
    if (__builtin_expect((rx->peeked_ != 0) & (used <= rx->peeked_) & ((used & 7) == 0) &
                             (s->base_ == rx->data_ + (rx->head_ & rx->mask_)),
                         1)) {
        rx->head_ += used;
        rx->peeked_ = 0;
        return (flags & FERRY_RING_DEFER) ? 0 : ferry_spsc_rx_flush(rx);
    }
    return rx->err_ ? rx->err_ : FERRY_EINVAL;
}

#if defined(FERRY_SPSC_NO_INLINE) && !defined(FERRY_SPSC_EXPORT_)
#undef ferry_spsc_reserve
#undef ferry_spsc_commit
#undef ferry_spsc_flush
#undef ferry_spsc_write
#undef ferry_spsc_peek
#undef ferry_spsc_release
#undef ferry_spsc_rx_flush
#undef ferry_spsc_read
#undef ferry_spsc_span_put
#undef ferry_spsc_commit_span
#undef ferry_spsc_span_next
#undef ferry_spsc_release_span
FERRY_API int ferry_spsc_reserve(ferry_spsc_tx *tx, size_t len, void **out);
FERRY_API int ferry_spsc_commit(ferry_spsc_tx *tx, size_t len, unsigned flags);
FERRY_API int ferry_spsc_flush(ferry_spsc_tx *tx);
FERRY_API int ferry_spsc_write(ferry_spsc_tx *tx, const void *buf, size_t len, unsigned flags);
FERRY_API int ferry_spsc_peek(ferry_spsc_rx *rx, const void **data, size_t *len);
FERRY_API int ferry_spsc_release(ferry_spsc_rx *rx, unsigned flags);
FERRY_API int ferry_spsc_rx_flush(ferry_spsc_rx *rx);
FERRY_API ssize_t ferry_spsc_read(ferry_spsc_rx *rx, void *buf, size_t cap, unsigned flags);
FERRY_API void *ferry_spsc_span_put(ferry_spsc_span *s, size_t len);
FERRY_API int ferry_spsc_commit_span(ferry_spsc_tx *tx, const ferry_spsc_span *s, unsigned flags);
FERRY_API int ferry_spsc_span_next(ferry_spsc_span *s, const void **data, size_t *len);
FERRY_API int ferry_spsc_release_span(ferry_spsc_rx *rx, const ferry_spsc_span *s, unsigned flags);
#endif

/* Blocks until a record is available; publishes deferred releases first. Returns 0,
 * FERRY_ETIMEDOUT, FERRY_EINTR or FERRY_EPROTO. */
FERRY_API int ferry_spsc_wait_readable(ferry_spsc_rx *rx, int timeout_ms);

/*
 * For consumers that sleep in epoll on an eventfd the producer signals (its tx policy's eventfd):
 * arm announces the sleeper and returns 1 if a record is already readable (then it is disarmed
 * again and the caller must not sleep) or 0 (armed: sleep, then call ferry_spsc_rx_disarm).
 */
FERRY_API int ferry_spsc_rx_arm(ferry_spsc_rx *rx);
FERRY_API void ferry_spsc_rx_disarm(ferry_spsc_rx *rx);

/*
 * Per-endpoint wait policy (spin window, eventfd); defaults from ferry_wait_policy_init. The
 * eventfd of a tx policy is signalled when the tx wakes a sleeping consumer, the one of an rx
 * policy when the rx wakes a producer waiting for room.
 */
FERRY_API void ferry_spsc_tx_set_wait(ferry_spsc_tx *tx, const ferry_wait_policy *pol);
FERRY_API void ferry_spsc_rx_set_wait(ferry_spsc_rx *rx, const ferry_wait_policy *pol);

/* ------------------------------------------------------------------------------------------- */
/* MPMC slot queue and MPSC byte ring                                                          */
/* ------------------------------------------------------------------------------------------- */

/*
 * Bounded MPMC queue of `slots` fixed-size slots of `slot_size` bytes (Vyukov's per-cell sequence
 * numbers). slots: a power of two in [2, 2^30]; slot_size: [1, 2^30]. Each slot also remembers
 * the length pushed into it (0..slot_size). Any number of producers and consumers in any threads
 * or processes may push/pop concurrently, each thread through its own ferry_mpmc endpoint
 * (ferry_mpmc_init is cheap and allocates nothing; an endpoint belongs to one thread at a time).
 *
 * Dead producers: a producer killed between claiming a slot and publishing it blocks every
 * consumer at that slot (pop returns FERRY_EAGAIN forever, then push too once the ring is full).
 * This is inherent to the algorithm. Detect it with ferry_mpmc_stalled: if it reports the same
 * position twice, far enough apart that a live producer would have finished its copy (a
 * millisecond is plenty), the producer that claimed it is gone; recover by re-creating the queue
 * (typically after peer-death detection on the control socket has confirmed it).
 */
/* Bytes of shared memory for a queue of that shape, or 0 if the shape is invalid. */
FERRY_API size_t ferry_mpmc_footprint(size_t slots, size_t slot_size);
/* Formats a queue in mem (128-byte aligned, >= footprint: else FERRY_EINVAL/FERRY_EMSGSIZE). */
FERRY_API int ferry_mpmc_format(void *mem, size_t mem_size, size_t slots, size_t slot_size);

/* Private endpoint state, filled by ferry_mpmc_init; do not touch the fields. */
typedef struct ferry_mpmc {
    void *shared_;
    uint8_t *cells_;
    uint64_t slots_, mask_, slot_size_, stride_;
    int err_;
    int strong_; /* 1: publish with a full fence (this process has no membarrier registration) */
    ferry_wait_policy pol_;
} ferry_mpmc;

/* Attaches to a formatted queue; validates the shared header (untrusted): FERRY_EPROTO. */
FERRY_API int ferry_mpmc_init(ferry_mpmc *q, void *mem, size_t mem_size);
/* Copies len <= slot_size bytes in (len 0 is a valid message) and wakes a sleeping consumer.
 * Returns 0, FERRY_EAGAIN when full, FERRY_EMSGSIZE when len > slot_size, FERRY_EINVAL or
 * FERRY_EPROTO. */
FERRY_API int ferry_mpmc_push(ferry_mpmc *q, const void *buf, size_t len);
/* Copies one slot out and wakes a producer waiting for room; returns its length, FERRY_EAGAIN
 * when empty (or when the oldest slot is claimed but not yet published), FERRY_EMSGSIZE if cap is
 * too small (the message stays queued), FERRY_EINVAL or FERRY_EPROTO (a length or header word in
 * shared memory is corrupt). */
FERRY_API ssize_t ferry_mpmc_pop(ferry_mpmc *q, void *buf, size_t cap);
/* Block (ferry_wait: spin, yield, shared futex) until the oldest slot is published / a slot is
 * free. Another consumer (producer) may still win the race, so pop (push) can return FERRY_EAGAIN
 * afterwards: loop. Returns 0, FERRY_ETIMEDOUT, FERRY_EINTR, FERRY_EINVAL or FERRY_EPROTO. */
FERRY_API int ferry_mpmc_wait_readable(ferry_mpmc *q, int timeout_ms);
FERRY_API int ferry_mpmc_wait_writable(ferry_mpmc *q, int timeout_ms);
/* This endpoint's wait policy (NULL: defaults); its eventfd is signalled when it wakes sleepers. */
FERRY_API void ferry_mpmc_set_wait(ferry_mpmc *q, const ferry_wait_policy *pol);
/* Diagnostic snapshot: returns 1 if the oldest position (stored in *pos if pos is non-NULL) is
 * claimed by a producer but not published, 0 if not, or a FERRY_E* code. See "Dead producers". */
FERRY_API int ferry_mpmc_stalled(ferry_mpmc *q, uint64_t *pos);

/*
 * MPSC byte ring of variable-length records: producers claim space with a CAS on a shared
 * reservation index and commit by writing the record's header word last; a single consumer reads
 * records in reservation order. capacity: data bytes, a power of two in [256, 2^32]; the largest
 * record is FERRY_MPSC_MAX_RECORD(capacity) bytes. Any number of producers in any threads or
 * processes, each thread with its own ferry_mpsc endpoint; exactly one consumer endpoint (used by
 * one thread at a time) calls ferry_mpsc_read, ferry_mpsc_wait_readable and ferry_mpsc_stalled.
 *
 * Dead producers: as with the MPMC queue, a producer killed between reservation and commit leaves
 * a hole the consumer can never pass (ferry_mpsc_read returns FERRY_EAGAIN forever). Detect it with
 * ferry_mpsc_stalled the same way.
 */
#define FERRY_MPSC_MAX_RECORD(cap) ((cap) / 2 - 8)

/* Bytes of shared memory for a ring of that capacity, or 0 if the capacity is invalid. */
FERRY_API size_t ferry_mpsc_footprint(size_t capacity);
/* Formats a ring in mem (128-byte aligned, >= footprint: else FERRY_EINVAL/FERRY_EMSGSIZE). */
FERRY_API int ferry_mpsc_format(void *mem, size_t mem_size, size_t capacity);

/* Private endpoint state, filled by ferry_mpsc_init; do not touch the fields. */
typedef struct ferry_mpsc {
    void *shared_;
    uint8_t *data_;
    uint64_t cap_, mask_;
    uint64_t head_;       /* consumer: authoritative read index */
    uint64_t head_cache_; /* producer: last consumer index seen */
    int err_;
    int strong_; /* 1: publish with a full fence (this process has no membarrier registration) */
    ferry_wait_policy pol_;
} ferry_mpsc;

/* Attaches a producer or the consumer to a formatted ring; validates the shared header
 * (untrusted): FERRY_EPROTO. */
FERRY_API int ferry_mpsc_init(ferry_mpsc *r, void *mem, size_t mem_size);
/* Any producer: copy a record in (len 0 is valid) and wake a sleeping consumer. Returns 0,
 * FERRY_EAGAIN when full, FERRY_EMSGSIZE when too large, FERRY_EINVAL or FERRY_EPROTO. */
FERRY_API int ferry_mpsc_write(ferry_mpsc *r, const void *buf, size_t len);
/* The single consumer: copy a record out; returns its length, FERRY_EAGAIN when empty (or the next
 * record is not committed yet), FERRY_EMSGSIZE if cap is too small (the record stays in the ring),
 * FERRY_EINVAL or FERRY_EPROTO. Wakes producers waiting for room. */
FERRY_API ssize_t ferry_mpsc_read(ferry_mpsc *r, void *buf, size_t cap);
/* Consumer: block until the next record is committed. Producer: block until len bytes fit
 * (another producer may take the room first: loop). Return 0, FERRY_ETIMEDOUT, FERRY_EINTR,
 * FERRY_EINVAL, FERRY_EMSGSIZE (writable: len too large) or FERRY_EPROTO. */
FERRY_API int ferry_mpsc_wait_readable(ferry_mpsc *r, int timeout_ms);
FERRY_API int ferry_mpsc_wait_writable(ferry_mpsc *r, size_t len, int timeout_ms);
/* This endpoint's wait policy (NULL: defaults); its eventfd is signalled when it wakes sleepers. */
FERRY_API void ferry_mpsc_set_wait(ferry_mpsc *r, const ferry_wait_policy *pol);
/* Consumer-side diagnostic snapshot: returns 1 if space at the consumer's position (stored in *pos
 * if non-NULL) is reserved but not committed, 0 if not, or a FERRY_E* code. */
FERRY_API int ferry_mpsc_stalled(ferry_mpsc *r, uint64_t *pos);

#ifdef __cplusplus
}
#endif
#endif /* FERRY_RING_H */
