/*
 * test_ring_span.c - the SPSC ring's span calls (reserve_span/span_put/commit_span,
 * peek_span/span_next/release_span): records written through spans read back exactly through
 * spans and through the per-record calls (and the reverse) across many wraps of every record size;
 * the refusals (a span open blocks reserve/peek, a span that is not the open one, a put that does
 * not fit, empty spans); and a lying producer: garbage indices, headers and padding inside a
 * published window end the span and the next peek reports FERRY_EPROTO, with the ring between
 * PROT_NONE guard pages so any out-of-bounds read faults.
 */
#include "ferry/ring.h"
#include "testutil.h"

#include <string.h>
#include <sys/mman.h>
#include <unistd.h>

#define CAP ((uint64_t)8192)

typedef struct ring {
    uint8_t *map, *mem;
    size_t map_len, size;
    _Atomic uint64_t *tail, *head;
    uint8_t *data;
} ring;

/* The ring fills its pages exactly, between two PROT_NONE pages. */
static void ring_new(ring *r)
{
    long pg = sysconf(_SC_PAGESIZE);
    r->size = ferry_spsc_footprint(CAP);
    size_t body = (r->size + (size_t)pg - 1) & ~((size_t)pg - 1);
    r->map_len = body + 2 * (size_t)pg;
    r->map = mmap(NULL, r->map_len, PROT_NONE, MAP_PRIVATE | MAP_ANONYMOUS, -1, 0);
    CHECK(r->map != MAP_FAILED);
    CHECK(mprotect(r->map + pg, body, PROT_READ | PROT_WRITE) == 0);
    /* The data area ends at the upper guard page. */
    r->mem = r->map + pg + body - r->size;
    CHECK(((uintptr_t)r->mem & 127) == 0);
    CHECK_OK(ferry_spsc_format(r->mem, r->size, CAP));
    r->tail = (_Atomic uint64_t *)(r->mem + 128);
    r->head = (_Atomic uint64_t *)(r->mem + 256);
    r->data = r->mem + 384;
}

static void ring_free(ring *r)
{
    munmap(r->map, r->map_len);
}

static uint8_t pat(uint64_t seq, size_t i)
{
    return (uint8_t)(seq * 131 + i * 7 + 1);
}

/* Length of record seq: cycles through 0..300 so records land on every offset and wrap. */
static size_t len_of(uint64_t seq)
{
    return (size_t)((seq * 37) % 301);
}

static void check_payload(const void *d, size_t len, uint64_t seq)
{
    CHECK(len == len_of(seq));
    const uint8_t *p = d;
    for (size_t i = 0; i < len; i++)
        if (p[i] != pat(seq, i)) {
            fprintf(stderr, "record %llu byte %zu wrong\n", (unsigned long long)seq, i);
            CHECK(0);
        }
}

/* Writes records [*seq, *seq + n) (or fewer if the ring is full): spans or single records. */
static uint64_t produce(ferry_spsc_tx *tx, uint64_t *seq, uint64_t n, bool span)
{
    uint64_t done = 0;
    while (done < n) {
        if (!span) {
            void *w;
            int rc = ferry_spsc_reserve(tx, len_of(*seq), &w);
            if (rc == FERRY_EAGAIN)
                break;
            CHECK_OK(rc);
            for (size_t i = 0; i < len_of(*seq); i++)
                ((uint8_t *)w)[i] = pat(*seq, i);
            CHECK_OK(ferry_spsc_commit(tx, len_of(*seq), FERRY_RING_DEFER));
            (*seq)++;
            done++;
            continue;
        }
        ferry_spsc_span sp;
        int rc = ferry_spsc_reserve_span(tx, len_of(*seq), &sp);
        if (rc == FERRY_EAGAIN)
            break;
        CHECK_OK(rc);
        void *w;
        uint64_t in_span = 0;
        while (done < n && (w = ferry_spsc_span_put(&sp, len_of(*seq))) != NULL) {
            for (size_t i = 0; i < len_of(*seq); i++)
                ((uint8_t *)w)[i] = pat(*seq, i);
            (*seq)++;
            done++;
            in_span++;
        }
        CHECK(in_span >= 1); /* reserve_span promised room for the first one */
        CHECK_OK(ferry_spsc_commit_span(tx, &sp, FERRY_RING_DEFER));
    }
    CHECK_OK(ferry_spsc_flush(tx));
    return done;
}

static uint64_t consume(ferry_spsc_rx *rx, uint64_t *seq, bool span)
{
    uint64_t done = 0;
    for (;;) {
        const void *d;
        size_t len;
        if (!span) {
            int rc = ferry_spsc_peek(rx, &d, &len);
            if (rc == FERRY_EAGAIN)
                break;
            CHECK_OK(rc);
            check_payload(d, len, (*seq)++);
            CHECK_OK(ferry_spsc_release(rx, FERRY_RING_DEFER));
            done++;
            continue;
        }
        ferry_spsc_span sp;
        int rc = ferry_spsc_peek_span(rx, &sp);
        if (rc == FERRY_EAGAIN)
            break;
        CHECK_OK(rc);
        uint64_t in_span = 0;
        while (ferry_spsc_span_next(&sp, &d, &len) == 0) {
            check_payload(d, len, (*seq)++);
            in_span++;
            done++;
        }
        CHECK(in_span >= 1);
        CHECK_OK(ferry_spsc_release_span(rx, &sp, FERRY_RING_DEFER));
    }
    CHECK_OK(ferry_spsc_rx_flush(rx));
    return done;
}

/* Every mix of span / single record on each side, many laps, every record checked in order. */
static void test_roundtrip(void)
{
    for (int mode = 0; mode < 4; mode++) {
        ring r;
        ring_new(&r);
        ferry_spsc_tx tx;
        ferry_spsc_rx rx;
        CHECK_OK(ferry_spsc_tx_init(&tx, r.mem, r.size));
        CHECK_OK(ferry_spsc_rx_init(&rx, r.mem, r.size));
        uint64_t wseq = 0, rseq = 0;
        for (int round = 0; round < 400; round++) {
            bool wspan = (mode & 1) ? (round % 3 != 0) : false;
            bool rspan = (mode & 2) ? (round % 5 != 0) : false;
            produce(&tx, &wseq, 1 + (uint64_t)(round * 7) % 40, wspan);
            consume(&rx, &rseq, rspan);
            CHECK(rseq == wseq);
        }
        CHECK(wseq > 4000); /* many laps of an 8 KiB ring */
        ring_free(&r);
    }
}

static void test_refusals(void)
{
    ring r;
    ring_new(&r);
    ferry_spsc_tx tx;
    ferry_spsc_rx rx;
    CHECK_OK(ferry_spsc_tx_init(&tx, r.mem, r.size));
    CHECK_OK(ferry_spsc_rx_init(&rx, r.mem, r.size));
    ferry_spsc_span sp, sp2, rs;
    void *w;
    const void *d;
    size_t len;

    CHECK_RC(ferry_spsc_reserve_span(NULL, 8, &sp), FERRY_EINVAL);
    CHECK_RC(ferry_spsc_reserve_span(&tx, 8, NULL), FERRY_EINVAL);
    CHECK_RC(ferry_spsc_peek_span(NULL, &rs), FERRY_EINVAL);
    CHECK_RC(ferry_spsc_peek_span(&rx, NULL), FERRY_EINVAL);
    CHECK_RC(ferry_spsc_reserve_span(&tx, FERRY_SPSC_MAX_RECORD(CAP) + 1, &sp), FERRY_EMSGSIZE);
    CHECK_RC(ferry_spsc_peek_span(&rx, &rs), FERRY_EAGAIN);

    /* An open span refuses the per-record calls and a second span. */
    CHECK_OK(ferry_spsc_reserve_span(&tx, 8, &sp));
    /* An empty ring: the whole lap but the 8 bytes the producer keeps free for the zeroed header
     * slot after its last record. */
    CHECK(sp.end_ - sp.pos_ == (ptrdiff_t)(CAP - 8));
    CHECK_RC(ferry_spsc_reserve(&tx, 8, &w), FERRY_EBUSY);
    CHECK_RC(ferry_spsc_reserve_span(&tx, 8, &sp2), FERRY_EBUSY);
    /* A put that does not fit writes nothing; huge lengths cannot wrap the size. */
    uint8_t *before = sp.pos_;
    CHECK(ferry_spsc_span_put(&sp, CAP) == NULL);
    CHECK(ferry_spsc_span_put(&sp, SIZE_MAX) == NULL);
    CHECK(ferry_spsc_span_put(&sp, SIZE_MAX - 7) == NULL);
    CHECK(sp.pos_ == before);
    /* The largest record that fits the window exactly. */
    sp2 = sp;
    CHECK(ferry_spsc_span_put(&sp2, CAP - 16) != NULL);
    CHECK(sp2.pos_ == sp2.end_);
    CHECK(ferry_spsc_span_put(&sp2, 0) == NULL);
    /* A span that is not the open one is refused (wrong base, overlong, misaligned). */
    sp2 = sp;
    sp2.base_ += 8;
    CHECK_RC(ferry_spsc_commit_span(&tx, &sp2, 0), FERRY_EINVAL);
    sp2 = sp;
    sp2.pos_ = sp2.base_ + CAP + 8;
    CHECK_RC(ferry_spsc_commit_span(&tx, &sp2, 0), FERRY_EINVAL);
    sp2 = sp;
    sp2.pos_ = sp2.base_ + 4;
    CHECK_RC(ferry_spsc_commit_span(&tx, &sp2, 0), FERRY_EINVAL);
    /* Three records, committed as one. */
    for (int i = 0; i < 3; i++) {
        w = ferry_spsc_span_put(&sp, 5);
        CHECK(w);
        memset(w, 'a' + i, 5);
    }
    CHECK_OK(ferry_spsc_commit_span(&tx, &sp, 0));
    CHECK_RC(ferry_spsc_commit_span(&tx, &sp, 0), FERRY_EINVAL); /* closed */

    /* Consumer: an open span refuses peek and a second span; release checks the span. */
    CHECK_OK(ferry_spsc_peek_span(&rx, &rs));
    CHECK(rs.end_ - rs.pos_ == 3 * 16);
    CHECK_RC(ferry_spsc_peek(&rx, &d, &len), FERRY_EBUSY);
    CHECK_RC(ferry_spsc_peek_span(&rx, &sp2), FERRY_EBUSY);
    CHECK_OK(ferry_spsc_span_next(&rs, &d, &len));
    CHECK(len == 5 && memcmp(d, "aaaaa", 5) == 0);
    sp2 = rs;
    sp2.pos_ += 48; /* past the window */
    CHECK_RC(ferry_spsc_release_span(&rx, &sp2, 0), FERRY_EINVAL);
    sp2 = rs;
    sp2.base_ -= 8;
    CHECK_RC(ferry_spsc_release_span(&rx, &sp2, 0), FERRY_EINVAL);
    /* Copying the span undoes a step. */
    sp2 = rs;
    CHECK_OK(ferry_spsc_span_next(&sp2, &d, &len));
    CHECK(len == 5 && memcmp(d, "bbbbb", 5) == 0);
    CHECK_OK(ferry_spsc_release_span(&rx, &rs, 0));               /* only the first record */
    CHECK_RC(ferry_spsc_release_span(&rx, &rs, 0), FERRY_EINVAL); /* closed */
    CHECK_OK(ferry_spsc_peek(&rx, &d, &len));
    CHECK(len == 5 && memcmp(d, "bbbbb", 5) == 0);
    CHECK_OK(ferry_spsc_release(&rx, 0));
    /* An empty release is an unpeek; unpeek abandons a span too. */
    CHECK_OK(ferry_spsc_peek_span(&rx, &rs));
    CHECK_OK(ferry_spsc_release_span(&rx, &rs, 0));
    CHECK_OK(ferry_spsc_peek_span(&rx, &rs));
    CHECK_OK(ferry_spsc_unpeek(&rx));
    CHECK_OK(ferry_spsc_peek_span(&rx, &rs));
    CHECK_OK(ferry_spsc_span_next(&rs, &d, &len));
    CHECK(len == 5 && memcmp(d, "ccccc", 5) == 0);
    CHECK_RC(ferry_spsc_span_next(&rs, &d, &len), FERRY_EAGAIN);
    CHECK_OK(ferry_spsc_release_span(&rx, &rs, 0));
    CHECK_RC(ferry_spsc_peek_span(&rx, &rs), FERRY_EAGAIN);

    /* The producer's empty span is a cancel; ferry_spsc_cancel abandons one. */
    CHECK_OK(ferry_spsc_reserve_span(&tx, 8, &sp));
    CHECK_OK(ferry_spsc_commit_span(&tx, &sp, 0));
    CHECK_OK(ferry_spsc_reserve_span(&tx, 8, &sp));
    CHECK(ferry_spsc_span_put(&sp, 8));
    CHECK_OK(ferry_spsc_cancel(&tx));
    CHECK_RC(ferry_spsc_commit_span(&tx, &sp, 0), FERRY_EINVAL);
    CHECK_RC(ferry_spsc_peek_span(&rx, &rs), FERRY_EAGAIN);

    /* A full ring: EAGAIN; the window stops at the consumer's published position. */
    uint64_t seq = 0;
    while (ferry_spsc_write(&tx, "0123456789abcdef", 16, 0) == 0)
        seq++;
    CHECK(seq > 0);
    CHECK_RC(ferry_spsc_reserve_span(&tx, 16, &sp), FERRY_EAGAIN);
    CHECK_OK(ferry_spsc_peek(&rx, &d, &len));
    CHECK_OK(ferry_spsc_release(&rx, 0));
    CHECK_OK(ferry_spsc_peek(&rx, &d, &len));
    CHECK_OK(ferry_spsc_release(&rx, 0));
    CHECK_OK(ferry_spsc_reserve_span(&tx, 16, &sp));
    /* The 48 bytes just released and what was left when 24 did not fit: under 72. */
    CHECK(sp.end_ - sp.pos_ < 72 && sp.end_ - sp.pos_ >= 24);
    CHECK_OK(ferry_spsc_commit_span(&tx, &sp, 0));
    ring_free(&r);
}

/* A producer that lies inside the window peek_span showed (or in the index). */
static void test_hostile(void)
{
    for (int lie = 0; lie < 6; lie++) {
        ring r;
        ring_new(&r);
        ferry_spsc_tx tx;
        ferry_spsc_rx rx;
        CHECK_OK(ferry_spsc_tx_init(&tx, r.mem, r.size));
        CHECK_OK(ferry_spsc_rx_init(&rx, r.mem, r.size));
        /* Two good 8-byte records at the end of the lap: offsets CAP-32 and CAP-16. */
        atomic_store(r.tail, 10 * CAP - 32);
        atomic_store(r.head, 10 * CAP - 32);
        CHECK_OK(ferry_spsc_tx_init(&tx, r.mem, r.size));
        CHECK_OK(ferry_spsc_rx_init(&rx, r.mem, r.size));
        CHECK_OK(ferry_spsc_write(&tx, "goodgood", 8, 0));
        CHECK_OK(ferry_spsc_write(&tx, "goodgood", 8, 0));
        uint64_t second = CAP - 16, hdr;
        switch (lie) {
        case 0: /* a length past the published window and the end of the ring */
            hdr = (uint64_t)4096 | ((uint64_t)FERRY_SPSC_REC_DATA_ << 32);
            break;
        case 1: /* the largest length a header can claim */
            hdr = (uint64_t)UINT32_MAX | ((uint64_t)FERRY_SPSC_REC_DATA_ << 32);
            break;
        case 2: /* an unknown type */
            hdr = (uint64_t)8 | ((uint64_t)77 << 32);
            break;
        case 3: /* padding that does not reach the end of the lap */
            hdr = (uint64_t)0 | ((uint64_t)FERRY_SPSC_REC_PAD_ << 32);
            break;
        default: /* 4, 5: the tail index lies once the span is open (below) */
            hdr = (uint64_t)8 | ((uint64_t)FERRY_SPSC_REC_DATA_ << 32);
            break;
        }
        memcpy(r.data + second, &hdr, 8);
        ferry_spsc_span rs;
        const void *d;
        size_t len;
        CHECK_OK(ferry_spsc_peek_span(&rx, &rs));
        CHECK_OK(ferry_spsc_span_next(&rs, &d, &len));
        CHECK(len == 8 && memcmp(d, "goodgood", 8) == 0);
        if (lie == 4) /* a whole ring beyond what was released */
            atomic_store(r.tail, 12 * CAP);
        if (lie == 5) /* misaligned */
            atomic_store(r.tail, 10 * CAP + 4);
        if (lie >= 4) {
            /* The index lie is only seen when the consumer loads the tail again. */
            CHECK_OK(ferry_spsc_span_next(&rs, &d, &len));
            CHECK_OK(ferry_spsc_release_span(&rx, &rs, 0));
            CHECK_RC(ferry_spsc_peek_span(&rx, &rs), FERRY_EPROTO);
        } else {
            CHECK_RC(ferry_spsc_span_next(&rs, &d, &len), FERRY_EAGAIN); /* the lie ends it */
            CHECK_OK(ferry_spsc_release_span(&rx, &rs, 0));
            CHECK_RC(ferry_spsc_peek_span(&rx, &rs), FERRY_EPROTO);
        }
        /* Failed for good. */
        CHECK_RC(ferry_spsc_peek_span(&rx, &rs), FERRY_EPROTO);
        CHECK_RC(ferry_spsc_peek(&rx, &d, &len), FERRY_EPROTO);
        CHECK_RC(ferry_spsc_release_span(&rx, &rs, 0), FERRY_EPROTO);
        ring_free(&r);
    }

    /* A consumer that lies: a head index beyond what was published fails the producer's span. */
    ring r;
    ring_new(&r);
    ferry_spsc_tx tx;
    CHECK_OK(ferry_spsc_tx_init(&tx, r.mem, r.size));
    uint64_t seq = 0;
    while (ferry_spsc_write(&tx, "0123456789abcdef", 16, 0) == 0)
        seq++;
    atomic_store(r.head, 5 * CAP);
    ferry_spsc_span sp;
    CHECK_RC(ferry_spsc_reserve_span(&tx, 16, &sp), FERRY_EPROTO);
    CHECK_RC(ferry_spsc_reserve_span(&tx, 16, &sp), FERRY_EPROTO);
    CHECK_RC(ferry_spsc_commit_span(&tx, &sp, 0), FERRY_EPROTO);
    ring_free(&r);
}

int main(void)
{
    tu_deadline(60);
    test_roundtrip();
    test_refusals();
    test_hostile();
    printf("ok\n");
    return 0;
}
