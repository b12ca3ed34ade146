/*
 * test_transport_stream.c - the stream engine's input side against a hand-driven ZMTP peer.
 *
 * The test is the peer: it writes greeting, READY and frames itself into one end of a
 * socketpair the ferry socket adopted, in chunks it chooses, and makes the ferry socket read
 * between chunks (a FERRY_DONTWAIT receive that must find nothing yet). So every split the
 * engine must survive happens for certain, not by timing: a frame header cut in two, a body cut
 * anywhere, a multipart message whose MORE frame and last frame arrive in different reads, short
 * and long frames at 255/256/257 bytes, many frames per read crossing the 64 KiB read buffer,
 * and a body larger than the read buffer arriving in pieces. The last case checks the receive
 * side's read-ahead bound: a receiver that does not receive does not buffer without limit.
 */
#include "ferry/ferry.h"
#include "testutil.h"

#include <errno.h>
#include <fcntl.h>
#include <poll.h>
#include <stdbool.h>
#include <stdint.h>
#include <stdlib.h>
#include <string.h>
#include <sys/socket.h>
#include <unistd.h>

static uint8_t body_byte(uint64_t seq, size_t i)
{
    return (uint8_t)(seq * 131 + i * 7 + (i >> 9));
}

static size_t frame_header(uint8_t *h, uint8_t flags, uint64_t size)
{
    if (size <= 255) {
        h[0] = flags;
        h[1] = (uint8_t)size;
        return 2;
    }
    h[0] = flags | 0x02;
    for (int i = 0; i < 8; i++)
        h[1 + i] = (uint8_t)(size >> (56 - 8 * i));
    return 9;
}

/* One whole frame (header + body) into a buffer; returns its length. */
static size_t frame_build(uint8_t *out, bool more, uint64_t seq, size_t size)
{
    size_t h = frame_header(out, more ? 0x01 : 0x00, size);
    for (size_t i = 0; i < size; i++)
        out[h + i] = body_byte(seq, i);
    return h + size;
}

/* Greeting (ZMTP 3.1, NULL, as-server 0) and READY announcing Socket-Type PUSH. */
static void raw_handshake(int fd)
{
    uint8_t g[64];
    memset(g, 0, sizeof g);
    g[0] = 0xff;
    g[9] = 0x7f;
    g[10] = 3;
    g[11] = 1;
    memcpy(g + 12, "NULL", 4);
    tu_write_all(fd, g, sizeof g);
    uint8_t r[64];
    size_t n = 0;
    r[n++] = 0x04;
    r[n++] = 0; /* size, set below */
    r[n++] = 5;
    memcpy(r + n, "READY", 5);
    n += 5;
    r[n++] = 11;
    memcpy(r + n, "Socket-Type", 11);
    n += 11;
    r[n++] = 0;
    r[n++] = 0;
    r[n++] = 0;
    r[n++] = 4;
    memcpy(r + n, "PUSH", 4);
    n += 4;
    r[1] = (uint8_t)(n - 2);
    tu_write_all(fd, r, n);
}

/* Reads and throws away what ferry sends (its greeting and READY), so its writes never block. */
static void raw_drain(int fd)
{
    uint8_t buf[4096];
    for (;;) {
        ssize_t n = recv(fd, buf, sizeof buf, MSG_DONTWAIT);
        if (n <= 0)
            return;
    }
}

static void expect_none(ferry_socket *s)
{
    uint8_t b[16];
    CHECK_RC(ferry_socket_recv(s, b, sizeof b, FERRY_DONTWAIT, NULL), FERRY_EAGAIN);
}

static void expect_frame(ferry_socket *s, uint64_t seq, size_t size, int want_more)
{
    static uint8_t b[200000];
    int more = -1;
    ssize_t n = ferry_socket_recv(s, b, sizeof b, 0, &more);
    if (n != (ssize_t)size) {
        fprintf(stderr, "frame %llu: got %zd bytes (%s), want %zu\n", (unsigned long long)seq, n,
                n < 0 ? tu_errname((int)n) : "size", size);
        exit(1);
    }
    CHECK(more == want_more);
    for (size_t i = 0; i < size; i++) {
        if (b[i] != body_byte(seq, i)) {
            fprintf(stderr, "frame %llu byte %zu corrupted\n", (unsigned long long)seq, i);
            exit(1);
        }
    }
}

typedef struct rawlink {
    ferry_socket *s;
    int raw;
} rawlink;

static rawlink link_open(void)
{
    int sp[2];
    CHECK(socketpair(AF_UNIX, SOCK_STREAM | SOCK_CLOEXEC, 0, sp) == 0);
    rawlink l;
    CHECK_OK(ferry_socket_open(&l.s, FERRY_PULL));
    CHECK_OK(ferry_socket_setopt_int(l.s, FERRY_OPT_RCVTIMEO, 10000));
    CHECK_OK(ferry_socket_adopt(l.s, sp[0], sp[0]));
    l.raw = sp[1];
    raw_handshake(l.raw);
    /* The rawlink is up once the handshake is through: wait for the peer count, not a time. */
    uint64_t deadline = tu_now_ns() + 10000000000ull;
    for (;;) {
        ferry_stats st;
        CHECK_OK(ferry_socket_stats(l.s, &st));
        if (st.peers == 1)
            break;
        CHECK(tu_now_ns() < deadline);
        struct pollfd pf = {.fd = l.raw, .events = POLLIN};
        poll(&pf, 1, 1);
        raw_drain(l.raw);
    }
    raw_drain(l.raw);
    return l;
}

static void link_close(rawlink *l)
{
    ferry_socket_close(l->s);
    close(l->raw);
}

/* Writes one frame cut at every position in `cuts` (ascending offsets into the encoded frame),
 * making the socket read (and find nothing complete) after every piece. */
static void frame_in_pieces(rawlink *l, bool more, uint64_t seq, size_t size, const size_t *cuts,
                            int ncuts)
{
    static uint8_t f[200000];
    size_t len = frame_build(f, more, seq, size);
    size_t at = 0;
    for (int i = 0; i < ncuts; i++) {
        CHECK(cuts[i] > at && cuts[i] < len);
        tu_write_all(l->raw, f + at, cuts[i] - at);
        at = cuts[i];
        expect_none(l->s);
    }
    tu_write_all(l->raw, f + at, len - at);
}

static void test_splits(void)
{
    rawlink l = link_open();
    uint64_t seq = 0;
    /* Sizes at and around the short/long header boundary and the inline/heap body boundary. */
    const size_t sizes[] = {0, 1, 40, 41, 64, 255, 256, 257, 1000, 8192, 8193};
    for (size_t k = 0; k < sizeof sizes / sizeof sizes[0]; k++) {
        size_t size = sizes[k];
        size_t hl = size <= 255 ? 2 : 9;
        /* Cut inside the header (after its first byte), then before the body, then mid-body. */
        size_t cuts[3];
        int n = 0;
        cuts[n++] = 1;
        if (hl > 2)
            cuts[n++] = 5;
        if (size > 1)
            cuts[n++] = hl + size / 2;
        frame_in_pieces(&l, false, seq, size, cuts, n);
        expect_frame(l.s, seq, size, 0);
        seq++;
    }
    printf("  header and body split across reads: %zu sizes ok\n", sizeof sizes / sizeof sizes[0]);

    /* A three-frame message whose frames arrive in separate reads, the last one split. */
    static uint8_t f[4096];
    size_t len = frame_build(f, true, seq, 300);
    tu_write_all(l.raw, f, len);
    expect_frame(l.s, seq, 300, 1);
    expect_none(l.s);
    len = frame_build(f, true, seq + 1, 0);
    tu_write_all(l.raw, f, len);
    expect_frame(l.s, seq + 1, 0, 1);
    size_t cuts[] = {1, 2 + 10};
    frame_in_pieces(&l, false, seq + 2, 100, cuts, 2);
    expect_frame(l.s, seq + 2, 100, 0);
    seq += 3;
    printf("  multipart message with MORE split across reads ok\n");
    link_close(&l);
}

/* Many frames in few writes: more than the engine's 64 KiB read buffer at once, so frames
 * straddle its end and the refill, with short/long headers and the 255/256 sizes mixed. */
static void test_many_per_read(void)
{
    rawlink l = link_open();
    const uint64_t n = 6000;
    size_t cap = 1 << 20, len = 0;
    uint8_t *buf = malloc(cap);
    CHECK(buf != NULL);
    uint64_t sent = 0, got = 0;
    while (got < n) {
        /* Fill about 200 KiB (the socket buffer takes it or the write blocks until ferry
         * reads, which the receive loop below does once this chunk is out). */
        len = 0;
        while (sent < n && len < 200000) {
            size_t size = (size_t)(sent % 5 == 0 ? 255 + sent % 3 : 20 + (sent * 37) % 90);
            len += frame_build(buf + len, (sent % 7) == 3, sent, size);
            sent++;
        }
        /* ferry reads only when we call it: write what the kernel takes; when it is full,
         * receive one frame (which reads up to 64 KiB) and go on. */
        size_t at = 0;
        while (at < len) {
            ssize_t w = send(l.raw, buf + at, len - at, MSG_DONTWAIT);
            if (w > 0) {
                at += (size_t)w;
                continue;
            }
            CHECK(w < 0 && (errno == EAGAIN || errno == EINTR));
            /* The kernel is full: take one frame to make room. */
            CHECK(got < sent);
            size_t size = (size_t)(got % 5 == 0 ? 255 + got % 3 : 20 + (got * 37) % 90);
            expect_frame(l.s, got, size, (got % 7) == 3);
            got++;
        }
        while (got < sent) {
            size_t size = (size_t)(got % 5 == 0 ? 255 + got % 3 : 20 + (got * 37) % 90);
            expect_frame(l.s, got, size, (got % 7) == 3);
            got++;
        }
    }
    expect_none(l.s);
    printf("  %llu frames in writes of up to 200 KiB: all intact, in order\n",
           (unsigned long long)n);
    free(buf);
    link_close(&l);
}

/* A body larger than the read buffer, written in uneven pieces with reads in between. */
static void test_big_body(void)
{
    rawlink l = link_open();
    const size_t size = 150000;
    size_t cuts[] = {1, 9, 9 + 1000, 9 + 70000, 9 + 140000};
    frame_in_pieces(&l, false, 77, size, cuts, 5);
    expect_frame(l.s, 77, size, 0);
    printf("  %zu-byte body in 6 pieces ok\n", size);
    link_close(&l);
}

/* RCVHWM on a stream rawlink bounds what the engine buffers in user space ahead of the
 * application (docs/design.md, "Stream hot path"): a receiver that does not receive leaves the
 * rest in the kernel, so a peer that keeps writing is eventually blocked by the kernel. */
static void test_read_ahead_bounded(void)
{
    rawlink l = link_open();
    CHECK(fcntl(l.raw, F_SETFL, fcntl(l.raw, F_GETFL) | O_NONBLOCK) == 0);
    static uint8_t f[80];
    size_t len = frame_build(f, false, 5, 64);
    uint64_t written = 0;
    /* Write until the kernel refuses; the ferry socket is not receiving. The control thread
     * may read ahead for PINGs, but only into its bounded buffer. */
    uint64_t deadline = tu_now_ns() + 20000000000ull;
    int refusals = 0;
    bool partial = false;
    while (refusals < 50 && !partial) {
        ssize_t w = send(l.raw, f, len, MSG_DONTWAIT);
        if (w == (ssize_t)len) {
            written++;
            continue;
        }
        CHECK(w < 0 ? errno == EAGAIN || errno == EINTR : w < (ssize_t)len);
        partial = w > 0; /* a cut frame is never delivered: stop here */
        CHECK(tu_now_ns() < deadline);
        refusals++;
        struct pollfd pf = {.fd = l.raw, .events = POLLOUT};
        poll(&pf, 1, 2); /* give the control thread a chance to read ahead if it would */
    }
    /* Everything written is delivered, nothing more. */
    for (uint64_t i = 0; i < written; i++)
        expect_frame(l.s, 5, 64, 0);
    expect_none(l.s);
    printf("  a receiver that does not receive: the peer was stopped after %llu frames "
           "(kernel buffers + at most the engine's read buffer)\n",
           (unsigned long long)written);
    link_close(&l);
}

/* ---- ferry_socket_recv_many (the stream engine's batch path) ---- */

/* Frame seq of the batch stream: messages of three frames (MORE, MORE, last) at seq % 6 in 1..3,
 * sizes across the header boundary, the read-buffer limit (32 KiB) and beyond it. */
static size_t mixed_size(uint64_t seq)
{
    static const size_t sizes[] = {8, 64, 0, 255, 256, 1000, 32768, 32769, 40000, 3};
    return seq % 37 == 20 ? sizes[6 + seq % 3] : sizes[seq % 6];
}

static bool mixed_more(uint64_t seq)
{
    return seq % 6 == 1 || seq % 6 == 2;
}

/* A PING command (ttl 0, context "ab"). */
static size_t ping_build(uint8_t *out)
{
    static const uint8_t ping[] = {0x04, 9, 4, 'P', 'I', 'N', 'G', 0, 0, 'a', 'b'};
    memcpy(out, ping, sizeof ping);
    return sizeof ping;
}

/* Receives one batch of up to want entries (entry 0 holds only 10 bytes every fourth call: a
 * truncated frame reports its full size) and checks it against the stream. Returns the count. */
static size_t recv_batch_check(ferry_socket *s, uint64_t *next, size_t want, unsigned call)
{
    static uint8_t bufs[9][50000];
    ferry_iov v[9];
    for (size_t e = 0; e < want; e++)
        v[e] = (ferry_iov){
            .buf = bufs[e], .len = (call % 4 == 0 && e == 0) ? 10 : 50000, .size = 1, .flags = 77};
    ssize_t r = ferry_socket_recv_many(s, v, want, 0);
    if (r < 1) {
        fprintf(stderr, "recv_many at frame %llu: %s\n", (unsigned long long)*next,
                r < 0 ? tu_errname((int)r) : "0");
        exit(1);
    }
    CHECK((size_t)r <= want);
    for (ssize_t e = 0; e < r; e++, (*next)++) {
        uint64_t seq = *next;
        size_t size = mixed_size(seq), c = size < v[e].len ? size : v[e].len;
        if (v[e].size != size || v[e].flags != (mixed_more(seq) ? FERRY_MORE : 0)) {
            fprintf(stderr, "frame %llu: size %zu flags %d, want %zu %d\n", (unsigned long long)seq,
                    v[e].size, v[e].flags, size, mixed_more(seq));
            exit(1);
        }
        for (size_t i = 0; i < c; i++)
            CHECK(bufs[e][i] == body_byte(seq, i));
    }
    return (size_t)r;
}

static void test_batch_mixed(void)
{
    rawlink l = link_open();
    const uint64_t n = 1500;
    size_t cap = 4 << 20, len = 0;
    uint8_t *buf = malloc(cap);
    CHECK(buf != NULL);
    for (uint64_t seq = 0; seq < n; seq++) {
        /* A PING between two messages and one inside a multipart message (both legal). */
        if (seq == 300 || seq == 601)
            len += ping_build(buf + len);
        len += frame_build(buf + len, mixed_more(seq), seq, mixed_size(seq));
    }
    CHECK(len <= cap);
    uint64_t got = 0;
    unsigned call = 0;
    size_t at = 0;
    while (got < n) {
        /* ferry reads only when we call it: write what the kernel takes, then take a batch. */
        while (at < len) {
            ssize_t w = send(l.raw, buf + at, len - at, MSG_DONTWAIT);
            if (w <= 0) {
                CHECK(w < 0 && (errno == EAGAIN || errno == EINTR));
                break;
            }
            at += (size_t)w;
        }
        CHECK(got < n);
        (void)recv_batch_check(l.s, &got, 1 + call % 9, call);
        call++;
    }
    expect_none(l.s);
    /* Both PINGs were answered (by the owner's receive or the control thread): two PONGs
     * carrying the context, and nothing else on the wire. */
    uint8_t pong[64];
    size_t have = 0;
    uint64_t end = tu_now_ns() + 10000000000ull;
    static const uint8_t want[] = {0x04, 7, 4, 'P', 'O', 'N', 'G', 'a', 'b'};
    while (have < 2 * sizeof want) {
        CHECK(tu_now_ns() < end);
        struct pollfd pf = {.fd = l.raw, .events = POLLIN};
        if (poll(&pf, 1, 10) <= 0)
            continue;
        ssize_t r = recv(l.raw, pong + have, sizeof pong - have, MSG_DONTWAIT);
        CHECK(r > 0);
        have += (size_t)r;
    }
    CHECK(have == 2 * sizeof want && !memcmp(pong, want, sizeof want) &&
          !memcmp(pong + sizeof want, want, sizeof want));
    ferry_stats st;
    CHECK_OK(ferry_socket_stats(l.s, &st));
    uint64_t bytes = 0, msgs = 0;
    for (uint64_t seq = 0; seq < n; seq++) {
        bytes += mixed_size(seq);
        msgs += !mixed_more(seq);
    }
    CHECK(st.msgs_in == msgs && st.bytes_in == bytes);
    printf("  recv_many: %llu frames in %u batches of 1..9 (multipart, truncation, PINGs, "
           "bodies above the read buffer) intact, in order\n",
           (unsigned long long)n, call);
    free(buf);
    link_close(&l);
}

/*
 * A peer that sends three messages, a frame with a reserved flag bit, and two more messages. The
 * batch receive must do what a run of single receives does: the three messages, then the link
 * dropped, and nothing after the bad frame ever delivered. inmsg: the bad frame is the second
 * frame of a multipart message instead (its first frame is then delivered, as a run of single
 * receives delivers it).
 */
static void test_batch_hostile(bool batch, bool inmsg)
{
    rawlink l = link_open();
    uint8_t buf[256];
    size_t len = 0;
    for (uint64_t seq = 0; seq < 3; seq++)
        len += frame_build(buf + len, false, seq, 10 + seq);
    if (inmsg)
        len += frame_build(buf + len, true, 3, 13);
    buf[len++] = 0x10; /* reserved bit */
    buf[len++] = 1;
    buf[len++] = 'x';
    for (uint64_t seq = 4; seq < 6; seq++)
        len += frame_build(buf + len, false, seq, 10 + seq);
    tu_write_all(l.raw, buf, len);
    uint64_t good = inmsg ? 4 : 3, got = 0;
    int bad = 0;
    uint8_t b[9][64];
    while (got < good) {
        ferry_iov v[9];
        for (int e = 0; e < 9; e++)
            v[e] = (ferry_iov){.buf = b[e], .len = sizeof b[e]};
        ssize_t r;
        if (batch) {
            r = ferry_socket_recv_many(l.s, v, 9, 0);
        } else {
            int more = 0;
            r = ferry_socket_recv(l.s, b[0], sizeof b[0], 0, &more);
            if (r >= 0) {
                v[0].size = (size_t)r;
                v[0].flags = more ? FERRY_MORE : 0;
                r = 1;
            }
        }
        if (r < 0) {
            bad = (int)r;
            break;
        }
        for (ssize_t e = 0; e < r; e++, got++) {
            CHECK(got < good && v[e].size == 10 + got);
            CHECK(v[e].flags == (got == 3 ? FERRY_MORE : 0));
            for (size_t i = 0; i < v[e].size; i++)
                CHECK(b[e][i] == body_byte(got, i));
        }
    }
    CHECK(got == good);
    /* Then what a single receive gives after the bad frame: the PULL skips the dropped link
     * (the protocol error is only noted internally), so a DONTWAIT call finds
     * nothing; FERRY_EPROTO is accepted too (the caller's view of the same drop). */
    if (!bad) {
        ferry_iov v = {.buf = b[0], .len = sizeof b[0]};
        bad = batch ? (int)ferry_socket_recv_many(l.s, &v, 1, FERRY_DONTWAIT)
                    : (int)ferry_socket_recv(l.s, b[0], sizeof b[0], FERRY_DONTWAIT, NULL);
    }
    CHECK(bad == FERRY_EAGAIN || bad == FERRY_EPROTO);
    /* The link is dropped: the raw side sees the hang-up, the socket has no peer left, and
     * nothing sent after the bad frame is ever delivered. */
    uint64_t end = tu_now_ns() + 10000000000ull;
    for (;;) {
        ferry_stats st;
        CHECK_OK(ferry_socket_stats(l.s, &st));
        ferry_iov v = {.buf = b[0], .len = sizeof b[0]};
        ssize_t r = ferry_socket_recv_many(l.s, &v, 1, FERRY_DONTWAIT);
        CHECK(r < 0);
        if (st.peers == 0)
            break;
        CHECK(tu_now_ns() < end);
        poll(NULL, 0, 1);
    }
    uint8_t tmp[256];
    for (;;) {
        ssize_t r = recv(l.raw, tmp, sizeof tmp, 0);
        if (r == 0 || (r < 0 && errno == ECONNRESET))
            break;
        CHECK(r > 0 || errno == EINTR);
    }
    printf("  bad frame %s (%s): %llu frames before it delivered, then %s, link dropped\n",
           inmsg ? "inside a multipart message" : "between messages",
           batch ? "recv_many" : "single recv", (unsigned long long)good, tu_errname(bad));
    link_close(&l);
}

int main(void)
{
    tu_deadline(60);
    test_splits();
    test_many_per_read();
    test_big_body();
    test_read_ahead_bounded();
    test_batch_mixed();
    for (int inmsg = 0; inmsg < 2; inmsg++) {
        test_batch_hostile(false, inmsg);
        test_batch_hostile(true, inmsg);
    }
    return 0;
}
