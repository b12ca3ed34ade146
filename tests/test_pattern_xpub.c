/*
 * test_pattern_xpub.c - FERRY_OPT_XPUB_VERBOSE: by default an XPUB reports a prefix only when its
 * first holder subscribes; verbose reports every subscribe message (a second subscriber, the same
 * subscriber again), while cancels are reported only when the last holder drops the prefix either
 * way (libzmq ZMQ_XPUB_VERBOSE). Also the option's validation, an XSUB leaving in the middle of
 * an upstream message, and a notice never landing inside another peer's upstream message, before
 * or after the application has started receiving it.
 */
#include "testutil.h"

#include "ferry/ferry.h"

#include <stdbool.h>
#include <string.h>

/* Nothing more queued: a marker subscription from s2 must be the very next notice. */
static void expect_nothing_before_marker(ferry_socket *x, ferry_socket *marker_sub, const char *m)
{
    CHECK_OK(ferry_socket_subscribe(marker_sub, m, strlen(m)));
    tu_expect_sub(x, true, m);
}

static void run(bool verbose)
{
    char url[300];
    snprintf(url, sizeof url, "ipc://%s/%s", tu_tmpdir(), tu_unique("xv"));
    ferry_socket *x = tu_open_sock(FERRY_XPUB), *s1 = tu_open_sock(FERRY_SUB),
                 *s2 = tu_open_sock(FERRY_SUB);
    CHECK_OK(ferry_socket_setopt_int(x, FERRY_OPT_XPUB_VERBOSE, verbose));
    CHECK_OK(ferry_socket_bind(x, url));
    CHECK_OK(ferry_socket_connect(s1, url));
    CHECK_OK(ferry_socket_connect(s2, url));
    tu_wait_peers(x, 2);
    tu_wait_peers(s1, 1);
    tu_wait_peers(s2, 1);
    CHECK_OK(ferry_socket_subscribe(s1, "a", 1));
    tu_expect_sub(x, true, "a");
    CHECK_OK(ferry_socket_subscribe(s2, "a", 1)); /* a second holder */
    if (verbose)
        tu_expect_sub(x, true, "a");
    CHECK_OK(ferry_socket_subscribe(s1, "a", 1)); /* the same holder again (SUB forwards it) */
    if (verbose)
        tu_expect_sub(x, true, "a");
    expect_nothing_before_marker(x, s2, "m1");
    /* Cancels: s1 needs two unsubscribes (its own count); only the last holder's cancel shows. */
    CHECK_OK(ferry_socket_unsubscribe(s1, "a", 1));
    CHECK_OK(ferry_socket_unsubscribe(s1, "a", 1));
    expect_nothing_before_marker(x, s2, "m2");
    CHECK_OK(ferry_socket_unsubscribe(s2, "a", 1));
    tu_expect_sub(x, false, "a");
    ferry_socket_close(s1);
    ferry_socket_close(s2);
    ferry_socket_close(x);
}

static void option(void)
{
    ferry_socket *x = tu_open_sock(FERRY_XPUB), *p = tu_open_sock(FERRY_PUB);
    int64_t v = -1;
    CHECK_OK(ferry_socket_getopt_int(x, FERRY_OPT_XPUB_VERBOSE, &v));
    CHECK(v == 0);
    CHECK_RC(ferry_socket_setopt_int(x, FERRY_OPT_XPUB_VERBOSE, 2), FERRY_EINVAL);
    int one = 1;
    CHECK_OK(ferry_socket_setopt_bytes(x, FERRY_OPT_XPUB_VERBOSE, &one, sizeof one));
    CHECK_OK(ferry_socket_getopt_int(x, FERRY_OPT_XPUB_VERBOSE, &v));
    CHECK(v == 1);
    /* A PUB takes it too (libzmq's PUB is an XPUB that cannot receive), with nothing to report. */
    CHECK_OK(ferry_socket_setopt_int(p, FERRY_OPT_XPUB_VERBOSE, 1));
    CHECK_OK(ferry_socket_getopt_int(p, FERRY_OPT_XPUB_VERBOSE, &v));
    CHECK(v == 1);
    CHECK_RC(ferry_socket_setopt_int(p, FERRY_OPT_XPUB_VERBOSE, 2), FERRY_EINVAL);
    CHECK_RC(ferry_socket_setopt_int(x, 12345, 1), FERRY_EINVAL);
    CHECK_RC(ferry_socket_setopt_int(p, 12345, 1), FERRY_EINVAL);
    ferry_socket_close(x);
    ferry_socket_close(p);
}

/*
 * An XSUB that leaves in the middle of an upstream message: what was queued of it ends there (its
 * last queued frame is delivered as the last), and the next peer's message is a message of its
 * own, not appended to the cut one. Over inproc:// frames are in the XPUB's ring when send
 * returns; a is the XPUB's first pipe, so it is read first.
 */
static void cut_upstream(void)
{
    char url[64];
    snprintf(url, sizeof url, "inproc://%s", tu_unique("xcut"));
    ferry_socket *x = tu_open_sock(FERRY_XPUB), *a = tu_open_sock(FERRY_XSUB),
                 *b = tu_open_sock(FERRY_XSUB);
    CHECK_OK(ferry_socket_bind(x, url));
    CHECK_OK(ferry_socket_connect(a, url));
    tu_wait_peers(x, 1);
    CHECK_OK(ferry_socket_connect(b, url));
    tu_wait_peers(x, 2);
    tu_send_str(a, "u-a0", FERRY_MORE);
    ferry_socket_close(a);
    tu_send_str(b, "u-b0", 0);
    tu_recv_str(x, "u-a0", false);
    tu_recv_str(x, "u-b0", false);
    ferry_socket_close(b);
    ferry_socket_close(x);
}

/*
 * A subscriber leaving while another peer's upstream message is half queued: its cancel notice
 * goes in front of that message, never between its frames.
 */
/* An XPUB on inproc (url) with XSUBs a and b linked, b subscribed to "t" (the notice taken),
 * and a's upstream message started with "u0" (MORE). */
static ferry_socket *xpub_two_xsubs(char *url, size_t cap, ferry_socket **a, ferry_socket **b)
{
    snprintf(url, cap, "inproc://%s", tu_unique("xn"));
    ferry_socket *x = tu_open_sock(FERRY_XPUB);
    *a = tu_open_sock(FERRY_XSUB);
    *b = tu_open_sock(FERRY_XSUB);
    CHECK_OK(ferry_socket_bind(x, url));
    CHECK_OK(ferry_socket_connect(*a, url));
    CHECK_OK(ferry_socket_connect(*b, url));
    tu_wait_peers(x, 2);
    CHECK_OK(ferry_socket_subscribe(*b, "t", 1));
    tu_expect_sub(x, true, "t");
    tu_send_str(*a, "u0", FERRY_MORE);
    return x;
}

static void notice_not_inside_upstream(void)
{
    char url[64];
    ferry_socket *a, *b, *x = xpub_two_xsubs(url, sizeof url, &a, &b);
    CHECK(ferry_socket_events(x) == (FERRY_POLLIN | FERRY_POLLOUT)); /* u0 is queued */
    ferry_socket_close(b);
    tu_wait_peers(x, 1); /* b detached: its cancel is queued */
    tu_expect_sub(x, false, "t");
    tu_recv_str(x, "u0", true);
    tu_send_str(a, "u1", 0);
    tu_recv_str(x, "u1", false);
    ferry_socket_close(a);
    ferry_socket_close(x);
}

/*
 * A notice that arrives while the application is inside another peer's upstream message (it has
 * received frames with MORE, the last frame has not arrived) waits until that message ends: it
 * is never received as one of its frames. When the message's sender leaves before its last
 * frame, the held notices come out then (the next frame starts a new message, as documented).
 */
static void notice_after_taken_upstream(bool sender_leaves)
{
    char url[64];
    ferry_socket *a, *b, *x = xpub_two_xsubs(url, sizeof url, &a, &b);
    ferry_socket *c = tu_open_sock(FERRY_XSUB);
    tu_recv_str(x, "u0", true);
    ferry_socket_close(b); /* its cancel arrives while x is inside a's message */
    tu_wait_peers(x, 1);
    CHECK_OK(ferry_socket_connect(c, url));
    tu_wait_peers(x, 2);
    CHECK_OK(ferry_socket_subscribe(c, "c", 1)); /* and a new subscription too */
    char buf[16];
    int more = -1;
    uint64_t end = tu_now_ns() + 100000000u; /* 100 ms of looking: nothing may come out */
    while (tu_now_ns() < end)
        CHECK_RC(ferry_socket_recv(x, buf, sizeof buf, FERRY_DONTWAIT, &more), FERRY_EAGAIN);
    CHECK(ferry_socket_events(x) == FERRY_POLLOUT);
    if (sender_leaves) {
        ferry_socket_close(a);
        tu_wait_peers(x, 1);
    } else {
        tu_send_str(a, "u1", FERRY_MORE);
        tu_recv_str(x, "u1", true);
        tu_send_str(a, "u2", 0);
        tu_recv_str(x, "u2", false);
    }
    tu_expect_sub(x, false, "t"); /* both, in the order they arrived */
    tu_expect_sub(x, true, "c");
    if (!sender_leaves) {
        /* The next message and notice are in arrival order again. */
        tu_send_str(a, "u3", 0);
        CHECK_OK(ferry_socket_subscribe(c, "d", 1));
        tu_recv_str(x, "u3", false);
        tu_expect_sub(x, true, "d");
        ferry_socket_close(a);
    }
    CHECK_RC(ferry_socket_recv(x, buf, sizeof buf, FERRY_DONTWAIT, &more), FERRY_EAGAIN);
    ferry_socket_close(c);
    ferry_socket_close(x);
}

int main(void)
{
    tu_deadline(60);
    option();
    run(false);
    run(true);
    cut_upstream();
    notice_not_inside_upstream();
    notice_after_taken_upstream(false);
    notice_after_taken_upstream(true);
    printf("test_pattern_xpub: ok\n");
    return 0;
}
