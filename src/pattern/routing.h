/*
 * routing.h - the ROUTER socket's table from routing id to peer.
 *
 * A peer is known by the Identity property it sent in READY (1..255 bytes) or,
 * when it sent none, by an id generated here in libzmq's form: five bytes, 0x00
 * followed by a big-endian uint32 counter that starts at a random value. libzmq
 * reserves ids starting with 0x00 for this, but a peer may still send one, so
 * generation skips ids already taken instead of colliding. A second peer
 * announcing an id that is in use is refused (FERRY_EEXIST), which is libzmq's
 * default (no ROUTER_HANDOVER).
 */
#ifndef FY_PATTERN_ROUTING_H
#define FY_PATTERN_ROUTING_H

#include "pattern/bmap.h"

#include <stddef.h>
#include <stdint.h>

#define FY_ROUTING_ID_MAX  255u
#define FY_ROUTING_GEN_LEN 5u

typedef struct fy_routing {
    fy_bmap ids; /* id bytes -> (uintptr_t)peer */
    uint32_t next;
} fy_routing;

/* Initialises an empty table in caller storage (no allocation). */
void fy_routing_init(fy_routing *t);
/* Releases the table (not the peers). Accepts NULL. */
void fy_routing_fini(fy_routing *t);

/*
 * Maps id -> peer (peer must be non-NULL; the table does not own it). Returns
 * 0, FERRY_EINVAL for an empty or over-long id or NULL peer, FERRY_EEXIST when
 * the id is taken, FERRY_ENOMEM.
 */
int fy_routing_add(fy_routing *t, const void *id, size_t len, void *peer);
/*
 * Generates a free 5-byte id, maps it to peer and copies it to out. Returns 0,
 * FERRY_EINVAL for a NULL peer, FERRY_ENOMEM.
 */
int fy_routing_generate(fy_routing *t, void *peer, unsigned char out[FY_ROUTING_GEN_LEN]);
/* The peer for id, or NULL when unknown (any length is accepted: unknown
 * lengths find nothing). */
void *fy_routing_find(const fy_routing *t, const void *id, size_t len);
/* Maps an id that is already mapped to peer instead (never allocates): the previous peer, or
 * NULL when id is not mapped (nothing changed then). For ROUTER_HANDOVER. */
void *fy_routing_replace(fy_routing *t, const void *id, size_t len, void *peer);
/* Unmaps id. Returns 0 or FERRY_ENOENT. */
int fy_routing_remove(fy_routing *t, const void *id, size_t len);
/* Number of mapped ids. */
size_t fy_routing_size(const fy_routing *t);

#endif
