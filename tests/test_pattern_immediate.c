/*
 * test_pattern_immediate.c - FERRY_OPT_IMMEDIATE. Default 1 (ferry's pipes exist only once a
 * connection is complete): a PUSH/DEALER with no peer takes no message. With 0 and a connect
 * endpoint, messages are queued while no peer is up (up to SNDHWM, whole messages) and delivered,
 * in order, once one connects; a bind-only socket and a socket whose connects were all
 * disconnected still take nothing; with one endpoint up and one down nothing is stranded on the
 * down one (ferry only queues while no peer at all is up; see docs/sockets.md).
 */
#include "testutil.h"

#include "ferry/ferry.h"

#include <stdbool.h>
#include <string.h>

/* Receives one frame on rx within the deadline, keeping tx calling (ferry runs pattern code only
 * inside calls: the queued messages move to a new peer at the sender's next call). */
static void recv_kick(ferry_socket *rx, ferry_socket *tx, const char *want, bool more)
{
    uint64_t end = tu_now_ns() + (uint64_t)TU_TIMEOUT_MS * 1000000u;
    char buf[64];
    int m = -1;
    ssize_t n;
    while ((n = ferry_socket_recv(rx, buf, sizeof buf, FERRY_DONTWAIT, &m)) == FERRY_EAGAIN) {
        CHECK(tu_now_ns() < end);
        ferry_pollitem it[2] = {{tx, -1, FERRY_POLLOUT, 0}, {rx, -1, FERRY_POLLIN, 0}};
        CHECK(ferry_poll(it, 2, 5) >= 0);
    }
    if (n < 0 || (size_t)n != strlen(want) || memcmp(buf, want, (size_t)n) != 0) {
        fprintf(stderr, "got %zd '%.*s', want '%s'\n", n, n > 0 ? (int)n : 0, buf, want);
        exit(1);
    }
    CHECK(m == (more ? 1 : 0));
}

static void test_default(int type)
{
    ferry_socket *s = tu_open_sock(type);
    int64_t v = -1;
    CHECK_OK(ferry_socket_getopt_int(s, FERRY_OPT_IMMEDIATE, &v));
    CHECK(v == 1);
    char url[300];
    tu_ipc_url(url, sizeof url, "im");
    CHECK_OK(ferry_socket_connect(s, url)); /* nobody there */
    CHECK_RC(ferry_socket_send(s, "x", 1, FERRY_DONTWAIT), FERRY_EAGAIN);
    CHECK((ferry_socket_events(s) & FERRY_POLLOUT) == 0);
    /* A timed send gives up too: nothing was queued. */
    CHECK_OK(ferry_socket_setopt_int(s, FERRY_OPT_SNDTIMEO, 20));
    CHECK_RC(ferry_socket_send(s, "x", 1, 0), FERRY_EAGAIN);
    ferry_socket_close(s);
}

static void test_queue_until_connected(int type, int rxtype)
{
    ferry_socket *tx = tu_open_sock(type);
    CHECK_OK(ferry_socket_setopt_int(tx, FERRY_OPT_IMMEDIATE, 0));
    CHECK_OK(ferry_socket_setopt_int(tx, FERRY_OPT_SNDHWM, 4));
    int64_t v = -1;
    CHECK_OK(ferry_socket_getopt_int(tx, FERRY_OPT_IMMEDIATE, &v));
    CHECK(v == 0);
    /* Not connected anywhere yet: still nothing to queue for. */
    CHECK_RC(ferry_socket_send(tx, "x", 1, FERRY_DONTWAIT), FERRY_EAGAIN);
    char url[300];
    tu_ipc_url(url, sizeof url, "im");
    CHECK_OK(ferry_socket_connect(tx, url));
    CHECK(ferry_socket_events(tx) & FERRY_POLLOUT);
    tu_send_str(tx, "m1", FERRY_DONTWAIT);
    tu_send_str(tx, "m2a", FERRY_DONTWAIT | FERRY_MORE);
    tu_send_str(tx, "m2b", FERRY_DONTWAIT | FERRY_MORE);
    tu_send_str(tx, "m2c", FERRY_DONTWAIT);
    tu_send_str(tx, "m3", FERRY_DONTWAIT);
    tu_send_str(tx, "m4", FERRY_DONTWAIT);
    /* SNDHWM messages (not frames) are queued: the fifth waits. */
    CHECK_RC(ferry_socket_send(tx, "m5", 2, FERRY_DONTWAIT), FERRY_EAGAIN);
    CHECK((ferry_socket_events(tx) & FERRY_POLLOUT) == 0);
    ferry_stats st;
    CHECK_OK(ferry_socket_stats(tx, &st));
    CHECK(st.msgs_out == 4 && st.peers == 0);

    ferry_socket *rx = tu_open_sock(rxtype);
    CHECK_OK(ferry_socket_bind(rx, url));
    recv_kick(rx, tx, "m1", false);
    recv_kick(rx, tx, "m2a", true);
    recv_kick(rx, tx, "m2b", true);
    recv_kick(rx, tx, "m2c", false);
    recv_kick(rx, tx, "m3", false);
    /* Sends after the peer came go behind the queued ones. */
    tu_send_str(tx, "m5", 0);
    recv_kick(rx, tx, "m4", false);
    recv_kick(rx, tx, "m5", false);
    char c;
    CHECK_RC(ferry_socket_recv(rx, &c, 1, FERRY_DONTWAIT, NULL), FERRY_EAGAIN);
    ferry_socket_close(rx);
    ferry_socket_close(tx);
}

static void test_bind_only_and_disconnect(void)
{
    ferry_socket *s = tu_open_sock(FERRY_PUSH);
    CHECK_OK(ferry_socket_setopt_int(s, FERRY_OPT_IMMEDIATE, 0));
    char url[300];
    tu_ipc_url(url, sizeof url, "im");
    CHECK_OK(ferry_socket_bind(s, url));
    /* libzmq has no pipe for a bind either: a bind-only socket without peers takes nothing. */
    CHECK_RC(ferry_socket_send(s, "x", 1, FERRY_DONTWAIT), FERRY_EAGAIN);
    char url2[300];
    tu_ipc_url(url2, sizeof url2, "im");
    CHECK_OK(ferry_socket_connect(s, url2));
    tu_send_str(s, "queued", FERRY_DONTWAIT);
    CHECK_OK(ferry_socket_disconnect(s, url2));
    CHECK_RC(ferry_socket_send(s, "x", 1, FERRY_DONTWAIT), FERRY_EAGAIN);
    CHECK_RC(ferry_socket_setopt_int(s, FERRY_OPT_IMMEDIATE, 2), FERRY_EINVAL);
    ferry_socket_close(s); /* drops the queued message, no leak */
}

/* Two endpoints, one up: every message reaches the live peer, with either setting (libzmq's
 * IMMEDIATE=0 would strand every second message on the down endpoint until it appears). */
static void test_one_up_one_down(int immediate)
{
    ferry_socket *push = tu_open_sock(FERRY_PUSH), *pull = tu_open_sock(FERRY_PULL);
    CHECK_OK(ferry_socket_setopt_int(push, FERRY_OPT_IMMEDIATE, immediate));
    char up[300], down[300];
    tu_ipc_url(up, sizeof up, "im");
    tu_ipc_url(down, sizeof down, "im");
    CHECK_OK(ferry_socket_bind(pull, up));
    CHECK_OK(ferry_socket_connect(push, down));
    CHECK_OK(ferry_socket_connect(push, up));
    /* Wait for the live link (blocking sends would also wait for it). */
    uint64_t end = tu_now_ns() + (uint64_t)TU_TIMEOUT_MS * 1000000u;
    for (;;) {
        ferry_stats st;
        CHECK_OK(ferry_socket_stats(push, &st));
        if (st.peers == 1)
            break;
        CHECK(tu_now_ns() < end);
        ferry_pollitem it = {push, -1, FERRY_POLLIN, 0};
        ferry_poll(&it, 1, 5);
    }
    for (int i = 0; i < 6; i++) {
        char b[8];
        snprintf(b, sizeof b, "n%d", i);
        tu_send_str(push, b, 0);
    }
    for (int i = 0; i < 6; i++) {
        char b[8];
        snprintf(b, sizeof b, "n%d", i);
        recv_kick(pull, push, b, false);
    }
    ferry_socket_close(push);
    ferry_socket_close(pull);
}

int main(void)
{
    tu_deadline(60);
    test_default(FERRY_PUSH);
    test_default(FERRY_DEALER);
    test_queue_until_connected(FERRY_PUSH, FERRY_PULL);
    test_queue_until_connected(FERRY_DEALER, FERRY_DEALER);
    test_bind_only_and_disconnect();
    test_one_up_one_down(1);
    test_one_up_one_down(0);
    printf("test_pattern_immediate: ok\n");
    return 0;
}
