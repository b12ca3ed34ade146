/*
 * test_shm_batch.c - the shared-memory batch fast path (transport/shm_batch.c) against a hostile
 * peer, on bare pipes (no socket), in two processes: the peer writes one good record and then a
 * broken one (short record, unknown flags, size lies, chunk runs that lie, a whole frame above the
 * limit, a tail index jumping past the ring, a record header claiming unpublished bytes), or
 * corrupts the consumer index of the ring the victim produces into. The victim receives with
 * fy_shm_batch_recv (falling back to the ordinary recv as the socket core does) or sends with
 * fy_shm_batch_send: it must deliver the good frame, never a frame after it, end with the pipe
 * dead and FERRY_EPROTO, never fault (run under ASan+UBSan), and leave no fd or mapping behind.
 * Also: records the batch path leaves alone (a multi-frame message) go to the ordinary recv
 * untouched (ferry_spsc_unpeek), in order. And many laps of the ring through both batch calls
 * (spans ending at the lap's end and at the peer's position), every frame checked, short receive
 * buffers written only up to their length.
 */
#include "core/msg.h"
#include "ferry/ring.h"
#include "ring/spsc_layout.h"
#include "testutil.h"
#include "transport/shm.h"
#include "transport/shm_batch.h"

#include <dirent.h>
#include <poll.h>
#include <signal.h>
#include <string.h>
#include <sys/socket.h>
#include <sys/wait.h>
#include <unistd.h>

#define RING    65536
#define MAX_MSG 4096

/* Forks; the parent (side 0, the victim) and the child (side 1, the peer) each return a live pipe
 * over one link. *child is the child's pid in the parent, 0 in the child. The child returns only
 * once the parent's pipe exists: endpoints validate the ring headers when they attach, so a peer
 * scribbling earlier would fail the attach instead of the path under test. */
static fy_pipe *link_pipes(pid_t *child, uint64_t max_msg)
{
    int go[2];
    CHECK(pipe(go) == 0);
    fy_pipe *p = tu_shm_pipe_fork(RING, 0, max_msg, child);
    char c = 'g';
    if (*child != 0)
        CHECK(write(go[1], &c, 1) == 1);
    else
        CHECK(read(go[0], &c, 1) == 1);
    close(go[0]);
    close(go[1]);
    return p;
}

/* The peer: stays until the victim dropped the link (its hang-up), then leaves. */
static void peer_linger(fy_pipe *p)
{
    struct pollfd pf = {.fd = fy_shm_pipe_usock(p), .events = POLLIN};
    poll(&pf, 1, 10000);
    _exit(0);
}

static void raw_record(ferry_spsc_tx *tx, uint64_t meta, size_t reclen)
{
    void *d;
    CHECK_OK(ferry_spsc_reserve(tx, reclen, &d));
    memset(d, 0xab, reclen);
    if (reclen >= 8)
        memcpy(d, &meta, 8);
    CHECK_OK(ferry_spsc_commit(tx, reclen, 0));
}

enum {
    BAD_SHORT,
    BAD_FLAGS,
    BAD_TOTAL,
    BAD_CONT,
    BAD_HUGE,
    BAD_CHUNKSEQ,
    BAD_OVERRUN,
    BAD_BIG,
    BAD_TAIL,
    BAD_RECHDR,
    BAD_COUNT,
};

static void hostile_writer(fy_pipe *p, int which)
{
    fy_shm_link_view v;
    fy_shm_link_view_get(fy_shm_pipe_link(p), &v);
    ferry_spsc_tx tx;
    CHECK_OK(ferry_spsc_tx_init(&tx, v.ring[1], v.ring_bytes));
    ferry_wait_policy pol;
    ferry_wait_policy_init(&pol);
    pol.eventfd = fy_shm_link_efd(fy_shm_pipe_link(p), 0);
    ferry_spsc_tx_set_wait(&tx, &pol);
    raw_record(&tx, 3u << 8, 11); /* the good frame: 3 bytes */
    fy_spsc_shared *sh = v.ring[1];
    switch (which) {
    case BAD_SHORT:
        raw_record(&tx, 0, 4);
        break;
    case BAD_FLAGS:
        raw_record(&tx, 0x40 | (4u << 8), 12);
        break;
    case BAD_TOTAL:
        raw_record(&tx, 9u << 8, 12);
        break;
    case BAD_CONT:
        raw_record(&tx, 0x08 | (100u << 8), 12);
        break;
    case BAD_HUGE:
        raw_record(&tx, 0x04 | ((uint64_t)1 << 40 << 8), 12);
        break;
    case BAD_CHUNKSEQ:
        raw_record(&tx, 0x04 | (100u << 8), 12);
        raw_record(&tx, 0x0c | (101u << 8), 12);
        break;
    case BAD_OVERRUN:
        raw_record(&tx, 0x04 | (10u << 8), 12);
        raw_record(&tx, 0x08 | (10u << 8), 16);
        break;
    case BAD_BIG: /* a whole frame above the receiver's limit */
        raw_record(&tx, (uint64_t)(MAX_MSG + 100) << 8, MAX_MSG + 108);
        break;
    case BAD_TAIL:
        atomic_store(&sh->tail, atomic_load(&sh->tail) + (1u << 20));
        break;
    case BAD_RECHDR: {
        uint64_t t = atomic_load(&sh->tail);
        uint8_t *data = (uint8_t *)sh + FY_SPSC_HDR_SIZE;
        uint64_t hdr = 1000 | ((uint64_t)FERRY_SPSC_REC_DATA_ << 32);
        memcpy(data + (t & (RING - 1)), &hdr, 8);
        atomic_store(&sh->tail, t + 16);
        break;
    }
    }
    uint64_t one = 1;
    CHECK(write(pol.eventfd, &one, 8) == 8); /* raw scribbles wake nobody */
    peer_linger(p);
}

static void test_hostile_recv(int which)
{
    int fds = tu_count_fds(), maps = tu_count_segment_maps();
    pid_t child;
    fy_pipe *p = link_pipes(&child, MAX_MSG);
    if (child == 0)
        hostile_writer(p, which);
    uint8_t bufs[8][64];
    ferry_iov v[8];
    bool good = false;
    int rc = 0;
    uint64_t end = tu_now_ns() + 10000000000ull;
    for (;;) {
        CHECK(tu_now_ns() < end);
        for (int e = 0; e < 8; e++)
            v[e] = (ferry_iov){.buf = bufs[e], .len = sizeof bufs[e]};
        uint64_t bytes;
        bool empty;
        size_t k = fy_shm_batch_recv(p, v, 8, &bytes, &empty);
        /* Only the good frame may come out, once. */
        CHECK(k <= 1);
        if (k == 1) {
            CHECK(!good && v[0].size == 3 && bytes == 3 && bufs[0][0] == 0xab);
            good = true;
        }
        if (k == 0 || atomic_load(&p->dead)) {
            /* What the core does next: the ordinary recv (which also reports the death). */
            fy_msg m;
            fy_msg_init(&m);
            rc = fy_pipe_recv(p, &m);
            if (rc == 0) {
                CHECK(!good && fy_msg_size(&m) == 3);
                good = true;
                fy_msg_fini(&m);
                continue;
            }
            if (rc == FERRY_EAGAIN) {
                tu_shm_pipe_wait(p, true, false);
                continue;
            }
            break;
        }
    }
    if (rc != FERRY_EPROTO)
        fprintf(stderr, "hostile case %d: %d %s\n", which, rc, tu_errname(rc));
    CHECK_RC(rc, FERRY_EPROTO);
    /* A broken index may be seen before the good record; a broken record never is. */
    CHECK(good || which == BAD_TAIL);
    CHECK(atomic_load(&p->dead) && fy_shm_pipe_error(p) == FERRY_EPROTO);
    uint64_t bytes;
    bool empty;
    CHECK(fy_shm_batch_recv(p, v, 8, &bytes, &empty) == 0);
    fy_shm_pipe_free(p);
    int st;
    CHECK(waitpid(child, &st, 0) == child && WIFEXITED(st) && WEXITSTATUS(st) == 0);
    CHECK(tu_count_fds() == fds && tu_count_segment_maps() == maps);
}

/* The consumer lies about its index: the batch producer fails the link instead of writing over
 * unread records or out of bounds. */
static void test_hostile_send(void)
{
    int fds = tu_count_fds(), maps = tu_count_segment_maps();
    pid_t child;
    fy_pipe *p = link_pipes(&child, MAX_MSG);
    if (child == 0) {
        fy_shm_link_view lv;
        fy_shm_link_view_get(fy_shm_pipe_link(p), &lv);
        fy_spsc_shared *sh = lv.ring[0]; /* the ring the victim produces into */
        atomic_store(&sh->head, atomic_load(&sh->tail) + 3 * (uint64_t)RING + 8);
        peer_linger(p);
    }
    uint8_t buf[64][64];
    ferry_iov v[64];
    for (int e = 0; e < 64; e++)
        v[e] = (ferry_iov){.buf = buf[e], .len = sizeof buf[e]};
    uint64_t sent = 0;
    for (int round = 0; round < 100000 && !atomic_load(&p->dead); round++) {
        uint64_t bytes;
        bool full;
        size_t k = fy_shm_batch_send(p, v, 64, true, &bytes, &full);
        sent += k;
        CHECK(bytes == k * 64);
        if (k == 0 && !atomic_load(&p->dead)) {
            /* Full by the (lying) index it cannot read yet: what the core would wait on. */
            CHECK(full);
            (void)fy_shm_pipe_wait_room(p, 64, 100);
        }
    }
    CHECK(atomic_load(&p->dead) && fy_shm_pipe_error(p) == FERRY_EPROTO);
    CHECK(sent < (uint64_t)RING / 64); /* never more than one ring's worth of records */
    uint64_t bytes;
    bool full;
    CHECK(fy_shm_batch_send(p, v, 64, true, &bytes, &full) == 0);
    fy_shm_pipe_free(p);
    int st;
    CHECK(waitpid(child, &st, 0) == child && WIFEXITED(st) && WEXITSTATUS(st) == 0);
    CHECK(tu_count_fds() == fds && tu_count_segment_maps() == maps);
}

/* A multi-frame message and a chunked frame between single frames: the batch path takes the
 * single frames and leaves the rest, untouched, to the ordinary recv, in order. */
static void test_leave_alone(void)
{
    static uint8_t big[40000]; /* above one record (half the ring): chunked */
    int sig[2];
    CHECK(pipe(sig) == 0);
    pid_t child;
    fy_pipe *p = link_pipes(&child, sizeof big);
    if (child == 0) {
        close(sig[0]);
        /* a, [b MORE, c], big (chunked: above half the ring), d */
        static const char *const fr[] = {"a", "bb", "ccc"};
        static const uint32_t fl[] = {0, FY_MSG_MORE, 0};
        for (int i = 0; i < 3; i++) {
            fy_msg m;
            CHECK_OK(fy_msg_init_copy(&m, fr[i], strlen(fr[i])));
            m.flags = fl[i];
            CHECK_OK(fy_pipe_send(p, &m));
        }
        ferry_iov one = {.buf = big, .len = sizeof big};
        uint64_t bytes;
        bool full;
        CHECK(fy_shm_batch_send(p, &one, 1, true, &bytes, &full) ==
              0); /* too big for the fast path */
        fy_msg m;
        memset(big, 0x5a, sizeof big);
        CHECK_OK(fy_msg_init_copy(&m, big, sizeof big));
        CHECK_OK(fy_pipe_send(p, &m));
        ferry_iov d = {.buf = "dddd", .len = 4};
        CHECK(fy_shm_batch_send(p, &d, 1, true, &bytes, &full) == 1 && bytes == 4);
        CHECK(p->ops->flush(p) == 0); /* everything fits the ring: all published */
        CHECK(write(sig[1], "s", 1) == 1);
        peer_linger(p);
    }
    /* Everything is published before the first look, so the split is deterministic. */
    char c;
    close(sig[1]);
    CHECK(read(sig[0], &c, 1) == 1);
    close(sig[0]);
    static const size_t want[] = {1, 2, 3, sizeof big, 4};
    static const bool want_more[] = {false, true, false, false, false};
    static uint8_t bufs[4][sizeof big];
    size_t got = 0, via_batch = 0;
    uint64_t end = tu_now_ns() + 10000000000ull;
    while (got < 5) {
        CHECK(tu_now_ns() < end);
        ferry_iov v[4];
        for (int e = 0; e < 4; e++)
            v[e] = (ferry_iov){.buf = bufs[e], .len = sizeof bufs[e]};
        uint64_t bytes;
        bool empty;
        size_t k = fy_shm_batch_recv(p, v, 4, &bytes, &empty);
        for (size_t e = 0; e < k; e++, got++) {
            CHECK(v[e].size == want[got] && !want_more[got] && v[e].flags == 0);
            via_batch++;
        }
        if (k)
            continue;
        fy_msg m;
        fy_msg_init(&m);
        int rc = fy_pipe_recv(p, &m);
        if (rc == FERRY_EAGAIN) {
            tu_shm_pipe_wait(p, true, false);
            continue;
        }
        CHECK_OK(rc);
        CHECK(fy_msg_size(&m) == want[got] && fy_msg_more(&m) == want_more[got]);
        if (want[got] == sizeof big)
            CHECK(fy_msg_data(&m)[0] == 0x5a && fy_msg_data(&m)[sizeof big - 1] == 0x5a);
        fy_msg_fini(&m);
        got++;
    }
    CHECK(via_batch == 3); /* "a", "ccc" (ends the message "bb" began) and "dddd" */
    fy_shm_pipe_free(p);
    int st;
    CHECK(waitpid(child, &st, 0) == child && WIFEXITED(st) && WEXITSTATUS(st) == 0);
}

/*
 * Entries the caller did not check (fy_shm_batch_send with checked false): a bad one anywhere in
 * the batch fails the call with nothing written, also when the first span ends before the batch
 * does (the rest is checked before the first commit). The ring is filled while the consumer
 * waits, the consumer then frees eight 8-byte frames' room only, so the first span holds a few
 * records. Only the good frames arrive, in order; a NULL buffer with length 0 is an empty frame.
 */
static uint32_t uc_fill; /* frames of the fill (the parent learns it from the child) */

static size_t uc_size(uint32_t i)
{
    if (i < uc_fill)
        return 8;
    if (i == uc_fill + 64 + 5)
        return 0; /* the NULL buffer of length 0 */
    return 8 + i % 57;
}

static void test_unchecked(void)
{
    int down[2], up[2]; /* parent -> child, child -> parent */
    CHECK(pipe(down) == 0 && pipe(up) == 0);
    pid_t child;
    fy_pipe *p = link_pipes(&child, MAX_MSG);
    /* Each side keeps only its ends: a side that fails ends the other's reads (EOF). */
    close(child == 0 ? down[1] : down[0]);
    close(child == 0 ? up[0] : up[1]);
    static uint8_t sbuf[64][64];
    if (child == 0) {
        uint32_t next = 0;
        uint64_t bytes;
        bool full = false;
        ferry_iov v[64];
        /* The fill: 8-byte frames until the ring takes no more. */
        uc_fill = UINT32_MAX;
        while (!full) {
            for (size_t e = 0; e < 64; e++) {
                tu_fill_seeded(sbuf[e], 8, next + (uint32_t)e);
                v[e] = (ferry_iov){.buf = sbuf[e], .len = 8};
            }
            ssize_t k = fy_shm_batch_send(p, v, 64, true, &bytes, &full);
            CHECK(k >= 0 && (k == 64 || full));
            next += (uint32_t)k;
        }
        uc_fill = next;
        CHECK(write(up[1], &uc_fill, sizeof uc_fill) == sizeof uc_fill);
        char c;
        CHECK(read(down[0], &c, 1) == 1); /* the consumer took eight records */
        /* Bad batches: the bad entry after the first span's end, inside it, first, or after a
         * frame with FERRY_MORE. Nothing may be written. */
        static const struct {
            int at, flags, null, more_at;
            ssize_t rc;
        } bad[] = {
            {63, 0x40, 0, -1, FERRY_EINVAL}, {63, 0, 1, -1, FERRY_EFAULT},
            {1, 0x40, 0, -1, FERRY_EINVAL},  {1, 0, 1, -1, FERRY_EFAULT},
            {30, 0x40, 0, 1, FERRY_EINVAL},  {0, 0x40, 0, -1, 0}, /* declined before any span */
        };
        for (size_t k = 0; k < sizeof bad / sizeof bad[0]; k++) {
            for (size_t e = 0; e < 64; e++)
                v[e] = (ferry_iov){.buf = sbuf[e], .len = 8};
            v[bad[k].at].flags = bad[k].flags;
            if (bad[k].null)
                v[bad[k].at].buf = NULL;
            if (bad[k].more_at >= 0)
                v[bad[k].more_at].flags = FERRY_MORE;
            CHECK(fy_shm_batch_send(p, v, 64, false, &bytes, &full) == bad[k].rc);
        }
        /* Two good unchecked batches. The first call's only span ends at the consumer's
         * position, after a few records; the rest goes once the consumer reads on. */
        for (int b = 0; b < 2; b++) {
            uint32_t first = next;
            while (next < first + 64) {
                size_t n = first + 64 - next;
                for (size_t e = 0; e < n; e++) {
                    uint32_t i = next + (uint32_t)e;
                    tu_fill_seeded(sbuf[e], uc_size(i), i);
                    v[e] = (ferry_iov){.buf = uc_size(i) ? sbuf[e] : NULL, .len = uc_size(i)};
                }
                ssize_t k = fy_shm_batch_send(p, v, n, false, &bytes, &full);
                CHECK(k >= 0);
                if (b == 0 && next == first) {
                    if (!(k >= 1 && k < 64 && full))
                        fprintf(stderr, "first call: %zd of 64, full %d\n", k, full);
                    CHECK(k >= 1 && k < 64 && full);  /* the geometry this test relies on */
                    CHECK(write(up[1], "g", 1) == 1); /* the consumer may go on */
                }
                next += (uint32_t)k;
                if (k == 0)
                    tu_shm_pipe_wait(p, false, true);
            }
        }
        while (p->ops->flush(p) == 1)
            tu_shm_pipe_wait(p, false, true);
        CHECK(write(up[1], "d", 1) == 1);
        peer_linger(p);
    }
    CHECK(read(up[0], &uc_fill, sizeof uc_fill) == sizeof uc_fill);
    CHECK(uc_fill > 1000); /* about a ring of 24-byte records */
    static uint8_t rbuf[64][64];
    ferry_iov v[64];
    for (size_t e = 0; e < 64; e++)
        v[e] = (ferry_iov){.buf = rbuf[e], .len = sizeof rbuf[e]};
    uint64_t bytes;
    bool empty;
    CHECK(fy_shm_batch_recv(p, v, 8, &bytes, &empty) == 8); /* released and published */
    for (uint32_t e = 0; e < 8; e++)
        CHECK(v[e].size == 8 && tu_check_seeded(rbuf[e], 8, e));
    CHECK(write(down[1], "r", 1) == 1);
    char c;
    CHECK(read(up[0], &c, 1) == 1 && c == 'g');
    uint32_t got = 8, total = uc_fill + 128;
    uint64_t end = tu_now_ns() + 20000000000ull;
    while (got < total) {
        CHECK(tu_now_ns() < end);
        size_t k = fy_shm_batch_recv(p, v, 64, &bytes, &empty);
        for (size_t e = 0; e < k; e++, got++) {
            CHECK(got < total && v[e].size == uc_size(got) && v[e].flags == 0);
            CHECK(tu_check_seeded(rbuf[e], v[e].size, got));
        }
        if (k == 0)
            tu_shm_pipe_wait(p, true, false);
    }
    CHECK(read(up[0], &c, 1) == 1 && c == 'd');
    CHECK(fy_shm_batch_recv(p, v, 1, &bytes, &empty) == 0 && empty); /* nothing else */
    fy_shm_pipe_free(p);
    int st;
    CHECK(waitpid(child, &st, 0) == child && WIFEXITED(st) && WEXITSTATUS(st) == 0);
    close(down[1]);
    close(up[0]);
}

/* Frame i of test_laps: sizes cycle through every small-copy branch (0..100 B) with a larger one
 * now and then, so batches end spans at the lap's end and at the consumer's position. */
static size_t lap_size(uint32_t i)
{
    return i % 97 == 0 ? 1000 + i % 2000 : i % 101;
}

/* Many laps of the ring through both batch calls, in batches of 1..64, with the ordinary calls
 * where the batch path declines (as the socket core does), every frame checked in order; some
 * receive buffers are shorter than the frame: the size is reported whole, only the buffer's
 * length is written. */
static void test_laps(void)
{
    enum { FRAMES = 10000 }; /* about 11 laps of the 64 KiB ring */
    pid_t child;
    fy_pipe *p = link_pipes(&child, MAX_MSG);
    static uint8_t sbuf[64][MAX_MSG], rbuf[64][MAX_MSG + 16];
    if (child == 0) {
        uint32_t next = 0;
        uint64_t end = tu_now_ns() + 20000000000ull;
        while (next < FRAMES) {
            CHECK(tu_now_ns() < end);
            size_t n = 1 + next % 64;
            if (n > FRAMES - next)
                n = FRAMES - next;
            ferry_iov v[64];
            for (size_t e = 0; e < n; e++) {
                size_t len = lap_size(next + (uint32_t)e);
                tu_fill_seeded(sbuf[e], len, next + (uint32_t)e);
                v[e] = (ferry_iov){.buf = sbuf[e], .len = len};
            }
            uint64_t bytes;
            bool full;
            /* Every other batch unchecked: the send path checks it, also when its first span
             * ends at the lap's end or the consumer's position before the batch does. */
            ssize_t r = fy_shm_batch_send(p, v, n, (next / 64) % 2 == 0, &bytes, &full);
            CHECK(r >= 0);
            size_t k = (size_t)r;
            uint64_t want = 0;
            for (size_t e = 0; e < k; e++)
                want += v[e].len;
            CHECK(bytes == want);
            next += (uint32_t)k;
            if (k)
                continue;
            /* Declined: one message the ordinary way (it may queue it), or wait for room. */
            fy_msg m;
            CHECK_OK(fy_msg_init_copy(&m, v[0].buf, v[0].len));
            int rc = fy_pipe_send(p, &m);
            if (rc == FERRY_EAGAIN) {
                fy_msg_fini(&m);
                tu_shm_pipe_wait(p, false, true);
                continue;
            }
            CHECK_OK(rc);
            next++;
        }
        int rc;
        while ((rc = p->ops->flush(p)) == 1) {
            CHECK(tu_now_ns() < end); /* (a fork inherits no alarm: this child needs its own) */
            tu_shm_pipe_wait(p, false, true);
        }
        CHECK_OK(rc);
        peer_linger(p);
    }
    uint32_t got = 0, via_batch = 0;
    uint64_t end = tu_now_ns() + 20000000000ull;
    while (got < FRAMES) {
        CHECK(tu_now_ns() < end);
        size_t n = 1 + (got * 7) % 64;
        ferry_iov v[64];
        for (size_t e = 0; e < n; e++) {
            /* every fifth buffer is short (0..40 bytes); a canary follows its end */
            size_t cap = (got + e) % 5 == 0 ? (got + e) % 41 : MAX_MSG;
            memset(rbuf[e], 0xee, cap + 16);
            v[e] = (ferry_iov){.buf = rbuf[e], .len = cap};
        }
        uint64_t bytes;
        bool empty;
        size_t k = fy_shm_batch_recv(p, v, n, &bytes, &empty);
        uint64_t sum = 0;
        for (size_t e = 0; e < k; e++, got++) {
            size_t len = lap_size(got), cap = v[e].len, copied = len < cap ? len : cap;
            CHECK(v[e].size == len && v[e].flags == 0);
            uint8_t whole[MAX_MSG];
            tu_fill_seeded(whole, len, got);
            CHECK(memcmp(rbuf[e], whole, copied) == 0);
            for (size_t b = copied; b < cap + 16; b++)
                CHECK(rbuf[e][b] == 0xee); /* nothing written past the frame or the buffer */
            sum += len;
        }
        CHECK(bytes == sum);
        via_batch += (uint32_t)k;
        if (k)
            continue;
        fy_msg m;
        fy_msg_init(&m);
        int rc = fy_pipe_recv(p, &m);
        if (rc == FERRY_EAGAIN) {
            tu_shm_pipe_wait(p, true, false);
            continue;
        }
        CHECK_OK(rc);
        CHECK(fy_msg_size(&m) == lap_size(got) && !fy_msg_more(&m));
        CHECK(tu_check_seeded(fy_msg_data(&m), fy_msg_size(&m), got));
        fy_msg_fini(&m);
        got++;
    }
    CHECK(via_batch > FRAMES / 2); /* the fast path, not the fallback, carried the stream */
    fy_shm_pipe_free(p);
    int st;
    CHECK(waitpid(child, &st, 0) == child && WIFEXITED(st) && WEXITSTATUS(st) == 0);
}

int main(void)
{
    tu_deadline(120);
    signal(SIGPIPE, SIG_IGN);
    test_leave_alone();
    test_unchecked();
    test_laps();
    for (int i = 0; i < BAD_COUNT; i++)
        test_hostile_recv(i);
    test_hostile_send();
    printf("test_shm_batch: ok\n");
    return 0;
}
