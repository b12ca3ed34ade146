/*
 * bench_ring.c - ferry's SPSC byte ring (include/ferry/ring.h) between two pinned processes.
 *
 * The rings live in one sealed memfd segment (ferry_segment_open) created and formatted by the
 * parent before fork, so both children map the same pages. Records are written in place: the
 * producer reserves, fills every byte of the payload inside the ring and commits; the consumer
 * peeks, reads every byte in place and releases. No private buffer, no copy in between.
 *  - rtt: two rings (0->1 and 1->0), every commit and release published at once (no DEFER).
 *  - thr: one ring, commit/release with FERRY_RING_DEFER and one flush / rx_flush every N records
 *    (N = 64 up to 256 B, 8 up to 4 KiB, else 1), and a flush whenever the ring is full/empty.
 * ring:span (thr only) moves the same records through the span calls (one reserve/commit and one
 * peek/release per batch, the records walked inline in between).
 * Three wait policies, three rows: "ring" spins on the ring (wait=spin, the receiver burns its
 * CPU); "ring:poll" waits with ferry_spsc_wait_readable/writable and the default policy (spin 20
 * us, yield 20 us, then futex); "ring:block" uses the same calls with no spin or yield window, so
 * every empty ring means a futex sleep and a wake-up (wait=blocking).
 */
#include "bench.h"

#include "ferry/ring.h"

#include <errno.h>
#include <string.h>
#include <time.h>

enum ring_wait { RING_SPIN, RING_POLL, RING_BLOCK, RING_SPAN };

typedef struct ring_state {
    ferry_segment *seg;
    size_t cap, foot;
} ring_state;

static ring_state g_ring; /* one row at a time; the children inherit it by fork */

static size_t ring_capacity(size_t size)
{
    /* Room for at least four records in flight, never less than 256 KiB so small messages can be
     * batched deeply. */
    size_t want = 4 * (size + 16), cap = 256 * 1024;
    while (cap < want)
        cap <<= 1;
    return cap;
}

static int ring_setup(bench_job *j)
{
    ring_state *st = &g_ring;
    memset(st, 0, sizeof *st);
    st->cap = ring_capacity(j->size);
    st->foot = ferry_spsc_footprint(st->cap);
    if (!st->foot)
        return bench_fail(j, "no ring of capacity %zu", st->cap);
    st->foot = (st->foot + 127) & ~(size_t)127;
    ferry_segment_opts o;
    memset(&o, 0, sizeof o);
    o.size = 2 * st->foot;
    int rc = ferry_segment_open(&st->seg, &o);
    if (rc < 0)
        return bench_fail(j, "ferry_segment_open(%zu bytes): %s", o.size, ferry_strerror(rc));
    char *base = ferry_segment_base(st->seg);
    for (int i = 0; i < 2; i++) {
        rc = ferry_spsc_format(base + (size_t)i * st->foot, st->foot, st->cap);
        if (rc < 0)
            return bench_fail(j, "ferry_spsc_format: %s", ferry_strerror(rc));
    }
    j->state = st;
    return 0;
}

static void ring_teardown(bench_job *j)
{
    ring_state *st = &g_ring;
    ferry_segment_close(st->seg);
    st->seg = NULL;
    j->state = NULL;
}

static void *ring_mem(bench_job *j, int idx)
{
    ring_state *st = j->state;
    return (char *)ferry_segment_base(st->seg) + (size_t)idx * st->foot;
}

static void ring_policy(enum ring_wait w, ferry_wait_policy *pol)
{
    ferry_wait_policy_init(pol);
    if (w == RING_BLOCK)
        pol->spin_ns = pol->yield_ns = 0;
}

/* Gets the next record, waiting by policy. */
static int ring_get(bench_job *j, ferry_spsc_rx *rx, enum ring_wait w, const void **p, size_t *len)
{
    for (;;) {
        int rc = ferry_spsc_peek(rx, p, len);
        if (rc == 0)
            return 0;
        if (rc != FERRY_EAGAIN)
            return bench_fail(j, "ferry_spsc_peek: %s", ferry_strerror(rc));
        if (w == RING_SPIN) {
            ferry_spsc_rx_flush(rx);
            continue;
        }
        rc = ferry_spsc_wait_readable(rx, 20000);
        if (rc < 0 && rc != FERRY_EINTR)
            return bench_fail(j, "ferry_spsc_wait_readable: %s", ferry_strerror(rc));
    }
}

/* Reserves room for a record, waiting by policy. */
static int ring_put(bench_job *j, ferry_spsc_tx *tx, enum ring_wait w, size_t len, void **p)
{
    for (;;) {
        int rc = ferry_spsc_reserve(tx, len, p);
        if (rc == 0)
            return 0;
        if (rc != FERRY_EAGAIN)
            return bench_fail(j, "ferry_spsc_reserve(%zu): %s", len, ferry_strerror(rc));
        if (w == RING_SPIN) {
            ferry_spsc_flush(tx);
            continue;
        }
        rc = ferry_spsc_wait_writable(tx, len, 20000);
        if (rc < 0 && rc != FERRY_EINTR)
            return bench_fail(j, "ferry_spsc_wait_writable: %s", ferry_strerror(rc));
    }
}

static int ring_rtt(bench_job *j, int role, enum ring_wait w, ferry_spsc_tx *tx, ferry_spsc_rx *rx)
{
    bench_ctl *c = j->ctl;
    size_t size = j->size, len;
    const void *in;
    void *out;
    if (role == 1) {
        for (uint64_t r = 1;; r++) {
            if (ring_get(j, rx, w, &in, &len) != 0)
                return -1;
            if (len != size || !bench_check(in, len, r))
                return bench_fail(j, "ping %llu: wrong length %zu or payload",
                                  (unsigned long long)r, len);
            bench_sink += bench_touch(in, len);
            ferry_spsc_release(rx, 0);
            if (ring_put(j, tx, w, size, &out) != 0)
                return -1;
            bench_fill(out, size, r);
            ferry_spsc_commit(tx, size, 0);
            if (r >= atomic_load_explicit(&c->total, memory_order_acquire))
                return 0;
        }
    }
    uint64_t start = bench_now_ns();
    uint64_t warm_end = start + (uint64_t)(j->cfg->warmup * 1e9);
    uint64_t end = warm_end + (uint64_t)(j->cfg->seconds * 1e9);
    uint64_t prev = start;
    for (uint64_t r = 1;; r++) {
        bool last =
            prev >= end && (c->hist.count >= BENCH_MIN_RTT || prev >= end + 4 * (end - warm_end));
        if (last)
            atomic_store_explicit(&c->total, r, memory_order_seq_cst);
        if (ring_put(j, tx, w, size, &out) != 0)
            return -1;
        bench_fill(out, size, r);
        ferry_spsc_commit(tx, size, 0);
        if (ring_get(j, rx, w, &in, &len) != 0)
            return -1;
        if (len != size || !bench_check(in, len, r))
            return bench_fail(j, "pong %llu: wrong length %zu or payload", (unsigned long long)r,
                              len);
        bench_sink += bench_touch(in, len);
        ferry_spsc_release(rx, 0);
        bench_rtt_mark(c, &prev, warm_end);
        if (last)
            break;
    }
    return bench_rtt_done(c, prev, warm_end);
}

/* Spin-mode fast loops: everything inline, the clock read once per 64 Ki records, so the row
 * measures the ring and not the harness. (The wait modes go through ring_put/ring_get.) */
static int ring_thr(bench_job *j, int role, enum ring_wait w, ferry_spsc_tx *tx, ferry_spsc_rx *rx)
{
    bench_ctl *c = j->ctl;
    size_t size = j->size;
    uint64_t bmask = bench_thr_batch_mask(size), mask = bench_thr_tick_mask(size);
    if (role == 0) {
        uint64_t end = bench_now_ns() + (uint64_t)((j->cfg->warmup + j->cfg->seconds) * 1e9);
        for (uint64_t i = 1;; i++) {
            bool last = (i & mask) == 0 && i >= BENCH_MIN_MSGS && bench_now_ns() >= end;
            if (last)
                atomic_store_explicit(&c->total, i, memory_order_seq_cst);
            void *out;
            int rc = ferry_spsc_reserve(tx, size, &out);
            if (__builtin_expect(rc != 0, 0)) {
                if (w == RING_SPIN && rc == FERRY_EAGAIN) {
                    do {
                        ferry_spsc_flush(tx);
                        rc = ferry_spsc_reserve(tx, size, &out);
                    } while (rc == FERRY_EAGAIN);
                    if (rc != 0)
                        return bench_fail(j, "ferry_spsc_reserve(%zu): %s", size,
                                          ferry_strerror(rc));
                } else if (ring_put(j, tx, w, size, &out) != 0) {
                    return -1;
                }
            }
            bench_fill(out, size, i);
            ferry_spsc_commit(tx, size, ((i & bmask) == 0 || last) ? 0 : FERRY_RING_DEFER);
            if (last)
                return 0;
        }
    }
    bench_thr_clock k = {.warm = (uint64_t)(j->cfg->warmup * 1e9), .mask = mask};
    uint64_t sum = 0;
    for (uint64_t i = 1;; i++) {
        const void *in;
        size_t len;
        int rc = ferry_spsc_peek(rx, &in, &len);
        if (__builtin_expect(rc != 0, 0)) {
            if (w == RING_SPIN && rc == FERRY_EAGAIN) {
                ferry_spsc_rx_flush(rx);
                do
                    rc = ferry_spsc_peek(rx, &in, &len);
                while (rc == FERRY_EAGAIN);
                if (rc != 0)
                    return bench_fail(j, "ferry_spsc_peek: %s", ferry_strerror(rc));
            } else if (ring_get(j, rx, w, &in, &len) != 0) {
                return -1;
            }
        }
        if (__builtin_expect(len != size || !bench_check(in, len, i), 0))
            return bench_fail(j, "message %llu: wrong length %zu or payload", (unsigned long long)i,
                              len);
        sum += bench_touch(in, len);
        ferry_spsc_release(rx, (i & bmask) == 0 ? 0 : FERRY_RING_DEFER);
        if ((i & mask) != 0)
            continue;
        uint64_t t1 = bench_thr_tick(&k, c, i);
        if (t1) {
            ferry_spsc_rx_flush(rx);
            bench_sink += sum;
            bench_thr_done(&k, c, i, t1, size);
            return 0;
        }
    }
}

/* The span calls (ferry_spsc_reserve_span / peek_span): the producer puts up to a batch of records
 * (the same N as ring_thr) into one span and commits it with one publish; the consumer walks
 * whatever one peek_span shows and releases it with one publish. Spinning only. */
static int ring_span_thr(bench_job *j, int role, ferry_spsc_tx *tx, ferry_spsc_rx *rx)
{
    bench_ctl *c = j->ctl;
    size_t size = j->size;
    uint64_t batch = bench_thr_batch_mask(size) + 1, mask = bench_thr_tick_mask(size);
    if (role == 0) {
        uint64_t end = bench_now_ns() + (uint64_t)((j->cfg->warmup + j->cfg->seconds) * 1e9);
        for (uint64_t i = 1;;) {
            ferry_spsc_span sp;
            int rc;
            while ((rc = ferry_spsc_reserve_span(tx, size, &sp)) == FERRY_EAGAIN)
                ;
            if (rc != 0)
                return bench_fail(j, "ferry_spsc_reserve_span(%zu): %s", size, ferry_strerror(rc));
            bool last = false;
            for (uint64_t k = 0; k < batch && !last; k++, i++) {
                void *out = ferry_spsc_span_put(&sp, size);
                if (!out)
                    break;
                bench_fill(out, size, i);
                last = (i & mask) == 0 && i >= BENCH_MIN_MSGS && bench_now_ns() >= end;
                if (last)
                    atomic_store_explicit(&c->total, i, memory_order_seq_cst);
            }
            rc = ferry_spsc_commit_span(tx, &sp, 0);
            if (rc != 0)
                return bench_fail(j, "ferry_spsc_commit_span: %s", ferry_strerror(rc));
            if (last)
                return 0;
        }
    }
    bench_thr_clock k = {.warm = (uint64_t)(j->cfg->warmup * 1e9), .mask = mask};
    uint64_t sum = 0;
    for (uint64_t i = 1;;) {
        ferry_spsc_span sp;
        int rc;
        while ((rc = ferry_spsc_peek_span(rx, &sp)) == FERRY_EAGAIN)
            ;
        if (rc != 0)
            return bench_fail(j, "ferry_spsc_peek_span: %s", ferry_strerror(rc));
        const void *in;
        size_t len;
        uint64_t t1 = 0;
        while (!t1 && ferry_spsc_span_next(&sp, &in, &len) == 0) {
            if (__builtin_expect(len != size || !bench_check(in, len, i), 0))
                return bench_fail(j, "message %llu: wrong length %zu or payload",
                                  (unsigned long long)i, len);
            sum += bench_touch(in, len);
            if ((i & mask) == 0)
                t1 = bench_thr_tick(&k, c, i);
            i++;
        }
        rc = ferry_spsc_release_span(rx, &sp, 0);
        if (rc != 0)
            return bench_fail(j, "ferry_spsc_release_span: %s", ferry_strerror(rc));
        if (t1) {
            bench_sink += sum;
            bench_thr_done(&k, c, i - 1, t1, size);
            return 0;
        }
    }
}

static double ring_cpu_ns(void)
{
    struct timespec ts;
    clock_gettime(CLOCK_PROCESS_CPUTIME_ID, &ts);
    return (double)ts.tv_sec * 1e9 + (double)ts.tv_nsec;
}

static int ring_idle(bench_job *j, int role, enum ring_wait w, ferry_spsc_tx *tx, ferry_spsc_rx *rx)
{
    bench_ctl *c = j->ctl;
    size_t size = j->size, len;
    const void *in;
    void *out;
    if (role == 0) {
        if (ring_put(j, tx, w, size, &out) != 0)
            return -1;
        bench_fill(out, size, 1);
        ferry_spsc_commit(tx, size, 0);
        if (bench_await(&c->go, 10.0) < 0)
            return bench_fail(j, "receiver never armed");
        struct timespec ts = {1, 0};
        while (nanosleep(&ts, &ts) != 0 && errno == EINTR)
            ;
        if (ring_put(j, tx, w, size, &out) != 0)
            return -1;
        bench_fill(out, size, 2);
        atomic_store_explicit(&c->stamp, bench_now_ns(), memory_order_seq_cst);
        ferry_spsc_commit(tx, size, 0);
        return 0;
    }
    if (ring_get(j, rx, w, &in, &len) != 0)
        return -1;
    ferry_spsc_release(rx, 0);
    double cpu0 = ring_cpu_ns();
    uint64_t t0 = bench_now_ns();
    atomic_store_explicit(&c->go, 1, memory_order_release);
    if (ring_get(j, rx, w, &in, &len) != 0)
        return -1;
    uint64_t t1 = bench_now_ns();
    double cpu1 = ring_cpu_ns();
    if (len != size || !bench_check(in, len, 2))
        return bench_fail(j, "cold message: wrong length %zu or payload", len);
    bench_sink += bench_touch(in, len);
    ferry_spsc_release(rx, 0);
    uint64_t stamp = atomic_load_explicit(&c->stamp, memory_order_acquire);
    c->res[1].cold_ns = stamp && t1 > stamp ? (double)(t1 - stamp) : 0.0;
    c->res[1].idle_cpu = 100.0 * (cpu1 - cpu0) / (double)(t1 - t0);
    c->res[1].count = 1;
    return 0;
}

static int ring_run(bench_job *j, int role)
{
    enum ring_wait w = (enum ring_wait)(intptr_t)j->tr->priv;
    ring_state *st = j->state;
    ferry_spsc_tx tx;
    ferry_spsc_rx rx;
    ferry_wait_policy pol;
    ring_policy(w, &pol);
    /* Ring 0 carries role 0 -> role 1, ring 1 the way back (rtt only). */
    int rc = 0;
    bool two = j->mode == BENCH_RTT;
    if (role == 0 || two)
        rc = ferry_spsc_tx_init(&tx, ring_mem(j, role), st->foot);
    if (rc == 0 && (role == 1 || two))
        rc = ferry_spsc_rx_init(&rx, ring_mem(j, 1 - role), st->foot);
    if (rc < 0)
        return bench_fail(j, "ring init: %s", ferry_strerror(rc));
    if (role == 0 || two)
        ferry_spsc_tx_set_wait(&tx, &pol);
    if (role == 1 || two)
        ferry_spsc_rx_set_wait(&rx, &pol);
    if (j->mode == BENCH_RTT)
        rc = ring_rtt(j, role, w, &tx, &rx);
    else if (j->mode == BENCH_THR && w == RING_SPAN)
        rc = ring_span_thr(j, role, &tx, &rx);
    else if (j->mode == BENCH_THR)
        rc = ring_thr(j, role, w, &tx, &rx);
    else
        rc = ring_idle(j, role, w, &tx, &rx);
    return rc;
}

#define RING_MODES (BENCH_M(BENCH_RTT) | BENCH_M(BENCH_THR) | BENCH_M(BENCH_IDLE))

const bench_transport bench_tr_ring = {
    .name = "ring",
    .peer = "ferry",
    .wait = "spin",
    .help = "ferry SPSC ring in a memfd segment, reserve/commit + peek/release in place, spinning",
    .modes = RING_MODES,
    .default_on = true,
    .setup = ring_setup,
    .teardown = ring_teardown,
    .run = ring_run,
    .priv = (void *)(intptr_t)RING_SPIN,
};

const bench_transport bench_tr_ring_poll = {
    .name = "ring:poll",
    .peer = "ferry",
    .wait = "poll",
    .help = "the ring with ferry_spsc_wait_*: spin 20 us, yield 20 us, then futex",
    .modes = RING_MODES,
    .default_on = false,
    .setup = ring_setup,
    .teardown = ring_teardown,
    .run = ring_run,
    .priv = (void *)(intptr_t)RING_POLL,
};

const bench_transport bench_tr_ring_block = {
    .name = "ring:block",
    .peer = "ferry",
    .wait = "blocking",
    .help = "the ring with ferry_spsc_wait_* and no spin window: futex sleep and wake",
    .modes = RING_MODES,
    .default_on = true,
    .setup = ring_setup,
    .teardown = ring_teardown,
    .run = ring_run,
    .priv = (void *)(intptr_t)RING_BLOCK,
};

const bench_transport bench_tr_ring_span = {
    .name = "ring:span",
    .peer = "ferry",
    .wait = "spin",
    .help = "the ring through its batch calls: reserve_span/span_put/commit_span, peek_span/"
            "span_next/release_span",
    .modes = BENCH_M(BENCH_THR),
    .default_on = true,
    .setup = ring_setup,
    .teardown = ring_teardown,
    .run = ring_run,
    .priv = (void *)(intptr_t)RING_SPAN,
};
