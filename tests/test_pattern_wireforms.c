/*
 * test_pattern_wireforms.c - the subscription bytes ferry's SUB, XSUB and XPUB put on and accept
 * from the wire, checked against a raw ZMTP peer in this process for both peer versions: a ZMTP
 * 3.0 peer gets and may send the message form (0x01/0x00 + prefix), a 3.1 peer gets SUBSCRIBE /
 * CANCEL commands; reference counting decides what is sent; reconnects resend each prefix once;
 * SUB filtering of what the raw publisher sends; and an XPUB given a SUBSCRIBE command in the
 * middle of an upstream message.
 */
#include "testutil.h"

#include "ferry/ferry.h"

#include <arpa/inet.h>
#include <netinet/in.h>
#include <poll.h>
#include <stdbool.h>
#include <string.h>
#include <sys/socket.h>
#include <unistd.h>

#define WAIT_MS 5000

/* The ferry socket whose owner must keep calling while the raw side waits (see patterns.md). */
static ferry_socket *kick;

static int listen_any(int *port)
{
    int fd = socket(AF_INET, SOCK_STREAM, 0);
    CHECK(fd >= 0);
    struct sockaddr_in a;
    memset(&a, 0, sizeof a);
    a.sin_family = AF_INET;
    a.sin_addr.s_addr = htonl(INADDR_LOOPBACK);
    CHECK(bind(fd, (struct sockaddr *)&a, sizeof a) == 0);
    CHECK(listen(fd, 4) == 0);
    socklen_t l = sizeof a;
    CHECK(getsockname(fd, (struct sockaddr *)&a, &l) == 0);
    *port = ntohs(a.sin_port);
    return fd;
}

static void wait_fd(int fd)
{
    uint64_t end = tu_now_ns() + (uint64_t)WAIT_MS * 1000000u;
    for (;;) {
        if (kick)
            CHECK(ferry_socket_events(kick) >= 0);
        struct pollfd p = {fd, POLLIN, 0};
        if (poll(&p, 1, 5) == 1)
            return;
        if (tu_now_ns() > end) {
            fprintf(stderr, "raw peer: timed out waiting for data\n");
            exit(1);
        }
    }
}

static void read_exact(int fd, void *buf, size_t n)
{
    size_t got = 0;
    while (got < n) {
        wait_fd(fd);
        ssize_t r = read(fd, (char *)buf + got, n - got);
        CHECK(r > 0);
        got += (size_t)r;
    }
}

static void write_all(int fd, const void *buf, size_t n)
{
    CHECK(write(fd, buf, n) == (ssize_t)n);
}

/* One frame: flags and body (bodies here are small). */
typedef struct frame {
    uint8_t flags;
    size_t len;
    uint8_t body[512];
} frame;

static void read_frame(int fd, frame *f)
{
    read_exact(fd, &f->flags, 1);
    uint64_t len;
    if (f->flags & 0x02) {
        uint8_t b[8];
        read_exact(fd, b, 8);
        len = 0;
        for (int i = 0; i < 8; i++)
            len = len << 8 | b[i];
    } else {
        uint8_t b;
        read_exact(fd, &b, 1);
        len = b;
    }
    CHECK(len <= sizeof f->body);
    f->len = (size_t)len;
    read_exact(fd, f->body, f->len);
}

static void send_frame(int fd, uint8_t flags, const void *body, size_t len)
{
    CHECK(len <= 255);
    uint8_t h[2] = {flags, (uint8_t)len};
    write_all(fd, h, 2);
    if (len)
        write_all(fd, body, len);
}

/* Greeting (3.minor, NULL, as_server 0) and READY with our Socket-Type; consumes the peer's. */
static void handshake(int fd, int minor, const char *type)
{
    uint8_t g[64];
    memset(g, 0, sizeof g);
    g[0] = 0xff;
    g[9] = 0x7f;
    g[10] = 3;
    g[11] = (uint8_t)minor;
    memcpy(g + 12, "NULL", 4);
    write_all(fd, g, sizeof g);
    uint8_t body[64];
    size_t n = 0, tl = strlen(type);
    body[n++] = 5;
    memcpy(body + n, "READY", 5);
    n += 5;
    body[n++] = 11;
    memcpy(body + n, "Socket-Type", 11);
    n += 11;
    uint8_t l4[4] = {0, 0, 0, (uint8_t)tl};
    memcpy(body + n, l4, 4);
    n += 4;
    memcpy(body + n, type, tl);
    n += tl;
    send_frame(fd, 0x04, body, n);
    uint8_t pg[64];
    read_exact(fd, pg, 64);
    CHECK(pg[0] == 0xff && pg[10] == 3);
    frame f;
    read_frame(fd, &f);
    CHECK(f.flags == 0x04 && f.len > 6 && memcmp(f.body, "\x05READY", 6) == 0);
}

/* Expects the next frame to be a subscribe/cancel for prefix in the form for `minor`. */
static void expect_sub(int fd, int minor, bool subscribe, const char *prefix)
{
    frame f;
    read_frame(fd, &f);
    size_t pl = strlen(prefix);
    if (minor >= 1) {
        const char *name = subscribe ? "SUBSCRIBE" : "CANCEL";
        size_t nl = strlen(name);
        CHECK(f.flags == 0x04);
        CHECK(f.len == 1 + nl + pl && f.body[0] == nl && memcmp(f.body + 1, name, nl) == 0);
        CHECK(memcmp(f.body + 1 + nl, prefix, pl) == 0);
    } else {
        CHECK(f.flags == 0x00);
        CHECK(f.len == 1 + pl && f.body[0] == (subscribe ? 1 : 0));
        CHECK(memcmp(f.body + 1, prefix, pl) == 0);
    }
}

static ferry_socket *open_connected(int type, int port)
{
    ferry_socket *s = NULL;
    CHECK_OK(ferry_socket_open(&s, type));
    CHECK_OK(ferry_socket_setopt_int(s, FERRY_OPT_LINGER, 0));
    CHECK_OK(ferry_socket_setopt_int(s, FERRY_OPT_RCVTIMEO, WAIT_MS));
    CHECK_OK(ferry_socket_setopt_int(s, FERRY_OPT_RECONNECT_IVL, 10));
    char url[64];
    snprintf(url, sizeof url, "tcp://127.0.0.1:%d", port);
    CHECK_OK(ferry_socket_connect(s, url));
    return s;
}

static int accept_one(int lfd)
{
    wait_fd(lfd);
    int fd = accept(lfd, NULL, NULL);
    CHECK(fd >= 0);
    return fd;
}

static void test_sub_sends(int minor, int type)
{
    int port, lfd = listen_any(&port);
    ferry_socket *sub = open_connected(type, port);
    kick = sub;
    /* Subscriptions made before the connection go out once it is up, each prefix once. */
    if (type == FERRY_SUB) {
        CHECK_OK(ferry_socket_subscribe(sub, "abc", 3));
        CHECK_OK(ferry_socket_subscribe(sub, "abc", 3));
    } else {
        CHECK_OK(ferry_socket_send(sub,
                                   "\x01"
                                   "abc",
                                   4, 0));
        CHECK_OK(ferry_socket_send(sub,
                                   "\x01"
                                   "abc",
                                   4, 0));
    }
    int fd = accept_one(lfd);
    handshake(fd, minor, "PUB");
    expect_sub(fd, minor, true, "abc");
    /* Live changes: every subscribe is forwarded; a cancel only when the count reaches zero. */
    CHECK_OK(ferry_socket_subscribe(sub, "", 0));
    expect_sub(fd, minor, true, "");
    CHECK_OK(ferry_socket_unsubscribe(sub, "abc", 3));
    CHECK_OK(ferry_socket_unsubscribe(sub, "", 0));
    expect_sub(fd, minor, false, "");
    CHECK_OK(ferry_socket_unsubscribe(sub, "abc", 3));
    expect_sub(fd, minor, false, "abc");
    CHECK_OK(ferry_socket_subscribe(sub, "t", 1));
    expect_sub(fd, minor, true, "t");

    /* Filtering of what the publisher sends, including a multipart message. */
    send_frame(fd, 0, "nope", 4);
    send_frame(fd, 1, "t1", 2);
    send_frame(fd, 0, "x", 1);
    send_frame(fd, 0, "t2", 2);
    char buf[16];
    int more = -1;
    CHECK(ferry_socket_recv(sub, buf, sizeof buf, 0, &more) == 2 && more == 1);
    CHECK(memcmp(buf, "t1", 2) == 0);
    CHECK(ferry_socket_recv(sub, buf, sizeof buf, 0, &more) == 1 && more == 0);
    CHECK(ferry_socket_recv(sub, buf, sizeof buf, 0, &more) == 2 && more == 0);
    CHECK(memcmp(buf, "t2", 2) == 0);

    /* The publisher goes away and comes back: the set ("t") is sent again, once. */
    close(fd);
    fd = accept_one(lfd);
    handshake(fd, minor, "PUB");
    expect_sub(fd, minor, true, "t");
    /* Nothing else follows: a marker subscription is the next frame. */
    CHECK_OK(ferry_socket_subscribe(sub, "m", 1));
    expect_sub(fd, minor, true, "m");
    kick = NULL;
    ferry_socket_close(sub);
    close(fd);
    close(lfd);
}

/* An XPUB on tcp and a raw peer connected to it, through the handshake as `type`. */
static ferry_socket *xpub_with_raw(int minor, const char *type, int *fd_out)
{
    ferry_socket *x = NULL;
    CHECK_OK(ferry_socket_open(&x, FERRY_XPUB));
    CHECK_OK(ferry_socket_setopt_int(x, FERRY_OPT_LINGER, 0));
    CHECK_OK(ferry_socket_setopt_int(x, FERRY_OPT_RCVTIMEO, WAIT_MS));
    CHECK_OK(ferry_socket_bind(x, "tcp://127.0.0.1:*"));
    char ep[128];
    CHECK(ferry_socket_last_endpoint(x, ep, sizeof ep) >= 0);
    int port = atoi(strrchr(ep, ':') + 1);
    int fd = socket(AF_INET, SOCK_STREAM, 0);
    struct sockaddr_in a;
    memset(&a, 0, sizeof a);
    a.sin_family = AF_INET;
    a.sin_port = htons((uint16_t)port);
    a.sin_addr.s_addr = htonl(INADDR_LOOPBACK);
    CHECK(connect(fd, (struct sockaddr *)&a, sizeof a) == 0);
    kick = x;
    handshake(fd, minor, type);
    kick = NULL;
    *fd_out = fd;
    return x;
}

/* The XPUB publishes `other` and then "topic!": the raw peer, subscribed to "topic" (or a
 * prefix of it) and nothing matching `other`, gets "topic!" as its next frame. Closes both. */
static void expect_filtered_then_close(ferry_socket *x, int fd, const char *other)
{
    CHECK_OK(ferry_socket_send(x, other, strlen(other), 0));
    CHECK_OK(ferry_socket_send(x, "topic!", 6, 0));
    frame f;
    read_frame(fd, &f);
    CHECK(f.flags == 0 && f.len == 6 && memcmp(f.body, "topic!", 6) == 0);
    ferry_socket_close(x);
    close(fd);
}

static void test_xpub_accepts(int minor, bool command_form)
{
    int fd;
    ferry_socket *x = xpub_with_raw(minor, "SUB", &fd);
    if (command_form) {
        send_frame(fd, 0x04, "\x09SUBSCRIBEtopic", 15);
        send_frame(fd, 0x04,
                   "\x06"
                   "CANCELtopic",
                   12);
    } else {
        send_frame(fd, 0, "\x01topic", 6);
        send_frame(fd, 0, "\x00topic", 6);
    }
    char buf[16];
    int more = -1;
    CHECK(ferry_socket_recv(x, buf, sizeof buf, 0, &more) == 6 && more == 0);
    CHECK(memcmp(buf, "\x01topic", 6) == 0);
    CHECK(ferry_socket_recv(x, buf, sizeof buf, 0, &more) == 6 && more == 0);
    CHECK(memcmp(buf, "\x00topic", 6) == 0);
    /* Subscribed again: publishing reaches the raw subscriber; others are filtered. */
    send_frame(fd, 0, "\x01to", 3);
    CHECK(ferry_socket_recv(x, buf, sizeof buf, 0, &more) == 3);
    expect_filtered_then_close(x, fd, "other");
}

/*
 * A peer's SUBSCRIBE command between the frames of its upstream message (ZMTP 3.1's grammar has
 * no place for one, but a command belongs to no message): applied, and the message reaches the
 * application whole, without the command as a frame; the notice follows the message. A 0x01
 * data frame there is data (only a message's first frame can be a subscription).
 */
static void test_xpub_mid_command(void)
{
    int fd;
    ferry_socket *x = xpub_with_raw(1, "XSUB", &fd);
    char buf[16];
    int more = -1;
    /* The application takes the first frame before the command arrives, so the notice cannot go
     * in front of the message (where it goes when the whole message is still queued). */
    send_frame(fd, 0x01, "h", 1);
    CHECK(ferry_socket_recv(x, buf, sizeof buf, 0, &more) == 1 && more == 1 && buf[0] == 'h');
    send_frame(fd, 0x04, "\x09SUBSCRIBEtopic", 15);
    send_frame(fd, 0x01, "\x01zz", 3);
    send_frame(fd, 0x00, "t", 1);
    CHECK(ferry_socket_recv(x, buf, sizeof buf, 0, &more) == 3 && more == 1);
    CHECK(memcmp(buf, "\x01zz", 3) == 0);
    CHECK(ferry_socket_recv(x, buf, sizeof buf, 0, &more) == 1 && more == 0 && buf[0] == 't');
    CHECK(ferry_socket_recv(x, buf, sizeof buf, 0, &more) == 6 && more == 0);
    CHECK(memcmp(buf, "\x01topic", 6) == 0);
    CHECK_RC(ferry_socket_recv(x, buf, sizeof buf, FERRY_DONTWAIT, &more), FERRY_EAGAIN);
    /* Applied: "topic!" reaches the raw peer, "zz" (a data frame, not a subscription) does not. */
    expect_filtered_then_close(x, fd, "zz");
}

int main(void)
{
    tu_deadline(60);
    for (int minor = 0; minor <= 1; minor++) {
        test_sub_sends(minor, FERRY_SUB);
        test_sub_sends(minor, FERRY_XSUB);
        test_xpub_accepts(minor, false);
        test_xpub_accepts(minor, true);
    }
    test_xpub_mid_command();
    return 0;
}
