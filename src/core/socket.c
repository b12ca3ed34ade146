/*
 * socket.c - the public socket API: open/close, options, bind/connect dispatch, send/recv with
 * waiting, the pollfd, ferry_poll and statistics.
 *
 * The pattern (src/pattern/) decides which pipe a frame goes to or comes from and never blocks;
 * this file turns its FERRY_EAGAIN into waiting: first a bounded busy-poll window (SPIN_NS, the
 * non-blocking sockets are polled directly: a busy-polled Unix-socket round trip is an order of
 * magnitude faster than waking a sleeping vCPU), then a sleep in the socket's own epoll set, which
 * holds every pipe fd plus an eventfd (sigfd) for pipe-set changes and fd-less pipes (inproc).
 * The same epoll fd is the user's level-triggered pollfd.
 */
#include "core/socket.h"
#include "common/copy.h"
#include "common/epwait.h"
#include "core/ctl.h"
#include "core/endpoint.h"
#include "ring/wait_internal.h"
#include "transport/shm.h"
#include "transport/transport.h"

#include <errno.h>
#include <fcntl.h>
#include <poll.h>
#include <pthread.h>
#include <stdio.h>
#include <stdlib.h>
#include <string.h>
#include <sys/epoll.h>
#include <sys/eventfd.h>
#include <time.h>
#include <unistd.h>

/* ---- fork detection without a getpid() system call per operation ---- */

static _Atomic unsigned fy_fork_generation;
static pthread_once_t fy_fork_once = PTHREAD_ONCE_INIT;

static void fy_fork_child(void)
{
    atomic_fetch_add(&fy_fork_generation, 1);
}

static void fy_fork_init(void)
{
    pthread_atfork(NULL, NULL, fy_fork_child);
}

unsigned fy_fork_gen(void)
{
    return atomic_load_explicit(&fy_fork_generation, memory_order_relaxed);
}

uint64_t fy_now_ns(void)
{
    struct timespec ts;
    clock_gettime(CLOCK_MONOTONIC, &ts);
    return (uint64_t)ts.tv_sec * 1000000000ull + (uint64_t)ts.tv_nsec;
}

static int sock_check(ferry_socket *s)
{
    if (!s)
        return FERRY_EBADF;
    if (s->fork_gen != atomic_load_explicit(&fy_fork_generation, memory_order_relaxed))
        return FERRY_ECHILD_FORK;
    return 0;
}

/* ---- pattern-facing accessors (pattern.h) ---- */

int fy_socket_type(const fy_socket *s)
{
    return s->type;
}

const fy_sockopts *fy_socket_opts(const fy_socket *s)
{
    return &s->popts;
}

void fy_socket_count_drop(fy_socket *s, uint64_t n)
{
    atomic_fetch_add_explicit(&s->drops_hwm, n, memory_order_relaxed);
}

/* ---- cross-thread signalling ---- */

void fy_socket_raise(fy_socket *s)
{
    uint64_t one = 1;
    ssize_t r = write(s->sigfd, &one, sizeof one);
    (void)r; /* a saturated eventfd is readable anyway */
}

void fy_socket_wake(fy_socket *s)
{
    /* Pairs with the seq_cst store of `sleeping` before the owner's last check: either the owner
     * sees the new data in that check, or we see it sleeping here. */
    atomic_thread_fence(memory_order_seq_cst);
    if (atomic_load(&s->sleeping) || atomic_load_explicit(&s->pollfd_on, memory_order_relaxed))
        fy_socket_raise(s);
}

void fy_socket_notify(fy_socket *s)
{
    atomic_fetch_add_explicit(&s->gen, 1, memory_order_release);
    fy_socket_raise(s);
}

void fy_socket_publish_pipe(fy_socket *s, fy_pipe *p)
{
    p->pattern_data = NULL;
    p->pattern_u64 = 0;
    pthread_mutex_lock(&s->lock);
    /* Under the lock the owner's subscription changes also take, so p gets either the state
     * before a change (and then the change itself, as a pending pipe) or the state after it. */
    if (s->ops->link_up)
        s->ops->link_up(s, s->pstate, p);
    p->sock_next = s->incoming;
    s->incoming = p;
    pthread_mutex_unlock(&s->lock);
    fy_socket_notify(s);
}

void fy_socket_links_lock(fy_socket *s)
{
    pthread_mutex_lock(&s->lock);
}

void fy_socket_links_unlock(fy_socket *s)
{
    pthread_mutex_unlock(&s->lock);
}

void fy_socket_foreach_pending(fy_socket *s, void (*fn)(void *ctx, fy_pipe *p), void *ctx)
{
    for (fy_pipe *p = s->incoming; p; p = p->sock_next)
        fn(ctx, p);
}

void fy_socket_drop_pipe(fy_socket *s, fy_pipe *p)
{
    /* Treated like a pipe that returned FERRY_EPIPE: the next sync detaches and releases it,
     * which closes the connection. */
    p->saw_epipe = true;
    s->reap_pending = true;
}

/* ---- pipe set ---- */

/* epoll data of a socket's epoll: 0 = sigfd; a pipe pointer tagged 0 (rfd), 1 (separate wfd) or
 * 2 (the Unix socket of a shared-memory link, watched for its hang-up). */
#define SOCK_EV_WFD   1u
#define SOCK_EV_USOCK 2u

static void sock_epoll_add(fy_socket *s, fy_pipe *p)
{
    if (p->rfd < 0)
        return;
    struct epoll_event e = {.events = EPOLLIN, .data.ptr = p};
    epoll_ctl(s->epfd, EPOLL_CTL_ADD, p->rfd, &e);
    if (fy_pipe_uses_shm(p)) {
        /* The peer's death is the hang-up of this socket. The control thread watches it too,
         * but an owner asleep here must not depend on that thread being scheduled promptly on a
         * loaded machine: the hang-up wakes it directly (once: ONESHOT, no level-triggered spin
         * for pollfd users while the pipe is being taken down). */
        struct epoll_event u = {.events = EPOLLRDHUP | EPOLLONESHOT,
                                .data.u64 = (uint64_t)(uintptr_t)p | SOCK_EV_USOCK};
        epoll_ctl(s->epfd, EPOLL_CTL_ADD, fy_shm_eng_ufd(p), &u);
    }
}

static void sock_disarm(fy_socket *s, fy_pipe *p)
{
    if (!p->out_armed)
        return;
    p->out_armed = false;
    if (p->wfd == p->rfd) {
        struct epoll_event e = {.events = EPOLLIN, .data.ptr = p};
        epoll_ctl(s->epfd, EPOLL_CTL_MOD, p->rfd, &e);
    } else {
        epoll_ctl(s->epfd, EPOLL_CTL_DEL, p->wfd, NULL);
    }
}

static void sock_arm(fy_socket *s, fy_pipe *p)
{
    if (p->out_armed || p->wfd < 0)
        return;
    p->out_armed = true;
    if (p->wfd == p->rfd) {
        struct epoll_event e = {.events = EPOLLIN | EPOLLOUT, .data.ptr = p};
        epoll_ctl(s->epfd, EPOLL_CTL_MOD, p->rfd, &e);
    } else {
        struct epoll_event e = {.events = EPOLLOUT,
                                .data.u64 = (uint64_t)(uintptr_t)p | SOCK_EV_WFD};
        epoll_ctl(s->epfd, EPOLL_CTL_ADD, p->wfd, &e);
    }
}

static void sock_epoll_del(fy_socket *s, fy_pipe *p)
{
    sock_disarm(s, p);
    if (p->rfd >= 0)
        epoll_ctl(s->epfd, EPOLL_CTL_DEL, p->rfd, NULL);
    if (fy_pipe_uses_shm(p))
        epoll_ctl(s->epfd, EPOLL_CTL_DEL, fy_shm_eng_ufd(p), NULL);
}

static void sock_detach(fy_socket *s, fy_pipe *p)
{
    for (fy_pipe **pp = &s->pipes; *pp; pp = &(*pp)->sock_next) {
        if (*pp == p) {
            *pp = p->sock_next;
            break;
        }
    }
    s->npipes--;
    s->ops->detach(s, s->pstate, p);
    if (!p->ep_off)
        sock_epoll_del(s, p);
    p->sock_next = NULL;
    p->ops->release(p);
}

/* A dead pipe goes once the pattern has consumed what the peer sent before dying. */
static bool sock_reapable(fy_socket *s, fy_pipe *p)
{
    if (p->saw_epipe || !s->ops->recv)
        return true;
    if (!fy_pipe_poll_in(p))
        return true;
    return !p->ops->has_input(p);
}

void fy_socket_sync_slow_(fy_socket *s, uint64_t g)
{
    s->seen_gen = g;
    s->reap_pending = false;
    for (fy_pipe *p = s->pipes, *n; p; p = n) {
        n = p->sock_next;
        if (!atomic_load_explicit(&p->dead, memory_order_acquire) && !p->saw_epipe)
            continue;
        if (sock_reapable(s, p)) {
            sock_detach(s, p);
        } else {
            s->reap_pending = true;
            /* Its input is complete and polled directly; a dead socket fd stays readable (hang-up)
             * and would turn every sleep of the owner into a busy loop until it is drained. */
            if (!p->ep_off) {
                sock_epoll_del(s, p);
                p->ep_off = true;
            }
        }
    }
    pthread_mutex_lock(&s->lock);
    fy_pipe *in = s->incoming, *rev = NULL;
    s->incoming = NULL;
    pthread_mutex_unlock(&s->lock);
    /* fy_socket_publish_pipe pushes at the head: attach in arrival order, oldest first. A dead
     * PAIR peer must be seen before the peer that replaces it (it then drains, pair.c), and a
     * ROUTER_HANDOVER id goes to the newest claimant. */
    while (in) {
        fy_pipe *n = in->sock_next;
        in->sock_next = rev;
        rev = in;
        in = n;
    }
    in = rev;
    while (in) {
        fy_pipe *p = in;
        in = p->sock_next;
        p->sock_next = NULL;
        /* A peer that sent and left before we got here still delivers what it sent. */
        bool dead = atomic_load(&p->dead) != 0;
        if ((dead && (p->saw_epipe || !s->ops->recv || !fy_pipe_poll_in(p))) ||
            s->ops->attach(s, s->pstate, p) != 0) {
            if (!dead)
                fy_ctl_note_error(s, "peer refused by the socket pattern (e.g. PAIR is taken)");
            p->ops->release(p);
            continue;
        }
        p->attached = true;
        if (dead)
            s->reap_pending = true; /* detach once its input is consumed */
        p->sock_next = s->pipes;
        s->pipes = p;
        s->npipes++;
        if (dead)
            p->ep_off = true;
        else
            sock_epoll_add(s, p);
    }
}

/* ---- waiting ---- */

static void sock_flush_all(fy_socket *s)
{
    for (fy_pipe *p = s->pipes; p; p = p->sock_next)
        if (p->dirty)
            p->ops->flush(p);
}

/*
 * The pipe a loan may live in (docs/shm.md "Zero-copy"): the only attached peer of a PAIR, PUSH
 * or DEALER socket (the pipe every pattern choice lands on), when it is alive and runs on shared
 * memory. NULL otherwise.
 */
static fy_pipe *sock_loan_pipe(fy_socket *s)
{
    if (s->type != FERRY_PAIR && s->type != FERRY_PUSH && s->type != FERRY_DEALER)
        return NULL;
    fy_pipe *p = s->pipes;
    if (s->npipes != 1 || !p || p->saw_epipe ||
        atomic_load_explicit(&p->dead, memory_order_relaxed))
        return NULL;
    return fy_shm_pipe_of(p) ? p : NULL;
}

/* A frame in shared memory about to be sent: only a loan still owned by the pipe the pattern
 * will choose is committed in place; anything else becomes a heap copy first (a loan whose peer
 * changed or died, a received in-ring frame being forwarded). */
static int sock_settle_zc(fy_socket *s, fy_msg *m)
{
    unsigned zc = fy_msg_zc(m);
    if (zc == FY_MSG_ZC_LOAN && fy_shm_loan_on(m, sock_loan_pipe(s)))
        return 0;
    int rc = fy_shm_msg_unloan(m);
    if (rc == 0 && zc == FY_MSG_ZC_LOAN)
        s->loan_copies++;
    return rc;
}

static int sock_op(fy_socket *s, bool out, fy_msg *m)
{
    fy_socket_sync(s);
    if (out && __builtin_expect(fy_msg_zc(m) != FY_MSG_ZC_NONE, 0)) {
        int rc = sock_settle_zc(s, m);
        if (rc < 0)
            return rc;
    }
    return out ? s->ops->send(s, s->pstate, m) : s->ops->recv(s, s->pstate, m);
}

static void sock_drain_sig(fy_socket *s)
{
    uint64_t v;
    ssize_t r = read(s->sigfd, &v, sizeof v);
    (void)r;
}

/* Sleeps in the socket's epoll until something may have changed or the deadline passes. Returns
 * 0 or FERRY_EINTR. */
static int sock_sleep(fy_socket *s, uint64_t deadline)
{
    for (fy_pipe *p = s->pipes; p; p = p->sock_next)
        if (p->dirty && p->ops->flush(p) == 1)
            sock_arm(s, p);
    uint64_t wait_ns = UINT64_MAX;
    if (deadline != UINT64_MAX) {
        uint64_t now = fy_now_ns();
        wait_ns = deadline > now ? deadline - now : 0;
    }
    struct epoll_event evs[32];
    int n = fy_epoll_wait(s->epfd, evs, 32, wait_ns);
    atomic_store(&s->sleeping, 0);
    if (n < 0)
        return errno == EINTR ? FERRY_EINTR : 0;
    for (int i = 0; i < n; i++) {
        uint64_t d = evs[i].data.u64;
        if (d == 0) {
            sock_drain_sig(s);
            continue;
        }
        fy_pipe *p = (fy_pipe *)(uintptr_t)(d & ~(uint64_t)3u);
        if ((d & 3u) == SOCK_EV_USOCK) {
            /* The shm peer hung up: mark the pipe dead now (idempotent with the control thread,
             * which also sees it); the generation bump makes the next sync take it down. */
            fy_engine_kill(p, FERRY_EPIPE);
            continue;
        }
        if (evs[i].events & (EPOLLOUT | EPOLLERR | EPOLLHUP)) {
            if (p->ops->flush(p) != 1)
                sock_disarm(s, p);
        }
    }
    return 0;
}

/* Runs a send (out) or recv op until it makes progress, honouring the timeout (ms, -1 forever,
 * 0 never wait). Timeouts report FERRY_EAGAIN, as libzmq does. */
static int sock_run(fy_socket *s, bool out, int timeout_ms, fy_msg *m)
{
    int rc;
    fy_msg_content *tl = out ? fy_shm_msg_transient_loan(m) : NULL;
    if (tl) {
        /* ferry_socket_send made this loan on the pipe it found attached right before, with no
         * sync since: the first attempt goes straight to the pattern (the pipe must stay attached
         * while the loan holds no reference). What survives the attempt is pinned before anything
         * can sync. */
        rc = s->ops->send(s, s->pstate, m);
        fy_shm_loan_pin(tl);
    } else {
        rc = sock_op(s, out, m);
    }
    if (rc != FERRY_EAGAIN || timeout_ms == 0)
        return rc;
    uint64_t now = fy_now_ns();
    uint64_t deadline = timeout_ms < 0 ? UINT64_MAX : now + (uint64_t)timeout_ms * 1000000ull;
    sock_flush_all(s);
    uint64_t spin_start = now, spin_end = now + (uint64_t)(s->spin_ns > 0 ? s->spin_ns : 0);
    for (;;) {
        now = fy_now_ns();
        if (now >= deadline)
            return FERRY_EAGAIN;
        if (now < spin_end) {
            /* Past its first microseconds the window yields: a poller sharing its CPU (more
             * subscribers than CPUs) must not hold it away from peers with work to do. */
            fy_wait_spin_pause(now - spin_start);
            rc = sock_op(s, out, m);
            if (rc != FERRY_EAGAIN)
                return rc;
            continue;
        }
        atomic_store(&s->sleeping, 1);
        /* Pairs with the fence in fy_socket_wake: check once more after announcing the sleep. */
        rc = sock_op(s, out, m);
        if (rc != FERRY_EAGAIN) {
            atomic_store(&s->sleeping, 0);
            return rc;
        }
        rc = sock_sleep(s, deadline);
        if (rc != 0)
            return rc;
        rc = sock_op(s, out, m);
        if (rc != FERRY_EAGAIN)
            return rc;
    }
}

/*
 * Input in user space that recv would return without the kernel: frames the pattern itself holds
 * (a prefetched frame, XPUB notices: its has_input op) or a complete frame buffered in a pipe
 * (kernel-buffered input makes the epfd readable by itself). Only sockets that can receive count
 * pipe input: a PUB's unread subscriptions are not input for its user, and reporting them would
 * spin an event loop that never calls recv on a PUB. Asking each pipe also re-announces shm pipes
 * to their peers (shm_pipe.c arms its wake-up whenever has_input reports nothing), which is what
 * makes a later shm frame wake the pollfd.
 */
static bool sock_holds_input(fy_socket *s)
{
    bool in = s->ops->has_input && s->ops->has_input(s, s->pstate);
    for (fy_pipe *p = s->pipes; p && !in && s->ops->recv; p = p->sock_next)
        in = p->ops->has_input(p) || atomic_load(&p->dead);
    return in;
}

/* Keeps the pollfd (epfd) readable while input waits in user space (when in use), and clears
 * readiness left over from handled events. */
static void sock_pollfd_upkeep(fy_socket *s)
{
    if (!atomic_load_explicit(&s->pollfd_on, memory_order_relaxed))
        return;
    sock_drain_sig(s);
    fy_socket_sync(s);
    if (sock_holds_input(s) || atomic_load_explicit(&s->gen, memory_order_acquire) != s->seen_gen)
        fy_socket_raise(s);
}

/* After a send: the pattern may have read input on the way (XPUB applies subscriptions while
 * publishing and queues notices), sending may have disarmed an shm pipe's input wake-up, and
 * pipes attached during the call need the full upkeep. Send-only sockets have no input to show.
 * Costs a pass over the pipes per send, only while the pollfd is in use. */
static void sock_pollfd_after_send(fy_socket *s, uint64_t gen_before)
{
    if (!atomic_load_explicit(&s->pollfd_on, memory_order_relaxed) || !s->ops->recv)
        return;
    if (s->seen_gen != gen_before)
        sock_pollfd_upkeep(s);
    else if (sock_holds_input(s))
        fy_socket_raise(s);
}

/* ---- open / close ---- */

int ferry_socket_open(ferry_socket **out, int type)
{
    if (!out)
        return FERRY_EINVAL;
    *out = NULL;
    const fy_pattern_ops *ops = fy_pattern_lookup(type);
    if (!ops)
        return FERRY_EINVAL;
    pthread_once(&fy_fork_once, fy_fork_init);
    fy_socket *s = calloc(1, sizeof *s);
    if (!s)
        return FERRY_ENOMEM;
    s->ops = ops;
    s->type = type;
    s->fork_gen = atomic_load(&fy_fork_generation);
    s->popts.sndhwm = s->popts.rcvhwm = FY_DEFAULT_HWM;
    s->popts.immediate = 1; /* ferry's pipes exist only once connected (docs/sockets.md) */
    s->sndtimeo = s->rcvtimeo = -1;
    s->linger = 0;
    s->reconnect_ivl = 100;
    s->reconnect_ivl_max = 0;
    s->spin_ns = FY_DEFAULT_SPIN_NS;
    s->shm_upgrade = 1;
    s->shm_ring_size = (int)FY_SHM_DEFAULT_RING;
    s->peer_uid = -1;
    s->epfd = s->sigfd = -1;
    pthread_mutex_init(&s->lock, NULL);
    int rc = FERRY_ENOMEM;
    if (ops->state_size && !(s->pstate = calloc(1, ops->state_size)))
        goto fail;
    s->epfd = epoll_create1(EPOLL_CLOEXEC);
    if (s->epfd < 0) {
        rc = -errno;
        goto fail;
    }
    s->sigfd = eventfd(0, EFD_NONBLOCK | EFD_CLOEXEC);
    if (s->sigfd < 0) {
        rc = -errno;
        goto fail;
    }
    struct epoll_event e = {.events = EPOLLIN, .data.u64 = 0};
    if (epoll_ctl(s->epfd, EPOLL_CTL_ADD, s->sigfd, &e) != 0) {
        rc = -errno;
        goto fail;
    }
    if ((rc = fy_ctl_sock_new(s)) != 0)
        goto fail;
    if (ops->init && (rc = ops->init(s, s->pstate)) != 0)
        goto fail;
    *out = s;
    return 0;
fail:
    if (s->epfd >= 0)
        close(s->epfd);
    if (s->sigfd >= 0)
        close(s->sigfd);
    free(s->ctl);
    free(s->pstate);
    pthread_mutex_destroy(&s->lock);
    free(s);
    return rc;
}

/* Delivers queued output for up to LINGER ms (0: one non-blocking attempt, handing to the
 * kernel whatever it takes without waiting). */
static void sock_linger(fy_socket *s)
{
    uint64_t deadline = s->linger < 0 ? UINT64_MAX : fy_now_ns() + (uint64_t)s->linger * 1000000ull;
    for (;;) {
        bool pending = false;
        for (fy_pipe *p = s->pipes; p; p = p->sock_next)
            if (!atomic_load(&p->dead) && p->ops->flush(p) == 1)
                pending = true;
        if (!pending || fy_now_ns() >= deadline)
            return;
        atomic_store(&s->sleeping, 1);
        if (sock_sleep(s, deadline) != 0)
            return;
        fy_socket_sync(s);
    }
}

void ferry_socket_close(ferry_socket *s)
{
    if (!s)
        return;
    if (sock_check(s) == FERRY_ECHILD_FORK) {
        /* Inherited across fork: the parent still owns the connections; release only what is
         * ours to release without talking to anyone. */
        close(s->epfd);
        close(s->sigfd);
        return;
    }
    fy_socket_sync(s);
    sock_linger(s);
    while (s->pipes)
        sock_detach(s, s->pipes);
    fy_inproc_socket_closed(s);
    fy_ctl_socket_close(s);
    /* Only fd-less (inproc) pipes can still be waiting here. */
    pthread_mutex_lock(&s->lock);
    fy_pipe *in = s->incoming;
    s->incoming = NULL;
    pthread_mutex_unlock(&s->lock);
    while (in) {
        fy_pipe *n = in->sock_next;
        in->ops->release(in);
        in = n;
    }
    if (s->ops->fini)
        s->ops->fini(s, s->pstate);
    fy_msg_cache_drop(&s->tx_cache);
    fy_msg_pool_fini(&s->tx_pool);
    fy_msg_pool_fini(&s->rx_pool);
    close(s->epfd);
    close(s->sigfd);
    free(s->pstate);
    pthread_mutex_destroy(&s->lock);
    free(s);
}

/* ---- bind / connect ---- */

static void sock_link_cfg(fy_socket *s, fy_link_cfg *c)
{
    memset(c, 0, sizeof *c);
    c->type = s->type;
    c->sndhwm = s->popts.sndhwm;
    c->rcvhwm = s->popts.rcvhwm;
    c->routing_id_len = s->popts.routing_id_len;
    memcpy(c->routing_id, s->popts.routing_id, s->popts.routing_id_len);
    c->hb_ivl = s->hb_ivl;
    c->hb_ttl = s->hb_ttl;
    c->hb_timeout = s->hb_timeout;
    c->reconnect_ivl = s->reconnect_ivl;
    c->reconnect_ivl_max = s->reconnect_ivl_max;
    c->peer_uid = s->peer_uid;
    c->shm_ring_size = s->shm_ring_size;
}

static const fy_transport_ops *sock_transport(int scheme)
{
    switch (scheme) {
    case FY_EP_TCP:
        return &fy_transport_tcp;
    case FY_EP_IPC:
        return &fy_transport_ipc;
    case FY_EP_SHM:
        return &fy_transport_shm;
    default:
        return NULL;
    }
}

static int sock_adopt(fy_socket *s, int rfd, int wfd)
{
    fy_link_cfg cfg;
    sock_link_cfg(s, &cfg);
    return fy_ctl_adopt(s, rfd, wfd, &cfg);
}

/* fd:// URLs name fds the caller hands over; validate them before adopting. */
static int sock_adopt_checked(fy_socket *s, int rfd, int wfd)
{
    if (fcntl(rfd, F_GETFD) < 0 || fcntl(wfd, F_GETFD) < 0)
        return FERRY_EBADF;
    int fl = fcntl(rfd, F_GETFL);
    if (fl < 0 || fcntl(rfd, F_SETFL, fl | O_NONBLOCK) < 0)
        return FERRY_EBADF;
    if (wfd != rfd) {
        fl = fcntl(wfd, F_GETFL);
        if (fl < 0 || fcntl(wfd, F_SETFL, fl | O_NONBLOCK) < 0)
            return FERRY_EBADF;
    }
    return sock_adopt(s, rfd, wfd);
}

static int sock_bind_connect(ferry_socket *s, const char *url, bool bind)
{
    int rc = sock_check(s);
    if (rc)
        return rc;
    fy_endpoint ep;
    const char *why = NULL;
    rc = fy_endpoint_parse(url, bind ? FY_EP_BIND : 0, &ep, &why);
    if (rc != 0) {
        fy_ctl_note_error(s, why);
        return rc;
    }
    fy_link_cfg cfg;
    sock_link_cfg(s, &cfg);
    switch (ep.scheme) {
    case FY_EP_TCP:
    case FY_EP_IPC:
    case FY_EP_SHM: {
        const fy_transport_ops *t = sock_transport(ep.scheme);
        /* shm:// always offers the rings; ipc:// unless FERRY_OPT_SHM_UPGRADE is 0. */
        cfg.shm = ep.scheme == FY_EP_SHM || (ep.scheme == FY_EP_IPC && s->shm_upgrade);
        if (bind) {
            char resolved[FY_ENDPOINT_MAX];
            rc = fy_ctl_bind(s, t, &ep, url, &cfg, resolved, sizeof resolved);
            if (rc == 0)
                snprintf(s->last_endpoint, sizeof s->last_endpoint, "%s", resolved);
            return rc;
        }
        rc = fy_ctl_connect(s, t, &ep, url, &cfg);
        if (rc == 0) {
            snprintf(s->last_endpoint, sizeof s->last_endpoint, "%s", url);
            s->popts.connects++;
        }
        return rc;
    }
    case FY_EP_INPROC:
        rc = bind ? fy_inproc_bind(s, ep.name, &cfg) : fy_inproc_connect(s, ep.name, &cfg);
        if (rc == 0)
            snprintf(s->last_endpoint, sizeof s->last_endpoint, "%s", url);
        if (rc == 0 && !bind)
            s->popts.connects++;
        return rc;
    case FY_EP_FD:
        rc = sock_adopt_checked(s, ep.rfd, ep.wfd);
        if (rc == 0)
            snprintf(s->last_endpoint, sizeof s->last_endpoint, "%s", url);
        return rc;
    default:
        return FERRY_EPROTONOSUPPORT;
    }
}

int ferry_socket_bind(ferry_socket *s, const char *url)
{
    return sock_bind_connect(s, url, true);
}

int ferry_socket_connect(ferry_socket *s, const char *url)
{
    return sock_bind_connect(s, url, false);
}

int ferry_socket_unbind(ferry_socket *s, const char *url)
{
    int rc = sock_check(s);
    if (rc)
        return rc;
    if (!url)
        return FERRY_EINVAL;
    if (strncmp(url, "inproc://", 9) == 0)
        return fy_inproc_unbind(s, url + 9);
    return fy_ctl_unbind(s, url);
}

int ferry_socket_disconnect(ferry_socket *s, const char *url)
{
    int rc = sock_check(s);
    if (rc)
        return rc;
    if (!url)
        return FERRY_EINVAL;
    rc = strncmp(url, "inproc://", 9) == 0 ? fy_inproc_disconnect(s, url + 9)
                                           : fy_ctl_disconnect(s, url);
    if (rc == 0 && s->popts.connects)
        s->popts.connects--;
    return rc;
}

int ferry_socket_adopt(ferry_socket *s, int rfd, int wfd)
{
    int rc = sock_check(s);
    if (rc)
        return rc;
    if (rfd < 0 || wfd < 0)
        return FERRY_EBADF;
    /* On error the caller keeps the fds: check them before the engine takes them. */
    if (fcntl(rfd, F_GETFD) < 0 || fcntl(wfd, F_GETFD) < 0)
        return FERRY_EBADF;
    return sock_adopt_checked(s, rfd, wfd);
}

int ferry_socket_last_endpoint(ferry_socket *s, char *buf, size_t cap)
{
    int rc = sock_check(s);
    if (rc)
        return rc;
    if (!buf || cap == 0)
        return FERRY_EINVAL;
    size_t n = strlen(s->last_endpoint);
    if (n + 1 > cap)
        return FERRY_EMSGSIZE;
    memcpy(buf, s->last_endpoint, n + 1);
    return 0;
}

/* ---- send / recv ---- */

static int sock_send_msg(fy_socket *s, fy_msg *m, int flags)
{
    if (!s->ops->send)
        return FERRY_ENOTSUP;
    if (flags & ~(FERRY_DONTWAIT | FERRY_MORE))
        return FERRY_EINVAL;
    m->flags = (flags & FERRY_MORE) ? FY_MSG_MORE : 0;
    size_t size = fy_msg_size(m);
    uint64_t gen_before = s->seen_gen;
    int rc = sock_run(s, true, (flags & FERRY_DONTWAIT) ? 0 : s->sndtimeo, m);
    if (rc == 0) {
        s->bytes_out += size;
        if (!(flags & FERRY_MORE))
            s->msgs_out++;
        s->sndmore = (flags & FERRY_MORE) != 0;
    }
    sock_pollfd_after_send(s, gen_before);
    return rc;
}

int ferry_socket_send(ferry_socket *s, const void *buf, size_t len, int flags)
{
    int rc = sock_check(s);
    if (rc)
        return rc;
    if (!buf && len)
        return FERRY_EFAULT;
    /* Fast path: a whole single-frame message to the one peer the pattern would pick anyway
     * (its direct op) goes from buf straight into a stream engine's output buffer: no fy_msg,
     * no pattern, no body block. Anything the engine declines (HWM, large, dead, shm) takes the
     * general path below, which waits, reports errors and counts drops. */
    if (!(flags & ~FERRY_DONTWAIT) && !s->sndmore && s->ops->direct) {
        uint64_t gen_before = s->seen_gen;
        fy_socket_sync(s);
        fy_pipe *p = s->ops->direct(s, s->pstate, true);
        if (p && (rc = fy_engine_send_buf(p, buf, len)) != FY_ENG_DECLINE) {
            if (rc == 0) {
                s->bytes_out += len;
                s->msgs_out++;
            }
            sock_pollfd_after_send(s, gen_before);
            return rc;
        }
    }
    fy_msg m;
    if (len > FY_MSG_INLINE) {
        /* A single shm peer: copy straight into its ring (one copy instead of two). */
        fy_socket_sync(s);
        fy_pipe *p = sock_loan_pipe(s);
        if (p && fy_shm_pipe_send_loan(fy_shm_pipe_of(p), &m, len,
                                       (flags & FERRY_DONTWAIT) ? 0 : s->sndtimeo) == 0) {
            fy_copy(fy_msg_data(&m), buf, len);
            rc = sock_send_msg(s, &m, flags);
            fy_msg_fini(&m); /* a loan not sent is cancelled */
            return rc;
        }
    }
    /* The body goes into the socket's reused block (msg.h): no malloc/free per send; large
     * bodies into a pooled block (no fresh pages to fault in per send). */
    rc = len > FY_MSG_CACHE_MAX ? fy_msg_init_pooled(&m, &s->tx_pool, len)
                                : fy_msg_init_cached(&m, &s->tx_cache, len);
    if (rc)
        return rc;
    if (len)
        fy_copy(fy_msg_data(&m), buf, len);
    rc = sock_send_msg(s, &m, flags);
    fy_msg_fini(&m);
    return rc;
}

/* Where ferry_socket_recv wants the frame copied (sock_recv_msg does it before the pollfd
 * upkeep, which may detach and free the frame's pipe: see FY_ZC_RX_TRANSIENT). */
typedef struct sock_rx_out {
    void *buf;
    size_t cap;
    size_t size;
} sock_rx_out;

/* zc: whether shm pipes may leave the frame in their ring (see fy_socket.zc_rx_mode). out: copy
 * the frame there and drop it (m is left empty). */
static int sock_recv_msg(fy_socket *s, fy_msg *m, int flags, int zc, sock_rx_out *out)
{
    if (!s->ops->recv)
        return FERRY_ENOTSUP;
    if (flags & ~FERRY_DONTWAIT)
        return FERRY_EINVAL;
    s->zc_rx_mode = zc;
    int rc = sock_run(s, false, (flags & FERRY_DONTWAIT) ? 0 : s->rcvtimeo, m);
    s->zc_rx_mode = 0;
    if (rc == 0) {
        m->flags &= FY_MSG_MORE;
        s->rcvmore = fy_msg_more(m);
        s->bytes_in += fy_msg_size(m);
        if (!s->rcvmore)
            s->msgs_in++;
        if (out) {
            size_t size = fy_msg_size(m);
            if (size && out->cap)
                fy_copy(out->buf, fy_msg_data(m), size < out->cap ? size : out->cap);
            out->size = size;
            fy_shm_msg_done(m); /* releases a transient in-ring frame on the spot */
        }
    }
    sock_pollfd_upkeep(s);
    return rc;
}

ssize_t ferry_socket_recv(ferry_socket *s, void *buf, size_t cap, int flags, int *more)
{
    int rc = sock_check(s);
    if (rc)
        return rc;
    if (!buf && cap)
        return FERRY_EFAULT;
    /* Fast path: the next frame of the one peer the pattern would read, when it is a whole
     * single-frame message already in a stream engine's read buffer (or arriving with one
     * read), is copied from there into buf: no fy_msg, no pattern. Everything else (nothing
     * there yet, MORE, commands, large bodies, shm) takes the general path below. */
    if (!(flags & ~FERRY_DONTWAIT) && !s->rcvmore && s->ops->direct) {
        fy_socket_sync(s);
        fy_pipe *p = s->ops->direct(s, s->pstate, false);
        size_t size;
        /* A shm ring is busy-polled here for the spin window (within RCVTIMEO) when the recv
         * may wait: the frame is then taken by the direct path when it lands, not by the
         * general spin loop (fy_shm_recv_buf_wait; it gives up on a pipe-set change or a
         * death). */
        int r = FERRY_EAGAIN;
        if (p && fy_pipe_uses_shm(p)) {
            uint64_t base = (flags & FERRY_DONTWAIT) || s->spin_ns <= 0 ? 0 : (uint64_t)s->spin_ns;
            r = fy_shm_recv_buf_wait(p, buf, cap, &size, base, s->rcvtimeo);
        } else if (p) {
            r = fy_engine_recv_buf(p, buf, cap, &size); /* stream: no spin window to compute */
        }
        if (r == 0) {
            s->bytes_in += size;
            s->msgs_in++;
            if (more)
                *more = 0;
            sock_pollfd_upkeep(s);
            return (ssize_t)size;
        }
    }
    fy_msg m;
    fy_msg_init(&m);
    /* In place: the frame is copied out of the ring into buf and released within the call. The
     * patterns of PULL, PAIR and DEALER hand each frame straight back, so their frames may be
     * held without a share reference (FY_ZC_RX_TRANSIENT); other patterns may keep a frame. */
    int zc = (s->type == FERRY_PULL || s->type == FERRY_PAIR || s->type == FERRY_DEALER)
                 ? FY_ZC_RX_TRANSIENT
                 : 1;
    sock_rx_out out = {buf, cap, 0};
    rc = sock_recv_msg(s, &m, flags, zc, &out);
    if (rc) {
        fy_msg_fini(&m);
        return rc;
    }
    if (more)
        *more = s->rcvmore;
    return (ssize_t)out.size;
}

int ferry_msg_send(ferry_socket *s, ferry_msg *msg, int flags)
{
    int rc = sock_check(s);
    if (rc)
        return rc;
    if (!msg)
        return FERRY_EINVAL;
    fy_msg *m = (fy_msg *)msg;
    /* Fast path: a loan (ferry_msg_loan) on the ring of the one peer the pattern would pick
     * anyway is committed in place there, without the general path's layers (shm.h
     * fy_shm_send_loan); anything it declines goes the general way. */
    if (!(flags & ~FERRY_DONTWAIT) && !s->sndmore && s->ops->direct &&
        fy_msg_zc(m) == FY_MSG_ZC_LOAN) {
        uint64_t gen_before = s->seen_gen;
        size_t size = fy_msg_size(m);
        fy_socket_sync(s);
        fy_pipe *p = s->ops->direct(s, s->pstate, true);
        m->flags = 0;
        if (p && (rc = fy_shm_send_loan(p, m)) != FY_SHM_DECLINE) {
            if (rc == 0) {
                s->bytes_out += size;
                s->msgs_out++;
            }
            fy_msg_init(m);
            sock_pollfd_after_send(s, gen_before);
            return rc;
        }
    }
    rc = sock_send_msg(s, m, flags);
    if (rc == 0)
        fy_msg_init(m); /* content moved to the library */
    return rc;
}

int ferry_msg_recv(ferry_socket *s, ferry_msg *msg, int flags)
{
    int rc = sock_check(s);
    if (rc)
        return rc;
    if (!msg)
        return FERRY_EINVAL;
    fy_msg *m = (fy_msg *)msg;
    fy_msg_fini(m);
    return sock_recv_msg(s, m, flags, s->zc_recv ? 2 : 0, NULL);
}

int ferry_msg_loan(ferry_socket *s, ferry_msg *msg, size_t size)
{
    if (!msg)
        return FERRY_EINVAL;
    fy_msg *m = (fy_msg *)msg;
    fy_msg_init(m);
    int rc = sock_check(s);
    if (rc)
        return rc;
    /* A full ring is waited for like a send waits at SNDHWM (SNDTIMEO), in slices so that a
     * peer that dies meanwhile is noticed; anything else falls back at once. */
    uint64_t deadline =
        s->sndtimeo < 0 ? UINT64_MAX : fy_now_ns() + (uint64_t)s->sndtimeo * 1000000ull;
    for (;;) {
        fy_socket_sync(s);
        fy_pipe *p = sock_loan_pipe(s);
        if (!p || size == 0)
            break;
        rc = fy_shm_pipe_loan(fy_shm_pipe_of(p), m, size, true);
        if (rc == 0)
            return 1;
        uint64_t now = fy_now_ns();
        if (rc != FERRY_EAGAIN || now >= deadline)
            break;
        uint64_t left_ms = (deadline - now) / 1000000ull;
        rc = fy_shm_pipe_wait_room(fy_shm_pipe_of(p), size, left_ms < 10 ? (int)left_ms : 10);
        if (rc != 0 && rc != FERRY_ETIMEDOUT)
            break;
    }
    rc = fy_msg_init_size(m, size);
    if (rc < 0)
        return rc;
    s->loan_copies++;
    return 0;
}

int ferry_socket_subscribe(ferry_socket *s, const void *prefix, size_t len)
{
    int rc = sock_check(s);
    if (rc)
        return rc;
    if (!prefix && len)
        return FERRY_EFAULT;
    if (!s->ops->setopt)
        return FERRY_ENOTSUP;
    fy_socket_sync(s);
    rc = s->ops->setopt(s, s->pstate, FY_OPT_SUBSCRIBE, prefix, len);
    sock_pollfd_upkeep(s);
    return rc;
}

int ferry_socket_unsubscribe(ferry_socket *s, const void *prefix, size_t len)
{
    int rc = sock_check(s);
    if (rc)
        return rc;
    if (!prefix && len)
        return FERRY_EFAULT;
    if (!s->ops->setopt)
        return FERRY_ENOTSUP;
    fy_socket_sync(s);
    rc = s->ops->setopt(s, s->pstate, FY_OPT_UNSUBSCRIBE, prefix, len);
    sock_pollfd_upkeep(s);
    return rc;
}

/* ---- options ---- */

static int opt_ms(int64_t v, int *dst, bool allow_neg)
{
    if (v < (allow_neg ? -1 : 0) || v > INT32_MAX)
        return FERRY_EINVAL;
    *dst = (int)v;
    return 0;
}

int ferry_socket_setopt_int(ferry_socket *s, int opt, int64_t v)
{
    int rc = sock_check(s);
    if (rc)
        return rc;
    switch (opt) {
    case FERRY_OPT_SNDHWM:
        return opt_ms(v, &s->popts.sndhwm, false);
    case FERRY_OPT_RCVHWM:
        return opt_ms(v, &s->popts.rcvhwm, false);
    case FERRY_OPT_SNDTIMEO:
        return opt_ms(v, &s->sndtimeo, true);
    case FERRY_OPT_RCVTIMEO:
        return opt_ms(v, &s->rcvtimeo, true);
    case FERRY_OPT_LINGER:
        return opt_ms(v, &s->linger, true);
    case FERRY_OPT_RECONNECT_IVL:
        if (v < 1)
            return FERRY_EINVAL;
        return opt_ms(v, &s->reconnect_ivl, false);
    case FERRY_OPT_RECONNECT_IVL_MAX:
        return opt_ms(v, &s->reconnect_ivl_max, false);
    case FERRY_OPT_HEARTBEAT_IVL:
        return opt_ms(v, &s->hb_ivl, false);
    case FERRY_OPT_HEARTBEAT_TTL:
        /* ZMTP carries the TTL in deciseconds in 16 bits. */
        if (v > 6553500)
            return FERRY_EINVAL;
        return opt_ms(v, &s->hb_ttl, false);
    case FERRY_OPT_HEARTBEAT_TIMEOUT:
        return opt_ms(v, &s->hb_timeout, false);
    case FERRY_OPT_IMMEDIATE:
        if (v != 0 && v != 1)
            return FERRY_EINVAL;
        s->popts.immediate = (int)v; /* acted on by PUSH/DEALER (pattern/backlog.h) */
        return 0;
    case FERRY_OPT_SPIN_NS:
        if (v < 0 || v > 1000000000)
            return FERRY_EINVAL;
        s->spin_ns = (int)v;
        return 0;
    case FERRY_OPT_SHM_UPGRADE:
        if (v != 0 && v != 1)
            return FERRY_EINVAL;
        s->shm_upgrade = (int)v;
        return 0;
    case FERRY_OPT_SHM_RING_SIZE:
        if (v < 4096 || v > (int64_t)1 << 30 || (v & (v - 1)))
            return FERRY_EINVAL;
        s->shm_ring_size = (int)v;
        return 0;
    case FERRY_OPT_PEER_UID:
        if (v < -1 || v > INT32_MAX)
            return FERRY_EINVAL;
        s->peer_uid = (int)v;
        return 0;
    case FERRY_OPT_ZEROCOPY_RECV:
        if (v != 0 && v != 1)
            return FERRY_EINVAL;
        s->zc_recv = (int)v;
        return 0;
    case FERRY_OPT_RCVMORE:
    case FERRY_OPT_TYPE:
        return FERRY_EINVAL; /* read-only */
    case FERRY_OPT_ROUTING_ID:
    case FERRY_OPT_XPUB_WELCOME_MSG:
        return FERRY_EINVAL; /* bytes option */
    default:
        if (s->ops->setopt)
            return s->ops->setopt(s, s->pstate, opt, &v, sizeof v);
        return FERRY_EINVAL;
    }
}

int ferry_socket_getopt_int(ferry_socket *s, int opt, int64_t *v)
{
    int rc = sock_check(s);
    if (rc)
        return rc;
    if (!v)
        return FERRY_EINVAL;
    switch (opt) {
    case FERRY_OPT_SNDHWM:
        *v = s->popts.sndhwm;
        return 0;
    case FERRY_OPT_RCVHWM:
        *v = s->popts.rcvhwm;
        return 0;
    case FERRY_OPT_SNDTIMEO:
        *v = s->sndtimeo;
        return 0;
    case FERRY_OPT_RCVTIMEO:
        *v = s->rcvtimeo;
        return 0;
    case FERRY_OPT_LINGER:
        *v = s->linger;
        return 0;
    case FERRY_OPT_RECONNECT_IVL:
        *v = s->reconnect_ivl;
        return 0;
    case FERRY_OPT_RECONNECT_IVL_MAX:
        *v = s->reconnect_ivl_max;
        return 0;
    case FERRY_OPT_HEARTBEAT_IVL:
        *v = s->hb_ivl;
        return 0;
    case FERRY_OPT_HEARTBEAT_TTL:
        *v = s->hb_ttl;
        return 0;
    case FERRY_OPT_HEARTBEAT_TIMEOUT:
        *v = s->hb_timeout;
        return 0;
    case FERRY_OPT_IMMEDIATE:
        *v = s->popts.immediate;
        return 0;
    case FERRY_OPT_RCVMORE:
        *v = s->rcvmore;
        return 0;
    case FERRY_OPT_TYPE:
        *v = s->type;
        return 0;
    case FERRY_OPT_SPIN_NS:
        *v = s->spin_ns;
        return 0;
    case FERRY_OPT_SHM_UPGRADE:
        *v = s->shm_upgrade;
        return 0;
    case FERRY_OPT_SHM_RING_SIZE:
        *v = s->shm_ring_size;
        return 0;
    case FERRY_OPT_PEER_UID:
        *v = s->peer_uid;
        return 0;
    case FERRY_OPT_ZEROCOPY_RECV:
        *v = s->zc_recv;
        return 0;
    case FERRY_OPT_XPUB_WELCOME_MSG:
        return FERRY_EINVAL; /* bytes option */
    default:
        if (s->ops->getopt) {
            size_t len = sizeof *v;
            return s->ops->getopt(s, s->pstate, opt, v, &len);
        }
        return FERRY_EINVAL;
    }
}

/* The last public int option: every FERRY_OPT_* from SNDHWM to here is an int, whether the core
 * or the pattern owns it, so the bytes forms decode (4 or 8 bytes) and encode it in one place. */
#define FY_OPT_INT_LAST FERRY_OPT_XPUB_VERBOSER

int ferry_socket_setopt_bytes(ferry_socket *s, int opt, const void *val, size_t len)
{
    int rc = sock_check(s);
    if (rc)
        return rc;
    if (!val && len)
        return FERRY_EFAULT;
    if (opt == FERRY_OPT_ROUTING_ID) {
        /* libzmq: 1..255 bytes, and ids starting with a zero byte are reserved for generated
         * ids. */
        if (len < 1 || len > 255 || ((const uint8_t *)val)[0] == 0)
            return FERRY_EINVAL;
        memcpy(s->popts.routing_id, val, len);
        s->popts.routing_id_len = (uint8_t)len;
        return 0;
    }
    if (opt >= FERRY_OPT_SNDHWM && opt <= FY_OPT_INT_LAST) {
        if (len != sizeof(int64_t) && len != sizeof(int))
            return FERRY_EINVAL;
        int64_t v;
        if (len == sizeof(int)) {
            int i;
            memcpy(&i, val, sizeof i);
            v = i;
        } else {
            memcpy(&v, val, sizeof v);
        }
        return ferry_socket_setopt_int(s, opt, v);
    }
    if (s->ops->setopt)
        return s->ops->setopt(s, s->pstate, opt, val, len);
    return FERRY_EINVAL;
}

int ferry_socket_getopt_bytes(ferry_socket *s, int opt, void *buf, size_t *len)
{
    int rc = sock_check(s);
    if (rc)
        return rc;
    if (!len || (!buf && *len))
        return FERRY_EINVAL;
    if (opt == FERRY_OPT_ROUTING_ID) {
        size_t n = s->popts.routing_id_len;
        if (*len < n) {
            *len = n;
            return FERRY_EMSGSIZE;
        }
        memcpy(buf, s->popts.routing_id, n);
        *len = n;
        return 0;
    }
    if (opt >= FERRY_OPT_SNDHWM && opt <= FY_OPT_INT_LAST) {
        int64_t v;
        rc = ferry_socket_getopt_int(s, opt, &v);
        if (rc)
            return rc;
        if (*len < sizeof v) {
            *len = sizeof v;
            return FERRY_EMSGSIZE;
        }
        memcpy(buf, &v, sizeof v);
        *len = sizeof v;
        return 0;
    }
    if (s->ops->getopt)
        return s->ops->getopt(s, s->pstate, opt, buf, len);
    return FERRY_EINVAL;
}

/* ---- polling and statistics ---- */

int ferry_socket_pollfd(ferry_socket *s)
{
    int rc = sock_check(s);
    if (rc)
        return rc;
    if (!atomic_exchange(&s->pollfd_on, 1))
        sock_pollfd_upkeep(s);
    return s->epfd;
}

int ferry_socket_events(ferry_socket *s)
{
    int rc = sock_check(s);
    if (rc)
        return rc;
    fy_socket_sync(s);
    int ev = s->ops->events ? s->ops->events(s, s->pstate) : 0;
    /* Output the owner left queued must not wait for the next send. */
    sock_flush_all(s);
    sock_pollfd_upkeep(s);
    return ev;
}

int ferry_poll(ferry_pollitem *items, int n, int timeout_ms)
{
    if (n < 0 || (n > 0 && !items))
        return FERRY_EINVAL;
    struct pollfd stack[32];
    struct pollfd *pfd = n <= 32 ? stack : calloc((size_t)n, sizeof *pfd);
    if (!pfd)
        return FERRY_ENOMEM;
    uint64_t start = fy_now_ns();
    uint64_t deadline = timeout_ms < 0 ? UINT64_MAX : start + (uint64_t)timeout_ms * 1000000ull;
    uint64_t spin = 0;
    int ready = 0;
    for (int i = 0; i < n; i++) {
        if (items[i].socket) {
            int rc = ferry_socket_pollfd(items[i].socket);
            if (rc < 0) {
                ready = rc;
                goto out;
            }
            if ((uint64_t)items[i].socket->spin_ns > spin)
                spin = (uint64_t)items[i].socket->spin_ns;
        }
    }
    for (;;) {
        ready = 0;
        for (int i = 0; i < n; i++) {
            items[i].revents = 0;
            pfd[i].events = 0;
            pfd[i].revents = 0;
            if (items[i].socket) {
                int ev = ferry_socket_events(items[i].socket);
                if (ev < 0) {
                    ready = ev;
                    goto out;
                }
                items[i].revents = (short)(ev & items[i].events);
                pfd[i].fd = items[i].socket->epfd;
                pfd[i].events = POLLIN;
                if ((items[i].events & FERRY_POLLOUT) && !(ev & FERRY_POLLOUT)) {
                    for (fy_pipe *p = items[i].socket->pipes; p; p = p->sock_next)
                        if (p->dirty)
                            sock_arm(items[i].socket, p);
                }
            } else {
                pfd[i].fd = items[i].fd;
                if (items[i].events & FERRY_POLLIN)
                    pfd[i].events |= POLLIN;
                if (items[i].events & FERRY_POLLOUT)
                    pfd[i].events |= POLLOUT;
            }
            if (items[i].revents)
                ready++;
        }
        uint64_t now = fy_now_ns();
        int wait_ms;
        if (ready > 0 || now >= deadline) {
            wait_ms = 0;
        } else if (now < start + spin) {
            wait_ms = 0;
        } else {
            uint64_t d = deadline == UINT64_MAX ? UINT64_MAX : deadline - now;
            wait_ms = d == UINT64_MAX ? -1 : (int)((d + 999999) / 1000000);
        }
        int r = poll(pfd, (nfds_t)n, wait_ms);
        if (r < 0) {
            if (errno == EINTR) {
                ready = FERRY_EINTR;
                goto out;
            }
            ready = -errno;
            goto out;
        }
        for (int i = 0; i < n; i++) {
            if (items[i].socket)
                continue;
            short re = 0;
            if (pfd[i].revents & (POLLIN | POLLHUP | POLLERR))
                re |= FERRY_POLLIN & items[i].events;
            if (pfd[i].revents & (POLLOUT | POLLERR))
                re |= FERRY_POLLOUT & items[i].events;
            if (pfd[i].revents & POLLNVAL) {
                ready = FERRY_EBADF;
                goto out;
            }
            if (re && !items[i].revents) {
                items[i].revents = re;
                ready++;
            }
        }
        if (ready > 0 || fy_now_ns() >= deadline)
            break;
        if (r > 0) {
            /* A socket's epoll fired: flush what became writable, then re-evaluate. */
            for (int i = 0; i < n; i++) {
                fy_socket *s = items[i].socket;
                if (!s || !(pfd[i].revents & POLLIN))
                    continue;
                for (fy_pipe *p = s->pipes; p; p = p->sock_next)
                    if (p->out_armed && p->ops->flush(p) != 1)
                        sock_disarm(s, p);
            }
        }
    }
out:
    for (int i = 0; i < n; i++) {
        fy_socket *s = items[i].socket;
        if (!s || s->fork_gen != atomic_load(&fy_fork_generation))
            continue;
        for (fy_pipe *p = s->pipes; p; p = p->sock_next)
            sock_disarm(s, p);
    }
    if (pfd != stack)
        free(pfd);
    return ready;
}

/*
 * Asks the kernel directly whether any peer of s has hung up, and marks those pipes dead (the
 * control thread does the same when it gets to their hang-up). An owner that only looks at the
 * statistics then sees a death at once, even when the control thread has not been scheduled yet
 * on a loaded machine. One poll() over the socket's link fds, outside any hot path.
 */
static void sock_check_hangups(fy_socket *s)
{
    struct pollfd pf[64];
    fy_pipe *pp[64];
    nfds_t n = 0;
    for (fy_pipe *p = s->pipes; p && n < 64; p = p->sock_next) {
        if (atomic_load_explicit(&p->dead, memory_order_relaxed) || !fy_pipe_is_engine(p))
            continue;
        int fd = fy_pipe_uses_shm(p) ? fy_shm_eng_ufd(p) : p->rfd;
        if (fd < 0)
            continue;
        pf[n] = (struct pollfd){.fd = fd, .events = POLLRDHUP};
        pp[n++] = p;
    }
    if (n == 0 || poll(pf, n, 0) <= 0)
        return;
    for (nfds_t i = 0; i < n; i++)
        if (pf[i].revents & (POLLRDHUP | POLLHUP | POLLERR))
            fy_engine_kill(pp[i], FERRY_EPIPE);
}

int ferry_socket_stats(ferry_socket *s, ferry_stats *out)
{
    int rc = sock_check(s);
    if (rc)
        return rc;
    if (!out)
        return FERRY_EINVAL;
    fy_socket_sync(s);
    sock_check_hangups(s);
    sock_pollfd_upkeep(s); /* pipes it attached must wake the pollfd too */
    memset(out, 0, sizeof *out);
    out->msgs_in = s->msgs_in;
    out->msgs_out = s->msgs_out;
    out->bytes_in = s->bytes_in;
    out->bytes_out = s->bytes_out;
    out->drops_hwm = atomic_load_explicit(&s->drops_hwm, memory_order_relaxed);
    uint32_t live = 0, shm = 0;
    for (fy_pipe *p = s->pipes; p; p = p->sock_next) {
        if (!atomic_load(&p->dead)) {
            live++;
            shm += fy_pipe_uses_shm(p);
        }
    }
    out->peers = live;
    out->peers_shm = shm;
    out->zc_sends = s->zc_sends;
    out->zc_recvs = s->zc_recvs;
    out->loan_copies = s->loan_copies;
    return 0;
}
