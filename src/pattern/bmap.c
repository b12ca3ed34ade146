/*
 * bmap.c - seeded chained hash map from byte strings to uint64_t (see bmap.h).
 *
 * Chaining rather than open addressing keeps entries at stable addresses, so
 * callers may hold an entry pointer (e.g. a routing id's key bytes) across
 * later inserts. The table doubles when the load factor passes 1; it never
 * shrinks, which bounds work per operation at the cost of memory that a peer's
 * burst of subscriptions once needed.
 */
#include "pattern/bmap.h"

#include "common/grow.h"
#include "ferry/ferry.h"

#include <stdatomic.h>
#include <stdlib.h>
#include <string.h>
#include <sys/random.h>
#include <time.h>

static uint64_t bmap_mix(uint64_t x)
{
    /* The splitmix64 finaliser: every input bit affects every output bit. */
    x ^= x >> 30;
    x *= 0xbf58476d1ce4e5b9ull;
    x ^= x >> 27;
    x *= 0x94d049bb133111ebull;
    x ^= x >> 31;
    return x;
}

static uint64_t bmap_hash(uint64_t seed, const unsigned char *p, size_t len)
{
    uint64_t h = bmap_mix(seed ^ (uint64_t)len);
    while (len >= 8) {
        uint64_t w;
        memcpy(&w, p, 8);
        h = bmap_mix(h ^ w) + 0x9e3779b97f4a7c15ull;
        p += 8;
        len -= 8;
    }
    uint64_t w = 0;
    if (len)
        memcpy(&w, p, len);
    return bmap_mix(h ^ w ^ ((uint64_t)len << 56));
}

static uint64_t bmap_new_seed(void)
{
    static _Atomic uint64_t counter;
    uint64_t s = 0;
    if (getrandom(&s, sizeof s, GRND_NONBLOCK) != (ssize_t)sizeof s) {
        /* Entropy not ready (early boot): a clock-derived seed still differs per
         * map and run. */
        struct timespec ts;
        clock_gettime(CLOCK_MONOTONIC, &ts);
        s = (uint64_t)ts.tv_nsec ^ ((uint64_t)ts.tv_sec << 32) ^ (uint64_t)(uintptr_t)&s;
    }
    return bmap_mix(s + atomic_fetch_add_explicit(&counter, 1, memory_order_relaxed));
}

void fy_bmap_init(fy_bmap *m)
{
    memset(m, 0, sizeof *m);
    m->seed = bmap_new_seed();
}

void fy_bmap_fini(fy_bmap *m)
{
    if (!m)
        return;
    for (size_t i = 0; i < m->nbuckets; i++) {
        fy_bmap_entry *e = m->buckets[i];
        while (e) {
            fy_bmap_entry *n = e->next;
            free(e);
            e = n;
        }
    }
    free(m->buckets);
    m->buckets = NULL;
    m->nbuckets = 0;
    m->count = 0;
}

static fy_bmap_entry *bmap_lookup(const fy_bmap *m, uint64_t h, const void *key, size_t len)
{
    if (!m->nbuckets)
        return NULL;
    for (fy_bmap_entry *e = m->buckets[h & (m->nbuckets - 1)]; e; e = e->next)
        if (e->hash == h && e->len == len && (len == 0 || memcmp(e->key, key, len) == 0))
            return e;
    return NULL;
}

fy_bmap_entry *fy_bmap_find(const fy_bmap *m, const void *key, size_t len)
{
    if (!m->count)
        return NULL;
    return bmap_lookup(m, bmap_hash(m->seed, key, len), key, len);
}

static int bmap_grow(fy_bmap *m)
{
    size_t n = fy_grow_cap(m->nbuckets, m->nbuckets, 1, 16, SIZE_MAX, sizeof(fy_bmap_entry *));
    fy_bmap_entry **b = n ? calloc(n, sizeof *b) : NULL;
    if (!b)
        return FERRY_ENOMEM;
    for (size_t i = 0; i < m->nbuckets; i++) {
        fy_bmap_entry *e = m->buckets[i];
        while (e) {
            fy_bmap_entry *next = e->next;
            size_t j = e->hash & (n - 1);
            e->next = b[j];
            b[j] = e;
            e = next;
        }
    }
    free(m->buckets);
    m->buckets = b;
    m->nbuckets = n;
    return 0;
}

int fy_bmap_put(fy_bmap *m, const void *key, size_t len, uint64_t value, fy_bmap_entry **out)
{
    uint64_t h = bmap_hash(m->seed, key, len);
    fy_bmap_entry *e = bmap_lookup(m, h, key, len);
    if (e) {
        if (out)
            *out = e;
        return 0;
    }
    if (len > SIZE_MAX - sizeof *e)
        return FERRY_ENOMEM;
    if (m->count >= m->nbuckets) {
        int rc = bmap_grow(m);
        if (rc < 0)
            return rc;
    }
    e = malloc(sizeof *e + len);
    if (!e)
        return FERRY_ENOMEM;
    e->hash = h;
    e->value = value;
    e->len = len;
    if (len)
        memcpy(e->key, key, len);
    size_t i = h & (m->nbuckets - 1);
    e->next = m->buckets[i];
    m->buckets[i] = e;
    m->count++;
    if (out)
        *out = e;
    return 1;
}

int fy_bmap_del(fy_bmap *m, const void *key, size_t len)
{
    if (!m->count)
        return FERRY_ENOENT;
    uint64_t h = bmap_hash(m->seed, key, len);
    fy_bmap_entry **pp = &m->buckets[h & (m->nbuckets - 1)];
    for (; *pp; pp = &(*pp)->next) {
        fy_bmap_entry *e = *pp;
        if (e->hash == h && e->len == len && (len == 0 || memcmp(e->key, key, len) == 0)) {
            *pp = e->next;
            free(e);
            m->count--;
            return 0;
        }
    }
    return FERRY_ENOENT;
}

int fy_bmap_foreach(const fy_bmap *m, int (*fn)(void *ctx, const fy_bmap_entry *e), void *ctx)
{
    for (size_t i = 0; i < m->nbuckets; i++)
        for (fy_bmap_entry *e = m->buckets[i]; e; e = e->next) {
            int rc = fn(ctx, e);
            if (rc)
                return rc;
        }
    return 0;
}
