/*
 * subs.c - counted prefix set with length-indexed matching (see subs.h).
 *
 * A trie (libzmq's choice) walks one node per byte of the message; here a match
 * hashes the frame's first L bytes for each distinct subscribed length L, which
 * is cheaper for the common case of a few topic lengths and keeps the structure
 * flat. The side table of lengths is a small sorted array so the scan can stop
 * at the first length longer than the frame.
 */
#include "pattern/subs.h"

#include "common/grow.h"
#include "ferry/ferry.h"

#include <stdlib.h>
#include <string.h>

void fy_subs_init(fy_subs *s)
{
    fy_bmap_init(&s->prefixes);
    s->lens = NULL;
    s->nlens = 0;
    s->caplens = 0;
}

void fy_subs_fini(fy_subs *s)
{
    if (!s)
        return;
    fy_bmap_fini(&s->prefixes);
    free(s->lens);
    s->lens = NULL;
    s->nlens = 0;
    s->caplens = 0;
}

/* Index of the first length >= len (binary search). */
static size_t subs_len_pos(const fy_subs *s, size_t len)
{
    size_t lo = 0, hi = s->nlens;
    while (lo < hi) {
        size_t mid = lo + (hi - lo) / 2;
        if (s->lens[mid].len < len)
            lo = mid + 1;
        else
            hi = mid;
    }
    return lo;
}

/* Makes room for one more length before the prefix is inserted, so a failed
 * allocation leaves the set unchanged. */
static int subs_reserve_len(fy_subs *s)
{
    return fy_grow(&s->lens, sizeof *s->lens, &s->caplens, s->nlens, 1, 8, SIZE_MAX);
}

int fy_subs_add(fy_subs *s, const void *prefix, size_t len)
{
    fy_bmap_entry *e = fy_bmap_find(&s->prefixes, prefix, len);
    if (e) {
        e->value++;
        return 0;
    }
    int rc = subs_reserve_len(s);
    if (rc < 0)
        return rc;
    rc = fy_bmap_put(&s->prefixes, prefix, len, 1, NULL);
    if (rc < 0)
        return rc;
    size_t i = subs_len_pos(s, len);
    if (i < s->nlens && s->lens[i].len == len) {
        s->lens[i].count++;
    } else {
        memmove(&s->lens[i + 1], &s->lens[i], (s->nlens - i) * sizeof s->lens[0]);
        s->lens[i].len = len;
        s->lens[i].count = 1;
        s->nlens++;
    }
    return 1;
}

int fy_subs_rm(fy_subs *s, const void *prefix, size_t len)
{
    fy_bmap_entry *e = fy_bmap_find(&s->prefixes, prefix, len);
    if (!e)
        return FERRY_ENOENT;
    if (--e->value > 0)
        return 0;
    fy_bmap_del(&s->prefixes, prefix, len);
    size_t i = subs_len_pos(s, len);
    /* The length is present: every prefix in the map has its length recorded. */
    if (--s->lens[i].count == 0) {
        memmove(&s->lens[i], &s->lens[i + 1], (s->nlens - i - 1) * sizeof s->lens[0]);
        s->nlens--;
    }
    return 1;
}

uint64_t fy_subs_refs(const fy_subs *s, const void *prefix, size_t len)
{
    const fy_bmap_entry *e = fy_bmap_find(&s->prefixes, prefix, len);
    return e ? e->value : 0;
}

bool fy_subs_match(const fy_subs *s, const void *data, size_t len)
{
    /* The empty prefix (subscribe to everything) is the common case: a length of 0 is present
     * exactly when it is subscribed, so no hashing is needed. */
    if (s->nlens && s->lens[0].len == 0)
        return true;
    for (size_t i = 0; i < s->nlens && s->lens[i].len <= len; i++)
        if (fy_bmap_find(&s->prefixes, data, s->lens[i].len))
            return true;
    return false;
}

size_t fy_subs_size(const fy_subs *s)
{
    return s->prefixes.count;
}

struct subs_foreach_ctx {
    int (*fn)(void *ctx, const void *prefix, size_t len);
    void *ctx;
};

static int subs_foreach_tramp(void *ctx, const fy_bmap_entry *e)
{
    struct subs_foreach_ctx *c = ctx;
    return c->fn(c->ctx, e->key, e->len);
}

int fy_subs_foreach(const fy_subs *s, int (*fn)(void *ctx, const void *prefix, size_t len),
                    void *ctx)
{
    struct subs_foreach_ctx c = {fn, ctx};
    return fy_bmap_foreach(&s->prefixes, subs_foreach_tramp, &c);
}
