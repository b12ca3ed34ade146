/*
 * bench_stream.c - "floor:stream", the most one-way streaming of N-byte messages this machine
 * does between the two pinned CPUs, as the ceiling for every one-way row.
 *
 * The floor row measures one cache line's round trip; it says nothing about a stream, where
 * the producer runs ahead and the cost is how fast lines move from one core's cache to the
 * other's. This row is the least protocol a one-way stream can have: the producer writes each
 * message (an 8-byte sequence word, then the payload, every byte) in order into a shared buffer
 * and publishes its byte position only every K messages; the consumer spins on that position,
 * checks every sequence word, reads every payload byte and publishes its own position every K
 * messages so the producer can reuse the room. Records may run past the end of the buffer into a
 * slack area (no wrap record), nothing from the peer is validated, there is no waiting and no
 * API. The two positions are the only shared words (each on its own 128-byte pair of lines).
 *
 * Which layout is fastest depends on the machine, so the row runs a few configurations one after
 * another in the same pair of processes, each for an equal share of the row's time, and reports
 * the best (its msgs/s); FERRY_BENCH_STREAM_VERBOSE=1 prints every configuration's rate on
 * stderr. The configurations (stream_phases below) vary: software prefetch on both sides (the
 * consumer prefetches the published lines it is about to read, the producer prefetches for write
 * lines the consumer has released), records packed densely or each in whole 64-byte lines, the
 * publish interval K, and the buffer size. Every configuration starts with an empty buffer (the
 * producer waits until the consumer has caught up), so each is measured on its own.
 */
#include "bench.h"

#include <stdio.h>
#include <stdlib.h>
#include <string.h>
#include <sys/mman.h>

typedef struct stream_hdr {
    _Alignas(128) _Atomic uint64_t pos; /* producer: bytes written and published */
    uint8_t pad0_[120];
    _Alignas(128) _Atomic uint64_t cons; /* consumer: bytes consumed and published */
    uint8_t pad1_[120];
    /* per phase: messages the producer sent in it, written before its last publish (0: not yet) */
    _Alignas(128) _Atomic uint64_t phase_msgs[8];
    uint8_t pad2_[64];
    _Alignas(128) uint8_t data[]; /* STREAM_MAX_CAP bytes + slack */
} stream_hdr;

typedef struct stream_phase {
    const char *name;
    unsigned cap_kib; /* buffer size (raised to hold four records of large messages) */
    unsigned align;   /* record stride alignment: 8 (dense) or 64 (whole lines) */
    unsigned k_mult;  /* K = k_mult * the ring rows' publish interval */
    bool prefetch;    /* software prefetch on both sides */
} stream_phase;

static const stream_phase stream_phases[] = {
    {"dense 256K K=1x", 256, 8, 1, false},          {"dense 256K K=1x prefetch", 256, 8, 1, true},
    {"lines 256K K=1x prefetch", 256, 64, 1, true}, {"dense 256K K=4x prefetch", 256, 8, 4, true},
    {"dense 64K K=1x prefetch", 64, 8, 1, true},    {"dense 1M K=4x prefetch", 1024, 8, 4, true},
};
/* How far ahead of its read position the consumer prefetches (bytes, within what is published). */
#define STREAM_PF      1024
#define STREAM_NPHASES (sizeof stream_phases / sizeof stream_phases[0])
_Static_assert(STREAM_NPHASES <= 8, "phase_msgs has 8 words");

typedef struct stream_state {
    stream_hdr *h;
    size_t len, slack, max_cap;
} stream_state;

static stream_state g_stream; /* one row at a time; the children inherit the mapping by fork */

static uint64_t stream_stride(size_t size, unsigned align)
{
    return (8 + (uint64_t)size + align - 1) & ~(uint64_t)(align - 1);
}

static uint64_t stream_cap(const stream_phase *ph, size_t size)
{
    uint64_t cap = (uint64_t)ph->cap_kib * 1024, want = 4 * stream_stride(size, 64);
    while (cap < want)
        cap <<= 1;
    return cap;
}

/* K: messages per published position (a power of two), never more than a quarter of the buffer. */
static uint64_t stream_k(const stream_phase *ph, size_t size, uint64_t cap)
{
    uint64_t k = (bench_thr_batch_mask(size) + 1) * ph->k_mult;
    uint64_t stride = stream_stride(size, ph->align);
    while (k > 1 && k * stride > cap / 4)
        k >>= 1;
    return k;
}

static int stream_setup(bench_job *j)
{
    stream_state *st = &g_stream;
    memset(st, 0, sizeof *st);
    for (size_t i = 0; i < STREAM_NPHASES; i++) {
        uint64_t cap = stream_cap(&stream_phases[i], j->size);
        if (cap > st->max_cap)
            st->max_cap = cap;
    }
    st->slack = stream_stride(j->size, 64);
    st->len = (sizeof(stream_hdr) + st->max_cap + st->slack + 4095) & ~(size_t)4095;
    void *m = mmap(NULL, st->len, PROT_READ | PROT_WRITE, MAP_SHARED | MAP_ANONYMOUS, -1, 0);
    if (m == MAP_FAILED)
        return bench_fail(j, "mmap of %zu bytes failed", st->len);
    st->h = m;
    j->state = st;
    return 0;
}

static void stream_teardown(bench_job *j)
{
    stream_state *st = &g_stream;
    if (st->h)
        munmap(st->h, st->len);
    st->h = NULL;
    j->state = NULL;
}

/* Producer: one phase, from byte position pos (the buffer is empty there) until `until`. */
static uint64_t stream_produce(bench_job *j, stream_hdr *h, const stream_phase *ph, uint64_t pos,
                               uint64_t *seq, uint64_t until, int idx)
{
    size_t size = j->size;
    uint64_t cap = stream_cap(ph, size), mask = cap - 1, stride = stream_stride(size, ph->align);
    uint64_t k = stream_k(ph, size, cap), tick = bench_thr_tick_mask(size);
    uint64_t cons = atomic_load_explicit(&h->cons, memory_order_acquire);
    for (uint64_t i = 1;; i++) {
        bool last = (i & tick) == 0 && i >= BENCH_MIN_MSGS && bench_now_ns() >= until;
        if (__builtin_expect(pos + stride - cons > cap, 0))
            do
                /* acquire: the consumer is done reading the bytes we are about to overwrite. */
                cons = atomic_load_explicit(&h->cons, memory_order_acquire);
            while (pos + stride - cons > cap);
        uint8_t *out = h->data + (pos & mask);
        if (ph->prefetch) {
            /* Ask for the line four lines ahead in exclusive state, if the consumer let go. */
            uint64_t ahead = pos + 256;
            if (ahead + 64 - cons <= cap)
                __builtin_prefetch(h->data + (ahead & mask), 1, 3);
        }
        uint64_t s = ++*seq;
        memcpy(out, &s, 8);
        bench_fill(out + 8, size, s);
        pos += stride;
        if (last)
            atomic_store_explicit(&h->phase_msgs[idx], i, memory_order_relaxed);
        if ((i & (k - 1)) == 0 || last)
            /* release: the records before pos (and phase_msgs) are written before pos says so. */
            atomic_store_explicit(&h->pos, pos, memory_order_release);
        if (last)
            return pos;
    }
}

/* Consumer: one phase; returns the end position, or UINT64_MAX after a failure. */
static uint64_t stream_consume(bench_job *j, stream_hdr *h, const stream_phase *ph, uint64_t pos,
                               uint64_t *seq, int idx, uint64_t *count, uint64_t *ns)
{
    size_t size = j->size;
    uint64_t cap = stream_cap(ph, size), mask = cap - 1, stride = stream_stride(size, ph->align);
    uint64_t k = stream_k(ph, size, cap), tick = bench_thr_tick_mask(size);
    uint64_t avail_end = pos, sum = 0, total = 0, t_first = 0, i0 = 0, t0 = 0;
    double share = (j->cfg->warmup + j->cfg->seconds) / (double)STREAM_NPHASES;
    uint64_t warm = (uint64_t)(share * 0.2e9);
    for (uint64_t i = 1;; i++) {
        if (pos >= avail_end) {
            uint64_t p;
            /* acquire: pairs with the producer's release store of pos. Greater, not different: at
             * a phase's start the word still holds the last phase's end, below our rounded pos. */
            while ((p = atomic_load_explicit(&h->pos, memory_order_acquire)) <= pos)
                ;
            if (ph->prefetch)
                for (uint64_t a = pos & ~(uint64_t)63; a < p && a < pos + STREAM_PF; a += 64)
                    __builtin_prefetch(h->data + (a & mask), 0, 3);
            avail_end = p;
            /* Written before the publish we just acquired, so current once the last one is. */
            if (!total)
                total = atomic_load_explicit(&h->phase_msgs[idx], memory_order_relaxed);
        } else if (ph->prefetch && pos + STREAM_PF < avail_end) {
            __builtin_prefetch(h->data + ((pos + STREAM_PF) & mask), 0, 3);
        }
        const uint8_t *in = h->data + (pos & mask);
        uint64_t s;
        memcpy(&s, in, 8);
        if (__builtin_expect(s != *seq + 1 || !bench_check(in + 8, size, s), 0)) {
            bench_fail(j, "message %llu: wrong sequence word or payload", (unsigned long long)i);
            return UINT64_MAX;
        }
        *seq = s;
        sum += bench_touch(in + 8, size);
        pos += stride;
        if ((i & (k - 1)) == 0)
            atomic_store_explicit(&h->cons, pos, memory_order_release);
        if ((i & tick) == 0) {
            uint64_t now = bench_now_ns();
            if (!t_first)
                t_first = now;
            else if (!i0 && now >= t_first + warm) {
                i0 = i;
                t0 = now;
            }
        }
        if (total && i == total)
            break;
    }
    uint64_t t1 = bench_now_ns();
    /* release: every read of the phase is done before the producer starts the next one. */
    atomic_store_explicit(&h->cons, pos, memory_order_release);
    bench_sink += sum;
    if (!i0 || total - i0 < (tick + 1) * 4) {
        i0 = tick + 1;
        t0 = t_first;
    }
    *count = total > i0 ? total - i0 : 0;
    *ns = t1 > t0 ? t1 - t0 : 0;
    return pos;
}

static int stream_run(bench_job *j, int role)
{
    stream_state *st = j->state;
    stream_hdr *h = st->h;
    bench_ctl *c = j->ctl;
    double share = (j->cfg->warmup + j->cfg->seconds) / (double)STREAM_NPHASES;
    uint64_t pos = 0, seq = 0;
    if (role == 0) {
        for (size_t ph = 0; ph < STREAM_NPHASES; ph++) {
            /* acquire: the consumer has read everything: the buffer is empty for the new layout. */
            while (atomic_load_explicit(&h->cons, memory_order_acquire) != pos)
                ;
            pos = (pos + 127) & ~(uint64_t)127;
            uint64_t until = bench_now_ns() + (uint64_t)(share * 1e9);
            pos = stream_produce(j, h, &stream_phases[ph], pos, &seq, until, (int)ph);
        }
        return 0;
    }
    const char *verbose = getenv("FERRY_BENCH_STREAM_VERBOSE");
    double best = 0;
    for (size_t ph = 0; ph < STREAM_NPHASES; ph++) {
        uint64_t count = 0, ns = 0;
        pos = stream_consume(j, h, &stream_phases[ph], pos, &seq, (int)ph, &count, &ns);
        if (pos == UINT64_MAX)
            return -1;
        /* The next phase starts on a 128-byte boundary, as the producer's does. */
        pos = (pos + 127) & ~(uint64_t)127;
        double rate = ns ? (double)count * 1e9 / (double)ns : 0;
        if (verbose && verbose[0] == '1')
            fprintf(stderr, "floor:stream %zu B  %-26s %12.0f msgs/s\n", j->size,
                    stream_phases[ph].name, rate);
        if (rate > best) {
            best = rate;
            c->res[1].count = count;
            c->res[1].ns = ns;
            c->res[1].bytes = count * j->size;
        }
    }
    return 0;
}

static const char *stream_skip(int mode, size_t size)
{
    (void)size;
    return mode == BENCH_THR ? NULL : "floor:stream is one-way only";
}

const bench_transport bench_tr_floor_stream = {
    .name = "floor:stream",
    .peer = "floor",
    .wait = "spin",
    .help = "yardstick: best one-way stream (seq word + payload, position every K msgs)",
    .modes = BENCH_M(BENCH_THR),
    .default_on = true,
    .skip = stream_skip,
    .setup = stream_setup,
    .teardown = stream_teardown,
    .run = stream_run,
};
