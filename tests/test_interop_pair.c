/*
 * test_interop_pair.c - ferry PAIR against the real libzmq PAIR, over tcp:// and ipc://, with
 * ferry binding and libzmq connecting and the reverse: 0-byte, 255/256-byte (short/long frame
 * boundary), 1 MiB and multipart messages in both directions, plus a libzmq PUSH that must be
 * refused (wrong socket type) without disturbing anything.
 */
#include "ferry/ferry.h"
#include "testutil.h"

#include <stdbool.h>
#include <stdio.h>
#include <stdlib.h>
#include <string.h>
#include <zmq.h>

static void *ctx;

static void fill(uint8_t *b, size_t n, unsigned seed)
{
    for (size_t i = 0; i < n; i++)
        b[i] = (uint8_t)(i * 7u + seed);
}

static void zsend(void *z, const void *buf, size_t n, int flags)
{
    CHECK(zmq_send(z, buf, n, flags) == (int)n);
}

static void check_ferry_to_zmq(ferry_socket *f, void *z, const uint8_t *tx, uint8_t *rx, size_t n)
{
    CHECK_OK(ferry_socket_send(f, tx, n, 0));
    int r = zmq_recv(z, rx, 2 << 20, 0);
    CHECK(r == (int)n);
    CHECK(memcmp(tx, rx, n) == 0);
}

static void check_zmq_to_ferry(ferry_socket *f, void *z, const uint8_t *tx, uint8_t *rx, size_t n)
{
    zsend(z, tx, n, 0);
    int more = -1;
    CHECK_RC(ferry_socket_recv(f, rx, 2 << 20, 0, &more), (long long)n);
    CHECK(more == 0);
    CHECK(memcmp(tx, rx, n) == 0);
}

static void exchange(ferry_socket *f, void *z)
{
    static const size_t sizes[] = {0, 1, 255, 256, 4000, 70000, 1 << 20};
    uint8_t *tx = malloc(2 << 20), *rx = malloc(2 << 20);
    CHECK(tx && rx);
    for (size_t i = 0; i < sizeof sizes / sizeof sizes[0]; i++) {
        fill(tx, sizes[i], (unsigned)i);
        check_ferry_to_zmq(f, z, tx, rx, sizes[i]);
        check_zmq_to_ferry(f, z, tx, rx, sizes[i]);
    }
    /* multipart ferry -> libzmq */
    CHECK_OK(ferry_socket_send(f, "a", 1, FERRY_MORE));
    CHECK_OK(ferry_socket_send(f, "", 0, FERRY_MORE));
    CHECK_OK(ferry_socket_send(f, tx, 256, 0));
    int more;
    size_t ml = sizeof more;
    CHECK(zmq_recv(z, rx, 1000, 0) == 1 && rx[0] == 'a');
    CHECK(zmq_getsockopt(z, ZMQ_RCVMORE, &more, &ml) == 0 && more == 1);
    CHECK(zmq_recv(z, rx, 1000, 0) == 0);
    CHECK(zmq_getsockopt(z, ZMQ_RCVMORE, &more, &ml) == 0 && more == 1);
    CHECK(zmq_recv(z, rx, 1000, 0) == 256 && memcmp(rx, tx, 256) == 0);
    CHECK(zmq_getsockopt(z, ZMQ_RCVMORE, &more, &ml) == 0 && more == 0);
    /* multipart libzmq -> ferry */
    zsend(z, "xyz", 3, ZMQ_SNDMORE);
    zsend(z, tx, 255, ZMQ_SNDMORE);
    zsend(z, "", 0, 0);
    CHECK_RC(ferry_socket_recv(f, rx, 1000, 0, &more), 3);
    CHECK(more == 1 && memcmp(rx, "xyz", 3) == 0);
    CHECK_RC(ferry_socket_recv(f, rx, 1000, 0, &more), 255);
    CHECK(more == 1 && memcmp(rx, tx, 255) == 0);
    CHECK_RC(ferry_socket_recv(f, rx, 1000, 0, &more), 0);
    CHECK(more == 0);
    /* A burst in each direction keeps order. */
    for (uint32_t k = 0; k < 2000; k++)
        CHECK_OK(ferry_socket_send(f, &k, sizeof k, 0));
    for (uint32_t k = 0; k < 2000; k++) {
        uint32_t got;
        CHECK(zmq_recv(z, &got, sizeof got, 0) == 4 && got == k);
    }
    for (uint32_t k = 0; k < 2000; k++)
        zsend(z, &k, sizeof k, 0);
    for (uint32_t k = 0; k < 2000; k++) {
        uint32_t got;
        CHECK_RC(ferry_socket_recv(f, &got, sizeof got, 0, NULL), 4);
        CHECK(got == k);
    }
    free(tx);
    free(rx);
}

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
    return f;
}

static void run(const char *url, bool ferry_binds)
{
    ferry_socket *f = fsock(FERRY_PAIR);
    void *z = zsock(ZMQ_PAIR);
    char ep[512];
    if (ferry_binds) {
        CHECK_OK(ferry_socket_bind(f, url));
        CHECK_OK(ferry_socket_last_endpoint(f, ep, sizeof ep));
        CHECK(zmq_connect(z, ep) == 0);
    } else {
        CHECK(zmq_bind(z, url) == 0);
        size_t l = sizeof ep;
        CHECK(zmq_getsockopt(z, ZMQ_LAST_ENDPOINT, ep, &l) == 0);
        CHECK_OK(ferry_socket_connect(f, ep));
    }
    exchange(f, z);
    if (ferry_binds) {
        /* A libzmq PUSH is not a valid peer for PAIR: the link is dropped, PAIR keeps working. */
        void *bad = zsock(ZMQ_PUSH);
        CHECK(zmq_connect(bad, ep) == 0);
        zmq_send(bad, "junk", 4, ZMQ_DONTWAIT);
        CHECK(zmq_send(z, "still", 5, 0) == 5);
        char b[16];
        CHECK_RC(ferry_socket_recv(f, b, sizeof b, 0, NULL), 5);
        CHECK(memcmp(b, "still", 5) == 0);
        zmq_close(bad);
    }
    zmq_close(z);
    ferry_socket_close(f);
    printf("ok: %s, %s binds\n", url, ferry_binds ? "ferry" : "libzmq");
}

int main(void)
{
    tu_deadline(90);
    ctx = zmq_ctx_new();
    CHECK(ctx);
    char url[512];
    run("tcp://127.0.0.1:*", true);
    run("tcp://127.0.0.1:*", false);
    snprintf(url, sizeof url, "ipc://%s/a.sock", tu_tmpdir());
    run(url, true);
    snprintf(url, sizeof url, "ipc://%s/b.sock", tu_tmpdir());
    run(url, false);
    zmq_ctx_term(ctx);
    return 0;
}
