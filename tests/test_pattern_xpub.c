/*
 * test_pattern_xpub.c - FERRY_OPT_XPUB_VERBOSE: by default an XPUB reports a prefix only when its
 * first holder subscribes; verbose reports every subscribe message (a second subscriber, the same
 * subscriber again), while cancels are reported only when the last holder drops the prefix either
 * way (libzmq ZMQ_XPUB_VERBOSE). Also the option's validation.
 */
#include "testutil.h"

#include "ferry/ferry.h"

#include <stdbool.h>
#include <string.h>

#define TIMEOUT_MS 5000

static ferry_socket *open_sock(int type)
{
    ferry_socket *s = NULL;
    CHECK_OK(ferry_socket_open(&s, type));
    CHECK_OK(ferry_socket_setopt_int(s, FERRY_OPT_LINGER, 0));
    CHECK_OK(ferry_socket_setopt_int(s, FERRY_OPT_RCVTIMEO, TIMEOUT_MS));
    CHECK_OK(ferry_socket_setopt_int(s, FERRY_OPT_SNDTIMEO, TIMEOUT_MS));
    return s;
}

static void wait_peers(ferry_socket *s, uint32_t n)
{
    uint64_t end = tu_now_ns() + (uint64_t)TIMEOUT_MS * 1000000u;
    for (;;) {
        ferry_stats st;
        CHECK_OK(ferry_socket_stats(s, &st));
        if (st.peers == n)
            return;
        CHECK(tu_now_ns() < end);
        ferry_pollitem it = {s, -1, FERRY_POLLIN, 0};
        ferry_poll(&it, 1, 5);
    }
}

/* The next notice must be exactly 0x01/0x00 + prefix. */
static void expect(ferry_socket *x, bool on, const char *prefix)
{
    char buf[32];
    ssize_t n = ferry_socket_recv(x, buf, sizeof buf, 0, NULL);
    size_t len = strlen(prefix);
    if (n != (ssize_t)len + 1 || buf[0] != (on ? 1 : 0) || memcmp(buf + 1, prefix, len) != 0) {
        fprintf(stderr, "want %s '%s', got %zd bytes (first %d)\n", on ? "sub" : "cancel", prefix,
                n, n > 0 ? buf[0] : -1);
        exit(1);
    }
}

/* Nothing more queued: a marker subscription from s2 must be the very next notice. */
static void expect_nothing_before_marker(ferry_socket *x, ferry_socket *marker_sub, const char *m)
{
    CHECK_OK(ferry_socket_subscribe(marker_sub, m, strlen(m)));
    expect(x, true, m);
}

static void run(bool verbose)
{
    char url[300];
    snprintf(url, sizeof url, "ipc://%s/%s", tu_tmpdir(), tu_unique("xv"));
    ferry_socket *x = open_sock(FERRY_XPUB), *s1 = open_sock(FERRY_SUB), *s2 = open_sock(FERRY_SUB);
    CHECK_OK(ferry_socket_setopt_int(x, FERRY_OPT_XPUB_VERBOSE, verbose));
    CHECK_OK(ferry_socket_bind(x, url));
    CHECK_OK(ferry_socket_connect(s1, url));
    CHECK_OK(ferry_socket_connect(s2, url));
    wait_peers(x, 2);
    wait_peers(s1, 1);
    wait_peers(s2, 1);
    CHECK_OK(ferry_socket_subscribe(s1, "a", 1));
    expect(x, true, "a");
    CHECK_OK(ferry_socket_subscribe(s2, "a", 1)); /* a second holder */
    if (verbose)
        expect(x, true, "a");
    CHECK_OK(ferry_socket_subscribe(s1, "a", 1)); /* the same holder again (SUB forwards it) */
    if (verbose)
        expect(x, true, "a");
    expect_nothing_before_marker(x, s2, "m1");
    /* Cancels: s1 needs two unsubscribes (its own count); only the last holder's cancel shows. */
    CHECK_OK(ferry_socket_unsubscribe(s1, "a", 1));
    CHECK_OK(ferry_socket_unsubscribe(s1, "a", 1));
    expect_nothing_before_marker(x, s2, "m2");
    CHECK_OK(ferry_socket_unsubscribe(s2, "a", 1));
    expect(x, false, "a");
    ferry_socket_close(s1);
    ferry_socket_close(s2);
    ferry_socket_close(x);
}

static void option(void)
{
    ferry_socket *x = open_sock(FERRY_XPUB), *p = open_sock(FERRY_PUB);
    int64_t v = -1;
    CHECK_OK(ferry_socket_getopt_int(x, FERRY_OPT_XPUB_VERBOSE, &v));
    CHECK(v == 0);
    CHECK_RC(ferry_socket_setopt_int(x, FERRY_OPT_XPUB_VERBOSE, 2), FERRY_EINVAL);
    int one = 1;
    CHECK_OK(ferry_socket_setopt_bytes(x, FERRY_OPT_XPUB_VERBOSE, &one, sizeof one));
    CHECK_OK(ferry_socket_getopt_int(x, FERRY_OPT_XPUB_VERBOSE, &v));
    CHECK(v == 1);
    CHECK_RC(ferry_socket_setopt_int(p, FERRY_OPT_XPUB_VERBOSE, 1), FERRY_EINVAL);
    CHECK_RC(ferry_socket_setopt_int(x, 12345, 1), FERRY_EINVAL);
    ferry_socket_close(x);
    ferry_socket_close(p);
}

int main(void)
{
    tu_deadline(60);
    option();
    run(false);
    run(true);
    printf("test_pattern_xpub: ok\n");
    return 0;
}
