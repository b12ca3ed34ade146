/*
 * test_pattern_oom.c - out of memory in the middle of a message being sent. When the pipe a
 * message is bound to cannot take one of its frames (a later frame on PUSH, DEALER, REQ, PAIR; a
 * REP reply's envelope or body; a ROUTER message's body), the send returns FERRY_ENOMEM at once,
 * the frame is not taken and the message stays open on that pipe: sending the same frame again
 * completes it (docs/api.md section 4, docs/sockets.md). The library's test-only fault hook
 * (fy_test_fault, site FY_FAULT_MSG_SEND in pattern.h) makes the pipe refuse such frames on demand.
 *
 * Each case runs over inproc://, ipc:// (plain ZMTP: no shm upgrade), tcp:// and shm:// and checks
 * at the failure point the return code, that the call did not wait, that the statistics did not
 * count the frame and that POLLOUT is reported; on the receiver, that every message arrives
 * exactly once, whole, in order, with its frames' bytes, MORE flags, envelope and routing; and
 * that the sender's later messages (round robin included) are unaffected.
 */
#include "testutil.h"

#include "ferry/ferry.h"

#include <stdatomic.h>
#include <stdbool.h>
#include <stdint.h>
#include <string.h>

/* pattern.h's site (the test cannot include the library's private headers). */
#define FY_FAULT_MSG_SEND_ID 3

/* ---- frames ---- */

#define NFRAMES  4
#define BIG      9000 /* above the socket's cached body size: a pooled block */
#define SENTINEL 0xffffffffu

/* Frame 0 of a data message is its number (4 bytes); frame k > 0 has fsz[k] bytes from
 * tu_fill_frame(i, k): an empty frame, a frame above the inline size (a loan on a sole shm peer),
 * a large one. */
static const size_t fsz[NFRAMES] = {4, 0, 100, BIG};

static uint8_t fbuf[BIG];

static const void *frame_bytes(uint32_t i, uint32_t k)
{
    if (k == 0)
        memcpy(fbuf, &i, 4);
    else
        tu_fill_frame(fbuf, fsz[k], i, k);
    return fbuf;
}

static const char *tr_name; /* the transport of the running case, for messages */

static ferry_stats stats(ferry_socket *s)
{
    ferry_stats st;
    CHECK_OK(ferry_socket_stats(s, &st));
    return st;
}

/*
 * Sends frame k of message i (flags: FERRY_MORE or 0) while the pipe refuses bound frames: the
 * first `skip` bound sends of the call go through (REP's envelope, REQ's delimiter), then `fails`
 * attempts must return FERRY_ENOMEM at once (blocking and DONTWAIT alternately: out of memory is
 * not something to wait for), without counting the frame and with the message still open
 * (POLLOUT, and the retry is taken). The retry after the fault cleared must succeed.
 */
static void send_oom(ferry_socket *s, uint32_t i, uint32_t k, int flags, int skip, int fails)
{
    ferry_stats before = stats(s);
    tu_fault_arm(FY_FAULT_MSG_SEND_ID, skip, fails);
    for (int a = 0; a < fails; a++) {
        uint64_t t0 = tu_now_ns();
        int rc =
            ferry_socket_send(s, frame_bytes(i, k), fsz[k], flags | (a & 1 ? FERRY_DONTWAIT : 0));
        if (rc != FERRY_ENOMEM) {
            fprintf(stderr, "%s: message %u frame %u attempt %d: %s, expected FERRY_ENOMEM\n",
                    tr_name, i, k, a, tu_errname(rc));
            exit(1);
        }
        /* SNDTIMEO is 5 s (tu_open_sock): a wait would show. */
        CHECK(tu_now_ns() - t0 < 2000000000ull);
        CHECK(tu_fault_hits() == a + 1);
        ferry_stats st = stats(s);
        CHECK(st.bytes_out == before.bytes_out && st.msgs_out == before.msgs_out);
        int ev = ferry_socket_events(s);
        CHECK(ev >= 0 && (ev & FERRY_POLLOUT));
        /* What the first attempt let through (REP's envelope frames, REQ's delimiter) is not
         * sent again: from now on the refused frame is the first bound send of each attempt. */
        tu_fault_set_skip(0);
    }
    CHECK(tu_fault_left() == 0);
    tu_fault_off();
    CHECK_OK(ferry_socket_send(s, frame_bytes(i, k), fsz[k], flags));
    ferry_stats st = stats(s);
    CHECK(st.bytes_out == before.bytes_out + fsz[k]);
    CHECK(st.msgs_out == before.msgs_out + (flags & FERRY_MORE ? 0 : 1));
}

/* Sends data message i (NFRAMES frames); frame `fk` (-1: none) meets `fails` refusals after
 * `skip` bound sends went through in its call. */
static void send_msg(ferry_socket *s, uint32_t i, int fk, int skip, int fails)
{
    for (uint32_t k = 0; k < NFRAMES; k++) {
        int flags = k + 1 < NFRAMES ? FERRY_MORE : 0;
        if ((int)k == fk)
            send_oom(s, i, k, flags, skip, fails);
        else
            CHECK_OK(ferry_socket_send(s, frame_bytes(i, k), fsz[k], flags));
    }
}

static void send_sentinel(ferry_socket *s)
{
    uint32_t v = SENTINEL;
    CHECK_OK(ferry_socket_send(s, &v, 4, 0));
}

static uint8_t rbuf[BIG + 16];

/* Receives one frame (blocking, RCVTIMEO 5 s) and checks its MORE flag; returns its size. */
static size_t recv_frame(ferry_socket *s, bool want_more, const char *what)
{
    int more = -1;
    ssize_t n = ferry_socket_recv(s, rbuf, sizeof rbuf, 0, &more);
    if (n < 0) {
        fprintf(stderr, "%s: receiving %s: %s\n", tr_name, what, tu_errname((int)n));
        exit(1);
    }
    if (more != (int)want_more) {
        fprintf(stderr, "%s: %s: MORE is %d, expected %d\n", tr_name, what, more, want_more);
        exit(1);
    }
    return (size_t)n;
}

static void recv_exact(ferry_socket *s, const void *want, size_t len, bool more, const char *what)
{
    size_t n = recv_frame(s, more, what);
    if (n != len || memcmp(rbuf, want, len) != 0) {
        fprintf(stderr, "%s: %s: got %zu bytes, expected %zu\n", tr_name, what, n, len);
        exit(1);
    }
}

/* Receives the frames of a data message after its first one (whose number is i). */
static void recv_rest(ferry_socket *s, uint32_t i)
{
    for (uint32_t k = 1; k < NFRAMES; k++) {
        char what[64];
        snprintf(what, sizeof what, "message %u frame %u", i, k);
        size_t n = recv_frame(s, k + 1 < NFRAMES, what);
        if (!tu_frame_ok(rbuf, n, fsz[k], i, k)) {
            fprintf(stderr, "%s: %s: wrong bytes (%zu, expected %zu)\n", tr_name, what, n, fsz[k]);
            exit(1);
        }
    }
}

/* Receives data message i whole. */
static void recv_msg(ferry_socket *s, uint32_t i)
{
    char what[64];
    snprintf(what, sizeof what, "message %u frame 0", i);
    recv_exact(s, &i, 4, true, what);
    recv_rest(s, i);
}

static void recv_sentinel(ferry_socket *s)
{
    uint32_t v = SENTINEL;
    recv_exact(s, &v, 4, false, "the end marker");
}

/* ---- cases ---- */

/* Every case runs over tr_name with testutil's transport helpers (tu_open_sock_on: ipc:// stays
 * plain ZMTP, the stream engine; shm:// covers the rings). */

/*
 * PUSH with two PULL peers: messages are round-robined; message 1 meets two refusals on frame 2,
 * message 3 one on its last frame, message 4 three on frame 1. Each PULL must get its messages
 * whole and in order, each message exactly once, and the round robin must go on alternating
 * (the retried frames stay with their message's peer).
 */
static void case_push(void)
{
    printf("  %s: PUSH to two PULLs\n", tr_name);
    char url[300];
    ferry_socket *push = tu_open_sock_on(FERRY_PUSH, tr_name),
                 *pa = tu_open_sock_on(FERRY_PULL, tr_name),
                 *pb = tu_open_sock_on(FERRY_PULL, tr_name);
    tu_bind_on(push, tr_name, url, sizeof url, "oom-push");
    CHECK_OK(ferry_socket_connect(pa, url));
    CHECK_OK(ferry_socket_connect(pb, url));
    tu_wait_peers(push, 2);
    tu_wait_peers(pa, 1);
    tu_wait_peers(pb, 1);
    send_msg(push, 0, -1, 0, 0);
    send_msg(push, 1, 2, 0, 2);
    send_msg(push, 2, -1, 0, 0);
    send_msg(push, 3, 3, 0, 1);
    send_msg(push, 4, 1, 0, 3);
    send_msg(push, 5, -1, 0, 0);
    send_sentinel(push);
    send_sentinel(push);
    ferry_stats st = stats(push);
    CHECK(st.msgs_out == 8);
    /* Who got message 0 gets 2 and 4 too; the other gets 1, 3 and 5. */
    ferry_socket *got0 = NULL;
    while (!got0) {
        ferry_pollitem it[2] = {{pa, -1, FERRY_POLLIN, 0}, {pb, -1, FERRY_POLLIN, 0}};
        CHECK(ferry_poll(it, 2, TU_TIMEOUT_MS) > 0);
        got0 = it[0].revents & FERRY_POLLIN ? pa : it[1].revents & FERRY_POLLIN ? pb : NULL;
    }
    ferry_socket *other = got0 == pa ? pb : pa;
    recv_msg(got0, 0);
    recv_msg(got0, 2);
    recv_msg(got0, 4);
    recv_sentinel(got0);
    recv_msg(other, 1);
    recv_msg(other, 3);
    recv_msg(other, 5);
    recv_sentinel(other);
    /* Nothing after the end markers (a pipe is in order: the marker came last). */
    CHECK_RC(ferry_socket_recv(pa, rbuf, sizeof rbuf, FERRY_DONTWAIT, NULL), FERRY_EAGAIN);
    CHECK_RC(ferry_socket_recv(pb, rbuf, sizeof rbuf, FERRY_DONTWAIT, NULL), FERRY_EAGAIN);
    CHECK(stats(pa).msgs_in + stats(pb).msgs_in == 8);
    ferry_socket_close(push);
    ferry_socket_close(pa);
    ferry_socket_close(pb);
}

/*
 * DEALER (routing id "dl") to a ROUTER, its only peer: refusals on frames 1, 2 (three) and 3, a
 * single-frame message right after a recovered one (the one-peer direct path), and a frame sent
 * as a ferry_msg (a loan on an shm ring) that is refused and sent again from the same ferry_msg,
 * which the caller still owns. The ROUTER must see every message once, whole, under "dl".
 */
static void case_dealer(void)
{
    printf("  %s: DEALER to ROUTER\n", tr_name);
    char url[300];
    ferry_socket *r = tu_open_sock_on(FERRY_ROUTER, tr_name),
                 *d = tu_open_sock_on(FERRY_DEALER, tr_name);
    CHECK_OK(ferry_socket_setopt_bytes(d, FERRY_OPT_ROUTING_ID, "dl", 2));
    tu_bind_on(r, tr_name, url, sizeof url, "oom-dealer");
    CHECK_OK(ferry_socket_connect(d, url));
    tu_wait_peers(r, 1);
    tu_wait_peers(d, 1);
    send_msg(d, 0, 1, 0, 1);
    send_sentinel(d); /* a whole single-frame message right after */
    send_msg(d, 1, 2, 0, 3);
    send_msg(d, 2, 3, 0, 1);
    /* Message 3: frame 2 as a ferry_msg, refused twice. */
    CHECK_OK(ferry_socket_send(d, frame_bytes(3, 0), fsz[0], FERRY_MORE));
    CHECK_OK(ferry_socket_send(d, frame_bytes(3, 1), fsz[1], FERRY_MORE));
    ferry_msg m;
    int loaned = ferry_msg_loan(d, &m, fsz[2]);
    /* A sole shm peer lends ring space even in the middle of a message. */
    CHECK(loaned == (strcmp(tr_name, "shm") == 0));
    memcpy(ferry_msg_data(&m), frame_bytes(3, 2), fsz[2]);
    tu_fault_arm(FY_FAULT_MSG_SEND_ID, 0, 2);
    CHECK_RC(ferry_msg_send(d, &m, FERRY_MORE), FERRY_ENOMEM);
    CHECK(ferry_msg_size(&m) == fsz[2] && memcmp(ferry_msg_data(&m), fbuf, fsz[2]) == 0);
    CHECK_RC(ferry_msg_send(d, &m, FERRY_MORE | FERRY_DONTWAIT), FERRY_ENOMEM);
    CHECK(ferry_msg_size(&m) == fsz[2] && memcmp(ferry_msg_data(&m), fbuf, fsz[2]) == 0);
    CHECK(tu_fault_hits() == 2);
    tu_fault_off();
    CHECK_OK(ferry_msg_send(d, &m, FERRY_MORE));
    ferry_msg_fini(&m); /* empty now */
    CHECK_OK(ferry_socket_send(d, frame_bytes(3, 3), fsz[3], 0));
    send_msg(d, 4, -1, 0, 0);
    send_sentinel(d);
    for (uint32_t i = 0; i < 5; i++) {
        recv_exact(r, "dl", 2, true, "the routing id");
        recv_msg(r, i);
        if (i == 0) {
            recv_exact(r, "dl", 2, true, "the routing id");
            recv_sentinel(r);
        }
    }
    recv_exact(r, "dl", 2, true, "the routing id");
    recv_sentinel(r);
    CHECK_RC(ferry_socket_recv(r, rbuf, sizeof rbuf, FERRY_DONTWAIT, NULL), FERRY_EAGAIN);
    CHECK(stats(d).msgs_out == 7 && stats(r).msgs_in == 7);
    /* The way back is unaffected. */
    CHECK_OK(ferry_socket_send(r, "dl", 2, FERRY_MORE));
    tu_send_str(r, "back", 0);
    tu_recv_str(d, "back", false);
    ferry_socket_close(d);
    ferry_socket_close(r);
}

/*
 * REQ (routing id "rq") to a ROUTER, which shows the request's envelope: a refusal on the
 * request's first frame (its delimiter is already out), on a middle and on the last frame; with
 * REQ_CORRELATE also on the delimiter after the request id (the retry must not send the id
 * again). The ROUTER must see [rq][(id)][""][frames] once per request, and each reply must reach
 * the REQ.
 */
static void case_req(bool correlate)
{
    printf("  %s: REQ%s to ROUTER\n", tr_name, correlate ? " (CORRELATE)" : "");
    char url[300];
    ferry_socket *r = tu_open_sock_on(FERRY_ROUTER, tr_name),
                 *q = tu_open_sock_on(FERRY_REQ, tr_name);
    CHECK_OK(ferry_socket_setopt_bytes(q, FERRY_OPT_ROUTING_ID, "rq", 2));
    CHECK_OK(ferry_socket_setopt_int(q, FERRY_OPT_REQ_CORRELATE, correlate));
    tu_bind_on(r, tr_name, url, sizeof url, correlate ? "oom-reqc" : "oom-req");
    CHECK_OK(ferry_socket_connect(q, url));
    tu_wait_peers(r, 1);
    tu_wait_peers(q, 1);
    /* Per request: the frame refused (-1 none), bound sends let through first, refusals. The
     * delimiter goes out with the request's first frame: without CORRELATE it picks the pipe (not
     * a bound send), so {0, 0, 2} refuses the first frame after it; with CORRELATE the id frame
     * picks the pipe, {0, 0, 2} refuses the delimiter and {0, 1, 1} the first frame after it. */
    static const int plan[][3] = {{0, 0, 2}, {-1, 0, 0}, {2, 0, 1}, {3, 0, 2}, {0, 1, 1}};
    int nplan = correlate ? 5 : 4;
    uint32_t prev_id = 0;
    for (int j = 0; j < nplan; j++) {
        uint32_t i = (uint32_t)j;
        send_msg(q, i, plan[j][0], plan[j][1], plan[j][2]);
        recv_exact(r, "rq", 2, true, "the routing id");
        uint32_t id = 0;
        if (correlate) {
            size_t n = recv_frame(r, true, "the request id");
            CHECK(n == 4);
            memcpy(&id, rbuf, 4);
            CHECK(j == 0 || id == prev_id + 1);
            prev_id = id;
        }
        recv_exact(r, "", 0, true, "the delimiter");
        recv_msg(r, i);
        /* Reply: the envelope echoed. */
        CHECK_OK(ferry_socket_send(r, "rq", 2, FERRY_MORE));
        if (correlate)
            CHECK_OK(ferry_socket_send(r, &id, 4, FERRY_MORE));
        CHECK_OK(ferry_socket_send(r, "", 0, FERRY_MORE));
        char rep[16];
        snprintf(rep, sizeof rep, "re-%u", i);
        tu_send_str(r, rep, 0);
        tu_recv_str(q, rep, false);
    }
    CHECK_RC(ferry_socket_recv(r, rbuf, sizeof rbuf, FERRY_DONTWAIT, NULL), FERRY_EAGAIN);
    CHECK(stats(q).msgs_out == (uint64_t)nplan && stats(r).msgs_in == (uint64_t)nplan);
    ferry_socket_close(q);
    ferry_socket_close(r);
}

/*
 * REP answering a DEALER that sends [h1][h2][""][request] (a three-frame envelope) and a REQ:
 * refusals on the reply's first frame after the first envelope frame went out (the retry goes on
 * from the second), on the first envelope frame itself, on the reply's body, and on its last
 * frame. Each requester must get [envelope][reply frames] whole, once, and the next request must
 * be served normally.
 */
static void case_rep(void)
{
    printf("  %s: REP to DEALER (two-hop envelope) and REQ\n", tr_name);
    char url[300];
    ferry_socket *rep = tu_open_sock_on(FERRY_REP, tr_name),
                 *d = tu_open_sock_on(FERRY_DEALER, tr_name),
                 *q = tu_open_sock_on(FERRY_REQ, tr_name);
    tu_bind_on(rep, tr_name, url, sizeof url, "oom-rep");
    CHECK_OK(ferry_socket_connect(d, url));
    tu_wait_peers(rep, 1);
    tu_wait_peers(d, 1);
    /* Per request: the reply frame refused, bound sends let through first, refusals. With the
     * DEALER's envelope (3 frames) a skip of 1 and 2 stops inside the envelope, 3 at its body. */
    static const int plan[][3] = {{0, 1, 2}, {0, 0, 1}, {0, 2, 1},
                                  {1, 0, 2}, {3, 0, 1}, {-1, 0, 0}};
    for (uint32_t i = 0; i < 6; i++) {
        CHECK_OK(ferry_socket_send(d, "h1", 2, FERRY_MORE));
        CHECK_OK(ferry_socket_send(d, "h2", 2, FERRY_MORE));
        CHECK_OK(ferry_socket_send(d, "", 0, FERRY_MORE));
        tu_send_str(d, "ask", 0);
        tu_recv_str(rep, "ask", false);
        send_msg(rep, i, plan[i][0], plan[i][1], plan[i][2]);
        recv_exact(d, "h1", 2, true, "hop 1");
        recv_exact(d, "h2", 2, true, "hop 2");
        recv_exact(d, "", 0, true, "the delimiter");
        recv_msg(d, i);
    }
    CHECK_RC(ferry_socket_recv(d, rbuf, sizeof rbuf, FERRY_DONTWAIT, NULL), FERRY_EAGAIN);
    /* A REQ (one-frame envelope): refused on the first envelope frame, then on the body. */
    CHECK_OK(ferry_socket_connect(q, url));
    tu_wait_peers(rep, 2);
    tu_wait_peers(q, 1);
    for (uint32_t i = 10; i < 13; i++) {
        tu_send_str(q, "ask", 0);
        tu_recv_str(rep, "ask", false);
        if (i == 10)
            send_msg(rep, i, 0, 0, 2);
        else if (i == 11)
            send_msg(rep, i, 2, 0, 1);
        else
            send_msg(rep, i, -1, 0, 0);
        recv_msg(q, i);
    }
    /* The DEALER is still served after the REQ. */
    tu_send_str(d, "", FERRY_MORE);
    tu_send_str(d, "again", 0);
    tu_recv_str(rep, "again", false);
    tu_send_str(rep, "ok", 0);
    tu_recv_str(d, "", true);
    tu_recv_str(d, "ok", false);
    ferry_socket_close(q);
    ferry_socket_close(d);
    ferry_socket_close(rep);
}

/*
 * ROUTER to two DEALERs ("da", "db"): messages to each in turn, refused on the body's first frame
 * (the id frame was taken: the message is open), a middle and the last frame. Each DEALER must
 * get exactly its own messages, whole and in order.
 */
static void case_router(void)
{
    printf("  %s: ROUTER to two DEALERs\n", tr_name);
    char url[300];
    ferry_socket *r = tu_open_sock_on(FERRY_ROUTER, tr_name),
                 *da = tu_open_sock_on(FERRY_DEALER, tr_name),
                 *db = tu_open_sock_on(FERRY_DEALER, tr_name);
    CHECK_OK(ferry_socket_setopt_bytes(da, FERRY_OPT_ROUTING_ID, "da", 2));
    CHECK_OK(ferry_socket_setopt_bytes(db, FERRY_OPT_ROUTING_ID, "db", 2));
    tu_bind_on(r, tr_name, url, sizeof url, "oom-router");
    CHECK_OK(ferry_socket_connect(da, url));
    CHECK_OK(ferry_socket_connect(db, url));
    tu_wait_peers(r, 2);
    tu_wait_peers(da, 1);
    tu_wait_peers(db, 1);
    static const int plan[][2] = {{0, 2}, {2, 1}, {-1, 0}, {3, 3}, {1, 1}, {-1, 0}};
    for (uint32_t i = 0; i < 6; i++) {
        CHECK_OK(ferry_socket_send(r, i % 2 ? "db" : "da", 2, FERRY_MORE));
        send_msg(r, i, plan[i][0], 0, plan[i][1]);
    }
    for (uint32_t i = 0; i < 6; i++)
        recv_msg(i % 2 ? db : da, i);
    CHECK(stats(r).msgs_out == 6);
    /* The end: one marker each, nothing before or after it. */
    CHECK_OK(ferry_socket_send(r, "da", 2, FERRY_MORE));
    send_sentinel(r);
    CHECK_OK(ferry_socket_send(r, "db", 2, FERRY_MORE));
    send_sentinel(r);
    recv_sentinel(da);
    recv_sentinel(db);
    CHECK_RC(ferry_socket_recv(da, rbuf, sizeof rbuf, FERRY_DONTWAIT, NULL), FERRY_EAGAIN);
    CHECK_RC(ferry_socket_recv(db, rbuf, sizeof rbuf, FERRY_DONTWAIT, NULL), FERRY_EAGAIN);
    ferry_socket_close(da);
    ferry_socket_close(db);
    ferry_socket_close(r);
}

/*
 * PUSH with IMMEDIATE 0, connected before its PULL binds: two messages wait in the backlog, and
 * when the peer arrives the backlog's drain meets a refusal on the third frame of the first one.
 * The drain stops there (the message stays open on the pipe, a new message queues behind it)
 * and goes on once the pipe takes the frame; the PULL must get both, then the new message, each
 * whole and once.
 */
static void case_backlog(void)
{
    printf("  %s: PUSH backlog (IMMEDIATE 0) drained into a refusal\n", tr_name);
    char url[300];
    ferry_socket *push = tu_open_sock_on(FERRY_PUSH, tr_name),
                 *pull = tu_open_sock_on(FERRY_PULL, tr_name);
    CHECK_OK(ferry_socket_setopt_int(push, FERRY_OPT_IMMEDIATE, 0));
    CHECK_OK(ferry_socket_setopt_int(push, FERRY_OPT_RECONNECT_IVL, 10));
    tu_transport_url(url, sizeof url, tr_name, "oom-backlog");
    CHECK_OK(ferry_socket_connect(push, url));
    send_msg(push, 0, -1, 0, 0);
    send_msg(push, 1, -1, 0, 0);
    /* Frame 1 of message 0 goes, frame 2 is refused by every drain (at attach and at each later
     * call) until the fault clears; message 2 waits in the backlog behind it meanwhile. */
    tu_fault_arm(FY_FAULT_MSG_SEND_ID, 1, 1 << 30);
    for (int tries = 0;; tries++) {
        int rc = ferry_socket_bind(pull, url);
        if (rc == 0)
            break;
        /* tcp: the port was taken meanwhile; the backlog is the socket's, not the endpoint's. */
        CHECK(rc == FERRY_EADDRINUSE && tries < 20);
        CHECK_OK(ferry_socket_disconnect(push, url));
        tu_transport_url(url, sizeof url, tr_name, "oom-backlog");
        CHECK_OK(ferry_socket_connect(push, url));
    }
    tu_wait_peers(push, 1); /* attached: the drain ran */
    CHECK(tu_fault_hits() >= 1);
    int hits = tu_fault_hits();
    send_msg(push, 2, -1, 0, 0);
    CHECK(tu_fault_hits() > hits);
    tu_fault_off();
    send_sentinel(push); /* its drain completes the backlog first */
    recv_msg(pull, 0);
    recv_msg(pull, 1);
    recv_msg(pull, 2);
    recv_sentinel(pull);
    CHECK_RC(ferry_socket_recv(pull, rbuf, sizeof rbuf, FERRY_DONTWAIT, NULL), FERRY_EAGAIN);
    CHECK(stats(push).msgs_out == 4 && stats(pull).msgs_in == 4);
    ferry_socket_close(push);
    ferry_socket_close(pull);
}

/* PAIR: the same rule on its one peer. */
static void case_pair(void)
{
    printf("  %s: PAIR\n", tr_name);
    char url[300];
    ferry_socket *a = tu_open_sock_on(FERRY_PAIR, tr_name),
                 *b = tu_open_sock_on(FERRY_PAIR, tr_name);
    tu_bind_on(a, tr_name, url, sizeof url, "oom-pair");
    CHECK_OK(ferry_socket_connect(b, url));
    tu_wait_peers(a, 1);
    tu_wait_peers(b, 1);
    send_msg(b, 0, 1, 0, 2);
    send_msg(b, 1, 3, 0, 1);
    send_sentinel(b);
    recv_msg(a, 0);
    recv_msg(a, 1);
    recv_sentinel(a);
    CHECK_RC(ferry_socket_recv(a, rbuf, sizeof rbuf, FERRY_DONTWAIT, NULL), FERRY_EAGAIN);
    ferry_socket_close(a);
    ferry_socket_close(b);
}

/* Runs every case over every transport, or over the one named by the argument. */
int main(int argc, char **argv)
{
    tu_deadline(60);
    setvbuf(stdout, NULL, _IOLBF, 0);
    const char *trs[] = {"inproc", "ipc", "tcp", "shm"};
    for (size_t t = 0; t < sizeof trs / sizeof trs[0]; t++) {
        tr_name = trs[t];
        if (argc > 1 && strcmp(argv[1], tr_name) != 0)
            continue;
        case_push();
        case_dealer();
        case_req(false);
        case_req(true);
        case_rep();
        case_router();
        case_pair();
        case_backlog();
    }
    printf("test_pattern_oom: ok\n");
    return 0;
}
