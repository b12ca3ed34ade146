/*
 * shm_record.h - the shm pipe's record format and the receiver's check of it, as a pure function
 * (no ring, no memory of its own) so it can be fuzzed directly (fuzz/fuzz_shm_records.c) and the
 * pipe (shm_pipe.c) applies exactly what was fuzzed.
 *
 * Every frame travels as one ring record: an 8-byte meta word (flags in the low byte, the frame's
 * total size in the 56 bits above) followed by the bytes. A frame too large for one record is a
 * run of chunk records: the first has FY_SHM_REC_CHUNK, the middle ones FY_SHM_REC_CHUNK |
 * FY_SHM_REC_CONT, the last FY_SHM_REC_CONT; each repeats the frame's total size and flags. The
 * peer writes all of it, so every field is checked against the record's length, the size limit
 * and the reassembly in progress before anything is copied.
 */
#ifndef FERRY_TRANSPORT_SHM_RECORD_H
#define FERRY_TRANSPORT_SHM_RECORD_H

#include <stdbool.h>
#include <stddef.h>
#include <stdint.h>

#define FY_SHM_REC_MORE  0x01u /* the frame has FY_MSG_MORE */
#define FY_SHM_REC_SUB   0x02u /* the frame has FY_MSG_SUB */
#define FY_SHM_REC_CHUNK 0x04u /* more chunks of this frame follow */
#define FY_SHM_REC_CONT  0x08u /* this record continues a frame */
#define FY_SHM_REC_FLAGS (FY_SHM_REC_MORE | FY_SHM_REC_SUB | FY_SHM_REC_CHUNK | FY_SHM_REC_CONT)
#define FY_SHM_REC_META  8u /* bytes of the meta word in front of every record */

/* What a checked record is. */
enum {
    FY_SHM_REC_WHOLE = 0, /* a whole frame: its n bytes are the frame */
    FY_SHM_REC_FIRST,     /* the first chunk: reassembly of a frame of total bytes starts */
    FY_SHM_REC_MIDDLE,    /* a further chunk, more follow */
    FY_SHM_REC_LAST,      /* the chunk that completes the frame */
};

/* The receiver's reassembly in progress (what the previous chunks promised). */
typedef struct fy_shm_rec_asm {
    bool on;        /* a chunked frame is open */
    uint64_t total; /* its size, from its first chunk */
    uint64_t have;  /* bytes of it received so far (<= total) */
    uint32_t flags; /* its FY_SHM_REC_MORE | FY_SHM_REC_SUB */
} fy_shm_rec_asm;

/* One checked record. */
typedef struct fy_shm_rec {
    int kind;       /* FY_SHM_REC_WHOLE .. FY_SHM_REC_LAST */
    uint32_t flags; /* the frame's FY_SHM_REC_MORE | FY_SHM_REC_SUB */
    uint64_t total; /* the frame's size (<= max_msg) */
    uint64_t n;     /* payload bytes of this record, after the meta word */
} fy_shm_rec;

/*
 * Checks the record of len bytes (meta word included) whose meta word is meta (read once by the
 * caller: the peer may rewrite it behind us), against the reassembly state a and the frame size
 * limit max_msg. 0 and *r filled, or FERRY_EPROTO for a record no honest peer writes: shorter
 * than the meta word, unknown flags, a continuation with no frame open or a new frame while one
 * is open, a size or flags that differ from the first chunk's, more bytes than the frame has
 * left, a last chunk that leaves bytes missing, a whole record whose size disagrees with its
 * length, any frame over max_msg. On 0, a.have + r->n <= r->total is guaranteed for chunks.
 */
int fy_shm_rec_check(const fy_shm_rec_asm *a, uint64_t meta, size_t len, uint64_t max_msg,
                     fy_shm_rec *r);

/* Moves the reassembly state past the record r (checked against a by fy_shm_rec_check). */
void fy_shm_rec_advance(fy_shm_rec_asm *a, const fy_shm_rec *r);

/*
 * The common record, for hot paths that check it inline and send everything else through
 * fy_shm_rec_check: a whole frame without flags whose size equals the record's payload length and
 * is within max_msg. True exactly when fy_shm_rec_check, with no frame open, accepts the record
 * as FY_SHM_REC_WHOLE with no flags (fuzz_shm_records asserts it), for every len.
 */
static inline bool fy_shm_rec_is_plain(uint64_t meta, size_t len, uint64_t max_msg)
{
    uint64_t n = (uint64_t)len - FY_SHM_REC_META;
    return len >= FY_SHM_REC_META && (meta & 0xffu) == 0 && (meta >> 8) == n && n <= max_msg;
}

#endif
