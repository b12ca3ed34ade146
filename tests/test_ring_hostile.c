/*
 * test_ring_hostile.c - the SPSC ring against a peer that lies. First every validation rule one by
 * one (misaligned, backwards, too far or out-of-window indices; record lengths beyond what was
 * published or beyond the end of the ring; bad padding; unknown types), each giving FERRY_EPROTO
 * that sticks. Then a hostile process scribbling random values into the shared words and the data
 * area while a consumer (and, separately, a producer) keeps running: the ring sits between
 * PROT_NONE guard pages and records are copied into exact-size heap buffers, so any out-of-bounds
 * access faults or trips ASan. The endpoint must report FERRY_EPROTO and never crash.
 */
#include "ferry/ring.h"
#include "testutil.h"

#include <sched.h>
#include <signal.h>
#include <string.h>
#include <sys/mman.h>
#include <sys/prctl.h>
#include <sys/wait.h>
#include <unistd.h>

#define CAP ((uint64_t)8192)

typedef struct ring {
    uint8_t *mem;
    size_t size;
    _Atomic uint64_t *tail, *head;
    uint8_t *data;
} ring;

static void ring_new(ring *r)
{
    r->size = ferry_spsc_footprint(CAP);
    r->mem = aligned_alloc(128, r->size);
    CHECK(r->mem);
    CHECK_OK(ferry_spsc_format(r->mem, r->size, CAP));
    r->tail = (_Atomic uint64_t *)(r->mem + 128);
    r->head = (_Atomic uint64_t *)(r->mem + 256);
    r->data = r->mem + 384;
}

/* Positions an empty ring so the next record starts at data offset `off`. */
static void ring_at(ring *r, uint64_t off)
{
    uint64_t base = 10 * CAP + off;
    atomic_store(r->tail, base);
    atomic_store(r->head, base);
}

static void put_hdr(ring *r, uint64_t off, uint32_t len, uint32_t type)
{
    uint64_t h = (uint64_t)len | ((uint64_t)type << 32);
    memcpy(r->data + off, &h, 8);
}

static void check_rx_failed(ferry_spsc_rx *rx)
{
    const void *d;
    size_t len;
    uint8_t buf[16];
    CHECK_RC(ferry_spsc_peek(rx, &d, &len), FERRY_EPROTO);
    CHECK_RC(ferry_spsc_release(rx, 0), FERRY_EPROTO);
    CHECK_RC(ferry_spsc_read(rx, buf, sizeof buf, 0), FERRY_EPROTO);
    CHECK_RC(ferry_spsc_rx_flush(rx), FERRY_EPROTO);
    CHECK_RC(ferry_spsc_wait_readable(rx, 10), FERRY_EPROTO);
    CHECK_RC(ferry_spsc_rx_arm(rx), FERRY_EPROTO);
}

static void check_tx_failed(ferry_spsc_tx *tx)
{
    void *w;
    CHECK_RC(ferry_spsc_reserve(tx, 8, &w), FERRY_EPROTO);
    CHECK_RC(ferry_spsc_commit(tx, 0, 0), FERRY_EPROTO);
    CHECK_RC(ferry_spsc_flush(tx), FERRY_EPROTO);
    CHECK_RC(ferry_spsc_write(tx, "x", 1, 0), FERRY_EPROTO);
    CHECK_RC(ferry_spsc_wait_writable(tx, 8, 10), FERRY_EPROTO);
}

/* A consumer facing one specific lie: peek must say EPROTO and stay failed. */
static void expect_rx_eproto(ring *r, const char *what)
{
    ferry_spsc_rx rx;
    CHECK_OK(ferry_spsc_rx_init(&rx, r->mem, r->size));
    const void *d;
    size_t len;
    int rc = ferry_spsc_peek(&rx, &d, &len);
    if (rc != FERRY_EPROTO) {
        fprintf(stderr, "case '%s': peek returned %s\n", what, ferry_errname(rc));
        exit(1);
    }
    check_rx_failed(&rx);
}

static void test_consumer_rules(void)
{
    ring r;
    ring_new(&r);

    ring_at(&r, 0);
    atomic_store(r.tail, 10 * CAP + 4);
    expect_rx_eproto(&r, "tail misaligned");

    ring_at(&r, 0);
    atomic_store(r.tail, 10 * CAP + CAP + 8);
    expect_rx_eproto(&r, "tail more than a capacity ahead");

    ring_at(&r, 0);
    atomic_store(r.tail, 10 * CAP - 8);
    expect_rx_eproto(&r, "tail behind head");

    ring_at(&r, 0);
    atomic_store(r.tail, UINT64_MAX - 7);
    expect_rx_eproto(&r, "tail huge");

    ring_at(&r, 0);
    put_hdr(&r, 0, 100, FERRY_SPSC_REC_DATA_);
    atomic_store(r.tail, 10 * CAP + 16);
    expect_rx_eproto(&r, "length beyond published");

    ring_at(&r, 0);
    put_hdr(&r, 0, UINT32_MAX, FERRY_SPSC_REC_DATA_);
    atomic_store(r.tail, 10 * CAP + CAP);
    expect_rx_eproto(&r, "length 4 GiB");

    ring_at(&r, CAP - 16);
    put_hdr(&r, CAP - 16, 100, FERRY_SPSC_REC_DATA_);
    atomic_store(r.tail, 10 * CAP + CAP - 16 + 200);
    expect_rx_eproto(&r, "record crosses the end");

    ring_at(&r, CAP - 64);
    put_hdr(&r, CAP - 64, 48, FERRY_SPSC_REC_PAD_);
    atomic_store(r.tail, 10 * CAP + CAP - 64 + 128);
    expect_rx_eproto(&r, "padding shorter than the rest");

    ring_at(&r, CAP - 64);
    put_hdr(&r, CAP - 64, 64, FERRY_SPSC_REC_PAD_);
    atomic_store(r.tail, 10 * CAP + CAP - 64 + 128);
    expect_rx_eproto(&r, "padding longer than the rest");

    ring_at(&r, CAP - 64);
    put_hdr(&r, CAP - 64, 56, FERRY_SPSC_REC_PAD_);
    atomic_store(r.tail, 10 * CAP + CAP - 64 + 32);
    expect_rx_eproto(&r, "padding beyond published");

    ring_at(&r, 64);
    put_hdr(&r, 64, 8, 3);
    atomic_store(r.tail, 10 * CAP + 64 + 16);
    expect_rx_eproto(&r, "unknown type");

    ring_at(&r, 64);
    put_hdr(&r, 64, 0, 0);
    atomic_store(r.tail, 10 * CAP + 64 + 16);
    expect_rx_eproto(&r, "zero header");

    /* A valid padding record followed by a bad record is still caught. */
    ring_at(&r, CAP - 64);
    put_hdr(&r, CAP - 64, 56, FERRY_SPSC_REC_PAD_);
    put_hdr(&r, 0, 1000, FERRY_SPSC_REC_DATA_);
    atomic_store(r.tail, 10 * CAP + CAP - 64 + 64 + 16);
    expect_rx_eproto(&r, "bad record after padding");

    /* The tail must not move backwards past what the consumer has already seen. */
    CHECK_OK(ferry_spsc_format(r.mem, r.size, CAP));
    ferry_spsc_tx tx;
    ferry_spsc_rx rx;
    CHECK_OK(ferry_spsc_tx_init(&tx, r.mem, r.size));
    CHECK_OK(ferry_spsc_rx_init(&rx, r.mem, r.size));
    uint64_t v = 1;
    CHECK_OK(ferry_spsc_write(&tx, &v, 8, FERRY_RING_DEFER));
    CHECK_OK(ferry_spsc_write(&tx, &v, 8, 0));
    CHECK_RC(ferry_spsc_read(&rx, &v, 8, FERRY_RING_DEFER), 8);
    CHECK_RC(ferry_spsc_read(&rx, &v, 8, FERRY_RING_DEFER), 8);
    atomic_store(r.tail, 16); /* we have seen 32 */
    const void *d;
    size_t len;
    CHECK_RC(ferry_spsc_peek(&rx, &d, &len), FERRY_EPROTO);
    check_rx_failed(&rx);
    free(r.mem);
}

static void test_producer_rules(void)
{
    ring r;
    ring_new(&r);
    static const struct {
        uint64_t head;
        const char *what;
    } cases[] = {
        {4, "head misaligned"},
        {CAP * 3, "head beyond what was published"},
        {UINT64_MAX - 7, "head behind zero"},
    };
    for (size_t i = 0; i < sizeof cases / sizeof cases[0]; i++) {
        CHECK_OK(ferry_spsc_format(r.mem, r.size, CAP));
        ferry_spsc_tx tx;
        CHECK_OK(ferry_spsc_tx_init(&tx, r.mem, r.size));
        atomic_store(r.head, cases[i].head);
        /* The producer looks at head only when its cache says full. */
        int rc;
        uint8_t rec[1000] = {0};
        unsigned n = 0;
        while ((rc = ferry_spsc_write(&tx, rec, sizeof rec, 0)) == 0)
            n++;
        if (rc != FERRY_EPROTO) {
            fprintf(stderr, "case '%s': write returned %s\n", cases[i].what, ferry_errname(rc));
            exit(1);
        }
        CHECK(n == CAP / 1008);
        check_tx_failed(&tx);
    }
    /* head moving backwards after the producer saw it advance. */
    CHECK_OK(ferry_spsc_format(r.mem, r.size, CAP));
    ferry_spsc_tx tx;
    ferry_spsc_rx rx;
    CHECK_OK(ferry_spsc_tx_init(&tx, r.mem, r.size));
    CHECK_OK(ferry_spsc_rx_init(&rx, r.mem, r.size));
    uint8_t rec[1000] = {0};
    while (ferry_spsc_write(&tx, rec, sizeof rec, 0) == 0) {
    }
    CHECK_RC(ferry_spsc_read(&rx, rec, sizeof rec, 0), sizeof rec);
    CHECK_RC(ferry_spsc_read(&rx, rec, sizeof rec, 0), sizeof rec);
    CHECK_OK(ferry_spsc_write(&tx, rec, sizeof rec, 0)); /* refreshed head = 2016 */
    atomic_store(r.head, 1000);
    CHECK_RC(ferry_spsc_write(&tx, rec, sizeof rec, 0), FERRY_EPROTO);
    check_tx_failed(&tx);
    /* wait_writable validates too. */
    CHECK_OK(ferry_spsc_format(r.mem, r.size, CAP));
    CHECK_OK(ferry_spsc_tx_init(&tx, r.mem, r.size));
    while (ferry_spsc_write(&tx, rec, sizeof rec, 0) == 0) {
    }
    atomic_store(r.head, 12);
    CHECK_RC(ferry_spsc_wait_writable(&tx, sizeof rec, 1000), FERRY_EPROTO);
    check_tx_failed(&tx);
    free(r.mem);
}

/* ---- concurrent scribbler ---- */

typedef struct guarded {
    uint8_t *base;
    size_t total, pg;
    uint8_t *mem; /* ring header, 128-aligned, data area ends at the high guard page */
    size_t size;
    _Atomic uint32_t *stop;
} guarded;

static void guarded_new(guarded *g)
{
    g->pg = (size_t)sysconf(_SC_PAGESIZE);
    g->total = 2 * g->pg + CAP + g->pg;
    g->base = mmap(NULL, g->total, PROT_READ | PROT_WRITE, MAP_SHARED | MAP_ANONYMOUS, -1, 0);
    CHECK(g->base != MAP_FAILED);
    g->mem = g->base + 2 * g->pg - 384;
    g->size = ferry_spsc_footprint(CAP);
    g->stop = (_Atomic uint32_t *)(g->base + g->pg);
    CHECK_OK(ferry_spsc_format(g->mem, g->size, CAP));
}

static uint64_t xs(uint64_t *s)
{
    *s ^= *s << 13;
    *s ^= *s >> 7;
    *s ^= *s << 17;
    return *s;
}

/*
 * The hostile peer: writes random garbage and plausible-looking lies into every shared word and the
 * data area until told to stop. side 0 attacks a consumer (tail, records), side 1 a producer
 * (head). It also writes valid-looking records so the victim gets deep into its checks.
 */
static void scribbler(guarded *g, int side, uint64_t seed)
{
    prctl(PR_SET_PDEATHSIG, SIGKILL);
    _Atomic uint64_t *tail = (_Atomic uint64_t *)(g->mem + 128);
    _Atomic uint64_t *head = (_Atomic uint64_t *)(g->mem + 256);
    _Atomic uint32_t *words = (_Atomic uint32_t *)(g->mem + 136); /* readable waitword */
    uint8_t *data = g->mem + 384;
    uint64_t s = seed | 1;
    while (atomic_load_explicit(g->stop, memory_order_relaxed) == 0) {
        uint64_t r = xs(&s);
        uint64_t h = atomic_load_explicit(side ? tail : head, memory_order_relaxed);
        _Atomic uint64_t *victim_word = side ? head : tail;
        switch (r % 10) {
        case 0:
            atomic_store_explicit(victim_word, xs(&s), memory_order_relaxed);
            break;
        case 1:
        case 2:
            atomic_store_explicit(victim_word, h + 8 * (xs(&s) % (CAP / 8 + 4)) - (side ? 64 : 0),
                                  memory_order_relaxed);
            break;
        case 3:
        case 4: {
            uint64_t off = (xs(&s) % (CAP / 8)) * 8;
            uint64_t len = xs(&s) % 4 == 0 ? xs(&s) : xs(&s) % (CAP + 64);
            uint64_t type = xs(&s) % 4;
            uint64_t hdr = (len & 0xffffffffu) | (type << 32);
            memcpy(data + off, &hdr, 8);
            break;
        }
        case 5: {
            /* A plausible record right at the victim's next position. */
            uint64_t off = h & (CAP - 1);
            uint64_t len = xs(&s) % 256;
            uint64_t hdr = len | ((uint64_t)FERRY_SPSC_REC_DATA_ << 32);
            memcpy(data + off, &hdr, 8);
            atomic_store_explicit(tail, h + ((len + 15) & ~7ull), memory_order_relaxed);
            break;
        }
        case 6:
            data[xs(&s) % CAP] = (uint8_t)xs(&s);
            break;
        case 7:
            atomic_store_explicit(&words[xs(&s) % 2], (uint32_t)xs(&s) % 3, memory_order_relaxed);
            atomic_store_explicit(&words[32 + xs(&s) % 2], (uint32_t)xs(&s) % 3,
                                  memory_order_relaxed);
            break;
        default:
            sched_yield();
            break;
        }
    }
    _exit(0);
}

static pid_t start_scribbler(guarded *g, int side, uint64_t seed)
{
    atomic_store(g->stop, 0);
    fflush(stdout); /* the child must not inherit (and later flush) our buffered output */
    pid_t pid = fork();
    CHECK(pid >= 0);
    if (pid == 0)
        scribbler(g, side, seed);
    /* Only this process's view is guarded; the scribbler keeps full access. */
    CHECK(mprotect(g->base, g->pg, PROT_NONE) == 0);
    CHECK(mprotect(g->base + 2 * g->pg + CAP, g->pg, PROT_NONE) == 0);
    return pid;
}

static void stop_scribbler(guarded *g, pid_t pid)
{
    atomic_store(g->stop, 1);
    int st;
    CHECK(waitpid(pid, &st, 0) == pid);
    CHECK(WIFEXITED(st) && WEXITSTATUS(st) == 0);
}

static uint64_t budget_ns(void)
{
    const char *e = getenv("FERRY_HOSTILE_MS");
#if defined(__SANITIZE_ADDRESS__) || defined(__SANITIZE_THREAD__)
    uint64_t ms = e ? strtoull(e, NULL, 10) : 700;
#else
    uint64_t ms = e ? strtoull(e, NULL, 10) : 1500;
#endif
    return ms * 1000000u;
}

static void test_hostile_producer_process(void)
{
    guarded g;
    guarded_new(&g);
    pid_t pid = start_scribbler(&g, 0, tu_now_ns());
    uint8_t *buf = malloc(CAP); /* exact size: a too-long copy is a heap overflow for ASan */
    CHECK(buf);
    uint64_t end = tu_now_ns() + budget_ns();
    unsigned long failures = 0, records = 0, init_fail = 0;
    uint64_t sum = 0;
    while (tu_now_ns() < end || failures < 10) {
        ferry_spsc_rx rx;
        if (ferry_spsc_rx_init(&rx, g.mem, g.size) != 0) {
            init_fail++;
            continue;
        }
        for (unsigned i = 0; i < 100000; i++) {
            const void *d;
            size_t len;
            int rc;
            switch (i % 3) {
            case 0:
                rc = ferry_spsc_peek(&rx, &d, &len);
                if (rc == 0) {
                    const uint8_t *p = d;
                    CHECK(p >= rx.data_ + 8 && (uint64_t)(p - rx.data_) + len <= CAP);
                    for (size_t k = 0; k < len; k++)
                        sum += p[k];
                    rc = ferry_spsc_release(&rx, i & 4 ? FERRY_RING_DEFER : 0);
                }
                break;
            case 1: {
                ssize_t n = ferry_spsc_read(&rx, buf, CAP, 0);
                rc = n < 0 ? (int)n : 0;
                break;
            }
            default:
                rc = ferry_spsc_wait_readable(&rx, 1);
                if (rc == FERRY_ETIMEDOUT)
                    rc = 0;
                break;
            }
            if (rc == 0)
                records++;
            if (rc == FERRY_EPROTO) {
                failures++;
                check_rx_failed(&rx);
                break;
            }
            CHECK(rc == 0 || rc == FERRY_EAGAIN || rc == FERRY_EINTR);
        }
        CHECK(tu_now_ns() < end + 20ull * 1000000000u);
    }
    stop_scribbler(&g, pid);
    printf("hostile producer: %lu EPROTO, %lu records/waits ok, %lu bad headers at init (sum "
           "%llu)\n",
           failures, records, init_fail, (unsigned long long)sum);
    CHECK(failures >= 10);
    free(buf);
    munmap(g.base, g.total);
}

static void test_hostile_consumer_process(void)
{
    guarded g;
    guarded_new(&g);
    pid_t pid = start_scribbler(&g, 1, tu_now_ns() * 3);
    uint8_t rec[600];
    memset(rec, 0x3c, sizeof rec);
    uint64_t end = tu_now_ns() + budget_ns() / 2;
    unsigned long failures = 0, refusals = 0, writes = 0;
    /* Detections: a producer that met the garbage mid-stream (failures, at least one) or an init
     * that refused the scribbled ring. Under CPU contention the scribbler gets few turns; an
     * init refusal yields to it and counts, instead of spinning millions of refused inits. */
    while (tu_now_ns() < end || failures == 0 || failures + refusals < 10) {
        CHECK(tu_now_ns() < end + 20ull * 1000000000u);
        ferry_spsc_tx tx;
        int irc = ferry_spsc_tx_init(&tx, g.mem, g.size);
        if (irc != 0) {
            CHECK(irc == FERRY_EPROTO);
            refusals++;
            sched_yield();
            continue;
        }
        for (unsigned i = 0; i < 100000; i++) {
            size_t n = (i * 37) % sizeof rec;
            void *w;
            int rc = ferry_spsc_reserve(&tx, n, &w);
            if (rc == 0) {
                CHECK((uint8_t *)w >= tx.data_ + 8 && (uint8_t *)w + n <= tx.data_ + CAP);
                memcpy(w, rec, n);
                rc = ferry_spsc_commit(&tx, n, i & 1 ? FERRY_RING_DEFER : 0);
                writes++;
            } else if (rc == FERRY_EAGAIN) {
                rc = ferry_spsc_wait_writable(&tx, n, 1);
                if (rc == FERRY_ETIMEDOUT)
                    rc = 0;
            }
            if (rc == FERRY_EPROTO) {
                failures++;
                check_tx_failed(&tx);
                break;
            }
            CHECK(rc == 0 || rc == FERRY_EAGAIN || rc == FERRY_EINTR);
        }
    }
    stop_scribbler(&g, pid);
    printf("hostile consumer: %lu EPROTO mid-stream, %lu inits refused, %lu records written\n",
           failures, refusals, writes);
    CHECK(failures >= 1 && failures + refusals >= 10);
    munmap(g.base, g.total);
}

int main(void)
{
    tu_deadline(90);
    test_consumer_rules();
    test_producer_rules();
    test_hostile_producer_process();
    test_hostile_consumer_process();
    printf("ring hostile: ok\n");
    return 0;
}
