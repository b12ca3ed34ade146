/*
 * bench_ferry.c - ferry's own sockets (ferry.h) as benchmark rows, driven by the same message loops
 * as libzmq and nng (bench_loop.c) so the three are measured alike.
 *
 * PAIR for rtt, PUSH/PULL for thr, PUB/SUB for fan-out; ferry_socket_send/recv copying into the
 * caller's buffer, like zmq_send/zmq_recv. Transports: ipc:// with the shared-memory upgrade
 * switched off (FERRY_OPT_SHM_UPGRADE=0: plain ZMTP over a Unix socket, what a libzmq peer sees),
 * tcp:// on 127.0.0.1, inproc:// (two threads of one process) and fd:// over a pair of pipes handed
 * to ferry_socket_adopt. Each comes in two rows: wait=poll keeps the default FERRY_OPT_SPIN_NS (the
 * receiver busy-polls for a bounded window before it sleeps), wait=blocking sets it to 0 (every
 * empty receive sleeps in the kernel).
 *
 * No ferry socket is ever opened in the parent: the library starts a process-wide control thread on
 * first use, and a fork after that would leave the children with a half-copied library.
 */
#include "bench.h"

#include "ferry/ferry.h"

#include <errno.h>
#include <fcntl.h>
#include <poll.h>
#include <stdio.h>
#include <stdlib.h>
#include <string.h>
#include <sys/wait.h>
#include <unistd.h>

enum fer_ep { FER_IPC, FER_TCP, FER_INPROC, FER_PIPE, FER_SHM, FER_IPCSHM };

/* priv encodes the endpoint kind and whether the row blocks. */
#define FER_PRIV(ep, block) ((void *)(intptr_t)((ep) | ((block) << 4)))
#define FER_EP(j)           ((enum fer_ep)((intptr_t)(j)->tr->priv & 15))
#define FER_BLOCK(j)        (((intptr_t)(j)->tr->priv >> 4) & 1)

static char fer_shm_name[80]; /* the current row's shm:// name (made in the parent) */

typedef struct fer_h {
    ferry_socket *s;
    bench_job *j;
} fer_h;

static int fer_fail(bench_job *j, const char *what, int rc)
{
    return bench_fail(j, "%s: %s", what, ferry_strerror(rc));
}

static bool fer_binds(const bench_job *j, int role)
{
    return j->mode == BENCH_FAN ? role == 0 : role == 1;
}

static int fer_setup(bench_job *j)
{
    enum fer_ep ep = FER_EP(j);
    if (ep == FER_SHM) {
        /* shm:// names a socket in ferry's runtime directory; unique per row and run. */
        static unsigned serial;
        snprintf(fer_shm_name, sizeof fer_shm_name, "ferry-bench-%d-%u", (int)getpid(), serial++);
        j->state = fer_shm_name;
    } else if (ep == FER_IPC || ep == FER_IPCSHM) {
        const char *p = bench_tmp_path("ferry");
        if (!p)
            return bench_fail(j, "too many temp paths");
        j->state = (void *)p;
    } else if (ep == FER_PIPE) {
        /* ZMTP needs both directions even for one-way traffic (greetings, handshake). */
        int p[2], q[2];
        if (pipe2(p, O_CLOEXEC) != 0)
            return bench_fail(j, "pipe: %s", strerror(errno));
        if (pipe2(q, O_CLOEXEC) != 0) {
            close(p[0]);
            close(p[1]);
            return bench_fail(j, "pipe: %s", strerror(errno));
        }
        j->fd[0] = q[0]; /* role 0 reads */
        j->fd[1] = p[1]; /* role 0 writes */
        j->fd[2] = p[0]; /* role 1 reads */
        j->fd[3] = q[1]; /* role 1 writes */
    }
    return 0;
}

static void fer_teardown(bench_job *j)
{
    /* A side killed before it closed leaves its shm:// socket file behind: remove it (same
     * directory rule as the library: $XDG_RUNTIME_DIR/ferry, else /tmp/ferry-$UID). */
    if (FER_EP(j) == FER_SHM && j->state) {
        char path[512];
        const char *xdg = getenv("XDG_RUNTIME_DIR");
        if (xdg && xdg[0] == '/')
            snprintf(path, sizeof path, "%s/ferry/%s", xdg, fer_shm_name);
        else
            snprintf(path, sizeof path, "/tmp/ferry-%u/%s", (unsigned)geteuid(), fer_shm_name);
        unlink(path);
    }
    for (int i = 0; i < 4; i++) {
        if (j->fd[i] >= 0)
            close(j->fd[i]);
        j->fd[i] = -1;
    }
}

static int fer_open(bench_job *j, int role, void **out)
{
    fer_h *h = calloc(1, sizeof *h);
    if (!h)
        return bench_fail(j, "out of memory");
    h->j = j;
    int type = j->mode == BENCH_RTT   ? FERRY_PAIR
               : j->mode == BENCH_FAN ? (role == 0 ? FERRY_PUB : FERRY_SUB)
               : role == 0            ? FERRY_PUSH
                                      : FERRY_PULL;
    int rc = ferry_socket_open(&h->s, type);
    if (rc < 0) {
        free(h);
        return fer_fail(j, "ferry_socket_open", rc);
    }
    enum fer_ep ep = FER_EP(j);
    const char *what = NULL;
    if (FER_BLOCK(j) && (rc = ferry_socket_setopt_int(h->s, FERRY_OPT_SPIN_NS, 0)) < 0)
        what = "FERRY_OPT_SPIN_NS";
    else if (ep == FER_IPC && (rc = ferry_socket_setopt_int(h->s, FERRY_OPT_SHM_UPGRADE, 0)) < 0)
        what = "FERRY_OPT_SHM_UPGRADE";
    else if (type == FERRY_SUB && (rc = ferry_socket_subscribe(h->s, "", 0)) < 0)
        what = "ferry_socket_subscribe";
    else if (ep == FER_PIPE) {
        /* This process keeps only its own two ends; the socket owns them from here on. */
        int rfd = j->fd[role * 2], wfd = j->fd[role * 2 + 1];
        close(j->fd[(1 - role) * 2]);
        close(j->fd[(1 - role) * 2 + 1]);
        for (int i = 0; i < 4; i++)
            j->fd[i] = -1;
        if ((rc = ferry_socket_adopt(h->s, rfd, wfd)) < 0) {
            close(rfd);
            close(wfd);
            what = "ferry_socket_adopt";
        }
    } else if (fer_binds(j, role)) {
        char url[256];
        if (ep == FER_IPC || ep == FER_IPCSHM)
            snprintf(url, sizeof url, "ipc://%s", (const char *)j->state);
        else if (ep == FER_SHM)
            snprintf(url, sizeof url, "shm://%s", (const char *)j->state);
        else if (ep == FER_TCP)
            snprintf(url, sizeof url, "tcp://127.0.0.1:*");
        else
            snprintf(url, sizeof url, "inproc://ferry-bench");
        if ((rc = ferry_socket_bind(h->s, url)) < 0)
            what = "ferry_socket_bind";
        else if ((rc = ferry_socket_last_endpoint(h->s, j->ctl->endpoint,
                                                  sizeof j->ctl->endpoint)) < 0)
            what = "ferry_socket_last_endpoint";
        else
            atomic_store_explicit(&j->ctl->bound, 1, memory_order_release);
    } else if (bench_await(&j->ctl->bound, 20.0) != 0) {
        ferry_socket_close(h->s);
        free(h);
        return bench_fail(j, "the binding side never became ready");
    } else if ((rc = ferry_socket_connect(h->s, j->ctl->endpoint)) < 0) {
        what = "ferry_socket_connect";
    }
    if (what) {
        ferry_socket_close(h->s);
        free(h);
        return fer_fail(j, what, rc);
    }
    *out = h;
    return 0;
}

static int fer_send(void *hv, const void *buf, size_t len)
{
    fer_h *h = hv;
    for (;;) {
        int rc = ferry_socket_send(h->s, buf, len, 0);
        if (rc >= 0)
            return 0;
        if (rc != FERRY_EINTR)
            return fer_fail(h->j, "ferry_socket_send", rc);
    }
}

static long fer_recv(void *hv, void *buf, size_t cap)
{
    fer_h *h = hv;
    for (;;) {
        ssize_t n = ferry_socket_recv(h->s, buf, cap, 0, NULL);
        if (n >= 0)
            return (long)n;
        if (n == FERRY_EAGAIN)
            return BENCH_TIMEDOUT;
        if (n != FERRY_EINTR)
            return fer_fail(h->j, "ferry_socket_recv", (int)n);
    }
}

static int fer_rcvtimeo(void *hv, int ms)
{
    fer_h *h = hv;
    int rc = ferry_socket_setopt_int(h->s, FERRY_OPT_RCVTIMEO, ms);
    return rc < 0 ? fer_fail(h->j, "FERRY_OPT_RCVTIMEO", rc) : 0;
}

static void fer_close(void *hv)
{
    fer_h *h = hv;
    ferry_socket_setopt_int(h->s, FERRY_OPT_LINGER, 0);
    ferry_socket_close(h->s);
    free(h);
}

static const bench_msg_ops fer_ops = {
    .open = fer_open,
    .send = fer_send,
    .recv = fer_recv,
    .set_rcvtimeo = fer_rcvtimeo,
    .close = fer_close,
};

/* Whether this build's sockets can do PUB/SUB: asked in a throw-away child, never here (see the
 * file comment). Cached for the run. */
static const char *fer_skip(int mode, size_t size)
{
    (void)size;
    static int pubsub = -1;
    if (mode != BENCH_FAN)
        return NULL;
    if (pubsub < 0) {
        fflush(stdout);
        fflush(stderr);
        pid_t p = fork();
        if (p == 0) {
            ferry_socket *s = NULL;
            int ok = ferry_socket_open(&s, FERRY_PUB) == 0;
            ferry_socket_close(s);
            s = NULL;
            ok = ok && ferry_socket_open(&s, FERRY_SUB) == 0;
            ferry_socket_close(s);
            _exit(ok ? 0 : 1);
        }
        int st = 0;
        pubsub = p > 0 && waitpid(p, &st, 0) == p && WIFEXITED(st) && WEXITSTATUS(st) == 0;
    }
    return pubsub ? NULL : "PUB/SUB sockets are not available in this build";
}

#define FER_MODES                                                                                  \
    (BENCH_M(BENCH_RTT) | BENCH_M(BENCH_THR) | BENCH_M(BENCH_IDLE) | BENCH_M(BENCH_FAN))

#define FER_TR(var, nm, wt, ep, block, thr, what)                                                  \
    const bench_transport var = {                                                                  \
        .name = nm,                                                                                \
        .peer = "ferry",                                                                           \
        .wait = wt,                                                                                \
        .help = what,                                                                              \
        .modes = (ep) == FER_PIPE ? FER_MODES & ~BENCH_M(BENCH_FAN) : FER_MODES,                   \
        .threads = thr,                                                                            \
        .default_on = true,                                                                        \
        .skip = fer_skip,                                                                          \
        .setup = fer_setup,                                                                        \
        .teardown = fer_teardown,                                                                  \
        .ops = &fer_ops,                                                                           \
        .priv = FER_PRIV(ep, block),                                                               \
    };

FER_TR(bench_tr_ferry_ipc, "ferry:ipc", "poll", FER_IPC, 0, false,
       "ferry sockets over ipc:// as plain ZMTP (no shm upgrade), default spin window")
FER_TR(bench_tr_ferry_ipc_block, "ferry:ipc:block", "blocking", FER_IPC, 1, false,
       "ferry sockets over ipc:// as plain ZMTP, SPIN_NS=0")
FER_TR(bench_tr_ferry_tcp, "ferry:tcp", "poll", FER_TCP, 0, false,
       "ferry sockets over tcp://127.0.0.1, default spin window")
FER_TR(bench_tr_ferry_tcp_block, "ferry:tcp:block", "blocking", FER_TCP, 1, false,
       "ferry sockets over tcp://127.0.0.1, SPIN_NS=0")
FER_TR(bench_tr_ferry_inproc, "ferry:inproc", "poll", FER_INPROC, 0, true,
       "ferry sockets over inproc://, two threads, default spin window")
FER_TR(bench_tr_ferry_inproc_block, "ferry:inproc:block", "blocking", FER_INPROC, 1, true,
       "ferry sockets over inproc://, two threads, SPIN_NS=0")
FER_TR(bench_tr_ferry_shm, "ferry:shm", "poll", FER_SHM, 0, false,
       "ferry sockets over shm:// (rings in a memfd after a Unix-socket handshake), default spin")
FER_TR(bench_tr_ferry_shm_block, "ferry:shm:block", "blocking", FER_SHM, 1, false,
       "ferry sockets over shm://, SPIN_NS=0")
FER_TR(bench_tr_ferry_ipc_shm, "ferry:ipc+shm", "poll", FER_IPCSHM, 0, false,
       "ferry sockets over ipc:// upgraded to shared memory (two ferry peers), default spin")
FER_TR(bench_tr_ferry_pipe, "ferry:pipe", "poll", FER_PIPE, 0, false,
       "ferry sockets over fd:// on two pipes (ferry_socket_adopt), default spin window")
FER_TR(bench_tr_ferry_pipe_block, "ferry:pipe:block", "blocking", FER_PIPE, 1, false,
       "ferry sockets over fd:// on two pipes, SPIN_NS=0")

/*
 * ferry:shm-loan: the zero-copy path. The producer writes each message straight into the peer's
 * ring (ferry_msg_loan + ferry_msg_send commits it in place) and the consumer reads it in place
 * (FERRY_OPT_ZEROCOPY_RECV), so neither side copies: the payload rule (every byte written by the
 * producer, every byte read by the consumer) is the only memory traffic. The row fails unless
 * every message took the zero-copy path on both sides (the socket statistics say so).
 */
static int loan_thr(bench_job *j, int role, fer_h *h)
{
    bench_ctl *c = j->ctl;
    size_t size = j->size;
    uint64_t mask = size >= 4096 ? 0 : size >= 256 ? 7 : 63;
    ferry_msg m;
    ferry_msg_init(&m);
    if (role == 0) {
        /* A loan needs the shm peer attached (before that it is a heap message): wait for it. */
        uint64_t give_up = bench_now_ns() + 20000000000ull;
        for (;;) {
            ferry_stats st;
            int rc = ferry_socket_stats(h->s, &st);
            if (rc < 0)
                return fer_fail(j, "ferry_socket_stats", rc);
            if (st.peers_shm == 1)
                break;
            if (bench_now_ns() > give_up)
                return bench_fail(j, "the shm link never came up");
            struct pollfd pf = {.fd = ferry_socket_pollfd(h->s), .events = POLLIN};
            poll(&pf, 1, 1);
        }
        uint64_t end = bench_now_ns() + (uint64_t)((j->cfg->warmup + j->cfg->seconds) * 1e9);
        for (uint64_t i = 1;; i++) {
            bool last = i >= BENCH_MIN_MSGS && (i & mask) == 0 && bench_now_ns() >= end;
            if (last)
                atomic_store_explicit(&c->total, i, memory_order_seq_cst);
            int rc = ferry_msg_loan(h->s, &m, size);
            if (rc < 0)
                return fer_fail(j, "ferry_msg_loan", rc);
            bench_fill(ferry_msg_data(&m), size, i);
            while ((rc = ferry_msg_send(h->s, &m, 0)) == FERRY_EINTR)
                ;
            if (rc < 0) {
                ferry_msg_fini(&m);
                return fer_fail(j, "ferry_msg_send", rc);
            }
            if ((i & mask) == 0)
                atomic_store_explicit(&c->progress[0].n, i, memory_order_relaxed);
            if (last) {
                ferry_stats st;
                if ((rc = ferry_socket_stats(h->s, &st)) < 0)
                    return fer_fail(j, "ferry_socket_stats", rc);
                if (st.zc_sends != i)
                    return bench_fail(j, "only %llu of %llu loans were committed in place",
                                      (unsigned long long)st.zc_sends, (unsigned long long)i);
                return 0;
            }
        }
    }
    uint64_t warm = (uint64_t)(j->cfg->warmup * 1e9);
    uint64_t t_first = 0, t0 = 0, k0 = 0, sum = 0;
    for (uint64_t i = 1;; i++) {
        int rc;
        while ((rc = ferry_msg_recv(h->s, &m, 0)) == FERRY_EINTR)
            ;
        if (rc < 0)
            return fer_fail(j, "ferry_msg_recv", rc);
        const void *p = ferry_msg_data(&m);
        if (ferry_msg_size(&m) != size || !bench_check(p, size, i)) {
            ferry_msg_fini(&m);
            return bench_fail(j, "message %llu: wrong length or payload (lost or reordered)",
                              (unsigned long long)i);
        }
        sum += bench_touch(p, size);
        if ((i & mask) == 0)
            atomic_store_explicit(&c->progress[1].n, i, memory_order_relaxed);
        if (i == 1) {
            t_first = bench_now_ns();
        } else if (!k0 && (i & mask) == 0 && bench_now_ns() >= t_first + warm) {
            k0 = i;
            t0 = bench_now_ns();
        }
        if (i >= atomic_load_explicit(&c->total, memory_order_acquire)) {
            uint64_t t1 = bench_now_ns();
            ferry_msg_fini(&m);
            if (!k0 || i - k0 < BENCH_MIN_MSGS / 2) {
                k0 = 1;
                t0 = t_first;
            }
            bench_sink += sum;
            ferry_stats st;
            if ((rc = ferry_socket_stats(h->s, &st)) < 0)
                return fer_fail(j, "ferry_socket_stats", rc);
            /* Frames up to 40 bytes live inside the message: nothing to hold in place. */
            if (size > 40 && st.zc_recvs != i)
                return bench_fail(j, "only %llu of %llu frames were received in place",
                                  (unsigned long long)st.zc_recvs, (unsigned long long)i);
            c->res[1].count = i - k0;
            c->res[1].ns = t1 - t0;
            c->res[1].bytes = (i - k0) * size;
            return 0;
        }
    }
}

static int loan_run(bench_job *j, int role)
{
    void *hv = NULL;
    int rc = fer_open(j, role, &hv);
    if (rc < 0)
        return rc;
    fer_h *h = hv;
    if (role == 1 && (rc = ferry_socket_setopt_int(h->s, FERRY_OPT_ZEROCOPY_RECV, 1)) < 0)
        rc = fer_fail(j, "FERRY_OPT_ZEROCOPY_RECV", rc);
    else
        rc = loan_thr(j, role, h);
    /* As in bench_msg_run: neither side closes before the other has finished. */
    atomic_store_explicit(&j->ctl->finished[role], 1, memory_order_release);
    if (rc == 0 && bench_await(&j->ctl->finished[1 - role], 30.0) < 0)
        rc = bench_fail(j, "peer did not finish");
    fer_close(h);
    return rc;
}

const bench_transport bench_tr_ferry_shm_loan = {
    .name = "ferry:shm-loan",
    .peer = "ferry",
    .wait = "poll",
    .help = "ferry sockets over shm:// with zero copy: ferry_msg_loan on send, "
            "FERRY_OPT_ZEROCOPY_RECV on receive (thr only)",
    .modes = BENCH_M(BENCH_THR),
    .default_on = true,
    .setup = fer_setup,
    .teardown = fer_teardown,
    .run = loan_run,
    .priv = FER_PRIV(FER_SHM, 0),
};

/*
 * ferry:shm+batch and ferry:ipc+batch: the batch calls (ferry_socket_send_many/recv_many, one-way
 * thr only). The producer fills a batch of messages in its own buffers and sends them with as
 * many send_many calls as it takes; the consumer receives up to a batch per recv_many into its
 * own buffers and checks and reads every message, as in every other row. Over shm:// the calls
 * take the ring fast path (one index publish per batch); ipc:// (no shm upgrade) and tcp:// take
 * the stream engine's batch path (messages encoded per batch, decoded per read).
 */
static size_t batch_len(size_t size)
{
    size_t b = size <= 4096 ? 64 : (size_t)262144 / size;
    return b ? b : 1;
}

static int batch_thr(bench_job *j, int role, fer_h *h)
{
    bench_ctl *c = j->ctl;
    size_t size = j->size, nb = batch_len(size);
    uint8_t *bufs = malloc(nb * (size ? size : 1));
    ferry_iov *v = calloc(nb, sizeof *v);
    if (!bufs || !v) {
        free(bufs);
        free(v);
        return bench_fail(j, "out of memory");
    }
    for (size_t k = 0; k < nb; k++)
        v[k] = (ferry_iov){.buf = bufs + k * size, .len = size};
    int ret = 0;
    if (role == 0) {
        uint64_t end = bench_now_ns() + (uint64_t)((j->cfg->warmup + j->cfg->seconds) * 1e9);
        for (uint64_t i = 1;; i += nb) {
            bool last = i > BENCH_MIN_MSGS && bench_now_ns() >= end;
            if (last)
                atomic_store_explicit(&c->total, i + nb - 1, memory_order_seq_cst);
            for (size_t k = 0; k < nb; k++)
                bench_fill(v[k].buf, size, i + k);
            for (size_t off = 0; off < nb;) {
                ssize_t r = ferry_socket_send_many(h->s, v + off, nb - off, 0);
                if (r == FERRY_EINTR)
                    continue;
                if (r < 0) {
                    ret = fer_fail(j, "ferry_socket_send_many", (int)r);
                    goto out;
                }
                off += (size_t)r;
            }
            atomic_store_explicit(&c->progress[0].n, i + nb - 1, memory_order_relaxed);
            if (last)
                goto out;
        }
    }
    uint64_t warm = (uint64_t)(j->cfg->warmup * 1e9);
    uint64_t t_first = 0, t0 = 0, k0 = 0, sum = 0, i = 0;
    for (;;) {
        ssize_t r = ferry_socket_recv_many(h->s, v, nb, 0);
        if (r == FERRY_EINTR)
            continue;
        if (r < 0) {
            ret = fer_fail(j, "ferry_socket_recv_many", (int)r);
            goto out;
        }
        for (ssize_t k = 0; k < r; k++) {
            i++;
            if (v[k].size != size || !bench_check(v[k].buf, size, i)) {
                ret = bench_fail(j, "message %llu: wrong length or payload (lost or reordered)",
                                 (unsigned long long)i);
                goto out;
            }
            sum += bench_touch(v[k].buf, size);
        }
        atomic_store_explicit(&c->progress[1].n, i, memory_order_relaxed);
        if (!t_first) {
            t_first = bench_now_ns();
        } else if (!k0 && bench_now_ns() >= t_first + warm) {
            k0 = i;
            t0 = bench_now_ns();
        }
        if (i >= atomic_load_explicit(&c->total, memory_order_acquire)) {
            uint64_t t1 = bench_now_ns();
            if (!k0 || i - k0 < BENCH_MIN_MSGS / 2) {
                k0 = 1;
                t0 = t_first;
            }
            bench_sink += sum;
            c->res[1].count = i - k0;
            c->res[1].ns = t1 - t0;
            c->res[1].bytes = (i - k0) * size;
            goto out;
        }
    }
out:
    free(bufs);
    free(v);
    return ret;
}

static int batch_run(bench_job *j, int role)
{
    void *hv = NULL;
    int rc = fer_open(j, role, &hv);
    if (rc < 0)
        return rc;
    fer_h *h = hv;
    rc = batch_thr(j, role, h);
    /* As in bench_msg_run: neither side closes before the other has finished. */
    atomic_store_explicit(&j->ctl->finished[role], 1, memory_order_release);
    if (rc == 0 && bench_await(&j->ctl->finished[1 - role], 30.0) < 0)
        rc = bench_fail(j, "peer did not finish");
    fer_close(h);
    return rc;
}

const bench_transport bench_tr_ferry_shm_batch = {
    .name = "ferry:shm+batch",
    .peer = "ferry",
    .wait = "poll",
    .help = "ferry sockets over shm:// with ferry_socket_send_many/recv_many (64 messages per "
            "call up to 4 KiB, 256 KiB per call above; thr only)",
    .modes = BENCH_M(BENCH_THR),
    .default_on = true,
    .setup = fer_setup,
    .teardown = fer_teardown,
    .run = batch_run,
    .priv = FER_PRIV(FER_SHM, 0),
};

const bench_transport bench_tr_ferry_ipc_batch = {
    .name = "ferry:ipc+batch",
    .peer = "ferry",
    .wait = "poll",
    .help = "ferry sockets over ipc:// as plain ZMTP with ferry_socket_send_many/recv_many "
            "(stream-engine batch path; thr only)",
    .modes = BENCH_M(BENCH_THR),
    .default_on = true,
    .setup = fer_setup,
    .teardown = fer_teardown,
    .run = batch_run,
    .priv = FER_PRIV(FER_IPC, 0),
};

const bench_transport bench_tr_ferry_tcp_batch = {
    .name = "ferry:tcp+batch",
    .peer = "ferry",
    .wait = "poll",
    .help = "ferry sockets over tcp:// with ferry_socket_send_many/recv_many (stream-engine "
            "batch path; thr only)",
    .modes = BENCH_M(BENCH_THR),
    .default_on = true,
    .setup = fer_setup,
    .teardown = fer_teardown,
    .run = batch_run,
    .priv = FER_PRIV(FER_TCP, 0),
};
