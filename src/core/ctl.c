/*
 * ctl.c - the control thread (see ctl.h for what it does and why it exists).
 *
 * Everything the control thread owns (listeners, connecters, the list of engine pipes) is touched
 * only on that thread. Other threads talk to it in two ways: fy_ctl_call() runs a function on it
 * and waits (bind/connect/close bookkeeping), and a few lock-free or mutex-guarded mailboxes
 * (released pipes, the tail-flush flag) followed by a kick on an eventfd.
 *
 * epoll data: 0 is the kick eventfd; a listener or connecter is a pointer to a struct starting
 * with its kind; an engine pipe is its pointer tagged with 1 (read fd) or 2 (separate write fd),
 * or with 3 for the wake eventfd of a switched (shm) pipe whose tail flush waits for room.
 */
#include "core/ctl.h"
#include "common/epwait.h"
#include "transport/shm.h"

#include <errno.h>
#include <pthread.h>
#include <signal.h>
#include <stdio.h>
#include <stdlib.h>
#include <string.h>
#include <sys/epoll.h>
#include <sys/eventfd.h>
#include <sys/socket.h>
#include <time.h>
#include <unistd.h>

#define FY_CTL_FLUSH_TICK_NS   200000ull
#define FY_CTL_FLUSH_MAX_SHIFT 7u /* 25.6 ms */
/* While every pending pipe is a full shm ring whose release we wait for on its eventfd, a pass
 * still runs this often: it only backs up a wake-up that never came (a peer that zeroed the
 * ring's wait word). */
#define FY_CTL_FLUSH_BACKSTOP_NS 200000000ull
#define FY_CTL_ACCEPT_RETRY      100000000ull

enum { CTL_LISTENER = 1, CTL_CONNECTER };

typedef struct ctl_listener {
    int kind;
    fy_socket *sock;
    const fy_transport_ops *t;
    fy_endpoint ep;
    fy_link_cfg cfg;
    int fd;
    bool paused; /* out of fds: retry accept later */
    uint64_t retry_ns;
    char url[FY_ENDPOINT_MAX];      /* as given */
    char resolved[FY_ENDPOINT_MAX]; /* as bound */
    struct ctl_listener *next;
} ctl_listener;

typedef struct ctl_conn {
    int kind;
    fy_socket *sock;
    const fy_transport_ops *t;
    fy_endpoint ep;
    fy_link_cfg cfg;
    int fd;           /* connecting, or -1 */
    fy_pipe *eng;     /* the engine this connecter made (handshaking or live), or NULL */
    uint64_t next_ns; /* when to try again (0: not scheduled) */
    int ivl_cur;
    char url[FY_ENDPOINT_MAX];
    struct ctl_conn *next;
} ctl_conn;

struct fy_ctl_sock {
    ctl_listener *listeners;
    ctl_conn *conns;
    _Atomic(const char *) last_error;
    _Atomic uint64_t link_errors;
};

typedef struct ctl_call {
    int (*fn)(void *);
    void *arg;
    int rc;
    bool done;
    struct ctl_call *next;
} ctl_call;

static struct {
    pthread_mutex_t lock; /* started, calls, grave */
    pthread_cond_t cv;
    bool started;
    pid_t pid;
    int epfd, kickfd;
    pthread_t thr;
    ctl_call *calls, **calls_tail;
    fy_pipe *grave;
    _Atomic int kicked;
    _Atomic int flush_mode;
    _Atomic int flush_now; /* an owner consumed a room wake-up meant for us: pass at once */
    /* control thread only */
    fy_pipe *engines;
    uint64_t next_flush_ns;
    unsigned flush_shift; /* tail-flush back-off while only stalled peers are pending */
} G = {.lock = PTHREAD_MUTEX_INITIALIZER, .cv = PTHREAD_COND_INITIALIZER};

static void ctl_kick(void)
{
    if (atomic_exchange(&G.kicked, 1) == 0) {
        uint64_t one = 1;
        ssize_t r = write(G.kickfd, &one, sizeof one);
        (void)r; /* eventfd at its limit is already readable: the kick is not lost */
    }
}

/* ---- engine bookkeeping ---- */

static void ctl_engine_link(fy_pipe *p)
{
    p->ctl_prev = NULL;
    p->ctl_next = G.engines;
    if (G.engines)
        G.engines->ctl_prev = p;
    G.engines = p;
}

static void ctl_engine_unlink(fy_pipe *p)
{
    if (p->ctl_prev)
        p->ctl_prev->ctl_next = p->ctl_next;
    else if (G.engines == p)
        G.engines = p->ctl_next;
    if (p->ctl_next)
        p->ctl_next->ctl_prev = p->ctl_prev;
    p->ctl_next = p->ctl_prev = NULL;
}

static void ctl_engine_unregister(fy_pipe *p)
{
    if (fy_pipe_uses_shm(p))
        fy_shm_eng_ctl_unwatch(p);
    if (p->ctl_events) {
        epoll_ctl(G.epfd, EPOLL_CTL_DEL, fy_engine_rfd(p), NULL);
        if (fy_engine_wfd(p) != fy_engine_rfd(p))
            epoll_ctl(G.epfd, EPOLL_CTL_DEL, fy_engine_wfd(p), NULL);
        p->ctl_events = 0;
    }
}

/* (Re)registers the engine's fds: handshake watches input, live links only hang-ups. */
static void ctl_engine_register(fy_pipe *p, bool want_out)
{
    uint32_t ev = EPOLLRDHUP | (fy_engine_live(p) ? 0 : EPOLLIN);
    if (fy_engine_live(p) && p->ctl_watch_in)
        ev |= EPOLLIN | EPOLLET;
    if (want_out && fy_engine_wfd(p) == fy_engine_rfd(p))
        ev |= EPOLLOUT;
    struct epoll_event e = {.events = ev, .data.u64 = (uint64_t)(uintptr_t)p | 1u};
    int op = p->ctl_events ? EPOLL_CTL_MOD : EPOLL_CTL_ADD;
    epoll_ctl(G.epfd, op, fy_engine_rfd(p), &e);
    if (fy_engine_wfd(p) != fy_engine_rfd(p)) {
        struct epoll_event w = {.events = want_out ? EPOLLOUT : 0,
                                .data.u64 = (uint64_t)(uintptr_t)p | 2u};
        epoll_ctl(G.epfd, p->ctl_events ? EPOLL_CTL_MOD : EPOLL_CTL_ADD, fy_engine_wfd(p), &w);
    }
    p->ctl_events = ev | (want_out ? EPOLLOUT : 0) | 0x80000000u; /* non-zero: registered */
}

void fy_ctl_watch_in(fy_pipe *p, bool watch)
{
    if (!p->ctl_events || atomic_load(&p->dead) || p->ctl_watch_in == watch)
        return;
    p->ctl_watch_in = watch;
    ctl_engine_register(p, (p->ctl_events & EPOLLOUT) != 0);
}

void fy_ctl_want_out(fy_pipe *p, bool want)
{
    if (!p->ctl_events || atomic_load(&p->dead))
        return;
    bool has = (p->ctl_events & EPOLLOUT) != 0;
    if (has != want)
        ctl_engine_register(p, want);
}

static void ctl_conn_schedule(ctl_conn *c, uint64_t now)
{
    c->next_ns = now + (uint64_t)c->ivl_cur * 1000000ull;
    if (c->cfg.reconnect_ivl_max > c->cfg.reconnect_ivl) {
        int n = c->ivl_cur * 2;
        c->ivl_cur = n > c->cfg.reconnect_ivl_max ? c->cfg.reconnect_ivl_max : n;
    }
}

/* A link died on the control thread's watch (or its handshake failed). */
static void ctl_engine_dead(fy_pipe *p, int err)
{
    fy_engine_kill(p, err);
    ctl_engine_unregister(p);
    ctl_conn *c = p->ctl_connecter;
    if (c) {
        c->eng = NULL;
        p->ctl_connecter = NULL;
        ctl_conn_schedule(c, fy_now_ns());
    }
    if (!p->ctl_published) {
        ctl_engine_unlink(p);
        fy_engine_free(p);
    }
}

static void ctl_engine_start(fy_socket *s, fy_pipe *p, ctl_conn *c)
{
    p->ctl_connecter = c;
    if (c)
        c->eng = p;
    ctl_engine_link(p);
    ctl_engine_register(p, true);
    /* Push greeting + READY now; the rest happens on events. */
    int rc = fy_engine_ctl_event(p, EPOLLOUT, true);
    if (rc < 0)
        ctl_engine_dead(p, rc);
    (void)s;
}

static void ctl_engine_event(fy_pipe *p, uint32_t events, bool on_wfd)
{
    if (atomic_load(&p->dead)) {
        ctl_engine_dead(p, 0); /* the owner found it dead: stop watching, reconnect */
        return;
    }
    int rc = fy_engine_ctl_event(p, events, on_wfd);
    if (rc < 0) {
        if (!p->ctl_published)
            fy_ctl_note_error(p->sock, NULL);
        ctl_engine_dead(p, rc);
        return;
    }
    if (rc == 1) {
        ctl_conn *c = p->ctl_connecter;
        if (c)
            c->ivl_cur = c->cfg.reconnect_ivl;
        ctl_engine_register(p, (p->ctl_events & EPOLLOUT) != 0);
        p->ctl_published = true;
        fy_socket_publish_pipe(p->sock, p);
    }
}

/* ---- listeners and connecters ---- */

static void ctl_accept(ctl_listener *l)
{
    for (;;) {
        int fd = accept4(l->fd, NULL, NULL, SOCK_NONBLOCK | SOCK_CLOEXEC);
        if (fd < 0) {
            if (errno == EINTR || errno == ECONNABORTED)
                continue;
            if (errno == EMFILE || errno == ENFILE || errno == ENOBUFS || errno == ENOMEM) {
                /* Out of resources: stop watching for a while instead of spinning. */
                struct epoll_event e = {.events = 0, .data.ptr = l};
                epoll_ctl(G.epfd, EPOLL_CTL_MOD, l->fd, &e);
                l->paused = true;
                l->retry_ns = fy_now_ns() + FY_CTL_ACCEPT_RETRY;
                fy_ctl_note_error(l->sock, "accept: out of file descriptors");
            }
            return;
        }
        if (l->t->prepare && l->t->prepare(fd, &l->cfg) != 0) {
            fy_ctl_note_error(l->sock, "peer refused by access policy (uid)");
            close(fd);
            continue;
        }
        fy_pipe *p;
        if (fy_engine_new(&p, l->sock, fd, fd, &l->cfg) != 0)
            continue; /* fd closed by the engine */
        ctl_engine_start(l->sock, p, NULL);
    }
}

static void ctl_conn_connected(ctl_conn *c, int fd)
{
    if (c->t->prepare && c->t->prepare(fd, &c->cfg) != 0) {
        close(fd);
        ctl_conn_schedule(c, fy_now_ns());
        return;
    }
    fy_pipe *p;
    if (fy_engine_new(&p, c->sock, fd, fd, &c->cfg) != 0) {
        ctl_conn_schedule(c, fy_now_ns());
        return;
    }
    ctl_engine_start(c->sock, p, c);
}

static void ctl_conn_try(ctl_conn *c)
{
    c->next_ns = 0;
    int fd = -1;
    int rc = c->t->connect(&c->ep, &fd);
    if (rc == 0) {
        ctl_conn_connected(c, fd);
    } else if (rc == FERRY_EINPROGRESS) {
        c->fd = fd;
        struct epoll_event e = {.events = EPOLLOUT, .data.ptr = c};
        if (epoll_ctl(G.epfd, EPOLL_CTL_ADD, fd, &e) != 0) {
            close(fd);
            c->fd = -1;
            ctl_conn_schedule(c, fy_now_ns());
        }
    } else {
        ctl_conn_schedule(c, fy_now_ns());
    }
}

static void ctl_conn_event(ctl_conn *c)
{
    if (c->fd < 0)
        return;
    int err = 0;
    socklen_t l = sizeof err;
    if (getsockopt(c->fd, SOL_SOCKET, SO_ERROR, &err, &l) != 0)
        err = errno;
    epoll_ctl(G.epfd, EPOLL_CTL_DEL, c->fd, NULL);
    int fd = c->fd;
    c->fd = -1;
    if (err) {
        close(fd);
        ctl_conn_schedule(c, fy_now_ns());
        return;
    }
    ctl_conn_connected(c, fd);
}

static void ctl_conn_free(ctl_conn *c)
{
    if (c->fd >= 0) {
        epoll_ctl(G.epfd, EPOLL_CTL_DEL, c->fd, NULL);
        close(c->fd);
    }
    if (c->eng)
        c->eng->ctl_connecter = NULL;
    free(c);
}

static void ctl_listener_free(ctl_listener *l)
{
    epoll_ctl(G.epfd, EPOLL_CTL_DEL, l->fd, NULL);
    l->t->unlisten(&l->ep, l->fd);
    free(l);
}

/* ---- the loop ---- */

static void ctl_process_grave(void)
{
    pthread_mutex_lock(&G.lock);
    fy_pipe *g = G.grave;
    G.grave = NULL;
    pthread_mutex_unlock(&G.lock);
    while (g) {
        fy_pipe *next = g->sock_next;
        ctl_engine_unregister(g);
        ctl_engine_unlink(g);
        ctl_conn *c = g->ctl_connecter;
        if (c) {
            c->eng = NULL;
            ctl_conn_schedule(c, fy_now_ns());
        }
        fy_engine_free(g);
        g = next;
    }
}

static void ctl_process_calls(void)
{
    for (;;) {
        pthread_mutex_lock(&G.lock);
        ctl_call *c = G.calls;
        if (c) {
            G.calls = c->next;
            if (!G.calls)
                G.calls_tail = &G.calls;
        }
        pthread_mutex_unlock(&G.lock);
        if (!c)
            return;
        int rc = c->fn(c->arg);
        pthread_mutex_lock(&G.lock);
        c->rc = rc;
        c->done = true;
        pthread_cond_broadcast(&G.cv);
        pthread_mutex_unlock(&G.lock);
    }
}

/* Tail flush: drain what owners left queued. Returns 0 when nothing is pending, 1 when some
 * pipe can make progress at the next tick (a batch still being appended, a ring the consumer is
 * draining), 3 when everything pending waits for a peer that is not reading and will wake us
 * when it reads, 2 when some such pipe could not be watched (the tick backs off instead of
 * spinning at 5 kHz for as long as the peer stalls).
 * - A stream pipe whose kernel buffer is full reports 0: its EPOLLOUT, armed here, brings the
 *   control thread back.
 * - A full shm ring has no fd of its own: the pass arms the ring's writable word and watches the
 *   pipe's wake eventfd (tag 3), which the consumer writes when it publishes a release. The watch
 *   ends at the first pass that finds the pipe anything but stuck, so a consumer that reads pays
 *   no wake-up per release for it. */
static int ctl_flush_pass(void)
{
    bool busy = false, stalled = false, watched = false;
    for (fy_pipe *p = G.engines; p; p = p->ctl_next) {
        if (!p->ctl_published)
            continue;
        int r = fy_engine_ctl_flush(p);
        if (fy_pipe_uses_shm(p)) {
            if (r == 2) {
                int w = fy_shm_eng_ctl_watch(p, G.epfd, (uint64_t)(uintptr_t)p | 3u);
                if (w == 1) {
                    watched = true;
                    continue;
                }
                r = w == 0 ? 1 : 2; /* moved after arming: tick; no watch: back off */
            } else {
                fy_shm_eng_ctl_unwatch(p);
            }
        }
        busy |= r == 1;
        stalled |= r == 2;
    }
    return busy ? 1 : stalled ? 2 : watched ? 3 : 0;
}

static uint64_t ctl_timers(uint64_t now)
{
    uint64_t next = UINT64_MAX;
    for (fy_pipe *p = G.engines, *n; p; p = n) {
        n = p->ctl_next;
        if (atomic_load(&p->dead))
            continue;
        int rc = fy_engine_ctl_tick(p, now, &next);
        if (rc < 0)
            ctl_engine_dead(p, rc);
    }
    /* Connecters and paused listeners hang off the sockets; walk them through the engines'
     * sockets is not enough, so the calls keep a global view via the socket records. */
    return next;
}

/* Every socket record, for timers (control thread only). */
typedef struct ctl_sock_ref {
    fy_socket *s;
    struct ctl_sock_ref *next;
} ctl_sock_ref;
static ctl_sock_ref *ctl_socks;

static uint64_t ctl_sock_timers(uint64_t now, uint64_t next)
{
    for (ctl_sock_ref *r = ctl_socks; r; r = r->next) {
        fy_ctl_sock *cs = r->s->ctl;
        for (ctl_conn *c = cs->conns; c; c = c->next) {
            if (c->next_ns && c->fd < 0 && !c->eng) {
                if (now >= c->next_ns)
                    ctl_conn_try(c);
                if (c->next_ns && c->next_ns < next)
                    next = c->next_ns;
            }
        }
        for (ctl_listener *l = cs->listeners; l; l = l->next) {
            if (!l->paused)
                continue;
            if (now >= l->retry_ns) {
                struct epoll_event e = {.events = EPOLLIN, .data.ptr = l};
                epoll_ctl(G.epfd, EPOLL_CTL_MOD, l->fd, &e);
                l->paused = false;
                ctl_accept(l);
            } else if (l->retry_ns < next) {
                next = l->retry_ns;
            }
        }
    }
    return next;
}

static void *ctl_main(void *arg)
{
    (void)arg;
    struct epoll_event evs[64];
    bool flushing = false;
    for (;;) {
        ctl_process_grave();
        ctl_process_calls();
        uint64_t now = fy_now_ns();
        uint64_t next = ctl_timers(now);
        next = ctl_sock_timers(now, next);
        if (atomic_exchange(&G.flush_now, 0))
            G.next_flush_ns = 0;
        if (atomic_load(&G.flush_mode)) {
            if (!flushing) {
                /* Give the owner one tick to keep appending to its batch. */
                flushing = true;
                G.flush_shift = 0;
                G.next_flush_ns = now + FY_CTL_FLUSH_TICK_NS;
            }
            if (now >= G.next_flush_ns) {
                int r = ctl_flush_pass();
                if (r == 0) {
                    /* Pairs with the owner's append-then-check in fy_ctl_flush_watch: either
                     * we see its output in the rescan, or it sees flush_mode == 0 and kicks. */
                    atomic_store(&G.flush_mode, 0);
                    r = ctl_flush_pass();
                    if (r != 0)
                        atomic_store(&G.flush_mode, 1);
                }
                /* Stalled peers only: 0.2, 0.4 ... 25.6 ms between passes (each wake-up costs ~60
                 * us of CPU on a VM); the first pass after the peer frees room may come that late,
                 * any progress or new work starts again at one tick. */
                if (r == 2 && G.flush_shift < FY_CTL_FLUSH_MAX_SHIFT)
                    G.flush_shift++;
                else if (r != 2)
                    G.flush_shift = 0;
                G.next_flush_ns = now + (r == 3 ? FY_CTL_FLUSH_BACKSTOP_NS
                                                : FY_CTL_FLUSH_TICK_NS << G.flush_shift);
            }
            if (atomic_load(&G.flush_mode) && G.next_flush_ns < next)
                next = G.next_flush_ns;
            flushing = atomic_load(&G.flush_mode) != 0;
        }
        uint64_t wait_ns = UINT64_MAX;
        if (next != UINT64_MAX)
            wait_ns = next > now ? next - now : 0;
        int n = fy_epoll_wait(G.epfd, evs, 64, wait_ns);
        if (n < 0)
            continue;
        for (int i = 0; i < n; i++) {
            uint64_t d = evs[i].data.u64;
            if (d == 0) {
                uint64_t v;
                ssize_t r = read(G.kickfd, &v, sizeof v);
                (void)r;
                atomic_store(&G.kicked, 0);
                continue;
            }
            if ((d & 3u) == 3u) {
                /* Room in a watched ring: flush at once. The pipe is not touched here (it is
                 * unwatched before it is freed, and a stale event only costs a pass). */
                G.next_flush_ns = 0;
                continue;
            }
            if (d & 3u) {
                fy_pipe *p = (fy_pipe *)(uintptr_t)(d & ~(uint64_t)3u);
                ctl_engine_event(p, evs[i].events, (d & 3u) == 2u);
                continue;
            }
            int kind = *(int *)(uintptr_t)d;
            if (kind == CTL_LISTENER)
                ctl_accept((ctl_listener *)(uintptr_t)d);
            else
                ctl_conn_event((ctl_conn *)(uintptr_t)d);
        }
    }
    return NULL;
}

static void ctl_atfork_child(void)
{
    /* The control thread does not exist in the child: start afresh on first use. The parent's
     * structures are abandoned (sockets inherited across fork refuse to work). */
    pthread_mutex_init(&G.lock, NULL);
    pthread_cond_init(&G.cv, NULL);
    if (G.started) {
        close(G.epfd);
        close(G.kickfd);
    }
    G.started = false;
    G.calls = NULL;
    G.calls_tail = &G.calls;
    G.grave = NULL;
    G.engines = NULL;
    atomic_store(&G.kicked, 0);
    atomic_store(&G.flush_mode, 0);
    atomic_store(&G.flush_now, 0);
    ctl_socks = NULL;
}

static int ctl_start_locked(void)
{
    static bool atfork_done;
    if (G.started)
        return 0;
    if (!atfork_done) {
        pthread_atfork(NULL, NULL, ctl_atfork_child);
        atfork_done = true;
    }
    G.epfd = epoll_create1(EPOLL_CLOEXEC);
    if (G.epfd < 0)
        return -errno;
    G.kickfd = eventfd(0, EFD_NONBLOCK | EFD_CLOEXEC);
    if (G.kickfd < 0) {
        int e = -errno;
        close(G.epfd);
        return e;
    }
    struct epoll_event e = {.events = EPOLLIN, .data.u64 = 0};
    epoll_ctl(G.epfd, EPOLL_CTL_ADD, G.kickfd, &e);
    G.calls = NULL;
    G.calls_tail = &G.calls;
    pthread_attr_t attr;
    pthread_attr_init(&attr);
    pthread_attr_setdetachstate(&attr, PTHREAD_CREATE_DETACHED);
    /* The control thread must not take signals meant for the application. */
    sigset_t all, old;
    sigfillset(&all);
    pthread_sigmask(SIG_SETMASK, &all, &old);
    int rc = pthread_create(&G.thr, &attr, ctl_main, NULL);
    pthread_sigmask(SIG_SETMASK, &old, NULL);
    pthread_attr_destroy(&attr);
    if (rc != 0) {
        close(G.epfd);
        close(G.kickfd);
        return -rc;
    }
    G.pid = getpid();
    G.started = true;
    return 0;
}

static int fy_ctl_call(int (*fn)(void *), void *arg)
{
    ctl_call c = {.fn = fn, .arg = arg};
    pthread_mutex_lock(&G.lock);
    int rc = ctl_start_locked();
    if (rc != 0) {
        pthread_mutex_unlock(&G.lock);
        return rc;
    }
    if (pthread_equal(pthread_self(), G.thr)) {
        pthread_mutex_unlock(&G.lock);
        return fn(arg);
    }
    *G.calls_tail = &c;
    G.calls_tail = &c.next;
    pthread_mutex_unlock(&G.lock);
    ctl_kick();
    pthread_mutex_lock(&G.lock);
    while (!c.done)
        pthread_cond_wait(&G.cv, &G.lock);
    pthread_mutex_unlock(&G.lock);
    return c.rc;
}

/* ---- public (internal) entry points ---- */

int fy_ctl_sock_new(fy_socket *s)
{
    s->ctl = calloc(1, sizeof *s->ctl);
    return s->ctl ? 0 : FERRY_ENOMEM;
}

static void ctl_sock_track(fy_socket *s)
{
    for (ctl_sock_ref *r = ctl_socks; r; r = r->next)
        if (r->s == s)
            return;
    ctl_sock_ref *r = malloc(sizeof *r);
    if (!r)
        return; /* timers for this socket then only run on events; connects still retry */
    r->s = s;
    r->next = ctl_socks;
    ctl_socks = r;
}

typedef struct bind_arg {
    fy_socket *s;
    ctl_listener *l;
} bind_arg;

static int ctl_do_bind(void *a)
{
    bind_arg *b = a;
    struct epoll_event e = {.events = EPOLLIN, .data.ptr = b->l};
    if (epoll_ctl(G.epfd, EPOLL_CTL_ADD, b->l->fd, &e) != 0)
        return -errno;
    ctl_sock_track(b->s);
    b->l->next = b->s->ctl->listeners;
    b->s->ctl->listeners = b->l;
    return 0;
}

int fy_ctl_bind(fy_socket *s, const fy_transport_ops *t, const fy_endpoint *ep, const char *url,
                const fy_link_cfg *cfg, char *resolved, size_t cap)
{
    ctl_listener *l = calloc(1, sizeof *l);
    if (!l)
        return FERRY_ENOMEM;
    l->kind = CTL_LISTENER;
    l->sock = s;
    l->t = t;
    l->ep = *ep;
    l->cfg = *cfg;
    snprintf(l->url, sizeof l->url, "%s", url);
    int rc = t->listen(ep, &l->fd, l->resolved, sizeof l->resolved);
    if (rc != 0) {
        free(l);
        return rc;
    }
    bind_arg b = {s, l};
    rc = fy_ctl_call(ctl_do_bind, &b);
    if (rc != 0) {
        t->unlisten(ep, l->fd);
        free(l);
        return rc;
    }
    snprintf(resolved, cap, "%s", l->resolved);
    return 0;
}

static int ctl_do_connect(void *a)
{
    ctl_conn *c = a;
    ctl_sock_track(c->sock);
    c->next = c->sock->ctl->conns;
    c->sock->ctl->conns = c;
    ctl_conn_try(c);
    return 0;
}

int fy_ctl_connect(fy_socket *s, const fy_transport_ops *t, const fy_endpoint *ep, const char *url,
                   const fy_link_cfg *cfg)
{
    ctl_conn *c = calloc(1, sizeof *c);
    if (!c)
        return FERRY_ENOMEM;
    c->kind = CTL_CONNECTER;
    c->sock = s;
    c->t = t;
    c->ep = *ep;
    c->cfg = *cfg;
    c->fd = -1;
    c->ivl_cur = cfg->reconnect_ivl > 0 ? cfg->reconnect_ivl : 1;
    if (c->cfg.reconnect_ivl <= 0)
        c->cfg.reconnect_ivl = 1;
    snprintf(c->url, sizeof c->url, "%s", url);
    int rc = fy_ctl_call(ctl_do_connect, c);
    if (rc != 0)
        free(c);
    return rc;
}

typedef struct adopt_arg {
    fy_socket *s;
    fy_pipe *p;
} adopt_arg;

static int ctl_do_adopt(void *a)
{
    adopt_arg *x = a;
    ctl_sock_track(x->s);
    ctl_engine_start(x->s, x->p, NULL);
    return 0;
}

int fy_ctl_adopt(fy_socket *s, int rfd, int wfd, const fy_link_cfg *cfg)
{
    /* The engine takes the fds only once everything else has succeeded (the caller keeps them
     * on error), so make the control thread exist first. */
    pthread_mutex_lock(&G.lock);
    int rc = ctl_start_locked();
    pthread_mutex_unlock(&G.lock);
    if (rc != 0)
        return rc;
    fy_pipe *p;
    rc = fy_engine_new(&p, s, rfd, wfd, cfg);
    if (rc != 0)
        return rc; /* the engine closed the fds */
    adopt_arg a = {s, p};
    return fy_ctl_call(ctl_do_adopt, &a);
}

typedef struct url_arg {
    fy_socket *s;
    const char *url;
} url_arg;

static int ctl_do_unbind(void *a)
{
    url_arg *u = a;
    for (ctl_listener **pl = &u->s->ctl->listeners; *pl; pl = &(*pl)->next) {
        ctl_listener *l = *pl;
        if (strcmp(l->url, u->url) == 0 || strcmp(l->resolved, u->url) == 0) {
            *pl = l->next;
            ctl_listener_free(l);
            return 0;
        }
    }
    return FERRY_ENOENT;
}

int fy_ctl_unbind(fy_socket *s, const char *url)
{
    url_arg u = {s, url};
    return fy_ctl_call(ctl_do_unbind, &u);
}

static int ctl_do_disconnect(void *a)
{
    url_arg *u = a;
    for (ctl_conn **pc = &u->s->ctl->conns; *pc; pc = &(*pc)->next) {
        ctl_conn *c = *pc;
        if (strcmp(c->url, u->url) == 0) {
            *pc = c->next;
            if (c->eng) {
                fy_pipe *p = c->eng;
                c->eng = NULL;
                p->ctl_connecter = NULL;
                ctl_engine_dead(p, FERRY_ENOTCONN);
            }
            ctl_conn_free(c);
            return 0;
        }
    }
    return FERRY_ENOENT;
}

int fy_ctl_disconnect(fy_socket *s, const char *url)
{
    url_arg u = {s, url};
    return fy_ctl_call(ctl_do_disconnect, &u);
}

static int ctl_do_close(void *a)
{
    fy_socket *s = a;
    ctl_process_grave();
    fy_ctl_sock *cs = s->ctl;
    while (cs->listeners) {
        ctl_listener *l = cs->listeners;
        cs->listeners = l->next;
        ctl_listener_free(l);
    }
    while (cs->conns) {
        ctl_conn *c = cs->conns;
        cs->conns = c->next;
        ctl_conn_free(c);
    }
    /* Engines published but not yet attached are freed below with the rest: take them out of
     * the socket's mailbox first (inproc pipes stay there for the owner). */
    pthread_mutex_lock(&s->lock);
    for (fy_pipe **pp = &s->incoming; *pp;) {
        if (fy_pipe_is_engine(*pp))
            *pp = (*pp)->sock_next;
        else
            pp = &(*pp)->sock_next;
    }
    pthread_mutex_unlock(&s->lock);
    for (fy_pipe *p = G.engines, *n; p; p = n) {
        n = p->ctl_next;
        if (p->sock != s)
            continue;
        ctl_engine_unregister(p);
        ctl_engine_unlink(p);
        fy_engine_free(p);
    }
    for (ctl_sock_ref **pr = &ctl_socks; *pr; pr = &(*pr)->next) {
        if ((*pr)->s == s) {
            ctl_sock_ref *r = *pr;
            *pr = r->next;
            free(r);
            break;
        }
    }
    return 0;
}

void fy_ctl_socket_close(fy_socket *s)
{
    if (!s->ctl)
        return;
    pthread_mutex_lock(&G.lock);
    bool started = G.started;
    pthread_mutex_unlock(&G.lock);
    if (started)
        fy_ctl_call(ctl_do_close, s);
    free(s->ctl);
    s->ctl = NULL;
}

void fy_ctl_release_pipe(fy_pipe *p)
{
    pthread_mutex_lock(&G.lock);
    p->sock_next = G.grave;
    G.grave = p;
    pthread_mutex_unlock(&G.lock);
    ctl_kick();
}

void fy_ctl_flush_watch(void)
{
    if (atomic_load(&G.flush_mode))
        return;
    if (atomic_exchange(&G.flush_mode, 1) == 0)
        ctl_kick();
}

void fy_ctl_flush_kick(void)
{
    atomic_store(&G.flush_now, 1);
    ctl_kick();
}

void fy_ctl_note_error(fy_socket *s, const char *why)
{
    if (!s || !s->ctl)
        return;
    atomic_fetch_add(&s->ctl->link_errors, 1);
    if (why)
        atomic_store(&s->ctl->last_error, why);
}

const char *fy_ctl_last_error(fy_socket *s)
{
    return s && s->ctl ? atomic_load(&s->ctl->last_error) : NULL;
}

uint64_t fy_ctl_link_errors(fy_socket *s)
{
    return s && s->ctl ? atomic_load(&s->ctl->link_errors) : 0;
}
