/*
 * test_transport_pair.c - PAIR ferry<->ferry over every transport (ipc, tcp, inproc, fd:// with a
 * socketpair and with a pipe pair), in both directions: sizes around every internal boundary
 * (inline bodies, copy-vs-reference on send, read-buffer-vs-direct on receive, 255/256 short/long
 * frames), 0-byte and multipart messages, and a 1 MiB body.
 */
#include "ferry/ferry.h"
#include "testutil.h"

#include <stdbool.h>
#include <stdio.h>
#include <stdlib.h>
#include <string.h>
#include <sys/socket.h>
#include <unistd.h>

static const size_t sizes[] = {0,    1,    40,    41,    64,    255,    256,    1000,
                               8192, 8193, 32768, 32769, 65536, 200000, 1 << 20};

static void fill(uint8_t *b, size_t n, unsigned seed)
{
    for (size_t i = 0; i < n; i++)
        b[i] = (uint8_t)(i * 31u + seed);
}

static void exchange(ferry_socket *a, ferry_socket *b)
{
    size_t max = 1 << 20;
    uint8_t *tx = malloc(max), *rx = malloc(max);
    CHECK(tx && rx);
    for (int dir = 0; dir < 2; dir++) {
        ferry_socket *from = dir ? b : a, *to = dir ? a : b;
        for (size_t i = 0; i < sizeof sizes / sizeof sizes[0]; i++) {
            size_t n = sizes[i];
            fill(tx, n, (unsigned)i);
            CHECK_OK(ferry_socket_send(from, tx, n, 0));
            int more = -1;
            memset(rx, 0xee, n + 1 < max ? n + 1 : max);
            CHECK_RC(ferry_socket_recv(to, rx, max, 0, &more), (long long)n);
            CHECK(more == 0);
            CHECK(memcmp(tx, rx, n) == 0);
        }
        /* Multipart: three frames, one empty, arrive in order with MORE on all but the last. */
        CHECK_OK(ferry_socket_send(from, "one", 3, FERRY_MORE));
        CHECK_OK(ferry_socket_send(from, "", 0, FERRY_MORE));
        fill(tx, 300, 7);
        CHECK_OK(ferry_socket_send(from, tx, 300, 0));
        int more = 0;
        CHECK_RC(ferry_socket_recv(to, rx, max, 0, &more), 3);
        CHECK(more == 1 && memcmp(rx, "one", 3) == 0);
        int64_t rm = 0;
        CHECK_OK(ferry_socket_getopt_int(to, FERRY_OPT_RCVMORE, &rm));
        CHECK(rm == 1);
        CHECK_RC(ferry_socket_recv(to, rx, max, 0, &more), 0);
        CHECK(more == 1);
        CHECK_RC(ferry_socket_recv(to, rx, max, 0, &more), 300);
        CHECK(more == 0 && memcmp(rx, tx, 300) == 0);
        /* Truncation: returns the full length, copies cap bytes. */
        CHECK_OK(ferry_socket_send(from, "abcdef", 6, 0));
        memset(rx, 0, 8);
        CHECK_RC(ferry_socket_recv(to, rx, 3, 0, NULL), 6);
        CHECK(memcmp(rx, "abc\0", 4) == 0);
        /* A burst larger than one batch, then order check. */
        for (uint32_t k = 0; k < 5000; k++)
            CHECK_OK(ferry_socket_send(from, &k, sizeof k, 0));
        for (uint32_t k = 0; k < 5000; k++) {
            uint32_t got = 0;
            CHECK_RC(ferry_socket_recv(to, &got, sizeof got, 0, NULL), 4);
            CHECK(got == k);
        }
    }
    ferry_stats st;
    CHECK_OK(ferry_socket_stats(a, &st));
    CHECK(st.peers == 1);
    CHECK(st.msgs_out == sizeof sizes / sizeof sizes[0] + 2 + 5000);
    CHECK(st.msgs_in == st.msgs_out);
    free(tx);
    free(rx);
}

static void open_pair(ferry_socket **a, ferry_socket **b)
{
    CHECK_OK(ferry_socket_open(a, FERRY_PAIR));
    CHECK_OK(ferry_socket_open(b, FERRY_PAIR));
    /* Never hang forever if something is broken. */
    CHECK_OK(ferry_socket_setopt_int(*a, FERRY_OPT_RCVTIMEO, 10000));
    CHECK_OK(ferry_socket_setopt_int(*b, FERRY_OPT_RCVTIMEO, 10000));
    CHECK_OK(ferry_socket_setopt_int(*a, FERRY_OPT_SNDTIMEO, 10000));
    CHECK_OK(ferry_socket_setopt_int(*b, FERRY_OPT_SNDTIMEO, 10000));
    /* exchange() sends a 5000-message burst before reading it on the same thread: inproc holds
     * exactly SNDHWM + RCVHWM messages (no kernel buffer behind it), so make room for it. */
    CHECK_OK(ferry_socket_setopt_int(*a, FERRY_OPT_SNDHWM, 5000));
    CHECK_OK(ferry_socket_setopt_int(*b, FERRY_OPT_SNDHWM, 5000));
}

static void run_url(const char *bind_url, bool bind_first)
{
    ferry_socket *a, *b;
    open_pair(&a, &b);
    char ep[256];
    if (bind_first) {
        CHECK_OK(ferry_socket_bind(a, bind_url));
        CHECK_OK(ferry_socket_last_endpoint(a, ep, sizeof ep));
        CHECK_OK(ferry_socket_connect(b, ep));
    } else {
        CHECK_OK(ferry_socket_connect(b, bind_url));
        CHECK_OK(ferry_socket_bind(a, bind_url));
    }
    exchange(a, b);
    ferry_socket_close(b);
    ferry_socket_close(a);
}

static void run_fds(int a_r, int a_w, int b_r, int b_w, bool url)
{
    ferry_socket *a, *b;
    open_pair(&a, &b);
    if (url) {
        char u[64];
        snprintf(u, sizeof u, "fd://%d,%d", a_r, a_w);
        CHECK_OK(ferry_socket_connect(a, u));
        snprintf(u, sizeof u, "fd://%d,%d", b_r, b_w);
        CHECK_OK(ferry_socket_bind(b, u));
    } else {
        CHECK_OK(ferry_socket_adopt(a, a_r, a_w));
        CHECK_OK(ferry_socket_adopt(b, b_r, b_w));
    }
    exchange(a, b);
    ferry_socket_close(b);
    ferry_socket_close(a);
}

int main(void)
{
    tu_deadline(60);
    char url[512];
    snprintf(url, sizeof url, "ipc://%s/pair.sock", tu_tmpdir());
    run_url(url, true);
    run_url("tcp://127.0.0.1:*", true);
    snprintf(url, sizeof url, "inproc://%s", tu_unique("pair"));
    run_url(url, true);
    snprintf(url, sizeof url, "inproc://%s", tu_unique("pair-late"));
    run_url(url, false); /* inproc connect before bind completes when the bind appears */

    int sp[2];
    CHECK(socketpair(AF_UNIX, SOCK_STREAM | SOCK_CLOEXEC, 0, sp) == 0);
    run_fds(sp[0], sp[0], sp[1], sp[1], false);
    CHECK(socketpair(AF_UNIX, SOCK_STREAM | SOCK_CLOEXEC, 0, sp) == 0);
    run_fds(sp[0], sp[0], sp[1], sp[1], true);
    int p1[2], p2[2];
    CHECK(pipe(p1) == 0 && pipe(p2) == 0);
    run_fds(p1[0], p2[1], p2[0], p1[1], false); /* a reads p1, writes p2; b the reverse */
    CHECK(pipe(p1) == 0 && pipe(p2) == 0);
    run_fds(p1[0], p2[1], p2[0], p1[1], true);

    /* Bad URLs and misuse give clear errors. */
    ferry_socket *s;
    CHECK_OK(ferry_socket_open(&s, FERRY_PAIR));
    CHECK_RC(ferry_socket_bind(s, "nope://x"), FERRY_EPROTONOSUPPORT);
    CHECK_RC(ferry_socket_bind(s, "tcp://127.0.0.1"), FERRY_EINVAL);
    CHECK_RC(ferry_socket_connect(s, "tcp://*:5555"), FERRY_EINVAL);
    CHECK_RC(ferry_socket_connect(s, NULL), FERRY_EINVAL);
    CHECK_RC(ferry_socket_adopt(s, 100000, 100000), FERRY_EBADF);
    CHECK_RC(ferry_socket_unbind(s, "tcp://127.0.0.1:1"), FERRY_ENOENT);
    CHECK_RC(ferry_socket_setopt_int(s, 999, 1), FERRY_EINVAL);
    CHECK_RC(ferry_socket_setopt_int(s, FERRY_OPT_SNDHWM, -5), FERRY_EINVAL);
    CHECK_RC(ferry_socket_send(s, "x", 1, FERRY_DONTWAIT), FERRY_EAGAIN);
    CHECK_RC(ferry_socket_recv(s, url, 1, FERRY_DONTWAIT, NULL), FERRY_EAGAIN);
    CHECK_OK(ferry_socket_setopt_int(s, FERRY_OPT_RCVTIMEO, 20));
    CHECK_RC(ferry_socket_recv(s, url, 1, 0, NULL), FERRY_EAGAIN);
    ferry_socket_close(s);
    ferry_socket *bad;
    CHECK_RC(ferry_socket_open(&bad, 42), FERRY_EINVAL);
    ferry_socket_close(NULL);
    return 0;
}
