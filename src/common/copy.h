/*
 * copy.h - fy_copy, the memcpy ferry moves message payloads with.
 *
 * glibc's x86-64 memcpy changes strategy at about the size of a core's L2 cache (1 MiB on this
 * project's reference machine): below it, it uses `rep movsb`; above it, a loop of ordinary
 * vector stores. Into cache lines another core holds, which is what a shared-memory ring's lines
 * are after the consumer has read them, the second strategy must fetch each line for ownership
 * first and runs at a third of the speed: two processes passing 1 MiB messages through a ring
 * moved 7.0 k messages/s with plain memcpy against 11.8 k with the copy split into 256 KiB
 * pieces (both sides copying, EPYC 2 vCPU VM). Copies of at most FY_COPY_PIECE bytes are a plain
 * memcpy; larger ones are a sequence of memcpys of FY_COPY_PIECE bytes. The result is the same
 * bytes on every platform; only the speed differs.
 */
#ifndef FERRY_COMMON_COPY_H
#define FERRY_COMMON_COPY_H

#include <stddef.h>
#include <string.h>

#define FY_COPY_PIECE ((size_t)256 << 10)

/* memcpy(dst, src, n) for buffers that do not overlap. */
static inline void fy_copy(void *dst, const void *src, size_t n)
{
    if (__builtin_expect(n <= FY_COPY_PIECE, 1)) {
        memcpy(dst, src, n);
        return;
    }
    unsigned char *d = dst;
    const unsigned char *s = src;
    while (n > FY_COPY_PIECE) {
        memcpy(d, s, FY_COPY_PIECE);
        d += FY_COPY_PIECE;
        s += FY_COPY_PIECE;
        n -= FY_COPY_PIECE;
    }
    memcpy(d, s, n);
}

#endif
