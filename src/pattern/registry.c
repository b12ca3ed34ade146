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
    default:
        return NULL;
    }
}
