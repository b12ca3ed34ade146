/*
 * test_pattern_options.c - the libzmq socket options that change a pattern, between ferry sockets
 * over ipc://: REQ_RELAXED (abandoning a request), REQ_CORRELATE (the request id frame on the
 * wire, replies with the wrong id dropped), ROUTER_HANDOVER (a newcomer takes a routing id over;
 * every whole message the old peer had sent is still delivered, over ipc, tcp and inproc),
 * XPUB_VERBOSER (every cancel reported), XPUB_MANUAL (the application applies subscriptions) and
 * XPUB_WELCOME_MSG (sent at link-up without any XPUB call), the XPUB options on a PUB (as libzmq
 * takes them), plus validation of every option.
 */
#include "testutil.h"

#include "ferry/ferry.h"

#include <poll.h>
#include <stdbool.h>
#include <string.h>

static void url_new(char *url, size_t cap)
{
    tu_ipc_url(url, cap, "po");
}

static void check_bool_option(int type, int opt)
{
    ferry_socket *s = tu_open_sock(type);
    int64_t v = -1;
    CHECK_OK(ferry_socket_getopt_int(s, opt, &v));
    CHECK(v == 0);
    CHECK_RC(ferry_socket_setopt_int(s, opt, 2), FERRY_EINVAL);
    CHECK_RC(ferry_socket_setopt_int(s, opt, -1), FERRY_EINVAL);
    CHECK_OK(ferry_socket_setopt_int(s, opt, 1));
    CHECK_OK(ferry_socket_getopt_int(s, opt, &v));
    CHECK(v == 1);
    int zero = 0;
    CHECK_OK(ferry_socket_setopt_bytes(s, opt, &zero, sizeof zero));
    CHECK_OK(ferry_socket_getopt_int(s, opt, &v));
    CHECK(v == 0);
    ferry_socket_close(s);
    /* Other socket types do not have it. */
    ferry_socket *d = tu_open_sock(FERRY_DEALER);
    CHECK_RC(ferry_socket_setopt_int(d, opt, 1), FERRY_EINVAL);
    ferry_socket_close(d);
}

static void test_validation(void)
{
    check_bool_option(FERRY_REQ, FERRY_OPT_REQ_RELAXED);
    check_bool_option(FERRY_REQ, FERRY_OPT_REQ_CORRELATE);
    check_bool_option(FERRY_ROUTER, FERRY_OPT_ROUTER_HANDOVER);
    check_bool_option(FERRY_XPUB, FERRY_OPT_XPUB_MANUAL);
    check_bool_option(FERRY_XPUB, FERRY_OPT_XPUB_VERBOSER);
    ferry_socket *x = tu_open_sock(FERRY_XPUB);
    /* VERBOSER sets both halves; VERBOSE sets the subscribe half and clears the cancel half. */
    int64_t v = -1;
    CHECK_OK(ferry_socket_setopt_int(x, FERRY_OPT_XPUB_VERBOSER, 1));
    CHECK_OK(ferry_socket_getopt_int(x, FERRY_OPT_XPUB_VERBOSE, &v));
    CHECK(v == 1);
    CHECK_OK(ferry_socket_setopt_int(x, FERRY_OPT_XPUB_VERBOSE, 1));
    CHECK_OK(ferry_socket_getopt_int(x, FERRY_OPT_XPUB_VERBOSER, &v));
    CHECK(v == 0);
    /* The welcome message is a bytes option. */
    char buf[16];
    size_t len = sizeof buf;
    CHECK_OK(ferry_socket_getopt_bytes(x, FERRY_OPT_XPUB_WELCOME_MSG, buf, &len));
    CHECK(len == 0);
    CHECK_RC(ferry_socket_setopt_int(x, FERRY_OPT_XPUB_WELCOME_MSG, 1), FERRY_EINVAL);
    CHECK_RC(ferry_socket_getopt_int(x, FERRY_OPT_XPUB_WELCOME_MSG, &v), FERRY_EINVAL);
    CHECK_OK(ferry_socket_setopt_bytes(x, FERRY_OPT_XPUB_WELCOME_MSG, "hello", 5));
    len = 2;
    CHECK_RC(ferry_socket_getopt_bytes(x, FERRY_OPT_XPUB_WELCOME_MSG, buf, &len), FERRY_EMSGSIZE);
    CHECK(len == 5);
    len = sizeof buf;
    CHECK_OK(ferry_socket_getopt_bytes(x, FERRY_OPT_XPUB_WELCOME_MSG, buf, &len));
    CHECK(len == 5 && memcmp(buf, "hello", 5) == 0);
    CHECK_OK(ferry_socket_setopt_bytes(x, FERRY_OPT_XPUB_WELCOME_MSG, NULL, 0));
    len = sizeof buf;
    CHECK_OK(ferry_socket_getopt_bytes(x, FERRY_OPT_XPUB_WELCOME_MSG, buf, &len));
    CHECK(len == 0);
    /* Subscribing on an XPUB is for XPUB_MANUAL only (libzmq: EINVAL). */
    CHECK_RC(ferry_socket_subscribe(x, "a", 1), FERRY_EINVAL);
    CHECK_OK(ferry_socket_setopt_int(x, FERRY_OPT_XPUB_MANUAL, 1));
    CHECK_OK(ferry_socket_subscribe(x, "a", 1)); /* no peer yet: nothing to act on */
    ferry_socket_close(x);
    /* libzmq's PUB takes the XPUB options too (validated alike); other types do not. */
    check_bool_option(FERRY_PUB, FERRY_OPT_XPUB_VERBOSE);
    check_bool_option(FERRY_PUB, FERRY_OPT_XPUB_VERBOSER);
    check_bool_option(FERRY_PUB, FERRY_OPT_XPUB_MANUAL);
    ferry_socket *p = tu_open_sock(FERRY_PUB);
    CHECK_OK(ferry_socket_setopt_bytes(p, FERRY_OPT_XPUB_WELCOME_MSG, "w", 1));
    len = sizeof buf;
    CHECK_OK(ferry_socket_getopt_bytes(p, FERRY_OPT_XPUB_WELCOME_MSG, buf, &len));
    CHECK(len == 1 && buf[0] == 'w');
    CHECK_RC(ferry_socket_subscribe(p, "a", 1), FERRY_EINVAL); /* libzmq: EINVAL unless manual */
    CHECK_OK(ferry_socket_setopt_int(p, FERRY_OPT_XPUB_MANUAL, 1));
    CHECK_OK(ferry_socket_subscribe(p, "a", 1));
    CHECK_OK(ferry_socket_unsubscribe(p, "a", 1));
    ferry_socket_close(p);
    ferry_socket *d = tu_open_sock(FERRY_DEALER);
    CHECK_RC(ferry_socket_setopt_bytes(d, FERRY_OPT_XPUB_WELCOME_MSG, "w", 1), FERRY_EINVAL);
    ferry_socket_close(d);
}

static void rep_reply(ferry_socket *rep, const char *want, const char *reply)
{
    tu_recv_str(rep, want, false);
    tu_send_str(rep, reply, 0);
}

static void test_relaxed(bool correlate)
{
    char url[300];
    url_new(url, sizeof url);
    ferry_socket *req = tu_open_sock(FERRY_REQ), *rep = tu_open_sock(FERRY_REP);
    char buf[16];
    /* Strict by default. */
    CHECK_OK(ferry_socket_bind(rep, url));
    CHECK_OK(ferry_socket_connect(req, url));
    tu_send_str(req, "q0", 0);
    CHECK_RC(ferry_socket_send(req, "x", 1, FERRY_DONTWAIT), FERRY_EFSM);
    rep_reply(rep, "q0", "r0");
    tu_recv_str(req, "r0", false);
    CHECK_OK(ferry_socket_setopt_int(req, FERRY_OPT_REQ_RELAXED, 1));
    CHECK_OK(ferry_socket_setopt_int(req, FERRY_OPT_REQ_CORRELATE, correlate));
    /* Still no recv before a request. */
    CHECK_RC(ferry_socket_recv(req, buf, sizeof buf, FERRY_DONTWAIT, NULL), FERRY_EFSM);
    tu_send_str(req, "q1", 0);
    tu_recv_str(rep, "q1", false);
    /* q1's reply has not come: a relaxed REQ may send anyway, abandoning q1. */
    CHECK(ferry_socket_events(req) & FERRY_POLLOUT);
    tu_send_str(req, "q2", 0);
    tu_send_str(rep, "r1", 0); /* the late reply to the abandoned request */
    rep_reply(rep, "q2", "r2");
    /* With CORRELATE the late r1 carries q1's id and is dropped; without it, it passes for q2's
     * reply (libzmq documents the same: use both options together). */
    tu_recv_str(req, correlate ? "r2" : "r1", false);
    ferry_socket_close(req);
    ferry_socket_close(rep);
}

static void recv_frame(ferry_socket *s, void *buf, size_t cap, size_t want_len, bool want_more)
{
    int more = -1;
    ssize_t n = ferry_socket_recv(s, buf, cap, 0, &more);
    if (n != (ssize_t)want_len || more != (want_more ? 1 : 0)) {
        fprintf(stderr, "frame of %zd bytes (more %d), want %zu (more %d)\n", n, more, want_len,
                (int)want_more);
        exit(1);
    }
}

static void test_correlate_wire(void)
{
    char url[300];
    url_new(url, sizeof url);
    ferry_socket *req = tu_open_sock(FERRY_REQ), *router = tu_open_sock(FERRY_ROUTER);
    CHECK_OK(ferry_socket_setopt_int(req, FERRY_OPT_REQ_CORRELATE, 1));
    CHECK_OK(ferry_socket_setopt_bytes(req, FERRY_OPT_ROUTING_ID, "rq", 2));
    CHECK_OK(ferry_socket_bind(router, url));
    CHECK_OK(ferry_socket_connect(req, url));
    uint32_t ids[2];
    for (int i = 0; i < 2; i++) {
        tu_send_str(req, i ? "second" : "first", 0);
        char b[16];
        recv_frame(router, b, sizeof b, 2, true); /* routing id */
        CHECK(memcmp(b, "rq", 2) == 0);
        recv_frame(router, &ids[i], sizeof ids[i], 4, true); /* request id */
        recv_frame(router, b, sizeof b, 0, true);            /* delimiter */
        tu_recv_str(router, i ? "second" : "first", false);
        if (i == 0) {
            /* A reply with another id is dropped; the right one is delivered. */
            uint32_t wrong = ids[0] + 7;
            CHECK_OK(ferry_socket_send(router, "rq", 2, FERRY_MORE));
            CHECK_OK(ferry_socket_send(router, &wrong, sizeof wrong, FERRY_MORE));
            CHECK_OK(ferry_socket_send(router, "", 0, FERRY_MORE));
            tu_send_str(router, "wrong", 0);
            /* A reply without the id is dropped too. */
            CHECK_OK(ferry_socket_send(router, "rq", 2, FERRY_MORE));
            CHECK_OK(ferry_socket_send(router, "", 0, FERRY_MORE));
            tu_send_str(router, "no-id", 0);
        }
        CHECK_OK(ferry_socket_send(router, "rq", 2, FERRY_MORE));
        CHECK_OK(ferry_socket_send(router, &ids[i], sizeof ids[i], FERRY_MORE));
        CHECK_OK(ferry_socket_send(router, "", 0, FERRY_MORE));
        tu_send_str(router, i ? "reply2" : "reply1", 0);
        tu_recv_str(req, i ? "reply2" : "reply1", false);
    }
    CHECK(ids[1] == ids[0] + 1);
    ferry_socket_close(req);
    ferry_socket_close(router);
}

/* Waits until s has n peers while `kick` makes calls (a pattern acts only inside its owner's
 * calls: the ROUTER refuses or hands over at its next call). */
static void wait_peers_kick(ferry_socket *s, uint32_t n, ferry_socket *kick)
{
    uint64_t end = tu_now_ns() + (uint64_t)TU_TIMEOUT_MS * 1000000u;
    for (;;) {
        CHECK(ferry_socket_events(kick) >= 0);
        ferry_stats st;
        CHECK_OK(ferry_socket_stats(s, &st));
        if (st.peers == n)
            return;
        CHECK(tu_now_ns() < end);
        ferry_pollitem it[2] = {{s, -1, FERRY_POLLIN, 0}, {kick, -1, FERRY_POLLIN, 0}};
        CHECK(ferry_poll(it, 2, 5) >= 0);
    }
}

static void test_handover(bool handover)
{
    char url[300];
    url_new(url, sizeof url);
    ferry_socket *r = tu_open_sock(FERRY_ROUTER), *d1 = tu_open_sock(FERRY_DEALER),
                 *d2 = tu_open_sock(FERRY_DEALER);
    CHECK_OK(ferry_socket_setopt_int(r, FERRY_OPT_ROUTER_HANDOVER, handover));
    CHECK_OK(ferry_socket_bind(r, url));
    for (int i = 0; i < 2; i++) {
        ferry_socket *d = i ? d2 : d1;
        CHECK_OK(ferry_socket_setopt_bytes(d, FERRY_OPT_ROUTING_ID, "peer", 4));
        /* The one handed over must not come back and take the id again during the test. */
        CHECK_OK(ferry_socket_setopt_int(d, FERRY_OPT_RECONNECT_IVL, 60000));
    }
    CHECK_OK(ferry_socket_connect(d1, url));
    tu_send_str(d1, "from-d1", 0);
    tu_recv_str(r, "peer", true);
    tu_recv_str(r, "from-d1", false);
    CHECK_OK(ferry_socket_connect(d2, url));
    tu_wait_peers(d2, 1); /* its handshake is done; the ROUTER attaches it on its next call */
    if (handover) {
        /* d1 loses its connection; messages to "peer" reach d2. */
        wait_peers_kick(d1, 0, r);
        tu_send_str(d2, "from-d2", 0);
        tu_recv_str(r, "peer", true);
        tu_recv_str(r, "from-d2", false);
        CHECK_OK(ferry_socket_send(r, "peer", 4, FERRY_MORE));
        tu_send_str(r, "to-peer", 0);
        tu_recv_str(d2, "to-peer", false);
    } else {
        /* d2 is refused (its connection is closed and it waits to reconnect); d1 keeps "peer". */
        wait_peers_kick(d2, 0, r);
        CHECK_OK(ferry_socket_send(r, "peer", 4, FERRY_MORE));
        tu_send_str(r, "to-peer", 0);
        tu_recv_str(d1, "to-peer", false);
        ferry_stats st;
        CHECK_OK(ferry_socket_stats(d1, &st));
        CHECK(st.peers == 1);
    }
    ferry_socket_close(d1);
    ferry_socket_close(d2);
    ferry_socket_close(r);
}

/* Message i of a numbered stream: three frames when i % 3 == 0, else one; frame f of it reads
 * "<who>-<i>-<f>". */
static int numbered_frames(int i)
{
    return i % 3 == 0 ? 3 : 1;
}

static void send_numbered(ferry_socket *d, const char *who, int i)
{
    int nf = numbered_frames(i);
    for (int f = 0; f < nf; f++) {
        char b[32];
        snprintf(b, sizeof b, "%s-%d-%d", who, i, f);
        tu_send_str(d, b, f + 1 < nf ? FERRY_MORE : 0);
    }
}

/* Receives the rest of a numbered message from a ROUTER whose id frame (want_id) and first
 * `done` frames were taken already; checks it is the next message of its sender (next[0] for
 * "d1", next[1] for "d2"), complete and not interleaved. */
static void recv_numbered_rest(ferry_socket *r, int next[2], int done, int who_fixed, int i_fixed)
{
    int who = who_fixed, i = i_fixed, nf = who_fixed >= 0 ? numbered_frames(i_fixed) : 0;
    for (int f = done;; f++) {
        char b[32];
        int more = -1;
        ssize_t n = ferry_socket_recv(r, b, sizeof b - 1, 0, &more);
        CHECK(n > 0 && n < (ssize_t)sizeof b);
        b[n] = 0;
        int w, mi, mf;
        CHECK(sscanf(b, "d%d-%d-%d", &w, &mi, &mf) == 3 && (w == 1 || w == 2));
        if (who < 0) {
            who = w - 1;
            i = mi;
            nf = numbered_frames(i);
            if (i != next[who]) {
                fprintf(stderr, "got d%d message %d, want %d (lost or reordered)\n", w, i,
                        next[who]);
                exit(1);
            }
        }
        CHECK(w - 1 == who && mi == i && mf == f); /* no other message's frame in between */
        CHECK(more == (f + 1 < nf));
        if (!more)
            break;
    }
    next[who] = i + 1;
}

static void recv_numbered(ferry_socket *r, int next[2])
{
    tu_recv_str(r, "peer", true);
    recv_numbered_rest(r, next, 0, -1, -1);
}

/*
 * ROUTER_HANDOVER loses nothing: every whole message the old peer had sent when the newcomer
 * took its id over is delivered, in order, under that id, multipart messages whole (also the one
 * the application was in the middle of), mixed with the newcomer's messages only at message
 * boundaries; then the old connection is closed and the id reaches the newcomer. The old peer is
 * alive, or gone with its messages still unread (old_closes).
 */
static void test_handover_delivers(const char *kind, bool old_closes)
{
    printf("  handover delivers, %s%s\n", kind, old_closes ? ", old peer gone" : "");
    char url[300];
    if (strcmp(kind, "tcp") == 0)
        snprintf(url, sizeof url, "tcp://127.0.0.1:%d", tu_free_port());
    else if (strcmp(kind, "inproc") == 0)
        snprintf(url, sizeof url, "inproc://%s", tu_unique("ho"));
    else
        url_new(url, sizeof url);
    enum { N1 = 40, N2 = 12 };
    ferry_socket *r = tu_open_sock(FERRY_ROUTER), *d1 = tu_open_sock(FERRY_DEALER),
                 *d2 = tu_open_sock(FERRY_DEALER);
    CHECK_OK(ferry_socket_setopt_int(r, FERRY_OPT_ROUTER_HANDOVER, 1));
    CHECK_OK(ferry_socket_bind(r, url));
    for (int i = 0; i < 2; i++) {
        ferry_socket *d = i ? d2 : d1;
        CHECK_OK(ferry_socket_setopt_bytes(d, FERRY_OPT_ROUTING_ID, "peer", 4));
        CHECK_OK(ferry_socket_setopt_int(d, FERRY_OPT_RECONNECT_IVL, 60000));
    }
    CHECK_OK(ferry_socket_setopt_int(d1, FERRY_OPT_LINGER, -1));
    CHECK_OK(ferry_socket_connect(d1, url));
    tu_wait_peers(r, 1); /* d1 holds "peer" */
    for (int i = 0; i < N1; i++)
        send_numbered(d1, "d1", i);
    /* The application starts reading d1's first (three-frame) message. */
    int next[2] = {0, 0};
    tu_recv_str(r, "peer", true);
    tu_recv_str(r, "d1-0-0", true);
    if (old_closes) {
        ferry_socket_close(d1); /* LINGER -1: everything is in the kernel (or ring) */
        d1 = NULL;
        tu_wait_peers(r, 0); /* seen gone, its input still unread */
    } else {
        /* Hands d1's queued output to the kernel (or ring) now: a ferry call flushes it. */
        CHECK(ferry_socket_events(d1) >= 0);
    }
    CHECK_OK(ferry_socket_connect(d2, url));
    /* The ROUTER attaches d2 (handing "peer" over) before it reads anything more of d1. */
    tu_wait_peers(r, old_closes ? 1 : 2);
    for (int i = 0; i < N2; i++)
        send_numbered(d2, "d2", i);
    recv_numbered_rest(r, next, 1, 0, 0);
    while (next[0] < N1 || next[1] < N2)
        recv_numbered(r, next);
    CHECK(next[0] == N1 && next[1] == N2);
    /* Drained: the old connection goes; "peer" is the newcomer. */
    if (d1)
        wait_peers_kick(d1, 0, r);
    wait_peers_kick(r, 1, d2);
    CHECK_OK(ferry_socket_send(r, "peer", 4, FERRY_MORE));
    tu_send_str(r, "to-peer", 0);
    tu_recv_str(d2, "to-peer", false);
    char b[8];
    CHECK_RC(ferry_socket_recv(r, b, sizeof b, FERRY_DONTWAIT, NULL), FERRY_EAGAIN);
    ferry_socket_close(d1);
    ferry_socket_close(d2);
    ferry_socket_close(r);
}

static void test_verboser(void)
{
    char url[300];
    url_new(url, sizeof url);
    ferry_socket *x = tu_open_sock(FERRY_XPUB), *s1 = tu_open_sock(FERRY_SUB),
                 *s2 = tu_open_sock(FERRY_SUB);
    CHECK_OK(ferry_socket_setopt_int(x, FERRY_OPT_XPUB_VERBOSER, 1));
    CHECK_OK(ferry_socket_bind(x, url));
    CHECK_OK(ferry_socket_connect(s1, url));
    CHECK_OK(ferry_socket_connect(s2, url));
    tu_wait_peers(x, 2);
    CHECK_OK(ferry_socket_subscribe(s1, "a", 1));
    tu_expect_sub(x, true, "a");
    CHECK_OK(ferry_socket_subscribe(s2, "a", 1));
    tu_expect_sub(x, true, "a"); /* a second holder: reported (the VERBOSE half) */
    CHECK_OK(ferry_socket_subscribe(s2, "b", 1));
    tu_expect_sub(x, true, "b");
    CHECK_OK(ferry_socket_unsubscribe(s1, "a", 1));
    tu_expect_sub(x, false, "a"); /* s2 still holds it: reported anyway */
    CHECK_OK(ferry_socket_subscribe(s1, "a", 1));
    tu_expect_sub(x, true, "a");
    /* s2 leaves holding "a" (which s1 holds too) and "b": both cancels, in either order. */
    ferry_socket_close(s2);
    char n[2][4];
    for (int i = 0; i < 2; i++) {
        ssize_t len = ferry_socket_recv(x, n[i], sizeof n[i], 0, NULL);
        CHECK(len == 2 && n[i][0] == 0);
    }
    CHECK((n[0][1] == 'a' && n[1][1] == 'b') || (n[0][1] == 'b' && n[1][1] == 'a'));
    /* Back to plain VERBOSE: a cancel by a holder that is not the last is not reported. */
    ferry_socket *s3 = tu_open_sock(FERRY_SUB);
    CHECK_OK(ferry_socket_setopt_int(x, FERRY_OPT_XPUB_VERBOSE, 1));
    CHECK_OK(ferry_socket_connect(s3, url));
    CHECK_OK(ferry_socket_subscribe(s1, "c", 1));
    tu_expect_sub(x, true, "c");
    CHECK_OK(ferry_socket_subscribe(s3, "c", 1));
    tu_expect_sub(x, true, "c");
    CHECK_OK(ferry_socket_unsubscribe(s3, "c", 1));
    CHECK_OK(ferry_socket_subscribe(s3, "mark", 4));
    tu_expect_sub(x, true, "mark");
    ferry_socket_close(s1);
    ferry_socket_close(s3);
    ferry_socket_close(x);
}

static void test_manual(void)
{
    char url[300];
    url_new(url, sizeof url);
    ferry_socket *x = tu_open_sock(FERRY_XPUB), *s = tu_open_sock(FERRY_SUB);
    CHECK_OK(ferry_socket_setopt_int(x, FERRY_OPT_XPUB_MANUAL, 1));
    CHECK_OK(ferry_socket_bind(x, url));
    CHECK_OK(ferry_socket_connect(s, url));
    CHECK_OK(ferry_socket_subscribe(s, "a", 1));
    tu_expect_sub(x, true, "a");
    /* Not applied by itself: "a1" reaches nobody. */
    tu_send_str(x, "a1", 0);
    CHECK_OK(ferry_socket_subscribe(x, "a", 1)); /* for the peer that asked */
    tu_send_str(x, "a2", 0);
    tu_recv_str(s, "a2", false);
    /* Every request is reported, duplicates included. */
    CHECK_OK(ferry_socket_subscribe(s, "a", 1));
    tu_expect_sub(x, true, "a");
    /* The application may also take a prefix away on its own. */
    CHECK_OK(ferry_socket_unsubscribe(x, "a", 1));
    tu_send_str(x, "a3", 0);
    CHECK_OK(ferry_socket_subscribe(s, "m", 1));
    tu_expect_sub(x, true, "m");
    CHECK_OK(ferry_socket_subscribe(x, "m", 1));
    tu_send_str(x, "a4", 0);
    tu_send_str(x, "m1", 0);
    tu_recv_str(s, "m1", false); /* a3 and a4 were not sent */
    /* A departing peer's requests ("a" and "m") are reported as cancels. */
    ferry_socket_close(s);
    char n[2][4];
    for (int i = 0; i < 2; i++) {
        ssize_t len = ferry_socket_recv(x, n[i], sizeof n[i], 0, NULL);
        CHECK(len == 2 && n[i][0] == 0);
    }
    CHECK((n[0][1] == 'a' && n[1][1] == 'm') || (n[0][1] == 'm' && n[1][1] == 'a'));
    /* The peer is gone: subscribing on its behalf does nothing. */
    CHECK_OK(ferry_socket_subscribe(x, "z", 1));
    ferry_socket_close(x);
}

static void test_welcome(void)
{
    char url[300];
    url_new(url, sizeof url);
    ferry_socket *x = tu_open_sock(FERRY_XPUB), *s1 = tu_open_sock(FERRY_SUB),
                 *s2 = tu_open_sock(FERRY_SUB);
    CHECK_OK(ferry_socket_setopt_bytes(x, FERRY_OPT_XPUB_WELCOME_MSG, "W!", 2));
    CHECK_OK(ferry_socket_bind(x, url));
    CHECK_OK(ferry_socket_subscribe(s1, "W", 1));
    CHECK_OK(ferry_socket_connect(s1, url));
    /* The XPUB makes no call: the welcome goes out when the link comes up. */
    tu_recv_str(s1, "W!", false);
    tu_expect_sub(x, true, "W");
    CHECK_OK(ferry_socket_setopt_bytes(x, FERRY_OPT_XPUB_WELCOME_MSG, NULL, 0));
    CHECK_OK(ferry_socket_subscribe(s2, "", 0));
    CHECK_OK(ferry_socket_connect(s2, url));
    tu_expect_sub(x, true, "");
    tu_send_str(x, "after", 0);
    tu_recv_str(s2, "after", false); /* no welcome before it */
    ferry_socket_close(s1);
    ferry_socket_close(s2);
    ferry_socket_close(x);
}

/*
 * XPUB options on a PUB (libzmq's PUB is an XPUB that cannot receive). Over inproc:// the
 * connecting thread makes the link and runs both link_ups, so when connect returns the SUB's
 * subscription already waits in the PUB's ring and the PUB's next call applies it (or, manual,
 * does not); whatever the PUB then publishes is in the SUB's ring before send returns, so a
 * DONTWAIT receive tells "sent" from "not sent". The non-manual run is the control that makes
 * the manual run's FERRY_EAGAIN mean something.
 */
static void test_pub_xpub_options(bool manual)
{
    char url[64];
    snprintf(url, sizeof url, "inproc://%s", tu_unique("pubopt"));
    ferry_socket *p = tu_open_sock(FERRY_PUB), *s = tu_open_sock(FERRY_SUB);
    CHECK_OK(ferry_socket_setopt_int(p, FERRY_OPT_XPUB_MANUAL, manual));
    CHECK_OK(ferry_socket_setopt_int(p, FERRY_OPT_XPUB_VERBOSER, 1)); /* nothing to report */
    CHECK_OK(ferry_socket_setopt_bytes(p, FERRY_OPT_XPUB_WELCOME_MSG, "hi", 2));
    CHECK_OK(ferry_socket_bind(p, url));
    CHECK_OK(ferry_socket_subscribe(s, "", 0));
    CHECK_OK(ferry_socket_connect(s, url));
    /* The welcome went out at link-up, before the PUB made any call. */
    tu_recv_str(s, "hi", false);
    CHECK(ferry_socket_events(p) == FERRY_POLLOUT); /* attaches, applies (or not); no input */
    tu_send_str(p, "m1", 0);
    char buf[8];
    if (!manual) {
        CHECK(ferry_socket_recv(s, buf, sizeof buf, FERRY_DONTWAIT, NULL) == 2);
    } else {
        CHECK_RC(ferry_socket_recv(s, buf, sizeof buf, FERRY_DONTWAIT, NULL), FERRY_EAGAIN);
        /* A PUB never receives a notice, so its own subscribe has no peer to act on. */
        CHECK_OK(ferry_socket_subscribe(p, "", 0));
        tu_send_str(p, "m2", 0);
        CHECK_RC(ferry_socket_recv(s, buf, sizeof buf, FERRY_DONTWAIT, NULL), FERRY_EAGAIN);
        /* Switched back, the subscriptions a manual PUB received were never applied either. */
        CHECK_OK(ferry_socket_setopt_int(p, FERRY_OPT_XPUB_MANUAL, 0));
        tu_send_str(p, "m3", 0);
        CHECK_RC(ferry_socket_recv(s, buf, sizeof buf, FERRY_DONTWAIT, NULL), FERRY_EAGAIN);
        /* A new subscription is applied now. */
        CHECK_OK(ferry_socket_subscribe(s, "m", 1));
        CHECK(ferry_socket_events(p) == FERRY_POLLOUT);
        tu_send_str(p, "m4", 0);
        tu_recv_str(s, "m4", false);
    }
    ferry_socket_close(s);
    ferry_socket_close(p);
}

int main(void)
{
    tu_deadline(60);
    test_validation();
    test_relaxed(false);
    test_relaxed(true);
    test_correlate_wire();
    test_handover(false);
    test_handover(true);
    const char *kinds[] = {"ipc", "tcp", "inproc"};
    for (int k = 0; k < 3; k++) {
        test_handover_delivers(kinds[k], false);
        test_handover_delivers(kinds[k], true);
    }
    test_verboser();
    test_manual();
    test_welcome();
    test_pub_xpub_options(false);
    test_pub_xpub_options(true);
    printf("test_pattern_options: ok\n");
    return 0;
}
