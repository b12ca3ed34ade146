/*
 * test_interop_wire.c - the ZMTP codec against the real libzmq, byte for byte, over raw TCP on
 * 127.0.0.1. No ferry sockets are involved: this test speaks ZMTP by hand with fy_zmtp_* so a
 * codec bug cannot be hidden by a matching bug on the other side.
 *  (a) libzmq connects to our raw listener: its staged greeting and READY decode, its READY equals
 *      ours byte for byte, Socket-Type and Identity are right, frames it sends (short, 255, 256,
 *      1 MiB, multipart, empty) decode exactly, and its heartbeat PING carries the configured TTL.
 *  (b) we connect raw to a bound libzmq socket: libzmq receives exactly the frames the codec
 *      built (including a LONG header with a small size), REP answers a REQ envelope, SUB gets
 *      what matches its subscription, and PING is answered with PONG echoing the context.
 *  (c) which subscription form libzmq's SUB and XSUB send when we announce 3.1 and when we
 *      announce 3.0, and that other XSUB upstream messages are not taken for subscriptions.
 *  (d) libzmq's socket-type validation agrees with fy_zmtp_socket_types_compatible for all 121
 *      pairs.
 * All waits are poll() with deadlines; nothing sleeps.
 */
#include "testutil.h"

#include "wire/zmtp.h"

#include <arpa/inet.h>
#include <errno.h>
#include <netinet/in.h>
#include <netinet/tcp.h>
#include <poll.h>
#include <string.h>
#include <sys/socket.h>
#include <unistd.h>
#include <zmq.h>

#if defined(__has_feature)
#if __has_feature(thread_sanitizer)
#define WIRE_TSAN 1
#endif
#endif
#if defined(__SANITIZE_THREAD__)
#define WIRE_TSAN 1
#endif
#ifdef WIRE_TSAN
/*
 * libzmq is not built with TSan: its lock-free queues between the application thread and its
 * I/O thread are invisible to TSan and show up as races inside libzmq. Only libzmq's own frames
 * are suppressed; this test's code and the codec run on one thread.
 */
const char *__tsan_default_suppressions(void);
const char *__tsan_default_suppressions(void)
{
    return "called_from_lib:libzmq.so.5\nrace:libzmq.so.5\n";
}
#endif

#define WAIT_MS 10000 /* generous: 2 shared vCPUs under sanitizers */

static void *ctx;
/* A libzmq socket to service while waiting on raw bytes (see rx_read), or NULL. */
static void *pump_sock;

/* ---------------------------------------------------------------------------------------- */
/* Raw socket helpers */
/* ---------------------------------------------------------------------------------------- */

static int tcp_listener(uint16_t *port)
{
    int fd = socket(AF_INET, SOCK_STREAM | SOCK_CLOEXEC, 0);
    CHECK(fd >= 0);
    struct sockaddr_in a;
    memset(&a, 0, sizeof a);
    a.sin_family = AF_INET;
    a.sin_addr.s_addr = htonl(INADDR_LOOPBACK);
    CHECK(bind(fd, (struct sockaddr *)&a, sizeof a) == 0);
    CHECK(listen(fd, 16) == 0);
    socklen_t l = sizeof a;
    CHECK(getsockname(fd, (struct sockaddr *)&a, &l) == 0);
    *port = ntohs(a.sin_port);
    return fd;
}

static int tcp_accept(int lfd)
{
    struct pollfd p = {.fd = lfd, .events = POLLIN};
    CHECK(poll(&p, 1, WAIT_MS) == 1);
    int fd = accept4(lfd, NULL, NULL, SOCK_CLOEXEC);
    CHECK(fd >= 0);
    int one = 1;
    setsockopt(fd, IPPROTO_TCP, TCP_NODELAY, &one, sizeof one);
    return fd;
}

static int tcp_connect(uint16_t port)
{
    int fd = socket(AF_INET, SOCK_STREAM | SOCK_CLOEXEC, 0);
    CHECK(fd >= 0);
    struct sockaddr_in a;
    memset(&a, 0, sizeof a);
    a.sin_family = AF_INET;
    a.sin_addr.s_addr = htonl(INADDR_LOOPBACK);
    a.sin_port = htons(port);
    CHECK(connect(fd, (struct sockaddr *)&a, sizeof a) == 0);
    int one = 1;
    setsockopt(fd, IPPROTO_TCP, TCP_NODELAY, &one, sizeof one);
    return fd;
}

static void write_all(int fd, const void *p, size_t n)
{
    const uint8_t *b = p;
    while (n > 0) {
        ssize_t w = send(fd, b, n, MSG_NOSIGNAL);
        if (w < 0 && errno == EINTR)
            continue;
        if (w < 0 && errno == EAGAIN) {
            struct pollfd pf = {.fd = fd, .events = POLLOUT};
            CHECK(poll(&pf, 1, WAIT_MS) == 1);
            continue;
        }
        CHECK(w > 0);
        b += w;
        n -= (size_t)w;
    }
}

/* The port of a libzmq socket bound to tcp://127.0.0.1:* */
static uint16_t zmq_port(void *s)
{
    char ep[256];
    size_t len = sizeof ep;
    CHECK(zmq_getsockopt(s, ZMQ_LAST_ENDPOINT, ep, &len) == 0);
    const char *colon = strrchr(ep, ':');
    CHECK(colon != NULL);
    return (uint16_t)atoi(colon + 1);
}

static void *zsock(int type)
{
    void *s = zmq_socket(ctx, type);
    CHECK(s != NULL);
    int linger = 0, tmo = WAIT_MS;
    CHECK(zmq_setsockopt(s, ZMQ_LINGER, &linger, sizeof linger) == 0);
    CHECK(zmq_setsockopt(s, ZMQ_RCVTIMEO, &tmo, sizeof tmo) == 0);
    CHECK(zmq_setsockopt(s, ZMQ_SNDTIMEO, &tmo, sizeof tmo) == 0);
    return s;
}

/* Receive buffer: bytes read from the socket, consumed from the front. */
typedef struct rx {
    int fd;
    uint8_t *buf;
    size_t len, cap;
    size_t reads; /* how many read() calls delivered data: shows libzmq's staging */
} rx_t;

static void rx_init(rx_t *r, int fd)
{
    memset(r, 0, sizeof *r);
    r->fd = fd;
    r->cap = 1 << 16;
    r->buf = malloc(r->cap);
    CHECK(r->buf != NULL);
}

static void rx_fini(rx_t *r)
{
    free(r->buf);
    close(r->fd);
}

/* Reads once (after waiting up to ms). 1 = got bytes, 0 = EOF or reset, -1 = timeout. */
static int rx_read(rx_t *r, size_t want_cap, int ms)
{
    if (want_cap > r->cap) {
        r->buf = realloc(r->buf, want_cap);
        CHECK(r->buf != NULL);
        r->cap = want_cap;
    }
    if (r->len == r->cap) {
        r->cap *= 2;
        r->buf = realloc(r->buf, r->cap);
        CHECK(r->buf != NULL);
    }
    struct pollfd p = {.fd = r->fd, .events = POLLIN};
    int pr;
    if (pump_sock == NULL) {
        pr = poll(&p, 1, ms);
    } else {
        /*
         * libzmq attaches a bound socket's new pipes (and a SUB sends its subscriptions) only
         * when the application thread enters the socket: keep entering it (ZMQ_EVENTS) while
         * we wait for bytes, in short poll slices up to the same deadline.
         */
        uint64_t end = tu_now_ns() + (uint64_t)ms * 1000000u;
        for (;;) {
            int ev;
            size_t evl = sizeof ev;
            CHECK(zmq_getsockopt(pump_sock, ZMQ_EVENTS, &ev, &evl) == 0);
            pr = poll(&p, 1, 5);
            if (pr != 0 || tu_now_ns() >= end)
                break;
        }
    }
    if (pr == 0)
        return -1;
    CHECK(pr == 1);
    ssize_t n = recv(r->fd, r->buf + r->len, r->cap - r->len, 0);
    if (n <= 0)
        return 0;
    r->len += (size_t)n;
    r->reads++;
    return 1;
}

static void rx_drop(rx_t *r, size_t n)
{
    CHECK(n <= r->len);
    memmove(r->buf, r->buf + n, r->len - n);
    r->len -= n;
}

/* Next complete frame at r->buf. 1 = ok, 0 = EOF/timeout, < 0 = codec error. */
static int rx_frame(rx_t *r, fy_zmtp_frame *f)
{
    uint64_t deadline = tu_now_ns() + (uint64_t)WAIT_MS * 1000000u;
    for (;;) {
        uint64_t need = 0;
        int rc = fy_zmtp_frame_decode(r->buf, r->len, NULL, f, &need);
        if (rc != 0)
            return rc;
        uint64_t now = tu_now_ns();
        if (now >= deadline)
            return 0;
        CHECK(need < (UINT64_C(1) << 31));
        if (rx_read(r, r->len + (size_t)need, (int)((deadline - now) / 1000000u) + 1) != 1)
            return 0;
    }
}

/* Next frame that is not a PING/PONG command (heartbeats may interleave with data). */
static int rx_data_frame(rx_t *r, fy_zmtp_frame *f)
{
    for (;;) {
        int rc = rx_frame(r, f);
        if (rc != 1 || !fy_zmtp_frame_is_command(f))
            return rc;
        fy_zmtp_command c;
        CHECK_OK(fy_zmtp_command_decode(r->buf + f->header_len, (size_t)f->size, &c));
        if (c.type != FY_ZMTP_CMD_PING && c.type != FY_ZMTP_CMD_PONG)
            return rc;
        rx_drop(r, f->header_len + (size_t)f->size);
    }
}

/* What we learnt from the peer's greeting and READY. */
typedef struct peer {
    fy_zmtp_greeting g;
    int socket_type;
    char identity[256];
    size_t identity_len;
    int has_identity;
    int ferry;
    uint8_t ready[600]; /* the peer's READY frame exactly as received (header + body) */
    size_t ready_len;
} peer_t;

/* Reads the peer's greeting with the incremental decoder, whatever the split.
 */
static void rx_greeting(rx_t *r, fy_zmtp_greeting *g)
{
    fy_zmtp_greeting_decoder d;
    fy_zmtp_greeting_decoder_init(&d);
    for (;;) {
        size_t used = 0;
        int rc = fy_zmtp_greeting_feed(&d, r->buf, r->len, &used);
        CHECK(rc >= 0);
        rx_drop(r, used);
        if (rc == 1)
            break;
        CHECK(rx_read(r, 0, WAIT_MS) == 1);
    }
    *g = d.greeting;
}

/*
 * Sends our greeting (version 3.minor) and READY right away, then reads the
 * peer's greeting and first command. Returns 1 when the peer sent a valid READY
 * (filled into *p), 0 when it closed the connection or sent ERROR instead (it
 * rejected us).
 */
static int handshake(rx_t *r, uint8_t minor, int our_type, const char *identity, peer_t *p)
{
    uint8_t out[FY_ZMTP_GREETING_SIZE + 512];
    CHECK_RC(fy_zmtp_greeting_encode(out, minor, "NULL", 0), 64);
    ssize_t n = fy_zmtp_ready_encode(out + 64, sizeof out - 64, our_type, identity,
                                     identity ? strlen(identity) : 0, NULL);
    CHECK(n > 0);
    write_all(r->fd, out, 64 + (size_t)n);
    memset(p, 0, sizeof *p);
    rx_greeting(r, &p->g);
    fy_zmtp_frame f;
    int rc = rx_frame(r, &f);
    if (rc == 0)
        return 0;
    CHECK_RC(rc, 1);
    CHECK(fy_zmtp_frame_is_command(&f));
    fy_zmtp_command c;
    CHECK_OK(fy_zmtp_command_decode(r->buf + f.header_len, (size_t)f.size, &c));
    if (c.type == FY_ZMTP_CMD_ERROR)
        return 0;
    CHECK(c.type == FY_ZMTP_CMD_READY);
    fy_zmtp_peer_info info;
    const char *why = NULL;
    int prc = fy_zmtp_ready_peer(&c, our_type, &info, &why);
    if (prc != 0) {
        fprintf(stderr, "ready_peer: %s\n", why);
        CHECK_OK(prc);
    }
    p->socket_type = info.socket_type;
    if (f.header_len + f.size <= sizeof p->ready) {
        p->ready_len = f.header_len + (size_t)f.size;
        memcpy(p->ready, r->buf, p->ready_len);
    }
    p->ferry = info.ferry;
    const void *idv;
    size_t idlen;
    p->has_identity = fy_zmtp_props_find(c.data, c.data_len, "Identity", &idv, &idlen) == 1;
    if (p->has_identity) {
        memcpy(p->identity, idv, idlen);
        p->identity_len = idlen;
    }
    rx_drop(r, f.header_len + (size_t)f.size);
    return 1;
}

/* Sends one frame: header from the codec, body from the caller, in one write (like writev). */
static void send_frame(int fd, uint8_t flags, const void *body, size_t len)
{
    uint8_t *b = malloc(FY_ZMTP_MAX_HEADER + len + 1);
    CHECK(b != NULL);
    int h = fy_zmtp_frame_header_encode(b, flags, len);
    CHECK(h == 2 || h == 9);
    CHECK(h == (len <= 255 ? 2 : 9));
    if (len > 0)
        memcpy(b + h, body, len);
    write_all(fd, b, (size_t)h + len);
    free(b);
}

/* Test payloads: sizes around the short/long boundary and a large one. */
static const size_t sizes[] = {0, 1, 5, 254, 255, 256, 257, 65536, 1u << 20};
#define NSIZES (sizeof sizes / sizeof sizes[0])

static void fill(uint8_t *b, size_t n, unsigned seed)
{
    for (size_t i = 0; i < n; i++)
        b[i] = (uint8_t)(i * 31u + seed);
}

/* ---------------------------------------------------------------------------------------- */
/* (a) libzmq connects to us */
/* ---------------------------------------------------------------------------------------- */

static void test_libzmq_push_to_raw_pull(void)
{
    uint16_t port;
    int lfd = tcp_listener(&port);
    void *push = zsock(ZMQ_PUSH);
    char ep[64];
    snprintf(ep, sizeof ep, "tcp://127.0.0.1:%u", port);
    CHECK(zmq_connect(push, ep) == 0);
    rx_t r;
    rx_init(&r, tcp_accept(lfd));
    peer_t p;
    CHECK(handshake(&r, 1, FERRY_PULL, NULL, &p) == 1);
    CHECK(p.g.major == 3 && strcmp(p.g.mechanism, "NULL") == 0);
    CHECK(p.socket_type == FERRY_PUSH && p.ferry == 0);
    printf("libzmq %d.%d.%d greets with ZMTP %u.%u; its greeting arrived in %zu "
           "reads\n",
           ZMQ_VERSION_MAJOR, ZMQ_VERSION_MINOR, ZMQ_VERSION_PATCH, p.g.major, p.g.minor, r.reads);

    /* every size as a single frame, byte-exact */
    uint8_t *want = malloc(1u << 20);
    CHECK(want != NULL);
    for (size_t i = 0; i < NSIZES; i++) {
        fill(want, sizes[i], (unsigned)i);
        CHECK(zmq_send(push, want, sizes[i], 0) == (int)sizes[i]);
        fy_zmtp_frame f;
        CHECK_RC(rx_data_frame(&r, &f), 1);
        CHECK(!fy_zmtp_frame_is_command(&f) && !fy_zmtp_frame_more(&f));
        CHECK(f.size == sizes[i]);
        CHECK(f.header_len == (sizes[i] <= 255 ? 2 : 9)); /* libzmq uses the short form too */
        CHECK(memcmp(r.buf + f.header_len, want, sizes[i]) == 0);
        rx_drop(&r, f.header_len + (size_t)f.size);
    }
    /* multipart: "a", "", 300 bytes */
    fill(want, 300, 7);
    CHECK(zmq_send(push, "a", 1, ZMQ_SNDMORE) == 1);
    CHECK(zmq_send(push, "", 0, ZMQ_SNDMORE) == 0);
    CHECK(zmq_send(push, want, 300, 0) == 300);
    fy_zmtp_frame f;
    CHECK_RC(rx_data_frame(&r, &f), 1);
    CHECK(fy_zmtp_frame_more(&f) && f.size == 1 && r.buf[2] == 'a');
    CHECK(r.buf[0] == 0x01);
    rx_drop(&r, 3);
    CHECK_RC(rx_data_frame(&r, &f), 1);
    CHECK(fy_zmtp_frame_more(&f) && f.size == 0);
    rx_drop(&r, 2);
    CHECK_RC(rx_data_frame(&r, &f), 1);
    CHECK(!fy_zmtp_frame_more(&f) && f.size == 300 && r.buf[0] == 0x02);
    CHECK(memcmp(r.buf + 9, want, 300) == 0);
    rx_drop(&r, 309);
    free(want);
    zmq_close(push);
    rx_fini(&r);
    close(lfd);
}

static void test_libzmq_dealer_identity_and_ping(void)
{
    uint16_t port;
    int lfd = tcp_listener(&port);
    void *dealer = zsock(ZMQ_DEALER);
    CHECK(zmq_setsockopt(dealer, ZMQ_ROUTING_ID, "dealer-1", 8) == 0);
    int ivl = 50, ttl = 2000;
    CHECK(zmq_setsockopt(dealer, ZMQ_HEARTBEAT_IVL, &ivl, sizeof ivl) == 0);
    CHECK(zmq_setsockopt(dealer, ZMQ_HEARTBEAT_TTL, &ttl, sizeof ttl) == 0);
    /* libzmq drops the link when no traffic follows its PING within this timeout (default: the
     * interval); a loaded machine can stall us longer than 50 ms, so make it generous. */
    int hb_timeout = WAIT_MS;
    CHECK(zmq_setsockopt(dealer, ZMQ_HEARTBEAT_TIMEOUT, &hb_timeout, sizeof hb_timeout) == 0);
    char ep[64];
    snprintf(ep, sizeof ep, "tcp://127.0.0.1:%u", port);
    CHECK(zmq_connect(dealer, ep) == 0);
    rx_t r;
    rx_init(&r, tcp_accept(lfd));
    peer_t p;
    CHECK(handshake(&r, 1, FERRY_ROUTER, NULL, &p) == 1);
    CHECK(p.socket_type == FERRY_DEALER);
    CHECK(p.has_identity && p.identity_len == 8 && memcmp(p.identity, "dealer-1", 8) == 0);
    /* libzmq's READY is byte for byte what our encoder writes for the same socket */
    uint8_t ours[600];
    ssize_t on = fy_zmtp_ready_encode(ours, sizeof ours, FERRY_DEALER, "dealer-1", 8, NULL);
    CHECK(on > 0 && (size_t)on == p.ready_len && memcmp(ours, p.ready, p.ready_len) == 0);
    /* libzmq heartbeats: a PING whose TTL is ZMQ_HEARTBEAT_TTL in deciseconds */
    fy_zmtp_frame f;
    CHECK_RC(rx_frame(&r, &f), 1);
    CHECK(fy_zmtp_frame_is_command(&f));
    fy_zmtp_command c;
    CHECK_OK(fy_zmtp_command_decode(r.buf + f.header_len, (size_t)f.size, &c));
    CHECK(c.type == FY_ZMTP_CMD_PING);
    CHECK(c.ttl_ds == 20);
    printf("libzmq PING: ttl %u ds, context %zu bytes\n", c.ttl_ds, c.arg_len);
    /* answer it with our PONG echoing the context; libzmq must keep the link up and deliver */
    uint8_t pong[32];
    ssize_t n = fy_zmtp_pong_encode(pong, sizeof pong, c.arg, c.arg_len);
    CHECK(n > 0);
    rx_drop(&r, f.header_len + (size_t)f.size);
    write_all(r.fd, pong, (size_t)n);
    /* a ROUTER-side message to the dealer: no envelope on the wire, just the body
     */
    send_frame(r.fd, 0, "to-dealer", 9);
    char buf[32];
    CHECK(zmq_recv(dealer, buf, sizeof buf, 0) == 9 && memcmp(buf, "to-dealer", 9) == 0);
    zmq_close(dealer);
    rx_fini(&r);
    close(lfd);
}

/* libzmq REQ: its READY carries an (empty) Identity, requests carry the empty delimiter. */
static void test_libzmq_req_envelope(void)
{
    uint16_t port;
    int lfd = tcp_listener(&port);
    void *req = zsock(ZMQ_REQ);
    char ep[64];
    snprintf(ep, sizeof ep, "tcp://127.0.0.1:%u", port);
    CHECK(zmq_connect(req, ep) == 0);
    rx_t r;
    rx_init(&r, tcp_accept(lfd));
    peer_t p;
    CHECK(handshake(&r, 1, FERRY_REP, NULL, &p) == 1);
    CHECK(p.socket_type == FERRY_REQ);
    uint8_t ours[600];
    ssize_t on = fy_zmtp_ready_encode(ours, sizeof ours, FERRY_REQ, NULL, 0, NULL);
    CHECK(on > 0 && (size_t)on == p.ready_len && memcmp(ours, p.ready, p.ready_len) == 0);
    CHECK(zmq_send(req, "q", 1, 0) == 1);
    fy_zmtp_frame f;
    CHECK_RC(rx_data_frame(&r, &f), 1);
    CHECK(fy_zmtp_frame_more(&f) && f.size == 0); /* the delimiter */
    rx_drop(&r, 2);
    CHECK_RC(rx_data_frame(&r, &f), 1);
    CHECK(!fy_zmtp_frame_more(&f) && f.size == 1 && r.buf[2] == 'q');
    rx_drop(&r, 3);
    send_frame(r.fd, FY_ZMTP_FLAG_MORE, NULL, 0);
    send_frame(r.fd, 0, "a", 1);
    char buf[8];
    CHECK(zmq_recv(req, buf, sizeof buf, 0) == 1 && buf[0] == 'a');
    zmq_close(req);
    rx_fini(&r);
    close(lfd);
}

/* ---------------------------------------------------------------------------------------- */
/* (b) we connect to libzmq */
/* ---------------------------------------------------------------------------------------- */

static void *zbind(int type)
{
    void *s = zsock(type);
    CHECK(zmq_bind(s, "tcp://127.0.0.1:*") == 0);
    return s;
}

static void test_raw_push_to_libzmq_pull(void)
{
    void *pull = zbind(ZMQ_PULL);
    rx_t r;
    rx_init(&r, tcp_connect(zmq_port(pull)));
    peer_t p;
    CHECK(handshake(&r, 1, FERRY_PUSH, NULL, &p) == 1);
    CHECK(p.socket_type == FERRY_PULL);

    uint8_t *want = malloc(1u << 20), *got = malloc(1u << 20);
    CHECK(want && got);
    for (size_t i = 0; i < NSIZES; i++) {
        fill(want, sizes[i], (unsigned)(i + 100));
        send_frame(r.fd, 0, want, sizes[i]);
        int n = zmq_recv(pull, got, 1u << 20, 0);
        CHECK(n == (int)sizes[i]);
        CHECK(memcmp(got, want, sizes[i]) == 0);
    }
    /* a LONG header with a small size is legal and libzmq takes it */
    {
        uint8_t lf[9 + 3] = {0x02, 0, 0, 0, 0, 0, 0, 0, 3, 'x', 'y', 'z'};
        write_all(r.fd, lf, sizeof lf);
        CHECK(zmq_recv(pull, got, 16, 0) == 3 && memcmp(got, "xyz", 3) == 0);
    }
    /* multipart of three, including an empty middle frame */
    send_frame(r.fd, FY_ZMTP_FLAG_MORE, "one", 3);
    send_frame(r.fd, FY_ZMTP_FLAG_MORE, NULL, 0);
    fill(want, 256, 9);
    send_frame(r.fd, 0, want, 256);
    int more;
    size_t ml = sizeof more;
    CHECK(zmq_recv(pull, got, 16, 0) == 3 && memcmp(got, "one", 3) == 0);
    CHECK(zmq_getsockopt(pull, ZMQ_RCVMORE, &more, &ml) == 0 && more == 1);
    CHECK(zmq_recv(pull, got, 16, 0) == 0);
    CHECK(zmq_getsockopt(pull, ZMQ_RCVMORE, &more, &ml) == 0 && more == 1);
    CHECK(zmq_recv(pull, got, 1024, 0) == 256 && memcmp(got, want, 256) == 0);
    CHECK(zmq_getsockopt(pull, ZMQ_RCVMORE, &more, &ml) == 0 && more == 0);
    /* our PING gets libzmq's PONG echoing our context; unknown commands are ignored by it */
    uint8_t cmd[64];
    ssize_t n = fy_zmtp_command_encode(cmd, sizeof cmd, "FERRYTEST", "x", 1);
    CHECK(n > 0);
    write_all(r.fd, cmd, (size_t)n);
    n = fy_zmtp_ping_encode(cmd, sizeof cmd, 100, "ctx-123", 7);
    CHECK(n > 0);
    write_all(r.fd, cmd, (size_t)n);
    fy_zmtp_frame f;
    CHECK_RC(rx_frame(&r, &f), 1);
    fy_zmtp_command c;
    CHECK(fy_zmtp_frame_is_command(&f));
    CHECK_OK(fy_zmtp_command_decode(r.buf + f.header_len, (size_t)f.size, &c));
    CHECK(c.type == FY_ZMTP_CMD_PONG && c.arg_len == 7 && memcmp(c.arg, "ctx-123", 7) == 0);
    rx_drop(&r, f.header_len + (size_t)f.size);
    /* and the link still carries data after the unknown command */
    send_frame(r.fd, 0, "end", 3);
    CHECK(zmq_recv(pull, got, 16, 0) == 3 && memcmp(got, "end", 3) == 0);
    free(want);
    free(got);
    rx_fini(&r);
    zmq_close(pull);
}

static void test_raw_req_to_libzmq_rep(void)
{
    void *rep = zbind(ZMQ_REP);
    rx_t r;
    rx_init(&r, tcp_connect(zmq_port(rep)));
    peer_t p;
    CHECK(handshake(&r, 1, FERRY_REQ, "", &p) == 1);
    CHECK(p.socket_type == FERRY_REP);
    send_frame(r.fd, FY_ZMTP_FLAG_MORE, NULL, 0);
    send_frame(r.fd, 0, "ping", 4);
    char buf[16];
    CHECK(zmq_recv(rep, buf, sizeof buf, 0) == 4 && memcmp(buf, "ping", 4) == 0);
    CHECK(zmq_send(rep, "pong!", 5, 0) == 5);
    fy_zmtp_frame f;
    CHECK_RC(rx_data_frame(&r, &f), 1);
    CHECK(fy_zmtp_frame_more(&f) && f.size == 0);
    CHECK(r.buf[0] == 0x01 && r.buf[1] == 0x00);
    rx_drop(&r, 2);
    CHECK_RC(rx_data_frame(&r, &f), 1);
    CHECK(!fy_zmtp_frame_more(&f) && f.size == 5 && memcmp(r.buf + 2, "pong!", 5) == 0);
    rx_drop(&r, 7);
    rx_fini(&r);
    zmq_close(rep);
}

/*
 * Reads the next subscription from a libzmq SUB, reporting the form it came in
 * (1 = 3.1 command, 0 = 3.0 message).
 */
static int rx_subscription(rx_t *r, fy_zmtp_subscription *s, char *prefix, size_t cap)
{
    fy_zmtp_frame f;
    CHECK_RC(rx_data_frame(r, &f), 1);
    CHECK_RC(fy_zmtp_subscription_decode(&f, r->buf + f.header_len, s), 1);
    int form = fy_zmtp_frame_is_command(&f);
    CHECK(s->len < cap);
    if (s->len)
        memcpy(prefix, s->prefix, s->len);
    prefix[s->len] = 0;
    s->prefix = (const uint8_t *)prefix;
    rx_drop(r, f.header_len + (size_t)f.size);
    return form;
}

/* (b)+(c): a bound libzmq SUB, our raw PUB connects announcing 3.minor. */
static int sub_form_for(uint8_t minor)
{
    void *sub = zbind(ZMQ_SUB);
    CHECK(zmq_setsockopt(sub, ZMQ_SUBSCRIBE, "topic", 5) == 0);
    pump_sock = sub;
    rx_t r;
    rx_init(&r, tcp_connect(zmq_port(sub)));
    peer_t p;
    CHECK(handshake(&r, minor, FERRY_PUB, NULL, &p) == 1);
    CHECK(p.socket_type == FERRY_SUB);
    fy_zmtp_subscription s;
    char prefix[64];
    int form = rx_subscription(&r, &s, prefix, sizeof prefix);
    CHECK(s.subscribe == 1 && s.len == 5 && memcmp(prefix, "topic", 5) == 0);
    /* data for the subscription reaches the application, other topics are filtered */
    send_frame(r.fd, 0, "other", 5);
    send_frame(r.fd, 0, "topic-1", 7);
    char buf[16];
    CHECK(zmq_recv(sub, buf, sizeof buf, 0) == 7 && memcmp(buf, "topic-1", 7) == 0);
    /* cancel comes in the same form */
    CHECK(zmq_setsockopt(sub, ZMQ_UNSUBSCRIBE, "topic", 5) == 0);
    int cform = rx_subscription(&r, &s, prefix, sizeof prefix);
    CHECK(s.subscribe == 0 && s.len == 5 && memcmp(prefix, "topic", 5) == 0);
    CHECK(cform == form);
    pump_sock = NULL;
    rx_fini(&r);
    zmq_close(sub);
    return form;
}

/* (c) also with libzmq connecting to our raw PUB listener, as the brief describes it. */
static int sub_form_connecting(uint8_t minor)
{
    uint16_t port;
    int lfd = tcp_listener(&port);
    void *sub = zsock(ZMQ_SUB);
    CHECK(zmq_setsockopt(sub, ZMQ_SUBSCRIBE, "", 0) == 0);
    pump_sock = sub;
    char ep[64];
    snprintf(ep, sizeof ep, "tcp://127.0.0.1:%u", port);
    CHECK(zmq_connect(sub, ep) == 0);
    rx_t r;
    rx_init(&r, tcp_accept(lfd));
    peer_t p;
    CHECK(handshake(&r, minor, FERRY_PUB, NULL, &p) == 1);
    fy_zmtp_subscription s;
    char prefix[8];
    int form = rx_subscription(&r, &s, prefix, sizeof prefix);
    CHECK(s.subscribe == 1 && s.len == 0);
    pump_sock = NULL;
    zmq_close(sub);
    rx_fini(&r);
    close(lfd);
    return form;
}

static void test_subscription_forms(void)
{
    int f31 = sub_form_for(1);
    int f30 = sub_form_for(0);
    int c31 = sub_form_connecting(1);
    int c30 = sub_form_connecting(0);
    printf("libzmq %d.%d.%d SUB sends subscriptions as %s to a 3.1 peer, as %s "
           "to a 3.0 peer\n",
           ZMQ_VERSION_MAJOR, ZMQ_VERSION_MINOR, ZMQ_VERSION_PATCH,
           f31 ? "SUBSCRIBE/CANCEL commands" : "0x01/0x00 messages",
           f30 ? "SUBSCRIBE/CANCEL commands" : "0x01/0x00 messages");
    /* A 3.0 peer cannot understand the commands: libzmq must use messages. */
    CHECK(f30 == 0 && c30 == 0);
    CHECK(f31 == c31);
#if ZMQ_VERSION_MAJOR == 4 && ZMQ_VERSION_MINOR == 3 && ZMQ_VERSION_PATCH == 4
    /* What libzmq 4.3.4 actually does (recorded in docs/wire.md). */
    CHECK(f31 == 1);
#endif
}

/*
 * libzmq XSUB connecting to our raw XPUB: subscriptions the application sends as 0x01/0x00
 * messages reach us in the peer's form, and other upstream messages pass as plain messages that
 * fy_zmtp_subscription_decode reports as "not a subscription".
 */
static int xsub_upstream(uint8_t minor)
{
    uint16_t port;
    int lfd = tcp_listener(&port);
    void *xsub = zsock(ZMQ_XSUB);
    pump_sock = xsub;
    char ep[64];
    snprintf(ep, sizeof ep, "tcp://127.0.0.1:%u", port);
    CHECK(zmq_connect(xsub, ep) == 0);
    rx_t r;
    rx_init(&r, tcp_accept(lfd));
    peer_t p;
    CHECK(handshake(&r, minor, FERRY_XPUB, NULL, &p) == 1);
    CHECK(p.socket_type == FERRY_XSUB);
    CHECK(zmq_send(xsub, "\x01news", 5, 0) == 5);
    CHECK(zmq_send(xsub, "hello", 5, 0) == 5);
    CHECK(zmq_send(xsub, "\x00news", 5, 0) == 5);
    fy_zmtp_subscription s;
    char prefix[16];
    int form = rx_subscription(&r, &s, prefix, sizeof prefix);
    CHECK(s.subscribe == 1 && s.len == 4 && memcmp(prefix, "news", 4) == 0);
    CHECK(minor >= 1 || form == 0);
    fy_zmtp_frame f;
    CHECK_RC(rx_data_frame(&r, &f), 1);
    CHECK(!fy_zmtp_frame_is_command(&f) && f.size == 5 && memcmp(r.buf + 2, "hello", 5) == 0);
    CHECK_RC(fy_zmtp_subscription_decode(&f, r.buf + f.header_len, &s), 0);
    rx_drop(&r, 7);
    int cform = rx_subscription(&r, &s, prefix, sizeof prefix);
    CHECK(s.subscribe == 0 && s.len == 4 && cform == form);
    pump_sock = NULL;
    zmq_close(xsub);
    rx_fini(&r);
    close(lfd);
    return form;
}

static void test_xsub_upstream(void)
{
    int f31 = xsub_upstream(1);
    int f30 = xsub_upstream(0);
    printf("libzmq %d.%d.%d XSUB forwards application subscriptions as %s to a 3.1 peer, as %s "
           "to a 3.0 peer\n",
           ZMQ_VERSION_MAJOR, ZMQ_VERSION_MINOR, ZMQ_VERSION_PATCH,
           f31 ? "SUBSCRIBE/CANCEL commands" : "0x01/0x00 messages",
           f30 ? "SUBSCRIBE/CANCEL commands" : "0x01/0x00 messages");
#if ZMQ_VERSION_MAJOR == 4 && ZMQ_VERSION_MINOR == 3 && ZMQ_VERSION_PATCH == 4
    /* Unlike SUB's setsockopt path, 4.3.4's XSUB sends what the application wrote: messages. */
    CHECK(f31 == 0);
#endif
}

/* ---------------------------------------------------------------------------------------- */
/* (d) socket-type validation matches libzmq */
/* ---------------------------------------------------------------------------------------- */

static void test_type_matrix(void)
{
    static const int ztypes[] = {ZMQ_PAIR,   ZMQ_PUB,  ZMQ_SUB,  ZMQ_REQ,  ZMQ_REP, ZMQ_DEALER,
                                 ZMQ_ROUTER, ZMQ_PULL, ZMQ_PUSH, ZMQ_XPUB, ZMQ_XSUB};
    int checked = 0;
    for (int bound = 0; bound <= FERRY_XSUB; bound++) {
        CHECK(ztypes[bound] == bound); /* ferry numbers are libzmq's */
        void *s = zbind(bound);
        uint16_t port = zmq_port(s);
        for (int ours = 0; ours <= FERRY_XSUB; ours++) {
            rx_t r;
            rx_init(&r, tcp_connect(port));
            uint8_t out[FY_ZMTP_GREETING_SIZE + 128];
            CHECK_RC(fy_zmtp_greeting_encode(out, 1, "NULL", 0), 64);
            ssize_t n = fy_zmtp_ready_encode(out + 64, sizeof out - 64, ours, NULL, 0, NULL);
            CHECK(n > 0);
            write_all(r.fd, out, 64 + (size_t)n);
            /*
             * A rejecting libzmq may close (even reset) the connection right after our READY,
             * so its greeting is read tolerantly here: EOF at any point means "rejected".
             */
            fy_zmtp_greeting_decoder d;
            fy_zmtp_greeting_decoder_init(&d);
            int grc = 0;
            for (;;) {
                size_t used = 0;
                grc = fy_zmtp_greeting_feed(&d, r.buf, r.len, &used);
                CHECK(grc >= 0);
                rx_drop(&r, used);
                if (grc == 1 || rx_read(&r, 0, WAIT_MS) != 1)
                    break;
            }
            fy_zmtp_frame f;
            int accepted = 0;
            if (grc == 1 && rx_frame(&r, &f) == 1) {
                fy_zmtp_command c;
                CHECK_OK(fy_zmtp_command_decode(r.buf + f.header_len, (size_t)f.size, &c));
                accepted = c.type == FY_ZMTP_CMD_READY;
            }
            int want = fy_zmtp_socket_types_compatible(ours, bound);
            if (accepted != want) {
                fprintf(stderr, "libzmq %s vs our %s: libzmq %s, table says %d\n",
                        fy_zmtp_socket_type_name(bound), fy_zmtp_socket_type_name(ours),
                        accepted ? "accepts" : "rejects", want);
                exit(1);
            }
            rx_fini(&r);
            checked++;
        }
        zmq_close(s);
    }
    printf("socket-type table agrees with libzmq on %d pairs\n", checked);
}

int main(void)
{
    tu_deadline(100);
    ctx = zmq_ctx_new();
    CHECK(ctx != NULL);
    test_libzmq_push_to_raw_pull();
    test_libzmq_dealer_identity_and_ping();
    test_libzmq_req_envelope();
    test_raw_push_to_libzmq_pull();
    test_raw_req_to_libzmq_rep();
    test_subscription_forms();
    test_xsub_upstream();
    test_type_matrix();
    zmq_ctx_term(ctx);
    printf("test_interop_wire: ok\n");
    return 0;
}
