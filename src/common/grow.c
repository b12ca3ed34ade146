/*
 * grow.c - growing arrays by doubling their capacity (see grow.h).
 */
#include "common/grow.h"

#include "ferry/ferry.h"

#include <stdlib.h>
#include <string.h>

size_t fy_grow_cap(size_t cap, size_t n, size_t more, size_t first, size_t max, size_t elem)
{
    if (more > SIZE_MAX - n)
        return 0;
    size_t need = n + more, c = cap ? cap : first;
    while (c < need) {
        if (c > max / 2)
            return 0;
        c *= 2;
    }
    if (c > max || c > SIZE_MAX / elem)
        return 0;
    return c;
}

int fy_grow(void *arrp, size_t elem, size_t *cap, size_t n, size_t more, size_t first, size_t max)
{
    if (*cap >= n && *cap - n >= more)
        return 0;
    size_t c = fy_grow_cap(*cap, n, more, first, max, elem);
    if (!c)
        return FERRY_ENOMEM;
    /* The pointer is read and written as bytes: arrp holds a T *, not a void *. */
    void *v;
    memcpy(&v, arrp, sizeof v);
    v = realloc(v, c * elem);
    if (!v)
        return FERRY_ENOMEM;
    memcpy(arrp, &v, sizeof v);
    *cap = c;
    return 0;
}

int fy_grow32(void *arrp, size_t elem, uint32_t *cap, size_t n, size_t more, size_t first,
              size_t max)
{
    size_t c = *cap;
    int rc = fy_grow(arrp, elem, &c, n, more, first, max < UINT32_MAX ? max : UINT32_MAX);
    *cap = (uint32_t)c;
    return rc;
}

void fy_grow_unwrap(void *arr, size_t elem, size_t old_cap, size_t head)
{
    if (head)
        memcpy((char *)arr + old_cap * elem, arr, head * elem);
}
