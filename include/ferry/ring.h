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
 * Thread safety: an SPSC endpoint (tx or rx) belongs to one thread at a time. MPMC/MPSC producer
 * calls may run concurrently from any thread or process.
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

typedef struct ferry_segment_opts {
    size_t size;      /* bytes; rounded up to the page (or huge page) size */
    unsigned flags;   /* FERRY_SEG_* */
    int numa_node;    /* with FERRY_SEG_NUMA */
    const char *name; /* NULL: anonymous sealed memfd; else a POSIX shm name created O_EXCL */
    unsigned mode;    /* named segments: permission bits, 0 means 0600 */
} ferry_segment_opts;

/*
 * Creates and maps a segment. Anonymous segments are memfd_create(MFD_CLOEXEC|MFD_ALLOW_SEALING),
 * fully allocated with posix_fallocate (FERRY_ENOSPC now instead of SIGBUS later), then sealed with
 * F_SEAL_SHRINK|F_SEAL_GROW|F_SEAL_SEAL. Named segments are unlinked by ferry_segment_close() of
 * the creator. On success *out is owned by the caller (ferry_segment_close).
 */
FERRY_API int ferry_segment_open(ferry_segment **out, const ferry_segment_opts *opts);
/*
 * Maps a segment received as an fd (e.g. over SCM_RIGHTS). Checks that the fd is a sealed memfd
 * whose size cannot change (unless flags has no seal requirement: never for untrusted peers). On
 * success the segment owns fd; on failure the caller still owns it.
 */
FERRY_API int ferry_segment_attach(ferry_segment **out, int fd, unsigned flags);
/* Opens and maps an existing named segment. */
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
 * A wait word lives in shared memory. The sleeper bumps `sleepers`, issues a full fence, re-checks
 * its condition, then futex-waits on `seq`; the waker bumps `seq` and calls FUTEX_WAKE only when
 * `sleepers` is non-zero, so an uncontended wake costs no system call.
 */
typedef struct ferry_waitword {
    _Atomic uint32_t seq;
    _Atomic uint32_t sleepers;
} ferry_waitword;

typedef struct ferry_wait_policy {
    uint32_t spin_ns;  /* busy-poll window before yielding; default 20000 */
    uint32_t yield_ns; /* sched_yield window before sleeping; default 20000 */
    int eventfd;       /* >= 0: also signal this eventfd on wake (for users who epoll) */
} ferry_wait_policy;

/* Fills a policy with the defaults above and eventfd = -1. */
FERRY_API void ferry_wait_policy_init(ferry_wait_policy *pol);

/* Returns true when the awaited condition holds. Must be cheap and side-effect free. */
typedef bool (*ferry_wait_ready_fn)(void *arg);

/*
 * Waits until ready(arg) is true: spin, then yield, then futex sleep. timeout_ms < 0 waits forever,
 * 0 checks once. Returns 0 when ready, FERRY_ETIMEDOUT, FERRY_EINTR (signal), or the negative value
 * a ready callback signalled through ferry_wait_block's contract (none by default).
 */
FERRY_API int ferry_wait_block(ferry_waitword *w, ferry_wait_ready_fn ready, void *arg,
                               const ferry_wait_policy *pol, int timeout_ms);
/* Wakes every sleeper on w; no system call when nobody sleeps. */
FERRY_API void ferry_wait_wake(ferry_waitword *w, const ferry_wait_policy *pol);

/* ------------------------------------------------------------------------------------------- */
/* SPSC byte ring                                                                              */
/* ------------------------------------------------------------------------------------------- */

/* Largest record a ring of data capacity `cap` can carry (records never wrap). */
#define FERRY_SPSC_MAX_RECORD(cap) ((cap) / 2 - 8)

/* Flags for commit/release. */
#define FERRY_RING_DEFER                                                                           \
    0x1u /* do not publish the index yet; a later call without it (or flush) does */

/* Bytes of shared memory needed for a ring with `capacity` data bytes (a power of two >= 4096). */
FERRY_API size_t ferry_spsc_footprint(size_t capacity);
/* Formats a ring in mem (the creator does this once). mem must be 128-byte aligned. */
FERRY_API int ferry_spsc_format(void *mem, size_t mem_size, size_t capacity);

/*
 * Private endpoint state (caller-owned storage, ferry_spsc_tx_init/rx_init fill it). The fields are
 * visible only so the structs can live on the stack or inside other structs; do not touch them.
 */
typedef struct ferry_spsc_tx {
    void *shared_;
    uint8_t *data_;
    uint64_t cap_, mask_;
    uint64_t tail_;       /* authoritative write index */
    uint64_t published_;  /* last tail made visible to the consumer */
    uint64_t head_cache_; /* last consumer index seen */
    uint64_t reserved_;   /* bytes of the open reservation, 0 if none */
    int err_;
    ferry_wait_policy pol_;
} ferry_spsc_tx;

typedef struct ferry_spsc_rx {
    void *shared_;
    uint8_t *data_;
    uint64_t cap_, mask_;
    uint64_t head_;       /* authoritative read index */
    uint64_t published_;  /* last head made visible to the producer */
    uint64_t tail_cache_; /* last producer index seen */
    uint64_t peeked_;     /* bytes of the record handed out by peek, 0 if none */
    int err_;
    ferry_wait_policy pol_;
} ferry_spsc_rx;

/* Attach an endpoint to a formatted ring; validates the shared header (untrusted). */
FERRY_API int ferry_spsc_tx_init(ferry_spsc_tx *tx, void *mem, size_t mem_size);
FERRY_API int ferry_spsc_rx_init(ferry_spsc_rx *rx, void *mem, size_t mem_size);

/*
 * Reserves room for a record of len bytes and returns where to write it in *out. Returns 0,
 * FERRY_EAGAIN (full), FERRY_EMSGSIZE (len > FERRY_SPSC_MAX_RECORD), FERRY_EBUSY (a reservation is
 * already open) or FERRY_EPROTO. Nothing is visible to the consumer until commit.
 */
FERRY_API int ferry_spsc_reserve(ferry_spsc_tx *tx, size_t len, void **out);
/* Commits the open reservation with its final length (<= reserved). flags: FERRY_RING_DEFER. */
FERRY_API int ferry_spsc_commit(ferry_spsc_tx *tx, size_t len, unsigned flags);
/* Publishes deferred commits and wakes a sleeping consumer. */
FERRY_API int ferry_spsc_flush(ferry_spsc_tx *tx);
/* Copy-in convenience: reserve + memcpy + commit(flags). */
FERRY_API int ferry_spsc_write(ferry_spsc_tx *tx, const void *buf, size_t len, unsigned flags);
/* Blocks (ferry_wait policy) until len bytes fit; returns 0 or FERRY_ETIMEDOUT/FERRY_EPROTO. */
FERRY_API int ferry_spsc_wait_writable(ferry_spsc_tx *tx, size_t len, int timeout_ms);

/*
 * Returns the next record in place: *data points into the ring and stays valid until release.
 * Returns 0, FERRY_EAGAIN (empty), FERRY_EBUSY (a peeked record is not released yet) or
 * FERRY_EPROTO.
 */
FERRY_API int ferry_spsc_peek(ferry_spsc_rx *rx, const void **data, size_t *len);
/* Releases the peeked record. flags: FERRY_RING_DEFER. */
FERRY_API int ferry_spsc_release(ferry_spsc_rx *rx, unsigned flags);
/* Publishes deferred releases and wakes a producer waiting for room. */
FERRY_API int ferry_spsc_rx_flush(ferry_spsc_rx *rx);
/*
 * Copy-out convenience: returns the record length (>= 0) after copying it to buf, FERRY_EMSGSIZE
 * if cap is too small (record left in the ring), or FERRY_EAGAIN/FERRY_EPROTO.
 */
FERRY_API ssize_t ferry_spsc_read(ferry_spsc_rx *rx, void *buf, size_t cap, unsigned flags);
/* Blocks until a record is available; returns 0 or FERRY_ETIMEDOUT/FERRY_EPROTO. */
FERRY_API int ferry_spsc_wait_readable(ferry_spsc_rx *rx, int timeout_ms);

/* Per-endpoint wait policy (spin window, eventfd); defaults from ferry_wait_policy_init. */
FERRY_API void ferry_spsc_tx_set_wait(ferry_spsc_tx *tx, const ferry_wait_policy *pol);
FERRY_API void ferry_spsc_rx_set_wait(ferry_spsc_rx *rx, const ferry_wait_policy *pol);

/* ------------------------------------------------------------------------------------------- */
/* MPMC slot queue and MPSC byte ring                                                          */
/* ------------------------------------------------------------------------------------------- */

/*
 * Bounded MPMC queue of `slots` fixed-size slots of `slot_size` bytes (Vyukov's per-cell sequence
 * numbers). slots: a power of two in [2, 2^30]; slot_size: [1, 2^30]. Each slot also remembers
 * the length pushed into it (0..slot_size). Any number of producers and consumers, in any threads
 * or processes, may call push/pop concurrently, each through its own ferry_mpmc (or a shared one:
 * the struct is only read after init).
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
} ferry_mpmc;

/* Attaches to a formatted queue; validates the shared header (untrusted): FERRY_EPROTO. */
FERRY_API int ferry_mpmc_init(ferry_mpmc *q, void *mem, size_t mem_size);
/* Copies len <= slot_size bytes in (len 0 is a valid message). Returns 0, FERRY_EAGAIN when full,
 * FERRY_EMSGSIZE when len > slot_size, FERRY_EINVAL, FERRY_EPROTO. */
FERRY_API int ferry_mpmc_push(ferry_mpmc *q, const void *buf, size_t len);
/* Copies one slot out; returns its length, FERRY_EAGAIN when empty (or when the oldest slot is
 * claimed but not yet published), FERRY_EMSGSIZE if cap is too small (the message stays queued),
 * FERRY_EINVAL or FERRY_EPROTO (a length or header word in shared memory is corrupt). */
FERRY_API ssize_t ferry_mpmc_pop(ferry_mpmc *q, void *buf, size_t cap);
/* Diagnostic snapshot: returns 1 if the oldest position (stored in *pos if pos is non-NULL) is
 * claimed by a producer but not published, 0 if not, or a FERRY_E* code. See "Dead producers". */
FERRY_API int ferry_mpmc_stalled(ferry_mpmc *q, uint64_t *pos);

/*
 * MPSC byte ring of variable-length records: producers claim space with a CAS on a shared
 * reservation index and commit by writing the record's header word last; a single consumer reads
 * records in reservation order. capacity: data bytes, a power of two in [256, 2^32]; the largest
 * record is FERRY_MPSC_MAX_RECORD(capacity) bytes. Producer calls may run concurrently from any
 * thread or process; exactly one consumer (one ferry_mpsc used by one thread at a time) may call
 * ferry_mpsc_read/ferry_mpsc_stalled.
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
    uint64_t head_; /* consumer only */
    int err_;
} ferry_mpsc;

/* Attaches a producer or the consumer to a formatted ring; validates the shared header
 * (untrusted): FERRY_EPROTO. */
FERRY_API int ferry_mpsc_init(ferry_mpsc *r, void *mem, size_t mem_size);
/* Any producer: copy a record in (len 0 is valid). Returns 0, FERRY_EAGAIN when full,
 * FERRY_EMSGSIZE when too large, FERRY_EINVAL or FERRY_EPROTO. */
FERRY_API int ferry_mpsc_write(ferry_mpsc *r, const void *buf, size_t len);
/* The single consumer: copy a record out; returns its length, FERRY_EAGAIN when empty (or the next
 * record is not committed yet), FERRY_EMSGSIZE if cap is too small (the record stays in the ring),
 * FERRY_EINVAL or FERRY_EPROTO. */
FERRY_API ssize_t ferry_mpsc_read(ferry_mpsc *r, void *buf, size_t cap);
/* Consumer-side diagnostic snapshot: returns 1 if space at the consumer's position (stored in *pos
 * if non-NULL) is reserved but not committed, 0 if not, or a FERRY_E* code. */
FERRY_API int ferry_mpsc_stalled(ferry_mpsc *r, uint64_t *pos);

#ifdef __cplusplus
}
#endif
#endif /* FERRY_RING_H */
