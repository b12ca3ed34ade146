/*
 * shm_batch.h - the shared-memory fast path of ferry_socket_send_many/recv_many (src/core/batch.c).
 *
 * Both functions work on the shm pipe behind a socket's only peer (fy_shm_pipe_of) on the owner
 * thread, bypass the pattern (the core only calls them when the pattern would pick that pipe
 * anyway and holds no state about the message stream) and handle only the common case: whole
 * single-frame messages, each one ring record. They stop, leaving everything as it was, at the
 * first entry or record they do not handle, and the core sends or receives that one the ordinary
 * way (which also handles every state change: waking, queued output, reassembly, held frames).
 */
#ifndef FERRY_TRANSPORT_SHM_BATCH_H
#define FERRY_TRANSPORT_SHM_BATCH_H

#include "core/pipe.h"
#include "ferry/ferry.h"

#include <stdbool.h>
#include <stddef.h>
#include <stdint.h>

/*
 * The entry rules of ferry_socket_send_many / ferry_socket_recv_many (ferry.h): 0, or the error
 * for the first entry of v[0..n) that breaks them (send: FERRY_EINVAL for a flag other than
 * FERRY_MORE, FERRY_EFAULT for a NULL buffer with a length; receive: FERRY_EFAULT). Here so that
 * batch.c and the shm send path, which checks the entries it writes as it writes them and the
 * rest before its first commit, apply one definition.
 */
static inline int fy_batch_check_tx(const ferry_iov *v, size_t n)
{
    /* Four entries per test (flags ORed, buffers tested for NULL): the usual batch passes in
     * about half the instructions of the exact loop, which decides from the first group that
     * does not pass (a NULL buffer may be an empty frame). */
    size_t i = 0;
    for (; i + 4 <= n; i += 4)
        if (((v[i].flags | v[i + 1].flags | v[i + 2].flags | v[i + 3].flags) & ~FERRY_MORE) ||
            !v[i].buf || !v[i + 1].buf || !v[i + 2].buf || !v[i + 3].buf)
            break;
    for (; i < n; i++) {
        if (v[i].flags & ~FERRY_MORE)
            return FERRY_EINVAL;
        if (!v[i].buf && v[i].len)
            return FERRY_EFAULT;
    }
    return 0;
}

static inline int fy_batch_check_rx(const ferry_iov *v, size_t n)
{
    size_t i = 0; /* four at a time, as fy_batch_check_tx */
    for (; i + 4 <= n; i += 4)
        if (!v[i].buf || !v[i + 1].buf || !v[i + 2].buf || !v[i + 3].buf)
            break;
    for (; i < n; i++)
        if (!v[i].buf && v[i].len)
            return FERRY_EFAULT;
    return 0;
}

/*
 * Writes the messages v[0..n) into the ring as records, committed with one publish (and at most
 * one wake-up of a sleeping peer) at the end. Stops at an entry with FERRY_MORE, a frame too large
 * for one record, a ring that cannot take the next record now (*full set: it is full, or output
 * is queued behind it or an open loan holds it, so an ordinary send would only queue), or a pipe
 * in a state only the ordinary send handles (a wait armed, mid-message, dead). Returns the number
 * of entries written; *bytes gets their total size.
 * checked: the caller has applied fy_batch_check_tx to v[0..n). If not, this call does, on the
 * entries it writes as it reads them and on the rest before its first commit: a bad entry makes
 * it return that entry's error with nothing sent. A return of 0 checked nothing for the caller; a
 * positive return means all of v[0..n) passed.
 */
ssize_t fy_shm_batch_send(fy_pipe *p, const ferry_iov *v, size_t n, bool checked, uint64_t *bytes,
                          bool *full);

/*
 * Copies up to n whole single-frame records out of the ring into v (v[i].size, flags 0; at most
 * v[i].len bytes copied), releasing them locally and publishing the releases once at the end (and
 * every 64 KiB on the way, so a producer waiting for room can go on). Stops at an empty ring, a
 * record that is part of a multi-frame message or a chunked frame, or a pipe in a state only the
 * ordinary recv handles (a prefetched frame, a frame held in place, a reassembly, a wait armed).
 * A record that breaks the format kills the pipe (FERRY_EPROTO, reported by the ordinary recv).
 * Returns the number of entries filled; *bytes gets the frames' total (untruncated) size, and
 * *empty is set when it stopped because nothing more was published.
 */
size_t fy_shm_batch_recv(fy_pipe *p, ferry_iov *v, size_t n, uint64_t *bytes, bool *empty);

#endif
