/*
 * test_ring_eager.c - the SPSC consumer's eager reads (docs/ring.md, "Eager reads"): a consumer
 * whose producer publishes record by record watches the next header slot instead of the
 * producer's index, and goes back to the index when the producer batches. These tests check that
 * it gets there and back, that it never takes a header before the record is whole (a stale header
 * of an earlier lap, a reservation or span still being filled), that the producer accepts a
 * consumer that read committed records it has not published yet, that a hostile header in the
 * slot fails the consumer cleanly, and two threads ping-ponging through two rings (run under
 * TSan in CI, this is the memory-ordering check).
 */
#include "ferry/ring.h"
#include "testutil.h"

#include <pthread.h>
#include <sched.h>
#include <stdlib.h>
#include <string.h>

#define CAP ((size_t)4096)

typedef struct ring {
    void *mem;
    size_t size;
    ferry_spsc_tx tx;
    ferry_spsc_rx rx;
} ring;

/* A ring whose data area was full of plausible record headers before it was formatted: a
 * consumer that ever trusted a slot the producer had not zeroed would take one of them. */
static void ring_open(ring *r, size_t cap)
{
    r->size = ferry_spsc_footprint(cap);
    r->mem = aligned_alloc(128, r->size);
    CHECK(r->mem != NULL);
    uint64_t *w = (uint64_t *)((uint8_t *)r->mem + 384);
    for (size_t i = 0; i < cap / 8; i++)
        w[i] = (uint64_t)(i % 5) * 8 | ((uint64_t)FERRY_SPSC_REC_DATA_ << 32);
    CHECK_OK(ferry_spsc_format(r->mem, r->size, cap));
    CHECK_OK(ferry_spsc_tx_init(&r->tx, r->mem, r->size));
    CHECK_OK(ferry_spsc_rx_init(&r->rx, r->mem, r->size));
}

static void ring_close(ring *r)
{
    free(r->mem);
}

static uint64_t tail_word(const ring *r)
{
    return atomic_load(r->rx.tail_word_);
}

static void put(ring *r, size_t len, uint32_t seq, unsigned flags)
{
    void *p;
    CHECK_OK(ferry_spsc_reserve(&r->tx, len, &p));
    uint8_t *b = p;
    for (size_t i = 0; i < len; i++)
        b[i] = (uint8_t)(seq * 31 + i);
    if (len >= 4)
        memcpy(b, &seq, 4);
    CHECK_OK(ferry_spsc_commit(&r->tx, len, flags));
}

static unsigned eager_takes; /* records taken while the consumer read headers eagerly */

/* Takes the next record and checks it is record seq of length len. */
static void take(ring *r, size_t len, uint32_t seq)
{
    const void *d;
    size_t n;
    eager_takes += r->rx.eager_ != 0;
    CHECK_OK(ferry_spsc_peek(&r->rx, &d, &n));
    CHECK(n == len);
    const uint8_t *b = d;
    for (size_t i = 4; i < len; i++)
        CHECK(b[i] == (uint8_t)(seq * 31 + i));
    if (len >= 4) {
        uint32_t got;
        memcpy(&got, b, 4);
        CHECK(got == seq);
    }
    CHECK_OK(ferry_spsc_release(&r->rx, 0));
}

static void nothing(ring *r)
{
    const void *d;
    size_t n;
    CHECK_RC(ferry_spsc_peek(&r->rx, &d, &n), FERRY_EAGAIN);
}

/* Record by record publishing makes the consumer eager; a batching producer sends it back to the
 * index within FERRY_SPSC_EAGER_CHECK_ records; record by record again makes it eager again. */
static void test_enter_leave(void)
{
    ring r;
    ring_open(&r, CAP);
    uint32_t seq = 0;
    CHECK(r.rx.eager_ == 0);
    for (unsigned i = 0; i < FERRY_SPSC_EAGER_AFTER_; i++) {
        put(&r, 24, seq, 0);
        take(&r, 24, seq++);
        nothing(&r);
    }
    CHECK(r.rx.eager_ != 0);
    /* Eager: a committed record is taken before the producer publishes its index. */
    put(&r, 40, seq, FERRY_RING_DEFER);
    uint64_t published = tail_word(&r);
    take(&r, 40, seq++);
    CHECK(tail_word(&r) == published);
    nothing(&r);
    CHECK_OK(ferry_spsc_flush(&r.tx));
    nothing(&r); /* the index now covers a record already taken: no news */

    /* A producer publishing every 16 records: the consumer leaves at its next look at the index.
     */
    unsigned taken = 0;
    while (r.rx.eager_ != 0) {
        CHECK(taken <= FERRY_SPSC_EAGER_CHECK_);
        for (int k = 0; k < 16; k++)
            put(&r, 8, seq + (uint32_t)k, k == 15 ? 0 : FERRY_RING_DEFER);
        for (int k = 0; k < 16; k++) {
            take(&r, 8, seq++);
            taken++;
        }
    }
    /* Back on the index: deferred records stay unseen until the producer publishes. */
    put(&r, 16, seq, FERRY_RING_DEFER);
    nothing(&r);
    CHECK_OK(ferry_spsc_flush(&r.tx));
    take(&r, 16, seq++);
    /* The index showing one record at a time makes it eager again. */
    for (unsigned i = 0; i < FERRY_SPSC_EAGER_AFTER_; i++) {
        put(&r, 8, seq, 0);
        take(&r, 8, seq++);
    }
    CHECK(r.rx.eager_ != 0);
    ring_close(&r);
}

/* An eager consumer over many laps: every size, padding at the wraps, one to three records in
 * flight, reservations and spans still being filled. It must take exactly what was committed, in
 * order, and see nothing in between. */
static void test_never_early(void)
{
    ring r;
    ring_open(&r, CAP);
    uint32_t seq = 0, next = 0;
    for (unsigned i = 0; i < FERRY_SPSC_EAGER_AFTER_; i++) {
        put(&r, 8, seq++, 0);
        take(&r, 8, next++);
    }
    CHECK(r.rx.eager_ != 0);
    srand(7);
    uint64_t laps_start = r.tx.tail_;
    int spans = 0, pads = 0, opened = 0;
    eager_takes = 0;
    while (r.tx.tail_ - laps_start < 40 * CAP) {
        int kind = rand() % 4;
        size_t len = (size_t)(rand() % 300);
        if (kind == 0) {
            /* A reservation being filled is invisible until commit. */
            void *p;
            uint64_t before = r.tx.tail_;
            CHECK_OK(ferry_spsc_reserve(&r.tx, len, &p));
            if (r.tx.tail_ != before)
                pads++;
            memset(p, 0x5a, len);
            nothing(&r);
            CHECK_OK(ferry_spsc_cancel(&r.tx));
            nothing(&r); /* padding a cancelled reservation left is skipped, nothing else */
            opened++;
            continue;
        }
        if (kind == 1) {
            /* A span: its later headers are written at once, the first one last. */
            ferry_spsc_span s;
            int rc = ferry_spsc_reserve_span(&r.tx, 8, &s);
            CHECK_OK(rc);
            int n = 1 + rand() % 4;
            uint32_t first = seq;
            for (int k = 0; k < n; k++) {
                uint8_t *p = ferry_spsc_span_put(&s, 8);
                if (!p)
                    break;
                memcpy(p, &seq, 4);
                for (int j = 4; j < 8; j++)
                    p[j] = (uint8_t)(seq * 31 + (uint32_t)j);
                seq++;
                nothing(&r);
            }
            CHECK_OK(ferry_spsc_commit_span(&r.tx, &s, 0));
            for (uint32_t k = first; k < seq; k++)
                take(&r, 8, next++);
            nothing(&r);
            spans++;
            continue;
        }
        int burst = kind == 2 ? 1 : 1 + rand() % 3;
        for (int k = 0; k < burst; k++) {
            if (ferry_spsc_reserve(&r.tx, len, &(void *){NULL}) != 0)
                break;
            CHECK_OK(ferry_spsc_cancel(&r.tx));
            put(&r, len, seq++, 0);
        }
        while (next < seq)
            take(&r, len, next++);
        nothing(&r);
    }
    CHECK(spans > 50 && opened > 50 && pads > 5);
    CHECK(r.rx.err_ == 0);
    /* Most records were read eagerly (bursts and spans publish ahead of the record taken, which
     * sends the consumer back to the index for a while). */
    CHECK(eager_takes > next / 2);
    ring_close(&r);
}

/* The producer checks the consumer's head against what it committed, not what it published: an
 * eager consumer may release deferred records before their index is published, and the producer
 * then finds the consumer's head past its own published index when it looks for room. */
static void test_early_head(void)
{
    ring r;
    ring_open(&r, CAP);
    uint32_t seq = 0, next = 0;
    int ahead = 0;
    eager_takes = 0;
    while (seq < 3000) {
        if (atomic_load(r.rx.head_word_) > tail_word(&r))
            ahead++;
        put(&r, 100, seq++, FERRY_RING_DEFER);
        const void *d;
        size_t n;
        /* A consumer back on the index (its look every FERRY_SPSC_EAGER_CHECK_ records saw the
         * index lag) needs the publish; record by record it soon reads headers again. */
        while (ferry_spsc_peek(&r.rx, &d, &n) == FERRY_EAGAIN)
            CHECK_OK(ferry_spsc_flush(&r.tx));
        CHECK_OK(ferry_spsc_unpeek(&r.rx));
        take(&r, 100, next++);
    }
    CHECK(r.tx.err_ == 0 && r.rx.err_ == 0);
    CHECK(eager_takes > 1000);
    CHECK(ahead > 100);
    ring_close(&r);
}

/* The producer's side of the slot is untrusted: a header that breaks the format fails the eager
 * consumer with FERRY_EPROTO, and it stays failed. */
static void test_hostile(void)
{
    for (int lie = 0; lie < 6; lie++) {
        ring r;
        ring_open(&r, CAP);
        uint32_t seq = 0, next = 0;
        /* Park the consumer near the end of the lap so padding lies are possible. */
        while (r.tx.tail_ < CAP - 512) {
            put(&r, 8, seq++, 0);
            take(&r, 8, next++);
        }
        CHECK(r.rx.eager_ != 0);
        uint64_t off = r.rx.head_ & (CAP - 1);
        uint64_t contig = CAP - off;
        uint64_t hdr = 0;
        switch (lie) {
        case 0: /* a record running past the end of the lap */
            hdr = (contig - 8 + 1) | ((uint64_t)FERRY_SPSC_REC_DATA_ << 32);
            break;
        case 1: /* a length no ring holds */
            hdr = UINT32_MAX | ((uint64_t)FERRY_SPSC_REC_DATA_ << 32);
            break;
        case 2: /* an unknown type */
            hdr = 8 | ((uint64_t)7 << 32);
            break;
        case 3: /* padding that stops short of the end */
            hdr = (contig - 16) | ((uint64_t)FERRY_SPSC_REC_PAD_ << 32);
            break;
        case 4: /* padding that runs past the end */
            hdr = contig | ((uint64_t)FERRY_SPSC_REC_PAD_ << 32);
            break;
        case 5: /* good padding, then a record longer than the lap at its start */
            *(uint64_t *)(void *)r.rx.data_ = (CAP - 4) | ((uint64_t)FERRY_SPSC_REC_DATA_ << 32);
            hdr = (contig - 8) | ((uint64_t)FERRY_SPSC_REC_PAD_ << 32);
            break;
        }
        memcpy(r.rx.data_ + off, &hdr, 8);
        const void *d;
        size_t n;
        CHECK_RC(ferry_spsc_peek(&r.rx, &d, &n), FERRY_EPROTO);
        CHECK_RC(ferry_spsc_peek(&r.rx, &d, &n), FERRY_EPROTO);
        CHECK_RC(ferry_spsc_release(&r.rx, 0), FERRY_EPROTO);
        CHECK_RC(ferry_spsc_wait_readable(&r.rx, 0), FERRY_EPROTO);
        ring_close(&r);
    }
}

/* Two threads, two rings, ping-pong with every size from 0 to 300 bytes and a deferred commit
 * now and then: every record arrives whole and in order, and the consumers went eager. */
#if defined(__SANITIZE_THREAD__)
#define PP_ROUNDS 20000 /* TSan runs each access through its runtime: ~50x slower */
#else
#define PP_ROUNDS 100000
#endif

/* A spinning waiter that yields now and then, so a loaded machine (or TSan) still runs the peer.
 */
static void pp_relax(unsigned *spins)
{
    if (++*spins % 256 == 0)
        sched_yield();
}

typedef struct pp {
    ring *in, *out;
    int eager_seen;
} pp;

static void *pp_echo(void *arg)
{
    pp *p = arg;
    for (uint32_t i = 0; i < PP_ROUNDS; i++) {
        const void *d;
        size_t n;
        int rc;
        unsigned spins = 0;
        while ((rc = ferry_spsc_peek(&p->in->rx, &d, &n)) == FERRY_EAGAIN)
            pp_relax(&spins);
        CHECK_OK(rc);
        p->eager_seen += p->in->rx.eager_ != 0;
        CHECK(n == i % 301);
        void *w;
        while ((rc = ferry_spsc_reserve(&p->out->tx, n, &w)) == FERRY_EAGAIN)
            pp_relax(&spins);
        CHECK_OK(rc);
        memcpy(w, d, n);
        CHECK_OK(ferry_spsc_release(&p->in->rx, 0));
        CHECK_OK(ferry_spsc_commit(&p->out->tx, n, 0));
    }
    return NULL;
}

static void test_threads(void)
{
    ring a, b;
    ring_open(&a, 1 << 16);
    ring_open(&b, 1 << 16);
    pp echo = {&a, &b, 0};
    pthread_t th;
    CHECK(pthread_create(&th, NULL, pp_echo, &echo) == 0);
    uint8_t buf[301];
    int eager_seen = 0;
    for (uint32_t i = 0; i < PP_ROUNDS; i++) {
        size_t len = i % 301;
        for (size_t k = 0; k < len; k++)
            buf[k] = (uint8_t)(i * 7 + k);
        /* Every 97th message: deferred, published a moment later (an eager reader may take it
         * before the publish; a reader on the index takes it after). */
        unsigned fl = i % 97 == 0 ? FERRY_RING_DEFER : 0;
        int rc;
        unsigned spins = 0;
        while ((rc = ferry_spsc_write(&a.tx, buf, len, fl)) == FERRY_EAGAIN)
            pp_relax(&spins);
        CHECK_OK(rc);
        if (fl)
            CHECK_OK(ferry_spsc_flush(&a.tx));
        const void *d;
        size_t n;
        while ((rc = ferry_spsc_peek(&b.rx, &d, &n)) == FERRY_EAGAIN)
            pp_relax(&spins);
        CHECK_OK(rc);
        eager_seen += b.rx.eager_ != 0;
        CHECK(n == len);
        CHECK(memcmp(d, buf, len) == 0);
        CHECK_OK(ferry_spsc_release(&b.rx, 0));
    }
    CHECK(pthread_join(th, NULL) == 0);
    CHECK(eager_seen > PP_ROUNDS / 2);
    CHECK(echo.eager_seen > PP_ROUNDS / 2);
    ring_close(&a);
    ring_close(&b);
}

int main(void)
{
    tu_deadline(100);
    test_enter_leave();
    test_never_early();
    test_early_head();
    test_hostile();
    test_threads();
    printf("ring eager: ok\n");
    return 0;
}
