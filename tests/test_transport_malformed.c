/*
 * test_transport_malformed.c - hostile and broken peers are dropped alone: a non-ZMTP greeting,
 * an unsupported mechanism, a READY with an incompatible socket type, data before READY, reserved
 * frame flag bits, a frame larger than the maximum message size, a huge size claim followed by
 * silence, and a peer that vanishes mid-handshake. After each, a well-behaved ferry peer on the
 * same socket still gets its messages through, and the socket records why the link went.
 */
#include "core/ctl.h"
#include "ferry/ferry.h"
#include "testutil.h"
#include "wire/zmtp.h"

#include <arpa/inet.h>
#include <errno.h>
#include <netinet/in.h>
#include <poll.h>
#include <stdbool.h>
#include <stdio.h>
#include <string.h>
#include <sys/socket.h>
#include <unistd.h>

static int port;

static int raw_connect(void)
{
    int fd = socket(AF_INET, SOCK_STREAM | SOCK_CLOEXEC, 0);
    CHECK(fd >= 0);
    struct sockaddr_in a = {.sin_family = AF_INET,
                            .sin_addr.s_addr = htonl(INADDR_LOOPBACK),
                            .sin_port = htons((uint16_t)port)};
    CHECK(connect(fd, (struct sockaddr *)&a, sizeof a) == 0);
    return fd;
}

static void put(int fd, const void *b, size_t n)
{
    CHECK(write(fd, b, n) == (ssize_t)n);
}

static size_t greeting_ready(uint8_t *buf, int type)
{
    CHECK(fy_zmtp_greeting_encode(buf, 1, "NULL", 0) == 64);
    ssize_t n = fy_zmtp_ready_encode(buf + 64, 512, type, NULL, 0, NULL);
    CHECK(n > 0);
    return 64 + (size_t)n;
}

/* ferry must close the connection: read until EOF or reset, with a deadline. */
static void expect_dropped(int fd)
{
    uint8_t b[4096];
    uint64_t end = tu_now_ns() + 10000000000ull;
    for (;;) {
        CHECK(tu_now_ns() < end);
        struct pollfd p = {.fd = fd, .events = POLLIN};
        CHECK(poll(&p, 1, 10000) == 1);
        ssize_t r = read(fd, b, sizeof b);
        if (r == 0 || (r < 0 && errno == ECONNRESET))
            break;
        CHECK(r > 0);
    }
    close(fd);
}

static void good_peer_works(ferry_socket *pull, ferry_socket *push)
{
    CHECK_OK(ferry_socket_send(push, "ok", 2, 0));
    char b[4];
    CHECK_RC(ferry_socket_recv(pull, b, sizeof b, 0, NULL), 2);
    CHECK(memcmp(b, "ok", 2) == 0);
}

int main(void)
{
    tu_deadline(60);
    ferry_socket *pull, *push;
    CHECK_OK(ferry_socket_open(&pull, FERRY_PULL));
    CHECK_OK(ferry_socket_open(&push, FERRY_PUSH));
    CHECK_OK(ferry_socket_setopt_int(pull, FERRY_OPT_RCVTIMEO, 10000));
    CHECK_OK(ferry_socket_bind(pull, "tcp://127.0.0.1:*"));
    char ep[128];
    CHECK_OK(ferry_socket_last_endpoint(pull, ep, sizeof ep));
    CHECK(sscanf(ep, "tcp://127.0.0.1:%d", &port) == 1);
    CHECK_OK(ferry_socket_connect(push, ep));
    good_peer_works(pull, push);
    uint8_t buf[1024];

    /* 1. Not ZMTP at all. */
    int fd = raw_connect();
    put(fd, "GET / HTTP/1.0\r\n\r\n", 18);
    expect_dropped(fd);
    good_peer_works(pull, push);
    CHECK(fy_ctl_last_error(pull) != NULL);

    /* 2. A mechanism we do not speak. */
    fd = raw_connect();
    CHECK(fy_zmtp_greeting_encode(buf, 1, "CURVE", 0) == 64);
    put(fd, buf, 64);
    expect_dropped(fd);
    good_peer_works(pull, push);

    /* 3. A socket type that cannot talk to PULL. */
    fd = raw_connect();
    put(fd, buf, greeting_ready(buf, FERRY_SUB));
    expect_dropped(fd);
    good_peer_works(pull, push);

    /* 4. A data frame instead of READY. */
    fd = raw_connect();
    CHECK(fy_zmtp_greeting_encode(buf, 1, "NULL", 0) == 64);
    memcpy(buf + 64,
           "\x00\x03"
           "abc",
           5);
    put(fd, buf, 69);
    expect_dropped(fd);
    good_peer_works(pull, push);

    /* 5. Valid handshake, then a frame with reserved flag bits. */
    fd = raw_connect();
    size_t n = greeting_ready(buf, FERRY_PUSH);
    memcpy(buf + n, "\x80\x01x", 3);
    put(fd, buf, n + 3);
    expect_dropped(fd);
    good_peer_works(pull, push);

    /* 6. Valid handshake, then a frame claiming 2^62 bytes (above the maximum message size). */
    fd = raw_connect();
    n = greeting_ready(buf, FERRY_PUSH);
    memcpy(buf + n, "\x02\x40\x00\x00\x00\x00\x00\x00\x00", 9);
    put(fd, buf, n + 9);
    good_peer_works(pull, push); /* the owner's receive is what parses and rejects it */
    expect_dropped(fd);

    /* 7. A plausible 512 MiB claim, a few bytes, then the peer vanishes: no 512 MiB allocation
     * happens (ASan would report it as a large allocation only if it did), the link goes. */
    fd = raw_connect();
    n = greeting_ready(buf, FERRY_PUSH);
    memcpy(buf + n,
           "\x02\x00\x00\x00\x00\x20\x00\x00\x00"
           "abcd",
           13);
    put(fd, buf, n + 13);
    good_peer_works(pull, push);
    close(fd);
    good_peer_works(pull, push);

    /* 8. Gone in the middle of the greeting. */
    fd = raw_connect();
    put(fd, "\xff\x00\x00\x00", 4);
    close(fd);
    good_peer_works(pull, push);

    ferry_stats st;
    CHECK_OK(ferry_socket_stats(pull, &st));
    uint64_t end = tu_now_ns() + 10000000000ull;
    while (st.peers != 1) { /* only the good peer stays */
        CHECK(tu_now_ns() < end);
        poll(NULL, 0, 2);
        CHECK_OK(ferry_socket_stats(pull, &st));
    }
    CHECK(fy_ctl_link_errors(pull) >= 4);
    ferry_socket_close(push);
    ferry_socket_close(pull);
    return 0;
}
