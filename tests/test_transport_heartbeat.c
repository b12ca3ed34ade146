/*
 * test_transport_heartbeat.c - heartbeats against a raw ZMTP peer built from the wire codec: a
 * peer that completes the handshake and then never answers our PINGs is dropped after
 * HEARTBEAT_TIMEOUT (and our PINGs carry the configured TTL); a peer that announced a TTL in its
 * own PING and then goes silent is dropped after that TTL; a peer that keeps talking is kept.
 */
#include "ferry/ferry.h"
#include "testutil.h"
#include "wire/zmtp.h"

#include <arpa/inet.h>
#include <netinet/in.h>
#include <poll.h>
#include <stdbool.h>
#include <stdio.h>
#include <string.h>
#include <sys/socket.h>
#include <unistd.h>

static int raw_listen(int *port)
{
    int fd = socket(AF_INET, SOCK_STREAM | SOCK_CLOEXEC, 0);
    CHECK(fd >= 0);
    struct sockaddr_in a = {.sin_family = AF_INET, .sin_addr.s_addr = htonl(INADDR_LOOPBACK)};
    CHECK(bind(fd, (struct sockaddr *)&a, sizeof a) == 0 && listen(fd, 4) == 0);
    socklen_t l = sizeof a;
    CHECK(getsockname(fd, (struct sockaddr *)&a, &l) == 0);
    *port = ntohs(a.sin_port);
    return fd;
}

static int raw_accept(int lfd)
{
    struct pollfd p = {.fd = lfd, .events = POLLIN};
    CHECK(poll(&p, 1, 10000) == 1);
    int fd = accept(lfd, NULL, NULL);
    CHECK(fd >= 0);
    uint8_t buf[600];
    CHECK(fy_zmtp_greeting_encode(buf, 1, "NULL", 0) == 64);
    ssize_t n = fy_zmtp_ready_encode(buf + 64, sizeof buf - 64, FERRY_PULL, NULL, 0, NULL);
    CHECK(n > 0);
    CHECK(write(fd, buf, 64 + (size_t)n) == 64 + n);
    return fd;
}

static uint32_t peers(ferry_socket *s)
{
    ferry_stats st;
    CHECK_OK(ferry_socket_stats(s, &st));
    return st.peers;
}

static void wait_peers(ferry_socket *s, uint32_t n)
{
    uint64_t end = tu_now_ns() + 10000000000ull;
    while (peers(s) != n) {
        CHECK(tu_now_ns() < end);
        poll(NULL, 0, 2);
    }
}

/* Reads what ferry sent until a PING shows up; returns its TTL (deciseconds). */
static int read_until_ping(int fd)
{
    static uint8_t buf[65536];
    size_t have = 0, off = 64; /* skip ferry's greeting */
    bool ready_seen = false;
    uint64_t end = tu_now_ns() + 10000000000ull;
    for (;;) {
        CHECK(tu_now_ns() < end);
        struct pollfd p = {.fd = fd, .events = POLLIN};
        CHECK(poll(&p, 1, 10000) == 1);
        ssize_t r = read(fd, buf + have, sizeof buf - have);
        CHECK(r > 0);
        have += (size_t)r;
        while (have > off) {
            fy_zmtp_frame f;
            if (fy_zmtp_frame_decode(buf + off, have - off, NULL, &f, NULL) != 1)
                break;
            if (fy_zmtp_frame_is_command(&f)) {
                fy_zmtp_command c;
                CHECK(fy_zmtp_command_decode(buf + off + f.header_len, (size_t)f.size, &c) == 0);
                if (c.type == FY_ZMTP_CMD_READY)
                    ready_seen = true;
                if (c.type == FY_ZMTP_CMD_PING) {
                    CHECK(ready_seen);
                    return c.ttl_ds;
                }
            }
            off += f.header_len + (size_t)f.size;
        }
    }
}

static void our_timeout(void)
{
    int port;
    int lfd = raw_listen(&port);
    ferry_socket *s;
    CHECK_OK(ferry_socket_open(&s, FERRY_PUSH));
    CHECK_OK(ferry_socket_setopt_int(s, FERRY_OPT_HEARTBEAT_IVL, 50));
    CHECK_OK(ferry_socket_setopt_int(s, FERRY_OPT_HEARTBEAT_TTL, 1000));
    CHECK_OK(ferry_socket_setopt_int(s, FERRY_OPT_HEARTBEAT_TIMEOUT, 200));
    CHECK_OK(ferry_socket_setopt_int(s, FERRY_OPT_RECONNECT_IVL, 60000));
    char url[64];
    snprintf(url, sizeof url, "tcp://127.0.0.1:%d", port);
    CHECK_OK(ferry_socket_connect(s, url));
    int fd = raw_accept(lfd);
    wait_peers(s, 1);
    CHECK(read_until_ping(fd) == 10); /* 1000 ms in deciseconds */
    /* We never answer: the link must go. */
    wait_peers(s, 0);
    ferry_socket_close(s);
    close(fd);
    close(lfd);
}

static void peer_ttl(void)
{
    int port;
    int lfd = raw_listen(&port);
    ferry_socket *s;
    CHECK_OK(ferry_socket_open(&s, FERRY_PUSH));
    CHECK_OK(ferry_socket_setopt_int(s, FERRY_OPT_RECONNECT_IVL, 60000));
    char url[64];
    snprintf(url, sizeof url, "tcp://127.0.0.1:%d", port);
    CHECK_OK(ferry_socket_connect(s, url));
    int fd = raw_accept(lfd);
    wait_peers(s, 1);
    /* One PING with TTL 3 ds, then silence: ferry must drop us after ~300 ms. It answers with a
     * PONG first. */
    uint8_t ping[32];
    ssize_t n = fy_zmtp_ping_encode(ping, sizeof ping, 3, "ab", 2);
    CHECK(n > 0 && write(fd, ping, (size_t)n) == n);
    wait_peers(s, 0);
    ferry_socket_close(s);
    close(fd);
    close(lfd);
}

static void chatty_peer_kept(void)
{
    /* With heartbeats on both ends (ferry to ferry), an idle link survives many timeouts. */
    ferry_socket *a, *b;
    CHECK_OK(ferry_socket_open(&a, FERRY_PAIR));
    CHECK_OK(ferry_socket_open(&b, FERRY_PAIR));
    CHECK_OK(ferry_socket_setopt_int(a, FERRY_OPT_HEARTBEAT_IVL, 30));
    CHECK_OK(ferry_socket_setopt_int(a, FERRY_OPT_HEARTBEAT_TIMEOUT, 100));
    CHECK_OK(ferry_socket_setopt_int(b, FERRY_OPT_HEARTBEAT_IVL, 30));
    CHECK_OK(ferry_socket_setopt_int(b, FERRY_OPT_HEARTBEAT_TTL, 200));
    CHECK_OK(ferry_socket_bind(a, "tcp://127.0.0.1:*"));
    char ep[128];
    CHECK_OK(ferry_socket_last_endpoint(a, ep, sizeof ep));
    CHECK_OK(ferry_socket_connect(b, ep));
    wait_peers(a, 1);
    wait_peers(b, 1);
    /* Idle for ten heartbeat timeouts (the thing under test is elapsed time). */
    poll(NULL, 0, 1000);
    CHECK(peers(a) == 1 && peers(b) == 1);
    CHECK_OK(ferry_socket_setopt_int(a, FERRY_OPT_RCVTIMEO, 10000));
    CHECK_OK(ferry_socket_send(b, "hi", 2, 0));
    char buf[4];
    CHECK_RC(ferry_socket_recv(a, buf, sizeof buf, 0, NULL), 2);
    ferry_socket_close(b);
    ferry_socket_close(a);
}

int main(void)
{
    tu_deadline(60);
    our_timeout();
    peer_ttl();
    chatty_peer_kept();
    return 0;
}
