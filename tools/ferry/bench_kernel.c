/*
 * bench_kernel.c - the kernel baselines, written the plain way an application would.
 *
 * pipe, Unix stream socket, Unix seqpacket socket and TCP over loopback (TCP_NODELAY), with
 * blocking read/write: one write per message, the reader reads exactly one message. The fds are
 * created in the parent before fork (pipe(), socketpair(), a loopback connect/accept), so there is
 * no rendezvous to get wrong. The "+batch" variants measure one-way throughput when one write
 * carries many messages (up to 64 KiB per write) and the reader takes whatever one read returns:
 * the difference to the plain rows is the per-syscall cost that batching removes.
 */
#include "bench.h"

#include <arpa/inet.h>
#include <errno.h>
#include <fcntl.h>
#include <netinet/in.h>
#include <netinet/tcp.h>
#include <stdlib.h>
#include <string.h>
#include <sys/socket.h>
#include <unistd.h>

enum kern_kind { KERN_PIPE, KERN_UDS, KERN_SEQPACKET, KERN_TCP };

#define KERN_BATCH_BYTES 65536u

typedef struct kern_h {
    int rfd, wfd;
    bool packet; /* one read returns one message */
    bench_job *j;
} kern_h;

static int kern_tcp_pair(bench_job *j, int *a, int *b)
{
    int l = socket(AF_INET, SOCK_STREAM | SOCK_CLOEXEC, 0);
    if (l < 0)
        return bench_fail(j, "socket: %s", strerror(errno));
    struct sockaddr_in sa;
    memset(&sa, 0, sizeof sa);
    sa.sin_family = AF_INET;
    sa.sin_addr.s_addr = htonl(INADDR_LOOPBACK);
    socklen_t sl = sizeof sa;
    if (bind(l, (struct sockaddr *)&sa, sizeof sa) != 0 || listen(l, 1) != 0 ||
        getsockname(l, (struct sockaddr *)&sa, &sl) != 0) {
        int e = errno;
        close(l);
        return bench_fail(j, "tcp listen on 127.0.0.1: %s", strerror(e));
    }
    *a = socket(AF_INET, SOCK_STREAM | SOCK_CLOEXEC, 0);
    if (*a < 0 || connect(*a, (struct sockaddr *)&sa, sizeof sa) != 0) {
        int e = errno;
        close(l);
        return bench_fail(j, "tcp connect to 127.0.0.1:%d: %s", ntohs(sa.sin_port), strerror(e));
    }
    *b = accept4(l, NULL, NULL, SOCK_CLOEXEC);
    int e = errno;
    close(l);
    if (*b < 0)
        return bench_fail(j, "tcp accept: %s", strerror(e));
    int one = 1;
    setsockopt(*a, IPPROTO_TCP, TCP_NODELAY, &one, sizeof one);
    setsockopt(*b, IPPROTO_TCP, TCP_NODELAY, &one, sizeof one);
    return 0;
}

/* A seqpacket record must fit the socket buffer whole: grow it for large messages (bounded by
 * net.core.wmem_max). Returns the send buffer size now in force (the caller skips the row when
 * the record still does not fit). */
static int kern_grow_buffers(int fd, size_t record)
{
    int want = (int)(record * 2 + 65536 > 64u << 20 ? 64u << 20 : record * 2 + 65536);
    int cur = 0;
    socklen_t l = sizeof cur;
    if (getsockopt(fd, SOL_SOCKET, SO_SNDBUF, &cur, &l) == 0 && cur >= want)
        return cur;
    setsockopt(fd, SOL_SOCKET, SO_SNDBUF, &want, sizeof want);
    setsockopt(fd, SOL_SOCKET, SO_RCVBUF, &want, sizeof want);
    l = sizeof cur;
    if (getsockopt(fd, SOL_SOCKET, SO_SNDBUF, &cur, &l) != 0)
        cur = 0;
    return cur;
}

/* fd[0], fd[1]: role 0 reads, writes; fd[2], fd[3]: role 1 reads, writes. */
static int kern_setup(bench_job *j)
{
    enum kern_kind k = (enum kern_kind)(intptr_t)j->tr->priv;
    int a = -1, b = -1;
    if (k == KERN_PIPE) {
        int p[2], q[2];
        if (pipe2(p, O_CLOEXEC) != 0) /* role 0 -> role 1 */
            return bench_fail(j, "pipe: %s", strerror(errno));
        j->fd[1] = p[1];
        j->fd[2] = p[0];
        if (j->mode == BENCH_THR)
            return 0;
        if (pipe2(q, O_CLOEXEC) != 0) /* role 1 -> role 0 */
            return bench_fail(j, "pipe: %s", strerror(errno));
        j->fd[0] = q[0];
        j->fd[3] = q[1];
        return 0;
    }
    if (k == KERN_TCP) {
        if (kern_tcp_pair(j, &a, &b) != 0)
            return -1;
    } else {
        int sv[2];
        int type = k == KERN_UDS ? SOCK_STREAM : SOCK_SEQPACKET;
        if (socketpair(AF_UNIX, type | SOCK_CLOEXEC, 0, sv) != 0)
            return bench_fail(j, "socketpair: %s", strerror(errno));
        a = sv[0];
        b = sv[1];
        if (k == KERN_SEQPACKET) {
            size_t rec = j->tr->ops ? j->size : KERN_BATCH_BYTES;
            int sa = kern_grow_buffers(a, rec), sb = kern_grow_buffers(b, rec);
            /* Linux refuses a datagram larger than the send buffer less its 32-byte overhead. */
            if ((size_t)(sa < sb ? sa : sb) < rec + 32) {
                j->fd[0] = j->fd[1] = a;
                j->fd[2] = j->fd[3] = b;
                bench_fail(j,
                           "a %zu-byte record exceeds the largest socket buffer allowed "
                           "(raise net.core.wmem_max)",
                           rec);
                return 1;
            }
        }
    }
    j->fd[0] = j->fd[1] = a;
    j->fd[2] = j->fd[3] = b;
    return 0;
}

static void kern_teardown(bench_job *j)
{
    for (int i = 0; i < 4; i++) {
        if (j->fd[i] < 0)
            continue;
        for (int k = i + 1; k < 4; k++)
            if (j->fd[k] == j->fd[i])
                j->fd[k] = -1;
        close(j->fd[i]);
        j->fd[i] = -1;
    }
}

static int kern_open(bench_job *j, int role, void **out)
{
    kern_h *h = calloc(1, sizeof *h);
    if (!h)
        return bench_fail(j, "out of memory");
    h->rfd = j->fd[role * 2];
    h->wfd = j->fd[role * 2 + 1];
    h->packet = (enum kern_kind)(intptr_t)j->tr->priv == KERN_SEQPACKET;
    h->j = j;
    *out = h;
    return 0;
}

static int kern_write_all(bench_job *j, int fd, const void *buf, size_t len)
{
    const char *p = buf;
    while (len) {
        ssize_t n = write(fd, p, len);
        if (n < 0 && errno == EINTR)
            continue;
        if (n < 0)
            return bench_fail(j, "write: %s", strerror(errno));
        p += n;
        len -= (size_t)n;
    }
    return 0;
}

static int kern_send(void *hv, const void *buf, size_t len)
{
    kern_h *h = hv;
    return kern_write_all(h->j, h->wfd, buf, len);
}

static long kern_recv(void *hv, void *buf, size_t cap)
{
    kern_h *h = hv;
    if (h->packet) {
        ssize_t n;
        do
            n = read(h->rfd, buf, cap);
        while (n < 0 && errno == EINTR);
        if (n < 0)
            return bench_fail(h->j, "read: %s", strerror(errno));
        if (n == 0)
            return bench_fail(h->j, "peer closed the socket");
        return (long)n;
    }
    size_t got = 0;
    while (got < cap) {
        ssize_t n = read(h->rfd, (char *)buf + got, cap - got);
        if (n < 0 && errno == EINTR)
            continue;
        if (n < 0)
            return bench_fail(h->j, "read: %s", strerror(errno));
        if (n == 0)
            return bench_fail(h->j, "peer closed after %zu of %zu bytes", got, cap);
        got += (size_t)n;
    }
    return (long)got;
}

static void kern_close(void *h)
{
    free(h);
}

static const bench_msg_ops kern_ops = {
    .open = kern_open,
    .send = kern_send,
    .recv = kern_recv,
    .close = kern_close,
};

/* Batched one-way stream: see the file comment. The sender stamps every message of a batch. */
static int kern_batch_run(bench_job *j, int role)
{
    bench_ctl *c = j->ctl;
    size_t size = j->size;
    uint64_t per = KERN_BATCH_BYTES / size;
    size_t bytes = (size_t)(per * size);
    unsigned char *buf = bench_buf(bytes);
    if (!buf)
        return bench_fail(j, "out of memory");
    int rc = 0;
    if (role == 0) {
        int fd = j->fd[1];
        uint64_t end = bench_now_ns() + (uint64_t)((j->cfg->warmup + j->cfg->seconds) * 1e9);
        for (uint64_t sent = 0;;) {
            bool last = sent + per >= BENCH_MIN_MSGS && bench_now_ns() >= end;
            if (last)
                atomic_store_explicit(&c->total, sent + per, memory_order_seq_cst);
            for (uint64_t m = 0; m < per; m++)
                bench_fill(buf + m * size, size, sent + m + 1);
            if ((rc = kern_write_all(j, fd, buf, bytes)) != 0)
                break;
            sent += per;
            if (last)
                break;
        }
    } else {
        int fd = j->fd[2];
        uint64_t warm = (uint64_t)(j->cfg->warmup * 1e9);
        uint64_t got = 0, t_first = 0, t0 = 0, b0 = 0, sum = 0;
        for (;;) {
            ssize_t n = read(fd, buf, bytes);
            if (n < 0 && errno == EINTR)
                continue;
            if (n <= 0) {
                rc = bench_fail(j, n ? "read: %s" : "peer closed%s", n ? strerror(errno) : "");
                break;
            }
            sum += bench_touch(buf, (size_t)n);
            got += (uint64_t)n;
            uint64_t now = bench_now_ns();
            if (!t_first)
                t_first = now;
            else if (!t0 && now >= t_first + warm) {
                t0 = now;
                b0 = got;
            }
            uint64_t total = atomic_load_explicit(&c->total, memory_order_acquire);
            if (total != UINT64_MAX && got >= total * size) {
                if (!t0 || got - b0 < 2 * (uint64_t)size) { /* (nearly) all of it was warm-up */
                    t0 = t_first;
                    b0 = 0;
                }
                bench_sink += sum;
                c->res[1].bytes = got - b0;
                c->res[1].count = (got - b0) / size;
                c->res[1].ns = now - t0;
                break;
            }
        }
    }
    if (rc == 0 && role == 0 && bench_await(&c->res[1].done, 30.0) < 0)
        rc = bench_fail(j, "peer did not finish");
    bench_buf_free(buf, bytes);
    return rc;
}

static const char *kern_skip(int mode, size_t size)
{
    (void)size;
    return mode == BENCH_RTT || mode == BENCH_THR || mode == BENCH_IDLE ? NULL : "not measured";
}

static const char *kern_batch_skip(int mode, size_t size)
{
    if (mode != BENCH_THR)
        return "batching is a one-way (thr) measurement";
    if (size > KERN_BATCH_BYTES / 2)
        return "fewer than 2 messages fit a 64 KiB write";
    return NULL;
}

#define KERN_TR(var, nm, kind, what)                                                               \
    const bench_transport var = {                                                                  \
        .name = "kernel:" nm,                                                                      \
        .peer = "kernel",                                                                          \
        .wait = "blocking",                                                                        \
        .help = what ", blocking read/write, one message per write",                               \
        .modes = BENCH_M(BENCH_RTT) | BENCH_M(BENCH_THR) | BENCH_M(BENCH_IDLE),                    \
        .default_on = true,                                                                        \
        .skip = kern_skip,                                                                         \
        .setup = kern_setup,                                                                       \
        .teardown = kern_teardown,                                                                 \
        .ops = &kern_ops,                                                                          \
        .priv = (void *)(intptr_t)(kind),                                                          \
    };                                                                                             \
    const bench_transport var##_batch = {                                                          \
        .name = "kernel:" nm "+batch",                                                             \
        .peer = "kernel",                                                                          \
        .wait = "blocking",                                                                        \
        .help = what ", one-way, up to 64 KiB of messages per write",                              \
        .modes = BENCH_M(BENCH_THR),                                                               \
        .default_on = true,                                                                        \
        .skip = kern_batch_skip,                                                                   \
        .setup = kern_setup,                                                                       \
        .teardown = kern_teardown,                                                                 \
        .run = kern_batch_run,                                                                     \
        .priv = (void *)(intptr_t)(kind),                                                          \
    };

KERN_TR(bench_tr_pipe, "pipe", KERN_PIPE, "pipe(2)")
KERN_TR(bench_tr_uds, "uds", KERN_UDS, "Unix stream socketpair")
KERN_TR(bench_tr_seqpacket, "seqpacket", KERN_SEQPACKET, "Unix seqpacket socketpair")
KERN_TR(bench_tr_tcp, "tcp", KERN_TCP, "TCP over 127.0.0.1, TCP_NODELAY")
