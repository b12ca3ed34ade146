/*
 * batch.c - ferry_socket_send_many / ferry_socket_recv_many: many frames per call.
 *
 * A batch is defined as the equivalent run of ferry_socket_send/recv calls in which only the
 * first may wait: the same routing, HWM and error rules, the same statistics. The generic path is
 * literally that run (correct for every socket type and transport). The point of the call is the
 * fast paths, taken when the pattern would send every message to, or take every message from,
 * one peer and keeps no state about the stream (its direct op names that pipe):
 *  - shared memory (transport/shm_batch.c): the frames go straight between the caller's buffers
 *    and the ring with one index publish and one wake-up check per batch;
 *  - a stream engine, ipc:// tcp:// fd:// (fy_engine_send_many/recv_many in engine.c): whole
 *    messages are encoded into the output buffer under one lock with one write decision (large
 *    bodies written from the caller's memory with writev), and received by decoding every whole
 *    message the read buffer holds after at most one read.
 * Whatever a fast path declines (large frames, a message not wholly in the batch, a pipe with
 * queued output or a held frame, a prefetched frame, a command...) goes one frame at a time
 * through the generic path, after which the fast path picks up again.
 */
#include "core/socket.h"
#include "transport/shm.h"
#include "transport/shm_batch.h"
#include "transport/transport.h"

#include <limits.h>
#include <stdatomic.h>
#include <stdbool.h>

static int batch_check(ferry_socket *s, const ferry_iov *v, size_t n, int flags)
{
    if (!s)
        return FERRY_EBADF;
    if (s->fork_gen != fy_fork_gen())
        return FERRY_ECHILD_FORK;
    if (n == 0 || n > (size_t)SSIZE_MAX || (flags & ~FERRY_DONTWAIT))
        return FERRY_EINVAL;
    if (!v)
        return FERRY_EFAULT;
    return 0;
}

/*
 * The pipe every message of this direction goes to / comes from, when the pattern would choose it
 * for each of them and holds no state the fast paths could bypass; else NULL. That is the
 * pattern's direct op (the same one ferry_socket_send/recv's single-frame path asks): PAIR, PUSH
 * and DEALER sending, PAIR, PULL and DEALER receiving, with one peer, no message half sent or
 * received and nothing in a backlog (IMMEDIATE 0). Only at a message boundary. The caller picks
 * the fast path by the pipe's kind: a shared-memory ring (fy_shm_pipe_of) or a plain stream
 * engine (fy_engine_send_many/recv_many decline anything else).
 */
static fy_pipe *batch_direct(fy_socket *s, bool out)
{
    if ((out ? s->sndmore : s->rcvmore) || !s->ops->direct)
        return NULL;
    fy_pipe *p = s->ops->direct(s, s->pstate, out);
    if (!p || p->saw_epipe || atomic_load_explicit(&p->dead, memory_order_relaxed))
        return NULL;
    return p;
}

/* The fast path bypassed the core's per-call pollfd upkeep: run it once for the batch. */
static void batch_pollfd_upkeep(fy_socket *s)
{
    if (atomic_load_explicit(&s->pollfd_on, memory_order_relaxed))
        (void)ferry_socket_events(s);
}

ssize_t ferry_socket_send_many(ferry_socket *s, const ferry_iov *v, size_t n, int flags)
{
    int rc = batch_check(s, v, n, flags);
    if (rc)
        return rc;
    /* The entries (fy_batch_check_tx) are checked before anything is sent, but not in a pass of
     * their own when the shm fast path takes the batch: it checks each entry as it writes it and
     * the rest before its first commit. Every other path checks them all first (checked). */
    bool checked = false;
    if (!s->ops->send) {
        rc = fy_batch_check_tx(v, n);
        return rc ? rc : FERRY_ENOTSUP;
    }
    size_t done = 0;
    bool fast = false, waited = false;
    uint64_t deadline = 0;
    while (done < n) {
        fy_socket_sync(s);
        fy_pipe *d = batch_direct(s, true);
        fy_pipe *p = d ? fy_shm_pipe_of(d) : NULL;
        bool full = false;
        if (p) {
            uint64_t bytes;
            ssize_t k = fy_shm_batch_send(p, v + done, n - done, checked, &bytes, &full);
            if (k < 0)
                return (int)k; /* a bad entry (only when !checked: done == 0), nothing sent */
            if (k) {
                checked = true;
                done += (size_t)k;
                s->msgs_out += (uint64_t)k;
                s->bytes_out += bytes;
                fast = true;
                continue;
            }
        }
        if (!checked) {
            rc = fy_batch_check_tx(v, n);
            if (rc)
                return rc;
            checked = true;
        }
        if (d && !p) {
            /* A stream engine: whole messages encoded into its output buffer (large bodies
             * written from the caller's memory), one lock and one write decision per batch. */
            uint64_t bytes;
            size_t msgs;
            size_t k = fy_engine_send_many(d, v + done, n - done, &bytes, &msgs, &full);
            if (k) {
                done += k;
                s->msgs_out += msgs;
                s->bytes_out += bytes;
                fast = true;
                if (done == n)
                    break;
            }
            /* At SNDHWM: a short count, as a single send would refuse the next message. With
             * nothing accepted yet, the generic send below waits for room (or refuses). */
            if (full && done > 0)
                break;
        }
        if (p) {
            /* The ring cannot take the next record: stop here rather than queue behind it. The
             * next call queues (or waits for) one message as ferry_socket_send does, and the
             * fast path resumes once the ring takes records again. Anything else the fast path
             * declined (a multi-frame message, a large frame, an armed wait) goes the generic
             * way, one frame. */
            if (full && done > 0)
                break;
            /* Nothing accepted yet and allowed to wait: wait for room in the ring (the peer's
             * release wakes us) rather than queue the first message behind it, which would
             * turn the fast path off until the queue drained and publish that queue record by
             * record. In slices, so a pipe-set change or the peer's death is seen. When the
             * time is up, the message still gets what ferry_socket_send with FERRY_DONTWAIT
             * would give it (queued below SNDHWM), so a batch never refuses what a single send
             * accepts. */
            if (full && !(flags & FERRY_DONTWAIT) && s->sndtimeo != 0) {
                uint64_t now = fy_now_ns();
                if (!waited) {
                    waited = true;
                    deadline =
                        s->sndtimeo < 0 ? UINT64_MAX : now + (uint64_t)s->sndtimeo * 1000000ull;
                }
                if (now < deadline) {
                    uint64_t left = (deadline - now) / 1000000ull;
                    rc = fy_shm_pipe_wait_room(p, v[0].len, left < 10 ? (int)left : 10);
                    if (rc == FERRY_EINTR)
                        return rc;
                    if (rc == 0 || rc == FERRY_ETIMEDOUT)
                        continue;
                    /* An open loan, a message too large for the ring, a dead peer: the
                     * generic path knows what to do. */
                }
            }
        }
        /* One frame the generic way: the first may wait (unless DONTWAIT, or the ring wait used
         * up the timeout), the others not. A started message is never refused, so a short count
         * ends at a message boundary. */
        uint64_t now = waited ? fy_now_ns() : 0;
        bool nowait = done > 0 || (flags & FERRY_DONTWAIT) || (waited && now >= deadline);
        int f = (v[done].flags & FERRY_MORE) | (nowait ? FERRY_DONTWAIT : 0);
        /* After a ring wait cut short (dead peer, open loan), the generic wait gets only what is
         * left of SNDTIMEO (owner thread: the option is ours to swap for the call). */
        int sndtimeo = s->sndtimeo;
        if (!nowait && waited && deadline != UINT64_MAX)
            s->sndtimeo = (int)((deadline - now + 999999u) / 1000000u);
        rc = ferry_socket_send(s, v[done].buf, v[done].len, f);
        s->sndtimeo = sndtimeo;
        if (rc < 0) {
            if (done == 0)
                return rc;
            break;
        }
        done++;
    }
    if (fast)
        batch_pollfd_upkeep(s);
    return (ssize_t)done;
}

ssize_t ferry_socket_recv_many(ferry_socket *s, ferry_iov *v, size_t n, int flags)
{
    int rc = batch_check(s, v, n, flags);
    if (rc)
        return rc;
    rc = fy_batch_check_rx(v, n);
    if (rc)
        return rc;
    if (!s->ops->recv)
        return FERRY_ENOTSUP;
    size_t done = 0;
    bool fast = false;
    while (done < n) {
        fy_socket_sync(s);
        fy_pipe *d = batch_direct(s, false);
        fy_pipe *p = d ? fy_shm_pipe_of(d) : NULL;
        if (d && !p) {
            /* A stream engine: the whole messages its read buffer holds (after at most one
             * read), decoded in one pass under one lock. */
            uint64_t bytes;
            size_t msgs;
            int why;
            size_t k = fy_engine_recv_many(d, v + done, n - done, &bytes, &msgs, &why);
            if (k) {
                done += k;
                s->msgs_in += msgs;
                s->bytes_in += bytes;
                fast = true;
            }
            if (done == n)
                break;
            /* Nothing more whole now: asking the generic path would only read again. An invalid
             * frame stays where it is, after the messages before it, for the next call's
             * generic receive, which drops the link as the single receive does. */
            if (done > 0 && (why == FY_ENG_BATCH_EMPTY || why == FY_ENG_BATCH_BAD))
                break;
            /* Anything else (a command, a large body, a long multi-frame message): one frame
             * the generic way, then the fast path again. */
        }
        if (p) {
            uint64_t bytes;
            bool empty;
            size_t k = fy_shm_batch_recv(p, v + done, n - done, &bytes, &empty);
            if (k) {
                done += k;
                s->msgs_in += k;
                s->bytes_in += bytes;
                fast = true;
                /* The ring ran dry: that is all there is now (asking the generic path would
                 * only find the same). */
                if (empty)
                    break;
                continue;
            }
        }
        /* One frame the generic way: the first may wait (unless DONTWAIT), the others not. */
        int more = 0;
        ssize_t r =
            ferry_socket_recv(s, v[done].buf, v[done].len,
                              (done > 0 || (flags & FERRY_DONTWAIT)) ? FERRY_DONTWAIT : 0, &more);
        if (r < 0) {
            if (done == 0)
                return r;
            break;
        }
        v[done].size = (size_t)r;
        v[done].flags = more ? FERRY_MORE : 0;
        done++;
    }
    if (fast)
        batch_pollfd_upkeep(s);
    return (ssize_t)done;
}
