/*
 * test_interop_batch.c - ferry_socket_send_many/recv_many against the real libzmq over ipc:// and
 * tcp://: the batch paths of the stream engine (many frames encoded per write, large bodies
 * written from the caller's memory with writev, many frames decoded per read) must put exactly
 * the ZMTP bytes of the single calls on the wire. A stream of single-frame and multipart messages
 * of sizes across every boundary (short/long header at 255/256, the 8 KiB copy limit, the 32 KiB
 * read-buffer limit, 70 000 bytes) goes from a ferry PUSH in batches of varying length to a
 * libzmq PULL, and from a libzmq PUSH (heartbeating every millisecond, so PING commands arrive in
 * the middle of the stream) to a ferry PULL receiving in batches; every frame is checked for
 * order, content and MORE, and the statistics for what went through.
 */
#include "ferry/ferry.h"
#include "testutil.h"

#include <pthread.h>
#include <stdbool.h>
#include <stdio.h>
#include <stdlib.h>
#include <string.h>
#include <zmq.h>

#define NMSG     1200
#define MAXFRAME 70000
#define BATCH    48

static void *ctx;

static uint32_t msg_frames(uint32_t i)
{
    return i % 5 == 2 ? 3 : i % 13 == 7 ? 2 : 1;
}

static size_t frame_size(uint32_t i, uint32_t k)
{
    static const size_t sizes[] = {8,    64,   0, 1,     255,   256, 1000,  8192, 64,
                                   8193, 9000, 8, 32768, 32769, 64,  70000, 100,  8};
    return sizes[(i * 7 + k * 3) % (sizeof sizes / sizeof sizes[0])];
}

static uint64_t stream_bytes(void)
{
    uint64_t t = 0;
    for (uint32_t i = 0; i < NMSG; i++)
        for (uint32_t k = 0; k < msg_frames(i); k++)
            t += frame_size(i, k);
    return t;
}

static void *zsock(int type)
{
    void *z = zmq_socket(ctx, type);
    CHECK(z);
    int to = 20000, linger = 0;
    zmq_setsockopt(z, ZMQ_RCVTIMEO, &to, sizeof to);
    zmq_setsockopt(z, ZMQ_SNDTIMEO, &to, sizeof to);
    zmq_setsockopt(z, ZMQ_LINGER, &linger, sizeof linger);
    return z;
}

static ferry_socket *fsock(int type)
{
    ferry_socket *f;
    CHECK_OK(ferry_socket_open(&f, type));
    CHECK_OK(ferry_socket_setopt_int(f, FERRY_OPT_RCVTIMEO, 20000));
    CHECK_OK(ferry_socket_setopt_int(f, FERRY_OPT_SNDTIMEO, 20000));
    return f;
}

/* ---- ferry PUSH (send_many) -> libzmq PULL ---- */

typedef struct zside {
    const char *ep;
    int bind; /* libzmq binds (ep is the URL) or connects (ep is ferry's endpoint) */
    char bound[256];
    volatile int ready;
    int failed;
} zside;

static void *zmq_pull_main(void *arg)
{
    zside *z = arg;
    void *pull = zsock(ZMQ_PULL);
    if (z->bind) {
        CHECK(zmq_bind(pull, z->ep) == 0);
        size_t l = sizeof z->bound;
        CHECK(zmq_getsockopt(pull, ZMQ_LAST_ENDPOINT, z->bound, &l) == 0);
    } else {
        CHECK(zmq_connect(pull, z->ep) == 0);
    }
    __atomic_store_n(&z->ready, 1, __ATOMIC_RELEASE);
    zmq_msg_t m;
    zmq_msg_init(&m);
    for (uint32_t i = 0; i < NMSG && !z->failed; i++) {
        for (uint32_t k = 0; k < msg_frames(i); k++) {
            int n = zmq_msg_recv(&m, pull, 0);
            bool more = zmq_msg_more(&m) != 0;
            if (n < 0 || !tu_frame_ok(zmq_msg_data(&m), (size_t)n, frame_size(i, k), i, k) ||
                more != (k + 1 < msg_frames(i))) {
                fprintf(stderr, "libzmq PULL: message %u frame %u wrong (n=%d more=%d)\n", i, k, n,
                        more);
                z->failed = 1;
                break;
            }
        }
    }
    zmq_msg_close(&m);
    zmq_close(pull);
    return NULL;
}

static void ferry_sends(const char *url, bool zbind)
{
    zside z = {.ep = url, .bind = zbind};
    ferry_socket *push = fsock(FERRY_PUSH);
    char ep[256];
    if (!zbind) {
        CHECK_OK(ferry_socket_bind(push, url));
        CHECK_OK(ferry_socket_last_endpoint(push, ep, sizeof ep));
        z.ep = ep;
    }
    pthread_t t;
    CHECK(pthread_create(&t, NULL, zmq_pull_main, &z) == 0);
    while (!__atomic_load_n(&z.ready, __ATOMIC_ACQUIRE))
        ;
    if (zbind)
        CHECK_OK(ferry_socket_connect(push, z.bound));
    uint8_t *bufs = malloc((size_t)BATCH * MAXFRAME);
    CHECK(bufs);
    ferry_iov v[BATCH];
    uint32_t msg = 0, frame = 0, round = 0;
    uint64_t msgs = 0, bytes = 0;
    while (msg < NMSG) {
        /* Build a batch continuing the stream (its length varies; it may end mid-message). */
        size_t want = 1 + (round++ * 7) % BATCH, n = 0;
        uint32_t m = msg, k = frame;
        while (n < want && m < NMSG) {
            tu_fill_frame(bufs + n * MAXFRAME, frame_size(m, k), m, k);
            bool more = k + 1 < msg_frames(m);
            v[n] = (ferry_iov){.buf = bufs + n * MAXFRAME,
                               .len = frame_size(m, k),
                               .flags = more ? FERRY_MORE : 0};
            n++;
            if (more) {
                k++;
            } else {
                m++;
                k = 0;
            }
        }
        ssize_t r = ferry_socket_send_many(push, v, n, 0);
        CHECK(r >= 1 && (size_t)r <= n);
        if ((size_t)r < n)
            CHECK(!(v[r - 1].flags & FERRY_MORE)); /* a short count ends at a boundary */
        for (ssize_t e = 0; e < r; e++) {
            bytes += v[e].len;
            if (v[e].flags & FERRY_MORE) {
                frame++;
            } else {
                msg++;
                msgs++;
                frame = 0;
            }
        }
    }
    CHECK(pthread_join(t, NULL) == 0);
    CHECK(!z.failed);
    ferry_stats st;
    CHECK_OK(ferry_socket_stats(push, &st));
    CHECK(st.msgs_out == NMSG && msgs == NMSG && st.bytes_out == bytes && bytes == stream_bytes());
    free(bufs);
    ferry_socket_close(push);
    printf("ok: ferry send_many -> libzmq PULL (%s, libzmq %s)\n", url,
           zbind ? "binds" : "connects");
}

/* ---- libzmq PUSH (heartbeating) -> ferry PULL (recv_many) ---- */

static void *zmq_push_main(void *arg)
{
    zside *z = arg;
    void *push = zsock(ZMQ_PUSH);
    int ivl = 1, ttl = 10000, hb_to = 10000, hwm = 100;
    /* PINGs every millisecond land between data frames on the ferry side. The timeout (which
     * defaults to the interval) is long: a missed PONG would drop the link and what was in
     * flight with it, which is libzmq's behaviour, not the subject here. */
    zmq_setsockopt(push, ZMQ_HEARTBEAT_IVL, &ivl, sizeof ivl);
    zmq_setsockopt(push, ZMQ_HEARTBEAT_TTL, &ttl, sizeof ttl);
    zmq_setsockopt(push, ZMQ_HEARTBEAT_TIMEOUT, &hb_to, sizeof hb_to);
    zmq_setsockopt(push, ZMQ_SNDHWM, &hwm, sizeof hwm);
    if (z->bind) {
        CHECK(zmq_bind(push, z->ep) == 0);
        size_t l = sizeof z->bound;
        CHECK(zmq_getsockopt(push, ZMQ_LAST_ENDPOINT, z->bound, &l) == 0);
    } else {
        CHECK(zmq_connect(push, z->ep) == 0);
    }
    __atomic_store_n(&z->ready, 1, __ATOMIC_RELEASE);
    uint8_t *b = malloc(MAXFRAME);
    CHECK(b);
    for (uint32_t i = 0; i < NMSG; i++) {
        for (uint32_t k = 0; k < msg_frames(i); k++) {
            tu_fill_frame(b, frame_size(i, k), i, k);
            bool more = k + 1 < msg_frames(i);
            if (zmq_send(push, b, frame_size(i, k), more ? ZMQ_SNDMORE : 0) < 0) {
                z->failed = 1;
                break;
            }
        }
    }
    free(b);
    /* Stay until the ferry side has everything (LINGER 0 would drop what is queued). */
    while (__atomic_load_n(&z->ready, __ATOMIC_ACQUIRE) != 2)
        zmq_poll(NULL, 0, 1);
    zmq_close(push);
    return NULL;
}

static void ferry_receives(const char *url, bool zbind)
{
    zside z = {.ep = url, .bind = zbind};
    ferry_socket *pull = fsock(FERRY_PULL);
    char ep[256];
    if (!zbind) {
        CHECK_OK(ferry_socket_bind(pull, url));
        CHECK_OK(ferry_socket_last_endpoint(pull, ep, sizeof ep));
        z.ep = ep;
    }
    pthread_t t;
    CHECK(pthread_create(&t, NULL, zmq_push_main, &z) == 0);
    while (!__atomic_load_n(&z.ready, __ATOMIC_ACQUIRE))
        ;
    if (zbind)
        CHECK_OK(ferry_socket_connect(pull, z.bound));
    uint8_t *bufs = malloc((size_t)BATCH * MAXFRAME);
    CHECK(bufs);
    ferry_iov v[BATCH];
    uint32_t msg = 0, frame = 0, round = 0;
    uint64_t msgs = 0, bytes = 0;
    while (msg < NMSG) {
        size_t n = 1 + (round++ * 5) % BATCH;
        for (size_t e = 0; e < n; e++)
            v[e] = (ferry_iov){.buf = bufs + e * MAXFRAME, .len = MAXFRAME, .flags = 99};
        ssize_t r = ferry_socket_recv_many(pull, v, n, 0);
        if (r < 0)
            fprintf(stderr, "recv_many at message %u: %s\n", msg, tu_errname((int)r));
        CHECK(r >= 1 && (size_t)r <= n);
        for (ssize_t e = 0; e < r; e++) {
            bool more = v[e].flags == FERRY_MORE;
            CHECK(v[e].flags == 0 || v[e].flags == FERRY_MORE);
            if (!tu_frame_ok(v[e].buf, v[e].size, frame_size(msg, frame), msg, frame) ||
                more != (frame + 1 < msg_frames(msg))) {
                fprintf(stderr, "ferry PULL: message %u frame %u wrong (size %zu flags %d)\n", msg,
                        frame, v[e].size, v[e].flags);
                CHECK(!"wrong frame");
            }
            bytes += v[e].size;
            if (more) {
                frame++;
            } else {
                msg++;
                msgs++;
                frame = 0;
            }
        }
    }
    __atomic_store_n(&z.ready, 2, __ATOMIC_RELEASE);
    CHECK(pthread_join(t, NULL) == 0);
    CHECK(!z.failed);
    ferry_stats st;
    CHECK_OK(ferry_socket_stats(pull, &st));
    CHECK(st.msgs_in == NMSG && msgs == NMSG && st.bytes_in == bytes && bytes == stream_bytes());
    /* Nothing but the stream came. */
    CHECK_RC(ferry_socket_recv_many(pull, v, 1, FERRY_DONTWAIT), FERRY_EAGAIN);
    free(bufs);
    ferry_socket_close(pull);
    printf("ok: libzmq PUSH -> ferry recv_many (%s, libzmq %s)\n", url,
           zbind ? "binds" : "connects");
}

int main(void)
{
    tu_deadline(120);
    ctx = zmq_ctx_new();
    CHECK(ctx);
    char ipc[300], tcp[64];
    for (int zbind = 0; zbind < 2; zbind++) {
        tu_ipc_url(ipc, sizeof ipc, zbind ? "ibz" : "ibf");
        ferry_sends(ipc, zbind);
        tu_ipc_url(ipc, sizeof ipc, zbind ? "ibz2" : "ibf2");
        ferry_receives(ipc, zbind);
        snprintf(tcp, sizeof tcp, "tcp://127.0.0.1:%d", tu_free_port());
        ferry_sends(tcp, zbind);
        snprintf(tcp, sizeof tcp, "tcp://127.0.0.1:%d", tu_free_port());
        ferry_receives(tcp, zbind);
    }
    zmq_ctx_term(ctx);
    return 0;
}
