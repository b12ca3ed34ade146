/*
 * routing.c - routing-id table for ROUTER sockets (see routing.h).
 *
 * The generated counter starts at a random value, as libzmq's does, so ids from
 * a restarted process are unlikely to match ids a long-lived application still
 * holds for departed peers.
 */
#include "pattern/routing.h"

#include "ferry/ferry.h"

#include <string.h>

void fy_routing_init(fy_routing *t)
{
    fy_bmap_init(&t->ids);
    /* The map's seed is already random; reuse it rather than draw entropy again.
     */
    t->next = (uint32_t)(t->ids.seed >> 17);
}

void fy_routing_fini(fy_routing *t)
{
    if (!t)
        return;
    fy_bmap_fini(&t->ids);
}

int fy_routing_add(fy_routing *t, const void *id, size_t len, void *peer)
{
    if (!peer || len == 0 || len > FY_ROUTING_ID_MAX || !id)
        return FERRY_EINVAL;
    int rc = fy_bmap_put(&t->ids, id, len, (uint64_t)(uintptr_t)peer, NULL);
    if (rc < 0)
        return rc;
    return rc == 1 ? 0 : FERRY_EEXIST;
}

int fy_routing_generate(fy_routing *t, void *peer, unsigned char out[FY_ROUTING_GEN_LEN])
{
    if (!peer)
        return FERRY_EINVAL;
    /* At most count ids are taken, so count + 1 candidates contain a free one. */
    for (size_t tries = 0; tries <= t->ids.count; tries++) {
        uint32_t n = t->next++;
        unsigned char id[FY_ROUTING_GEN_LEN] = {0, (unsigned char)(n >> 24),
                                                (unsigned char)(n >> 16), (unsigned char)(n >> 8),
                                                (unsigned char)n};
        int rc = fy_bmap_put(&t->ids, id, sizeof id, (uint64_t)(uintptr_t)peer, NULL);
        if (rc < 0)
            return rc;
        if (rc == 1) {
            memcpy(out, id, sizeof id);
            return 0;
        }
    }
    /* Unreachable while the table holds fewer than 2^32 ids, which memory rules
     * out. */
    return FERRY_ENOMEM;
}

void *fy_routing_find(const fy_routing *t, const void *id, size_t len)
{
    if (len == 0 || len > FY_ROUTING_ID_MAX)
        return NULL;
    const fy_bmap_entry *e = fy_bmap_find(&t->ids, id, len);
    return e ? (void *)(uintptr_t)e->value : NULL;
}

void *fy_routing_replace(fy_routing *t, const void *id, size_t len, void *peer)
{
    if (len == 0 || len > FY_ROUTING_ID_MAX || !peer)
        return NULL;
    fy_bmap_entry *e = fy_bmap_find(&t->ids, id, len);
    if (!e)
        return NULL;
    void *old = (void *)(uintptr_t)e->value;
    e->value = (uint64_t)(uintptr_t)peer;
    return old;
}

int fy_routing_remove(fy_routing *t, const void *id, size_t len)
{
    if (len == 0 || len > FY_ROUTING_ID_MAX)
        return FERRY_ENOENT;
    return fy_bmap_del(&t->ids, id, len);
}

size_t fy_routing_size(const fy_routing *t)
{
    return t->ids.count;
}
