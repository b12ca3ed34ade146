/*
 * bmap.h - a hash map from byte strings (0..UINT32_MAX bytes) to a uint64_t
 * value, private to the pattern layer.
 *
 * Subscription sets and routing-id tables are both keyed by bytes that a remote
 * peer chooses, so the map hashes with a per-map random seed (a peer cannot
 * precompute colliding keys) and copies every key into its own entry (the
 * caller's buffer may be a frame that is about to be released). Lookups never
 * allocate; inserts allocate one entry and occasionally grow the bucket array.
 */
#ifndef FY_PATTERN_BMAP_H
#define FY_PATTERN_BMAP_H

#include <stddef.h>
#include <stdint.h>

typedef struct fy_bmap_entry {
    struct fy_bmap_entry *next; /* bucket chain */
    uint64_t hash;
    uint64_t value;
    size_t len;
    unsigned char key[]; /* len bytes */
} fy_bmap_entry;

typedef struct fy_bmap {
    fy_bmap_entry **buckets; /* NULL until the first insert */
    size_t nbuckets;         /* 0 or a power of two */
    size_t count;
    uint64_t seed;
} fy_bmap;

/* Initialises an empty map in caller storage; never fails (no allocation until
 * the first put). */
void fy_bmap_init(fy_bmap *m);
/* Frees every entry. Accepts NULL. The map is empty and reusable afterwards. */
void fy_bmap_fini(fy_bmap *m);

/* The entry for key, or NULL. The entry stays valid until it is deleted or the
 * map is finalised. */
fy_bmap_entry *fy_bmap_find(const fy_bmap *m, const void *key, size_t len);
/*
 * Inserts key with value. Returns 1 when inserted, 0 when the key already
 * existed (its value is left unchanged and *out points at it), FERRY_ENOMEM.
 * *out (if non-NULL) receives the entry.
 */
int fy_bmap_put(fy_bmap *m, const void *key, size_t len, uint64_t value, fy_bmap_entry **out);
/* Removes key. Returns 0, or FERRY_ENOENT when absent. */
int fy_bmap_del(fy_bmap *m, const void *key, size_t len);

/* Calls fn for every entry in unspecified order until fn returns non-zero
 * (which is returned). fn must not insert into or delete from the map. */
int fy_bmap_foreach(const fy_bmap *m, int (*fn)(void *ctx, const fy_bmap_entry *e), void *ctx);

#endif
