/*
 * fuzz_shm_records.c - libFuzzer target for the shm pipe's record reader: fy_shm_rec_check and
 * fy_shm_rec_advance (src/transport/shm_record.c), the pure function shm_pipe.c's sp_next applies
 * to every record it peeks out of the ring. The peer writes the ring, so the meta word (flags,
 * frame size), the record length and the run of chunk headers are all taken from the input, as is
 * the receiver's frame size limit. The ring framing itself is fuzz_ring's (lying ring words); the
 * pipe around the check (peek, copy, release, hold, sticky EPROTO) is covered by test_shm_pipe and
 * test_harden_shmhostile. An earlier version of this target built a real link per input and ran
 * at a few hundred executions per second; the pure function runs at tens of thousands.
 *
 * Checked for every record, until the first refusal (where the pipe dies with FERRY_EPROTO):
 * - the answer is 0 or FERRY_EPROTO and agrees with a separately written model of the format
 *   (kind, size, payload length, flags), and fy_shm_rec_is_plain (the inline test for the common
 *   record) says yes exactly when the check accepts a whole frame without flags;
 * - an accepted frame never exceeds the limit (known bug 4 in docs/hardening.md), a whole record
 *   is exactly its frame, the chunks of a frame add up to exactly its size (no chunk runs past it,
 *   the last one leaves nothing missing) and repeat its size and flags;
 * - mirroring the pipe, each accepted chunk is copied at the offset the state says into a buffer
 *   of exactly the announced size (ASan reports any byte outside), and a completed frame equals
 *   the concatenation of its chunks' payloads.
 *
 * Input: byte 0 picks the frame size limit: 64 B << (b % 16) below 0xf0, for 0xfe the next 8
 * bytes (little endian, 0 = the default), else the pipe's 1 GiB default. Then records, each a
 * 2-byte little-endian word v:
 * - v < 0x8000: a record of v % 3072 bytes taken from the input (fewer if the input ends), the
 *   first 8 being the meta word (flags in the low byte, frame size above) and the rest the
 *   payload, as in the ring (the seeds in fuzz/corpus/shm_records/ use only this form);
 * - 0x8000 <= v < 0xc000: a record whose length lies: the next 8 bytes are the meta word and the
 *   8 after them the record length (any size_t); its payload is not in the input (only checked);
 * - v >= 0xc000: a record built from the model's state, so that runs of chunks that end exactly,
 *   one byte early or late, or change their size by a little are a few bits away instead of an
 *   arithmetic coincidence: flags = v & 0x0f (| 0x10 if v & 0x2000), d = ((v >> 4) & 7) - 3, and
 *   by (v >> 7) & 3: 0 = the open frame's size (else a 2-byte size s from the input) with a
 *   payload of what it misses (or s / 2) + d; 1 = size + d with a payload of what it misses (or
 *   s); 2 = size and payload both 2-byte values from the input; 3 = size limit + d, payload the
 *   same. Payload bytes come from a fixed pattern (none beyond 4 KiB: then only checked).
 */
#include "ferry/ferry.h"
#include "transport/shm_record.h"
#include "wire/zmtp.h"

#include <stdint.h>
#include <stdlib.h>
#include <string.h>

int LLVMFuzzerTestOneInput(const uint8_t *data, size_t size);

#define REQUIRE(c)                                                                                 \
    do {                                                                                           \
        if (!(c))                                                                                  \
            abort();                                                                               \
    } while (0)

#define FZ_DEFAULT_MAX FY_ZMTP_DEFAULT_MAX_MSG /* what the pipe applies when no limit is set */
#define FZ_COPY_MAX    4096u                   /* frames up to this size are really reassembled */

static uint64_t fz_le64(const uint8_t *p, size_t avail)
{
    uint64_t v = 0;
    for (size_t i = 0; i < 8 && i < avail; i++)
        v |= (uint64_t)p[i] << (8 * i);
    return v;
}

/* The next 2 bytes (little endian; 0 past the end). */
static uint64_t fz_le16(const uint8_t *data, size_t size, size_t *off)
{
    uint64_t v = 0;
    if (*off < size)
        v = data[(*off)++];
    if (*off < size)
        v |= (uint64_t)data[(*off)++] << 8;
    return v;
}

static uint8_t fz_pattern[FZ_COPY_MAX];

int LLVMFuzzerInitialize(int *argc, char ***argv);
int LLVMFuzzerInitialize(int *argc, char ***argv)
{
    (void)argc;
    (void)argv;
    for (size_t i = 0; i < sizeof fz_pattern; i++)
        fz_pattern[i] = (uint8_t)(i * 131 + (i >> 8));
    return 0;
}

/* The format as docs/shm.md states it, written apart from shm_record.c: what the answer to the
 * record must be. Returns the expected kind, or -1 for a refusal. */
typedef struct fz_model {
    bool open;
    uint64_t size, got;
    uint32_t fl;
} fz_model;

static int fz_expect(const fz_model *md, uint64_t meta, uint64_t len, uint64_t max)
{
    if (len < 8)
        return -1;
    uint64_t flags = meta & 0xff, size = meta >> 8, payload = len - 8;
    if (flags > 0x0f)
        return -1;
    bool chunk = flags & 0x04, cont = flags & 0x08;
    if (!md->open) {
        if (cont || size > max)
            return -1;
        if (!chunk)
            return size == payload ? FY_SHM_REC_WHOLE : -1;
        return payload < size ? FY_SHM_REC_FIRST : -1;
    }
    if (!cont || size != md->size || (flags & 0x03) != md->fl)
        return -1;
    uint64_t missing = md->size - md->got;
    if (chunk)
        return payload < missing ? FY_SHM_REC_MIDDLE : -1;
    return payload == missing ? FY_SHM_REC_LAST : -1;
}

/* The payloads of the open frame's chunks, appended in arrival order (independently of the
 * state's offsets): what the reassembled frame must equal. */
static uint8_t fz_concat[FZ_COPY_MAX];

int LLVMFuzzerTestOneInput(const uint8_t *data, size_t size)
{
    if (size < 1)
        return 0;
    size_t off = 1;
    uint64_t max = FZ_DEFAULT_MAX;
    if (data[0] < 0xf0) {
        max = (uint64_t)64 << (data[0] % 16);
    } else if (data[0] == 0xfe) {
        max = fz_le64(data + off, size - off);
        off += size - off < 8 ? size - off : 8;
        if (max == 0)
            max = FZ_DEFAULT_MAX;
    }

    fy_shm_rec_asm st = {0};
    fz_model md = {0};
    uint8_t *buf = NULL;     /* the frame being reassembled, when it is small enough */
    bool verifiable = false; /* every chunk of it so far had its payload here */
    size_t concat_len = 0;
    while (off + 2 <= size) {
        unsigned v = (unsigned)data[off] | (unsigned)data[off + 1] << 8;
        off += 2;
        uint64_t meta;
        size_t len;
        const uint8_t *payload = NULL; /* its len - 8 bytes, when they exist here */
        if (v < 0x8000) {
            len = v % 3072;
            if (len > size - off)
                len = size - off;
            meta = fz_le64(data + off, len); /* short records: whatever bytes there are */
            if (len >= FY_SHM_REC_META)
                payload = data + off + FY_SHM_REC_META;
            off += len;
        } else if (v >= 0xc000) {
            uint32_t fl = (v & 0x0f) | ((v & 0x2000) ? 0x10 : 0);
            int64_t d = (int64_t)((v >> 4) & 7) - 3;
            uint64_t missing = md.size - md.got, total, n;
            uint64_t s1 = fz_le16(data, size, &off), s2;
            switch ((v >> 7) & 3) {
            case 0:
                total = md.open ? md.size : s1;
                n = (md.open ? missing : s1 / 2) + (uint64_t)d;
                break;
            case 1:
                total = (md.open ? md.size : s1) + (uint64_t)d;
                n = md.open ? missing : s1;
                break;
            case 2:
                s2 = fz_le16(data, size, &off);
                total = s1;
                n = s2;
                break;
            default:
                total = max + (uint64_t)d;
                n = total;
                break;
            }
            total &= (UINT64_C(1) << 56) - 1; /* what the meta word can say */
            meta = total << 8 | fl;
            len = (size_t)(n + FY_SHM_REC_META); /* n = 2^64 - k wraps to a short record */
            if (len >= FY_SHM_REC_META && len - FY_SHM_REC_META <= sizeof fz_pattern)
                payload = fz_pattern;
        } else {
            meta = fz_le64(data + off, size - off);
            off += size - off < 8 ? size - off : 8;
            len = (size_t)fz_le64(data + off, size - off);
            off += size - off < 8 ? size - off : 8;
        }

        fy_shm_rec r;
        memset(&r, 0xa5, sizeof r);
        int rc = fy_shm_rec_check(&st, meta, len, max, &r);
        int want = fz_expect(&md, meta, len, max);
        REQUIRE(rc == 0 || rc == FERRY_EPROTO);
        /* The inline fast test for the common record agrees with the full check. */
        if (!st.on)
            REQUIRE(fy_shm_rec_is_plain(meta, len, max) ==
                    (rc == 0 && r.kind == FY_SHM_REC_WHOLE && r.flags == 0));
        if (rc < 0) {
            REQUIRE(want < 0);
            break; /* the pipe is dead: nothing after this record is read */
        }
        REQUIRE(want == r.kind);
        REQUIRE(r.n == (uint64_t)len - FY_SHM_REC_META && r.total == meta >> 8);
        REQUIRE(r.flags == (meta & (FY_SHM_REC_MORE | FY_SHM_REC_SUB)));
        REQUIRE(r.total <= max);
        if (r.kind == FY_SHM_REC_WHOLE) {
            REQUIRE(!st.on && r.n == r.total);
        } else if (r.kind == FY_SHM_REC_FIRST) {
            REQUIRE(!st.on && r.n < r.total);
        } else {
            REQUIRE(st.on && r.total == st.total && r.flags == st.flags);
            REQUIRE(st.have <= st.total && r.n <= st.total - st.have);
            REQUIRE(r.kind == FY_SHM_REC_LAST ? st.have + r.n == st.total
                                              : st.have + r.n < st.total);
        }

        /* What sp_next does with the bytes: copy them at the state's offset. */
        if (r.kind == FY_SHM_REC_FIRST) {
            free(buf);
            buf = r.total <= FZ_COPY_MAX ? malloc((size_t)r.total) : NULL;
            verifiable = true;
            concat_len = 0;
        }
        if (r.kind != FY_SHM_REC_WHOLE) {
            uint64_t at = r.kind == FY_SHM_REC_FIRST ? 0 : st.have;
            if (payload) {
                if (buf && r.n)
                    memcpy(buf + at, payload, (size_t)r.n);
                if (verifiable && r.n <= sizeof fz_concat - concat_len) {
                    memcpy(fz_concat + concat_len, payload, (size_t)r.n);
                    concat_len += (size_t)r.n;
                } else {
                    verifiable = false;
                }
            } else {
                verifiable = false;
            }
        }
        if (r.kind == FY_SHM_REC_LAST) {
            if (buf && verifiable)
                REQUIRE(concat_len == r.total && memcmp(buf, fz_concat, concat_len) == 0);
            free(buf);
            buf = NULL;
        }

        uint64_t had = st.have;
        fy_shm_rec_advance(&st, &r);
        switch (r.kind) {
        case FY_SHM_REC_FIRST:
            md = (fz_model){.open = true, .size = r.total, .got = r.n, .fl = r.flags};
            REQUIRE(st.on && st.have == r.n);
            break;
        case FY_SHM_REC_MIDDLE:
            md.got += r.n;
            REQUIRE(st.on && st.have == had + r.n);
            break;
        default: /* whole or last: nothing open afterwards */
            md = (fz_model){0};
            REQUIRE(!st.on);
            break;
        }
        REQUIRE(st.have <= st.total || !st.on);
    }
    free(buf);
    return 0;
}
