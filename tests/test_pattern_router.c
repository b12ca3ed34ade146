/*
 * test_pattern_router.c - ROUTER sending rules: by default a message to an unknown id or to a
 * peer at SNDHWM is dropped silently (the HWM case counted in drops_hwm); with
 * FERRY_OPT_ROUTER_MANDATORY the routing-id frame's send fails instead (FERRY_EHOSTUNREACH for an
 * unknown or departed peer, FERRY_EAGAIN for a full one, nothing taken, nothing counted), as
 * libzmq's ZMQ_ROUTER_MANDATORY. Also the option's validation, and peers leaving in the middle of
 * a message: a ROUTER's next receive starts a new message with its id frame; a REP does not route
 * the next request's reply with the cut one's envelope; a SUB and a REQ do not swallow the next
 * message as the rest of one they were discarding.
 */
#include "testutil.h"

#include "ferry/ferry.h"

#include <stdbool.h>
#include <string.h>

static void test_option(void)
{
    ferry_socket *r = tu_open_sock(FERRY_ROUTER), *d = tu_open_sock(FERRY_DEALER);
    int64_t v = -1;
    CHECK_OK(ferry_socket_getopt_int(r, FERRY_OPT_ROUTER_MANDATORY, &v));
    CHECK(v == 0);
    CHECK_RC(ferry_socket_setopt_int(r, FERRY_OPT_ROUTER_MANDATORY, 2), FERRY_EINVAL);
    CHECK_OK(ferry_socket_setopt_int(r, FERRY_OPT_ROUTER_MANDATORY, 1));
    CHECK_OK(ferry_socket_getopt_int(r, FERRY_OPT_ROUTER_MANDATORY, &v));
    CHECK(v == 1);
    int zero = 0;
    CHECK_OK(ferry_socket_setopt_bytes(r, FERRY_OPT_ROUTER_MANDATORY, &zero, sizeof zero));
    CHECK_OK(ferry_socket_getopt_int(r, FERRY_OPT_ROUTER_MANDATORY, &v));
    CHECK(v == 0);
    CHECK_RC(ferry_socket_setopt_bytes(r, FERRY_OPT_ROUTER_MANDATORY, "x", 1), FERRY_EINVAL);
    /* The bytes forms of a pattern's int option go through the core's int decoding/encoding. */
    int64_t one = 1, got = -1;
    size_t glen = sizeof got;
    CHECK_OK(ferry_socket_setopt_bytes(r, FERRY_OPT_ROUTER_MANDATORY, &one, sizeof one));
    CHECK_OK(ferry_socket_getopt_bytes(r, FERRY_OPT_ROUTER_MANDATORY, &got, &glen));
    CHECK(glen == sizeof got && got == 1);
    glen = 4;
    CHECK_RC(ferry_socket_getopt_bytes(r, FERRY_OPT_ROUTER_MANDATORY, &got, &glen), FERRY_EMSGSIZE);
    CHECK(glen == sizeof got);
    /* Not a DEALER option; unknown options stay EINVAL on a ROUTER. */
    CHECK_RC(ferry_socket_setopt_int(d, FERRY_OPT_ROUTER_MANDATORY, 1), FERRY_EINVAL);
    CHECK_RC(ferry_socket_setopt_int(r, 12345, 1), FERRY_EINVAL);
    ferry_socket_close(r);
    ferry_socket_close(d);
}

static void test_unknown(bool mandatory)
{
    char url[300];
    snprintf(url, sizeof url, "ipc://%s/%s", tu_tmpdir(), tu_unique("rt"));
    ferry_socket *r = tu_open_sock(FERRY_ROUTER), *d = tu_open_sock(FERRY_DEALER);
    CHECK_OK(ferry_socket_setopt_int(r, FERRY_OPT_ROUTER_MANDATORY, mandatory));
    CHECK_OK(ferry_socket_setopt_bytes(d, FERRY_OPT_ROUTING_ID, "peer", 4));
    CHECK_OK(ferry_socket_bind(r, url));
    CHECK_OK(ferry_socket_connect(d, url));
    tu_wait_peers(r, 1);
    /* Unknown id. */
    int rc = ferry_socket_send(r, "nobody", 6, FERRY_MORE);
    if (mandatory) {
        CHECK_RC(rc, FERRY_EHOSTUNREACH);
        CHECK_RC(ferry_socket_send(r, "nobody", 6, FERRY_MORE | FERRY_DONTWAIT),
                 FERRY_EHOSTUNREACH);
    } else {
        CHECK_OK(rc);
        CHECK_OK(ferry_socket_send(r, "lost", 4, 0));
    }
    /* The known one works either way, and nothing of the failed message leaked into it. */
    CHECK_OK(ferry_socket_send(r, "peer", 4, FERRY_MORE));
    CHECK_OK(ferry_socket_send(r, "hello", 5, 0));
    char buf[16];
    CHECK_RC(ferry_socket_recv(d, buf, sizeof buf, 0, NULL), 5);
    CHECK(memcmp(buf, "hello", 5) == 0);
    CHECK_RC(ferry_socket_recv(d, buf, sizeof buf, FERRY_DONTWAIT, NULL), FERRY_EAGAIN);
    /* A departed peer is unknown too. */
    ferry_socket_close(d);
    tu_wait_peers(r, 0);
    rc = ferry_socket_send(r, "peer", 4, FERRY_MORE);
    if (mandatory) {
        CHECK_RC(rc, FERRY_EHOSTUNREACH);
    } else {
        CHECK_OK(rc);
        CHECK_OK(ferry_socket_send(r, "gone", 4, 0));
    }
    ferry_stats st;
    CHECK_OK(ferry_socket_stats(r, &st));
    CHECK(st.drops_hwm == 0); /* unknown ids are not HWM drops */
    ferry_socket_close(r);
}

/* A peer that does not read: at SNDHWM the default drops and counts, mandatory refuses. */
static void test_full(bool mandatory)
{
    char url[300];
    snprintf(url, sizeof url, "ipc://%s/%s", tu_tmpdir(), tu_unique("rt"));
    ferry_socket *r = tu_open_sock(FERRY_ROUTER), *d = tu_open_sock(FERRY_DEALER);
    CHECK_OK(ferry_socket_setopt_int(r, FERRY_OPT_ROUTER_MANDATORY, mandatory));
    CHECK_OK(ferry_socket_setopt_int(r, FERRY_OPT_SNDHWM, 2));
    CHECK_OK(ferry_socket_setopt_int(d, FERRY_OPT_RCVHWM, 2));
    CHECK_OK(ferry_socket_setopt_int(r, FERRY_OPT_SHM_UPGRADE, 0));
    CHECK_OK(ferry_socket_setopt_int(d, FERRY_OPT_SHM_UPGRADE, 0));
    CHECK_OK(ferry_socket_setopt_bytes(d, FERRY_OPT_ROUTING_ID, "slow", 4));
    CHECK_OK(ferry_socket_bind(r, url));
    CHECK_OK(ferry_socket_connect(d, url));
    tu_wait_peers(r, 1);
    static char big[64 * 1024];
    uint64_t sent = 0, refused = 0;
    for (int i = 0; i < 4000 && refused == 0; i++) {
        int rc = ferry_socket_send(r, "slow", 4, FERRY_MORE | FERRY_DONTWAIT);
        if (rc == FERRY_EAGAIN) {
            refused++;
            break;
        }
        CHECK_OK(rc);
        CHECK_OK(ferry_socket_send(r, big, sizeof big, FERRY_DONTWAIT));
        sent++;
        ferry_stats st;
        CHECK_OK(ferry_socket_stats(r, &st));
        if (!mandatory && st.drops_hwm > 0)
            break;
    }
    ferry_stats st;
    CHECK_OK(ferry_socket_stats(r, &st));
    if (mandatory) {
        CHECK(refused == 1 && st.drops_hwm == 0);
        /* A timed send waits, then gives up the same way. The dealer's control thread may read
         * up to 64 KiB ahead while its owner does not receive (to answer PINGs), which can make
         * room for one more message during the wait: refill until the wait ends in EAGAIN. */
        CHECK_OK(ferry_socket_setopt_int(r, FERRY_OPT_SNDTIMEO, 20));
        int rc = 0;
        for (int i = 0; i < 100 && (rc = ferry_socket_send(r, "slow", 4, FERRY_MORE)) == 0; i++) {
            CHECK_OK(ferry_socket_send(r, big, sizeof big, FERRY_DONTWAIT));
            sent++;
        }
        CHECK_RC(rc, FERRY_EAGAIN);
        CHECK_OK(ferry_socket_stats(r, &st));
        CHECK(st.drops_hwm == 0);
    } else {
        CHECK(refused == 0 && st.drops_hwm == 1);
    }
    /* Whatever was accepted (and not dropped) arrives whole. */
    uint64_t got = 0;
    char *buf = malloc(sizeof big);
    CHECK(buf);
    while (ferry_socket_recv(d, buf, sizeof big,
                             got < sent - (mandatory ? 0 : 1) ? 0 : FERRY_DONTWAIT,
                             NULL) == (ssize_t)sizeof big)
        got++;
    CHECK(got == (mandatory ? sent : sent - 1));
    free(buf);
    ferry_socket_close(d);
    ferry_socket_close(r);
}

/*
 * A sender that leaves in the middle of a message the application is reading: the next receive
 * starts a new message with its id frame (docs/sockets.md), never another peer's frames as the
 * rest of the cut one. Over inproc:// the frames are in the ROUTER's ring when send returns.
 */
static void test_cut_message(void)
{
    char url[64];
    snprintf(url, sizeof url, "inproc://%s", tu_unique("cut"));
    ferry_socket *r = tu_open_sock(FERRY_ROUTER), *d1 = tu_open_sock(FERRY_DEALER),
                 *d2 = tu_open_sock(FERRY_DEALER);
    CHECK_OK(ferry_socket_setopt_bytes(d1, FERRY_OPT_ROUTING_ID, "d1", 2));
    CHECK_OK(ferry_socket_setopt_bytes(d2, FERRY_OPT_ROUTING_ID, "d2", 2));
    CHECK_OK(ferry_socket_bind(r, url));
    CHECK_OK(ferry_socket_connect(d1, url));
    tu_send_str(d1, "a0", FERRY_MORE);
    tu_send_str(d1, "a1", FERRY_MORE);
    tu_recv_str(r, "d1", true);
    tu_recv_str(r, "a0", true);
    /* d2's whole message waits while d1 leaves with its message unfinished. */
    CHECK_OK(ferry_socket_connect(d2, url));
    tu_send_str(d2, "b0", FERRY_MORE);
    tu_send_str(d2, "b1", 0);
    tu_recv_str(r, "a1", true); /* what d1 sent is delivered */
    ferry_socket_close(d1);
    tu_recv_str(r, "d2", true); /* a new message, not "b0" as a third frame of d1's */
    tu_recv_str(r, "b0", true);
    tu_recv_str(r, "b1", false);
    ferry_socket_close(d2);
    ferry_socket_close(r);
}

/* inproc:// URL, and a socket connected to it whose link the other side attached (peers). */
static void inproc_url(char *url, size_t cap, const char *tag)
{
    snprintf(url, cap, "inproc://%s", tu_unique(tag));
}

/*
 * REP: a requester leaves in the middle of its request's envelope (no delimiter yet) while
 * another request waits. The fair queue moves on within one receive; the new request must not
 * inherit the cut one's envelope: the reply goes to the requester that asked.
 */
static void test_cut_rep(void)
{
    char url[64];
    inproc_url(url, sizeof url, "cutrep");
    ferry_socket *rep = tu_open_sock(FERRY_REP), *a = tu_open_sock(FERRY_DEALER),
                 *b = tu_open_sock(FERRY_REQ);
    CHECK_OK(ferry_socket_bind(rep, url));
    CHECK_OK(ferry_socket_connect(a, url));
    tu_wait_peers(rep, 1); /* a is the REP's first pipe: read first */
    tu_send_str(a, "hop", FERRY_MORE);
    ferry_socket_close(a); /* its rest never comes */
    tu_wait_peers(rep, 0); /* seen gone, the frame still unread */
    CHECK_OK(ferry_socket_connect(b, url));
    tu_wait_peers(rep, 1);
    tu_send_str(b, "question", 0);
    tu_recv_str(rep, "question", false);
    tu_send_str(rep, "answer", 0);
    tu_recv_str(b, "answer", false); /* not routed to the vanished requester */
    ferry_socket_close(b);
    ferry_socket_close(rep);
}

/*
 * SUB: a publisher leaves in the middle of a message the SUB is discarding (it stopped matching);
 * the next publisher's message must be filtered as a message of its own, not swallowed as the
 * rest of the discarded one.
 */
static void test_cut_sub(void)
{
    char url[64];
    inproc_url(url, sizeof url, "cutsub");
    ferry_socket *sub = tu_open_sock(FERRY_SUB), *a = tu_open_sock(FERRY_PUB),
                 *b = tu_open_sock(FERRY_PUB);
    CHECK_OK(ferry_socket_subscribe(sub, "", 0));
    CHECK_OK(ferry_socket_bind(sub, url));
    CHECK_OK(ferry_socket_connect(a, url));
    tu_wait_peers(sub, 1); /* a is the SUB's first pipe: read first */
    CHECK_OK(ferry_socket_connect(b, url));
    tu_wait_peers(sub, 2);
    tu_send_str(a, "zz-a0", FERRY_MORE); /* a's first send applies "" (inproc: in the ring now) */
    ferry_socket_close(a);
    /* The SUB stops wanting "zz"; b's first send applies the change before publishing. */
    CHECK_OK(ferry_socket_unsubscribe(sub, "", 0));
    CHECK_OK(ferry_socket_subscribe(sub, "mm", 2));
    tu_send_str(b, "mm-b0", 0);
    tu_recv_str(sub, "mm-b0", false);
    ferry_socket_close(b);
    ferry_socket_close(sub);
}

/*
 * REQ: while the reply is due, another peer's stray message is being discarded when that peer
 * leaves mid-message; the real reply (read next, in the same receive) must not be swallowed as
 * the rest of the stray one.
 */
static void test_cut_req(void)
{
    char ux[64], uy[64];
    inproc_url(ux, sizeof ux, "cutx");
    inproc_url(uy, sizeof uy, "cuty");
    ferry_socket *req = tu_open_sock(FERRY_REQ), *x = tu_open_sock(FERRY_ROUTER),
                 *y = tu_open_sock(FERRY_ROUTER);
    CHECK_OK(ferry_socket_setopt_bytes(req, FERRY_OPT_ROUTING_ID, "rq", 2));
    CHECK_OK(ferry_socket_bind(x, ux));
    CHECK_OK(ferry_socket_bind(y, uy));
    CHECK_OK(ferry_socket_connect(req, ux));
    tu_wait_peers(req, 1); /* x first: the request goes to it */
    CHECK_OK(ferry_socket_connect(req, uy));
    tu_wait_peers(req, 2);
    tu_wait_peers(y, 1);
    tu_send_str(req, "ask", 0);
    tu_recv_str(x, "rq", true);
    tu_recv_str(x, "", true);
    tu_recv_str(x, "ask", false);
    /* y (which got no request) sends half a message and leaves; x answers. */
    CHECK_OK(ferry_socket_send(y, "rq", 2, FERRY_MORE));
    tu_send_str(y, "stray", FERRY_MORE);
    ferry_socket_close(y);
    tu_wait_peers(req, 1);
    CHECK_OK(ferry_socket_send(x, "rq", 2, FERRY_MORE));
    CHECK_OK(ferry_socket_send(x, "", 0, FERRY_MORE));
    tu_send_str(x, "reply", 0);
    tu_recv_str(req, "reply", false);
    ferry_socket_close(req);
    ferry_socket_close(x);
}

int main(void)
{
    tu_deadline(60);
    test_option();
    test_unknown(false);
    test_unknown(true);
    test_full(false);
    test_full(true);
    test_cut_message();
    test_cut_rep();
    test_cut_sub();
    test_cut_req();
    printf("test_pattern_router: ok\n");
    return 0;
}
