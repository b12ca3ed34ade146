/*
 * test_transport_inproc.c - inproc:// on its own: every socket pattern over it, the exact HWM
 * (SNDHWM + RCVHWM messages), unlimited HWM past the ring, MORE atomicity past the ring (a started
 * message completes even if its sender never calls again), two-thread streams in spinning and
 * blocking mode (the arm/wake handshake), close of either side while the other is blocked, the
 * level-triggered pollfd for input and output, many pipes on one socket, zero-copy ownership of
 * large bodies, and exact statistics (PUB drops at the HWM).
 *
 * Threads that must be asleep before the other side acts are waited for through
 * /proc/self/task/TID/stat (state S), never with a sleep.
 */
#include "testutil.h"

#include <poll.h>
#include <pthread.h>
#include <stdatomic.h>
#include <string.h>
#include <sys/syscall.h>
#include <unistd.h>

static const size_t frame_sizes[] = {0, 1, 40, 41, 64, 255, 256, 8192, 8193, 65536, 300000};
#define NFRAMES (sizeof frame_sizes / sizeof frame_sizes[0])

static void fill(uint8_t *b, size_t n, uint32_t seed)
{
    for (size_t i = 0; i < n; i++)
        b[i] = (uint8_t)(seed * 131u + i * 7u + (i >> 8));
}

static void url_of(char *buf, size_t cap, const char *tag)
{
    snprintf(buf, cap, "inproc://%s", tu_unique(tag));
}

static ferry_socket *open_hwm(int type, int sndhwm, int rcvhwm)
{
    ferry_socket *s = tu_open_sock(type);
    CHECK_OK(ferry_socket_setopt_int(s, FERRY_OPT_SNDHWM, sndhwm));
    CHECK_OK(ferry_socket_setopt_int(s, FERRY_OPT_RCVHWM, rcvhwm));
    return s;
}

/* Sends one message whose frames have the sizes above (seeded contents). */
static void send_multi(ferry_socket *s, uint32_t seed)
{
    static uint8_t buf[1u << 20];
    for (size_t i = 0; i < NFRAMES; i++) {
        fill(buf, frame_sizes[i], seed + (uint32_t)i);
        CHECK_OK(ferry_socket_send(s, buf, frame_sizes[i], i + 1 < NFRAMES ? FERRY_MORE : 0));
    }
}

static void recv_multi(ferry_socket *s, uint32_t seed)
{
    static uint8_t want[1u << 20], got[(1u << 20) + 1];
    for (size_t i = 0; i < NFRAMES; i++) {
        int more = -1;
        CHECK_RC(ferry_socket_recv(s, got, sizeof got, 0, &more), (long long)frame_sizes[i]);
        CHECK(more == (i + 1 < NFRAMES));
        fill(want, frame_sizes[i], seed + (uint32_t)i);
        CHECK(memcmp(want, got, frame_sizes[i]) == 0);
    }
}

/* ---- every pattern ---- */

static void case_patterns(void)
{
    char url[128];
    /* PAIR both ways. */
    url_of(url, sizeof url, "pair");
    ferry_socket *a = tu_open_sock(FERRY_PAIR), *b = tu_open_sock(FERRY_PAIR);
    CHECK_OK(ferry_socket_bind(a, url));
    CHECK_OK(ferry_socket_connect(b, url));
    send_multi(b, 1);
    recv_multi(a, 1);
    send_multi(a, 2);
    recv_multi(b, 2);
    ferry_socket_close(a);
    ferry_socket_close(b);

    /* PUSH -> PULL. */
    url_of(url, sizeof url, "push");
    a = tu_open_sock(FERRY_PULL);
    b = tu_open_sock(FERRY_PUSH);
    CHECK_OK(ferry_socket_bind(a, url));
    CHECK_OK(ferry_socket_connect(b, url));
    send_multi(b, 3);
    recv_multi(a, 3);
    ferry_socket_close(a);
    ferry_socket_close(b);

    /* REQ -> REP, twice (the state machine resets). */
    url_of(url, sizeof url, "req");
    a = tu_open_sock(FERRY_REP);
    b = tu_open_sock(FERRY_REQ);
    CHECK_OK(ferry_socket_bind(a, url));
    CHECK_OK(ferry_socket_connect(b, url));
    for (uint32_t k = 0; k < 2; k++) {
        send_multi(b, 10 + k);
        recv_multi(a, 10 + k);
        send_multi(a, 20 + k);
        recv_multi(b, 20 + k);
    }
    ferry_socket_close(a);
    ferry_socket_close(b);

    /* DEALER -> ROUTER: the routing id frame comes first and routes the reply. */
    url_of(url, sizeof url, "router");
    a = tu_open_sock(FERRY_ROUTER);
    b = tu_open_sock(FERRY_DEALER);
    CHECK_OK(ferry_socket_setopt_bytes(b, FERRY_OPT_ROUTING_ID, "dlr", 3));
    CHECK_OK(ferry_socket_bind(a, url));
    CHECK_OK(ferry_socket_connect(b, url));
    send_multi(b, 30);
    char id[16];
    int more = 0;
    CHECK_RC(ferry_socket_recv(a, id, sizeof id, 0, &more), 3);
    CHECK(more == 1 && memcmp(id, "dlr", 3) == 0);
    recv_multi(a, 30);
    CHECK_OK(ferry_socket_send(a, "dlr", 3, FERRY_MORE));
    send_multi(a, 31);
    recv_multi(b, 31);
    ferry_socket_close(a);
    ferry_socket_close(b);

    /* DEALER <-> DEALER. */
    url_of(url, sizeof url, "dd");
    a = tu_open_sock(FERRY_DEALER);
    b = tu_open_sock(FERRY_DEALER);
    CHECK_OK(ferry_socket_bind(a, url));
    CHECK_OK(ferry_socket_connect(b, url));
    send_multi(a, 40);
    recv_multi(b, 40);
    send_multi(b, 41);
    recv_multi(a, 41);
    ferry_socket_close(a);
    ferry_socket_close(b);

    /* PUB -> SUB with a prefix: publish until the subscription has arrived, then exactly the
     * matching messages come through. */
    url_of(url, sizeof url, "pub");
    a = tu_open_sock(FERRY_PUB);
    b = tu_open_sock(FERRY_SUB);
    CHECK_OK(ferry_socket_subscribe(b, "A", 1));
    CHECK_OK(ferry_socket_bind(a, url));
    CHECK_OK(ferry_socket_connect(b, url));
    uint64_t end = tu_now_ns() + 5000000000ull;
    for (;;) {
        CHECK_OK(ferry_socket_send(a, "Awarm", 5, 0));
        char w[8];
        if (ferry_socket_recv(b, w, sizeof w, FERRY_DONTWAIT, NULL) == 5)
            break;
        CHECK(tu_now_ns() < end);
        struct pollfd pf = {.fd = ferry_socket_pollfd(b), .events = POLLIN};
        poll(&pf, 1, 1);
    }
    while (ferry_socket_recv(b, id, sizeof id, FERRY_DONTWAIT, NULL) >= 0) {
    }
    CHECK_OK(ferry_socket_send(a, "Bno", 3, 0));
    CHECK_OK(ferry_socket_send(a, "Ayes", 4, FERRY_MORE));
    CHECK_OK(ferry_socket_send(a, "tail", 4, 0));
    tu_recv_str(b, "Ayes", true);
    tu_recv_str(b, "tail", false);
    CHECK_RC(ferry_socket_recv(b, id, sizeof id, FERRY_DONTWAIT, NULL), FERRY_EAGAIN);
    ferry_socket_close(a);
    ferry_socket_close(b);

    /* XSUB -> XPUB: the subscription arrives as a notice, then data flows back. */
    url_of(url, sizeof url, "xpub");
    a = tu_open_sock(FERRY_XPUB);
    b = tu_open_sock(FERRY_XSUB);
    CHECK_OK(ferry_socket_bind(a, url));
    CHECK_OK(ferry_socket_connect(b, url));
    CHECK_OK(ferry_socket_send(b, "\x01T", 2, 0));
    tu_expect_sub(a, true, "T");
    tu_send_str(a, "Topic", 0);
    tu_recv_str(b, "Topic", false);
    ferry_socket_close(a);
    ferry_socket_close(b);

    /* Incompatible types never link; connect before bind links when the bind appears. */
    url_of(url, sizeof url, "bad");
    a = tu_open_sock(FERRY_PUSH);
    b = tu_open_sock(FERRY_PUSH);
    CHECK_OK(ferry_socket_bind(a, url));
    CHECK_RC(ferry_socket_connect(b, url), FERRY_EPROTONOSUPPORT);
    ferry_stats st;
    CHECK_OK(ferry_socket_stats(a, &st));
    CHECK(st.peers == 0);
    CHECK_OK(ferry_socket_stats(b, &st));
    CHECK(st.peers == 0);
    CHECK_RC(ferry_socket_bind(b, url), FERRY_EADDRINUSE);
    CHECK_OK(ferry_socket_unbind(a, url));
    CHECK_RC(ferry_socket_unbind(a, url), FERRY_ENOENT);
    ferry_socket_close(a);
    ferry_socket_close(b);

    url_of(url, sizeof url, "late");
    a = tu_open_sock(FERRY_PULL);
    b = tu_open_sock(FERRY_PUSH);
    CHECK_OK(ferry_socket_connect(b, url));
    CHECK_OK(ferry_socket_bind(a, url));
    tu_wait_peers(b, 1);
    tu_send_str(b, "late", 0);
    tu_recv_str(a, "late", false);
    ferry_socket_close(a);
    ferry_socket_close(b);
}

/* ---- HWM ---- */

static void case_hwm_exact(void)
{
    char url[128];
    url_of(url, sizeof url, "hwm");
    ferry_socket *pull = open_hwm(FERRY_PULL, 1000, 2);
    ferry_socket *push = open_hwm(FERRY_PUSH, 3, 1000);
    CHECK_OK(ferry_socket_bind(pull, url));
    CHECK_OK(ferry_socket_connect(push, url));
    tu_wait_peers(push, 1);
    /* SNDHWM 3 + RCVHWM 2 = exactly 5 messages in flight. */
    for (uint32_t k = 0; k < 5; k++)
        CHECK_OK(ferry_socket_send(push, &k, sizeof k, FERRY_DONTWAIT));
    uint32_t k = 5;
    CHECK_RC(ferry_socket_send(push, &k, sizeof k, FERRY_DONTWAIT), FERRY_EAGAIN);
    ferry_pollitem it = {push, -1, FERRY_POLLOUT, 0};
    CHECK_RC(ferry_poll(&it, 1, 0), 0);
    uint32_t got;
    CHECK_RC(ferry_socket_recv(pull, &got, sizeof got, 0, NULL), 4);
    CHECK(got == 0);
    CHECK_OK(ferry_socket_send(push, &k, sizeof k, FERRY_DONTWAIT));
    k = 6;
    CHECK_RC(ferry_socket_send(push, &k, sizeof k, FERRY_DONTWAIT), FERRY_EAGAIN);
    /* SNDTIMEO: a full link times out with EAGAIN. */
    CHECK_OK(ferry_socket_setopt_int(push, FERRY_OPT_SNDTIMEO, 20));
    CHECK_RC(ferry_socket_send(push, &k, sizeof k, 0), FERRY_EAGAIN);
    /* A started message is never split: after one more slot its first frame is accepted, and
     * then every later frame, far beyond the HWM and the ring (a 4 KiB ring here). */
    CHECK_RC(ferry_socket_recv(pull, &got, sizeof got, 0, NULL), 4);
    CHECK(got == 1);
    CHECK_OK(ferry_socket_send(push, "head", 4, FERRY_MORE | FERRY_DONTWAIT));
    uint8_t body[300];
    for (uint32_t f = 0; f < 3000; f++) {
        fill(body, sizeof body, f);
        CHECK_OK(ferry_socket_send(push, body, (f % 3) * 100, FERRY_MORE | FERRY_DONTWAIT));
    }
    CHECK_OK(ferry_socket_send(push, "end", 3, FERRY_DONTWAIT));
    CHECK_RC(ferry_socket_send(push, &k, sizeof k, FERRY_DONTWAIT), FERRY_EAGAIN);
    for (uint32_t want = 2; want <= 5; want++) {
        CHECK_RC(ferry_socket_recv(pull, &got, sizeof got, 0, NULL), 4);
        CHECK(got == want);
    }
    tu_recv_str(pull, "head", true);
    uint8_t rb[300], wb[300];
    for (uint32_t f = 0; f < 3000; f++) {
        int more = 0;
        CHECK_RC(ferry_socket_recv(pull, rb, sizeof rb, 0, &more), (f % 3) * 100);
        fill(wb, sizeof wb, f);
        CHECK(more == 1 && memcmp(rb, wb, (f % 3) * 100) == 0);
    }
    tu_recv_str(pull, "end", false);
    CHECK_RC(ferry_socket_recv(pull, rb, sizeof rb, FERRY_DONTWAIT, NULL), FERRY_EAGAIN);
    ferry_stats st;
    CHECK_OK(ferry_socket_stats(push, &st));
    CHECK(st.msgs_out == 7 && st.drops_hwm == 0);
    CHECK_OK(ferry_socket_stats(pull, &st));
    CHECK(st.msgs_in == 7);
    ferry_socket_close(push);
    ferry_socket_close(pull);
}

/* SNDHWM 0: no limit, far past the ring's capacity; nothing lost or reordered. */
static void case_unlimited(void)
{
    char url[128];
    url_of(url, sizeof url, "nohwm");
    ferry_socket *pull = open_hwm(FERRY_PULL, 1000, 1000);
    ferry_socket *push = open_hwm(FERRY_PUSH, 0, 1000);
    CHECK_OK(ferry_socket_bind(pull, url));
    CHECK_OK(ferry_socket_connect(push, url));
    tu_wait_peers(push, 1);
    enum { N = 40000 };
    uint8_t b[100];
    for (uint32_t k = 0; k < N; k++) {
        memset(b, 0, sizeof b);
        memcpy(b, &k, sizeof k);
        CHECK_OK(ferry_socket_send(push, b, 8 + k % 90, FERRY_DONTWAIT));
    }
    for (uint32_t k = 0; k < N; k++) {
        uint32_t got;
        CHECK_RC(ferry_socket_recv(pull, b, sizeof b, 0, NULL), 8 + k % 90);
        memcpy(&got, b, sizeof got);
        CHECK(got == k);
    }
    ferry_socket_close(push);
    ferry_socket_close(pull);
}

/* ---- threads ---- */

typedef struct th_arg {
    ferry_socket *s;
    uint32_t n;
    _Atomic pid_t tid;
    _Atomic int done;
    int rc;
} th_arg;

/* Waits until thread tid sleeps in the kernel (state S): it is blocked in its call. */
static void wait_sleeping(_Atomic pid_t *tid)
{
    uint64_t end = tu_now_ns() + 10000000000ull;
    pid_t t;
    while ((t = atomic_load(tid)) == 0)
        CHECK(tu_now_ns() < end);
    char path[64];
    snprintf(path, sizeof path, "/proc/self/task/%d/stat", (int)t);
    for (;;) {
        FILE *f = fopen(path, "r");
        CHECK(f);
        char buf[512];
        size_t n = fread(buf, 1, sizeof buf - 1, f);
        fclose(f);
        buf[n] = 0;
        const char *p = strrchr(buf, ')');
        CHECK(p && p[1] == ' ');
        if (p[2] == 'S')
            return;
        CHECK(tu_now_ns() < end);
        sched_yield();
    }
}

/* Receives n sequenced messages (seq in the first 4 bytes, seeded body, some multipart). */
static void *stream_rx(void *v)
{
    th_arg *a = v;
    static _Thread_local uint8_t buf[40000], want[40000];
    atomic_store(&a->tid, (pid_t)syscall(SYS_gettid));
    for (uint32_t k = 0; k < a->n; k++) {
        size_t len = k % 997 == 0 ? 30000 : 4 + k % 200;
        int more = 0;
        ssize_t r = ferry_socket_recv(a->s, buf, sizeof buf, 0, &more);
        if (r != (ssize_t)len) {
            fprintf(stderr, "message %u: %zd bytes, want %zu\n", k, r, len);
            a->rc = 1;
            return NULL;
        }
        uint32_t seq;
        memcpy(&seq, buf, 4);
        fill(want, len - 4, k);
        if (seq != k || memcmp(buf + 4, want, len - 4) != 0) {
            fprintf(stderr, "message %u: got seq %u or bad body\n", k, seq);
            a->rc = 1;
            return NULL;
        }
        if (k % 101 == 0) {
            if (!more || ferry_socket_recv(a->s, buf, sizeof buf, 0, &more) != 2 || more) {
                fprintf(stderr, "message %u: bad second frame\n", k);
                a->rc = 1;
                return NULL;
            }
        } else if (more) {
            a->rc = 1;
            return NULL;
        }
        if (k % 5000 == 0) {
            /* A slow consumer now and then: the sender fills the HWM and must be woken. */
            volatile uint64_t x = 0;
            for (int i = 0; i < 200000; i++)
                x += (uint64_t)i;
        }
    }
    atomic_store(&a->done, 1);
    return NULL;
}

static void case_stream(int spin_ns, int hwm, uint32_t n)
{
    char url[128];
    url_of(url, sizeof url, "stream");
    ferry_socket *pull = open_hwm(FERRY_PULL, 1000, hwm);
    ferry_socket *push = open_hwm(FERRY_PUSH, hwm, 1000);
    CHECK_OK(ferry_socket_setopt_int(pull, FERRY_OPT_RCVTIMEO, 20000));
    CHECK_OK(ferry_socket_setopt_int(push, FERRY_OPT_SNDTIMEO, 20000));
    if (spin_ns >= 0) {
        CHECK_OK(ferry_socket_setopt_int(pull, FERRY_OPT_SPIN_NS, spin_ns));
        CHECK_OK(ferry_socket_setopt_int(push, FERRY_OPT_SPIN_NS, spin_ns));
    }
    CHECK_OK(ferry_socket_bind(pull, url));
    CHECK_OK(ferry_socket_connect(push, url));
    th_arg a = {.s = pull, .n = n};
    pthread_t t;
    CHECK(pthread_create(&t, NULL, stream_rx, &a) == 0);
    static uint8_t buf[40000];
    for (uint32_t k = 0; k < n; k++) {
        size_t len = k % 997 == 0 ? 30000 : 4 + k % 200;
        memcpy(buf, &k, 4);
        fill(buf + 4, len - 4, k);
        CHECK_OK(ferry_socket_send(push, buf, len, k % 101 == 0 ? FERRY_MORE : 0));
        if (k % 101 == 0)
            CHECK_OK(ferry_socket_send(push, "xy", 2, 0));
    }
    CHECK(pthread_join(t, NULL) == 0);
    CHECK(a.rc == 0 && atomic_load(&a.done));
    ferry_stats st;
    CHECK_OK(ferry_socket_stats(push, &st));
    CHECK(st.msgs_out == n && st.drops_hwm == 0);
    CHECK_OK(ferry_socket_stats(pull, &st));
    CHECK(st.msgs_in == n);
    ferry_socket_close(push);
    ferry_socket_close(pull);
}

/* A message larger than the ring, sent while nobody reads; its sender then never calls again
 * and the receiver (another thread) still gets every frame. */
static void *bigmsg_rx(void *v)
{
    th_arg *a = v;
    for (uint32_t f = 0; f < a->n; f++) {
        uint32_t got = 0;
        int more = 0;
        if (ferry_socket_recv(a->s, &got, sizeof got, 0, &more) != 4 || got != f ||
            more != (f + 1 < a->n)) {
            a->rc = 1;
            return NULL;
        }
    }
    atomic_store(&a->done, 1);
    return NULL;
}

static void case_big_message(void)
{
    char url[128];
    url_of(url, sizeof url, "bigmsg");
    ferry_socket *pull = open_hwm(FERRY_PULL, 1, 1);
    ferry_socket *push = open_hwm(FERRY_PUSH, 1, 1);
    CHECK_OK(ferry_socket_bind(pull, url));
    CHECK_OK(ferry_socket_connect(push, url));
    tu_wait_peers(push, 1);
    th_arg a = {.s = pull, .n = 20000};
    for (uint32_t f = 0; f < a.n; f++)
        CHECK_OK(ferry_socket_send(push, &f, sizeof f, f + 1 < a.n ? FERRY_MORE : 0));
    pthread_t t;
    CHECK(pthread_create(&t, NULL, bigmsg_rx, &a) == 0);
    CHECK(pthread_join(t, NULL) == 0);
    CHECK(a.rc == 0 && atomic_load(&a.done));
    ferry_socket_close(push);
    ferry_socket_close(pull);
}

/* ---- close while the other side is blocked ---- */

static void *blocked_recv(void *v)
{
    th_arg *a = v;
    atomic_store(&a->tid, (pid_t)syscall(SYS_gettid));
    char buf[16];
    ssize_t r = ferry_socket_recv(a->s, buf, sizeof buf, 0, NULL);
    a->rc = r == 5 && memcmp(buf, "after", 5) == 0 ? 0 : 1;
    atomic_store(&a->done, 1);
    return NULL;
}

static void *blocked_send(void *v)
{
    th_arg *a = v;
    atomic_store(&a->tid, (pid_t)syscall(SYS_gettid));
    a->rc = ferry_socket_send(a->s, "blocked", 7, 0);
    atomic_store(&a->done, 1);
    return NULL;
}

static void case_close_blocked(void)
{
    char url[128];
    /* A receiver blocked forever: its peer closes (it stays blocked: no error for an idle
     * PULL), a new peer connects and sends, and the blocked call returns that message. */
    url_of(url, sizeof url, "cbr");
    ferry_socket *pull = tu_open_sock(FERRY_PULL);
    CHECK_OK(ferry_socket_setopt_int(pull, FERRY_OPT_RCVTIMEO, -1));
    CHECK_OK(ferry_socket_setopt_int(pull, FERRY_OPT_SPIN_NS, 0));
    ferry_socket *push = tu_open_sock(FERRY_PUSH);
    CHECK_OK(ferry_socket_bind(pull, url));
    CHECK_OK(ferry_socket_connect(push, url));
    tu_wait_peers(push, 1);
    th_arg a = {.s = pull};
    pthread_t t;
    CHECK(pthread_create(&t, NULL, blocked_recv, &a) == 0);
    wait_sleeping(&a.tid);
    ferry_socket_close(push);
    CHECK(!atomic_load(&a.done));
    push = tu_open_sock(FERRY_PUSH);
    CHECK_OK(ferry_socket_connect(push, url));
    tu_send_str(push, "after", 0);
    CHECK(pthread_join(t, NULL) == 0);
    CHECK(a.rc == 0);
    ferry_socket_close(push);
    ferry_socket_close(pull);

    /* A sender blocked at the HWM: its receiver closes (the queued messages go with it), a new
     * receiver connects, and the blocked send completes to it. */
    url_of(url, sizeof url, "cbs");
    push = open_hwm(FERRY_PUSH, 1, 1000);
    CHECK_OK(ferry_socket_setopt_int(push, FERRY_OPT_SNDTIMEO, -1));
    CHECK_OK(ferry_socket_setopt_int(push, FERRY_OPT_SPIN_NS, 0));
    pull = open_hwm(FERRY_PULL, 1000, 1);
    CHECK_OK(ferry_socket_bind(push, url));
    CHECK_OK(ferry_socket_connect(pull, url));
    tu_wait_peers(push, 1);
    tu_send_str(push, "q1", 0);
    tu_send_str(push, "q2", 0);
    CHECK_RC(ferry_socket_send(push, "x", 1, FERRY_DONTWAIT), FERRY_EAGAIN);
    th_arg b = {.s = push};
    CHECK(pthread_create(&t, NULL, blocked_send, &b) == 0);
    wait_sleeping(&b.tid);
    ferry_socket_close(pull);
    pull = tu_open_sock(FERRY_PULL);
    CHECK_OK(ferry_socket_connect(pull, url));
    tu_recv_str(pull, "blocked", false);
    CHECK(pthread_join(t, NULL) == 0);
    CHECK(b.rc == 0);
    ferry_socket_close(pull);
    ferry_socket_close(push);

    /* A sender that closes with messages queued loses none of them: the receiver drains them
     * all (the link lives until both ends are gone), then simply has nothing more. */
    url_of(url, sizeof url, "linger");
    pull = tu_open_sock(FERRY_PULL);
    push = tu_open_sock(FERRY_PUSH);
    CHECK_OK(ferry_socket_bind(pull, url));
    CHECK_OK(ferry_socket_connect(push, url));
    tu_wait_peers(push, 1);
    for (uint32_t k = 0; k < 500; k++)
        CHECK_OK(ferry_socket_send(push, &k, sizeof k, 0));
    CHECK_OK(ferry_socket_send(push, "m1", 2, FERRY_MORE));
    CHECK_OK(ferry_socket_send(push, "m2", 2, 0));
    ferry_socket_close(push);
    for (uint32_t k = 0; k < 500; k++) {
        uint32_t got;
        CHECK_RC(ferry_socket_recv(pull, &got, sizeof got, 0, NULL), 4);
        CHECK(got == k);
    }
    tu_recv_str(pull, "m1", true);
    tu_recv_str(pull, "m2", false);
    char c;
    CHECK_RC(ferry_socket_recv(pull, &c, 1, FERRY_DONTWAIT, NULL), FERRY_EAGAIN);
    ferry_stats st;
    CHECK_OK(ferry_socket_stats(pull, &st));
    CHECK(st.peers == 0 && st.msgs_in == 501);
    ferry_socket_close(pull);
}

/* ---- pollfd ---- */

static void *delayed_send(void *v)
{
    th_arg *a = v;
    wait_sleeping(&a->tid); /* the main thread sleeps in poll() */
    a->rc = ferry_socket_send(a->s, "ping", 4, 0);
    atomic_store(&a->done, 1);
    return NULL;
}

static void *delayed_recv(void *v)
{
    th_arg *a = v;
    wait_sleeping(&a->tid);
    char buf[8];
    a->rc = ferry_socket_recv(a->s, buf, sizeof buf, 0, NULL) == 1 ? 0 : 1;
    atomic_store(&a->done, 1);
    return NULL;
}

static void case_pollfd(void)
{
    char url[128];
    url_of(url, sizeof url, "pollfd");
    ferry_socket *pull = tu_open_sock(FERRY_PULL);
    ferry_socket *push = open_hwm(FERRY_PUSH, 1, 1000);
    CHECK_OK(ferry_socket_bind(pull, url));
    CHECK_OK(ferry_socket_connect(push, url));
    tu_wait_peers(push, 1);
    int fd = ferry_socket_pollfd(pull);
    CHECK(fd >= 0);
    struct pollfd pf = {.fd = fd, .events = POLLIN};
    CHECK(poll(&pf, 1, 0) == 0);
    /* Another thread sends while we sleep in poll(): the pollfd wakes. */
    th_arg a = {.s = push, .tid = (pid_t)syscall(SYS_gettid)};
    pthread_t t;
    CHECK(pthread_create(&t, NULL, delayed_send, &a) == 0);
    CHECK(poll(&pf, 1, 10000) == 1 && (pf.revents & POLLIN));
    CHECK(pthread_join(t, NULL) == 0);
    CHECK(a.rc == 0);
    /* Level-triggered: readable while input waits, not once it is drained. */
    tu_send_str(push, "two", 0);
    CHECK(poll(&pf, 1, 0) == 1);
    tu_recv_str(pull, "ping", false);
    CHECK(poll(&pf, 1, 0) == 1);
    tu_recv_str(pull, "two", false);
    CHECK(poll(&pf, 1, 0) == 0);
    CHECK(ferry_socket_events(pull) == 0);

    /* POLLOUT: at the HWM (1 + 1) not writable; a receive on another thread makes it so. */
    ferry_socket *pull2 = open_hwm(FERRY_PULL, 1000, 1);
    char url2[128];
    url_of(url2, sizeof url2, "pollout");
    CHECK_OK(ferry_socket_bind(pull2, url2));
    ferry_socket *push2 = open_hwm(FERRY_PUSH, 1, 1000);
    CHECK_OK(ferry_socket_connect(push2, url2));
    tu_wait_peers(push2, 1);
    tu_send_str(push2, "a", 0);
    tu_send_str(push2, "b", 0);
    ferry_pollitem it = {push2, -1, FERRY_POLLOUT, 0};
    CHECK_RC(ferry_poll(&it, 1, 0), 0);
    th_arg b = {.s = pull2, .tid = (pid_t)syscall(SYS_gettid)};
    CHECK(pthread_create(&t, NULL, delayed_recv, &b) == 0);
    CHECK_RC(ferry_poll(&it, 1, 10000), 1);
    CHECK(it.revents & FERRY_POLLOUT);
    CHECK(pthread_join(t, NULL) == 0);
    CHECK(b.rc == 0);
    ferry_socket_close(push2);
    ferry_socket_close(pull2);
    ferry_socket_close(push);
    ferry_socket_close(pull);
}

/* ---- many pipes ---- */

static void case_many_pipes(void)
{
    enum { P = 48, M = 100 };
    char url[128];
    url_of(url, sizeof url, "fanin");
    ferry_socket *pull = tu_open_sock(FERRY_PULL);
    CHECK_OK(ferry_socket_bind(pull, url));
    ferry_socket *push[P];
    for (int i = 0; i < P; i++) {
        push[i] = tu_open_sock(FERRY_PUSH);
        CHECK_OK(ferry_socket_connect(push[i], url));
    }
    for (int i = 0; i < P; i++)
        tu_wait_peers(push[i], 1);
    for (uint32_t k = 0; k < M; k++)
        for (uint32_t i = 0; i < P; i++) {
            uint32_t v[2] = {i, k};
            CHECK_OK(ferry_socket_send(push[i], v, sizeof v, 0));
        }
    uint32_t next[P] = {0};
    for (uint32_t n = 0; n < P * M; n++) {
        uint32_t v[2];
        CHECK_RC(ferry_socket_recv(pull, v, sizeof v, 0, NULL), 8);
        CHECK(v[0] < P && v[1] == next[v[0]]);
        next[v[0]]++;
    }
    ferry_stats st;
    CHECK_OK(ferry_socket_stats(pull, &st));
    CHECK(st.peers == P && st.msgs_in == P * M);
    for (int i = 0; i < P; i++)
        ferry_socket_close(push[i]);
    ferry_socket_close(pull);

    /* Fan-out: one PUB, many SUBs, each gets every message after its subscription is in. */
    url_of(url, sizeof url, "fanout");
    ferry_socket *pub = tu_open_sock(FERRY_PUB);
    CHECK_OK(ferry_socket_bind(pub, url));
    ferry_socket *sub[P];
    for (int i = 0; i < P; i++) {
        sub[i] = tu_open_sock(FERRY_SUB);
        CHECK_OK(ferry_socket_subscribe(sub[i], "", 0));
        CHECK_OK(ferry_socket_connect(sub[i], url));
    }
    bool seen[P] = {false};
    int nseen = 0;
    uint64_t end = tu_now_ns() + 10000000000ull;
    while (nseen < P) {
        CHECK(tu_now_ns() < end);
        CHECK_OK(ferry_socket_send(pub, "w", 1, 0));
        for (int i = 0; i < P; i++) {
            char c;
            while (ferry_socket_recv(sub[i], &c, 1, FERRY_DONTWAIT, NULL) == 1)
                if (!seen[i]) {
                    seen[i] = true;
                    nseen++;
                }
        }
    }
    for (uint32_t k = 0; k < M; k++)
        CHECK_OK(ferry_socket_send(pub, &k, sizeof k, 0));
    for (int i = 0; i < P; i++) {
        for (uint32_t k = 0; k < M; k++) {
            uint32_t got;
            CHECK_RC(ferry_socket_recv(sub[i], &got, sizeof got, 0, NULL), 4);
            CHECK(got == k);
        }
        ferry_socket_close(sub[i]);
    }
    ferry_socket_close(pub);
}

/* ---- zero copy and statistics ---- */

static _Atomic int freed;

static void count_free(void *data, void *hint)
{
    (void)hint;
    free(data);
    atomic_fetch_add(&freed, 1);
}

static void case_zero_copy_and_stats(void)
{
    char url[128];
    url_of(url, sizeof url, "zc");
    ferry_socket *pull = tu_open_sock(FERRY_PULL);
    ferry_socket *push = tu_open_sock(FERRY_PUSH);
    CHECK_OK(ferry_socket_bind(pull, url));
    CHECK_OK(ferry_socket_connect(push, url));
    tu_wait_peers(push, 1);
    /* A large body moves by pointer: the receiver holds the very buffer the sender gave. */
    size_t big = 4u << 20;
    uint8_t *buf = malloc(big);
    CHECK(buf);
    fill(buf, big, 77);
    ferry_msg m;
    CHECK_OK(ferry_msg_init_data(&m, buf, big, count_free, NULL));
    CHECK_OK(ferry_msg_send(push, &m, 0));
    CHECK(atomic_load(&freed) == 0);
    ferry_msg r;
    ferry_msg_init(&r);
    CHECK_OK(ferry_msg_recv(pull, &r, 0));
    CHECK(ferry_msg_size(&r) == big && ferry_msg_data(&r) == buf);
    CHECK(atomic_load(&freed) == 0);
    ferry_msg_fini(&r);
    CHECK(atomic_load(&freed) == 1);
    /* A small one is copied into the ring: its buffer is released by the send itself. */
    uint8_t *small = malloc(64);
    CHECK(small);
    fill(small, 64, 5);
    CHECK_OK(ferry_msg_init_data(&m, small, 64, count_free, NULL));
    CHECK_OK(ferry_msg_send(push, &m, 0));
    CHECK(atomic_load(&freed) == 2);
    CHECK_OK(ferry_msg_recv(pull, &r, 0));
    uint8_t want[64];
    fill(want, 64, 5);
    CHECK(ferry_msg_size(&r) == 64 && memcmp(ferry_msg_data(&r), want, 64) == 0);
    ferry_msg_fini(&r);
    /* Messages never received are released with the link. */
    buf = malloc(1u << 20);
    CHECK(buf);
    CHECK_OK(ferry_msg_init_data(&m, buf, 1u << 20, count_free, NULL));
    CHECK_OK(ferry_msg_send(push, &m, 0));
    ferry_socket_close(push);
    ferry_socket_close(pull);
    CHECK(atomic_load(&freed) == 3);

    /* PUB at the HWM (SNDHWM 2 + RCVHWM 3 = 5): the rest is dropped and counted exactly. */
    url_of(url, sizeof url, "drops");
    ferry_socket *pub = open_hwm(FERRY_PUB, 2, 1000);
    ferry_socket *sub = open_hwm(FERRY_SUB, 1000, 3);
    CHECK_OK(ferry_socket_subscribe(sub, "", 0));
    CHECK_OK(ferry_socket_bind(pub, url));
    CHECK_OK(ferry_socket_connect(sub, url));
    uint64_t end = tu_now_ns() + 5000000000ull;
    for (;;) {
        CHECK_OK(ferry_socket_send(pub, "w", 1, 0));
        char c;
        if (ferry_socket_recv(sub, &c, 1, FERRY_DONTWAIT, NULL) == 1)
            break;
        CHECK(tu_now_ns() < end);
    }
    char c;
    while (ferry_socket_recv(sub, &c, 1, FERRY_DONTWAIT, NULL) == 1) {
    }
    ferry_stats before, after;
    CHECK_OK(ferry_socket_stats(pub, &before));
    for (uint32_t k = 0; k < 20; k++)
        CHECK_OK(ferry_socket_send(pub, &k, sizeof k, 0));
    CHECK_OK(ferry_socket_stats(pub, &after));
    CHECK(after.drops_hwm - before.drops_hwm == 15);
    CHECK(after.msgs_out - before.msgs_out == 20);
    for (uint32_t k = 0; k < 5; k++) {
        uint32_t got;
        CHECK_RC(ferry_socket_recv(sub, &got, sizeof got, 0, NULL), 4);
        CHECK(got == k);
    }
    CHECK_RC(ferry_socket_recv(sub, &c, 1, FERRY_DONTWAIT, NULL), FERRY_EAGAIN);
    ferry_socket_close(sub);
    ferry_socket_close(pub);
}

int main(void)
{
    tu_deadline(120);
    case_patterns();
    case_hwm_exact();
    case_unlimited();
    case_big_message();
    case_close_blocked();
    case_pollfd();
    case_many_pipes();
    case_zero_copy_and_stats();
    /* Streams between two threads: default spin window, blocking (every empty receive and every
     * full send sleeps: the arm/wake handshake on every message), and a tiny HWM. */
    case_stream(-1, 1000, 20000);
    case_stream(0, 1000, 20000);
    case_stream(0, 2, 5000);
    case_stream(-1, 1, 5000);
    printf("inproc: ok\n");
    return 0;
}
