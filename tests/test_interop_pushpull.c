/*
 * test_interop_pushpull.c - ferry PUSH/PULL against the real libzmq, over tcp:// and ipc://, each
 * side binding in turn: message sizes across the frame-format boundaries, multipart, round-robin
 * from a ferry PUSH over two libzmq PULLs, fair queueing into a ferry PULL from two libzmq PUSHes,
 * reconnect after the libzmq side closes and binds again, and libzmq heartbeats (it PINGs us, we
 * must answer or it drops the idle link).
 */
#include "ferry/ferry.h"
#include "testutil.h"

#include <poll.h>
#include <stdbool.h>
#include <stdio.h>
#include <stdlib.h>
#include <string.h>
#include <time.h>
#include <zmq.h>

static void *ctx;

static void *zsock(int type)
{
    void *z = zmq_socket(ctx, type);
    CHECK(z);
    int to = 10000, linger = 0;
    zmq_setsockopt(z, ZMQ_RCVTIMEO, &to, sizeof to);
    zmq_setsockopt(z, ZMQ_SNDTIMEO, &to, sizeof to);
    zmq_setsockopt(z, ZMQ_LINGER, &linger, sizeof linger);
    return z;
}

static ferry_socket *fsock(int type)
{
    ferry_socket *f;
    CHECK_OK(ferry_socket_open(&f, type));
    CHECK_OK(ferry_socket_setopt_int(f, FERRY_OPT_RCVTIMEO, 10000));
    CHECK_OK(ferry_socket_setopt_int(f, FERRY_OPT_SNDTIMEO, 10000));
    CHECK_OK(ferry_socket_setopt_int(f, FERRY_OPT_RECONNECT_IVL, 20));
    return f;
}

static void zep(void *z, char *ep, size_t cap)
{
    size_t l = cap;
    CHECK(zmq_getsockopt(z, ZMQ_LAST_ENDPOINT, ep, &l) == 0);
}

static void sizes_ferry_push(ferry_socket *push, void *pull)
{
    static const size_t sizes[] = {0, 255, 256, 1 << 20};
    uint8_t *b = malloc(1 << 20), *r = malloc(1 << 20);
    CHECK(b && r);
    for (size_t i = 0; i < 4; i++) {
        memset(b, (int)i + 1, sizes[i]);
        CHECK_OK(ferry_socket_send(push, b, sizes[i], 0));
        CHECK(zmq_recv(pull, r, 1 << 20, 0) == (int)sizes[i]);
        CHECK(memcmp(b, r, sizes[i]) == 0);
    }
    CHECK_OK(ferry_socket_send(push, "m1", 2, FERRY_MORE));
    CHECK_OK(ferry_socket_send(push, "m2", 2, 0));
    int more;
    size_t ml = sizeof more;
    CHECK(zmq_recv(pull, r, 10, 0) == 2 && memcmp(r, "m1", 2) == 0);
    CHECK(zmq_getsockopt(pull, ZMQ_RCVMORE, &more, &ml) == 0 && more == 1);
    CHECK(zmq_recv(pull, r, 10, 0) == 2 && memcmp(r, "m2", 2) == 0);
    free(b);
    free(r);
}

static void sizes_zmq_push(void *push, ferry_socket *pull)
{
    static const size_t sizes[] = {0, 255, 256, 1 << 20};
    uint8_t *b = malloc(1 << 20), *r = malloc(1 << 20);
    CHECK(b && r);
    for (size_t i = 0; i < 4; i++) {
        memset(b, (int)i + 9, sizes[i]);
        CHECK(zmq_send(push, b, sizes[i], 0) == (int)sizes[i]);
        CHECK_RC(ferry_socket_recv(pull, r, 1 << 20, 0, NULL), (long long)sizes[i]);
        CHECK(memcmp(b, r, sizes[i]) == 0);
    }
    CHECK(zmq_send(push, "m1", 2, ZMQ_SNDMORE) == 2);
    CHECK(zmq_send(push, "m2", 2, 0) == 2);
    int more = 0;
    CHECK_RC(ferry_socket_recv(pull, r, 10, 0, &more), 2);
    CHECK(more == 1);
    CHECK_RC(ferry_socket_recv(pull, r, 10, 0, &more), 2);
    CHECK(more == 0 && memcmp(r, "m2", 2) == 0);
    free(b);
    free(r);
}

/* A fresh endpoint for each step: libzmq closes asynchronously, so an ipc path may still be
 * listened on for a moment after zmq_close. */
static const char *fresh(const char *url)
{
    static char buf[600];
    static int n;
    if (strncmp(url, "ipc://", 6) != 0)
        return url;
    snprintf(buf, sizeof buf, "%s.%d", url, n++);
    return buf;
}

static void basic(const char *url)
{
    char ep[512];
    /* ferry PUSH binds, libzmq PULL connects */
    ferry_socket *push = fsock(FERRY_PUSH);
    CHECK_OK(ferry_socket_bind(push, fresh(url)));
    CHECK_OK(ferry_socket_last_endpoint(push, ep, sizeof ep));
    void *zpull = zsock(ZMQ_PULL);
    CHECK(zmq_connect(zpull, ep) == 0);
    sizes_ferry_push(push, zpull);
    zmq_close(zpull);
    ferry_socket_close(push);

    /* libzmq PULL binds, ferry PUSH connects */
    zpull = zsock(ZMQ_PULL);
    CHECK(zmq_bind(zpull, fresh(url)) == 0);
    zep(zpull, ep, sizeof ep);
    push = fsock(FERRY_PUSH);
    CHECK_OK(ferry_socket_connect(push, ep));
    sizes_ferry_push(push, zpull);
    ferry_socket_close(push);
    zmq_close(zpull);

    /* ferry PULL binds, libzmq PUSH connects */
    ferry_socket *pull = fsock(FERRY_PULL);
    CHECK_OK(ferry_socket_bind(pull, fresh(url)));
    CHECK_OK(ferry_socket_last_endpoint(pull, ep, sizeof ep));
    void *zpush = zsock(ZMQ_PUSH);
    CHECK(zmq_connect(zpush, ep) == 0);
    sizes_zmq_push(zpush, pull);
    zmq_close(zpush);
    ferry_socket_close(pull);

    /* libzmq PUSH binds, ferry PULL connects */
    zpush = zsock(ZMQ_PUSH);
    CHECK(zmq_bind(zpush, fresh(url)) == 0);
    zep(zpush, ep, sizeof ep);
    pull = fsock(FERRY_PULL);
    CHECK_OK(ferry_socket_connect(pull, ep));
    sizes_zmq_push(zpush, pull);
    ferry_socket_close(pull);
    zmq_close(zpush);
    printf("ok: basic %s\n", url);
}

static int peers(ferry_socket *s)
{
    ferry_stats st;
    CHECK_OK(ferry_socket_stats(s, &st));
    return (int)st.peers;
}

static void wait_peers(ferry_socket *s, int n)
{
    uint64_t end = tu_now_ns() + 10000000000ull;
    while (peers(s) != n) {
        CHECK(tu_now_ns() < end);
        poll(NULL, 0, 1);
    }
}

static void spread(void)
{
    /* ferry PUSH round-robins over two libzmq PULLs. */
    ferry_socket *push = fsock(FERRY_PUSH);
    CHECK_OK(ferry_socket_bind(push, "tcp://127.0.0.1:*"));
    char ep[256];
    CHECK_OK(ferry_socket_last_endpoint(push, ep, sizeof ep));
    void *a = zsock(ZMQ_PULL), *b = zsock(ZMQ_PULL);
    CHECK(zmq_connect(a, ep) == 0 && zmq_connect(b, ep) == 0);
    wait_peers(push, 2);
    for (int i = 0; i < 100; i++)
        CHECK_OK(ferry_socket_send(push, &i, sizeof i, 0));
    int na = 0, nb = 0, v;
    for (int i = 0; i < 50; i++) {
        CHECK(zmq_recv(a, &v, sizeof v, 0) == 4);
        na++;
        CHECK(zmq_recv(b, &v, sizeof v, 0) == 4);
        nb++;
    }
    CHECK(na == 50 && nb == 50);
    zmq_close(a);
    zmq_close(b);
    ferry_socket_close(push);

    /* ferry PULL fair-queues two libzmq PUSHes. */
    ferry_socket *pull = fsock(FERRY_PULL);
    CHECK_OK(ferry_socket_bind(pull, "tcp://127.0.0.1:*"));
    CHECK_OK(ferry_socket_last_endpoint(pull, ep, sizeof ep));
    a = zsock(ZMQ_PUSH);
    b = zsock(ZMQ_PUSH);
    CHECK(zmq_connect(a, ep) == 0 && zmq_connect(b, ep) == 0);
    wait_peers(pull, 2);
    for (int i = 0; i < 200; i++) {
        int x = i;
        CHECK(zmq_send(a, &x, sizeof x, 0) == 4);
        x = 1000 + i;
        CHECK(zmq_send(b, &x, sizeof x, 0) == 4);
    }
    int from_a = 0, from_b = 0, next_a = 0, next_b = 1000;
    for (int i = 0; i < 400; i++) {
        CHECK_RC(ferry_socket_recv(pull, &v, sizeof v, 0, NULL), 4);
        if (v < 1000) {
            CHECK(v == next_a++);
            from_a++;
        } else {
            CHECK(v == next_b++);
            from_b++;
        }
    }
    CHECK(from_a == 200 && from_b == 200);
    zmq_close(a);
    zmq_close(b);
    ferry_socket_close(pull);
    printf("ok: round-robin and fair queueing\n");
}

static void reconnect(const char *url, const char *url2)
{
    /* libzmq PULL binds; ferry PUSH connects; libzmq goes away and comes back on the same
     * endpoint: ferry reconnects by itself and delivers again. */
    void *z = zsock(ZMQ_PULL);
    CHECK(zmq_bind(z, url) == 0);
    char ep[512];
    zep(z, ep, sizeof ep);
    ferry_socket *push = fsock(FERRY_PUSH);
    CHECK_OK(ferry_socket_connect(push, ep));
    CHECK_OK(ferry_socket_send(push, "one", 3, 0));
    char b[8];
    CHECK(zmq_recv(z, b, sizeof b, 0) == 3);
    wait_peers(push, 1);
    zmq_close(z);
    wait_peers(push, 0); /* the hang-up was noticed without any send */
    z = zsock(ZMQ_PULL);
    CHECK(zmq_bind(z, ep) == 0);
    CHECK_OK(ferry_socket_send(push, "two", 3, 0)); /* blocks until reconnected */
    CHECK(zmq_recv(z, b, sizeof b, 0) == 3 && memcmp(b, "two", 3) == 0);
    zmq_close(z);
    ferry_socket_close(push);

    /* The reverse: libzmq PUSH connects to a ferry PULL that closes and binds again. */
    ferry_socket *pull = fsock(FERRY_PULL);
    CHECK_OK(ferry_socket_bind(pull, url2));
    CHECK_OK(ferry_socket_last_endpoint(pull, ep, sizeof ep));
    void *zp = zsock(ZMQ_PUSH);
    int ivl = 20;
    zmq_setsockopt(zp, ZMQ_RECONNECT_IVL, &ivl, sizeof ivl);
    CHECK(zmq_connect(zp, ep) == 0);
    CHECK(zmq_send(zp, "a", 1, 0) == 1);
    CHECK_RC(ferry_socket_recv(pull, b, sizeof b, 0, NULL), 1);
    ferry_socket_close(pull);
    pull = fsock(FERRY_PULL);
    CHECK_OK(ferry_socket_bind(pull, ep));
    /* libzmq may have queued "b" to the dead pipe; keep sending until one arrives. */
    CHECK_OK(ferry_socket_setopt_int(pull, FERRY_OPT_RCVTIMEO, 100));
    uint64_t end = tu_now_ns() + 10000000000ull;
    for (;;) {
        CHECK(tu_now_ns() < end);
        zmq_send(zp, "b", 1, ZMQ_DONTWAIT);
        if (ferry_socket_recv(pull, b, sizeof b, 0, NULL) == 1)
            break;
    }
    zmq_close(zp);
    ferry_socket_close(pull);
    printf("ok: reconnect %s\n", url);
}

static void heartbeats(void)
{
    /* libzmq PINGs every 50 ms and drops the link after 150 ms without an answer. We stay idle
     * (no ferry calls at all) for many timeouts; the link must survive because the control thread
     * answers the PINGs. */
    ferry_socket *pull = fsock(FERRY_PULL);
    CHECK_OK(ferry_socket_bind(pull, "tcp://127.0.0.1:*"));
    char ep[256];
    CHECK_OK(ferry_socket_last_endpoint(pull, ep, sizeof ep));
    void *z = zsock(ZMQ_PUSH);
    int ivl = 50, to = 150;
    zmq_setsockopt(z, ZMQ_HEARTBEAT_IVL, &ivl, sizeof ivl);
    zmq_setsockopt(z, ZMQ_HEARTBEAT_TIMEOUT, &to, sizeof to);
    void *mon = NULL;
    CHECK(zmq_socket_monitor(z, "inproc://hbmon", ZMQ_EVENT_DISCONNECTED) == 0);
    mon = zmq_socket(ctx, ZMQ_PAIR);
    CHECK(zmq_connect(mon, "inproc://hbmon") == 0);
    CHECK(zmq_connect(z, ep) == 0);
    CHECK(zmq_send(z, "x", 1, 0) == 1);
    char b[64];
    CHECK_RC(ferry_socket_recv(pull, b, sizeof b, 0, NULL), 1);
    /* Idle: let ~8 heartbeat timeouts pass while the application does nothing. */
    struct timespec ts = {1, 200000000};
    nanosleep(&ts, NULL);
    int rcv_to = 0;
    zmq_setsockopt(mon, ZMQ_RCVTIMEO, &rcv_to, sizeof rcv_to);
    CHECK(zmq_recv(mon, b, sizeof b, 0) < 0); /* no DISCONNECTED event */
    CHECK(peers(pull) == 1);
    CHECK(zmq_send(z, "y", 1, 0) == 1);
    CHECK_RC(ferry_socket_recv(pull, b, sizeof b, 0, NULL), 1);
    zmq_close(mon);
    zmq_close(z);
    ferry_socket_close(pull);
    printf("ok: answering libzmq heartbeats while idle\n");
}

int main(void)
{
    tu_deadline(100);
    ctx = zmq_ctx_new();
    CHECK(ctx);
    char url[512];
    basic("tcp://127.0.0.1:*");
    snprintf(url, sizeof url, "ipc://%s/pp.sock", tu_tmpdir());
    basic(url);
    spread();
    reconnect("tcp://127.0.0.1:*", "tcp://127.0.0.1:*");
    snprintf(url, sizeof url, "ipc://%s/rc.sock", tu_tmpdir());
    char url2[512];
    snprintf(url2, sizeof url2, "ipc://%s/rc2.sock", tu_tmpdir());
    reconnect(url, url2);
    heartbeats();
    zmq_ctx_term(ctx);
    return 0;
}
