/*
 * bench_hist.h - the latency histogram of `ferry bench`.
 *
 * A log-linear histogram of nanosecond samples, in the spirit of HdrHistogram: values below 64 get
 * one exact bucket each; above that, every power of two [2^k, 2^(k+1)) is split into 64 linear
 * sub-buckets, so a bucket's width is at most 1/64 of its lower bound and a reported percentile
 * (the bucket's midpoint) is within 0.8% of the true sample. Recording is a few instructions and
 * never allocates, so it can sit inside a ping-pong loop; the struct is plain data so it can live
 * in a MAP_SHARED page written by a benchmark child and read by the parent.
 */
#ifndef FERRY_BENCH_HIST_H
#define FERRY_BENCH_HIST_H

#include <stdint.h>

#define BENCH_HIST_SUB_BITS 6
#define BENCH_HIST_SUB      (1u << BENCH_HIST_SUB_BITS)
/* 64 exact buckets, then 64 sub-buckets for each of the powers 2^6 .. 2^63. */
#define BENCH_HIST_BUCKETS (BENCH_HIST_SUB + (64 - BENCH_HIST_SUB_BITS) * BENCH_HIST_SUB)

typedef struct bench_hist {
    uint64_t count;
    uint64_t min, max; /* exact extremes; min is UINT64_MAX while empty */
    uint64_t bucket[BENCH_HIST_BUCKETS];
} bench_hist;

void bench_hist_init(bench_hist *h);
/* The bucket index of value v (exposed for the tests). */
unsigned bench_hist_index(uint64_t v);
/* The smallest value that lands in bucket idx, and the bucket's width. */
uint64_t bench_hist_lower(unsigned idx);
uint64_t bench_hist_width(unsigned idx);

static inline void bench_hist_record(bench_hist *h, uint64_t v)
{
    h->bucket[bench_hist_index(v)]++;
    h->count++;
    if (v < h->min)
        h->min = v;
    if (v > h->max)
        h->max = v;
}

/*
 * The q-quantile (0 <= q <= 1) in the nearest-rank sense: the value below or at which at least
 * q*count samples lie, reported as the midpoint of its bucket clamped to [min, max]. q = 1 returns
 * the exact max. An empty histogram returns 0.
 */
uint64_t bench_hist_quantile(const bench_hist *h, double q);
/* Adds every sample of src into dst. */
void bench_hist_merge(bench_hist *dst, const bench_hist *src);

#endif
