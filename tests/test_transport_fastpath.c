/*
 * test_transport_fastpath.c - ferry_socket_send/recv's fast path (a whole single-frame message
 * moved between the caller's buffer and a stream engine without the pattern) interleaved with
 * everything that must take the general path, over ipc:// and tcp://.
 *
 * The fast path is taken only for the pattern's direct pipe (one peer, nothing half sent or
 * received, nothing queued in the pattern), so the test checks the seams:
 *  - messages queued in PUSH's backlog before any peer existed (IMMEDIATE=0, SNDHWM) come out
 * before anything sent after the peer appeared: the fast path never overtakes the pattern's queue;
 *  - single frames, multipart messages, empty frames and the 8192/8193-byte copy boundary, sent
 *    alternately with ferry_socket_send and ferry_msg_send and received alternately with
 *    ferry_socket_recv and ferry_msg_recv, keep order, bodies and MORE flags, on PUSH/PULL,
 *    PAIR (both directions) and DEALER/DEALER;
 *  - a receive into a smaller buffer returns the full size and copies what fits;
 *  - the statistics count every message once.
 */
#include "ferry/ferry.h"
#include "testutil.h"

#include <stdbool.h>
#include <stdint.h>
#include <stdio.h>
#include <stdlib.h>
#include <string.h>

#define NMSG 600

static uint8_t body_byte(uint64_t seq, size_t i)
{
    return (uint8_t)(seq * 29 + i * 3 + 1);
}

static void fill(uint8_t *b, uint64_t seq, size_t len)
{
    for (size_t i = 0; i < len; i++)
        b[i] = body_byte(seq, i);
}

static void check_body(const uint8_t *b, uint64_t seq, size_t len)
{
    for (size_t i = 0; i < len; i++) {
        if (b[i] != body_byte(seq, i)) {
            fprintf(stderr, "frame %llu: byte %zu of %zu differs\n", (unsigned long long)seq, i,
                    len);
            exit(1);
        }
    }
}

static ferry_socket *open_sock(int type)
{
    ferry_socket *s;
    CHECK_OK(ferry_socket_open(&s, type));
    CHECK_OK(ferry_socket_setopt_int(s, FERRY_OPT_SHM_UPGRADE, 0));
    CHECK_OK(ferry_socket_setopt_int(s, FERRY_OPT_RCVTIMEO, 10000));
    CHECK_OK(ferry_socket_setopt_int(s, FERRY_OPT_SNDTIMEO, 10000));
    return s;
}

/* Message k's shape: number of frames and each frame's size. */
static int shape(uint64_t k, size_t sz[3])
{
    static const size_t sizes[] = {0, 1, 40, 41, 64, 255, 256, 1000, 8192, 8193, 20000};
    int n = k % 5 == 3 ? 3 : k % 7 == 2 ? 2 : 1;
    for (int i = 0; i < n; i++)
        sz[i] = sizes[(k * 3 + (uint64_t)i * 5) % (sizeof sizes / sizeof sizes[0])];
    return n;
}

static void send_msg(ferry_socket *s, uint64_t k, uint8_t *buf)
{
    size_t sz[3];
    int n = shape(k, sz);
    for (int i = 0; i < n; i++) {
        int fl = i + 1 < n ? FERRY_MORE : 0;
        uint64_t seq = k * 4 + (uint64_t)i;
        fill(buf, seq, sz[i]);
        if ((k + (uint64_t)i) % 3 == 1) {
            ferry_msg m;
            CHECK_OK(ferry_msg_init_size(&m, sz[i]));
            if (sz[i])
                memcpy(ferry_msg_data(&m), buf, sz[i]);
            CHECK_OK(ferry_msg_send(s, &m, fl));
        } else {
            CHECK_OK(ferry_socket_send(s, buf, sz[i], fl));
        }
    }
}

static void recv_msg(ferry_socket *s, uint64_t k, uint8_t *buf, size_t cap)
{
    size_t sz[3];
    int n = shape(k, sz);
    for (int i = 0; i < n; i++) {
        uint64_t seq = k * 4 + (uint64_t)i;
        bool more = i + 1 < n;
        if ((k + (uint64_t)i) % 4 == 2) {
            ferry_msg m;
            ferry_msg_init(&m);
            CHECK_OK(ferry_msg_recv(s, &m, 0));
            CHECK(ferry_msg_size(&m) == sz[i]);
            CHECK(ferry_msg_more(&m) == more);
            check_body(ferry_msg_data(&m), seq, sz[i]);
            ferry_msg_fini(&m);
        } else {
            /* Now and then a buffer too small: the full size comes back, cap bytes are copied. */
            size_t c = (k % 11 == 5 && sz[i] > 10) ? sz[i] / 2 : cap;
            int mr = -1;
            ssize_t got = ferry_socket_recv(s, buf, c, 0, &mr);
            CHECK(got == (ssize_t)sz[i]);
            CHECK(mr == (more ? 1 : 0));
            check_body(buf, seq, sz[i] < c ? sz[i] : c);
        }
    }
}

/* a sends NMSG messages to b (and b to a when both) in lock step batches. */
static void exchange(ferry_socket *a, ferry_socket *b, bool both)
{
    uint8_t *buf = malloc(32768);
    CHECK(buf);
    for (uint64_t k = 0; k < NMSG; k += 20) {
        for (uint64_t j = k; j < k + 20; j++) {
            send_msg(a, j, buf);
            if (both)
                send_msg(b, j + 7, buf);
        }
        for (uint64_t j = k; j < k + 20; j++) {
            recv_msg(b, j, buf, 32768);
            if (both)
                recv_msg(a, j + 7, buf, 32768);
        }
    }
    free(buf);
    uint64_t msgs = NMSG;
    ferry_stats st;
    CHECK_OK(ferry_socket_stats(a, &st));
    CHECK(st.msgs_out == msgs && st.msgs_in == (both ? msgs : 0));
    CHECK_OK(ferry_socket_stats(b, &st));
    CHECK(st.msgs_in == msgs && st.msgs_out == (both ? msgs : 0));
}

static void wait_peer(ferry_socket *s)
{
    uint64_t deadline = tu_now_ns() + 10000000000ull;
    for (;;) {
        ferry_stats st;
        CHECK_OK(ferry_socket_stats(s, &st));
        if (st.peers >= 1)
            return;
        CHECK(tu_now_ns() < deadline);
        ferry_poll(NULL, 0, 1);
    }
}

static void pairs(const char *url_a, const char *url_b, const char *url_c)
{
    ferry_socket *pull = open_sock(FERRY_PULL), *push = open_sock(FERRY_PUSH);
    CHECK_OK(ferry_socket_bind(pull, url_a));
    CHECK_OK(ferry_socket_connect(push, url_a));
    exchange(push, pull, false);
    ferry_socket_close(push);
    ferry_socket_close(pull);

    ferry_socket *p1 = open_sock(FERRY_PAIR), *p2 = open_sock(FERRY_PAIR);
    CHECK_OK(ferry_socket_bind(p1, url_b));
    CHECK_OK(ferry_socket_connect(p2, url_b));
    wait_peer(p2);
    exchange(p1, p2, true);
    ferry_socket_close(p1);
    ferry_socket_close(p2);

    ferry_socket *d1 = open_sock(FERRY_DEALER), *d2 = open_sock(FERRY_DEALER);
    CHECK_OK(ferry_socket_bind(d1, url_c));
    CHECK_OK(ferry_socket_connect(d2, url_c));
    wait_peer(d1);
    exchange(d2, d1, true);
    ferry_socket_close(d1);
    ferry_socket_close(d2);
}

/* Messages queued in PUSH's backlog (no peer yet) stay ahead of later sends. */
static void backlog(const char *url)
{
    ferry_socket *push = open_sock(FERRY_PUSH);
    CHECK_OK(ferry_socket_setopt_int(push, FERRY_OPT_SNDHWM, 8));
    CHECK_OK(ferry_socket_setopt_int(push, FERRY_OPT_IMMEDIATE, 0));
    CHECK_OK(ferry_socket_connect(push, url));
    uint64_t seq = 0;
    uint8_t buf[64];
    /* No peer: the backlog takes SNDHWM messages, then refuses. */
    for (;;) {
        fill(buf, seq, sizeof buf);
        int rc = ferry_socket_send(push, buf, sizeof buf, FERRY_DONTWAIT);
        if (rc == FERRY_EAGAIN)
            break;
        CHECK_OK(rc);
        seq++;
    }
    CHECK(seq == 8);
    ferry_socket *pull = open_sock(FERRY_PULL);
    CHECK_OK(ferry_socket_bind(pull, url));
    uint64_t next = 0;
    uint64_t deadline = tu_now_ns() + 20000000000ull;
    /* Keep sending without blocking; receive whenever the sender is refused. */
    while (seq < 400) {
        fill(buf, seq, sizeof buf);
        int rc = ferry_socket_send(push, buf, sizeof buf, FERRY_DONTWAIT);
        if (rc == 0) {
            seq++;
            continue;
        }
        CHECK_RC(rc, FERRY_EAGAIN);
        /* The PUSH attaches its peer (and drains its backlog into it) only inside its own
         * calls, so never block here: retry the send when nothing has arrived yet. */
        uint8_t in[64];
        ssize_t n = ferry_socket_recv(pull, in, sizeof in, FERRY_DONTWAIT, NULL);
        if (n == FERRY_EAGAIN) {
            CHECK(tu_now_ns() < deadline);
            ferry_poll(NULL, 0, 1);
            continue;
        }
        CHECK(n == 64);
        check_body(in, next++, 64);
    }
    while (next < seq) {
        uint8_t in[64];
        CHECK(ferry_socket_recv(pull, in, sizeof in, 0, NULL) == 64);
        check_body(in, next++, 64);
    }
    ferry_socket_close(push);
    ferry_socket_close(pull);
}

int main(void)
{
    tu_deadline(60);
    char a[300], b[300], c[300], d[300];
    snprintf(a, sizeof a, "ipc://%s/%s", tu_tmpdir(), tu_unique("fa"));
    snprintf(b, sizeof b, "ipc://%s/%s", tu_tmpdir(), tu_unique("fb"));
    snprintf(c, sizeof c, "ipc://%s/%s", tu_tmpdir(), tu_unique("fc"));
    snprintf(d, sizeof d, "ipc://%s/%s", tu_tmpdir(), tu_unique("fd"));
    pairs(a, b, c);
    backlog(d);
    snprintf(a, sizeof a, "tcp://127.0.0.1:%d", tu_free_port());
    snprintf(b, sizeof b, "tcp://127.0.0.1:%d", tu_free_port());
    snprintf(c, sizeof c, "tcp://127.0.0.1:%d", tu_free_port());
    snprintf(d, sizeof d, "tcp://127.0.0.1:%d", tu_free_port());
    pairs(a, b, c);
    backlog(d);
    return 0;
}
