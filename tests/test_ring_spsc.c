/*
 * test_ring_spsc.c - single-threaded unit tests of every SPSC ring call:
 * argument checks, full and empty, EBUSY/EMSGSIZE/EINVAL, deferred publishing
 * on both sides, 0-byte and maximum records, a ring filled to exactly its
 * capacity, and a record wrap at every 8-byte offset of the ring.
 */
#include "ferry/ring.h"
#include "testutil.h"

#include <stdlib.h>
#include <string.h>

#define CAP ((size_t)4096)

static void *ring_mem(size_t cap, size_t *size)
{
    *size = ferry_spsc_footprint(cap);
    CHECK(*size == cap + 384);
    void *mem = aligned_alloc(128, *size);
    CHECK(mem != NULL);
    memset(mem, 0xa5, *size);
    CHECK_OK(ferry_spsc_format(mem, *size, cap));
    return mem;
}

static void fill_pattern(uint8_t *p, size_t len, uint64_t seed)
{
    for (size_t i = 0; i < len; i++)
        p[i] = (uint8_t)(seed * 131 + i * 7 + (i >> 8));
}

static int check_pattern(const uint8_t *p, size_t len, uint64_t seed)
{
    for (size_t i = 0; i < len; i++)
        if (p[i] != (uint8_t)(seed * 131 + i * 7 + (i >> 8)))
            return 0;
    return 1;
}

/* The record handed out by peek must lie entirely inside the data area. */
static void check_in_ring(const ferry_spsc_rx *rx, const void *data, size_t len)
{
    const uint8_t *p = data;
    CHECK(p >= rx->data_ + 8);
    CHECK((uint64_t)(p - rx->data_) + len <= rx->cap_);
}

static void test_footprint_format(void)
{
    CHECK(ferry_spsc_footprint(0) == 0);
    CHECK(ferry_spsc_footprint(2048) == 0);
    CHECK(ferry_spsc_footprint(4095) == 0);
    CHECK(ferry_spsc_footprint(4097) == 0);
    CHECK(ferry_spsc_footprint(6144) == 0);
    CHECK(ferry_spsc_footprint((size_t)1 << 33) == 0);
    CHECK(ferry_spsc_footprint(4096) == 4096 + 384);
    CHECK(ferry_spsc_footprint((size_t)1 << 32) == ((size_t)1 << 32) + 384);

    size_t size = ferry_spsc_footprint(CAP);
    uint8_t *mem = aligned_alloc(128, size + 128);
    CHECK(mem);
    CHECK_RC(ferry_spsc_format(NULL, size, CAP), FERRY_EINVAL);
    CHECK_RC(ferry_spsc_format(mem + 8, size, CAP), FERRY_EINVAL);
    CHECK_RC(ferry_spsc_format(mem, size - 1, CAP), FERRY_EINVAL);
    CHECK_RC(ferry_spsc_format(mem, size, 3000), FERRY_EINVAL);
    CHECK_RC(ferry_spsc_format(mem, size, 0), FERRY_EINVAL);
    CHECK_OK(ferry_spsc_format(mem, size, CAP));
    CHECK_OK(ferry_spsc_format(mem, size + 128, CAP)); /* larger memory is fine */
    free(mem);
}

static void test_init(void)
{
    size_t size;
    uint8_t *mem = ring_mem(CAP, &size);
    ferry_spsc_tx tx;
    ferry_spsc_rx rx;
    CHECK_RC(ferry_spsc_tx_init(NULL, mem, size), FERRY_EINVAL);
    CHECK_RC(ferry_spsc_rx_init(NULL, mem, size), FERRY_EINVAL);
    CHECK_RC(ferry_spsc_tx_init(&tx, NULL, size), FERRY_EINVAL);
    CHECK_RC(ferry_spsc_rx_init(&rx, mem, 100), FERRY_EINVAL);
    /* A header claiming more data than the memory holds is a protocol error. */
    CHECK_RC(ferry_spsc_tx_init(&tx, mem, size - 8), FERRY_EPROTO);
    CHECK_RC(ferry_spsc_rx_init(&rx, mem, size - 8), FERRY_EPROTO);
    /* A failed endpoint stays failed. */
    void *p;
    const void *d;
    size_t len;
    CHECK_RC(ferry_spsc_reserve(&tx, 8, &p), FERRY_EPROTO);
    CHECK_RC(ferry_spsc_flush(&tx), FERRY_EPROTO);
    CHECK_RC(ferry_spsc_peek(&rx, &d, &len), FERRY_EPROTO);
    CHECK_RC(ferry_spsc_wait_readable(&rx, 0), FERRY_EPROTO);
    CHECK_RC(ferry_spsc_wait_writable(&tx, 8, 0), FERRY_EPROTO);

    /* Bad magic, version, capacity. */
    uint64_t saved;
    memcpy(&saved, mem, 8);
    mem[0] ^= 1;
    CHECK_RC(ferry_spsc_rx_init(&rx, mem, size), FERRY_EPROTO);
    memcpy(mem, &saved, 8);
    uint8_t version = mem[8];
    mem[8] = 9;
    CHECK_RC(ferry_spsc_tx_init(&tx, mem, size), FERRY_EPROTO);
    mem[8] = 1; /* the format before eager reads: its producers do not zero the next slot */
    CHECK_RC(ferry_spsc_tx_init(&tx, mem, size), FERRY_EPROTO);
    mem[8] = version;
    uint64_t badcap = 5000;
    memcpy(mem + 16, &badcap, 8);
    CHECK_RC(ferry_spsc_tx_init(&tx, mem, size), FERRY_EPROTO);
    badcap = CAP;
    memcpy(mem + 16, &badcap, 8);
    CHECK_OK(ferry_spsc_tx_init(&tx, mem, size));
    CHECK_OK(ferry_spsc_rx_init(&rx, mem, size));
    free(mem);
}

static void test_basic(void)
{
    size_t size;
    void *mem = ring_mem(CAP, &size);
    ferry_spsc_tx tx;
    ferry_spsc_rx rx;
    CHECK_OK(ferry_spsc_tx_init(&tx, mem, size));
    CHECK_OK(ferry_spsc_rx_init(&rx, mem, size));
    const void *d;
    size_t len;
    uint8_t buf[4096];

    CHECK_RC(ferry_spsc_peek(&rx, &d, &len), FERRY_EAGAIN);
    CHECK_RC(ferry_spsc_read(&rx, buf, sizeof buf, 0), FERRY_EAGAIN);
    CHECK_RC(ferry_spsc_release(&rx, 0), FERRY_EINVAL);
    CHECK_RC(ferry_spsc_commit(&tx, 0, 0), FERRY_EINVAL);
    CHECK_OK(ferry_spsc_flush(&tx)); /* nothing to publish */
    CHECK_OK(ferry_spsc_rx_flush(&rx));

    /* reserve: nothing visible before commit; EBUSY while open; commit may
     * shrink. */
    void *w;
    CHECK_OK(ferry_spsc_reserve(&tx, 100, &w));
    CHECK_RC(ferry_spsc_reserve(&tx, 8, &w), FERRY_EBUSY);
    CHECK_RC(ferry_spsc_wait_writable(&tx, 8, 0), FERRY_EBUSY);
    memcpy(w, "hello", 5);
    CHECK_RC(ferry_spsc_peek(&rx, &d, &len), FERRY_EAGAIN);
    CHECK_RC(ferry_spsc_commit(&tx, 101, 0), FERRY_EINVAL); /* more than reserved */
    CHECK_OK(ferry_spsc_commit(&tx, 5, 0));
    CHECK_RC(ferry_spsc_commit(&tx, 5, 0), FERRY_EINVAL); /* nothing open any more */
    CHECK_OK(ferry_spsc_peek(&rx, &d, &len));
    check_in_ring(&rx, d, len);
    CHECK(len == 5 && memcmp(d, "hello", 5) == 0);
    CHECK_RC(ferry_spsc_peek(&rx, &d, &len), FERRY_EBUSY);
    CHECK_RC(ferry_spsc_read(&rx, buf, sizeof buf, 0), FERRY_EBUSY);
    CHECK_OK(ferry_spsc_release(&rx, 0));
    CHECK_RC(ferry_spsc_release(&rx, 0), FERRY_EINVAL);
    CHECK_RC(ferry_spsc_peek(&rx, &d, &len), FERRY_EAGAIN);

    /* 0-byte records are records. */
    CHECK_OK(ferry_spsc_write(&tx, NULL, 0, 0));
    CHECK_OK(ferry_spsc_write(&tx, "x", 1, 0));
    CHECK_RC(ferry_spsc_read(&rx, buf, 0, 0), 0);
    CHECK_RC(ferry_spsc_read(&rx, buf, 0, 0), FERRY_EMSGSIZE); /* "x" does not fit in 0 */
    CHECK_RC(ferry_spsc_read(&rx, buf, 1, 0), 1);
    CHECK(buf[0] == 'x');

    /* EMSGSIZE: the largest record fits, one more byte does not. */
    size_t max = FERRY_SPSC_MAX_RECORD(CAP);
    CHECK(max == CAP / 2 - 8);
    CHECK_RC(ferry_spsc_reserve(&tx, max + 1, &w), FERRY_EMSGSIZE);
    CHECK_RC(ferry_spsc_reserve(&tx, (size_t)-1, &w), FERRY_EMSGSIZE);
    CHECK_RC(ferry_spsc_write(&tx, buf, max + 1, 0), FERRY_EMSGSIZE);
    CHECK_RC(ferry_spsc_wait_writable(&tx, max + 1, 0), FERRY_EMSGSIZE);
    fill_pattern(buf, max, 77);
    CHECK_OK(ferry_spsc_write(&tx, buf, max, 0));
    memset(buf, 0, sizeof buf);
    CHECK_RC(ferry_spsc_read(&rx, buf, max - 1, 0), FERRY_EMSGSIZE);
    CHECK_OK(ferry_spsc_peek(&rx, &d, &len)); /* still there after EMSGSIZE */
    CHECK(len == max);
    CHECK_OK(ferry_spsc_release(&rx, 0));
    CHECK_OK(ferry_spsc_write(&tx, buf, 0, 0));
    CHECK_RC(ferry_spsc_read(&rx, buf, sizeof buf, 0), 0);

    /* Set wait policy; NULL restores the defaults. */
    ferry_wait_policy pol;
    ferry_wait_policy_init(&pol);
    pol.spin_ns = 5;
    ferry_spsc_tx_set_wait(&tx, &pol);
    CHECK(tx.pol_.spin_ns == 5);
    ferry_spsc_tx_set_wait(&tx, NULL);
    CHECK(tx.pol_.spin_ns == 20000 && tx.pol_.eventfd == -1);
    ferry_spsc_rx_set_wait(&rx, &pol);
    CHECK(rx.pol_.spin_ns == 5);
    ferry_spsc_rx_set_wait(&rx, NULL);
    CHECK(rx.pol_.spin_ns == 20000);
    ferry_spsc_tx_set_wait(NULL, &pol);
    ferry_spsc_rx_set_wait(NULL, &pol);
    free(mem);
}

/* Fill to exactly the usable capacity (the ring less the 8 bytes the producer keeps free for the
 * zeroed header slot after its last record), see EAGAIN, free one record, see room again. */
static void test_full_empty(void)
{
    size_t size;
    void *mem = ring_mem(CAP, &size);
    ferry_spsc_tx tx;
    ferry_spsc_rx rx;
    CHECK_OK(ferry_spsc_tx_init(&tx, mem, size));
    CHECK_OK(ferry_spsc_rx_init(&rx, mem, size));
    uint8_t buf[64];
    /* 56-byte payload + 8-byte header = 64 ring bytes; 63 of them and one 48-byte record (56
     * ring bytes) fill 4096 - 8 exactly. */
    for (unsigned i = 0; i < CAP / 64 - 1; i++) {
        fill_pattern(buf, 56, i);
        CHECK_OK(ferry_spsc_write(&tx, buf, 56, 0));
    }
    void *w;
    CHECK_RC(ferry_spsc_reserve(&tx, 49, &w), FERRY_EAGAIN);
    fill_pattern(buf, 48, 999);
    CHECK_OK(ferry_spsc_write(&tx, buf, 48, 0));
    CHECK_RC(ferry_spsc_reserve(&tx, 0, &w), FERRY_EAGAIN);
    CHECK_RC(ferry_spsc_write(&tx, buf, 1, 0), FERRY_EAGAIN);
    CHECK_RC(ferry_spsc_wait_writable(&tx, 0, 0), FERRY_ETIMEDOUT);
    CHECK_RC(ferry_spsc_wait_writable(&tx, 0, 20), FERRY_ETIMEDOUT);

    /* A deferred release does not give room back until rx_flush. */
    CHECK_RC(ferry_spsc_read(&rx, buf, sizeof buf, FERRY_RING_DEFER), 56);
    CHECK(check_pattern(buf, 56, 0));
    CHECK_RC(ferry_spsc_reserve(&tx, 0, &w), FERRY_EAGAIN);
    CHECK_OK(ferry_spsc_rx_flush(&rx));
    CHECK_OK(ferry_spsc_wait_writable(&tx, 48, 0));
    /* The tail is 8 bytes before the end of the lap: exactly one 8-byte padding record and a
     * 48-byte record (56 ring bytes) fit the 64 freed bytes again; a 49-byte one would not. */
    CHECK_RC(ferry_spsc_reserve(&tx, 49, &w), FERRY_EAGAIN);
    fill_pattern(buf, 48, 1000);
    CHECK_OK(ferry_spsc_write(&tx, buf, 48, 0));
    CHECK_RC(ferry_spsc_reserve(&tx, 0, &w), FERRY_EAGAIN);
    for (unsigned i = 1; i < CAP / 64 - 1; i++) {
        CHECK_RC(ferry_spsc_read(&rx, buf, sizeof buf, 0), 56);
        CHECK(check_pattern(buf, 56, i));
    }
    CHECK_RC(ferry_spsc_read(&rx, buf, sizeof buf, 0), 48);
    CHECK(check_pattern(buf, 48, 999));
    CHECK_RC(ferry_spsc_read(&rx, buf, sizeof buf, 0), 48);
    CHECK(check_pattern(buf, 48, 1000));
    CHECK_RC(ferry_spsc_read(&rx, buf, sizeof buf, 0), FERRY_EAGAIN);
    CHECK_RC(ferry_spsc_wait_readable(&rx, 0), FERRY_ETIMEDOUT);
    CHECK_RC(ferry_spsc_wait_readable(&rx, 20), FERRY_ETIMEDOUT);
    free(mem);
}

/* Deferred commits are invisible until a non-deferred commit or flush publishes
 * them all. */
static void test_defer(void)
{
    size_t size;
    void *mem = ring_mem(CAP, &size);
    ferry_spsc_tx tx;
    ferry_spsc_rx rx;
    CHECK_OK(ferry_spsc_tx_init(&tx, mem, size));
    CHECK_OK(ferry_spsc_rx_init(&rx, mem, size));
    uint64_t v;
    for (v = 0; v < 10; v++)
        CHECK_OK(ferry_spsc_write(&tx, &v, sizeof v, FERRY_RING_DEFER));
    const void *d;
    size_t len;
    CHECK_RC(ferry_spsc_peek(&rx, &d, &len), FERRY_EAGAIN);
    CHECK_OK(ferry_spsc_flush(&tx));
    for (v = 10; v < 15; v++)
        CHECK_OK(ferry_spsc_write(&tx, &v, sizeof v, FERRY_RING_DEFER));
    for (uint64_t i = 0; i < 10; i++) {
        uint64_t got = 99;
        CHECK_RC(ferry_spsc_read(&rx, &got, sizeof got, FERRY_RING_DEFER), 8);
        CHECK(got == i);
    }
    CHECK_RC(ferry_spsc_peek(&rx, &d, &len), FERRY_EAGAIN);
    v = 15;
    CHECK_OK(ferry_spsc_write(&tx, &v, sizeof v, 0)); /* publishes 10..15 */
    for (uint64_t i = 10; i < 16; i++) {
        uint64_t got = 99;
        CHECK_RC(ferry_spsc_read(&rx, &got, sizeof got, 0), 8);
        CHECK(got == i);
    }
    /* The non-deferred release published head for everything before it. */
    CHECK(atomic_load(rx.head_word_) == rx.head_);
    free(mem);
}

/*
 * For every 8-byte offset of a 4096-byte ring, move the tail there with filler
 * records and then write records of several sizes, so that each size crosses
 * the end at each offset (padding record) or ends exactly at it. The indices
 * start just below 2^64 so they also overflow.
 */
static void test_wrap_every_offset(void)
{
    static const size_t sizes[] = {0, 1, 7, 8, 9, 63, 200, 1000, 2040};
    size_t size;
    uint8_t *buf = malloc(CAP);
    CHECK(buf);
    void *mem = ring_mem(CAP, &size);
    static bool wrapped_at[CAP / 8];
    for (size_t si = 0; si < sizeof sizes / sizeof sizes[0]; si++) {
        for (uint64_t off = 0; off < CAP; off += 8) {
            CHECK_OK(ferry_spsc_format(mem, size, CAP));
            uint64_t base = UINT64_MAX - CAP + 1 - 64;
            atomic_store(&((_Atomic uint64_t *)mem)[16], base); /* tail word at 128 */
            atomic_store(&((_Atomic uint64_t *)mem)[32], base); /* head word at 256 */
            ferry_spsc_tx tx;
            ferry_spsc_rx rx;
            CHECK_OK(ferry_spsc_tx_init(&tx, mem, size));
            CHECK_OK(ferry_spsc_rx_init(&rx, mem, size));
            CHECK((tx.tail_ & (CAP - 1)) == CAP - 64);
            /* Fillers: 64 bytes to reach offset 0, then up to two records summing to
             * off. */
            uint64_t fill[3] = {64, off > CAP / 2 ? CAP / 2 : off,
                                off > CAP / 2 ? off - CAP / 2 : 0};
            for (int f = 0; f < 3; f++) {
                if (fill[f] == 0)
                    continue;
                CHECK_OK(ferry_spsc_write(&tx, buf, (size_t)(fill[f] - 8), 0));
                CHECK_RC(ferry_spsc_read(&rx, buf, CAP, 0), (ssize_t)(fill[f] - 8));
            }
            CHECK((tx.tail_ & (CAP - 1)) == off);
            size_t n = sizes[si];
            bool wraps_here = off + FERRY_SPSC_REC_SIZE_(n) > CAP;
            if (wraps_here)
                wrapped_at[off / 8] = true;
            for (uint64_t k = 0; k < 2; k++) {
                fill_pattern(buf, n, off + k);
                CHECK_OK(ferry_spsc_write(&tx, buf, n, 0));
                const void *d;
                size_t len;
                CHECK_OK(ferry_spsc_peek(&rx, &d, &len));
                check_in_ring(&rx, d, len);
                CHECK(len == n);
                CHECK(check_pattern(d, len, off + k));
                if (k == 0 && wraps_here)
                    CHECK(d == rx.data_ + 8); /* the record moved to the start */
                CHECK_OK(ferry_spsc_release(&rx, 0));
            }
            CHECK(rx.head_ == tx.tail_);
            CHECK_RC(ferry_spsc_peek(&rx, &(const void *){NULL}, &(size_t){0}), FERRY_EAGAIN);
        }
    }
    /* Records are at most CAP/2 bytes, so a padding record can start at any
     * offset above CAP/2. */
    for (uint64_t off = CAP / 2 + 8; off < CAP; off += 8)
        CHECK(wrapped_at[off / 8]);
    free(mem);
    free(buf);
}

/* Random sizes, random batching, random interleaving, checked against a model
 * FIFO. */
static void test_random_model(void)
{
    size_t size;
    void *mem = ring_mem(CAP * 4, &size);
    ferry_spsc_tx tx;
    ferry_spsc_rx rx;
    CHECK_OK(ferry_spsc_tx_init(&tx, mem, size));
    CHECK_OK(ferry_spsc_rx_init(&rx, mem, size));
    enum { QN = 8192 };
    static size_t qlen[QN];
    static uint64_t qseed[QN];
    size_t qh = 0, qt = 0;
    uint64_t rng = 88172645463325252ull;
    uint8_t *buf = malloc(CAP * 4);
    CHECK(buf);
    uint64_t written = 0, read = 0;
    for (int step = 0; step < 200000; step++) {
        rng ^= rng << 13;
        rng ^= rng >> 7;
        rng ^= rng << 17;
        unsigned op = rng % 8;
        if (op < 4) {
            size_t n = (rng >> 8) % 3 == 0
                           ? (size_t)((rng >> 16) % (FERRY_SPSC_MAX_RECORD(CAP * 4) + 1))
                           : (size_t)((rng >> 16) % 100);
            unsigned fl = (rng >> 40) & 1 ? FERRY_RING_DEFER : 0;
            void *w;
            int rc = ferry_spsc_reserve(&tx, n, &w);
            if (rc == FERRY_EAGAIN) {
                CHECK_OK(ferry_spsc_flush(&tx));
                continue;
            }
            CHECK_OK(rc);
            CHECK((uint8_t *)w >= tx.data_ + 8 && (uint8_t *)w + n <= tx.data_ + tx.cap_);
            size_t fin = (rng >> 41) % 4 == 0 ? n / 2 : n;
            fill_pattern(w, fin, written);
            CHECK_OK(ferry_spsc_commit(&tx, fin, fl));
            CHECK(qt - qh < QN);
            qlen[qt % QN] = fin;
            qseed[qt % QN] = written;
            qt++;
            written++;
        } else if (op < 7) {
            const void *d;
            size_t len;
            int rc = ferry_spsc_peek(&rx, &d, &len);
            if (rc == FERRY_EAGAIN) {
                CHECK_OK(ferry_spsc_rx_flush(&rx));
                continue;
            }
            CHECK_OK(rc);
            check_in_ring(&rx, d, len);
            CHECK(qh < qt);
            CHECK(len == qlen[qh % QN]);
            CHECK(check_pattern(d, len, qseed[qh % QN]));
            qh++;
            read++;
            CHECK_OK(ferry_spsc_release(&rx, (rng >> 40) & 1 ? FERRY_RING_DEFER : 0));
        } else {
            CHECK_OK(ferry_spsc_flush(&tx));
            CHECK_OK(ferry_spsc_rx_flush(&rx));
        }
    }
    CHECK(written > 10000 && read > 10000);
    free(buf);
    free(mem);
}

/* A new endpoint attached to a ring in use continues from the published
 * indices. */
static void test_reattach(void)
{
    size_t size;
    void *mem = ring_mem(CAP, &size);
    ferry_spsc_tx tx;
    ferry_spsc_rx rx;
    CHECK_OK(ferry_spsc_tx_init(&tx, mem, size));
    CHECK_OK(ferry_spsc_rx_init(&rx, mem, size));
    uint32_t v = 1;
    CHECK_OK(ferry_spsc_write(&tx, &v, 4, 0));
    v = 2;
    CHECK_OK(ferry_spsc_write(&tx, &v, 4, 0));
    CHECK_RC(ferry_spsc_read(&rx, &v, 4, 0), 4);
    CHECK(v == 1);
    ferry_spsc_tx tx2;
    ferry_spsc_rx rx2;
    CHECK_OK(ferry_spsc_tx_init(&tx2, mem, size));
    CHECK_OK(ferry_spsc_rx_init(&rx2, mem, size));
    v = 3;
    CHECK_OK(ferry_spsc_write(&tx2, &v, 4, 0));
    CHECK_RC(ferry_spsc_read(&rx2, &v, 4, 0), 4);
    CHECK(v == 2);
    CHECK_RC(ferry_spsc_read(&rx2, &v, 4, 0), 4);
    CHECK(v == 3);
    free(mem);
}

int main(void)
{
    tu_deadline(60);
    test_footprint_format();
    test_init();
    test_basic();
    test_full_empty();
    test_defer();
    test_wrap_every_offset();
    test_random_model();
    test_reattach();
    printf("ring spsc: ok\n");
    return 0;
}
