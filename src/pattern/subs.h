/*
 * subs.h - a subscription set: byte prefixes with reference counts, and the
 * prefix match that SUB/XSUB apply on receive and PUB/XPUB apply per peer on
 * send.
 *
 * Semantics follow libzmq: subscribing twice to the same prefix needs two
 * unsubscribes; the empty prefix matches every message; a message matches when
 * any subscribed prefix is a prefix of its first frame. Matching costs one hash
 * lookup per distinct prefix length no longer than the frame, never allocates,
 * and does not depend on how many prefixes share a length.
 */
#ifndef FY_PATTERN_SUBS_H
#define FY_PATTERN_SUBS_H

#include "pattern/bmap.h"

#include <stdbool.h>
#include <stddef.h>
#include <stdint.h>

typedef struct fy_subs_len {
    size_t len;   /* a prefix length present in the set */
    size_t count; /* how many distinct prefixes have it */
} fy_subs_len;

typedef struct fy_subs {
    fy_bmap prefixes;  /* prefix -> reference count */
    fy_subs_len *lens; /* sorted ascending by len, no duplicates */
    size_t nlens, caplens;
} fy_subs;

/* Initialises an empty set in caller storage (no allocation). */
void fy_subs_init(fy_subs *s);
/* Releases everything. Accepts NULL; the set is empty and reusable afterwards.
 */
void fy_subs_fini(fy_subs *s);

/*
 * Adds one reference to prefix. Returns 1 when the prefix is new to the set, 0
 * when only its count grew, FERRY_ENOMEM (the set is unchanged).
 */
int fy_subs_add(fy_subs *s, const void *prefix, size_t len);
/*
 * Drops one reference. Returns 1 when that was the last one (the prefix left
 * the set), 0 when references remain, FERRY_ENOENT when the prefix was never
 * subscribed.
 */
int fy_subs_rm(fy_subs *s, const void *prefix, size_t len);
/* The reference count of exactly this prefix (0 when absent). */
uint64_t fy_subs_refs(const fy_subs *s, const void *prefix, size_t len);
/* Whether some subscribed prefix is a prefix of data[0..len). */
bool fy_subs_match(const fy_subs *s, const void *data, size_t len);
/* The number of distinct prefixes. */
size_t fy_subs_size(const fy_subs *s);
/* Calls fn once per distinct prefix (unspecified order) until it returns
 * non-zero, which is returned. fn must not modify the set. */
int fy_subs_foreach(const fy_subs *s, int (*fn)(void *ctx, const void *prefix, size_t len),
                    void *ctx);

#endif
