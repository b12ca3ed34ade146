/*
 * test_bench_hist.c - the `ferry bench` latency histogram: bucket layout, error bound and the
 * percentile math. The histogram is compiled in directly from tools/ferry (it has no other
 * dependency), so the numbers the tool prints are the numbers tested here.
 */
#include "../tools/ferry/bench_hist.c"

#include "testutil.h"

#include <stdlib.h>

static uint64_t rng_state = 0x9e3779b97f4a7c15ull;

static uint64_t rng(void)
{
    /* xorshift64*: deterministic, so a failure reproduces. */
    rng_state ^= rng_state >> 12;
    rng_state ^= rng_state << 25;
    rng_state ^= rng_state >> 27;
    return rng_state * 0x2545f4914f6cdd1dull;
}

/* Every value lands in a bucket that contains it, buckets are ordered, and no bucket is wider
 * than 1/64 of its lower bound (so a reported midpoint is within 0.8%). */
static void check_value(uint64_t v)
{
    unsigned i = bench_hist_index(v);
    CHECK(i < BENCH_HIST_BUCKETS);
    uint64_t lo = bench_hist_lower(i), w = bench_hist_width(i);
    CHECK(lo <= v);
    CHECK(v - lo < w);
    if (v >= 64)
        CHECK(w * 64 <= lo);
    else
        CHECK(w == 1 && lo == v);
}

static void test_layout(void)
{
    for (uint64_t v = 0; v < 200000; v++)
        check_value(v);
    for (unsigned k = 0; k < 64; k++) {
        uint64_t p = (uint64_t)1 << k;
        check_value(p);
        check_value(p - 1);
        check_value(p + 1);
    }
    check_value(UINT64_MAX);
    CHECK(bench_hist_index(UINT64_MAX) == BENCH_HIST_BUCKETS - 1);
    for (int n = 0; n < 100000; n++)
        check_value(rng() >> (rng() % 64));
    /* Monotonic: a larger value never lands in an earlier bucket. */
    unsigned prev = 0;
    for (uint64_t v = 0; v < 1u << 22; v += 7) {
        unsigned i = bench_hist_index(v);
        CHECK(i >= prev);
        prev = i;
    }
    /* Buckets tile the line: each bucket starts where the previous one ends. */
    for (unsigned i = 1; i < BENCH_HIST_BUCKETS; i++)
        CHECK(bench_hist_lower(i) == bench_hist_lower(i - 1) + bench_hist_width(i - 1));
}

static void test_empty_and_exact(void)
{
    bench_hist h;
    bench_hist_init(&h);
    CHECK(h.count == 0);
    CHECK(bench_hist_quantile(&h, 0.5) == 0);
    CHECK(bench_hist_quantile(&h, 1.0) == 0);
    /* Small values have exact buckets: nearest-rank percentiles are exact. */
    uint64_t vals[] = {40, 10, 30, 20};
    for (int i = 0; i < 4; i++)
        bench_hist_record(&h, vals[i]);
    CHECK(h.count == 4 && h.min == 10 && h.max == 40);
    CHECK(bench_hist_quantile(&h, 0.25) == 10);
    CHECK(bench_hist_quantile(&h, 0.26) == 20);
    CHECK(bench_hist_quantile(&h, 0.50) == 20);
    CHECK(bench_hist_quantile(&h, 0.75) == 30);
    CHECK(bench_hist_quantile(&h, 0.99) == 40);
    CHECK(bench_hist_quantile(&h, 1.0) == 40);
    CHECK(bench_hist_quantile(&h, 0.0) == 10);
}

static void test_constant(void)
{
    /* One repeated large value: every percentile is clamped to it exactly (min == max). */
    bench_hist h;
    bench_hist_init(&h);
    for (int i = 0; i < 1000; i++)
        bench_hist_record(&h, 123457);
    CHECK(bench_hist_quantile(&h, 0.5) == 123457);
    CHECK(bench_hist_quantile(&h, 0.999) == 123457);
    CHECK(h.max == 123457);
}

static double rel(uint64_t got, double want)
{
    double d = ((double)got - want) / want;
    return d < 0 ? -d : d;
}

static void test_uniform(void)
{
    /* 1..1,000,000 once each: the q-quantile is q*1e6; the histogram must be within 1%. */
    bench_hist h;
    bench_hist_init(&h);
    for (uint64_t v = 1; v <= 1000000; v++)
        bench_hist_record(&h, v);
    CHECK(h.count == 1000000);
    CHECK(rel(bench_hist_quantile(&h, 0.50), 500000) < 0.01);
    CHECK(rel(bench_hist_quantile(&h, 0.99), 990000) < 0.01);
    CHECK(rel(bench_hist_quantile(&h, 0.999), 999000) < 0.01);
    CHECK(rel(bench_hist_quantile(&h, 0.01), 10000) < 0.01);
    CHECK(bench_hist_quantile(&h, 1.0) == 1000000);
}

static void test_tail(void)
{
    /* 99.5% of samples at 80 ns, 0.5% at 2 ms: p50 and p99 see the body, p999 the tail. */
    bench_hist h;
    bench_hist_init(&h);
    for (int i = 0; i < 199000; i++)
        bench_hist_record(&h, 80);
    for (int i = 0; i < 1000; i++)
        bench_hist_record(&h, 2000000);
    CHECK(rel(bench_hist_quantile(&h, 0.50), 80) < 0.01);
    CHECK(rel(bench_hist_quantile(&h, 0.99), 80) < 0.01);
    CHECK(rel(bench_hist_quantile(&h, 0.999), 2000000) < 0.01);
    CHECK(h.max == 2000000);
}

static int cmp_u64(const void *a, const void *b)
{
    uint64_t x = *(const uint64_t *)a, y = *(const uint64_t *)b;
    return x < y ? -1 : x > y;
}

static void test_random_vs_sorted(void)
{
    /* Log-normal-ish samples: compare with the exact nearest-rank answer from a sorted copy. */
    enum { N = 50000 };
    static uint64_t v[N];
    bench_hist h;
    bench_hist_init(&h);
    for (int i = 0; i < N; i++) {
        v[i] = 50 + (rng() % 1000) * (1 + rng() % 64) * (1 + (rng() % 100 == 0) * 1000);
        bench_hist_record(&h, v[i]);
    }
    qsort(v, N, sizeof v[0], cmp_u64);
    double qs[] = {0.001, 0.1, 0.5, 0.9, 0.99, 0.999};
    for (unsigned k = 0; k < sizeof qs / sizeof qs[0]; k++) {
        size_t rank = (size_t)(qs[k] * N + 0.999999); /* 1-based nearest rank */
        uint64_t exact = v[rank - 1];
        CHECK(rel(bench_hist_quantile(&h, qs[k]), (double)exact) <= 1.0 / 64);
    }
    CHECK(bench_hist_quantile(&h, 1.0) == v[N - 1]);
    CHECK(h.min == v[0]);
}

static void test_merge(void)
{
    bench_hist a, b, all;
    bench_hist_init(&a);
    bench_hist_init(&b);
    bench_hist_init(&all);
    for (int i = 0; i < 10000; i++) {
        uint64_t x = rng() % 1000000;
        bench_hist_record(i % 3 ? &a : &b, x);
        bench_hist_record(&all, x);
    }
    bench_hist_merge(&a, &b);
    CHECK(a.count == all.count && a.min == all.min && a.max == all.max);
    for (unsigned i = 0; i < BENCH_HIST_BUCKETS; i++)
        CHECK(a.bucket[i] == all.bucket[i]);
    CHECK(bench_hist_quantile(&a, 0.5) == bench_hist_quantile(&all, 0.5));
}

int main(void)
{
    tu_deadline(60);
    test_layout();
    test_empty_and_exact();
    test_constant();
    test_uniform();
    test_tail();
    test_random_vs_sorted();
    test_merge();
    printf("test_bench_hist: ok\n");
    return 0;
}
