/*
 * transport.h - how a transport gets a connected byte stream, and the stream engine on top.
 *
 * tcp://, ipc:// (and fd://) differ only in how a connected fd comes to exist: one ops table per
 * transport (one file each). Everything after that - ZMTP handshake, framing, batching, heartbeats
 * - is the single stream engine (engine.c). inproc:// has no fd at all and is its own pipe type
 * (inproc.c). The control thread (core/ctl.c) drives listen/accept/connect/reconnect through these
 * ops; none of them is called on the hot path.
 */
#ifndef FERRY_TRANSPORT_TRANSPORT_H
#define FERRY_TRANSPORT_TRANSPORT_H

#include "core/endpoint.h"
#include "core/pipe.h"
#include "ferry/ferry.h"

#include <stdbool.h>
#include <stddef.h>
#include <stdint.h>

/* Options snapshotted when bind/connect is called (libzmq semantics: later option changes apply
 * to later bind/connect calls). */
typedef struct fy_link_cfg {
    int type; /* our socket type */
    int sndhwm, rcvhwm;
    uint8_t routing_id_len;
    uint8_t routing_id[255];
    int hb_ivl, hb_ttl, hb_timeout; /* ms; 0 = off */
    int reconnect_ivl, reconnect_ivl_max;
    int peer_uid;      /* ipc: uid allowed besides ours, -1 = ours only */
    int shm;           /* Unix links: offer the shared-memory data path (shm.c) */
    int shm_ring_size; /* bytes per direction, 0 = default */
} fy_link_cfg;

typedef struct fy_transport_ops {
    int scheme; /* enum fy_endpoint_scheme */
    const char *name;
    /*
     * Creates a listening, non-blocking, close-on-exec fd for ep and writes the resolved URL
     * (real port, etc.) into resolved. Returns 0 or FERRY_E* (EADDRINUSE, EACCES, ...).
     */
    int (*listen)(const fy_endpoint *ep, int *fd, char *resolved, size_t cap);
    /* Starts a non-blocking connect. Returns 0 (connected), FERRY_EINPROGRESS, or FERRY_E*. */
    int (*connect)(const fy_endpoint *ep, int *fd);
    /* Called on every accepted or connected fd: tune it (TCP_NODELAY) and check policy (ipc:
     * SO_PEERCRED uid). Returns 0 or FERRY_EACCES (the link is dropped). */
    int (*prepare)(int fd, const fy_link_cfg *cfg);
    /* Undoes listen: closes fd, removes the ipc socket file. */
    void (*unlisten)(const fy_endpoint *ep, int fd);
} fy_transport_ops;

extern const fy_transport_ops fy_transport_tcp;
extern const fy_transport_ops fy_transport_ipc;
extern const fy_transport_ops fy_transport_shm;

/* ---- the stream engine (engine.c) ---- */

/*
 * Creates a stream-engine pipe over connected fds (rfd == wfd for sockets; a pipe pair has two)
 * and queues our greeting and READY. The pipe belongs to the control thread until its handshake
 * completes. The engine owns the fds from then on (also on failure: they are closed).
 */
int fy_engine_new(fy_pipe **out, fy_socket *s, int rfd, int wfd, const fy_link_cfg *cfg);

/* Control thread: events for the engine's fd. Returns 0 (nothing new), 1 (handshake complete:
 * publish it) or < 0 (the link is dead). */
int fy_engine_ctl_event(fy_pipe *p, uint32_t events, bool on_wfd);
/* Control thread: timers (handshake timeout, heartbeats, tail flush). now in ns; lowers
 * *next_ns to the next time the engine needs a tick. Returns 0 or < 0 (dead). */
int fy_engine_ctl_tick(fy_pipe *p, uint64_t now, uint64_t *next_ns);
/* Control thread: drain output the owner left behind (tail flush). Returns 0 when nothing is
 * left for the tick (all out, or a full kernel buffer with EPOLLOUT armed), 1 while output is
 * pending and can move at the next tick, 2 while it waits on a peer that is not reading (a full
 * shm ring: the control thread backs off). */
int fy_engine_ctl_flush(fy_pipe *p);
/* True for stream-engine pipes. */
bool fy_pipe_is_engine(const fy_pipe *p);
/* Control thread: the engine's fds and whether output is waiting for EPOLLOUT. */
int fy_engine_rfd(const fy_pipe *p);
int fy_engine_wfd(const fy_pipe *p);
bool fy_engine_live(const fy_pipe *p);
/* Owner or control: the link failed; wake everyone concerned (idempotent). */
void fy_engine_kill(fy_pipe *p, int err);
/* Control thread: frees the engine (closes the fds). */
void fy_engine_free(fy_pipe *p);

/*
 * Owner fast path (ferry_socket_send/recv with a pattern's direct pipe): whole single-frame
 * messages straight between the caller's buffer and the engine's byte buffers, without a fy_msg
 * and without the pattern. Both return FY_ENG_DECLINE when the pipe is not a plain stream
 * engine or the frame needs the general path (send: at SNDHWM, dead, a message in progress,
 * or a large body while output is queued ahead of it; recv: the next frame is a command, has MORE,
 * is large, incomplete or invalid, or nothing is buffered and the kernel has nothing either): the
 * caller then runs the general path, which handles waiting, errors and everything else. send_buf: 0
 * = queued (and written or batched like any frame) or FERRY_ENOMEM. recv_buf: 0 = a frame of *size
 * bytes was taken, its first min(*size, cap) bytes copied to buf.
 */
#define FY_ENG_DECLINE 1
int fy_engine_send_buf(fy_pipe *p, const void *buf, size_t len);
int fy_engine_recv_buf(fy_pipe *p, void *buf, size_t cap, size_t *size);

/*
 * Owner batch path (ferry_socket_send_many/recv_many with a pattern's direct pipe; plain stream
 * engines only, 0 for anything else). Same rules as a run of the single calls above that never
 * waits, with the per-call work (lock, state checks, clock, write decision) done once per batch.
 *
 * send_many takes whole messages (a run of entries ending with one without FERRY_MORE) from
 * v[0..n): each is appended to the output whole or not at all, frames up to FY_ENG_COPY_MAX
 * encoded into the output buffer, larger bodies referenced from the caller's memory and written
 * with one writev (what the kernel does not take before the call returns is copied into a pooled
 * block). Stops at a message whose last frame is not in v, at SNDHWM (*full), when out of memory,
 * or at a dead or mid-message pipe. Returns the entries taken; *msgs and *bytes count them.
 *
 * recv_many fills v[0..n) with whole messages already in the read buffer or brought by at most
 * one read (size, FERRY_MORE flags, min(size, len) bytes copied as the single recv does). Stops
 * (*why) when v is full (FULL), no whole message is there (EMPTY), at a frame it leaves to the
 * general path (OTHER: a command, a body above the read buffer's limit, a multi-frame message
 * longer than the entries left, end of input) or at an invalid frame (BAD: left unconsumed for
 * the general path to report and kill the link). Returns the entries filled.
 */
enum { FY_ENG_BATCH_FULL, FY_ENG_BATCH_EMPTY, FY_ENG_BATCH_OTHER, FY_ENG_BATCH_BAD };
size_t fy_engine_send_many(fy_pipe *p, const ferry_iov *v, size_t n, uint64_t *bytes, size_t *msgs,
                           bool *full);
size_t fy_engine_recv_many(fy_pipe *p, ferry_iov *v, size_t n, uint64_t *bytes, size_t *msgs,
                           int *why);

/* ---- inproc (inproc.c) ---- */
int fy_inproc_bind(fy_socket *s, const char *name, const fy_link_cfg *cfg);
int fy_inproc_connect(fy_socket *s, const char *name, const fy_link_cfg *cfg);
int fy_inproc_unbind(fy_socket *s, const char *name);
/* Undoes every connect of s to name: a pending one is forgotten, a made link is dropped (its bound
 * end sees the peer gone). FERRY_ENOENT when s has no connect to name. Owner thread. */
int fy_inproc_disconnect(fy_socket *s, const char *name);
/* Socket close: drop this socket's binds and pending connects. */
void fy_inproc_socket_closed(fy_socket *s);

#endif
