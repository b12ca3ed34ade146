/*
 * bench_floor.c - the two physical limits every other row is divided by.
 *
 * floor: one cache line in the MAP_SHARED control page ping-ponged between the two pinned
 * processes. Round r: role 0 stores 2r-1, role 1 spins until it sees it and stores 2r, role 0 spins
 * until it sees that. Nothing can move a message between two cores faster than the line's round
 * trip, so "rtt / floor" says how much a transport adds on top of the hardware.
 *
 * memcpy: single-core copy bandwidth at the message size, buffer to buffer of that size (hot in
 * cache for small sizes, as a ring's slots are). A one-way transport that writes the payload on one
 * core and reads it on another cannot beat one core copying it, so "thr / memcpy" is its
 * efficiency.
 */
#include "bench.h"

#include <string.h>

static int floor_run(bench_job *j, int role)
{
    bench_ctl *c = j->ctl;
    _Atomic uint64_t *line = &c->floor_line;
    if (role == 1) {
        for (uint64_t r = 1;; r++) {
            while (atomic_load_explicit(line, memory_order_acquire) != 2 * r - 1)
                ;
            atomic_store_explicit(line, 2 * r, memory_order_release);
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
        atomic_store_explicit(line, 2 * r - 1, memory_order_release);
        while (atomic_load_explicit(line, memory_order_acquire) != 2 * r)
            ;
        bench_rtt_mark(c, &prev, warm_end);
        if (last)
            break;
    }
    return bench_rtt_done(c, prev, warm_end);
}

static const char *floor_skip(int mode, size_t size)
{
    (void)size;
    return mode == BENCH_RTT ? NULL : "floor is a round trip only";
}

const bench_transport bench_tr_floor = {
    .name = "floor",
    .peer = "floor",
    .wait = "spin",
    .help = "one cache line ping-ponged between the two CPUs (the hardware limit)",
    .modes = BENCH_M(BENCH_RTT),
    .default_on = true,
    .skip = floor_skip,
    .run = floor_run,
};

static int memcpy_run(bench_job *j, int role)
{
    (void)role;
    size_t size = j->size;
    unsigned char *src = bench_buf(size), *dst = bench_buf(size);
    if (!src || !dst) {
        bench_buf_free(src, size);
        bench_buf_free(dst, size);
        return bench_fail(j, "out of memory for two %zu-byte buffers", size);
    }
    bench_fill(src, size, 1);
    /* Copies between two clock reads: ~64 KiB of work, so the clock costs < 1%. */
    uint64_t batch = size >= 65536 ? 1 : 65536 / (size ? size : 1);
    uint64_t start = bench_now_ns();
    uint64_t warm_end = start + (uint64_t)(j->cfg->warmup * 1e9);
    uint64_t end = warm_end + (uint64_t)(j->cfg->seconds * 1e9);
    uint64_t n = 0, t0 = 0, n0 = 0, now;
    for (;;) {
        for (uint64_t i = 0; i < batch; i++) {
            memcpy(dst, src, size);
            /* The copy must really happen every time: tell the compiler dst is observed. */
            __asm__ volatile("" : : "r"(dst) : "memory");
        }
        n += batch;
        now = bench_now_ns();
        if (!t0) {
            if (now >= warm_end) {
                t0 = now;
                n0 = n;
            }
            continue;
        }
        /* A few batches at least, even when a preemption ate the whole window. */
        if (now >= end && n - n0 >= 4 * batch)
            break;
    }
    bench_sink += bench_touch(dst, size < 64 ? size : 64);
    j->ctl->res[0].count = n - n0;
    j->ctl->res[0].ns = now - t0;
    j->ctl->res[0].bytes = (n - n0) * size;
    bench_buf_free(src, size);
    bench_buf_free(dst, size);
    if (n == n0)
        return bench_fail(j, "no copy measured");
    return 0;
}

static const char *memcpy_skip(int mode, size_t size)
{
    (void)size;
    return mode == BENCH_THR ? NULL : "memcpy is a bandwidth only";
}

const bench_transport bench_tr_memcpy = {
    .name = "memcpy",
    .peer = "floor", /* a physical limit, like the floor (the JSON schema's peer values) */
    .wait = "-",
    .help = "single-core memcpy bandwidth at each size (the copy limit)",
    .modes = BENCH_M(BENCH_THR),
    .solo = true,
    .default_on = true,
    .skip = memcpy_skip,
    .run = memcpy_run,
};
