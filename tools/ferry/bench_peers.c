/*
 * bench_peers.c - libzmq and nng as measured peers, loaded with dlopen at run time.
 *
 * The tool never links them: when libzmq.so.5 / libnng.so.1 is absent the rows are skipped with a
 * one-line note. Their C types are declared here from the ABI (void * handles for libzmq, a struct
 * holding a uint32_t id for nng) so no header is needed either. Each library is driven the way its
 * own users do: PAIR for round trips, PUSH/PULL for one-way throughput, blocking send/recv copying
 * into the caller's buffer (zmq_send/zmq_recv, nng_send/nng_recv with flags 0). Role 1
 * binds/listens and publishes its endpoint in the control page (the tcp port is chosen by the
 * kernel); role 0 waits for it and connects. inproc runs both roles as threads of one process (one
 * shared zmq context), pinned to the two CPUs like the processes are.
 */
#include "bench.h"

#include <dlfcn.h>
#include <errno.h>
#include <stdio.h>
#include <stdlib.h>
#include <string.h>

/* ---- libzmq ---------------------------------------------------------------------------- */

#define ZMQ_PAIR_          0
#define ZMQ_PUB_           1
#define ZMQ_SUB_           2
#define ZMQ_SUBSCRIBE_     6
#define ZMQ_RCVTIMEO_      27
#define ZMQ_PULL_          7
#define ZMQ_PUSH_          8
#define ZMQ_LINGER_        17
#define ZMQ_LAST_ENDPOINT_ 32

static struct {
    void *lib;
    void *(*ctx_new)(void);
    int (*ctx_term)(void *);
    void *(*socket)(void *, int);
    int (*close)(void *);
    int (*bind)(void *, const char *);
    int (*connect)(void *, const char *);
    int (*send)(void *, const void *, size_t, int);
    int (*recv)(void *, void *, size_t, int);
    int (*setsockopt)(void *, int, const void *, size_t);
    int (*getsockopt)(void *, int, void *, size_t *);
    int (*errno_)(void);
    const char *(*strerror)(int);
} zq;

enum peer_ep { EP_IPC, EP_TCP, EP_INPROC };

#if defined(__SANITIZE_THREAD__)
#define BENCH_TSAN 1
#elif defined(__has_feature)
#if __has_feature(thread_sanitizer)
#define BENCH_TSAN 1
#endif
#endif

static bool peer_load(void **lib, const char *soname, const char *const *names, void **slots, int n,
                      char *why, size_t cap)
{
#ifdef BENCH_TSAN
    /* The peers are not built with ThreadSanitizer: their lock-free queues would be reported as
     * races that are not there. A TSan build checks ferry's own code; it skips the peers. */
    (void)lib, (void)names, (void)slots, (void)n;
    snprintf(why, cap, "%s not loaded in a ThreadSanitizer build (uninstrumented)", soname);
    return false;
#endif
    if (*lib)
        return true;
    void *h = dlopen(soname, RTLD_NOW | RTLD_LOCAL);
    if (!h) {
        snprintf(why, cap, "%s not installed", soname);
        return false;
    }
    for (int i = 0; i < n; i++) {
        slots[i] = dlsym(h, names[i]);
        if (!slots[i]) {
            snprintf(why, cap, "%s lacks %s", soname, names[i]);
            dlclose(h);
            return false;
        }
    }
    *lib = h;
    return true;
}

static bool zmq_available(char *why, size_t cap)
{
    static const char *const names[] = {
        "zmq_ctx_new",    "zmq_ctx_term",   "zmq_socket", "zmq_close",
        "zmq_bind",       "zmq_connect",    "zmq_send",   "zmq_recv",
        "zmq_setsockopt", "zmq_getsockopt", "zmq_errno",  "zmq_strerror",
    };
    void *slots[12];
    bool was = zq.lib != NULL;
    if (!peer_load(&zq.lib, "libzmq.so.5", names, slots, 12, why, cap))
        return false;
    if (!was) {
        /* Function pointers from dlsym: the POSIX-sanctioned conversion through memcpy. */
        void **dst[] = {(void **)&zq.ctx_new,    (void **)&zq.ctx_term, (void **)&zq.socket,
                        (void **)&zq.close,      (void **)&zq.bind,     (void **)&zq.connect,
                        (void **)&zq.send,       (void **)&zq.recv,     (void **)&zq.setsockopt,
                        (void **)&zq.getsockopt, (void **)&zq.errno_,   (void **)&zq.strerror};
        for (int i = 0; i < 12; i++)
            memcpy(dst[i], &slots[i], sizeof(void *));
    }
    return true;
}

typedef struct zmq_h {
    void *ctx, *sock;
    bool own_ctx;
    bench_job *j;
} zmq_h;

/* ipc path (made in the parent so it is removed after the row), inproc name. */
/* Who binds: the receiving side (role 1) for rtt/thr/idle, the publisher (role 0) for fan-out. */
static bool peer_binds(const bench_job *j, int role)
{
    return j->mode == BENCH_FAN ? role == 0 : role == 1;
}

static int peer_setup(bench_job *j)
{
    enum peer_ep ep = (enum peer_ep)(intptr_t)j->tr->priv;
    if (ep == EP_IPC) {
        const char *p = bench_tmp_path(j->tr->peer);
        if (!p)
            return bench_fail(j, "too many temp paths");
        j->state = (void *)p;
    }
    return 0;
}

static void peer_endpoint(bench_job *j, char *buf, size_t cap)
{
    enum peer_ep ep = (enum peer_ep)(intptr_t)j->tr->priv;
    if (ep == EP_IPC)
        snprintf(buf, cap, "ipc://%s", (const char *)j->state);
    else if (ep == EP_TCP)
        snprintf(buf, cap, "tcp://127.0.0.1:%s", !strcmp(j->tr->peer, "zmq") ? "*" : "0");
    else
        snprintf(buf, cap, "inproc://ferry-bench-%s", j->tr->peer);
}

static int zmq_fail(bench_job *j, const char *what)
{
    return bench_fail(j, "%s: %s", what, zq.strerror(zq.errno_()));
}

static int zmq_child_setup(bench_job *j)
{
    j->tstate = zq.ctx_new();
    return j->tstate ? 0 : -1;
}

static void zmq_child_teardown(bench_job *j)
{
    if (j->tstate)
        zq.ctx_term(j->tstate);
}

static int zmq_open(bench_job *j, int role, void **out)
{
    zmq_h *h = calloc(1, sizeof *h);
    if (!h)
        return bench_fail(j, "out of memory");
    h->j = j;
    h->own_ctx = !j->tr->threads;
    h->ctx = h->own_ctx ? zq.ctx_new() : j->tstate;
    if (!h->ctx) {
        free(h);
        return zmq_fail(j, "zmq_ctx_new");
    }
    int type = j->mode == BENCH_RTT   ? ZMQ_PAIR_
               : j->mode == BENCH_FAN ? (role == 0 ? ZMQ_PUB_ : ZMQ_SUB_)
               : role == 0            ? ZMQ_PUSH_
                                      : ZMQ_PULL_;
    h->sock = zq.socket(h->ctx, type);
    int rc = 0;
    if (!h->sock) {
        rc = zmq_fail(j, "zmq_socket");
    } else if (type == ZMQ_SUB_ && zq.setsockopt(h->sock, ZMQ_SUBSCRIBE_, "", 0) != 0) {
        rc = zmq_fail(j, "zmq_setsockopt(ZMQ_SUBSCRIBE)");
    } else if (peer_binds(j, role)) {
        char ep[256];
        peer_endpoint(j, ep, sizeof ep);
        size_t l = sizeof j->ctl->endpoint;
        if (zq.bind(h->sock, ep) != 0)
            rc = zmq_fail(j, "zmq_bind");
        else if (zq.getsockopt(h->sock, ZMQ_LAST_ENDPOINT_, j->ctl->endpoint, &l) != 0)
            rc = zmq_fail(j, "zmq_getsockopt(ZMQ_LAST_ENDPOINT)");
        else
            atomic_store_explicit(&j->ctl->bound, 1, memory_order_release);
    } else if (bench_await(&j->ctl->bound, 20.0) != 0) {
        rc = bench_fail(j, "the binding side never became ready");
    } else if (zq.connect(h->sock, j->ctl->endpoint) != 0) {
        rc = zmq_fail(j, "zmq_connect");
    }
    if (rc) {
        if (h->sock)
            zq.close(h->sock);
        if (h->own_ctx)
            zq.ctx_term(h->ctx);
        free(h);
        return rc;
    }
    *out = h;
    return 0;
}

static int zmq_send_(void *hv, const void *buf, size_t len)
{
    zmq_h *h = hv;
    for (;;) {
        if (zq.send(h->sock, buf, len, 0) >= 0)
            return 0;
        if (zq.errno_() != EINTR)
            return zmq_fail(h->j, "zmq_send");
    }
}

static long zmq_recv_(void *hv, void *buf, size_t cap)
{
    zmq_h *h = hv;
    for (;;) {
        int n = zq.recv(h->sock, buf, cap, 0);
        if (n >= 0)
            return n;
        int e = zq.errno_();
        if (e == EAGAIN)
            return BENCH_TIMEDOUT;
        if (e != EINTR)
            return zmq_fail(h->j, "zmq_recv");
    }
}

static void zmq_close_(void *hv)
{
    zmq_h *h = hv;
    int zero = 0;
    zq.setsockopt(h->sock, ZMQ_LINGER_, &zero, sizeof zero);
    zq.close(h->sock);
    if (h->own_ctx)
        zq.ctx_term(h->ctx);
    free(h);
}

static int zmq_rcvtimeo(void *hv, int ms)
{
    zmq_h *h = hv;
    return zq.setsockopt(h->sock, ZMQ_RCVTIMEO_, &ms, sizeof ms) == 0
               ? 0
               : zmq_fail(h->j, "zmq_setsockopt(ZMQ_RCVTIMEO)");
}

static const bench_msg_ops zmq_ops = {
    .open = zmq_open,
    .send = zmq_send_,
    .recv = zmq_recv_,
    .set_rcvtimeo = zmq_rcvtimeo,
    .close = zmq_close_,
};

/* ---- nng ------------------------------------------------------------------------------- */

/* nng's handles are structs of one uint32_t, passed by value (same ABI as in nng.h). */
typedef struct {
    uint32_t id;
} nng_sock_;
typedef struct {
    uint32_t id;
} nng_ep_;

static struct {
    void *lib;
    int (*pair1_open)(nng_sock_ *);
    int (*push0_open)(nng_sock_ *);
    int (*pull0_open)(nng_sock_ *);
    int (*pub0_open)(nng_sock_ *);
    int (*sub0_open)(nng_sock_ *);
    int (*socket_set)(nng_sock_, const char *, const void *, size_t);
    int (*set_ms)(nng_sock_, const char *, int32_t);
    int (*close)(nng_sock_);
    int (*listen)(nng_sock_, const char *, nng_ep_ *, int);
    int (*dial)(nng_sock_, const char *, nng_ep_ *, int);
    int (*send)(nng_sock_, void *, size_t, int);
    int (*recv)(nng_sock_, void *, size_t *, int);
    int (*set_size)(nng_sock_, const char *, size_t);
    int (*listener_get_int)(nng_ep_, const char *, int *);
    const char *(*strerror)(int);
} nq;

#define NNG_EINTR_     1
#define NNG_ETIMEDOUT_ 5

static bool nng_available(char *why, size_t cap)
{
    static const char *const names[] = {
        "nng_pair1_open",
        "nng_push0_open",
        "nng_pull0_open",
        "nng_close",
        "nng_listen",
        "nng_dial",
        "nng_send",
        "nng_recv",
        "nng_socket_set_size",
        "nng_listener_get_int",
        "nng_strerror",
        "nng_pub0_open",
        "nng_sub0_open",
        "nng_socket_set",
        "nng_socket_set_ms",
    };
    void *slots[15];
    bool was = nq.lib != NULL;
    if (!peer_load(&nq.lib, "libnng.so.1", names, slots, 15, why, cap))
        return false;
    if (!was) {
        void **dst[] = {(void **)&nq.pair1_open, (void **)&nq.push0_open,
                        (void **)&nq.pull0_open, (void **)&nq.close,
                        (void **)&nq.listen,     (void **)&nq.dial,
                        (void **)&nq.send,       (void **)&nq.recv,
                        (void **)&nq.set_size,   (void **)&nq.listener_get_int,
                        (void **)&nq.strerror,   (void **)&nq.pub0_open,
                        (void **)&nq.sub0_open,  (void **)&nq.socket_set,
                        (void **)&nq.set_ms};
        for (int i = 0; i < 15; i++)
            memcpy(dst[i], &slots[i], sizeof(void *));
    }
    return true;
}

typedef struct nng_h {
    nng_sock_ s;
    bench_job *j;
} nng_h;

static int nng_fail(bench_job *j, const char *what, int e)
{
    return bench_fail(j, "%s: %s", what, nq.strerror(e));
}

static int nng_open_(bench_job *j, int role, void **out)
{
    nng_h *h = calloc(1, sizeof *h);
    if (!h)
        return bench_fail(j, "out of memory");
    h->j = j;
    int e = j->mode == BENCH_RTT   ? nq.pair1_open(&h->s)
            : j->mode == BENCH_FAN ? (role == 0 ? nq.pub0_open(&h->s) : nq.sub0_open(&h->s))
            : role == 0            ? nq.push0_open(&h->s)
                                   : nq.pull0_open(&h->s);
    if (e) {
        free(h);
        return nng_fail(j, "open socket", e);
    }
    /* nng silently drops a message above its 1 MiB default receive limit (a 1 MiB pair1 message
     * plus its header is above it), and on ipc a limit of 0 does not lift it: set it past the
     * row's message size. */
    if ((e = nq.set_size(h->s, "recv-size-max", j->size + 65536)) != 0) {
        nq.close(h->s);
        free(h);
        return nng_fail(j, "recv-size-max", e);
    }
    if (j->mode == BENCH_FAN && role > 0 && (e = nq.socket_set(h->s, "sub:subscribe", "", 0))) {
        nq.close(h->s);
        free(h);
        return nng_fail(j, "sub:subscribe", e);
    }
    int rc = 0;
    if (peer_binds(j, role)) {
        char ep[256];
        nng_ep_ l;
        peer_endpoint(j, ep, sizeof ep);
        if ((e = nq.listen(h->s, ep, &l, 0)) != 0) {
            rc = nng_fail(j, "nng_listen", e);
        } else if ((enum peer_ep)(intptr_t)j->tr->priv == EP_TCP) {
            int port = 0;
            if ((e = nq.listener_get_int(l, "tcp-bound-port", &port)) != 0)
                rc = nng_fail(j, "tcp-bound-port", e);
            else
                snprintf(j->ctl->endpoint, sizeof j->ctl->endpoint, "tcp://127.0.0.1:%d", port);
        } else {
            snprintf(j->ctl->endpoint, sizeof j->ctl->endpoint, "%s", ep);
        }
        if (!rc)
            atomic_store_explicit(&j->ctl->bound, 1, memory_order_release);
    } else if (bench_await(&j->ctl->bound, 20.0) != 0) {
        rc = bench_fail(j, "the listening side never became ready");
    } else if ((e = nq.dial(h->s, j->ctl->endpoint, NULL, 0)) != 0) {
        rc = nng_fail(j, "nng_dial", e);
    }
    if (rc) {
        nq.close(h->s);
        free(h);
        return rc;
    }
    *out = h;
    return 0;
}

static int nng_send_(void *hv, const void *buf, size_t len)
{
    nng_h *h = hv;
    for (;;) {
        int e = nq.send(h->s, (void *)buf, len, 0);
        if (!e)
            return 0;
        if (e != NNG_EINTR_)
            return nng_fail(h->j, "nng_send", e);
    }
}

static long nng_recv_(void *hv, void *buf, size_t cap)
{
    nng_h *h = hv;
    for (;;) {
        size_t sz = cap;
        int e = nq.recv(h->s, buf, &sz, 0);
        if (!e)
            return (long)sz;
        if (e == NNG_ETIMEDOUT_)
            return BENCH_TIMEDOUT;
        if (e != NNG_EINTR_)
            return nng_fail(h->j, "nng_recv", e);
    }
}

static void nng_close_(void *hv)
{
    nng_h *h = hv;
    nq.close(h->s);
    free(h);
}

static int nng_rcvtimeo(void *hv, int ms)
{
    nng_h *h = hv;
    int e = nq.set_ms(h->s, "recv-timeout", ms);
    return e ? nng_fail(h->j, "recv-timeout", e) : 0;
}

static const bench_msg_ops nng_ops = {
    .open = nng_open_,
    .send = nng_send_,
    .recv = nng_recv_,
    .set_rcvtimeo = nng_rcvtimeo,
    .close = nng_close_,
};

#define PEER_MODES                                                                                 \
    (BENCH_M(BENCH_RTT) | BENCH_M(BENCH_THR) | BENCH_M(BENCH_IDLE) | BENCH_M(BENCH_FAN))

#define PEER_TR(var, lib, ep, kind, thr, cs, ct, what)                                             \
    const bench_transport var = {                                                                  \
        .name = #lib ":" ep,                                                                       \
        .peer = #lib,                                                                              \
        .wait = "blocking",                                                                        \
        .help = what,                                                                              \
        .modes = PEER_MODES,                                                                       \
        .threads = thr,                                                                            \
        .default_on = true,                                                                        \
        .available = lib##_available,                                                              \
        .setup = peer_setup,                                                                       \
        .child_setup = cs,                                                                         \
        .child_teardown = ct,                                                                      \
        .ops = &lib##_ops,                                                                         \
        .priv = (void *)(intptr_t)(kind),                                                          \
    };

PEER_TR(bench_tr_zmq_ipc, zmq, "ipc", EP_IPC, false, NULL, NULL,
        "libzmq over ipc:// (PAIR / PUSH-PULL)")
PEER_TR(bench_tr_zmq_tcp, zmq, "tcp", EP_TCP, false, NULL, NULL, "libzmq over tcp://127.0.0.1")
PEER_TR(bench_tr_zmq_inproc, zmq, "inproc", EP_INPROC, true, zmq_child_setup, zmq_child_teardown,
        "libzmq inproc://, two threads")
PEER_TR(bench_tr_nng_ipc, nng, "ipc", EP_IPC, false, NULL, NULL,
        "nng over ipc:// (pair1 / push0-pull0)")
PEER_TR(bench_tr_nng_tcp, nng, "tcp", EP_TCP, false, NULL, NULL, "nng over tcp://127.0.0.1")
PEER_TR(bench_tr_nng_inproc, nng, "inproc", EP_INPROC, true, NULL, NULL,
        "nng inproc://, two threads")
