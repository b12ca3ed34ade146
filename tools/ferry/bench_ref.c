/*
 * bench_ref.c - "ring:ref", the simplest correct shared-memory byte ring, as a yardstick.
 *
 * The floor says what one cache line costs; it does not say what any ring must pay on top (a
 * record and an index are at least two lines). This row answers that: a hand-rolled single-producer
 * single-consumer ring of the textbook kind, measured by the same loops and payload discipline as
 * the `ring` row (producer writes every byte in place, consumer reads every byte in place,
 * publish every 64 records at 64 B in thr mode, every record in rtt mode), but with nothing else:
 *  - the write and read indices are the only shared words (each on its own 128-byte pair of lines,
 *    each side caching the other's);
 *  - a record is an 8-byte length plus the payload rounded up to 8; it may run past the end of the
 *    ring into a slack area as large as the largest record, so there is no wrap record;
 *  - no validation of what the peer wrote, no waiting (spin only), no batching API, no reservation
 *    state, no error paths.
 * It is what "hand-rolled shared memory" gets on this machine; `ring` / `ring:ref` is the price of
 * ferry's bounds checks, wrap handling and wait support. Rings are trusted here (the bench wrote
 * them), which is exactly why ferry's ring cannot be written like this.
 */
#include "bench.h"

#include <string.h>
#include <sys/mman.h>

typedef struct ref_ring {
    _Alignas(128) _Atomic uint64_t widx; /* producer: bytes written (published) */
    uint8_t pad0_[120];
    _Alignas(128) _Atomic uint64_t ridx; /* consumer: bytes consumed (published) */
    uint8_t pad1_[120];
    _Alignas(128) uint8_t data[]; /* cap bytes + slack for the record that crosses the end */
} ref_ring;

typedef struct ref_state {
    uint8_t *mem;
    size_t cap, slack, one, len;
} ref_state;

static ref_state g_ref; /* one row at a time; the children inherit the mapping by fork */

static size_t ref_rec(size_t size)
{
    return 8 + ((size + 7) & ~(size_t)7);
}

static int ref_setup(bench_job *j)
{
    ref_state *st = &g_ref;
    memset(st, 0, sizeof *st);
    /* The same capacity rule as the `ring` row: >= 256 KiB and >= four records. */
    size_t want = 4 * (j->size + 16);
    st->cap = 256 * 1024;
    while (st->cap < want)
        st->cap <<= 1;
    st->slack = ref_rec(j->size);
    st->one = (sizeof(ref_ring) + st->cap + st->slack + 4095) & ~(size_t)4095;
    st->len = 2 * st->one;
    void *m = mmap(NULL, st->len, PROT_READ | PROT_WRITE, MAP_SHARED | MAP_ANONYMOUS, -1, 0);
    if (m == MAP_FAILED)
        return bench_fail(j, "mmap of %zu bytes failed", st->len);
    st->mem = m;
    j->state = st;
    return 0;
}

static void ref_teardown(bench_job *j)
{
    ref_state *st = &g_ref;
    if (st->mem)
        munmap(st->mem, st->len);
    st->mem = NULL;
    j->state = NULL;
}

typedef struct ref_end {
    ref_ring *r;
    uint64_t mask, cap;
    uint64_t pos;   /* private index */
    uint64_t other; /* cached index of the other side */
} ref_end;

static void ref_open(ref_end *e, ref_state *st, int idx)
{
    e->r = (ref_ring *)(st->mem + (size_t)idx * st->one);
    e->cap = st->cap;
    e->mask = st->cap - 1;
    e->pos = e->other = 0;
}

/* Producer: where to write a record of rec bytes (spins while the ring is full). */
static inline uint8_t *ref_reserve(ref_end *e, uint64_t rec)
{
    if (__builtin_expect(e->pos + rec - e->other > e->cap, 0))
        do
            /* acquire: the consumer's reads of the bytes we are about to overwrite are done. */
            e->other = atomic_load_explicit(&e->r->ridx, memory_order_acquire);
        while (e->pos + rec - e->other > e->cap);
    return e->r->data + (e->pos & e->mask);
}

static inline void ref_publish(ref_end *e)
{
    /* release: the records before pos are written before the consumer can see pos. */
    atomic_store_explicit(&e->r->widx, e->pos, memory_order_release);
}

/* Consumer: the next record (spins while the ring is empty). */
static inline const uint8_t *ref_peek(ref_end *e)
{
    if (__builtin_expect(e->pos == e->other, 0))
        do
            /* acquire: pairs with ref_publish. */
            e->other = atomic_load_explicit(&e->r->widx, memory_order_acquire);
        while (e->pos == e->other);
    return e->r->data + (e->pos & e->mask);
}

static inline void ref_release(ref_end *e)
{
    atomic_store_explicit(&e->r->ridx, e->pos, memory_order_release);
}

static int ref_rtt(bench_job *j, int role, ref_end *tx, ref_end *rx)
{
    bench_ctl *c = j->ctl;
    size_t size = j->size;
    uint64_t rec = ref_rec(size);
    if (role == 1) {
        for (uint64_t r = 1;; r++) {
            const uint8_t *in = ref_peek(rx);
            uint64_t len;
            memcpy(&len, in, 8);
            if (len != size || !bench_check(in + 8, size, r))
                return bench_fail(j, "ping %llu: wrong length or payload", (unsigned long long)r);
            bench_sink += bench_touch(in + 8, size);
            rx->pos += rec;
            ref_release(rx);
            uint8_t *out = ref_reserve(tx, rec);
            memcpy(out, &len, 8);
            bench_fill(out + 8, size, r);
            tx->pos += rec;
            ref_publish(tx);
            if (r >= atomic_load_explicit(&c->total, memory_order_acquire))
                return 0;
        }
    }
    uint64_t start = bench_now_ns();
    uint64_t warm_end = start + (uint64_t)(j->cfg->warmup * 1e9);
    uint64_t end = warm_end + (uint64_t)(j->cfg->seconds * 1e9);
    uint64_t prev = start, len64 = size;
    for (uint64_t r = 1;; r++) {
        bool last =
            prev >= end && (c->hist.count >= BENCH_MIN_RTT || prev >= end + 4 * (end - warm_end));
        if (last)
            atomic_store_explicit(&c->total, r, memory_order_seq_cst);
        uint8_t *out = ref_reserve(tx, rec);
        memcpy(out, &len64, 8);
        bench_fill(out + 8, size, r);
        tx->pos += rec;
        ref_publish(tx);
        const uint8_t *in = ref_peek(rx);
        uint64_t len;
        memcpy(&len, in, 8);
        if (len != size || !bench_check(in + 8, size, r))
            return bench_fail(j, "pong %llu: wrong length or payload", (unsigned long long)r);
        bench_sink += bench_touch(in + 8, size);
        rx->pos += rec;
        ref_release(rx);
        bench_rtt_mark(c, &prev, warm_end);
        if (last)
            break;
    }
    return bench_rtt_done(c, prev, warm_end);
}

/* The same loop shape as bench_ring.c's ring_thr (batch sizes, clock reads, end check). */
static int ref_thr(bench_job *j, int role, ref_end *tx, ref_end *rx)
{
    bench_ctl *c = j->ctl;
    size_t size = j->size;
    uint64_t rec = ref_rec(size), len64 = size;
    uint64_t bmask = bench_thr_batch_mask(size), mask = bench_thr_tick_mask(size);
    if (role == 0) {
        uint64_t end = bench_now_ns() + (uint64_t)((j->cfg->warmup + j->cfg->seconds) * 1e9);
        for (uint64_t i = 1;; i++) {
            bool last = (i & mask) == 0 && i >= BENCH_MIN_MSGS && bench_now_ns() >= end;
            if (last)
                atomic_store_explicit(&c->total, i, memory_order_seq_cst);
            uint8_t *out = ref_reserve(tx, rec);
            memcpy(out, &len64, 8);
            bench_fill(out + 8, size, i);
            tx->pos += rec;
            if ((i & bmask) == 0 || last)
                ref_publish(tx);
            if (last)
                return 0;
        }
    }
    bench_thr_clock k = {.warm = (uint64_t)(j->cfg->warmup * 1e9), .mask = mask};
    uint64_t sum = 0;
    for (uint64_t i = 1;; i++) {
        const uint8_t *in = ref_peek(rx);
        uint64_t len;
        memcpy(&len, in, 8);
        if (__builtin_expect(len != size || !bench_check(in + 8, size, i), 0))
            return bench_fail(j, "message %llu: wrong length or payload", (unsigned long long)i);
        sum += bench_touch(in + 8, size);
        rx->pos += rec;
        if ((i & bmask) == 0)
            ref_release(rx);
        if ((i & mask) != 0)
            continue;
        uint64_t t1 = bench_thr_tick(&k, c, i);
        if (t1) {
            ref_release(rx);
            bench_sink += sum;
            bench_thr_done(&k, c, i, t1, size);
            return 0;
        }
    }
}

static int ref_run(bench_job *j, int role)
{
    ref_state *st = j->state;
    ref_end tx, rx;
    /* Ring 0 carries role 0 -> role 1, ring 1 the way back (rtt only). */
    ref_open(&tx, st, role);
    ref_open(&rx, st, 1 - role);
    if (j->mode == BENCH_RTT)
        return ref_rtt(j, role, &tx, &rx);
    return ref_thr(j, role, &tx, &rx);
}

const bench_transport bench_tr_ring_ref = {
    .name = "ring:ref",
    .peer = "floor", /* a yardstick, like floor and memcpy (the JSON schema's peer values) */
    .wait = "spin",
    .help = "yardstick: a minimal hand-rolled ring (two shared indices, no checks, no waiting)",
    .modes = BENCH_M(BENCH_RTT) | BENCH_M(BENCH_THR),
    .default_on = true,
    .setup = ref_setup,
    .teardown = ref_teardown,
    .run = ref_run,
};
