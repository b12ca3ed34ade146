/*
 * socket.h - the socket object shared by the core files (socket.c, ctl.c) and the transports.
 *
 * A socket is used by one owner thread at a time. The control thread (ctl.c) never touches the
 * owner-side fields: it publishes new pipes on `incoming` under `lock`, bumps `gen` and signals
 * `sigfd`; the owner notices the generation change on its next call and attaches/detaches pipes
 * (fy_socket_sync). That one atomic load is all the hot path pays for the control thread.
 */
#ifndef FERRY_CORE_SOCKET_H
#define FERRY_CORE_SOCKET_H

#include "core/pipe.h"
#include "pattern/pattern.h"

#include <pthread.h>
#include <stdatomic.h>
#include <stdbool.h>
#include <sys/types.h>

#define FY_DEFAULT_HWM     1000
#define FY_DEFAULT_SPIN_NS 30000
#define FY_ENDPOINT_MAX    1100

typedef struct fy_ctl_sock fy_ctl_sock;

struct ferry_socket {
    const fy_pattern_ops *ops;
    void *pstate;
    int type;
    pid_t owner_pid;
    fy_sockopts popts;

    /* options (owner thread writes; ctl reads the ones it needs only inside fy_ctl_call) */
    int sndtimeo, rcvtimeo, linger;
    int reconnect_ivl, reconnect_ivl_max;
    int hb_ivl, hb_ttl, hb_timeout;
    int immediate, spin_ns, shm_upgrade, shm_ring_size;
    int peer_uid;
    int zc_recv;    /* FERRY_OPT_ZEROCOPY_RECV */
    int zc_rx_mode; /* during a recv: 0 copy, 1 in place for the library, 2 in place for the user */

    /* attached pipes: owner thread only */
    fy_pipe *pipes;
    uint32_t npipes;
    uint64_t seen_gen;
    bool rcvmore;      /* the last frame received had MORE */
    bool sndmore;      /* a message is being sent (last frame sent had MORE) */
    bool reap_pending; /* a dead pipe is still attached (input left to drain) */
    _Atomic int
        pollfd_on;     /* the user asked for the pollfd: keep sigfd signalled while input waits */
    unsigned fork_gen; /* fy_fork_gen() at open: used in a forked child -> ECHILD_FORK */

    /* published by the control thread / inproc peers */
    _Atomic uint64_t gen;
    pthread_mutex_t lock; /* protects incoming */
    fy_pipe *incoming;    /* live pipes not yet attached */
    _Atomic int sleeping; /* owner is (about to be) in epoll_wait: wake it through sigfd */
    /* ns the stream engines of this socket spent in write calls made on a send's path
     * (engine.c eng_send_done: a link is "quiet" only when the application was, not while
     * other links of the same socket were writing) */
    _Atomic uint64_t eng_write_ns;

    int epfd;  /* per-socket epoll: pipe fds + sigfd; also the user's pollfd */
    int sigfd; /* eventfd: pipe-set changes, inproc traffic, buffered input */

    /* statistics (owner thread) */
    uint64_t msgs_in, msgs_out, bytes_in, bytes_out;
    uint64_t zc_sends, zc_recvs, loan_copies; /* docs/shm.md "Zero-copy" */
    _Atomic uint64_t drops_hwm;

    fy_msg_content *tx_cache; /* owner: body block reused by ferry_socket_send (msg.h) */
    fy_msg_pool tx_pool;      /* owner: large blocks reused by ferry_socket_send */
    fy_msg_pool rx_pool;      /* owner: large blocks reused by the stream engine's bodies */

    char last_endpoint[FY_ENDPOINT_MAX];
    fy_ctl_sock *ctl; /* control-thread side record (ctl.c) */
};

/* Control thread / inproc: publish a new live pipe to its socket (any thread). */
void fy_socket_publish_pipe(fy_socket *s, fy_pipe *p);
/* Any thread: something changed for this socket (a pipe died): bump gen and wake the owner. */
void fy_socket_notify(fy_socket *s);
/* Any thread: wake the owner if it sleeps or uses the pollfd (inproc traffic). */
void fy_socket_wake(fy_socket *s);
/* Any thread: signal sigfd unconditionally (input was buffered behind the owner's back). */
void fy_socket_raise(fy_socket *s);
/* Owner: attach/detach pipes after a generation change. The check is inline: every send and
 * receive makes it, and a call per check cost more than the check (callgrind, shm PUSH->PULL:
 * 17 instructions per call, most of them the call's register saves). */
void fy_socket_sync_slow_(fy_socket *s, uint64_t gen);
static inline void fy_socket_sync(fy_socket *s)
{
    /* acquire: pairs with the release bump of gen in fy_socket_notify (which
     * fy_socket_publish_pipe calls): what the control thread published is visible once we see
     * the new value. */
    uint64_t g = atomic_load_explicit(&s->gen, memory_order_acquire);
    if (__builtin_expect(g != s->seen_gen || s->reap_pending, 0))
        fy_socket_sync_slow_(s, g);
}

/* Counts fork() children (changes in a child): a value saved before tells whether we forked. */
unsigned fy_fork_gen(void);

/* Monotonic nanoseconds. */
uint64_t fy_now_ns(void);

#endif
