/*
 * multi_layout.h - shared-memory layout of the multi-producer rings (mpmc.c, mpsc.c).
 *
 * Private to the library, its tests and the fuzz target: the tests scribble these words on
 * purpose and the fuzz harness builds rings from raw bytes, so they need the offsets. Every word
 * here is read by peers we do not trust; the code that reads them validates before use.
 *
 * Both layouts start with three 128-byte lines: a read-mostly shape line (magic, version, sizes),
 * then the producers' index, then the consumers' index, each alone on its line so that producers
 * and consumers do not invalidate each other's lines (128 rather than 64 because Intel's adjacent
 * line prefetcher pulls lines in pairs). The wait word the other side sleeps on shares the line of
 * the index whose change ends that sleep: the waker has just written that line anyway, and the
 * sleeper writes it only when it goes to sleep.
 */
#ifndef FERRY_RING_MULTI_LAYOUT_H
#define FERRY_RING_MULTI_LAYOUT_H

#include "ferry/ring.h"

#include <stdatomic.h>
#include <stdbool.h>
#include <stdint.h>

#define FY_MULTI_LINE 128u

/* ---- MPMC slot queue ---------------------------------------------------------------------- */

#define FY_MPMC_MAGIC   UINT64_C(0x43504d4d59524546) /* "FERYMMPC" as little-endian bytes */
#define FY_MPMC_VERSION UINT64_C(1)
/* Limits chosen so that every size computation fits comfortably in 64 bits. */
#define FY_MPMC_MAX_SLOTS     (UINT64_C(1) << 30)
#define FY_MPMC_MAX_SLOT_SIZE (UINT64_C(1) << 30)
/* Cells are padded to a multiple of this (see fy_mpmc_stride). */
#define FY_MPMC_CELL_ALIGN 64u

typedef struct fy_mpmc_hdr {
    _Atomic uint64_t magic;
    _Atomic uint64_t version;
    _Atomic uint64_t slots;     /* power of two, >= 2 */
    _Atomic uint64_t slot_size; /* payload bytes per cell */
    uint8_t pad0_[FY_MULTI_LINE - 4 * sizeof(uint64_t)];
    _Atomic uint64_t enq;    /* next position a producer claims */
    ferry_waitword readable; /* consumers sleep here when empty; producers wake them */
    uint8_t pad1_[FY_MULTI_LINE - 16];
    _Atomic uint64_t deq;    /* next position a consumer claims */
    ferry_waitword writable; /* producers sleep here when full; consumers wake them */
    uint8_t pad2_[FY_MULTI_LINE - 16];
} fy_mpmc_hdr;

/* One cell: the sequence word, the length of the stored payload, then slot_size payload bytes. */
typedef struct fy_mpmc_cell {
    _Atomic uint64_t seq;
    _Atomic uint64_t len;
} fy_mpmc_cell;

#define FY_MPMC_CELL_HDR ((uint64_t)sizeof(fy_mpmc_cell))

/* Bytes from one cell to the next for a given slot size (caller keeps slot_size in limits). */
static inline uint64_t fy_mpmc_stride(uint64_t slot_size)
{
    return (FY_MPMC_CELL_HDR + slot_size + FY_MPMC_CELL_ALIGN - 1) &
           ~(uint64_t)(FY_MPMC_CELL_ALIGN - 1);
}

/* ---- MPSC byte ring ----------------------------------------------------------------------- */

#define FY_MPSC_MAGIC        UINT64_C(0x4353504d59524546) /* "FERYMPSC" */
#define FY_MPSC_VERSION      UINT64_C(1)
#define FY_MPSC_MIN_CAPACITY (UINT64_C(1) << 8)
#define FY_MPSC_MAX_CAPACITY (UINT64_C(1) << 32)

typedef struct fy_mpsc_hdr {
    _Atomic uint64_t magic;
    _Atomic uint64_t version;
    _Atomic uint64_t capacity; /* data bytes, power of two */
    uint8_t pad0_[FY_MULTI_LINE - 3 * sizeof(uint64_t)];
    _Atomic uint64_t tail;   /* reservation index: producers claim [tail, tail+n) by CAS */
    ferry_waitword readable; /* the consumer sleeps here when empty; producers wake it */
    uint8_t pad1_[FY_MULTI_LINE - 16];
    _Atomic uint64_t head;   /* consumer index: everything before it is free (and zeroed) */
    ferry_waitword writable; /* producers sleep here when full; the consumer wakes them */
    uint8_t pad2_[FY_MULTI_LINE - 16];
} fy_mpsc_hdr;

/*
 * Each record starts on an 8-byte boundary with one 64-bit header word; the payload follows and
 * the record is padded to a multiple of 8. A header of 0 means "not committed yet". Committed
 * headers have FY_MPSC_COMMIT set; the low 32 bits are the payload length, or for a padding
 * record (FY_MPSC_PAD, written when a record would not fit before the end of the data area) the
 * total size of the padding, header included. Any other bit set is corruption.
 */
#define FY_MPSC_HDR      UINT64_C(8)
#define FY_MPSC_COMMIT   (UINT64_C(1) << 63)
#define FY_MPSC_PAD      (UINT64_C(1) << 62)
#define FY_MPSC_LEN_MASK UINT64_C(0xffffffff)
#define FY_MPSC_KNOWN    (FY_MPSC_COMMIT | FY_MPSC_PAD | FY_MPSC_LEN_MASK)

/* Total bytes a record with len payload bytes occupies (len <= the ring's max record). */
static inline uint64_t fy_mpsc_total(uint64_t len)
{
    return FY_MPSC_HDR + ((len + 7) & ~UINT64_C(7));
}

/* Largest payload of a ring with `cap` data bytes: a record never wraps, and half the ring bounds
 * the padding a wrap can cost, so a record of this size always fits into an empty ring. */
static inline uint64_t fy_mpsc_max_record(uint64_t cap)
{
    return cap / 2 - FY_MPSC_HDR;
}

/* ---- publishing with wake-up ------------------------------------------------------------- */

/*
 * Stores `val` into the index/sequence/header word `word` (release: everything written before is
 * visible to whoever acquires the word) and returns whether somebody sleeps on `w`, i.e. whether
 * the caller must wake it. The store must be ordered before the sleepers load (Dekker with
 * ferry_wait_arm). With strong == 0 (this process is registered for global expedited
 * membarriers, see ring/wait_internal.h) the full barrier is supplied by the sleeper's
 * membarrier in ferry_wait_arm, so a compiler barrier is enough here and the publish is a plain
 * store; otherwise a seq_cst store and load pair with ferry_wait_arm's seq_cst increment and fence.
 */
static inline bool fy_multi_publish(_Atomic uint64_t *word, uint64_t val, ferry_waitword *w,
                                    int strong)
{
    if (__builtin_expect(strong == 0, 1)) {
        atomic_store_explicit(word, val, memory_order_release);
        atomic_signal_fence(memory_order_seq_cst);
        return atomic_load_explicit(&w->sleepers, memory_order_relaxed) != 0;
    }
    atomic_store_explicit(word, val, memory_order_seq_cst);
    return atomic_load_explicit(&w->sleepers, memory_order_seq_cst) != 0;
}

#endif /* FERRY_RING_MULTI_LAYOUT_H */
