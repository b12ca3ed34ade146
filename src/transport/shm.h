/*
 * shm.h - the shared-memory transport (shm://name and the ipc:// upgrade), private to the library.
 *
 * Three pieces, one file each:
 *  - shm_dir.c: where shm:// Unix sockets live ($XDG_RUNTIME_DIR/ferry/ or /tmp/ferry-$UID/, a
 *    0700 directory we own, 0600 socket files), listening with stale-socket replacement,
 *    connecting, and the SO_PEERCRED policy check.
 *  - shm_link.c: the link segment (one sealed memfd: a control header plus one SPSC ring per
 *    direction) and the small private exchange on the Unix socket that hands it over together with
 *    the two wake eventfds (SCM_RIGHTS). It runs after the ZMTP handshake, once both READYs said
 *    X-Ferry with the "shm" capability.
 *  - shm_pipe.c: the fy_pipe_ops over the two rings (frames as ring records, large frames streamed
 *    in chunks, HWM, waking the peer only when it sleeps, validation of everything the peer wrote).
 *
 * Roles: side 0 is the listener (it creates the segment), side 1 the connector. Ring i carries
 * data from side i to side 1 - i. Eventfd i wakes side i; the peer signals it only when side i
 * announced in the ring's wait word that it is about to sleep.
 */
#ifndef FERRY_TRANSPORT_SHM_H
#define FERRY_TRANSPORT_SHM_H

#include "core/pipe.h"
#include "ferry/ring.h"
#include "transport/transport.h"
#include "wire/zmtp.h"

#include <stdbool.h>
#include <stddef.h>
#include <stdint.h>

/* ---- runtime directory and sockets (shm_dir.c) ---- */

/* sizeof(sun_path) */
#define FY_SHM_PATH_MAX 108

/*
 * Resolves the runtime directory ($XDG_RUNTIME_DIR/ferry when XDG_RUNTIME_DIR is an absolute path
 * to an existing directory, else /tmp/ferry-$UID), creating it 0700 if missing. An existing
 * directory must be a real directory (not a symlink) owned by our effective uid with no group or
 * other permission bits: anything else is refused with FERRY_EACCES (someone could watch or
 * replace our sockets). Writes the NUL-terminated path to buf. FERRY_ENAMETOOLONG when it does not
 * fit cap.
 */
int fy_shm_dir(char *buf, size_t cap);
/* The socket path for shm://name: <dir>/<name>. name: 1..64 bytes, no '/', not "." or "..".
 * FERRY_EINVAL, FERRY_ENAMETOOLONG (does not fit a sun_path), or fy_shm_dir's errors. */
int fy_shm_path(const char *name, char *buf, size_t cap);
/*
 * Creates a listening, non-blocking, close-on-exec Unix socket at path with mode 0600. A socket
 * file left by a dead listener (connect to it is refused) is replaced; a live one is
 * FERRY_EADDRINUSE, and a path that exists but is not a socket is FERRY_EEXIST.
 */
int fy_shm_listen_path(const char *path, int *fd);
/* Removes the socket file if it is (still) a socket, and closes fd (either may be unset: NULL/-1).
 */
void fy_shm_unlisten_path(const char *path, int fd);
/* Starts a non-blocking connect to path: 0 (connected), FERRY_EINPROGRESS, or FERRY_E*
 * (FERRY_ENOENT: nobody bound it; FERRY_ECONNREFUSED: stale file; FERRY_EAGAIN: the listener's
 * backlog is full, retry later). */
int fy_shm_connect_path(const char *path, int *fd);
/*
 * SO_PEERCRED policy on a connected Unix socket: the peer's uid must equal our effective uid or
 * peer_uid (when >= 0). Returns 0 or FERRY_EACCES (FERRY_E* if the kernel cannot tell).
 */
int fy_shm_peer_check(int fd, int peer_uid);

/* ---- the link segment and its hand-over (shm_link.c) ---- */

#define FY_SHM_DEFAULT_RING (4u << 20) /* bytes per direction: a 1 MiB message fits 4 times */
#define FY_SHM_CAP          "shm"      /* X-Ferry capability name */

typedef struct fy_shm_link fy_shm_link;

/* Shared counters each consumer publishes (messages consumed from its ring) for the producer's
 * HWM accounting. Untrusted like everything else in the segment. */
typedef struct fy_shm_link_view {
    void *ring[2]; /* ring i: side i -> side 1 - i */
    size_t ring_bytes;
    _Atomic uint64_t *consumed[2]; /* consumed[i]: messages side 1 - i took out of ring i */
} fy_shm_link_view;

/* Rounds a requested ring size to a valid capacity (power of two in [4 KiB, 1 GiB]); 0 means
 * the default. FERRY_EINVAL for negative or absurd values. */
int fy_shm_ring_capacity(int64_t requested, size_t *cap);
/* The side's view of the mapped segment. */
void fy_shm_link_view_get(const fy_shm_link *l, fy_shm_link_view *v);
/* Eventfd that wakes `side` (owned by the link; non-blocking). */
int fy_shm_link_efd(const fy_shm_link *l, int side);
int fy_shm_link_side(const fy_shm_link *l);
/* Unmaps the segment and closes the eventfds. Accepts NULL. */
void fy_shm_link_free(fy_shm_link *l);

/*
 * The hand-over on the Unix socket, as a non-blocking state machine (the control thread drives
 * it from epoll; tests drive it with poll). The connector sends a request, the listener answers
 * with the segment memfd and both eventfds (SCM_RIGHTS), the connector validates and maps them
 * and acknowledges. The request exists so that the connector has stopped reading the socket with
 * plain read() (which would discard passed descriptors) before any descriptor is in flight.
 */
typedef struct fy_shm_hs {
    int side; /* 0 listener, 1 connector */
    int state;
    size_t ring_cap; /* listener: capacity to create */
    uint8_t buf[32]; /* bytes of the current message */
    size_t have;     /* bytes of buf done (sent or received) */
    int got_fds[3];  /* connector: descriptors received with the offer, -1 when none */
    fy_shm_link *link;
    const char *why; /* static reason of the failure */
} fy_shm_hs;

/* Prepares a hand-over (side 0 or 1; ring_cap from fy_shm_ring_capacity, used by side 0). */
void fy_shm_hs_init(fy_shm_hs *hs, int side, size_t ring_cap);
/*
 * Advances the hand-over on fd. Returns 1 when done (take the link with fy_shm_hs_take), 0 when it
 * needs fd readable (*want_out false) or writable (*want_out true), < 0 on failure: FERRY_EPROTO
 * (the peer sent something invalid; hs->why says what), FERRY_ECONNRESET (the peer hung up),
 * FERRY_ENOMEM/ENOSPC/EMFILE (resources), FERRY_ECONNREFUSED (the peer declined).
 */
int fy_shm_hs_step(fy_shm_hs *hs, int fd, bool *want_out);
/* Bytes of the hand-over that arrived before it started (read by the ZMTP engine together with the
 * peer's READY). Only the listener's request can legitimately be among them: anything else is
 * FERRY_EPROTO. */
int fy_shm_hs_feed(fy_shm_hs *hs, const uint8_t *data, size_t len);
/* Hands the finished link to the caller (NULL before success). */
fy_shm_link *fy_shm_hs_take(fy_shm_hs *hs);
/* Releases whatever an unfinished hand-over holds. */
void fy_shm_hs_fini(fy_shm_hs *hs);

/* ---- the pipe (shm_pipe.c) ---- */

typedef struct fy_shm_pipe_cfg {
    int sndhwm;       /* messages; <= 0 = no limit beyond the ring */
    uint64_t max_msg; /* largest frame accepted from the peer; 0 = FY_ZMTP_DEFAULT_MAX_MSG */
} fy_shm_pipe_cfg;

/*
 * Creates a pipe over a finished link. The pipe owns link and usock (also on failure: freed and
 * closed). p->rfd is the eventfd that wakes this side (put it in the socket's epoll); usock is the
 * Unix socket whose hang-up means the peer is gone (watch it and call fy_shm_pipe_kill).
 */
int fy_shm_pipe_new(fy_pipe **out, fy_socket *s, fy_shm_link *link, int usock,
                    const fy_shm_pipe_cfg *cfg);
bool fy_pipe_is_shm(const fy_pipe *p);
int fy_shm_pipe_usock(const fy_pipe *p);
/* The pipe's link (still owned by the pipe): tests use it to play a hostile peer. */
fy_shm_link *fy_shm_pipe_link(const fy_pipe *p);
/* Any thread: the peer is gone (hang-up) or broke the protocol; idempotent. Input already in the
 * ring is still delivered. */
void fy_shm_pipe_kill(fy_pipe *p, int err);
/* Why the pipe died (0 while alive). */
int fy_shm_pipe_error(const fy_pipe *p);
/*
 * Owner, right before sleeping in epoll on p->rfd: announces the sleep to the peer (ring wait
 * words) and clears stale wake-ups. Returns 1 when sleeping is safe, 0 when something became
 * ready meanwhile (do not sleep; call recv/send again).
 */
int fy_shm_pipe_prepare_wait(fy_pipe *p, bool want_in, bool want_out);
/* Control thread (tail flush): moves frames the owner left queued into the ring. Returns 0 when
 * none is left, 1 while frames are still queued but some moved, 2 when none could move (the ring
 * stayed full). */
int fy_shm_pipe_ctl_flush(fy_pipe *p);
/*
 * Control thread, after fy_shm_pipe_ctl_flush answered 2 (ring full, nothing moved): waits for
 * the consumer's next release instead of polling. Arms the ring's writable word for a sleeper and
 * registers this side's wake eventfd in epfd (EPOLLIN | EPOLLET, with data; never read it: the
 * owner does), then flushes once more. 1: watching, nothing moved (wait for the event); 0: the
 * flush after arming moved frames or the pipe is dead (flush again soon; the watch may stay on);
 * < 0: epoll_ctl failed (-errno; poll on a timer). The watch stays until fy_shm_pipe_ctl_unwatch
 * (idempotent), which the control thread calls as soon as a flush answers anything but 2, and
 * fy_shm_pipe_free calls too.
 */
int fy_shm_pipe_ctl_watch(fy_pipe *p, int epfd, uint64_t data);
void fy_shm_pipe_ctl_unwatch(fy_pipe *p);
/* Frees the pipe: closes its fds; the segment is unmapped (and the link's eventfds closed) once
 * no loan or in-ring frame refers to it any more. Accepts NULL. */
void fy_shm_pipe_free(fy_pipe *p);

/* ---- zero copy (shm_pipe.c; docs/shm.md "Zero-copy"; owner thread only) ---- */

/* The shm pipe doing p's work: p for shm://, the inner pipe of an upgraded ipc:// link, else NULL.
 */
fy_pipe *fy_shm_pipe_of(fy_pipe *p);
/* Lends size bytes of the shm pipe's (fy_shm_pipe_of) ring as m (an open reservation; see
 * ferry_msg_loan). 0, or FERRY_EAGAIN (ring full or frames queued), FERRY_EBUSY (a loan is open),
 * FERRY_EMSGSIZE (not one record), FERRY_EPIPE/EPROTO (dead): the caller falls back to the heap.
 * user: the loan counts as zc_sends when committed. */
int fy_shm_pipe_loan(fy_pipe *p, fy_msg *m, size_t size, bool user);
/* Waits up to timeout_ms for room for a loan of size bytes: 0, FERRY_ETIMEDOUT, FERRY_EAGAIN
 * (frames are queued behind the ring: no loan now), FERRY_EPIPE/EPROTO, FERRY_EINTR. */
int fy_shm_pipe_wait_room(fy_pipe *p, size_t size, int timeout_ms);
/*
 * ferry_socket_send's loan: fy_shm_pipe_loan (user false), and when the ring is full or frames
 * are queued, waits a bounded time (at most timeout_ms when >= 0; 0 = not at all) for the
 * consumer to make room instead of failing at once (the caller would then queue a heap copy).
 * FERRY_EAGAIN when it gave up (the consumer is not reading, or the wait expired): fall back to
 * the heap. See docs/shm.md "Flow control".
 */
int fy_shm_pipe_send_loan(fy_pipe *p, fy_msg *m, size_t size, int timeout_ms);
/* true when m is the open loan of the shm pipe behind p. */
bool fy_shm_loan_on(const fy_msg *m, fy_pipe *p);
/* Turns a loan or in-ring frame into an ordinary heap copy (the loan's reservation is cancelled,
 * the frame released); other messages are left alone. 0 or FERRY_ENOMEM (m untouched). */
int fy_shm_msg_unloan(fy_msg *m);
/*
 * fy_socket.zc_rx_mode for ferry_socket_recv on PULL/PAIR/DEALER, whose patterns hand each frame
 * straight back: a frame may stay in the ring as a transient hold (no share reference), which the
 * caller copies out and gives to fy_shm_msg_done in the same call, before anything can detach the
 * pipe (no fy_socket_sync in between).
 */
#define FY_ZC_RX_TRANSIENT 3
/* Drops m: a transient in-ring frame is released on the spot (no atomic read-modify-write, no
 * mutex, no indirect call); anything else goes through fy_msg_fini. Owner thread. */
void fy_shm_msg_done(fy_msg *m);
/* ferry_socket_send's loan (fy_shm_pipe_loan with user false) is transient: it takes no share
 * reference, so it may only live while its pipe is surely attached (no fy_socket_sync since it
 * was made). fy_shm_msg_transient_loan: m's content when it is such a loan, else NULL.
 * fy_shm_loan_pin: after the first send attempt, turns the loan into an ordinary referenced one
 * if it still exists (not sent: the caller will wait and sync; or queued by the pattern). */
fy_msg_content *fy_shm_msg_transient_loan(const fy_msg *m);
void fy_shm_loan_pin(fy_msg_content *c);

/*
 * The owner's direct path (a pattern's direct pipe, see fy_engine_send_buf/recv_buf: same
 * contract): whole single-frame messages between the caller's buffer and the ring, no fy_msg, no
 * pattern. FY_SHM_DECLINE (== FY_ENG_DECLINE) when p is not a switched shm link or the frame
 * needs the general path (send: ring full, frames queued, a loan open, a message half sent,
 * dead, larger than one record; recv: nothing there, MORE, a subscription, a chunk, a held frame,
 * anything invalid). send: 0 = in the ring and published. recv: 0 = a frame of *size bytes was
 * taken, its first min(*size, cap) bytes copied to buf. Owner thread, pipe attached.
 */
#define FY_SHM_DECLINE 1 /* == FY_ENG_DECLINE (transport.h) */
int fy_shm_send_buf(fy_pipe *p, const void *buf, size_t len);
int fy_shm_recv_buf(fy_pipe *p, void *buf, size_t cap, size_t *size);
/*
 * fy_shm_recv_buf that, when the ring is empty, busy-polls it for the pipe's spin window for a
 * socket whose FERRY_OPT_SPIN_NS is base_ns (fy_shm_pipe_spin_ns: base_ns plus an extra that grows
 * with the size of the last frame received; base_ns 0: not at all), within the socket's RCVTIMEO
 * timeout_ms (-1: no limit), before declining: a receive that has to wait then takes the frame the
 * moment it lands through this path instead of the general spin loop (pattern, pipe ops, an in-ring
 * hold: about three times the instructions per frame). Gives up early, declining, when the pipe
 * dies, the socket's pipe set changes or a record arrives that the direct path does not take. Owner
 * thread.
 */
int fy_shm_recv_buf_wait(fy_pipe *p, void *buf, size_t cap, size_t *size, uint64_t base_ns,
                         int timeout_ms);
/* The receive's spin window on the shm pipe p for a socket whose FERRY_OPT_SPIN_NS is base_ns
 * (0 stays 0): base_ns plus an extra that grows with the size of the last frame received (see
 * shm_pipe.c: the peer's copies of a large answer outlast SPIN_NS). */
uint64_t fy_shm_pipe_spin_ns(const fy_pipe *p, uint64_t base_ns);
/* The same on the shm pipe itself (shm_pipe.c); its recv_buf answers FY_SHM_EMPTY (not
 * FY_SHM_DECLINE) when the ring is simply empty. */
#define FY_SHM_EMPTY 2
int fy_shm_pipe_send_buf(fy_pipe *p, const void *buf, size_t len);
/* ferry_msg_send's direct path: commits m, the user's open loan on p's ring, in place as a whole
 * single-frame message (flags 0). 0 (m consumed), FY_SHM_DECLINE (m untouched: take the general
 * path), FERRY_EPROTO (the ring refused the commit; m consumed, the pipe failed). fy_shm_send_loan:
 * the same on a pattern's direct pipe (FY_SHM_DECLINE when it is not a switched shm link). */
int fy_shm_pipe_send_loan_direct(fy_pipe *p, fy_msg *m);
int fy_shm_send_loan(fy_pipe *p, fy_msg *m);
int fy_shm_pipe_recv_buf(fy_pipe *p, void *buf, size_t cap, size_t *size);

/* ---- shm:// and the switch of an engine link to shared memory (shm.c) ---- */

/* The X-Ferry value for our READY on fd: offers "shm" when cfg->shm and fd is a Unix socket. */
const char *fy_shm_ferry_caps(int fd, const fy_link_cfg *cfg);
/*
 * Engine, control thread, right after the peer's READY: decides whether this link switches (both
 * offered shm, exactly one end of the Unix socket has a name) and if so prepares the hand-over,
 * taking the bytes the engine read past READY. 1 = switching (drive fy_shm_eng_step until it
 * returns 1, then publish the pipe), 0 = stay on ZMTP, < 0 = fail the link.
 */
int fy_shm_eng_ready(fy_pipe *p, int fd, const fy_link_cfg *cfg, const fy_zmtp_peer_info *info,
                     const uint8_t *left, size_t left_len);
/* Engine, control thread: advances the hand-over (see fy_shm_hs_step). On 1 the pipe now runs on
 * the rings: p->ops, p->rfd (the wake eventfd) and p->wfd (-1) have been switched. */
int fy_shm_eng_step(fy_pipe *p, bool *want_out);
/* True for a pipe that switched to shared memory (counts as peers_shm). */
bool fy_pipe_uses_shm(const fy_pipe *p);
/* The Unix socket of a switched pipe (the control thread watches it for the hang-up). */
int fy_shm_eng_ufd(const fy_pipe *p);
/* The engine died: the shm side follows (idempotent). */
void fy_shm_eng_kill(fy_pipe *p, int err);
/* Control thread: the tail flush of a switched pipe (see fy_shm_pipe_ctl_flush). */
int fy_shm_eng_ctl_flush(fy_pipe *p);
/* Control thread: fy_shm_pipe_ctl_watch / unwatch on a switched pipe (0 / nothing otherwise). */
int fy_shm_eng_ctl_watch(fy_pipe *p, int epfd, uint64_t data);
void fy_shm_eng_ctl_unwatch(fy_pipe *p);
/* Frees the shm side of p (if any) and gives p back its Unix socket fds. */
void fy_shm_eng_free(fy_pipe *p);
/* The shm pipe inside a switched engine pipe, else NULL. */
fy_pipe *fy_shm_eng_inner(fy_pipe *p);

#endif
