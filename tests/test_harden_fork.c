/*
 * test_harden_fork.c - fork() while ferry sockets are live and busy. The child
 * must get FERRY_ECHILD_FORK (promptly: no hang, no assert, no crash) from
 * every operation on a socket it inherited: send, recv, msg send/recv, bind,
 * connect, unbind, disconnect, options, stats, events, poll; closing an
 * inherited socket must not disturb the parent's copy. The child can then open
 * new sockets and exchange messages with its parent over ipc://, tcp:// and
 * shm://. Each round forks while the parent has live links with traffic in
 * flight. Rounds: FERRY_FORK_ROUNDS (default 8).
 */
#include "ferry/ferry.h"
#include "testutil.h"

#include <signal.h>
#include <stdbool.h>
#include <stdio.h>
#include <stdlib.h>
#include <string.h>
#include <sys/wait.h>
#include <unistd.h>

/* The forked children start a control thread; under ThreadSanitizer that needs
 * this. */
const char *__tsan_default_options(void);
const char *__tsan_default_options(void)
{
    return "die_after_fork=0";
}

static ferry_socket *sock(int type)
{
    ferry_socket *s;
    CHECK_OK(ferry_socket_open(&s, type));
    CHECK_OK(ferry_socket_setopt_int(s, FERRY_OPT_RCVTIMEO, 10000));
    CHECK_OK(ferry_socket_setopt_int(s, FERRY_OPT_SNDTIMEO, 10000));
    return s;
}

/* In the child: reports the first operation that did not fail with
 * FERRY_ECHILD_FORK. */
#define CHILD_EXPECT(expr)                                                                         \
    do {                                                                                           \
        long long r_ = (long long)(expr);                                                          \
        if (r_ != FERRY_ECHILD_FORK) {                                                             \
            fprintf(stderr, "child: %s returned %lld (%s), expected FERRY_ECHILD_FORK\n", #expr,   \
                    r_, ferry_errname((int)r_));                                                   \
            fflush(stderr);                                                                        \
            _exit(2);                                                                              \
        }                                                                                          \
    } while (0)

#define CHILD_OK(expr)                                                                             \
    do {                                                                                           \
        long long r_ = (long long)(expr);                                                          \
        if (r_ < 0) {                                                                              \
            fprintf(stderr, "child: %s returned %lld (%s)\n", #expr, r_, ferry_errname((int)r_));  \
            fflush(stderr);                                                                        \
            _exit(3);                                                                              \
        }                                                                                          \
    } while (0)

static void child_inherited(ferry_socket *s, const char *ep)
{
    char buf[16];
    CHILD_EXPECT(ferry_socket_send(s, "x", 1, 0)); /* blocking: must not wait */
    CHILD_EXPECT(ferry_socket_send(s, "x", 1, FERRY_DONTWAIT));
    CHILD_EXPECT(ferry_socket_recv(s, buf, sizeof buf, 0, NULL));
    CHILD_EXPECT(ferry_socket_recv(s, buf, sizeof buf, FERRY_DONTWAIT, NULL));
    ferry_msg m;
    ferry_msg_init(&m);
    CHILD_EXPECT(ferry_msg_recv(s, &m, 0));
    CHILD_OK(ferry_msg_init_size(&m, 3));
    CHILD_EXPECT(ferry_msg_send(s, &m, 0));
    ferry_msg_fini(&m);
    CHILD_EXPECT(ferry_socket_bind(s, "tcp://127.0.0.1:*"));
    CHILD_EXPECT(ferry_socket_connect(s, ep));
    CHILD_EXPECT(ferry_socket_unbind(s, ep));
    CHILD_EXPECT(ferry_socket_disconnect(s, ep));
    CHILD_EXPECT(ferry_socket_setopt_int(s, FERRY_OPT_SNDHWM, 5));
    int64_t v;
    CHILD_EXPECT(ferry_socket_getopt_int(s, FERRY_OPT_SNDHWM, &v));
    ferry_stats st;
    CHILD_EXPECT(ferry_socket_stats(s, &st));
    CHILD_EXPECT(ferry_socket_events(s));
    ferry_pollitem it = {.socket = s, .events = FERRY_POLLIN};
    CHILD_EXPECT(ferry_poll(&it, 1, 1000));
    ferry_socket_close(s); /* must not disturb the parent, must not hang */
}

/* The child's fresh socket talks to the parent's listener `ep`: ping, then pong
 * back. */
static void child_fresh(const char *ep, unsigned round)
{
    ferry_socket *c;
    CHILD_OK(ferry_socket_open(&c, FERRY_PAIR));
    CHILD_OK(ferry_socket_setopt_int(c, FERRY_OPT_RCVTIMEO, 10000));
    CHILD_OK(ferry_socket_setopt_int(c, FERRY_OPT_SNDTIMEO, 10000));
    CHILD_OK(ferry_socket_connect(c, ep));
    char msg[32], got[32];
    int n = snprintf(msg, sizeof msg, "child-%u", round);
    CHILD_OK(ferry_socket_send(c, msg, (size_t)n, 0));
    ssize_t r = ferry_socket_recv(c, got, sizeof got, 0, NULL);
    CHILD_OK(r);
    if (r != 6 || memcmp(got, "parent", 6) != 0)
        _exit(4);
    ferry_socket_close(c);
}

static void round_trip(ferry_socket *a, ferry_socket *b, unsigned i)
{
    char m[32], g[32];
    int n = snprintf(m, sizeof m, "m%u", i);
    CHECK_OK(ferry_socket_send(a, m, (size_t)n, 0));
    CHECK_RC(ferry_socket_recv(b, g, sizeof g, 0, NULL), n);
    CHECK(memcmp(g, m, (size_t)n) == 0);
}

int main(void)
{
    tu_deadline(100);
    const char *rv = getenv("FERRY_FORK_ROUNDS");
    unsigned rounds = rv && *rv ? (unsigned)strtoul(rv, NULL, 10) : 6;
    const char *tmp = tu_tmpdir();

    /* Live, busy links the child inherits: an ipc pair (shm-upgraded) and a tcp
     * pair. */
    char ipc_ep[200], tcp_ep[200];
    snprintf(ipc_ep, sizeof ipc_ep, "ipc://%s/%s", tmp, tu_unique("fk"));
    ferry_socket *ia = sock(FERRY_PAIR), *ib = sock(FERRY_PAIR);
    CHECK_OK(ferry_socket_bind(ia, ipc_ep));
    CHECK_OK(ferry_socket_connect(ib, ipc_ep));
    ferry_socket *ta = sock(FERRY_PAIR), *tb = sock(FERRY_PAIR);
    CHECK_OK(ferry_socket_bind(ta, "tcp://127.0.0.1:*"));
    CHECK_OK(ferry_socket_last_endpoint(ta, tcp_ep, sizeof tcp_ep));
    CHECK_OK(ferry_socket_connect(tb, tcp_ep));
    round_trip(ia, ib, 0);
    round_trip(ta, tb, 0);

    /* Listeners for the children, one per transport in turn. */
    const char *kinds[] = {"ipc", "tcp", "shm"};
    unsigned done[3] = {0, 0, 0};
    uint64_t worst_ns = 0;
    unsigned slow_rounds = 0;
    for (unsigned r = 0; r < rounds; r++) {
        unsigned k = r % 3;
        ferry_socket *l = sock(FERRY_PAIR);
        char ep[200];
        if (k == 0)
            snprintf(ep, sizeof ep, "ipc://%s/%s", tmp, tu_unique("fkc"));
        else if (k == 1)
            snprintf(ep, sizeof ep, "tcp://127.0.0.1:*");
        else
            snprintf(ep, sizeof ep, "shm://%s", tu_unique("fkc"));
        int brc = ferry_socket_bind(l, ep);
        if (k == 2 && brc == FERRY_EPROTONOSUPPORT) {
            ferry_socket_close(l);
            continue;
        }
        CHECK_OK(brc);
        CHECK_OK(ferry_socket_last_endpoint(l, ep, sizeof ep));

        /* Traffic in flight at the moment of fork: queued, unreceived messages on
         * both links. */
        for (unsigned i = 0; i < 20; i++) {
            CHECK_OK(ferry_socket_send(ia, "inflight", 8, 0));
            CHECK_OK(ferry_socket_send(tb, "inflight", 8, 0));
        }
        fflush(stdout);
        fflush(stderr);
        pid_t pid = fork();
        CHECK(pid >= 0);
        if (pid == 0) {
            alarm(30);
            child_inherited(ia, ipc_ep);
            child_inherited(ib, ipc_ep);
            child_inherited(ta, tcp_ep);
            child_inherited(tb, tcp_ep);
            child_inherited(l, ep);
            child_fresh(ep, r);
            _exit(0);
        }
        /* The parent answers the child on the listener, then drains its own links
         * intact. */
        char got[32], want[32];
        int n = snprintf(want, sizeof want, "child-%u", r);
        uint64_t t0 = tu_now_ns();
        CHECK_RC(ferry_socket_recv(l, got, sizeof got, 0, NULL), n);
        uint64_t waited = tu_now_ns() - t0;
        if (waited > worst_ns)
            worst_ns = waited;
        if (waited > 5000000000ull) {
            fprintf(stderr,
                    "round %u, %s: the parent's blocking recv on a fresh listener slept %.1f s "
                    "(towards its 10 s RCVTIMEO) although the child's message had arrived: a "
                    "missed wake-up when a new peer attaches during recv (known bug 1)\n",
                    r, kinds[k], (double)waited / 1e9);
            slow_rounds++;
        }
        CHECK(memcmp(got, want, (size_t)n) == 0);
        CHECK_OK(ferry_socket_send(l, "parent", 6, 0));
        for (unsigned i = 0; i < 20; i++) {
            CHECK_RC(ferry_socket_recv(ib, got, sizeof got, 0, NULL), 8);
            CHECK_RC(ferry_socket_recv(ta, got, sizeof got, 0, NULL), 8);
        }
        int status;
        CHECK(waitpid(pid, &status, 0) == pid);
        if (!WIFEXITED(status) || WEXITSTATUS(status) != 0) {
            fprintf(stderr, "round %u (%s): child %s %d\n", r, kinds[k],
                    WIFEXITED(status) ? "exited" : "killed by signal",
                    WIFEXITED(status) ? WEXITSTATUS(status) : WTERMSIG(status));
            return 1;
        }
        round_trip(ia, ib, r + 1);
        round_trip(ib, ia, r + 1);
        round_trip(ta, tb, r + 1);
        round_trip(tb, ta, r + 1);
        ferry_socket_close(l);
        done[k]++;
    }
    printf("fork rounds: ipc %u, tcp %u, shm %u; every inherited-socket call gave "
           "FERRY_ECHILD_FORK, children talked to the parent\n",
           done[0], done[1], done[2]);
    printf("parent's longest wait for a child's first message: %.1f ms (%u rounds over 5 s)\n",
           (double)worst_ns / 1e6, slow_rounds);
    CHECK(done[0] + done[1] > 0);
    /* Known bug 1 (fixed in 0037407) showed here as a recv sleeping until its RCVTIMEO. */
    CHECK(slow_rounds == 0);
    ferry_socket_close(ia);
    ferry_socket_close(ib);
    ferry_socket_close(ta);
    ferry_socket_close(tb);
    return 0;
}
