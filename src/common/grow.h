/*
 * grow.h - fy_grow: growing an array by doubling its capacity, with the overflow checks.
 *
 * An array of cap elements, n of them in use, that needs room for `more`: the capacity becomes
 * cap (first when cap is 0) doubled until it holds n + more. The growth is refused with
 * FERRY_ENOMEM, the array and its capacity untouched, when that capacity would pass the caller's
 * limit (max elements), when its size in bytes would not fit a size_t, or when realloc fails; a
 * capacity that already holds n + more is left as it is. The array is moved by realloc, so its
 * elements must be relocatable byte for byte (a fy_msg is: fy_msg_move is a struct copy).
 *
 * A ring (elements from a head index on, wrapping at the capacity) grows when full with fy_grow
 * followed by fy_grow_unwrap, which puts the wrapped part behind the old end so the elements
 * stay in order from the same head; indices taken modulo the new capacity (or masked with it,
 * when it is a power of two) then find them.
 */
#ifndef FERRY_COMMON_GROW_H
#define FERRY_COMMON_GROW_H

#include <stddef.h>
#include <stdint.h>

/* The capacity fy_grow would give an array of cap elements of elem bytes (elem, first > 0) with
 * n in use and room wanted for more; 0 when it would be refused for its size. */
size_t fy_grow_cap(size_t cap, size_t n, size_t more, size_t first, size_t max, size_t elem);

/* Grows the array whose pointer is at arrp (the address of a T * holding cap elements of elem ==
 * sizeof(T) bytes) to fy_grow_cap's capacity and stores that in *cap. 0 or FERRY_ENOMEM (then
 * neither changed). */
int fy_grow(void *arrp, size_t elem, size_t *cap, size_t n, size_t more, size_t first, size_t max);

/* fy_grow for a uint32_t capacity (max is at most UINT32_MAX). */
int fy_grow32(void *arrp, size_t elem, uint32_t *cap, size_t n, size_t more, size_t first,
              size_t max);

/* After fy_grow of a full ring that had old_cap elements from head on: copies the head elements
 * that wrapped to the front behind the old end. */
void fy_grow_unwrap(void *arr, size_t elem, size_t old_cap, size_t head);

#endif
