/*
 * registry.c - socket type number -> pattern ops. Every pattern file adds its line here (an
 * explicit table rather than constructors, so static linking pulls every pattern in).
 */
#include "pattern/pattern.h"

const fy_pattern_ops *fy_pattern_lookup(int type)
{
    switch (type) {
    case FERRY_PAIR:
        return &fy_pattern_pair;
    case FERRY_PUSH:
        return &fy_pattern_push;
    case FERRY_PULL:
        return &fy_pattern_pull;
    case FERRY_PUB:
        return &fy_pattern_pub;
    case FERRY_SUB:
        return &fy_pattern_sub;
    case FERRY_XPUB:
        return &fy_pattern_xpub;
    case FERRY_XSUB:
        return &fy_pattern_xsub;
    case FERRY_REQ:
        return &fy_pattern_req;
    case FERRY_REP:
        return &fy_pattern_rep;
    case FERRY_DEALER:
        return &fy_pattern_dealer;
    case FERRY_ROUTER:
        return &fy_pattern_router;
    default:
        return NULL;
    }
}
