/*
 * shm.c - the shm:// transport and the switch of a ZMTP link to the shared-memory data path.
 *
 * shm:// is a Unix socket in the runtime directory (shm_dir.c) driven by the ordinary stream
 * engine: greeting and READY are plain ZMTP, and both ferry peers list "shm" in X-Ferry. The
 * same happens on ipc:// links unless FERRY_OPT_SHM_UPGRADE is 0, so a libzmq peer on the same
 * endpoint (no X-Ferry) simply keeps the ZMTP path. Once READY has been exchanged and both sides
 * offered shm, the engine hands its socket to the link hand-over (shm_link.c) instead of going
 * live; when that completes, the engine's pipe switches its operations to the ones below, which
 * forward to an shm pipe (shm_pipe.c) and keep the engine's core-visible flags in step.
 *
 * The engine object stays the pipe the socket and the control thread know: the control thread
 * keeps watching the Unix socket (fy_engine_rfd) for the hang-up that means the peer is gone,
 * and frees the pipe the usual way; the socket's epoll gets the shm wake eventfd as p->rfd.
 * Roles follow the socket: the accepted side (its socket has a name) creates the segment, the
 * connecting side (unnamed) requests it. Two unnamed ends (an adopted socketpair) never switch.
 */
#include "core/ctl.h"
#include "core/socket.h"
#include "transport/shm.h"
#include "transport/transport.h"
#include "wire/zmtp.h"

#include <errno.h>
#include <stddef.h>
#include <stdio.h>
#include <stdlib.h>
#include <string.h>
#include <sys/socket.h>
#include <sys/un.h>
#include <unistd.h>

/* ---- shm:// endpoints ---- */

static int shm_tr_listen(const fy_endpoint *ep, int *fd, char *resolved, size_t cap)
{
    char path[FY_SHM_PATH_MAX];
    int rc = fy_shm_path(ep->name, path, sizeof path);
    if (rc < 0)
        return rc;
    rc = fy_shm_listen_path(path, fd);
    if (rc < 0)
        return rc;
    snprintf(resolved, cap, "shm://%s", ep->name);
    return 0;
}

static int shm_tr_connect(const fy_endpoint *ep, int *fd)
{
    char path[FY_SHM_PATH_MAX];
    int rc = fy_shm_path(ep->name, path, sizeof path);
    if (rc < 0)
        return rc;
    return fy_shm_connect_path(path, fd);
}

static int shm_tr_prepare(int fd, const fy_link_cfg *cfg)
{
    return fy_shm_peer_check(fd, cfg->peer_uid) == 0 ? 0 : FERRY_EACCES;
}

static void shm_tr_unlisten(const fy_endpoint *ep, int fd)
{
    char path[FY_SHM_PATH_MAX];
    if (fy_shm_path(ep->name, path, sizeof path) == 0)
        fy_shm_unlisten_path(path, fd);
    else if (fd >= 0)
        close(fd);
}

const fy_transport_ops fy_transport_shm = {
    .scheme = FY_EP_SHM,
    .name = "shm",
    .listen = shm_tr_listen,
    .connect = shm_tr_connect,
    .prepare = shm_tr_prepare,
    .unlisten = shm_tr_unlisten,
};

/* ---- the switch ---- */

typedef struct fy_shm_up {
    fy_shm_hs hs;
    fy_pipe *sp; /* the shm pipe doing the work, once the hand-over is done */
    int ufd;     /* the Unix socket (owned by the engine) */
    int sndhwm;
} fy_shm_up;

static const fy_pipe_ops shm_eng_ops;

static fy_shm_up *up_of(const fy_pipe *p)
{
    return (fy_shm_up *)p->transport_data;
}

bool fy_pipe_uses_shm(const fy_pipe *p)
{
    return p && p->ops == &shm_eng_ops;
}

/* 0: the socket has no name (we connected), 1: it has one (accepted), < 0: not AF_UNIX. */
static int shm_sock_named(int fd, bool peer)
{
    struct sockaddr_un a;
    socklen_t l = sizeof a;
    memset(&a, 0, sizeof a);
    int r = peer ? getpeername(fd, (struct sockaddr *)&a, &l)
                 : getsockname(fd, (struct sockaddr *)&a, &l);
    if (r != 0 || a.sun_family != AF_UNIX)
        return FERRY_ENOTSOCK;
    return l > offsetof(struct sockaddr_un, sun_path) ? 1 : 0;
}

const char *fy_shm_ferry_caps(int fd, const fy_link_cfg *cfg)
{
    if (cfg->shm && shm_sock_named(fd, false) >= 0)
        return "1;stream," FY_SHM_CAP;
    return "1;stream";
}

int fy_shm_eng_ready(fy_pipe *p, int fd, const fy_link_cfg *cfg, const fy_zmtp_peer_info *info,
                     const uint8_t *left, size_t left_len)
{
    if (!cfg->shm || !fy_zmtp_ferry_has_cap(info, FY_SHM_CAP))
        return 0;
    int me = shm_sock_named(fd, false), peer = shm_sock_named(fd, true);
    if (me < 0 || peer < 0 || me == peer)
        return 0; /* both unnamed (socketpair): nobody is the listener, keep ZMTP */
    size_t cap;
    if (fy_shm_ring_capacity(cfg->shm_ring_size, &cap) < 0)
        cap = FY_SHM_DEFAULT_RING;
    fy_shm_up *up = calloc(1, sizeof *up);
    if (!up)
        return FERRY_ENOMEM;
    fy_shm_hs_init(&up->hs, me ? 0 : 1, cap);
    up->ufd = fd;
    up->sndhwm = cfg->sndhwm;
    int rc = fy_shm_hs_feed(&up->hs, left, left_len);
    if (rc < 0) {
        fy_ctl_note_error(p->sock, "shm hand-over: unexpected bytes after READY");
        fy_shm_hs_fini(&up->hs);
        free(up);
        return rc;
    }
    p->transport_data = up;
    return 1;
}

int fy_shm_eng_step(fy_pipe *p, bool *want_out)
{
    fy_shm_up *up = up_of(p);
    int rc = fy_shm_hs_step(&up->hs, up->ufd, want_out);
    if (rc <= 0) {
        if (rc < 0)
            fy_ctl_note_error(p->sock, up->hs.why ? up->hs.why : "shm hand-over failed");
        return rc;
    }
    fy_shm_link *l = fy_shm_hs_take(&up->hs);
    fy_shm_pipe_cfg pc = {.sndhwm = up->sndhwm};
    rc = fy_shm_pipe_new(&up->sp, p->sock, l, -1, &pc);
    if (rc < 0) {
        up->sp = NULL;
        return rc;
    }
    up->sp->peer = p->peer;
    up->sp->id = p->id;
    /* From here the socket sees the shm pipe's behaviour through the engine's pipe. */
    p->rfd = up->sp->rfd;
    p->wfd = -1;
    p->dirty = true;
    p->ops = &shm_eng_ops;
    return 1;
}

fy_pipe *fy_shm_eng_inner(fy_pipe *p)
{
    return fy_pipe_uses_shm(p) && up_of(p) ? up_of(p)->sp : NULL;
}

int fy_shm_eng_ufd(const fy_pipe *p)
{
    return up_of(p)->ufd;
}

int fy_shm_eng_ctl_flush(fy_pipe *p)
{
    fy_shm_up *up = up_of(p);
    return up && up->sp ? fy_shm_pipe_ctl_flush(up->sp) : 0;
}

int fy_shm_eng_ctl_watch(fy_pipe *p, int epfd, uint64_t data)
{
    fy_shm_up *up = up_of(p);
    return up && up->sp ? fy_shm_pipe_ctl_watch(up->sp, epfd, data) : 0;
}

void fy_shm_eng_ctl_unwatch(fy_pipe *p)
{
    fy_shm_up *up = up_of(p);
    if (up && up->sp)
        fy_shm_pipe_ctl_unwatch(up->sp);
}

void fy_shm_eng_kill(fy_pipe *p, int err)
{
    fy_shm_up *up = up_of(p);
    if (up && up->sp)
        fy_shm_pipe_kill(up->sp, err);
}

void fy_shm_eng_free(fy_pipe *p)
{
    fy_shm_up *up = up_of(p);
    if (!up)
        return;
    if (up->sp) {
        /* Give the engine its Unix socket back so it closes it as usual. */
        p->rfd = p->wfd = up->ufd;
        fy_shm_pipe_free(up->sp);
    }
    fy_shm_hs_fini(&up->hs);
    free(up);
    p->transport_data = NULL;
}

/* Mirrors what the shm pipe learnt into the engine pipe the core looks at. */
static void shm_eng_sync(fy_pipe *p, fy_pipe *in)
{
    p->dirty = true;
    if (in->saw_epipe)
        p->saw_epipe = true;
    if (atomic_load_explicit(&in->dead, memory_order_acquire) &&
        !atomic_load_explicit(&p->dead, memory_order_relaxed))
        fy_engine_kill(p, fy_shm_pipe_error(in));
}

static int shm_eng_send(fy_pipe *p, fy_msg *m)
{
    fy_pipe *in = up_of(p)->sp;
    int rc = in->ops->send(in, m);
    if (__builtin_expect(rc < 0 && rc != FERRY_EAGAIN, 0))
        shm_eng_sync(p, in);
    return rc;
}

static int shm_eng_recv(fy_pipe *p, fy_msg *m)
{
    fy_pipe *in = up_of(p)->sp;
    int rc = in->ops->recv(in, m);
    if (__builtin_expect(rc < 0 && rc != FERRY_EAGAIN, 0))
        shm_eng_sync(p, in);
    return rc;
}

static int shm_eng_poll_in(fy_pipe *p)
{
    fy_pipe *in = up_of(p)->sp;
    int rc = in->ops->poll_in(in);
    if (rc == 0)
        shm_eng_sync(p, in);
    return rc;
}

static bool shm_eng_can_send(fy_pipe *p)
{
    fy_pipe *in = up_of(p)->sp;
    return in->ops->can_send(in);
}

static int shm_eng_flush(fy_pipe *p)
{
    fy_pipe *in = up_of(p)->sp;
    int rc = in->ops->flush(in);
    shm_eng_sync(p, in);
    return rc;
}

static bool shm_eng_has_input(fy_pipe *p)
{
    fy_pipe *in = up_of(p)->sp;
    return in->ops->has_input(in);
}

_Static_assert(FY_SHM_DECLINE == FY_ENG_DECLINE, "fy_engine_send_buf/recv_buf forward our answer");

int fy_shm_send_buf(fy_pipe *p, const void *buf, size_t len)
{
    if (p->ops != &shm_eng_ops)
        return FY_SHM_DECLINE;
    fy_pipe *in = up_of(p)->sp;
    int rc = fy_shm_pipe_send_buf(in, buf, len);
    if (__builtin_expect(rc != 0, 0))
        shm_eng_sync(p, in);
    return rc;
}

int fy_shm_send_loan(fy_pipe *p, fy_msg *m)
{
    if (p->ops != &shm_eng_ops)
        return FY_SHM_DECLINE;
    fy_pipe *in = up_of(p)->sp;
    int rc = fy_shm_pipe_send_loan_direct(in, m);
    if (__builtin_expect(rc != 0, 0))
        shm_eng_sync(p, in);
    return rc;
}

int fy_shm_recv_buf(fy_pipe *p, void *buf, size_t cap, size_t *size)
{
    return fy_shm_recv_buf_wait(p, buf, cap, size, 0, -1);
}

static inline void shm_relax(void)
{
#if defined(__x86_64__) || defined(__i386__)
    __builtin_ia32_pause();
#elif defined(__aarch64__)
    __asm__ __volatile__("yield");
#endif
}

/*
 * The ring was empty: busy-poll it for the pipe's spin window (within timeout_ms, -1: none), with
 * the same
 * exits as the core's spin loop (socket.c sock_run), which would otherwise poll this ring through
 * the pattern: a death or a pipe-set change goes back to it at once, and the clock is read only
 * every 64 polls. Out of line, so the call that finds a frame waiting saves no registers for it.
 */
static __attribute__((noinline)) int shm_recv_spin(fy_pipe *p, fy_pipe *in, void *buf, size_t cap,
                                                   size_t *size, uint64_t base_ns, int timeout_ms)
{
    uint64_t wait_ns = fy_shm_pipe_spin_ns(in, base_ns);
    if (timeout_ms >= 0 && wait_ns > (uint64_t)timeout_ms * 1000000u)
        wait_ns = (uint64_t)timeout_ms * 1000000u;
    int rc = FY_SHM_EMPTY;
    if (wait_ns == 0)
        return rc;
    fy_socket *s = p->sock;
    uint64_t deadline = fy_now_ns() + wait_ns;
    for (unsigned i = 1; rc == FY_SHM_EMPTY; i++) {
        shm_relax();
        if (atomic_load_explicit(&in->dead, memory_order_relaxed) ||
            atomic_load_explicit(&p->dead, memory_order_relaxed) ||
            (s && atomic_load_explicit(&s->gen, memory_order_acquire) != s->seen_gen))
            break;
        if ((i & 63) == 0 && fy_now_ns() >= deadline)
            break;
        rc = fy_shm_pipe_recv_buf(in, buf, cap, size);
    }
    return rc;
}

int fy_shm_recv_buf_wait(fy_pipe *p, void *buf, size_t cap, size_t *size, uint64_t base_ns,
                         int timeout_ms)
{
    if (p->ops != &shm_eng_ops)
        return FY_SHM_DECLINE;
    fy_pipe *in = up_of(p)->sp;
    int rc = fy_shm_pipe_recv_buf(in, buf, cap, size);
    if (__builtin_expect(rc == 0, 1))
        return 0;
    /* The window is worked out only when there is something to wait for. */
    if (rc == FY_SHM_EMPTY && base_ns != 0)
        rc = shm_recv_spin(p, in, buf, cap, size, base_ns, timeout_ms);
    if (rc != 0) {
        shm_eng_sync(p, in);
        return FY_SHM_DECLINE;
    }
    return 0;
}

static void shm_eng_release(fy_pipe *p)
{
    fy_ctl_release_pipe(p); /* the control thread frees it with fy_engine_free */
}

static const fy_pipe_ops shm_eng_ops = {
    .send = shm_eng_send,
    .recv = shm_eng_recv,
    .poll_in = shm_eng_poll_in,
    .can_send = shm_eng_can_send,
    .flush = shm_eng_flush,
    .has_input = shm_eng_has_input,
    .release = shm_eng_release,
};
