/*
 * test_pattern_pollfd.c - the level-triggered pollfd (ferry_socket_pollfd) and ferry_poll against
 * input that a pattern holds in user space (REP/REQ/ROUTER/SUB/XSUB prefetch, XPUB notices, the
 * rest of a multipart message), for every socket type; and SUB/XSUB subscriptions reaching a
 * publisher that appears while the subscriber sleeps in recv or in poll(2) on its pollfd.
 *
 * The rule checked everywhere: whenever ferry_socket_recv(DONTWAIT) would succeed, poll(2) on the
 * pollfd reports POLLIN (a false "not readable" hangs an event loop forever), and once everything
 * was received and ferry_socket_events() was called, the fd is not readable.
 */
#include "testutil.h"

#include "ferry/ferry.h"

#include <poll.h>
#include <pthread.h>
#include <stdatomic.h>
#include <stdbool.h>
#include <string.h>
#include <unistd.h>

static bool readable(int fd, int ms)
{
    struct pollfd p = {.fd = fd, .events = POLLIN};
    int r = poll(&p, 1, ms);
    CHECK(r >= 0);
    return r > 0 && (p.revents & POLLIN);
}

/* Waits for the pollfd like an event loop would (poll(2) only, no other ferry call), then
 * receives one frame without waiting and compares it. A stream socket's fd is in the pollfd, so
 * the first bytes of a message the peer's engine wrote in two pieces (under load its control
 * thread may flush a batch between two frames) make it readable before the frame is whole: that
 * recv answers FERRY_EAGAIN and the loop polls again, as an event loop does. Input the fd hides
 * still fails here (never readable within TU_TIMEOUT_MS). */
static void fd_recv(ferry_socket *s, const char *want, bool more)
{
    int fd = ferry_socket_pollfd(s);
    CHECK(fd >= 0);
    uint64_t end = tu_now_ns() + (uint64_t)TU_TIMEOUT_MS * 1000000u;
    char buf[256];
    int m = -1;
    ssize_t n;
    for (;;) {
        uint64_t now = tu_now_ns();
        if (now >= end || !readable(fd, (int)((end - now) / 1000000u) + 1)) {
            fprintf(stderr, "pollfd not readable while '%s' is due (type %d)\n", want,
                    (int)ferry_socket_events(s));
            exit(1);
        }
        n = ferry_socket_recv(s, buf, sizeof buf, FERRY_DONTWAIT, &m);
        if (n != FERRY_EAGAIN)
            break;
    }
    if (n < 0) {
        fprintf(stderr, "recv (want '%s'): %s\n", want, ferry_errname((int)n));
        exit(1);
    }
    if ((size_t)n != strlen(want) || memcmp(buf, want, (size_t)n) != 0) {
        fprintf(stderr, "got '%.*s', want '%s'\n", (int)(n < 256 ? n : 256), buf, want);
        exit(1);
    }
    CHECK(m == (more ? 1 : 0));
}

/* Everything was received: after one events() call the fd must settle to not readable. */
static void fd_idle(ferry_socket *s)
{
    int fd = ferry_socket_pollfd(s);
    CHECK((ferry_socket_events(s) & FERRY_POLLIN) == 0);
    CHECK(!readable(fd, 0));
    char c;
    ssize_t rc = ferry_socket_recv(s, &c, 1, FERRY_DONTWAIT, NULL);
    CHECK(rc == FERRY_EAGAIN || rc == FERRY_EFSM); /* EFSM: REQ/REP whose turn is to send */
    CHECK(!readable(fd, 0));
}

/* Waits until events() reports POLLIN on s (which makes the pattern fetch ahead), then checks
 * the fd agrees. This is the sequence that hid prefetched input from the fd. */
static void events_then_fd(ferry_socket *s)
{
    uint64_t end = tu_now_ns() + (uint64_t)TU_TIMEOUT_MS * 1000000u;
    while (!(ferry_socket_events(s) & FERRY_POLLIN)) {
        CHECK(tu_now_ns() < end);
        ferry_pollitem it = {s, -1, FERRY_POLLIN, 0};
        ferry_poll(&it, 1, 5);
    }
    CHECK(readable(ferry_socket_pollfd(s), 0));
    CHECK(readable(ferry_socket_pollfd(s), 0)); /* level, not edge */
}

/* Connected pair over url (a binds, b connects); both pollfds are taken before traffic. */
static void link2(ferry_socket *a, ferry_socket *b, const char *url)
{
    CHECK_OK(ferry_socket_bind(a, url));
    char ep[512];
    CHECK_OK(ferry_socket_last_endpoint(a, ep, sizeof ep));
    CHECK_OK(ferry_socket_connect(b, ep));
    CHECK(ferry_socket_pollfd(a) >= 0);
    CHECK(ferry_socket_pollfd(b) >= 0);
    tu_wait_peers(a, 1);
    tu_wait_peers(b, 1);
}

/* A two-frame message then a one-frame message from tx, read by rx through its fd only. */
static void two_messages(ferry_socket *tx, ferry_socket *rx, bool prefetch)
{
    tu_send_str(tx, "m1a", FERRY_MORE);
    tu_send_str(tx, "m1b", 0);
    tu_send_str(tx, "m2", 0);
    if (prefetch)
        events_then_fd(rx);
    fd_recv(rx, "m1a", true);
    fd_recv(rx, "m1b", false);
    if (prefetch)
        events_then_fd(rx);
    fd_recv(rx, "m2", false);
    fd_idle(rx);
}

/* Names the running case on stderr, so a failing CHECK can be placed. */
static void step(const char *what, const char *url, bool prefetch)
{
    fprintf(stderr, "case %s %s%s\n", what, url, prefetch ? " (after events)" : "");
}

static void case_simple(int txt, int rxt, const char *url, bool prefetch)
{
    step(txt == FERRY_PAIR ? "PAIR" : txt == FERRY_PUSH ? "PUSH-PULL" : "DEALER", url, prefetch);
    ferry_socket *tx = tu_open_sock(txt), *rx = tu_open_sock(rxt);
    link2(rx, tx, url);
    two_messages(tx, rx, prefetch);
    /* A send-only socket has nothing to read: after one events() call its fd is quiet. */
    if (txt == FERRY_PUSH) {
        CHECK(ferry_socket_events(tx) == FERRY_POLLOUT);
        CHECK(!readable(ferry_socket_pollfd(tx), 0));
    }
    ferry_socket_close(tx);
    ferry_socket_close(rx);
}

static void case_reqrep(const char *url, bool prefetch)
{
    step("REQ-REP", url, prefetch);
    ferry_socket *req = tu_open_sock(FERRY_REQ), *rep = tu_open_sock(FERRY_REP);
    link2(rep, req, url);
    for (int round = 0; round < 2; round++) {
        tu_send_str(req, "q1", FERRY_MORE);
        tu_send_str(req, "q2", 0);
        if (prefetch)
            events_then_fd(rep);
        fd_recv(rep, "q1", true);
        fd_recv(rep, "q2", false);
        fd_idle(rep);
        tu_send_str(rep, "r1", FERRY_MORE);
        tu_send_str(rep, "r2", 0);
        if (prefetch)
            events_then_fd(req);
        fd_recv(req, "r1", true);
        fd_recv(req, "r2", false);
        fd_idle(req);
    }
    ferry_socket_close(req);
    ferry_socket_close(rep);
}

static void case_router(const char *url, bool prefetch)
{
    step("DEALER-ROUTER", url, prefetch);
    ferry_socket *dealer = tu_open_sock(FERRY_DEALER), *router = tu_open_sock(FERRY_ROUTER);
    CHECK_OK(ferry_socket_setopt_bytes(dealer, FERRY_OPT_ROUTING_ID, "D1", 2));
    link2(router, dealer, url);
    tu_send_str(dealer, "m1", 0);
    tu_send_str(dealer, "m2a", FERRY_MORE);
    tu_send_str(dealer, "m2b", 0);
    if (prefetch)
        events_then_fd(router);
    fd_recv(router, "D1", true);
    fd_recv(router, "m1", false);
    if (prefetch)
        events_then_fd(router);
    fd_recv(router, "D1", true);
    fd_recv(router, "m2a", true);
    fd_recv(router, "m2b", false);
    fd_idle(router);
    /* And back: the dealer reads the reply through its fd. */
    tu_send_str(router, "D1", FERRY_MORE);
    tu_send_str(router, "r", 0);
    fd_recv(dealer, "r", false);
    fd_idle(dealer);
    ferry_socket_close(dealer);
    ferry_socket_close(router);
}

/* PUB -> SUB/XSUB: filtering means the fd must not stay readable for messages that are dropped,
 * and must be readable for the prefetched matching one. */
static void case_pubsub(int subt, const char *url, bool prefetch)
{
    step(subt == FERRY_SUB ? "PUB-SUB" : "PUB-XSUB", url, prefetch);
    ferry_socket *pub = tu_open_sock(FERRY_PUB), *sub = tu_open_sock(subt);
    CHECK_OK(ferry_socket_subscribe(sub, "m", 1));
    link2(pub, sub, url);
    /* Slow joiner: publish a probe until it arrives. */
    uint64_t end = tu_now_ns() + (uint64_t)TU_TIMEOUT_MS * 1000000u;
    for (;;) {
        tu_send_str(pub, "mprobe", 0);
        if (ferry_socket_events(sub) & FERRY_POLLIN)
            break;
        CHECK(tu_now_ns() < end);
        ferry_pollitem it = {sub, -1, FERRY_POLLIN, 0};
        ferry_poll(&it, 1, 5);
    }
    char buf[16];
    while (ferry_socket_recv(sub, buf, sizeof buf, FERRY_DONTWAIT, NULL) >= 0)
        ;
    fd_idle(sub);
    tu_send_str(pub, "xskip", 0); /* filtered out */
    two_messages(pub, sub, prefetch);
    tu_send_str(pub, "xskip", 0);
    tu_send_str(pub, "m3", 0);
    fd_recv(sub, "m3", false);
    fd_idle(sub);
    ferry_socket_close(pub);
    ferry_socket_close(sub);
}

/* XPUB <- XSUB: subscription notices are queued by the XPUB pattern itself (also while it
 * publishes), so only the pattern knows they are there. */
static void case_xpub(const char *url)
{
    step("XSUB-XPUB", url, false);
    ferry_socket *xpub = tu_open_sock(FERRY_XPUB), *xsub = tu_open_sock(FERRY_XSUB);
    link2(xpub, xsub, url);
    CHECK_OK(ferry_socket_send(xsub, "\x01topic", 6, 0));
    events_then_fd(xpub);
    char buf[16];
    CHECK_RC(ferry_socket_recv(xpub, buf, sizeof buf, FERRY_DONTWAIT, NULL), 6);
    CHECK(memcmp(buf, "\x01topic", 6) == 0);
    fd_idle(xpub);
    /* A notice that arrives while the XPUB only publishes: the publishing path reads upstream
     * traffic (it must, to apply subscriptions); the fd has to report what it queued. */
    CHECK_OK(ferry_socket_send(xsub, "\x01other", 6, 0));
    CHECK_OK(ferry_socket_send(xsub, "up", 2, 0));
    uint64_t end = tu_now_ns() + (uint64_t)TU_TIMEOUT_MS * 1000000u;
    int fd = ferry_socket_pollfd(xpub);
    while (!readable(fd, 0)) {
        CHECK(tu_now_ns() < end);
        tu_send_str(xpub, "topic!", 0);
    }
    fd_recv(xpub, "\x01other", false);
    fd_recv(xpub, "up", false);
    fd_idle(xpub);
    ferry_socket_close(xpub);
    ferry_socket_close(xsub);
}

/* Send-side readiness through ferry_poll: PUSH without a peer is not writable, with one it is. */
static void case_pollout(const char *url)
{
    step("PUSH pollout", url, false);
    ferry_socket *push = tu_open_sock(FERRY_PUSH), *pull = tu_open_sock(FERRY_PULL);
    ferry_pollitem it = {push, -1, FERRY_POLLOUT, 0};
    CHECK_RC(ferry_poll(&it, 1, 0), 0);
    CHECK(!readable(ferry_socket_pollfd(push), 0));
    link2(pull, push, url);
    CHECK_RC(ferry_poll(&it, 1, TU_TIMEOUT_MS), 1);
    CHECK(it.revents == FERRY_POLLOUT);
    ferry_socket_close(push);
    ferry_socket_close(pull);
}

/* A fresh endpoint of the given kind ("ipc", "inproc" or a tcp wildcard URL). */
static const char *make_url(char *url, size_t cap, const char *kind)
{
    if (strcmp(kind, "ipc") == 0)
        tu_ipc_url(url, cap, "pf");
    else if (strcmp(kind, "inproc") == 0)
        snprintf(url, cap, "inproc://%s", tu_unique("pf"));
    else
        snprintf(url, cap, "%s", kind);
    return url;
}

static void all_cases(const char *kind)
{
    char url[300];
    for (int prefetch = 0; prefetch < 2; prefetch++) {
#define URL() make_url(url, sizeof url, kind)
        case_simple(FERRY_PAIR, FERRY_PAIR, URL(), prefetch);
        case_simple(FERRY_PUSH, FERRY_PULL, URL(), prefetch);
        case_simple(FERRY_DEALER, FERRY_DEALER, URL(), prefetch);
        case_reqrep(URL(), prefetch);
        case_router(URL(), prefetch);
        case_pubsub(FERRY_SUB, URL(), prefetch);
        case_pubsub(FERRY_XSUB, URL(), prefetch);
#undef URL
    }
}

/* ---- subscriptions reaching a late publisher while the subscriber sleeps ---- */

typedef struct sleeper {
    ferry_socket *sub;
    bool use_poll; /* sleep in poll(2) on the pollfd instead of a blocking recv */
    _Atomic int got;
    char buf[32];
} sleeper;

static void *sleeper_main(void *arg)
{
    sleeper *sl = arg;
    ssize_t n;
    if (sl->use_poll) {
        /* An event loop: poll(2), then recv without waiting, and only that. */
        int fd = ferry_socket_pollfd(sl->sub);
        uint64_t end = tu_now_ns() + 4ull * TU_TIMEOUT_MS * 1000000u;
        for (;;) {
            if (tu_now_ns() >= end) {
                n = FERRY_EAGAIN;
                break;
            }
            if (!readable(fd, TU_TIMEOUT_MS))
                continue;
            n = ferry_socket_recv(sl->sub, sl->buf, sizeof sl->buf, FERRY_DONTWAIT, NULL);
            if (n != FERRY_EAGAIN)
                break;
        }
    } else {
        n = ferry_socket_recv(sl->sub, sl->buf, sizeof sl->buf, 0, NULL);
    }
    atomic_store(&sl->got, n >= 0 ? (int)n : -1000 + (int)n);
    return NULL;
}

static void case_late_pub(int subt, bool use_poll, const char *transport)
{
    char url[300];
    int port = 0;
    step(subt == FERRY_SUB ? "late PUB, SUB" : "late PUB, XSUB",
         use_poll ? "in poll(2)" : "in recv", false);
    if (strcmp(transport, "ipc") == 0) {
        tu_ipc_url(url, sizeof url, "pf");
    } else {
        port = tu_free_port();
        snprintf(url, sizeof url, "tcp://127.0.0.1:%d", port);
    }
    sleeper sl = {.sub = tu_open_sock(subt), .use_poll = use_poll};
    CHECK_OK(ferry_socket_setopt_int(sl.sub, FERRY_OPT_RCVTIMEO, 4 * TU_TIMEOUT_MS));
    CHECK_OK(ferry_socket_setopt_int(sl.sub, FERRY_OPT_RECONNECT_IVL, 10));
    CHECK_OK(ferry_socket_subscribe(sl.sub, "news", 4));
    CHECK_OK(ferry_socket_connect(sl.sub, url));
    pthread_t th;
    CHECK(pthread_create(&th, NULL, sleeper_main, &sl) == 0);
    ferry_socket *pub = tu_open_sock(FERRY_PUB);
    CHECK_OK(ferry_socket_bind(pub, url));
    /* Publish until the sleeper has it: it can only get it if its subscription reached us. */
    uint64_t end = tu_now_ns() + 3ull * TU_TIMEOUT_MS * 1000000u;
    while (atomic_load(&sl.got) == 0) {
        if (tu_now_ns() >= end) {
            fprintf(stderr,
                    "%s sleeping in %s over %s never got its subscription to the late PUB\n",
                    subt == FERRY_SUB ? "SUB" : "XSUB", use_poll ? "poll(2)" : "recv", transport);
            exit(1);
        }
        tu_send_str(pub, "other", 0);
        tu_send_str(pub, "news!", 0);
        ferry_pollitem it = {pub, -1, FERRY_POLLIN, 0};
        ferry_poll(&it, 1, 2); /* paces the loop; PUB never polls readable */
    }
    CHECK(pthread_join(th, NULL) == 0);
    CHECK(atomic_load(&sl.got) == 5 && memcmp(sl.buf, "news!", 5) == 0);
    ferry_socket_close(pub);
    ferry_socket_close(sl.sub);
}

/* PF_ONLY=<group> runs one group of cases (ipc, inproc, tcp, xpub, pollout, late). */
static bool want(const char *group)
{
    const char *only = getenv("PF_ONLY");
    return !only || strcmp(only, group) == 0;
}

int main(void)
{
    tu_deadline(150);
    if (want("ipc"))
        all_cases("ipc");
    if (want("inproc"))
        all_cases("inproc");
    if (want("tcp"))
        all_cases("tcp://127.0.0.1:*");
    char url[300];
    if (want("xpub")) {
        case_xpub(make_url(url, sizeof url, "ipc"));
        case_xpub(make_url(url, sizeof url, "inproc"));
        case_xpub("tcp://127.0.0.1:*");
    }
    if (want("pollout"))
        case_pollout(make_url(url, sizeof url, "ipc"));
    static const char *tr[] = {"ipc", "tcp"};
    for (int t = 0; t < 2 && want("late"); t++) {
        for (int poll_mode = 0; poll_mode < 2; poll_mode++) {
            case_late_pub(FERRY_SUB, poll_mode, tr[t]);
            case_late_pub(FERRY_XSUB, poll_mode, tr[t]);
        }
    }
    printf("test_pattern_pollfd: ok\n");
    return 0;
}
