/*
 * test_common_grow.c - fy_grow and friends (src/common/grow.h): the doubling sequence from the
 * first capacity, a capacity that already fits left alone, several doublings at once, the limits
 * (max elements, bytes that would not fit a size_t, n + more wrapping) refused with FERRY_ENOMEM
 * and the array and capacity unchanged, the uint32_t variant, and a full ring unwrapped in order.
 */
#include "common/grow.h"
#include "testutil.h"

#include <ferry/ferry.h>

#include <stdint.h>
#include <string.h>

static void test_cap(void)
{
    CHECK(fy_grow_cap(0, 0, 1, 4, SIZE_MAX, 8) == 4);
    CHECK(fy_grow_cap(0, 0, 4, 4, SIZE_MAX, 8) == 4);  /* first fits exactly */
    CHECK(fy_grow_cap(0, 0, 5, 4, SIZE_MAX, 8) == 8);  /* doubled from first */
    CHECK(fy_grow_cap(4, 4, 1, 16, SIZE_MAX, 8) == 8); /* first only counts when cap is 0 */
    CHECK(fy_grow_cap(8, 7, 1, 4, SIZE_MAX, 8) == 8);  /* fits already */
    CHECK(fy_grow_cap(4, 4, 100, 4, SIZE_MAX, 1) == 128);
    CHECK(fy_grow_cap(16, 0, 64, 4, SIZE_MAX, 1) == 64); /* exact power */
    /* max: the last doubling that stays within it is allowed, the next refused. */
    CHECK(fy_grow_cap(1u << 30, 1u << 30, 1, 16, UINT32_MAX, 1) == (size_t)1 << 31);
    CHECK(fy_grow_cap((size_t)1 << 31, (size_t)1 << 31, 1, 16, UINT32_MAX, 1) == 0);
    CHECK(fy_grow_cap(1u << 30, 1u << 30, 1, 16, UINT32_MAX / 2, 1) == 0);
    CHECK(fy_grow_cap(1u << 29, 1u << 29, 1, 16, UINT32_MAX / 2, 1) == 1u << 30);
    CHECK(fy_grow_cap(0, 0, 100, 64, 100, 1) == 0); /* 128 > max */
    CHECK(fy_grow_cap(0, 0, 8, 16, 10, 1) == 0);    /* first itself > max */
    /* size_t limits: doubling past SIZE_MAX, bytes past SIZE_MAX, n + more wrapping. */
    CHECK(fy_grow_cap(SIZE_MAX / 2 + 1, SIZE_MAX / 2 + 1, 1, 16, SIZE_MAX, 1) == 0);
    CHECK(fy_grow_cap(SIZE_MAX / 2 - 1, 0, SIZE_MAX / 2, 16, SIZE_MAX, 1) == SIZE_MAX - 3);
    CHECK(fy_grow_cap(4, 4, 1, 4, SIZE_MAX, SIZE_MAX / 8 + 1) == 0);
    CHECK(fy_grow_cap(4, 4, 1, 4, SIZE_MAX, SIZE_MAX / 8) == 8);
    CHECK(fy_grow_cap(4, 4, SIZE_MAX, 4, SIZE_MAX, 1) == 0);
    CHECK(fy_grow_cap(4, SIZE_MAX, 1, 4, SIZE_MAX, 1) == 0);
}

/* One element at a time from nothing: 4, 8, 16, ... and the contents kept. */
static void test_sequence(void)
{
    uint64_t *v = NULL;
    size_t cap = 0, n = 0, grows = 0;
    for (uint64_t i = 0; i < 1000; i++) {
        size_t before = cap;
        CHECK_OK(fy_grow(&v, sizeof *v, &cap, n, 1, 4, SIZE_MAX));
        if (cap != before) {
            CHECK(cap == (before ? before * 2 : 4));
            CHECK(n == before);
            grows++;
        }
        CHECK(cap > n && v != NULL);
        v[n++] = i * 7;
    }
    CHECK(cap == 1024 && grows == 9);
    for (size_t i = 0; i < n; i++)
        CHECK(v[i] == i * 7);
    free(v);
}

/* Room that is there already: no realloc, nothing changed. */
static void test_fits(void)
{
    uint32_t *v = malloc(8 * sizeof *v);
    CHECK(v != NULL);
    uint32_t *was = v;
    size_t cap = 8;
    CHECK_OK(fy_grow(&v, sizeof *v, &cap, 7, 1, 4, SIZE_MAX));
    CHECK(v == was && cap == 8);
    CHECK_OK(fy_grow(&v, sizeof *v, &cap, 0, 8, 4, SIZE_MAX));
    CHECK(v == was && cap == 8);
    for (uint32_t i = 0; i < 8; i++)
        v[i] = i;
    CHECK_OK(fy_grow(&v, sizeof *v, &cap, 8, 9, 4, SIZE_MAX)); /* 17: two doublings */
    CHECK(cap == 32);
    for (uint32_t i = 0; i < 8; i++)
        CHECK(v[i] == i);
    free(v);
}

/* Refusals leave the pointer, the capacity and the contents as they were. */
static void test_refused(void)
{
    struct big {
        char b[64];
    };
    struct big *v = NULL;
    size_t cap = 0;
    CHECK_OK(fy_grow(&v, sizeof *v, &cap, 0, 1, 2, SIZE_MAX));
    CHECK(cap == 2);
    memset(v, 0x5a, 2 * sizeof *v);
    struct big *was = v;

    /* max reached */
    CHECK_RC(fy_grow(&v, sizeof *v, &cap, 2, 1, 2, 3), FERRY_ENOMEM);
    CHECK(v == was && cap == 2);
    /* bytes past SIZE_MAX (element size as the caller states it) */
    CHECK_RC(fy_grow(&v, SIZE_MAX / 3, &cap, 2, 1, 2, SIZE_MAX), FERRY_ENOMEM);
    CHECK(v == was && cap == 2);
    /* n + more wraps */
    CHECK_RC(fy_grow(&v, sizeof *v, &cap, 2, SIZE_MAX - 1, 2, SIZE_MAX), FERRY_ENOMEM);
    CHECK(v == was && cap == 2);
    for (size_t i = 0; i < 2 * sizeof *v; i++)
        CHECK(((unsigned char *)v)[i] == 0x5a);
    free(v);
}

static void test_u32(void)
{
    uint16_t *v = NULL;
    uint32_t cap = 0;
    CHECK_OK(fy_grow32(&v, sizeof *v, &cap, 0, 1, 16, UINT32_MAX));
    CHECK(cap == 16 && v != NULL);
    CHECK_OK(fy_grow32(&v, sizeof *v, &cap, 16, 1, 16, UINT32_MAX));
    CHECK(cap == 32);
    /* A limit above UINT32_MAX is taken as UINT32_MAX: a capacity of 2^31 cannot double. */
    uint16_t *was = v;
    uint32_t big = UINT32_C(1) << 31;
    CHECK_RC(fy_grow32(&v, sizeof *v, &big, big, 1, 16, SIZE_MAX), FERRY_ENOMEM);
    CHECK(v == was && big == UINT32_C(1) << 31);
    /* The engine's segment limit: nothing beyond UINT32_MAX / 2. */
    uint32_t half = UINT32_C(1) << 30;
    CHECK_RC(fy_grow32(&v, sizeof *v, &half, half, 1, 16, UINT32_MAX / 2), FERRY_ENOMEM);
    CHECK(v == was && half == UINT32_C(1) << 30);
    free(v);
}

/* A full ring of 4 from head 3 (13 at 3, then 14, 15, 16 wrapped to 0..2), grown and unwrapped:
 * read from the same head, modulo or masked with the new capacity, it is in order. */
static void test_ring(void)
{
    for (size_t head = 0; head < 4; head++) {
        uint64_t *v = NULL;
        size_t cap = 0;
        CHECK_OK(fy_grow(&v, sizeof *v, &cap, 0, 1, 4, SIZE_MAX));
        CHECK(cap == 4);
        for (size_t i = 0; i < 4; i++)
            v[(head + i) % cap] = 13 + i;
        size_t old = cap;
        CHECK_OK(fy_grow(&v, sizeof *v, &cap, 4, 1, 4, SIZE_MAX));
        CHECK(cap == 8);
        fy_grow_unwrap(v, sizeof *v, old, head);
        v[(head + 4) % cap] = 17;
        for (size_t i = 0; i < 5; i++) {
            CHECK(v[(head + i) % cap] == 13 + i);
            CHECK(v[(head + i) & (cap - 1)] == 13 + i);
        }
        free(v);
    }
}

int main(void)
{
    test_cap();
    test_sequence();
    test_fits();
    test_refused();
    test_u32();
    test_ring();
    return 0;
}
