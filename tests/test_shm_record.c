/*
 * test_shm_record.c - the shm pipe's record check (src/transport/shm_record.c) case by case: each
 * way a peer's record can be refused, and the edges that must still pass (a whole frame exactly at
 * the size limit, an empty frame, a chunk run that ends exactly). fuzz_shm_records explores the
 * same function at random; this pins the named cases in every CI run, including known bug 4 (a
 * whole record over the limit, docs/hardening.md), and fy_shm_rec_is_plain, the inline test for
 * the common record.
 */
#include "ferry/ferry.h"
#include "testutil.h"
#include "transport/shm_record.h"

#include <stdint.h>

#define MORE  FY_SHM_REC_MORE
#define SUB   FY_SHM_REC_SUB
#define CHUNK FY_SHM_REC_CHUNK
#define CONT  FY_SHM_REC_CONT

static uint64_t meta(uint32_t flags, uint64_t total)
{
    return total << 8 | flags;
}

/* Checks one record of payload n (meta word excluded) against st and returns the answer. */
static int check(const fy_shm_rec_asm *st, uint32_t flags, uint64_t total, uint64_t n, uint64_t max,
                 fy_shm_rec *r)
{
    return fy_shm_rec_check(st, meta(flags, total), (size_t)(n + FY_SHM_REC_META), max, r);
}

static void test_whole(void)
{
    fy_shm_rec_asm st = {0};
    fy_shm_rec r;
    /* Accepted: sizes up to and at the limit, empty frames, MORE and SUB carried over. */
    CHECK_OK(check(&st, 0, 0, 0, 64, &r));
    CHECK(r.kind == FY_SHM_REC_WHOLE && r.n == 0 && r.total == 0 && r.flags == 0);
    CHECK_OK(check(&st, MORE | SUB, 64, 64, 64, &r));
    CHECK(r.kind == FY_SHM_REC_WHOLE && r.n == 64 && r.flags == (MORE | SUB));
    fy_shm_rec_advance(&st, &r);
    CHECK(!st.on);
    /* Known bug 4: one byte over the limit is refused although size and length agree. */
    CHECK_RC(check(&st, 0, 65, 65, 64, &r), FERRY_EPROTO);
    CHECK_RC(check(&st, 0, 100, 100, 64, &r), FERRY_EPROTO);
    /* Size and length disagree, either way. */
    CHECK_RC(check(&st, 0, 9, 4, 64, &r), FERRY_EPROTO);
    CHECK_RC(check(&st, 0, 3, 4, 64, &r), FERRY_EPROTO);
    /* Unknown flag bits, each of them. */
    for (uint32_t bit = 0x10; bit <= 0x80; bit <<= 1)
        CHECK_RC(check(&st, bit, 4, 4, 64, &r), FERRY_EPROTO);
    /* Shorter than the meta word (the caller reads no meta word then: any value). */
    for (size_t len = 0; len < FY_SHM_REC_META; len++) {
        CHECK_RC(fy_shm_rec_check(&st, 0, len, 64, &r), FERRY_EPROTO);
        CHECK_RC(fy_shm_rec_check(&st, meta(0, len), len, 64, &r), FERRY_EPROTO);
    }
    /* Lengths near the top of size_t: n = len - 8 must not wrap into agreement. */
    CHECK_RC(fy_shm_rec_check(&st, meta(0, (UINT64_C(1) << 56) - 1), SIZE_MAX, UINT64_MAX, &r),
             FERRY_EPROTO);
    /* A continuation with nothing open. */
    CHECK_RC(check(&st, CONT, 10, 10, 64, &r), FERRY_EPROTO);
    CHECK_RC(check(&st, CONT | CHUNK, 10, 4, 64, &r), FERRY_EPROTO);
}

static void test_chunks(void)
{
    fy_shm_rec_asm st = {0};
    fy_shm_rec r;
    /* First chunk: must be smaller than its frame, the frame within the limit. */
    CHECK_RC(check(&st, CHUNK, 10, 10, 64, &r), FERRY_EPROTO);
    CHECK_RC(check(&st, CHUNK, 10, 11, 64, &r), FERRY_EPROTO);
    CHECK_RC(check(&st, CHUNK, 65, 10, 64, &r), FERRY_EPROTO);
    CHECK_RC(check(&st, CHUNK, UINT64_C(1) << 40, 10, 64, &r), FERRY_EPROTO);
    CHECK_OK(check(&st, CHUNK | MORE, 64, 10, 64, &r));
    CHECK(r.kind == FY_SHM_REC_FIRST && r.total == 64 && r.n == 10 && r.flags == MORE);
    fy_shm_rec_advance(&st, &r);
    CHECK(st.on && st.total == 64 && st.have == 10 && st.flags == MORE);

    /* While it is open: no new frame, the same size and flags, no more than is missing. */
    CHECK_RC(check(&st, MORE, 4, 4, 64, &r), FERRY_EPROTO);           /* a whole frame */
    CHECK_RC(check(&st, CHUNK | MORE, 64, 10, 64, &r), FERRY_EPROTO); /* a new first chunk */
    CHECK_RC(check(&st, CONT | CHUNK | MORE, 63, 10, 64, &r), FERRY_EPROTO);
    CHECK_RC(check(&st, CONT | CHUNK | MORE, 65, 10, 64, &r), FERRY_EPROTO);
    CHECK_RC(check(&st, CONT | CHUNK, 64, 10, 64, &r), FERRY_EPROTO); /* MORE dropped */
    CHECK_RC(check(&st, CONT | CHUNK | MORE | SUB, 64, 10, 64, &r), FERRY_EPROTO);
    CHECK_RC(check(&st, CONT | CHUNK | MORE, 64, 55, 64, &r), FERRY_EPROTO); /* past the end */
    CHECK_RC(check(&st, CONT | CHUNK | MORE, 64, 54, 64, &r), FERRY_EPROTO); /* ends, says more */
    CHECK_RC(check(&st, CONT | MORE, 64, 53, 64, &r), FERRY_EPROTO);         /* last, 1 short */
    CHECK_RC(check(&st, CONT | MORE, 64, 55, 64, &r), FERRY_EPROTO);         /* last, 1 over */

    /* A middle chunk leaving one byte, then the last byte. */
    CHECK_OK(check(&st, CONT | CHUNK | MORE, 64, 53, 64, &r));
    CHECK(r.kind == FY_SHM_REC_MIDDLE && r.n == 53);
    fy_shm_rec_advance(&st, &r);
    CHECK(st.on && st.have == 63);
    /* An empty middle chunk is well-formed (it costs the peer ring space like any record). */
    CHECK_OK(check(&st, CONT | CHUNK | MORE, 64, 0, 64, &r));
    CHECK(r.kind == FY_SHM_REC_MIDDLE && r.n == 0);
    fy_shm_rec_advance(&st, &r);
    CHECK(st.on && st.have == 63);
    CHECK_OK(check(&st, CONT | MORE, 64, 1, 64, &r));
    CHECK(r.kind == FY_SHM_REC_LAST && r.n == 1 && r.flags == MORE);
    fy_shm_rec_advance(&st, &r);
    CHECK(!st.on);
    /* Closed again: a continuation is refused, a whole frame passes. */
    CHECK_RC(check(&st, CONT, 64, 1, 64, &r), FERRY_EPROTO);
    CHECK_OK(check(&st, 0, 5, 5, 64, &r));
}

/* The inline test for the common record says yes exactly for plain whole frames. */
static void test_plain(void)
{
    CHECK(fy_shm_rec_is_plain(meta(0, 0), 8, 64));
    CHECK(fy_shm_rec_is_plain(meta(0, 64), 72, 64));
    CHECK(!fy_shm_rec_is_plain(meta(0, 65), 73, 64)); /* over the limit */
    CHECK(!fy_shm_rec_is_plain(meta(MORE, 4), 12, 64));
    CHECK(!fy_shm_rec_is_plain(meta(SUB, 4), 12, 64));
    CHECK(!fy_shm_rec_is_plain(meta(CHUNK, 40), 12, 64));
    CHECK(!fy_shm_rec_is_plain(meta(0, 5), 12, 64));
    for (size_t len = 0; len < FY_SHM_REC_META; len++)
        CHECK(!fy_shm_rec_is_plain(0, len, 64));
    /* A length above 2^56 whose low bits equal the meta word's size: "meta == n << 8" would
     * say yes (the shift drops n's top bits); the frame's size is 5, the record's payload is not.
     */
    size_t huge = (size_t)((UINT64_C(1) << 56) + 5 + FY_SHM_REC_META);
    CHECK(!fy_shm_rec_is_plain(meta(0, 5), huge, UINT64_MAX));
    fy_shm_rec_asm st = {0};
    fy_shm_rec r;
    CHECK_RC(fy_shm_rec_check(&st, meta(0, 5), huge, UINT64_MAX, &r), FERRY_EPROTO);
}

int main(void)
{
    test_whole();
    test_chunks();
    test_plain();
    printf("test_shm_record: ok\n");
    return 0;
}
