/*
 * test_shm_hotpath.c - the plain copy-in/copy-out path of
 * ferry_socket_send/recv on shm links (shm:// and upgraded ipc://), which uses
 * transient ring loans and transient in-ring frames (no share reference,
 * released inside the call, batched releases). Checks that every message
 * arrives whole and in order across a small ring that fills up all the time (a
 * release that is never published would stall the sender: the test fails on its
 * progress deadline), frames held with FERRY_OPT_ZEROCOPY_RECV mixed with plain
 * receives, truncated receives, MORE frames, statistics, and a blocking
 * two-process run where both sides sleep and wake each other.
 */
#include "ferry/ferry.h"
#include "testutil.h"

#include <poll.h>
#include <stdbool.h>
#include <stdlib.h>
#include <string.h>
#include <sys/wait.h>
#include <unistd.h>

/* The forked child starts a control thread; under ThreadSanitizer that needs
 * this. */
const char *__tsan_default_options(void);
const char *__tsan_default_options(void)
{
    return "die_after_fork=0";
}

#define RING 4096

static ferry_socket *open_sock(int type)
{
    ferry_socket *s;
    CHECK_OK(ferry_socket_open(&s, type));
    CHECK_OK(ferry_socket_setopt_int(s, FERRY_OPT_SNDTIMEO, 10000));
    CHECK_OK(ferry_socket_setopt_int(s, FERRY_OPT_RCVTIMEO, 10000));
    CHECK_OK(ferry_socket_setopt_int(s, FERRY_OPT_LINGER, 1000));
    CHECK_OK(ferry_socket_setopt_int(s, FERRY_OPT_SHM_RING_SIZE, RING));
    return s;
}

static ferry_stats stats(ferry_socket *s)
{
    ferry_stats st;
    CHECK_OK(ferry_socket_stats(s, &st));
    return st;
}

/* pollfd: wait on the socket's pollfd (which makes every call keep it up to date: frames are then
 * also prefetched by the pollfd upkeep), else back off 1 ms between looks. */
static void wait_shm_peer(ferry_socket *s, bool pollfd)
{
    uint64_t t0 = tu_now_ns();
    for (;;) {
        ferry_stats st = stats(s);
        if (st.peers == 1 && st.peers_shm == 1)
            return;
        CHECK(tu_now_ns() - t0 < 10000000000ull);
        struct pollfd p = {.fd = pollfd ? ferry_socket_pollfd(s) : -1, .events = POLLIN};
        poll(&p, 1, 1);
    }
}

/* Message i: its size (mostly above the 40-byte inline limit, some below, some
 * large) and whether it has a second frame. */
static size_t msg_size(uint32_t i)
{
    static const size_t sizes[] = {64, 41, 200, 0, 40, 1000, 64, 3000, 100, 8};
    return sizes[i % 10] + (i % 7);
}

static bool msg_two_frames(uint32_t i)
{
    return i % 13 == 5;
}

static void fill(uint8_t *b, size_t n, uint32_t seed)
{
    for (size_t k = 0; k < n; k++)
        b[k] = (uint8_t)(k * 31u + seed * 7u + (seed >> 8));
}

static bool check_fill(const uint8_t *b, size_t n, uint32_t seed)
{
    for (size_t k = 0; k < n; k++)
        if (b[k] != (uint8_t)(k * 31u + seed * 7u + (seed >> 8)))
            return false;
    return true;
}

/* Sends message i without waiting: 1 sent, 0 FERRY_EAGAIN (nothing of it was
 * sent). */
static int send_one(ferry_socket *s, uint32_t i, bool block)
{
    uint8_t buf[4096];
    size_t n = msg_size(i);
    fill(buf, n, i);
    int fl = block ? 0 : FERRY_DONTWAIT;
    if (msg_two_frames(i)) {
        int rc = ferry_socket_send(s, buf, n, fl | FERRY_MORE);
        if (rc == FERRY_EAGAIN)
            return 0;
        CHECK_OK(rc);
        fill(buf, 50, i + 100000);
        CHECK_OK(ferry_socket_send(s, buf, 50, 0)); /* the rest of a started message always goes */
        return 1;
    }
    int rc = ferry_socket_send(s, buf, n, fl);
    if (rc == FERRY_EAGAIN)
        return 0;
    CHECK_OK(rc);
    return 1;
}

/* Receives message i in one of several ways: 1 received, 0 nothing there yet.
 * held: a frame received in place (FERRY_OPT_ZEROCOPY_RECV) that the caller
 * keeps for a while. */
static int recv_one(ferry_socket *s, uint32_t i, bool block, ferry_msg *held, bool *holding)
{
    uint8_t buf[4096];
    size_t n = msg_size(i);
    int fl = block ? 0 : FERRY_DONTWAIT;
    int more = -1;
    if (held && !*holding && i % 5 == 2) {
        /* Keep this one in the ring while the next ones are received the plain way.
         */
        int rc = ferry_msg_recv(s, held, fl);
        if (rc == FERRY_EAGAIN)
            return 0;
        CHECK_OK(rc);
        CHECK(ferry_msg_size(held) == n);
        CHECK(check_fill(ferry_msg_data(held), n, i));
        *holding = true;
        more = ferry_msg_more(held);
    } else {
        /* Every fourth one into a short buffer: the size is reported, cap bytes
         * copied. */
        size_t cap = (i % 4 == 3 && n > 16) ? 16 : sizeof buf;
        ssize_t r = ferry_socket_recv(s, buf, cap, fl, &more);
        if (r == FERRY_EAGAIN)
            return 0;
        CHECK(r >= 0);
        CHECK((size_t)r == n);
        CHECK(check_fill(buf, n < cap ? n : cap, i));
    }
    if (held && *holding && i % 5 == 4) {
        ferry_msg_fini(held); /* publishes the releases held back behind it */
        ferry_msg_init(held);
        *holding = false;
    }
    CHECK(more == (int)msg_two_frames(i));
    if (msg_two_frames(i)) {
        ssize_t r = ferry_socket_recv(s, buf, sizeof buf, 0, &more);
        CHECK(r == 50);
        CHECK(!more);
        CHECK(check_fill(buf, 50, i + 100000));
    }
    return 1;
}

static uint64_t total_bytes(uint32_t count)
{
    uint64_t b = 0;
    for (uint32_t i = 0; i < count; i++)
        b += msg_size(i) + (msg_two_frames(i) ? 50 : 0);
    return b;
}

/* One thread, both ends, non-blocking: send until the ring is full, then
 * receive what is there. */
static void run_interleaved(const char *scheme, int stype, int rtype, bool zc, bool pollfd)
{
    char url[200];
    snprintf(url, sizeof url, "%s://%s", scheme, tu_unique("hot"));
    if (!strcmp(scheme, "ipc"))
        snprintf(url, sizeof url, "ipc://%s/%s", tu_tmpdir(), tu_unique("hot"));
    ferry_socket *r = open_sock(rtype);
    ferry_socket *s = open_sock(stype);
    CHECK_OK(ferry_socket_setopt_int(s, FERRY_OPT_SNDHWM, 4));
    if (zc)
        CHECK_OK(ferry_socket_setopt_int(r, FERRY_OPT_ZEROCOPY_RECV, 1));
    CHECK_OK(ferry_socket_bind(r, url));
    CHECK_OK(ferry_socket_connect(s, url));
    wait_shm_peer(s, pollfd);
    wait_shm_peer(r, pollfd);

    const uint32_t count = 3000;
    uint32_t sent = 0, got = 0;
    ferry_msg held;
    ferry_msg_init(&held);
    bool holding = false;
    uint64_t last_progress = tu_now_ns();
    while (got < count) {
        uint32_t before = sent + got;
        while (sent < count && send_one(s, sent, false))
            sent++;
        while (got < sent && recv_one(r, got, false, zc ? &held : NULL, &holding))
            got++;
        if (sent + got != before) {
            last_progress = tu_now_ns();
        } else {
            if (holding) {
                /* The sender may wait for room behind the frame we hold: let it go. */
                ferry_msg_fini(&held);
                ferry_msg_init(&held);
                holding = false;
            }
            CHECK(tu_now_ns() - last_progress < 10000000000ull); /* stalled */
            struct pollfd p = {.fd = pollfd ? ferry_socket_pollfd(r) : -1, .events = POLLIN};
            poll(&p, 1, 1);
        }
    }
    ferry_msg_fini(&held);
    /* Nothing left over, nothing duplicated. */
    uint8_t b[8];
    CHECK_RC(ferry_socket_recv(r, b, sizeof b, FERRY_DONTWAIT, NULL), FERRY_EAGAIN);
    ferry_stats ss = stats(s), rs = stats(r);
    CHECK(ss.msgs_out == count && rs.msgs_in == count);
    CHECK(ss.bytes_out == total_bytes(count) && rs.bytes_in == total_bytes(count));
    /* With the pollfd in use, the upkeep may prefetch (copy) every frame before recv sees it. */
    CHECK(zc ? (pollfd || rs.zc_recvs > 0) : rs.zc_recvs == 0);
    /* The socket's own loans are not user loans. */
    CHECK(ss.zc_sends == 0 && ss.loan_copies == 0);
    ferry_socket_close(s);
    ferry_socket_close(r);
}

/* Two processes, blocking calls on both sides: each side sleeps in turn and is
 * woken by the other's publish (the releases batched by the receiver must still
 * wake a sender waiting for room). */
static void run_processes(const char *scheme)
{
    char url[200];
    snprintf(url, sizeof url, "%s://%s", scheme, tu_unique("hotp"));
    if (!strcmp(scheme, "ipc"))
        snprintf(url, sizeof url, "ipc://%s/%s", tu_tmpdir(), tu_unique("hotp"));
    const uint32_t count = 4000;
    ferry_socket *r = open_sock(FERRY_PULL);
    CHECK_OK(ferry_socket_bind(r, url));
    pid_t pid = fork();
    CHECK(pid >= 0);
    if (pid == 0) {
        ferry_socket *s = open_sock(FERRY_PUSH);
        CHECK_OK(ferry_socket_connect(s, url));
        for (uint32_t i = 0; i < count; i++)
            CHECK(send_one(s, i, true) == 1);
        ferry_socket_close(s); /* lingers until the receiver has everything */
        _exit(0);
    }
    for (uint32_t i = 0; i < count; i++)
        CHECK(recv_one(r, i, true, NULL, NULL) == 1);
    int st;
    CHECK(waitpid(pid, &st, 0) == pid);
    CHECK(WIFEXITED(st) && WEXITSTATUS(st) == 0);
    ferry_stats rs = stats(r);
    CHECK(rs.msgs_in == count && rs.bytes_in == total_bytes(count));
    ferry_socket_close(r);
}

int main(void)
{
    tu_deadline(120);
    static const char *schemes[] = {"shm", "ipc"};
    for (int k = 0; k < 2; k++) {
        run_interleaved(schemes[k], FERRY_PUSH, FERRY_PULL, false, true);
        run_interleaved(schemes[k], FERRY_PUSH, FERRY_PULL, true, false);
        run_interleaved(schemes[k], FERRY_PUSH, FERRY_PULL, true, true);
        run_interleaved(schemes[k], FERRY_PAIR, FERRY_PAIR, false, false);
        run_interleaved(schemes[k], FERRY_DEALER, FERRY_DEALER, true, false);
        run_processes(schemes[k]);
    }
    return 0;
}
