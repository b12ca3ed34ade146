/*
 * spsc_layout.h - the shared-memory layout of an SPSC byte ring (private; the
 * shm transport includes it to place rings inside its segments).
 *
 *   offset   0  header line (128 B): magic, version, header size, capacity.
 * Written once by ferry_spsc_format, read only by *_init (and validated there:
 * untrusted). offset 128  producer line (128 B): tail index, `readable` wait
 * word. Written by the producer (the consumer writes only readable.sleepers,
 * and only when going to sleep). offset 256  consumer line (128 B): head index,
 * `writable` wait word. Written by the consumer. offset 384  data: capacity
 * bytes of records.
 *
 * The two index lines are 128 bytes apart because the adjacent-line prefetcher
 * pulls cache lines in pairs: with 64-byte separation the producer's and the
 * consumer's lines would still contend.
 */
#ifndef FERRY_RING_SPSC_LAYOUT_H
#define FERRY_RING_SPSC_LAYOUT_H

#include "ferry/ring.h"

#include <stdint.h>

#define FY_SPSC_MAGIC    UINT64_C(0x3150535952524546) /* "FERRYSP1" little-endian */
#define FY_SPSC_VERSION  2u
#define FY_SPSC_LINE     128u
#define FY_SPSC_HDR_SIZE (3u * FY_SPSC_LINE)

typedef struct fy_spsc_shared {
    /* header line: immutable after format */
    uint64_t magic;
    uint32_t version;
    uint32_t hdr_size;
    uint64_t capacity;
    uint8_t pad0_[FY_SPSC_LINE - 24];
    /* producer line */
    _Atomic uint64_t tail;
    ferry_waitword readable;
    uint8_t pad1_[FY_SPSC_LINE - 16];
    /* consumer line */
    _Atomic uint64_t head;
    ferry_waitword writable;
    uint8_t pad2_[FY_SPSC_LINE - 16];
} fy_spsc_shared;

_Static_assert(sizeof(fy_spsc_shared) == FY_SPSC_HDR_SIZE, "spsc header is three lines");
_Static_assert(offsetof(fy_spsc_shared, tail) == FY_SPSC_LINE, "producer line at 128");
_Static_assert(offsetof(fy_spsc_shared, head) == 2 * FY_SPSC_LINE, "consumer line at 256");

#endif
