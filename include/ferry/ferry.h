/*
 * ferry.h - the public contract of the ferry messaging library.
 *
 * ferry gives ZeroMQ-style sockets whose same-host links run on lock-free shared-memory rings and
 * which speak ZMTP 3.1 on ipc:// and tcp://, so every ZeroMQ program is a peer.
 *
 * Conventions that hold for every declaration in this header:
 *  - Functions return int (or ssize_t for byte counts): >= 0 is success, a negative FERRY_E* code
 * is failure. FERRY_E* codes equal -errno on Linux where an errno exists; ferry never sets or
 * relies on errno for its own results.
 *  - Destructors (close/free/fini) accept NULL.
 *  - Ownership of every pointer argument and result is stated next to the declaration.
 */
#ifndef FERRY_FERRY_H
#define FERRY_FERRY_H

#include <errno.h>
#include <stddef.h>
#include <stdint.h>
#include <sys/types.h>

#ifdef __cplusplus
extern "C" {
#endif

#if defined(FERRY_STATIC)
#define FERRY_API
#elif defined(FERRY_BUILDING)
#define FERRY_API __attribute__((visibility("default")))
#else
#define FERRY_API
#endif

#define FERRY_VERSION_MAJOR 0
#define FERRY_VERSION_MINOR 1
#define FERRY_VERSION_PATCH 0

/* The library's version as "MAJOR.MINOR.PATCH"; static storage, never free it. */
FERRY_API const char *ferry_version(void);

/*
 * Error codes. X(name, value, message): values are -errno where Linux has one; conditions with no
 * errno equivalent live at -1000 and below so they can never collide with a future errno.
 */
#define FERRY_ERRORS(X)                                                                            \
    X(EPERM, -EPERM, "operation not permitted")                                                    \
    X(ENOENT, -ENOENT, "no such file, endpoint or object")                                         \
    X(EINTR, -EINTR, "interrupted by a signal")                                                    \
    X(EIO, -EIO, "input/output error")                                                             \
    X(EBADF, -EBADF, "bad file descriptor or closed handle")                                       \
    X(EAGAIN, -EAGAIN, "resource temporarily unavailable: try again")                              \
    X(ENOMEM, -ENOMEM, "out of memory")                                                            \
    X(EACCES, -EACCES, "permission denied")                                                        \
    X(EFAULT, -EFAULT, "bad address")                                                              \
    X(EBUSY, -EBUSY, "resource busy")                                                              \
    X(EEXIST, -EEXIST, "already exists")                                                           \
    X(ENODEV, -ENODEV, "no such device")                                                           \
    X(EINVAL, -EINVAL, "invalid argument")                                                         \
    X(EMFILE, -EMFILE, "too many open files")                                                      \
    X(ENOSPC, -ENOSPC, "no space left (memory file system full?)")                                 \
    X(EPIPE, -EPIPE, "broken pipe: peer has gone")                                                 \
    X(ERANGE, -ERANGE, "value out of range")                                                       \
    X(ENAMETOOLONG, -ENAMETOOLONG, "name too long")                                                \
    X(ENOSYS, -ENOSYS, "function not implemented by this kernel")                                  \
    X(EPROTO, -EPROTO, "protocol error: the peer or shared memory sent invalid data")              \
    X(EMSGSIZE, -EMSGSIZE, "message too long")                                                     \
    X(EPROTONOSUPPORT, -EPROTONOSUPPORT, "transport or protocol not supported")                    \
    X(ENOTSUP, -ENOTSUP, "operation not supported")                                                \
    X(EADDRINUSE, -EADDRINUSE, "address already in use")                                           \
    X(EADDRNOTAVAIL, -EADDRNOTAVAIL, "address not available")                                      \
    X(ENETDOWN, -ENETDOWN, "network is down")                                                      \
    X(ECONNABORTED, -ECONNABORTED, "connection aborted")                                           \
    X(ECONNRESET, -ECONNRESET, "connection reset by peer")                                         \
    X(ENOTCONN, -ENOTCONN, "not connected: no peer available")                                     \
    X(ETIMEDOUT, -ETIMEDOUT, "timed out")                                                          \
    X(ECONNREFUSED, -ECONNREFUSED, "connection refused")                                           \
    X(EHOSTUNREACH, -EHOSTUNREACH, "host unreachable")                                             \
    X(EALREADY, -EALREADY, "operation already in progress")                                        \
    X(EINPROGRESS, -EINPROGRESS, "operation now in progress")                                      \
    X(ENOTSOCK, -ENOTSOCK, "not a socket")                                                         \
    X(EOVERFLOW, -EOVERFLOW, "value too large for defined data type")                              \
    X(EFSM, -1001, "operation not valid in the socket's current state")                            \
    X(ETERM, -1002, "the socket or library is shutting down")                                      \
    X(ECHILD_FORK, -1003, "handle was inherited across fork() and cannot be used in the child")

enum ferry_error {
#define FERRY_ERRENUM_(name, value, msg) FERRY_##name = (value),
    FERRY_ERRORS(FERRY_ERRENUM_)
#undef FERRY_ERRENUM_
};

/* A human-readable message for a FERRY_E* code (or any negative errno); static storage. */
FERRY_API const char *ferry_strerror(int err);
/* The symbolic name ("FERRY_EPROTO") of a code, or "FERRY_E?" when unknown; static storage. */
FERRY_API const char *ferry_errname(int err);

/* ------------------------------------------------------------------------------------------- */
/* Sockets                                                                                     */
/* ------------------------------------------------------------------------------------------- */
/*
 * A ferry_socket is single-owner: use it from one thread at a time (like libzmq). Different sockets
 * may be used from different threads freely. Socket type numbers match libzmq's.
 */
typedef struct ferry_socket ferry_socket;

enum ferry_socket_type {
    FERRY_PAIR = 0,
    FERRY_PUB = 1,
    FERRY_SUB = 2,
    FERRY_REQ = 3,
    FERRY_REP = 4,
    FERRY_DEALER = 5,
    FERRY_ROUTER = 6,
    FERRY_PULL = 7,
    FERRY_PUSH = 8,
    FERRY_XPUB = 9,
    FERRY_XSUB = 10,
};

/* Opens a socket of a type above; *out is owned by the caller (ferry_socket_close). */
FERRY_API int ferry_socket_open(ferry_socket **out, int type);
/* Closes the socket, delivering queued output for up to FERRY_OPT_LINGER ms. Accepts NULL. */
FERRY_API void ferry_socket_close(ferry_socket *s);

/*
 * Endpoints: tcp://host:port (host may be *, an IPv4 address, [IPv6] or a name; port may be * on
 * bind), ipc://path, shm://name, inproc://name, fd://RFD,WFD (adopted pipe/FIFO/socketpair fds).
 * A socket may bind and connect to several endpoints. Connects complete in the background and
 * reconnect after loss; bind failures are reported synchronously.
 */
FERRY_API int ferry_socket_bind(ferry_socket *s, const char *url);
FERRY_API int ferry_socket_connect(ferry_socket *s, const char *url);
FERRY_API int ferry_socket_unbind(ferry_socket *s, const char *url);
FERRY_API int ferry_socket_disconnect(ferry_socket *s, const char *url);
/*
 * Adopts an already connected byte stream: rfd for reading, wfd for writing (the same fd for a
 * socketpair). The socket owns both fds on success (closed with it); the caller keeps them on
 * error.
 */
FERRY_API int ferry_socket_adopt(ferry_socket *s, int rfd, int wfd);
/* The bound endpoint as resolved (e.g. the real port after tcp://127.0.0.1:*). Copies a
 * NUL-terminated string of at most cap bytes. */
FERRY_API int ferry_socket_last_endpoint(ferry_socket *s, char *buf, size_t cap);

#define FERRY_DONTWAIT 0x1 /* fail with FERRY_EAGAIN instead of blocking */
#define FERRY_MORE     0x2 /* send: more frames of this message follow */

/* Sends one frame (copied). Returns 0 or a FERRY_E* code (EAGAIN, ETIMEDOUT, EFSM, ENOTSUP ...). */
FERRY_API int ferry_socket_send(ferry_socket *s, const void *buf, size_t len, int flags);
/*
 * Receives one frame into buf. Returns the frame's full length (which may exceed cap: then only cap
 * bytes were copied, as zmq_recv does) or a negative FERRY_E* code. *more (if non-NULL) is set to 1
 * when further frames of the same message follow.
 */
FERRY_API ssize_t ferry_socket_recv(ferry_socket *s, void *buf, size_t cap, int flags, int *more);

/*
 * Batches (docs/api.md "Batches"): many frames per call, so the per-call work (socket checks,
 * pattern dispatch, the shared-memory index publish and wake-up check) is paid once per batch
 * instead of once per frame. One entry is one frame, exactly as in ferry_socket_send/recv; a
 * message is a run of entries in which every entry but the last has FERRY_MORE. The caller owns
 * the array and every buffer; nothing is kept after the call returns.
 */
typedef struct ferry_iov {
    void *buf;   /* send: the frame's bytes (only read); recv: where the frame is copied */
    size_t len;  /* send: the frame's size; recv: the capacity of buf */
    size_t size; /* recv: set to the frame's full size (> len: truncated, only len bytes copied,
                  * as ferry_socket_recv); send: ignored */
    int flags;   /* send: FERRY_MORE or 0; recv: set to FERRY_MORE when more frames of the same
                  * message follow, else 0 */
} ferry_iov;

/*
 * Sends the frames v[0..n) in order, each copied as by ferry_socket_send. Waits (SNDTIMEO; never
 * with FERRY_DONTWAIT in flags) only until the first frame is accepted, then accepts whatever the
 * socket takes without waiting and returns how many entries it took (1..n). A short count means
 * the next message would have had to wait (peer at SNDHWM, shared-memory ring full) or failed;
 * send v + count later (a failure is then reported by that call). A started message is never
 * split: the count ends at a message boundary, at n, or at an error. Routing is the socket
 * type's, per message (PUSH round-robin, PUB fan-out with drops at HWM, ROUTER by the first
 * frame...). Every entry is validated before anything is sent. Errors (nothing was sent):
 * FERRY_EINVAL (n == 0 or > SSIZE_MAX, flags other than FERRY_DONTWAIT, an entry flag other than
 * FERRY_MORE), FERRY_EFAULT (v NULL, or an entry with buf NULL and len > 0), and whatever
 * ferry_socket_send returns (FERRY_EAGAIN on DONTWAIT/timeout, FERRY_ENOTSUP, FERRY_EFSM...).
 */
FERRY_API ssize_t ferry_socket_send_many(ferry_socket *s, const ferry_iov *v, size_t n, int flags);
/*
 * Receives up to n frames into v[0..n), each as by ferry_socket_recv (v[i].size, v[i].flags).
 * Waits (RCVTIMEO; never with FERRY_DONTWAIT) only for the first frame, then takes what is already
 * available without waiting and returns how many entries it filled (1..n). A message may span
 * calls: FERRY_MORE on the last filled entry means its next frame comes first in the next call.
 * Errors (nothing was received): FERRY_EINVAL (n == 0 or > SSIZE_MAX, flags other than
 * FERRY_DONTWAIT), FERRY_EFAULT (v NULL, or an entry with buf NULL and len > 0), and whatever
 * ferry_socket_recv returns (FERRY_EAGAIN on DONTWAIT/timeout, FERRY_ENOTSUP, FERRY_EFSM...).
 */
FERRY_API ssize_t ferry_socket_recv_many(ferry_socket *s, ferry_iov *v, size_t n, int flags);

/* Subscriptions (SUB/XSUB): messages whose first frame starts with prefix pass. */
FERRY_API int ferry_socket_subscribe(ferry_socket *s, const void *prefix, size_t len);
FERRY_API int ferry_socket_unsubscribe(ferry_socket *s, const void *prefix, size_t len);

/* ------------------------------------------------------------------------------------------- */
/* Messages                                                                                    */
/* ------------------------------------------------------------------------------------------- */
/*
 * A ferry_msg is one frame in caller-owned storage. Sending moves ownership of the content to the
 * library (the msg is left empty); receiving replaces any previous content (released first).
 */
typedef struct ferry_msg {
    uint64_t opaque_[8];
} ferry_msg;

typedef void ferry_free_fn(void *data, void *hint);

FERRY_API void ferry_msg_init(ferry_msg *m);
/* Allocates size bytes of content (FERRY_ENOMEM). */
FERRY_API int ferry_msg_init_size(ferry_msg *m, size_t size);
/* Zero-copy: the msg takes ownership of data and calls ffn(data, hint) when done (NULL ffn: the
 * caller keeps ownership and guarantees data outlives the send). */
FERRY_API int ferry_msg_init_data(ferry_msg *m, void *data, size_t size, ferry_free_fn *ffn,
                                  void *hint);
/* Releases the content. Accepts NULL and empty messages. */
FERRY_API void ferry_msg_fini(ferry_msg *m);
FERRY_API void *ferry_msg_data(ferry_msg *m);
FERRY_API size_t ferry_msg_size(const ferry_msg *m);
/* 1 when a received frame has more frames after it. */
FERRY_API int ferry_msg_more(const ferry_msg *m);
FERRY_API int ferry_msg_send(ferry_socket *s, ferry_msg *m, int flags);
FERRY_API int ferry_msg_recv(ferry_socket *s, ferry_msg *m, int flags);

/*
 * Zero-copy send (docs/shm.md "Zero-copy"). m (uninitialised or empty storage) gets size writable
 * bytes. When s is a PAIR, PUSH or DEALER socket whose only attached peer uses shared memory
 * (shm://, or ipc:// upgraded), that peer's ring has room for the frame as one record and nothing
 * of ours is queued behind the ring, the bytes ARE that space in the ring: ferry_msg_send(s, m)
 * then commits them in place with no copy. Returns 1 in that case, 0 when m is an ordinary heap
 * message instead (no such peer, several peers, too big, ring full, a loan already open on that
 * ring), or a FERRY_E* code (FERRY_ENOMEM, FERRY_ECHILD_FORK ...). ferry_msg_fini without sending
 * abandons the loan (the ring is left as it was). A loan sent when the peer set changed, the peer
 * died or other frames were queued meanwhile is copied (stats: loan_copies). Use a loan only on
 * the socket's owner thread (send or fini it there); the mapping stays valid until fini.
 */
FERRY_API int ferry_msg_loan(ferry_socket *s, ferry_msg *m, size_t size);
/* 1 when m's bytes are inside a shared-memory ring: an open loan, or a frame received in place
 * (FERRY_OPT_ZEROCOPY_RECV); else 0. */
FERRY_API int ferry_msg_is_loaned(const ferry_msg *m);
/* Shrinks m to its first size bytes (e.g. a loan larger than what was written). FERRY_ERANGE if
 * size exceeds the current size. */
FERRY_API int ferry_msg_trim(ferry_msg *m, size_t size);

/* ------------------------------------------------------------------------------------------- */
/* Options                                                                                     */
/* ------------------------------------------------------------------------------------------- */

enum ferry_option {
    FERRY_OPT_SNDHWM = 1,             /* int: messages queued per peer before send blocks/drops */
    FERRY_OPT_RCVHWM = 2,             /* int */
    FERRY_OPT_SNDTIMEO = 3,           /* int ms, -1 = forever (default) */
    FERRY_OPT_RCVTIMEO = 4,           /* int ms, -1 = forever (default) */
    FERRY_OPT_LINGER = 5,             /* int ms on close, -1 = forever; default 0 */
    FERRY_OPT_RECONNECT_IVL = 6,      /* int ms, default 100 */
    FERRY_OPT_RECONNECT_IVL_MAX = 7,  /* int ms, 0 = no backoff growth */
    FERRY_OPT_ROUTING_ID = 8,         /* bytes (1..255), sent as the Identity property */
    FERRY_OPT_HEARTBEAT_IVL = 9,      /* int ms, 0 = off */
    FERRY_OPT_HEARTBEAT_TTL = 10,     /* int ms */
    FERRY_OPT_HEARTBEAT_TIMEOUT = 11, /* int ms */
    FERRY_OPT_IMMEDIATE = 12,         /* int bool: queue only to completed connections */
    FERRY_OPT_RCVMORE = 13,           /* int, read-only */
    FERRY_OPT_TYPE = 14,              /* int, read-only */
    FERRY_OPT_SPIN_NS = 15, /* int ns: busy-poll window before sleeping; 0 = pure blocking */
    FERRY_OPT_SHM_UPGRADE =
        16, /* int bool: ipc:// ferry-to-ferry links switch to shm (default 1) */
    FERRY_OPT_SHM_RING_SIZE = 17, /* int bytes per direction for shm links */
    FERRY_OPT_PEER_UID = 18, /* int: uid allowed on ipc/shm besides our own, -1 = same uid only */
    /* int bool, default 0: ferry_msg_recv may hand out frames that stay inside an shm peer's ring
     * (read-only, released by ferry_msg_fini on the owner thread; see docs/shm.md) */
    FERRY_OPT_ZEROCOPY_RECV = 19,
    /* int bool, ROUTER only, default 0 (libzmq ZMQ_ROUTER_MANDATORY): a message to an unknown or
     * departed routing id fails with FERRY_EHOSTUNREACH instead of being dropped silently, and a
     * peer at SNDHWM makes send wait (FERRY_EAGAIN after SNDTIMEO / with DONTWAIT) instead of
     * dropping. The error comes from the send of the routing-id frame; nothing was sent. */
    FERRY_OPT_ROUTER_MANDATORY = 20,
    /* int bool, XPUB/PUB, default 0 (libzmq ZMQ_XPUB_VERBOSE): report every subscription a peer
     * sends, not only the first one for a prefix; cancels are still reported only when the last
     * holder drops a prefix. XPUB_* options are taken by a PUB too, as libzmq's PUB does: there
     * VERBOSE/VERBOSER change nothing (a PUB receives no notices), MANUAL stops subscriptions
     * being applied, WELCOME_MSG works as on XPUB. */
    FERRY_OPT_XPUB_VERBOSE = 21,
    /* int bool, REQ only, default 0 (libzmq ZMQ_REQ_RELAXED): send is allowed while a reply is
     * due; it abandons that request (its reply, if one comes, is dropped) and starts a new one on
     * the next peer. recv before any request is still FERRY_EFSM. Pair with REQ_CORRELATE, or a
     * late reply to the abandoned request may pass for the new one's. */
    FERRY_OPT_REQ_RELAXED = 22,
    /* int bool, REQ only, default 0 (libzmq ZMQ_REQ_CORRELATE): every request carries an extra
     * first frame, a 4-byte request id (host byte order, incremented per request from a random
     * start), in front of the empty delimiter; only a reply echoing the current id is accepted.
     * REP and ROUTER peers echo it as part of the envelope. */
    FERRY_OPT_REQ_CORRELATE = 23,
    /* int bool, ROUTER only, default 0 (libzmq ZMQ_ROUTER_HANDOVER): a new peer announcing a
     * routing id already in use takes it over (sends to the id reach it). Every whole message
     * the old peer had sent is still received, in order, under that id, and its connection is
     * closed once nothing of it is pending (libzmq drops that input; docs/sockets.md). Default:
     * the new peer is refused. */
    FERRY_OPT_ROUTER_HANDOVER = 24,
    /* int bool, XPUB/PUB, default 0 (libzmq ZMQ_XPUB_MANUAL): subscriptions from peers are not
     * applied; the application receives every one (0x01/0x00 + prefix, duplicates included) and
     * decides: ferry_socket_subscribe/unsubscribe on the XPUB then change the filter of the peer
     * whose notice it received last. A departing peer's requested prefixes are reported as
     * cancels. */
    FERRY_OPT_XPUB_MANUAL = 25,
    /* int bool, XPUB/PUB, default 0 (libzmq ZMQ_XPUB_VERBOSER): like XPUB_VERBOSE, and every
     * cancel is reported too (also from a holder that is not the last one, and for each prefix a
     * departing peer held). Setting XPUB_VERBOSE sets the subscribe half and clears this one. */
    FERRY_OPT_XPUB_VERBOSER = 26,
    /* bytes, XPUB/PUB, default empty (libzmq ZMQ_XPUB_WELCOME_MSG): a single-frame message sent
     * to every new subscriber as soon as its connection is up (subscribers filter it like any
     * message). 0 bytes: none. Applies to connections made after it is set. */
    FERRY_OPT_XPUB_WELCOME_MSG = 27,
};

FERRY_API int ferry_socket_setopt_int(ferry_socket *s, int opt, int64_t value);
FERRY_API int ferry_socket_getopt_int(ferry_socket *s, int opt, int64_t *value);
FERRY_API int ferry_socket_setopt_bytes(ferry_socket *s, int opt, const void *v, size_t len);
/* *len is the buffer size on entry and the value's size on return (FERRY_EMSGSIZE if too small). */
FERRY_API int ferry_socket_getopt_bytes(ferry_socket *s, int opt, void *buf, size_t *len);

/* ------------------------------------------------------------------------------------------- */
/* Polling and statistics                                                                      */
/* ------------------------------------------------------------------------------------------- */

#define FERRY_POLLIN  0x1
#define FERRY_POLLOUT 0x2

/*
 * A level-triggered fd owned by the socket: it polls readable (POLLIN) exactly while
 * ferry_socket_events() would report FERRY_POLLIN. Do not read from or close it.
 */
FERRY_API int ferry_socket_pollfd(ferry_socket *s);
/* The events the socket can perform now without blocking (FERRY_POLLIN|FERRY_POLLOUT), or < 0. */
FERRY_API int ferry_socket_events(ferry_socket *s);

typedef struct ferry_pollitem {
    ferry_socket *socket; /* or NULL to poll a plain fd */
    int fd;
    short events;  /* FERRY_POLLIN|FERRY_POLLOUT */
    short revents; /* filled in */
} ferry_pollitem;

/* Waits until an item is ready; returns how many are (0 on timeout) or a FERRY_E* code. */
FERRY_API int ferry_poll(ferry_pollitem *items, int n, int timeout_ms);

typedef struct ferry_stats {
    uint64_t msgs_in, msgs_out;
    uint64_t bytes_in, bytes_out;
    uint64_t drops_hwm;   /* messages dropped because a peer was at its HWM (PUB, XPUB, ROUTER) */
    uint32_t peers;       /* live peers */
    uint32_t peers_shm;   /* of which use the shared-memory data path */
    uint64_t zc_sends;    /* loans (ferry_msg_loan) committed in place, no copy */
    uint64_t zc_recvs;    /* frames ferry_msg_recv handed out in place (FERRY_OPT_ZEROCOPY_RECV) */
    uint64_t loan_copies; /* ferry_msg_loan calls that gave a heap message + loans copied at send */
} ferry_stats;

FERRY_API int ferry_socket_stats(ferry_socket *s, ferry_stats *out);

#ifdef __cplusplus
}
#endif
#endif /* FERRY_FERRY_H */
