/*
 * test_interop_options.c - against the real libzmq 4.3.4, the pattern behaviour that shows on the
 * wire: a ferry SUB/XSUB whose owner makes no call after subscribing still has its subscription
 * reach a libzmq XPUB (ferry binding and connecting, tcp:// and ipc://); REQ_CORRELATE's request
 * id frame as a libzmq ROUTER sees it, round trips with a libzmq REP, and a libzmq correlating
 * REQ served by a ferry ROUTER; XPUB_MANUAL and XPUB_WELCOME_MSG (on an XPUB and on a PUB) seen by
 * a libzmq SUB; and ROUTER_HANDOVER between two libzmq DEALERs using one routing id (what the
 * first had sent and the ROUTER had not read is still delivered, in order, multipart whole).
 */
#include "interop_patterns.h"

#define IO_TIMEOUT_MS 10000

static void *zctx;

static void *zsock(int type)
{
    void *z = zmq_socket(zctx, type);
    CHECK(z != NULL);
    int v = IO_TIMEOUT_MS;
    CHECK(zmq_setsockopt(z, ZMQ_RCVTIMEO, &v, sizeof v) == 0);
    CHECK(zmq_setsockopt(z, ZMQ_SNDTIMEO, &v, sizeof v) == 0);
    v = 0;
    CHECK(zmq_setsockopt(z, ZMQ_LINGER, &v, sizeof v) == 0);
    return z;
}

static void make_url(char *url, size_t cap, bool tcp)
{
    if (tcp)
        snprintf(url, cap, "tcp://127.0.0.1:%d", tu_free_port());
    else
        tu_ipc_url(url, cap, "io");
}

/* Receives one libzmq frame and checks its bytes and MORE flag. */
static void zexpect(void *z, const void *want, size_t len, bool more)
{
    char buf[256];
    int n = zmq_recv(z, buf, sizeof buf, 0);
    if (n < 0) {
        fprintf(stderr, "libzmq recv (want %zu bytes): %s\n", len, zmq_strerror(zmq_errno()));
        exit(1);
    }
    int m = 0;
    size_t ml = sizeof m;
    CHECK(zmq_getsockopt(z, ZMQ_RCVMORE, &m, &ml) == 0);
    if ((size_t)n != len || memcmp(buf, want, len) != 0 || (m != 0) != more) {
        fprintf(stderr, "libzmq got %d bytes (more %d), want %zu (more %d)\n", n, m, len,
                (int)more);
        exit(1);
    }
}

static void zsend(void *z, const void *buf, size_t len, bool more)
{
    CHECK(zmq_send(z, buf, len, more ? ZMQ_SNDMORE : 0) == (int)len);
}

/* ---- a ferry SUB/XSUB that makes no call: its subscription still reaches libzmq ---- */

static void case_idle_sub(int subt, bool tcp, bool ferry_binds)
{
    printf("  idle ferry %s, %s, ferry %s\n", subt == FERRY_SUB ? "SUB" : "XSUB",
           tcp ? "tcp" : "ipc", ferry_binds ? "binds" : "connects");
    char url[300];
    make_url(url, sizeof url, tcp);
    ferry_socket *sub = tu_open_sock(subt);
    CHECK_OK(ferry_socket_setopt_int(sub, FERRY_OPT_RECONNECT_IVL, 10));
    CHECK_OK(ferry_socket_subscribe(sub, "a", 1));
    void *x = zsock(ZMQ_XPUB);
    int one = 1;
    CHECK(zmq_setsockopt(x, ZMQ_XPUB_VERBOSE, &one, sizeof one) == 0);
    if (ferry_binds) {
        CHECK_OK(ferry_socket_bind(sub, url));
        CHECK(zmq_connect(x, url) == 0);
    } else {
        CHECK_OK(ferry_socket_connect(sub, url));
        CHECK(zmq_bind(x, url) == 0);
    }
    /* The ferry owner makes no call from here until libzmq has seen the subscription. */
    zexpect(x, "\1a", 2, false);
    zsend(x, "b-skip", 6, false);
    zsend(x, "a-1", 3, false);
    tu_recv_str(sub, "a-1", false);
    /* The attach on that call sent nothing again (a verbose XPUB would report a duplicate). */
    CHECK_OK(ferry_socket_subscribe(sub, "z", 1));
    zexpect(x, "\1z", 2, false);
    ferry_socket_close(sub);
    zmq_close(x);
}

/* ---- REQ_CORRELATE ---- */

static void case_correlate(bool tcp)
{
    printf("  REQ_CORRELATE, %s\n", tcp ? "tcp" : "ipc");
    char url[300];
    /* ferry REQ -> libzmq ROUTER: [routing id][request id][empty][body]. */
    make_url(url, sizeof url, tcp);
    ferry_socket *req = tu_open_sock(FERRY_REQ);
    CHECK_OK(ferry_socket_setopt_int(req, FERRY_OPT_REQ_CORRELATE, 1));
    CHECK_OK(ferry_socket_setopt_bytes(req, FERRY_OPT_ROUTING_ID, "fq", 2));
    void *router = zsock(ZMQ_ROUTER);
    CHECK(zmq_bind(router, url) == 0);
    CHECK_OK(ferry_socket_connect(req, url));
    uint32_t ids[2];
    for (int i = 0; i < 2; i++) {
        tu_send_str(req, "ask", 0);
        zexpect(router, "fq", 2, true);
        int n = zmq_recv(router, &ids[i], sizeof ids[i], 0);
        CHECK(n == 4);
        zexpect(router, "", 0, true);
        zexpect(router, "ask", 3, false);
        if (i == 0) {
            uint32_t stale = ids[0] - 1; /* a reply to some other request: dropped */
            zsend(router, "fq", 2, true);
            zsend(router, &stale, 4, true);
            zsend(router, "", 0, true);
            zsend(router, "stale", 5, false);
        }
        zsend(router, "fq", 2, true);
        zsend(router, &ids[i], 4, true);
        zsend(router, "", 0, true);
        zsend(router, "answer", 6, false);
        tu_recv_str(req, "answer", false);
    }
    CHECK(ids[1] == ids[0] + 1);
    ferry_socket_close(req);
    zmq_close(router);

    /* ferry REQ (relaxed + correlate) -> libzmq REP, which echoes the id as envelope. */
    make_url(url, sizeof url, tcp);
    req = tu_open_sock(FERRY_REQ);
    CHECK_OK(ferry_socket_setopt_int(req, FERRY_OPT_REQ_CORRELATE, 1));
    CHECK_OK(ferry_socket_setopt_int(req, FERRY_OPT_REQ_RELAXED, 1));
    void *rep = zsock(ZMQ_REP);
    CHECK(zmq_bind(rep, url) == 0);
    CHECK_OK(ferry_socket_connect(req, url));
    tu_send_str(req, "q1", 0);
    zexpect(rep, "q1", 2, false);
    tu_send_str(req, "q2", 0); /* abandons q1 */
    zsend(rep, "r1", 2, false);
    zexpect(rep, "q2", 2, false);
    zsend(rep, "r2", 2, false);
    tu_recv_str(req, "r2", false); /* r1 carried q1's id */
    ferry_socket_close(req);
    zmq_close(rep);

    /* libzmq REQ with ZMQ_REQ_CORRELATE -> ferry ROUTER (and ferry REP echoing it). */
    for (int k = 0; k < 2; k++) {
        make_url(url, sizeof url, tcp);
        ferry_socket *srv = tu_open_sock(k ? FERRY_REP : FERRY_ROUTER);
        CHECK_OK(ferry_socket_bind(srv, url));
        void *zreq = zsock(ZMQ_REQ);
        int one = 1;
        CHECK(zmq_setsockopt(zreq, ZMQ_REQ_CORRELATE, &one, sizeof one) == 0);
        CHECK(zmq_setsockopt(zreq, ZMQ_ROUTING_ID, "zq", 2) == 0);
        CHECK(zmq_connect(zreq, url) == 0);
        zsend(zreq, "hi", 2, false);
        if (k == 0) {
            tu_recv_str(srv, "zq", true);
            uint32_t id;
            int more = -1;
            CHECK(ferry_socket_recv(srv, &id, sizeof id, 0, &more) == 4 && more == 1);
            tu_recv_str(srv, "", true);
            tu_recv_str(srv, "hi", false);
            CHECK_OK(ferry_socket_send(srv, "zq", 2, FERRY_MORE));
            CHECK_OK(ferry_socket_send(srv, &id, sizeof id, FERRY_MORE));
            CHECK_OK(ferry_socket_send(srv, "", 0, FERRY_MORE));
        } else {
            tu_recv_str(srv, "hi", false);
        }
        tu_send_str(srv, "ho", 0);
        zexpect(zreq, "ho", 2, false);
        ferry_socket_close(srv);
        zmq_close(zreq);
    }
}

/* ---- XPUB_MANUAL and XPUB_WELCOME_MSG with a libzmq SUB ---- */

static void case_xpub_options(bool tcp)
{
    printf("  XPUB_MANUAL, XPUB_WELCOME_MSG (XPUB and PUB), %s\n", tcp ? "tcp" : "ipc");
    char url[300];
    make_url(url, sizeof url, tcp);
    ferry_socket *x = tu_open_sock(FERRY_XPUB);
    CHECK_OK(ferry_socket_setopt_int(x, FERRY_OPT_XPUB_MANUAL, 1));
    CHECK_OK(ferry_socket_setopt_bytes(x, FERRY_OPT_XPUB_WELCOME_MSG, "Welcome", 7));
    CHECK_OK(ferry_socket_bind(x, url));
    void *sub = zsock(ZMQ_SUB);
    CHECK(zmq_setsockopt(sub, ZMQ_SUBSCRIBE, "W", 1) == 0);
    CHECK(zmq_connect(sub, url) == 0);
    /* The welcome is sent at link-up (libzmq's SUB filters it like any message). */
    zexpect(sub, "Welcome", 7, false);
    tu_expect_sub(x, true, "W");
    CHECK(zmq_setsockopt(sub, ZMQ_SUBSCRIBE, "a", 1) == 0);
    tu_expect_sub(x, true, "a");
    tu_send_str(x, "a1", 0); /* not applied yet: not sent */
    CHECK_OK(ferry_socket_subscribe(x, "a", 1));
    tu_send_str(x, "a2", 0);
    zexpect(sub, "a2", 2, false);
    CHECK_OK(ferry_socket_unsubscribe(x, "a", 1));
    tu_send_str(x, "a3", 0);
    tu_send_str(x, "W2", 0); /* "W" was never applied either */
    CHECK_OK(ferry_socket_subscribe(x, "W", 1));
    tu_send_str(x, "W3", 0);
    zexpect(sub, "W3", 2, false);
    ferry_socket_close(x);
    zmq_close(sub);

    /* A PUB takes XPUB_WELCOME_MSG too (as libzmq's PUB does). */
    make_url(url, sizeof url, tcp);
    ferry_socket *p = tu_open_sock(FERRY_PUB);
    CHECK_OK(ferry_socket_setopt_bytes(p, FERRY_OPT_XPUB_WELCOME_MSG, "Hello", 5));
    CHECK_OK(ferry_socket_bind(p, url));
    sub = zsock(ZMQ_SUB);
    CHECK(zmq_setsockopt(sub, ZMQ_SUBSCRIBE, "", 0) == 0);
    CHECK(zmq_connect(sub, url) == 0);
    zexpect(sub, "Hello", 5, false);
    ferry_socket_close(p);
    zmq_close(sub);
}

/* ---- ROUTER_HANDOVER between two libzmq DEALERs with one routing id ---- */

/* Message i of libzmq DEALER `who` (0 or 1): frames "<who>:<i>:<f>", three of them when
 * i % 4 == 1, else one. */
static int ho_frames(int i)
{
    return i % 4 == 1 ? 3 : 1;
}

static void ho_send(void *z, int who, int i)
{
    for (int f = 0, nf = ho_frames(i); f < nf; f++) {
        char b[32];
        int n = snprintf(b, sizeof b, "%d:%d:%d", who, i, f);
        zsend(z, b, (size_t)n, f + 1 < nf);
    }
}

/* One whole message from the ferry ROUTER: id "same", then the next numbered message of one of
 * the two DEALERs, complete and not interleaved with another. */
static void ho_recv(ferry_socket *r, int next[2])
{
    tu_recv_str(r, "same", true);
    int who = -1, i = -1;
    for (int f = 0;; f++) {
        char b[32];
        int more = -1;
        ssize_t n = ferry_socket_recv(r, b, sizeof b - 1, 0, &more);
        CHECK(n > 0 && n < (ssize_t)sizeof b);
        b[n] = 0;
        int w, mi, mf;
        CHECK(sscanf(b, "%d:%d:%d", &w, &mi, &mf) == 3 && (w == 0 || w == 1));
        if (f == 0) {
            who = w;
            i = mi;
            if (i != next[who]) {
                fprintf(stderr, "got dealer %d message %d, want %d\n", w, i, next[who]);
                exit(1);
            }
        }
        CHECK(w == who && mi == i && mf == f && more == (f + 1 < ho_frames(i)));
        if (!more)
            break;
    }
    next[who]++;
}

/*
 * The second DEALER takes the id over; everything the first one sent and the ROUTER had not
 * read yet is still delivered (ferry's rule: libzmq's own ROUTER drops it). The first DEALER
 * lives in its own context, terminated with LINGER -1 before the second connects, so all it sent
 * is in the ROUTER's kernel buffer at the hand-over.
 */
static void case_handover(bool tcp)
{
    printf("  ROUTER_HANDOVER, %s\n", tcp ? "tcp" : "ipc");
    enum { N0 = 30, N1 = 8 };
    char url[300];
    make_url(url, sizeof url, tcp);
    ferry_socket *r = tu_open_sock(FERRY_ROUTER);
    CHECK_OK(ferry_socket_setopt_int(r, FERRY_OPT_ROUTER_HANDOVER, 1));
    CHECK_OK(ferry_socket_bind(r, url));
    void *ctx0 = zmq_ctx_new();
    CHECK(ctx0 != NULL);
    void *d[2];
    for (int i = 0; i < 2; i++) {
        d[i] = i ? zsock(ZMQ_DEALER) : zmq_socket(ctx0, ZMQ_DEALER);
        CHECK(d[i] != NULL);
        CHECK(zmq_setsockopt(d[i], ZMQ_ROUTING_ID, "same", 4) == 0);
        int ivl = 60000; /* the replaced one must not come back during the test */
        CHECK(zmq_setsockopt(d[i], ZMQ_RECONNECT_IVL, &ivl, sizeof ivl) == 0);
    }
    int linger = -1;
    CHECK(zmq_setsockopt(d[0], ZMQ_LINGER, &linger, sizeof linger) == 0);
    CHECK(zmq_connect(d[0], url) == 0);
    zsend(d[0], "one", 3, false);
    tu_recv_str(r, "same", true);
    tu_recv_str(r, "one", false);
    for (int i = 0; i < N0; i++)
        ho_send(d[0], 0, i);
    CHECK(zmq_close(d[0]) == 0);
    CHECK(zmq_ctx_term(ctx0) == 0); /* returns once d[0] handed everything to the kernel */
    tu_wait_peers(r, 0);            /* gone, its messages unread */
    CHECK(zmq_connect(d[1], url) == 0);
    tu_wait_peers(r, 1); /* the newcomer took "same" over */
    for (int i = 0; i < N1; i++)
        ho_send(d[1], 1, i);
    int next[2] = {0, 0};
    while (next[0] < N0 || next[1] < N1)
        ho_recv(r, next);
    CHECK_OK(ferry_socket_send(r, "same", 4, FERRY_MORE));
    tu_send_str(r, "back", 0);
    zexpect(d[1], "back", 4, false);
    ferry_socket_close(r);
    zmq_close(d[1]);
}

int main(void)
{
    tu_deadline(100);
    setvbuf(stdout, NULL, _IOLBF, 0);
    zctx = zmq_ctx_new();
    CHECK(zctx != NULL);
    for (int t = 0; t < 2; t++) {
        for (int b = 0; b < 2; b++) {
            case_idle_sub(FERRY_SUB, t == 1, b == 1);
            case_idle_sub(FERRY_XSUB, t == 1, b == 1);
        }
        case_correlate(t == 1);
        case_xpub_options(t == 1);
        case_handover(t == 1);
    }
    zmq_ctx_term(zctx);
    printf("test_interop_options: ok\n");
    return 0;
}
