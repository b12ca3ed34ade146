/*
 * pipe.h - a pipe is one live peer connection of a socket, as the messaging patterns see it.
 *
 * Every transport (ipc/tcp/fd stream engine, inproc rings, later shm rings) produces pipes with the
 * same interface, so the patterns in src/pattern/ never know how bytes move. A pipe carries frames
 * (fy_msg, see msg.h); a message is a run of frames where every frame but the last has
 * FY_MSG_MORE. Pipes exist only once the peer is fully connected (ZMTP handshake done, socket types
 * checked compatible), so every pipe a pattern sees has valid peer information.
 *
 * Threading: all fy_pipe_* functions below are called on the socket's owner thread only (inside
 * a pattern op), with one exception: a pattern's link_up op (pattern.h) sends on a pipe from the
 * thread that publishes it, before the owner can see it, and the owner may then send on it while
 * it waits to be attached, both under the socket's link lock. The control thread touches a pipe
 * only through the core's private locking.
 *
 * Life cycle, as a pattern sees it (see also pattern.h):
 *  1. The control thread finishes a handshake and publishes the pipe to the socket (atomic
 *     generation counter). On the owner thread's next socket call the core calls the pattern's
 *     attach(p) before the operation itself.
 *  2. The pattern sends/receives through the pipe. Sending or receiving on a pipe whose peer has
 *     gone returns FERRY_EPIPE: the pattern must skip the pipe from then on (never retry it).
 *  3. The core calls detach(p) at the next socket call after the pipe died (peer hang-up, protocol
 *     error, heartbeat timeout, disconnect/unbind) and no complete input frame is left in it (input
 *     the peer sent before it died is still delivered). After detach returns the pipe is freed:
 *     the pattern must have dropped every pointer to it.
 */
#ifndef FERRY_CORE_PIPE_H
#define FERRY_CORE_PIPE_H

#include "core/msg.h"

#include <stdbool.h>
#include <stdint.h>

typedef struct ferry_socket fy_socket; /* the public ferry_socket */
typedef struct fy_pipe fy_pipe;

/* What the peer announced in its handshake. */
typedef struct fy_peer_info {
    int type;        /* peer socket type (enum ferry_socket_type), checked compatible with ours */
    int zmtp_minor;  /* ZMTP minor version: 0 (3.0) or 1 (3.1+); inproc/shm peers report 1 */
    bool is_ferry;   /* the peer is ferry (sent X-Ferry) */
    uint8_t id_len;  /* length of the peer's Identity property (its ROUTING_ID), 0 = none */
    uint8_t id[255]; /* Identity bytes (ROUTER uses them as the routing id; generate one if 0) */
} fy_peer_info;

/* Transport-specific implementation of the pipe operations (the core's business). */
typedef struct fy_pipe_ops {
    int (*send)(fy_pipe *p, fy_msg *m);
    int (*recv)(fy_pipe *p, fy_msg *m);
    int (*poll_in)(fy_pipe *p);
    bool (*can_send)(fy_pipe *p);
    /* Owner: hand queued output to the transport now, never blocking. 1 = output still pending
     * (wait for wfd writable), 0 = all out, < 0 = dead. */
    int (*flush)(fy_pipe *p);
    /* Owner: a complete frame waits in user space (keeps the pollfd readable). */
    bool (*has_input)(fy_pipe *p);
    /* Owner: the pipe was detached; dispose of it (engine pipes are freed by the control thread).
     */
    void (*release)(fy_pipe *p);
} fy_pipe_ops;

struct fy_pipe {
    /* ---- read-only for patterns ---- */
    fy_socket *sock;   /* the owning socket */
    uint64_t id;       /* process-wide unique, never reused: safe as a map key */
    fy_peer_info peer; /* filled before attach, constant afterwards */

    /* ---- free for the pattern (zeroed before attach, never touched by the core) ---- */
    void *pattern_data;
    uint64_t pattern_u64;

    /* ---- core-private below this line: patterns must not touch ---- */
    const fy_pipe_ops *ops;
    int rfd, wfd;       /* kernel fds to wait on (-1: none, e.g. inproc) */
    _Atomic int dead;   /* set by whoever notices the link is gone */
    bool saw_epipe;     /* owner got FERRY_EPIPE/EPROTO from it: detach at the next sync */
    bool dirty;         /* owner: output was deferred (flush before blocking) */
    bool out_armed;     /* owner: EPOLLOUT is armed in the socket's epoll */
    bool attached;      /* owner: the pattern accepted it */
    bool ep_off;        /* owner: dead, its fds are out of the socket's epoll (they only hang up) */
    fy_pipe *sock_next; /* the socket's incoming / attached list */
    /* control thread only */
    fy_pipe *ctl_next, *ctl_prev;
    void *ctl_connecter; /* the connecter that made it, to reconnect when it dies */
    uint32_t ctl_events; /* events registered in the control epoll (rfd) */
    bool ctl_published;
    bool ctl_watch_in; /* owner looks idle: the control thread watches input (edge-triggered) */
    void *transport_data;
};

/*
 * Queues one frame for the peer. On success (0) the frame's content moves into the pipe and m is
 * left empty (re-initialised). Errors leave m untouched:
 *  - FERRY_EAGAIN: m is the FIRST frame of a message and the pipe already holds SNDHWM queued
 *    messages. Later frames of a message that was started are always accepted, so a started
 *    message is never split; patterns therefore only need to handle EAGAIN on the first frame
 *    (round-robin: try the next pipe; fan-out: drop for this pipe and count it with
 *    fy_socket_count_drop()). Frames with FY_MSG_SUB never get EAGAIN.
 *  - FERRY_EPIPE: the peer is gone (and FERRY_EPROTO if it misbehaved). Skip the pipe.
 * Patterns never flush: bytes go out immediately when the link is idle, are batched into one
 * writev under load, are always flushed before the caller blocks, and the control thread drains
 * what is left when the application stops calling.
 */
static inline int fy_pipe_send(fy_pipe *p, fy_msg *m)
{
    return p->ops->send(p, m);
}

/*
 * Takes the next frame from the peer into m (m's previous content is released first). Returns 0
 * (fy_msg_more(m) tells whether more frames of the same message follow: they must then be read
 * from this same pipe), FERRY_EAGAIN (no complete frame available right now; never blocks),
 * FERRY_EPIPE (peer gone and its input consumed) or FERRY_EPROTO (peer sent invalid data; the pipe
 * is now dead). Incoming SUBSCRIBE/CANCEL commands arrive as frames with FY_MSG_SUB (msg.h).
 */
static inline int fy_pipe_recv(fy_pipe *p, fy_msg *m)
{
    return p->ops->recv(p, m);
}

/* 1 when a frame is ready for fy_pipe_recv, else 0 (nothing yet, or the peer is gone). May read
 * from the kernel (non-blocking) and keeps what it read for the next fy_pipe_recv. For a pattern's
 * events() op. */
static inline int fy_pipe_poll_in(fy_pipe *p)
{
    return p->ops->poll_in(p);
}

/* true when fy_pipe_send of a first frame would not return FERRY_EAGAIN (below SNDHWM, or dead:
 * then send fails fast with FERRY_EPIPE). For round-robin choices and a pattern's events() op. */
static inline bool fy_pipe_can_send(fy_pipe *p)
{
    return p->ops->can_send(p);
}

#endif
