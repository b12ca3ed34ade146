/*
 * fuzz_shm_records.c - libFuzzer target for the shm pipe's record reader
 * (src/transport/shm_pipe.c): the 8-byte meta word (flags, frame size) in front of every ring
 * record and the reassembly of chunked frames, which a hostile peer controls completely. Each input
 * builds a real link (the hand-over of transport/shm_link.c over a socketpair, both sides in this
 * process, smallest ring), puts a real shm pipe on side 1 and, as side 0, writes the records the
 * input describes into the pipe's incoming ring, receiving after each one. The ring framing itself
 * is the ring's (fuzz_ring covers lying ring words); here the records' contents lie.
 *
 * Checked: no crash or sanitizer report; recv returns only 0, FERRY_EAGAIN or FERRY_EPROTO; every
 * frame delivered has known flags, respects the size limit (known bug 4 in docs/hardening.md,
 * fixed) and, when it came from one whole record, carries exactly that
 * record's bytes and flags; once the pipe reports FERRY_EPROTO it stays dead.
 *
 * Input: byte 0 picks the frame size limit (64 B << 0..15, or the 1 GiB default), then records,
 * each a 2-byte little-endian length (mod 3072: whole records, and long enough to hold chunks)
 * followed by up to that many bytes (the first 8 are the meta word: flags in the low byte, frame
 * size above).
 */
#include "core/msg.h"
#include "core/pipe.h"
#include "ferry/ring.h"
#include "transport/shm.h"

#include <stdint.h>
#include <stdlib.h>
#include <string.h>
#include <sys/socket.h>
#include <unistd.h>

int LLVMFuzzerTestOneInput(const uint8_t *data, size_t size);

#define REQUIRE(c)                                                                                 \
    do {                                                                                           \
        if (!(c))                                                                                  \
            abort();                                                                               \
    } while (0)

/* Record flags, as shm_pipe.c defines them (its private format: keep in step). */
#define REC_MORE  0x01u
#define REC_SUB   0x02u
#define REC_CHUNK 0x04u
#define REC_CONT  0x08u

/* Both sides' hand-over in this process: side 0 creates and passes the segment. */
static void fz_link(fy_shm_link **l0, fy_shm_link **l1, int sv[2])
{
    REQUIRE(socketpair(AF_UNIX, SOCK_STREAM | SOCK_NONBLOCK | SOCK_CLOEXEC, 0, sv) == 0);
    fy_shm_hs hs[2];
    fy_shm_hs_init(&hs[0], 0, 4096);
    fy_shm_hs_init(&hs[1], 1, 0);
    int done[2] = {0, 0};
    for (int round = 0; round < 64 && !(done[0] && done[1]); round++) {
        for (int i = 0; i < 2; i++) {
            if (done[i])
                continue;
            bool want_out;
            int rc = fy_shm_hs_step(&hs[i], sv[i], &want_out);
            REQUIRE(rc >= 0);
            done[i] = rc == 1;
        }
    }
    REQUIRE(done[0] && done[1]);
    *l0 = fy_shm_hs_take(&hs[0]);
    *l1 = fy_shm_hs_take(&hs[1]);
    fy_shm_hs_fini(&hs[0]);
    fy_shm_hs_fini(&hs[1]);
    REQUIRE(*l0 && *l1);
}

int LLVMFuzzerInitialize(int *argc, char ***argv);
int LLVMFuzzerInitialize(int *argc, char ***argv)
{
    (void)argc;
    (void)argv;
    return 0;
}

typedef struct expect {
    bool whole; /* the last record written, if it was a plain whole frame, is what comes next */
    const uint8_t *bytes;
    size_t len;
    uint32_t flags;
} expect;

/* Receives until the ring is empty or the pipe dies; returns false once it is dead. */
static bool fz_drain(fy_pipe *p, uint64_t max_msg, expect *ex, bool *dead)
{
    for (int i = 0; i < 64; i++) {
        fy_msg m;
        fy_msg_init(&m);
        int rc = fy_pipe_recv(p, &m);
        if (*dead) {
            REQUIRE(rc == FERRY_EPROTO);
            return false;
        }
        if (rc == FERRY_EAGAIN)
            return true;
        if (rc == FERRY_EPROTO) {
            REQUIRE(fy_shm_pipe_error(p) == FERRY_EPROTO);
            *dead = true;
            continue; /* the next call must say the same */
        }
        REQUIRE(rc == 0);
        /* Known bug 4 (docs/hardening.md, fixed): whole records used to skip this limit. */
        REQUIRE(fy_msg_size(&m) <= max_msg);
        REQUIRE((m.flags & ~(uint32_t)(FY_MSG_MORE | FY_MSG_SUB)) == 0);
        if (ex->whole) {
            REQUIRE(fy_msg_size(&m) == ex->len);
            REQUIRE(ex->len == 0 || memcmp(fy_msg_cdata(&m), ex->bytes, ex->len) == 0);
            uint32_t want = ((ex->flags & REC_MORE) ? FY_MSG_MORE : 0) |
                            ((ex->flags & REC_SUB) ? FY_MSG_SUB : 0);
            REQUIRE(m.flags == want);
            ex->whole = false;
        }
        fy_msg_fini(&m);
    }
    return true;
}

int LLVMFuzzerTestOneInput(const uint8_t *data, size_t size)
{
    if (size < 1)
        return 0;
    uint64_t max_msg = data[0] < 0xf0 ? (uint64_t)64 << (data[0] % 16) : 0;
    int sv[2];
    fy_shm_link *l0, *l1;
    fz_link(&l0, &l1, sv);
    fy_shm_pipe_cfg cfg = {.sndhwm = 0, .max_msg = max_msg};
    fy_pipe *p;
    REQUIRE(fy_shm_pipe_new(&p, NULL, l1, sv[1], &cfg) == 0);
    if (max_msg == 0)
        max_msg = (uint64_t)1 << 30; /* the default the pipe applies */

    fy_shm_link_view v;
    fy_shm_link_view_get(l0, &v);
    ferry_spsc_tx tx;
    REQUIRE(ferry_spsc_tx_init(&tx, v.ring[0], v.ring_bytes) == 0);

    bool dead = false, assembling = false;
    expect ex = {0};
    size_t off = 1;
    while (off + 2 <= size) {
        size_t len = (size_t)(data[off] | (data[off + 1] << 8)) % 3072;
        off += 2;
        if (len > size - off)
            len = size - off;
        const uint8_t *rec = data + off;
        off += len;
        /* A plain whole frame when no chunked frame is open and the meta word says so. */
        ex.whole = false;
        if (len >= 8 && !assembling) {
            uint64_t meta;
            memcpy(&meta, rec, 8);
            uint32_t fl = (uint32_t)(meta & 0xff);
            if ((fl & ~(REC_MORE | REC_SUB)) == 0 && (meta >> 8) == len - 8 && len - 8 <= max_msg)
                ex = (expect){.whole = true, .bytes = rec + 8, .len = len - 8, .flags = fl};
        }
        if (len >= 8) {
            uint64_t meta;
            memcpy(&meta, rec, 8);
            uint32_t fl = (uint32_t)(meta & 0xff);
            if (!assembling && (fl & REC_CHUNK) && !(fl & REC_CONT))
                assembling = true;
            else if (assembling && !(fl & REC_CHUNK))
                assembling = false;
        }
        int rc = ferry_spsc_write(&tx, rec, len, 0);
        if (rc == FERRY_EAGAIN) {
            /* Full: the reader makes room (it publishes its releases when it runs dry). */
            if (!fz_drain(p, max_msg, &ex, &dead))
                break;
            rc = ferry_spsc_write(&tx, rec, len, 0);
        }
        REQUIRE(rc == 0 || rc == FERRY_EAGAIN || rc == FERRY_EMSGSIZE || rc == FERRY_EPROTO);
        if (rc != 0)
            ex.whole = false;
        if (!fz_drain(p, max_msg, &ex, &dead))
            break;
    }
    fy_shm_pipe_free(p);
    fy_shm_link_free(l0);
    close(sv[0]);
    return 0;
}
