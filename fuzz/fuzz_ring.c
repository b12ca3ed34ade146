/*
 * fuzz_ring.c - libFuzzer target for the shared-memory ring readers: the input supplies the shared
 * header words and the data area of an SPSC ring, an MPSC ring or an MPMC queue, exactly what a
 * hostile peer controls, and the harness attaches an endpoint and drains it (then also writes into
 * it, since producers read the consumer's index). Nothing may crash or touch memory outside the
 * ring under ASan/UBSan, and every call must return one of the codes its contract allows (0, a
 * length, FERRY_EAGAIN, FERRY_EPROTO, FERRY_EMSGSIZE); anything else aborts. A peeked SPSC record
 * is sometimes put back (ferry_spsc_unpeek) and must then be peeked again unchanged. Both sides
 * also open spans (peek_span/span_next/release_span, reserve_span/span_put/commit_span), whose
 * windows and records must stay inside the data area.
 *
 * Input format (so that short inputs reach deep states):
 *   byte 0      kind (bits 0-1: 0/3 SPSC, 1 MPSC, 2 MPMC), bit 2: keep the header's shape words
 *               as given (otherwise the harness writes a valid magic/version/size so the fuzzer
 *               spends its time on indices and records), bits 3-5: size choice
 *   byte 1      seed of the operation script (which calls, buffer sizes, flags); for MPMC its
 *               low 7 bits also pick the slot size
 *   bytes 2-385 the 384-byte shared header (shape line, producer line, consumer line)
 *   bytes 386-  data bytes, laid down from the consumer's position onwards (wrapping), the rest of
 *               the data area stays zero, so a wrapped ring needs no more input than its records.
 * The seeds in fuzz/corpus/ring/ are real rings (a few records, wrapped ones, padding records)
 * produced with the library's own writers and dumped in this format.
 */
#include "ferry/ring.h"
#include "ring/multi_layout.h"
#include "ring/spsc_layout.h"

#include <stdint.h>
#include <stdlib.h>
#include <string.h>

#define HDR_BYTES 384u

#define REQUIRE(cond)                                                                              \
    do {                                                                                           \
        if (!(cond))                                                                               \
            __builtin_trap();                                                                      \
    } while (0)

static uint64_t fz_next(uint64_t *s)
{
    uint64_t x = *s;
    x ^= x << 13;
    x ^= x >> 7;
    x ^= x << 17;
    return *s = x;
}

static uint64_t fz_u64(const uint8_t *p)
{
    uint64_t v;
    memcpy(&v, p, 8);
    return v;
}

/*
 * Ring buffers are reused across inputs, one per distinct size (a few dozen at most: the sizes come
 * from a few bits of the input). A fresh posix_memalign + free per input made ASan's quarantine
 * hand out new pages every time, and the page faults and malloc fill cost more than the ring calls
 * did. Each buffer is still exactly `total` bytes, so ASan reports any access past the ring.
 */
#define FZ_CACHE 64
static struct {
    size_t total;
    uint8_t *mem;
} fz_cache[FZ_CACHE];
static unsigned fz_cache_next;

static uint8_t *fz_buffer(size_t total)
{
    for (unsigned i = 0; i < FZ_CACHE; i++)
        if (fz_cache[i].mem && fz_cache[i].total == total)
            return fz_cache[i].mem;
    unsigned slot = fz_cache_next++ % FZ_CACHE;
    free(fz_cache[slot].mem);
    fz_cache[slot].mem = NULL;
    if (posix_memalign((void **)&fz_cache[slot].mem, 128, total) != 0)
        abort();
    fz_cache[slot].total = total;
    return fz_cache[slot].mem;
}

/* Builds the ring image: header bytes from the input, data bytes from `at` onwards, wrapping. */
static void *fz_image(const uint8_t *in, size_t n, size_t total, size_t cap, uint64_t at)
{
    uint8_t *mem = fz_buffer(total);
    memset(mem, 0, total);
    size_t h = n < HDR_BYTES ? n : HDR_BYTES;
    memcpy(mem, in, h);
    if (n > HDR_BYTES && cap) {
        const uint8_t *d = in + HDR_BYTES;
        size_t dn = n - HDR_BYTES;
        if (dn > cap)
            dn = cap;
        uint64_t off = at & (cap - 1) & ~(uint64_t)7;
        for (size_t i = 0; i < dn; i++)
            mem[HDR_BYTES + ((off + i) & (cap - 1))] = d[i];
    }
    return mem;
}

static void fz_spsc(const uint8_t *in, size_t n, uint8_t kind, uint64_t seed)
{
    size_t cap = FERRY_SPSC_MIN_CAPACITY << ((kind >> 3) & 1);
    size_t total = ferry_spsc_footprint(cap);
    uint64_t head = n >= 264 ? fz_u64(in + 256) : 0;
    uint8_t *mem = fz_image(in, n, total, cap, head);
    fy_spsc_shared *sh = (fy_spsc_shared *)mem;
    if (!(kind & 4)) {
        sh->magic = FY_SPSC_MAGIC;
        sh->version = FY_SPSC_VERSION;
        sh->hdr_size = FY_SPSC_HDR_SIZE;
        sh->capacity = cap;
    }
    uint8_t buf[8192];
    ferry_spsc_rx rx;
    int rc = ferry_spsc_rx_init(&rx, mem, total);
    REQUIRE(rc == 0 || rc == FERRY_EPROTO);
    if (rc == 0) {
        for (int i = 0; i < 48; i++) {
            uint64_t r = fz_next(&seed);
            if ((r & 15) == 2) {
                /* A span: walk a few records, release what was walked. */
                ferry_spsc_span s;
                rc = ferry_spsc_peek_span(&rx, &s);
                REQUIRE(rc == 0 || rc == FERRY_EAGAIN || rc == FERRY_EPROTO);
                if (rc == 0) {
                    REQUIRE(s.pos_ == s.base_ && s.base_ >= mem + HDR_BYTES && s.end_ > s.base_ &&
                            s.end_ <= mem + HDR_BYTES + cap);
                    const void *p;
                    size_t len;
                    for (unsigned k = 0; k <= ((r >> 12) & 15); k++) {
                        if (ferry_spsc_span_next(&s, &p, &len) != 0)
                            break;
                        REQUIRE((const uint8_t *)p >= s.base_ &&
                                (const uint8_t *)p + len <= s.pos_ && s.pos_ <= s.end_);
                        memcpy(buf, p, len);
                    }
                    rc = ferry_spsc_release_span(&rx, &s, (r >> 1) & 1 ? FERRY_RING_DEFER : 0);
                    REQUIRE(rc == 0 || rc == FERRY_EPROTO);
                }
            } else if (r & 1) {
                const void *p;
                size_t len;
                rc = ferry_spsc_peek(&rx, &p, &len);
                REQUIRE(rc == 0 || rc == FERRY_EAGAIN || rc == FERRY_EPROTO);
                if (rc == 0) {
                    const uint8_t *b = p;
                    REQUIRE(b >= mem + HDR_BYTES && len <= cap && b + len <= mem + HDR_BYTES + cap);
                    memcpy(buf, p, len);
                    if (((r >> 6) & 3) == 0) {
                        /* Put it back: the next peek must find the very same record (nobody
                         * writes meanwhile), checked again. */
                        REQUIRE(ferry_spsc_unpeek(&rx) == 0);
                        const void *p2;
                        size_t len2;
                        rc = ferry_spsc_peek(&rx, &p2, &len2);
                        REQUIRE(rc == 0 && p2 == p && len2 == len);
                    }
                    rc = ferry_spsc_release(&rx, (r >> 1) & 1 ? FERRY_RING_DEFER : 0);
                    REQUIRE(rc == 0 || rc == FERRY_EPROTO);
                }
                /* Nothing is peeked now: unpeek has nothing to put back. */
                if (((r >> 10) & 7) == 0) {
                    rc = ferry_spsc_unpeek(&rx);
                    REQUIRE(rc == FERRY_EINVAL || (rc == FERRY_EPROTO && rx.err_));
                }
            } else {
                size_t bcap = (r >> 8) % 3 == 0 ? (size_t)((r >> 16) % 64) : sizeof buf;
                ssize_t got = ferry_spsc_read(&rx, buf, bcap, (r >> 1) & 1 ? FERRY_RING_DEFER : 0);
                REQUIRE((got >= 0 && (size_t)got <= bcap) || got == FERRY_EAGAIN ||
                        got == FERRY_EPROTO || got == FERRY_EMSGSIZE);
            }
            if (((r >> 3) & 7) == 0) {
                rc = ferry_spsc_rx_flush(&rx);
                REQUIRE(rc == 0 || rc == FERRY_EPROTO);
            }
            if (rx.err_)
                break;
        }
    }
    /* The producer side reads the consumer's head: attach one and write against it. With the
     * shape words left to the fuzzer the ring may be smaller than `cap`: limits come from the
     * endpoint's validated view. */
    ferry_spsc_tx tx;
    rc = ferry_spsc_tx_init(&tx, mem, total);
    REQUIRE(rc == 0 || rc == FERRY_EPROTO);
    if (rc == 0) {
        memset(buf, 0x5a, sizeof buf);
        for (int i = 0; i < 16 && !tx.err_; i++) {
            uint64_t r = fz_next(&seed);
            size_t len = (size_t)((r >> 8) % (cap / 2 + 16));
            if ((r & 15) == 2) {
                /* A span: a few records of shrinking length, one commit. */
                ferry_spsc_span s;
                rc = ferry_spsc_reserve_span(&tx, len, &s);
                REQUIRE(rc == 0 || rc == FERRY_EAGAIN || rc == FERRY_EPROTO ||
                        (rc == FERRY_EMSGSIZE && len > FERRY_SPSC_MAX_RECORD(tx.cap_)));
                if (rc == 0) {
                    REQUIRE(s.pos_ == s.base_ && s.base_ >= mem + HDR_BYTES && s.end_ > s.base_ &&
                            s.end_ <= mem + HDR_BYTES + cap);
                    unsigned k = 0;
                    void *p;
                    while (k < 4 && (p = ferry_spsc_span_put(&s, len >> k)) != NULL) {
                        REQUIRE((uint8_t *)p + (len >> k) <= s.pos_ && s.pos_ <= s.end_);
                        memset(p, 0x44, len >> k);
                        k++;
                    }
                    REQUIRE(k >= 1); /* reserve_span promised room for one record of len */
                    rc = ferry_spsc_commit_span(&tx, &s, (r >> 1) & 1 ? FERRY_RING_DEFER : 0);
                    REQUIRE(rc == 0 || rc == FERRY_EPROTO);
                }
            } else if (r & 1) {
                rc = ferry_spsc_write(&tx, buf, len, (r >> 1) & 1 ? FERRY_RING_DEFER : 0);
                REQUIRE(rc == 0 || rc == FERRY_EAGAIN || rc == FERRY_EPROTO ||
                        (rc == FERRY_EMSGSIZE && len > FERRY_SPSC_MAX_RECORD(tx.cap_)));
            } else {
                void *p;
                rc = ferry_spsc_reserve(&tx, len, &p);
                REQUIRE(rc == 0 || rc == FERRY_EAGAIN || rc == FERRY_EPROTO ||
                        (rc == FERRY_EMSGSIZE && len > FERRY_SPSC_MAX_RECORD(tx.cap_)));
                if (rc == 0) {
                    REQUIRE((uint8_t *)p >= mem + HDR_BYTES &&
                            (uint8_t *)p + len <= mem + HDR_BYTES + cap);
                    memset(p, 0x33, len);
                    rc = ferry_spsc_commit(&tx, len / 2, 0);
                    REQUIRE(rc == 0 || rc == FERRY_EPROTO);
                }
            }
        }
        rc = ferry_spsc_flush(&tx);
        REQUIRE(rc == 0 || rc == FERRY_EPROTO);
    }
}

static void fz_mpsc(const uint8_t *in, size_t n, uint8_t kind, uint64_t seed)
{
    size_t cap = (size_t)FY_MPSC_MIN_CAPACITY << ((kind >> 3) & 7) % 5; /* 256 .. 4096 */
    size_t total = ferry_mpsc_footprint(cap);
    uint64_t head = n >= 264 ? fz_u64(in + 256) : 0;
    uint8_t *mem = fz_image(in, n, total, cap, head);
    fy_mpsc_hdr *h = (fy_mpsc_hdr *)mem;
    if (!(kind & 4)) {
        atomic_store_explicit(&h->magic, FY_MPSC_MAGIC, memory_order_relaxed);
        atomic_store_explicit(&h->version, FY_MPSC_VERSION, memory_order_relaxed);
        atomic_store_explicit(&h->capacity, cap, memory_order_relaxed);
    }
    uint8_t buf[4096];
    ferry_mpsc r;
    int rc = ferry_mpsc_init(&r, mem, total);
    REQUIRE(rc == 0 || rc == FERRY_EPROTO);
    if (rc == 0) {
        for (int i = 0; i < 64 && !r.err_; i++) {
            uint64_t x = fz_next(&seed);
            if ((x & 7) == 7) {
                size_t len = (size_t)((x >> 8) % (cap / 2 + 16));
                memset(buf, (int)(x >> 32), len < sizeof buf ? len : sizeof buf);
                rc = ferry_mpsc_write(&r, buf, len);
                REQUIRE(rc == 0 || rc == FERRY_EAGAIN || rc == FERRY_EPROTO ||
                        (rc == FERRY_EMSGSIZE && len > FERRY_MPSC_MAX_RECORD(r.cap_)));
            } else if ((x & 7) == 6) {
                uint64_t pos;
                rc = ferry_mpsc_stalled(&r, &pos);
                REQUIRE(rc == 0 || rc == 1 || rc == FERRY_EPROTO);
                /* Timeout 0: one look at the condition, never a sleep. */
                rc = ferry_mpsc_wait_readable(&r, 0);
                REQUIRE(rc == 0 || rc == FERRY_ETIMEDOUT || rc == FERRY_EPROTO);
                size_t len = (size_t)((x >> 8) % (cap / 2 + 16));
                rc = ferry_mpsc_wait_writable(&r, len, 0);
                REQUIRE(rc == 0 || rc == FERRY_ETIMEDOUT || rc == FERRY_EPROTO ||
                        (rc == FERRY_EMSGSIZE && len > FERRY_MPSC_MAX_RECORD(r.cap_)));
            } else {
                size_t bcap = (x >> 8) % 3 == 0 ? (size_t)((x >> 16) % 64) : sizeof buf;
                ssize_t got = ferry_mpsc_read(&r, buf, bcap);
                REQUIRE((got >= 0 && (size_t)got <= bcap) || got == FERRY_EAGAIN ||
                        got == FERRY_EPROTO || got == FERRY_EMSGSIZE);
            }
        }
    }
}

static void fz_mpmc(const uint8_t *in, size_t n, uint8_t kind, uint8_t script, uint64_t seed)
{
    size_t slots = (size_t)2 << ((kind >> 3) & 3);  /* 2 .. 16 */
    size_t slot_size = (size_t)1 + (script & 0x7f); /* 1 .. 128 */
    size_t total = ferry_mpmc_footprint(slots, slot_size);
    uint8_t *mem = fz_image(in, n, total, 0, 0);
    if (n > HDR_BYTES) {
        size_t dn = n - HDR_BYTES;
        if (dn > total - HDR_BYTES)
            dn = total - HDR_BYTES;
        memcpy(mem + HDR_BYTES, in + HDR_BYTES, dn);
    }
    fy_mpmc_hdr *h = (fy_mpmc_hdr *)mem;
    if (!(kind & 4)) {
        atomic_store_explicit(&h->magic, FY_MPMC_MAGIC, memory_order_relaxed);
        atomic_store_explicit(&h->version, FY_MPMC_VERSION, memory_order_relaxed);
        atomic_store_explicit(&h->slots, slots, memory_order_relaxed);
        atomic_store_explicit(&h->slot_size, slot_size, memory_order_relaxed);
    }
    uint8_t buf[256];
    ferry_mpmc q;
    int rc = ferry_mpmc_init(&q, mem, total);
    REQUIRE(rc == 0 || rc == FERRY_EPROTO);
    if (rc == 0) {
        for (int i = 0; i < 48 && !q.err_; i++) {
            uint64_t x = fz_next(&seed);
            if ((x & 3) == 3) {
                size_t len = (size_t)((x >> 8) % (q.slot_size_ + 2));
                if (len > sizeof buf) /* a fuzzed shape can have slots larger than buf */
                    len = sizeof buf;
                rc = ferry_mpmc_push(&q, buf, len);
                REQUIRE(rc == 0 || rc == FERRY_EAGAIN || rc == FERRY_EPROTO ||
                        (rc == FERRY_EMSGSIZE && len > q.slot_size_));
            } else if ((x & 3) == 2) {
                uint64_t pos;
                rc = ferry_mpmc_stalled(&q, &pos);
                REQUIRE(rc == 0 || rc == 1 || rc == FERRY_EPROTO);
                rc = ferry_mpmc_wait_readable(&q, 0);
                REQUIRE(rc == 0 || rc == FERRY_ETIMEDOUT || rc == FERRY_EPROTO);
                rc = ferry_mpmc_wait_writable(&q, 0);
                REQUIRE(rc == 0 || rc == FERRY_ETIMEDOUT || rc == FERRY_EPROTO);
            } else {
                size_t bcap = (x >> 8) % 3 == 0 ? (size_t)((x >> 16) % 16) : sizeof buf;
                ssize_t got = ferry_mpmc_pop(&q, buf, bcap);
                REQUIRE((got >= 0 && (size_t)got <= bcap) || got == FERRY_EAGAIN ||
                        got == FERRY_EPROTO || (got == FERRY_EMSGSIZE && bcap < q.slot_size_));
            }
        }
    }
}

int LLVMFuzzerTestOneInput(const uint8_t *data, size_t size);

int LLVMFuzzerTestOneInput(const uint8_t *data, size_t size)
{
    if (size < 2)
        return 0;
    uint8_t kind = data[0];
    uint64_t seed = ((uint64_t)data[1] << 32) ^ UINT64_C(0x9e3779b97f4a7c15);
    const uint8_t *in = data + 2;
    size_t n = size - 2;
    switch (kind & 3) {
    case 1:
        fz_mpsc(in, n, kind, seed);
        break;
    case 2:
        fz_mpmc(in, n, kind, data[1], seed);
        break;
    default:
        fz_spsc(in, n, kind, seed);
        break;
    }
    return 0;
}
