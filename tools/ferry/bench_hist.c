/*
 * bench_hist.c - log-linear latency histogram (see bench_hist.h for the bucket layout and error
 * bound). Kept free of any other bench dependency so the tests can compile it on its own.
 */
#include "bench_hist.h"

#include <string.h>

void bench_hist_init(bench_hist *h)
{
    memset(h, 0, sizeof *h);
    h->min = UINT64_MAX;
}

unsigned bench_hist_index(uint64_t v)
{
    if (v < BENCH_HIST_SUB)
        return (unsigned)v;
    unsigned k = 63u - (unsigned)__builtin_clzll(v); /* v in [2^k, 2^(k+1)), k >= SUB_BITS */
    unsigned shift = k - BENCH_HIST_SUB_BITS;
    unsigned sub = (unsigned)(v >> shift) - BENCH_HIST_SUB; /* 0 .. SUB-1 */
    return BENCH_HIST_SUB + (k - BENCH_HIST_SUB_BITS) * BENCH_HIST_SUB + sub;
}

uint64_t bench_hist_lower(unsigned idx)
{
    if (idx < BENCH_HIST_SUB)
        return idx;
    unsigned octave = (idx - BENCH_HIST_SUB) / BENCH_HIST_SUB; /* k - SUB_BITS */
    unsigned sub = (idx - BENCH_HIST_SUB) % BENCH_HIST_SUB;
    return ((uint64_t)BENCH_HIST_SUB + sub) << octave;
}

uint64_t bench_hist_width(unsigned idx)
{
    if (idx < BENCH_HIST_SUB)
        return 1;
    return (uint64_t)1 << ((idx - BENCH_HIST_SUB) / BENCH_HIST_SUB);
}

uint64_t bench_hist_quantile(const bench_hist *h, double q)
{
    if (h->count == 0)
        return 0;
    if (!(q > 0.0))
        return h->min;
    if (q >= 1.0)
        return h->max;
    /* Nearest rank: the ceil(q*count)-th smallest sample (1-based). */
    double want = q * (double)h->count;
    uint64_t rank = (uint64_t)want; /* ceil without libm, so the tests need no -lm */
    if ((double)rank < want)
        rank++;
    if (rank < 1)
        rank = 1;
    if (rank > h->count)
        rank = h->count;
    uint64_t seen = 0;
    for (unsigned i = 0; i < BENCH_HIST_BUCKETS; i++) {
        seen += h->bucket[i];
        if (seen >= rank) {
            uint64_t w = bench_hist_width(i);
            uint64_t v = bench_hist_lower(i) + (w - 1) / 2;
            if (v < h->min)
                v = h->min;
            if (v > h->max)
                v = h->max;
            return v;
        }
    }
    return h->max; /* unreachable while count equals the bucket sum */
}

void bench_hist_merge(bench_hist *dst, const bench_hist *src)
{
    for (unsigned i = 0; i < BENCH_HIST_BUCKETS; i++)
        dst->bucket[i] += src->bucket[i];
    dst->count += src->count;
    if (src->min < dst->min)
        dst->min = src->min;
    if (src->max > dst->max)
        dst->max = src->max;
}
