/*
 * interop_patterns.h - shared harness for the pattern interop tests
 * (test_interop_pubsub.c, test_interop_reqrep.c, test_interop_router.c): one
 * socket abstraction over a ferry socket or a real libzmq 4.3.4 socket, so
 * every socket pair can be run with ferry on either side, either side binding,
 * over tcp:// and ipc://, with the same message set.
 *
 * Header-only (static inline) because each test program is a single source file
 * plus testutil.c. Everything waits with deadlines (receive timeouts), never
 * sleeps.
 */
#ifndef FERRY_TEST_INTEROP_PATTERNS_H
#define FERRY_TEST_INTEROP_PATTERNS_H

#include "testutil.h"

#include "ferry/ferry.h"

#include <poll.h>
#include <stdbool.h>
#include <stdio.h>
#include <stdlib.h>
#include <string.h>
#include <zmq.h>

#if defined(__has_feature)
#if __has_feature(thread_sanitizer)
#define IP_TSAN 1
#endif
#endif
#if defined(__SANITIZE_THREAD__)
#define IP_TSAN 1
#endif
#ifdef IP_TSAN
/*
 * libzmq is not built with TSan: the lock-free queues between the application thread and its I/O
 * threads are invisible to TSan, so frames it hands over look racy. Only reports with a libzmq
 * frame are suppressed; ferry's own threads stay fully checked. (Defined here, with external
 * linkage, because each interop program includes this header exactly once.)
 */
const char *__tsan_default_suppressions(void);
const char *__tsan_default_suppressions(void)
{
    return "called_from_lib:libzmq.so.5\nrace:libzmq.so.5\n";
}
#endif

#define IP_MAX_FRAMES 8
#define IP_TIMEOUT_MS 5000 /* generous: sanitizer builds on a loaded 2-vCPU machine */

/* ---- messages
 * ---------------------------------------------------------------------------
 */

typedef struct ip_msg {
    int n;
    size_t len[IP_MAX_FRAMES];
    unsigned char *data[IP_MAX_FRAMES];
} ip_msg;

static inline void ip_msg_clear(ip_msg *m)
{
    for (int i = 0; i < m->n; i++)
        free(m->data[i]);
    m->n = 0;
}

static inline void ip_msg_add(ip_msg *m, const void *data, size_t len)
{
    CHECK(m->n < IP_MAX_FRAMES);
    m->data[m->n] = malloc(len ? len : 1);
    CHECK(m->data[m->n]);
    if (len)
        memcpy(m->data[m->n], data, len);
    m->len[m->n] = len;
    m->n++;
}

static inline void ip_msg_add_str(ip_msg *m, const char *s)
{
    ip_msg_add(m, s, strlen(s));
}

/* A frame of len bytes: pattern derived from seed so corruption or reordering is detected. Big
 * frames come from a cache filled once (a byte loop per 1 MiB message is slow under TSan). */
static inline void ip_msg_add_pattern(ip_msg *m, size_t len, unsigned seed)
{
    static unsigned char *cache;
    static size_t cache_len;
    static unsigned cache_seed;
    if (len > 4096 && cache && cache_len == len && cache_seed == seed) {
        ip_msg_add(m, cache, len);
        return;
    }
    unsigned char *b = malloc(len ? len : 1);
    CHECK(b);
    for (size_t i = 0; i < len; i++)
        b[i] = (unsigned char)(i * 31u + seed);
    ip_msg_add(m, b, len);
    if (len > 4096) {
        free(cache);
        cache = b;
        cache_len = len;
        cache_seed = seed;
    } else {
        free(b);
    }
}

/* Prepends one frame (for envelopes). */
static inline void ip_msg_push_front(ip_msg *m, const void *data, size_t len)
{
    CHECK(m->n < IP_MAX_FRAMES);
    memmove(&m->data[1], &m->data[0], (size_t)m->n * sizeof m->data[0]);
    memmove(&m->len[1], &m->len[0], (size_t)m->n * sizeof m->len[0]);
    m->n++;
    m->data[0] = malloc(len ? len : 1);
    CHECK(m->data[0]);
    if (len)
        memcpy(m->data[0], data, len);
    m->len[0] = len;
}

/* Removes the first frame into (out, *outlen) when out is non-NULL (cap bytes
 * at most). */
static inline void ip_msg_pop_front(ip_msg *m, void *out, size_t cap, size_t *outlen)
{
    CHECK(m->n > 0);
    if (out) {
        CHECK(m->len[0] <= cap);
        memcpy(out, m->data[0], m->len[0]);
    }
    if (outlen)
        *outlen = m->len[0];
    free(m->data[0]);
    memmove(&m->data[0], &m->data[1], (size_t)(m->n - 1) * sizeof m->data[0]);
    memmove(&m->len[0], &m->len[1], (size_t)(m->n - 1) * sizeof m->len[0]);
    m->n--;
}

static inline bool ip_msg_eq(const ip_msg *a, const ip_msg *b)
{
    if (a->n != b->n)
        return false;
    for (int i = 0; i < a->n; i++)
        if (a->len[i] != b->len[i] || (a->len[i] && memcmp(a->data[i], b->data[i], a->len[i])))
            return false;
    return true;
}

static inline bool ip_msg_is(const ip_msg *m, const char *first)
{
    return m->n >= 1 && m->len[0] == strlen(first) && memcmp(m->data[0], first, m->len[0]) == 0;
}

static inline void ip_msg_print(const char *what, const ip_msg *m)
{
    fprintf(stderr, "%s: %d frame(s):", what, m->n);
    for (int i = 0; i < m->n; i++) {
        fprintf(stderr, " [%zu:", m->len[i]);
        for (size_t k = 0; k < m->len[i] && k < 12; k++)
            fprintf(stderr, "%02x", m->data[i][k]);
        fprintf(stderr, "%s]", m->len[i] > 12 ? ".." : "");
    }
    fprintf(stderr, "\n");
}

/* The standard message set: single frame, multipart, 0-byte, the 255/256-byte
 * short/long frame boundary, 1 MiB. `tag` is the first byte(s) of every first
 * frame (PUB/SUB topics). */
#define IP_SET_SIZE 7
/* Envelope loops run the set, then its first three messages again with tag "" (empty first
 * frames: 0-byte bodies behind a delimiter); IP_TAG picks the tag for round i. */
#define IP_ROUNDS      (IP_SET_SIZE + 3)
#define IP_TAG(i, tag) ((i) < IP_SET_SIZE ? (tag) : "")
static inline void ip_msg_set(ip_msg *m, int i, const char *tag)
{
    memset(m, 0, sizeof *m);
    size_t tl = strlen(tag);
    switch (i) {
    case 0: /* single short frame */
        ip_msg_add_str(m, tag);
        m->data[0] = realloc(m->data[0], tl + 5);
        memcpy(m->data[0] + tl, "hello", 5);
        m->len[0] = tl + 5;
        break;
    case 1: /* multipart, with an empty frame in the middle */
        ip_msg_add_str(m, tag);
        ip_msg_add_str(m, "bb");
        ip_msg_add(m, "", 0);
        ip_msg_add_str(m, "dddd");
        break;
    case 2: /* a 0-byte body (tag alone is the first frame; with tag "" a 0-byte
               message) */
        ip_msg_add_str(m, tag);
        if (tl)
            ip_msg_add(m, "", 0);
        break;
    case 3: /* 255 bytes: the largest short frame */
    case 4: /* 256 bytes: the smallest LONG frame */
        ip_msg_add_pattern(m, i == 3 ? 255 : 256, (unsigned)i);
        if (tl)
            memcpy(m->data[0], tag, tl);
        break;
    case 5: /* 255 and 256 in one multipart message */
        ip_msg_add_str(m, tag);
        ip_msg_add_pattern(m, 255, 5);
        ip_msg_add_pattern(m, 256, 6);
        break;
    case 6: /* 1 MiB */
        ip_msg_add_str(m, tag);
        ip_msg_add_pattern(m, 1u << 20, 7);
        break;
    default:
        CHECK(0);
    }
}

/* ---- sockets
 * ------------------------------------------------------------------------------
 */

typedef struct ip_sock {
    bool zmq;
    int type;
    void *z;
    ferry_socket *f;
    char ep[512]; /* the resolved endpoint after bind */
} ip_sock;

static inline void *ip_zctx(void)
{
    static void *ctx;
    if (!ctx) {
        ctx = zmq_ctx_new();
        CHECK(ctx);
    }
    return ctx;
}

static inline const char *ip_type_name(int type)
{
    static const char *names[] = {"PAIR",   "PUB",  "SUB",  "REQ",  "REP", "DEALER",
                                  "ROUTER", "PULL", "PUSH", "XPUB", "XSUB"};
    return type >= 0 && type <= 10 ? names[type] : "?";
}

static inline void ip_open(ip_sock *s, bool use_zmq, int type)
{
    memset(s, 0, sizeof *s);
    s->zmq = use_zmq;
    s->type = type;
    if (use_zmq) {
        /* ZMQ_* type numbers equal FERRY_* ones. */
        s->z = zmq_socket(ip_zctx(), type);
        CHECK(s->z);
        int zero = 0, to = IP_TIMEOUT_MS;
        CHECK(zmq_setsockopt(s->z, ZMQ_LINGER, &zero, sizeof zero) == 0);
        CHECK(zmq_setsockopt(s->z, ZMQ_SNDTIMEO, &to, sizeof to) == 0);
        /* Fast reconnects keep the restart tests short. */
        int ivl = 20;
        CHECK(zmq_setsockopt(s->z, ZMQ_RECONNECT_IVL, &ivl, sizeof ivl) == 0);
    } else {
        CHECK_OK(ferry_socket_open(&s->f, type));
        CHECK_OK(ferry_socket_setopt_int(s->f, FERRY_OPT_LINGER, 0));
        CHECK_OK(ferry_socket_setopt_int(s->f, FERRY_OPT_SNDTIMEO, IP_TIMEOUT_MS));
        CHECK_OK(ferry_socket_setopt_int(s->f, FERRY_OPT_RECONNECT_IVL, 20));
    }
}

static inline void ip_close(ip_sock *s)
{
    if (s->zmq) {
        if (s->z)
            CHECK(zmq_close(s->z) == 0);
        s->z = NULL;
    } else {
        ferry_socket_close(s->f);
        s->f = NULL;
    }
}

static inline void ip_set_id(ip_sock *s, const char *id)
{
    if (s->zmq)
        CHECK(zmq_setsockopt(s->z, ZMQ_ROUTING_ID, id, strlen(id)) == 0);
    else
        CHECK_OK(ferry_socket_setopt_bytes(s->f, FERRY_OPT_ROUTING_ID, id, strlen(id)));
}

/* Binds to a fresh endpoint of transport ("tcp" or "ipc") and records the
 * resolved one. */
static inline void ip_bind(ip_sock *s, const char *transport)
{
    char url[512];
    if (strcmp(transport, "tcp") == 0)
        snprintf(url, sizeof url, "tcp://127.0.0.1:*");
    else
        snprintf(url, sizeof url, "ipc://%s/%s", tu_tmpdir(), tu_unique("ip"));
    if (s->zmq) {
        if (zmq_bind(s->z, url) != 0) {
            fprintf(stderr, "zmq_bind(%s): %s\n", url, zmq_strerror(zmq_errno()));
            exit(1);
        }
        size_t len = sizeof s->ep;
        CHECK(zmq_getsockopt(s->z, ZMQ_LAST_ENDPOINT, s->ep, &len) == 0);
    } else {
        int rc = ferry_socket_bind(s->f, url);
        if (rc != 0) {
            fprintf(stderr, "ferry_socket_bind(%s): %s\n", url, ferry_strerror(rc));
            exit(1);
        }
        CHECK(ferry_socket_last_endpoint(s->f, s->ep, sizeof s->ep) >= 0);
    }
}

/* Binds exactly url (used to rebind after a restart). */
static inline void ip_bind_url(ip_sock *s, const char *url)
{
    if (s->zmq) {
        /* The old libzmq socket's listener may need a moment to go away: retry
         * briefly. */
        uint64_t end = tu_now_ns() + (uint64_t)IP_TIMEOUT_MS * 1000000u;
        while (zmq_bind(s->z, url) != 0) {
            CHECK(zmq_errno() == EADDRINUSE && tu_now_ns() < end);
            poll(NULL, 0, 5); /* retry with a deadline: the old listener closes
                                 asynchronously */
        }
    } else {
        uint64_t end = tu_now_ns() + (uint64_t)IP_TIMEOUT_MS * 1000000u;
        int rc;
        while ((rc = ferry_socket_bind(s->f, url)) != 0) {
            CHECK(rc == FERRY_EADDRINUSE && tu_now_ns() < end);
            poll(NULL, 0, 5);
        }
    }
    snprintf(s->ep, sizeof s->ep, "%s", url);
}

static inline void ip_connect(ip_sock *s, const char *ep)
{
    if (s->zmq)
        CHECK(zmq_connect(s->z, ep) == 0);
    else
        CHECK_OK(ferry_socket_connect(s->f, ep));
}

static inline void ip_subscribe(ip_sock *s, const char *prefix, bool on)
{
    if (s->zmq)
        CHECK(zmq_setsockopt(s->z, on ? ZMQ_SUBSCRIBE : ZMQ_UNSUBSCRIBE, prefix, strlen(prefix)) ==
              0);
    else if (on)
        CHECK_OK(ferry_socket_subscribe(s->f, prefix, strlen(prefix)));
    else
        CHECK_OK(ferry_socket_unsubscribe(s->f, prefix, strlen(prefix)));
}

/* Sends every frame of m (MORE on all but the last); fails the test on error.
 */
static inline void ip_send(ip_sock *s, const ip_msg *m)
{
    for (int i = 0; i < m->n; i++) {
        bool more = i + 1 < m->n;
        if (s->zmq) {
            int rc = zmq_send(s->z, m->data[i], m->len[i], more ? ZMQ_SNDMORE : 0);
            if (rc < 0) {
                fprintf(stderr, "zmq_send: %s\n", zmq_strerror(zmq_errno()));
                exit(1);
            }
        } else {
            int rc = ferry_socket_send(s->f, m->data[i], m->len[i], more ? FERRY_MORE : 0);
            if (rc != 0) {
                fprintf(stderr, "ferry_socket_send: %s\n", ferry_errname(rc));
                exit(1);
            }
        }
    }
}

/* Receives one whole message into m (cleared first). Returns 0, or -1 when
 * nothing arrived within timeout_ms (only before the first frame: a partial
 * message is a failure). */
static inline int ip_recv(ip_sock *s, ip_msg *m, int timeout_ms)
{
    ip_msg_clear(m);
    for (;;) {
        int to = m->n == 0 ? timeout_ms : IP_TIMEOUT_MS;
        bool more;
        if (s->zmq) {
            CHECK(zmq_setsockopt(s->z, ZMQ_RCVTIMEO, &to, sizeof to) == 0);
            zmq_msg_t zm;
            zmq_msg_init(&zm);
            int rc = zmq_msg_recv(&zm, s->z, 0);
            if (rc < 0) {
                CHECK(zmq_errno() == EAGAIN && m->n == 0);
                zmq_msg_close(&zm);
                return -1;
            }
            ip_msg_add(m, zmq_msg_data(&zm), zmq_msg_size(&zm));
            more = zmq_msg_more(&zm);
            zmq_msg_close(&zm);
        } else {
            CHECK_OK(ferry_socket_setopt_int(s->f, FERRY_OPT_RCVTIMEO, to));
            ferry_msg fm;
            ferry_msg_init(&fm);
            int rc = ferry_msg_recv(s->f, &fm, 0);
            if (rc == FERRY_EAGAIN || rc == FERRY_ETIMEDOUT) {
                CHECK(m->n == 0);
                ferry_msg_fini(&fm);
                return -1;
            }
            if (rc < 0) {
                fprintf(stderr, "ferry_msg_recv: %s\n", ferry_errname(rc));
                exit(1);
            }
            ip_msg_add(m, ferry_msg_data(&fm), ferry_msg_size(&fm));
            more = ferry_msg_more(&fm);
            ferry_msg_fini(&fm);
        }
        if (!more)
            return 0;
    }
}

/* Receives a message that must arrive within the standard deadline. */
static inline void ip_recv_must(ip_sock *s, ip_msg *m, const char *what)
{
    if (ip_recv(s, m, IP_TIMEOUT_MS) != 0) {
        fprintf(stderr, "timed out waiting for %s\n", what);
        exit(1);
    }
}

static inline void ip_expect(ip_sock *s, const ip_msg *want, const char *what)
{
    ip_msg got = {0};
    ip_recv_must(s, &got, what);
    if (!ip_msg_eq(&got, want)) {
        fprintf(stderr, "%s: message mismatch\n", what);
        ip_msg_print("  want", want);
        ip_msg_print("  got ", &got);
        exit(1);
    }
    ip_msg_clear(&got);
}

/* Lets a socket's owner run: a call that processes pending connection events. */
static inline void ip_kick(ip_sock *s)
{
    if (s->zmq) {
        int ev;
        size_t len = sizeof ev;
        CHECK(zmq_getsockopt(s->z, ZMQ_EVENTS, &ev, &len) == 0);
    } else {
        CHECK(ferry_socket_events(s->f) >= 0);
    }
}

/*
 * Like ip_expect, but while waiting keeps `kick` (either library, or NULL) busy. Both libraries
 * attach a new connection on the owner's thread at its next call: a bound libzmq SUB sends its
 * subscriptions to a new peer only then (measured: an idle bound libzmq SUB sends nothing after
 * READY), and so does ferry. Real applications sit in recv/poll; a test that waits on the other
 * socket must do the same for the subscriber.
 */
static inline void ip_expect_kick(ip_sock *s, const ip_msg *want, const char *what, ip_sock *kick)
{
    if (!kick) {
        ip_expect(s, want, what);
        return;
    }
    ip_msg got = {0};
    uint64_t end = tu_now_ns() + (uint64_t)IP_TIMEOUT_MS * 1000000u;
    for (;;) {
        ip_kick(kick);
        if (ip_recv(s, &got, 10) == 0)
            break;
        if (tu_now_ns() > end) {
            fprintf(stderr, "timed out waiting for %s\n", what);
            exit(1);
        }
    }
    if (!ip_msg_eq(&got, want)) {
        fprintf(stderr, "%s: message mismatch\n", what);
        ip_msg_print("  want", want);
        ip_msg_print("  got ", &got);
        exit(1);
    }
    ip_msg_clear(&got);
}

/* ---- the matrix
 * -----------------------------------------------------------------------------
 */

/* One case: socket types a and b; which of them is ferry; which binds; the
 * transport. */
typedef struct ip_case {
    int type_a, type_b;
    bool a_is_ferry; /* else b is ferry (the other is libzmq) */
    bool a_binds;
    const char *transport;
} ip_case;

static inline void ip_case_name(const ip_case *c, char *buf, size_t cap)
{
    snprintf(buf, cap, "%s(%s,%s)-%s(%s,%s) over %s", ip_type_name(c->type_a),
             c->a_is_ferry ? "ferry" : "libzmq", c->a_binds ? "bind" : "connect",
             ip_type_name(c->type_b), c->a_is_ferry ? "libzmq" : "ferry",
             c->a_binds ? "connect" : "bind", c->transport);
}

/* Opens both sockets of a case; set ids (may be NULL) before connecting; binder
 * binds first. */
static inline void ip_case_open(const ip_case *c, ip_sock *a, ip_sock *b, const char *id_a,
                                const char *id_b)
{
    ip_open(a, !c->a_is_ferry, c->type_a);
    ip_open(b, c->a_is_ferry, c->type_b);
    if (id_a)
        ip_set_id(a, id_a);
    if (id_b)
        ip_set_id(b, id_b);
    if (c->a_binds) {
        ip_bind(a, c->transport);
        ip_connect(b, a->ep);
    } else {
        ip_bind(b, c->transport);
        ip_connect(a, b->ep);
    }
}

/* Runs fn for every direction, role and transport of the pair (a, b). */
static inline int ip_run_pair(int type_a, int type_b, void (*fn)(const ip_case *c))
{
    static const char *transports[] = {"tcp", "ipc"};
    int n = 0;
    for (int t = 0; t < 2; t++)
        for (int ferry_a = 1; ferry_a >= 0; ferry_a--)
            for (int a_binds = 1; a_binds >= 0; a_binds--) {
                ip_case c = {type_a, type_b, ferry_a != 0, a_binds != 0, transports[t]};
                char name[160];
                ip_case_name(&c, name, sizeof name);
                fprintf(stderr, "case: %s\n", name);
                fn(&c);
                n++;
            }
    return n;
}

#endif
