/*
 * test_shm_pipe.c - the shm pipe between two real processes over a socketpair, before any socket
 * is involved: multi-frame messages with every flag and size class, frames far larger than the
 * ring streamed in chunks, SNDHWM (a started message is never split), the overflow queue drained
 * as room appears, the size limit, peer death (input sent before it is still delivered, then
 * FERRY_EPIPE), a hostile peer scribbling records and indices (FERRY_EPROTO, never a crash:
 * run it under ASan), and no descriptor or mapping left behind.
 */
#include "core/msg.h"
#include "ferry/ring.h"
#include "ring/spsc_layout.h"
#include "testutil.h"
#include "transport/shm.h"

#include <dirent.h>
#include <errno.h>
#include <poll.h>
#include <signal.h>
#include <string.h>
#include <sys/socket.h>
#include <sys/wait.h>
#include <unistd.h>

typedef struct side {
    fy_pipe *p;
    pid_t child; /* in the parent: the peer's pid */
} side;

/* Forks; both processes return with a live pipe (child: side 1). */
static side make_link(size_t ring, int sndhwm, uint64_t max_msg)
{
    side s = {0};
    s.p = tu_shm_pipe_fork(ring, sndhwm, max_msg, &s.child);
    CHECK(fy_pipe_is_shm(s.p));
    return s;
}

static int recv_wait(fy_pipe *p, fy_msg *m)
{
    for (;;) {
        int rc = fy_pipe_recv(p, m);
        if (rc != FERRY_EAGAIN)
            return rc;
        tu_shm_pipe_wait(p, true, false);
    }
}

static int send_wait(fy_pipe *p, fy_msg *m)
{
    for (;;) {
        int rc = fy_pipe_send(p, m);
        if (rc != FERRY_EAGAIN)
            return rc;
        tu_shm_pipe_wait(p, false, true);
    }
}

/* Output still queued in the pipe goes out while the peer reads. */
static void flush_wait(fy_pipe *p)
{
    while (p->ops->flush(p) == 1)
        tu_shm_pipe_wait(p, false, true);
}

static void send_frame(fy_pipe *p, size_t size, uint32_t seed, uint32_t flags)
{
    fy_msg m;
    CHECK_OK(fy_msg_init_size(&m, size));
    tu_fill_seeded(fy_msg_data(&m), size, seed);
    m.flags = flags;
    CHECK_OK(send_wait(p, &m));
    CHECK(fy_msg_size(&m) == 0);
}

static void expect_frame(fy_pipe *p, size_t size, uint32_t seed, uint32_t flags)
{
    fy_msg m;
    fy_msg_init(&m);
    CHECK_OK(recv_wait(p, &m));
    if (fy_msg_size(&m) != size || m.flags != flags)
        fprintf(stderr, "got size %zu flags %u, want %zu %u\n", fy_msg_size(&m), m.flags, size,
                flags);
    CHECK(fy_msg_size(&m) == size && m.flags == flags);
    CHECK(tu_check_seeded(fy_msg_data(&m), size, seed));
    fy_msg_fini(&m);
}

static int reap(pid_t pid)
{
    int st;
    CHECK(waitpid(pid, &st, 0) == pid);
    return WIFEXITED(st) ? WEXITSTATUS(st) : 1000 + WTERMSIG(st);
}

static const size_t sizes[] = {0, 1, 7, 8, 39, 40, 41, 63, 64, 100, 1000, 4096, 20000, 65000};
#define NSIZES (sizeof sizes / sizeof sizes[0])

/* Messages of 1..3 frames in every size class, both directions at once (echo). */
static void test_echo(void)
{
    side s = make_link(65536, 0, 0);
    if (s.child == 0) {
        for (;;) {
            fy_msg m;
            fy_msg_init(&m);
            int rc = recv_wait(s.p, &m);
            if (rc == FERRY_EPIPE)
                break;
            CHECK_OK(rc);
            CHECK_OK(send_wait(s.p, &m));
        }
        fy_shm_pipe_free(s.p);
        _exit(0);
    }
    uint32_t seed = 1;
    for (int round = 0; round < 3; round++) {
        for (size_t i = 0; i < NSIZES; i++) {
            int frames = 1 + (int)((i + (size_t)round) % 3);
            for (int f = 0; f < frames; f++) {
                uint32_t fl = (f + 1 < frames ? FY_MSG_MORE : 0) | (i == 3 ? FY_MSG_SUB : 0);
                send_frame(s.p, sizes[(i + (size_t)f) % NSIZES], seed + (uint32_t)f, fl);
            }
            for (int f = 0; f < frames; f++) {
                uint32_t fl = (f + 1 < frames ? FY_MSG_MORE : 0) | (i == 3 ? FY_MSG_SUB : 0);
                expect_frame(s.p, sizes[(i + (size_t)f) % NSIZES], seed + (uint32_t)f, fl);
            }
            seed += 10;
        }
    }
    fy_shm_pipe_free(s.p);
    CHECK(reap(s.child) == 0);
}

/* Frames 16x the ring stream through in chunks, interleaved with small ones. */
static void test_large(void)
{
    side s = make_link(65536, 0, 0);
    const size_t big = (size_t)1 << 20;
    if (s.child == 0) {
        for (uint32_t i = 0; i < 6; i++) {
            send_frame(s.p, i % 2 ? 10 : big + i, i, i == 4 ? FY_MSG_MORE : 0);
        }
        flush_wait(s.p);
        /* Wait for the parent's go-ahead so nothing is torn down early. */
        fy_msg m;
        fy_msg_init(&m);
        CHECK_OK(recv_wait(s.p, &m));
        fy_msg_fini(&m);
        fy_shm_pipe_free(s.p);
        _exit(0);
    }
    for (uint32_t i = 0; i < 6; i++)
        expect_frame(s.p, i % 2 ? 10 : big + i, i, i == 4 ? FY_MSG_MORE : 0);
    send_frame(s.p, 1, 0, 0);
    flush_wait(s.p);
    CHECK(reap(s.child) == 0);
    fy_shm_pipe_free(s.p);
}

/* SNDHWM counts messages waiting in the pipe's own queue (the ring is the "socket buffer"):
 * frames larger than the ring never complete while the peer does not read, so each one stays
 * queued. The first frame of a message beyond the HWM is refused, a started message completes,
 * subscriptions pass, and room reappears when the peer reads. Also the size limit. */
static void test_hwm(void)
{
    int go[2];
    CHECK(pipe(go) == 0);
    const size_t big = 100000; /* > the 64 KiB ring */
    side s = make_link(65536, 4, 1000000);
    if (s.child == 0) {
        char b;
        CHECK(read(go[0], &b, 1) == 1);
        for (uint32_t i = 0; i < 3; i++)
            expect_frame(s.p, big, i, 0);
        expect_frame(s.p, big, 10, FY_MSG_MORE);
        expect_frame(s.p, big, 11, 0);
        expect_frame(s.p, 5, 12, FY_MSG_SUB);
        expect_frame(s.p, big, 13, 0);
        send_frame(s.p, 3, 3, 0);
        fy_msg m;
        fy_msg_init(&m);
        CHECK_RC(recv_wait(s.p, &m), FERRY_EPIPE);
        fy_shm_pipe_free(s.p);
        _exit(0);
    }
    for (uint32_t i = 0; i < 3; i++) {
        CHECK(s.p->ops->can_send(s.p));
        send_frame(s.p, big, i, 0);
    }
    /* A two-frame message starts below the HWM and completes at it. */
    CHECK(s.p->ops->can_send(s.p));
    send_frame(s.p, big, 10, FY_MSG_MORE);
    send_frame(s.p, big, 11, 0);
    CHECK(!s.p->ops->can_send(s.p));
    fy_msg m;
    CHECK_OK(fy_msg_init_size(&m, big));
    tu_fill_seeded(fy_msg_data(&m), big, 13);
    CHECK_RC(fy_pipe_send(s.p, &m), FERRY_EAGAIN);
    CHECK(fy_msg_size(&m) == big); /* untouched on EAGAIN */
    fy_msg sub;
    CHECK_OK(fy_msg_init_size(&sub, 5));
    tu_fill_seeded(fy_msg_data(&sub), 5, 12);
    sub.flags = FY_MSG_SUB; /* subscriptions bypass the HWM */
    CHECK_OK(fy_pipe_send(s.p, &sub));
    fy_msg huge;
    CHECK_OK(fy_msg_init_size(&huge, 1000001));
    CHECK_RC(fy_pipe_send(s.p, &huge), FERRY_EMSGSIZE);
    fy_msg_fini(&huge);
    /* The peer starts reading: the refused message goes through. */
    CHECK(write(go[1], "g", 1) == 1);
    close(go[0]);
    close(go[1]);
    CHECK_OK(send_wait(s.p, &m));
    flush_wait(s.p);
    expect_frame(s.p, 3, 3, 0);
    CHECK(s.p->ops->can_send(s.p));
    fy_shm_pipe_free(s.p);
    CHECK(reap(s.child) == 0);
}

/*
 * Known bug 3: a send refused at SNDHWM, then the control thread's tail flush empties the queue
 * before the owner's pre-sleep flush. That flush must report "ready" (write our wake eventfd) even
 * though nothing is queued any more, or the owner sleeps while it could send (it used to sleep
 * until SNDTIMEO: nothing was left for the peer's releases to wake it about).
 */
static void test_ctl_drain(void)
{
    int go[2], back[2];
    CHECK(pipe(go) == 0 && pipe(back) == 0);
    const size_t sz = 10000; /* 6 fit the 64 KiB ring; SNDHWM 4 queues 4 more */
    side s = make_link(65536, 4, 1000000);
    if (s.child == 0) {
        close(go[1]); /* a failing parent must not leave us blocked */
        close(back[0]);
        char b;
        CHECK(read(go[0], &b, 1) == 1);
        for (uint32_t i = 0; i < 6; i++)
            expect_frame(s.p, sz, i, 0); /* releases of >= 4 KiB are published at once */
        CHECK(write(back[1], "r", 1) == 1);
        CHECK(read(go[0], &b, 1) == 1);
        for (uint32_t i = 6; i < 11; i++)
            expect_frame(s.p, sz, i, 0);
        send_frame(s.p, 3, 3, 0);
        fy_msg m;
        fy_msg_init(&m);
        CHECK_RC(recv_wait(s.p, &m), FERRY_EPIPE);
        fy_shm_pipe_free(s.p);
        _exit(0);
    }
    close(go[0]);
    close(back[1]);
    for (uint32_t i = 0; i < 10; i++)
        send_frame(s.p, sz, i, 0);
    fy_msg m;
    CHECK_OK(fy_msg_init_size(&m, sz));
    tu_fill_seeded(fy_msg_data(&m), sz, 10);
    CHECK_RC(fy_pipe_send(s.p, &m), FERRY_EAGAIN); /* at SNDHWM */
    CHECK(write(go[1], "g", 1) == 1);
    char b;
    CHECK(read(back[0], &b, 1) == 1);     /* the peer emptied the ring */
    CHECK_OK(fy_shm_pipe_ctl_flush(s.p)); /* 0: the whole queue moved into the ring */
    CHECK(s.p->ops->flush(s.p) == 0);
    struct pollfd f = {.fd = s.p->rfd, .events = POLLIN};
    CHECK(poll(&f, 1, 0) == 1); /* told not to sleep */
    CHECK(write(go[1], "g", 1) == 1);
    CHECK_OK(send_wait(s.p, &m));
    flush_wait(s.p);
    expect_frame(s.p, 3, 3, 0);
    fy_shm_pipe_free(s.p);
    close(go[1]);
    close(back[0]);
    CHECK(reap(s.child) == 0);
}

/* With no HWM and a small ring, a burst far larger than the ring is queued and delivered in
 * order while the peer reads. */
static void test_overflow(void)
{
    side s = make_link(65536, 0, 0);
    if (s.child == 0) {
        for (uint32_t i = 0; i < 100; i++)
            expect_frame(s.p, 20000 + i, i, 0);
        send_frame(s.p, 1, 1, 0);
        fy_msg m;
        fy_msg_init(&m);
        CHECK_RC(recv_wait(s.p, &m), FERRY_EPIPE);
        fy_shm_pipe_free(s.p);
        _exit(0);
    }
    for (uint32_t i = 0; i < 100; i++) {
        fy_msg m;
        CHECK_OK(fy_msg_init_size(&m, 20000 + i));
        tu_fill_seeded(fy_msg_data(&m), 20000 + i, i);
        CHECK_OK(fy_pipe_send(s.p, &m)); /* never EAGAIN without a HWM */
    }
    flush_wait(s.p);
    expect_frame(s.p, 1, 1, 0);
    fy_shm_pipe_free(s.p);
    CHECK(reap(s.child) == 0);
}

/* The peer exits after sending: everything it sent arrives, then FERRY_EPIPE; sends fail. */
static void test_peer_death(void)
{
    side s = make_link(65536, 0, 0);
    if (s.child == 0) {
        for (uint32_t i = 0; i < 5; i++)
            send_frame(s.p, 100 + i, i, 0);
        flush_wait(s.p);
        _exit(0); /* no cleanup at all: the kernel closes everything */
    }
    CHECK(reap(s.child) == 0);
    for (uint32_t i = 0; i < 5; i++)
        expect_frame(s.p, 100 + i, i, 0);
    fy_msg m;
    fy_msg_init(&m);
    CHECK_RC(recv_wait(s.p, &m), FERRY_EPIPE);
    CHECK(atomic_load(&s.p->dead));
    CHECK_OK(fy_msg_init_size(&m, 10));
    CHECK_RC(fy_pipe_send(s.p, &m), FERRY_EPIPE);
    fy_msg_fini(&m);
    CHECK(fy_shm_pipe_error(s.p) == FERRY_EPIPE);
    fy_shm_pipe_free(s.p);
}

/* ---- hostile peer ---- */

enum {
    BAD_SHORT,    /* record shorter than the meta word */
    BAD_FLAGS,    /* unknown flag bits */
    BAD_TOTAL,    /* whole frame whose total disagrees with its length */
    BAD_CONT,     /* a continuation without a start */
    BAD_HUGE,     /* a chunked frame claiming more than the limit */
    BAD_CHUNKSEQ, /* a chunk run whose total changes */
    BAD_OVERRUN,  /* chunks delivering more than announced */
    BAD_TAIL,     /* the tail index jumps past the capacity */
    BAD_RECHDR,   /* a record header claiming more bytes than published */
    BAD_COUNT,
};

static void raw_record(ferry_spsc_tx *tx, uint64_t meta, size_t payload, size_t reclen)
{
    void *d;
    CHECK_OK(ferry_spsc_reserve(tx, reclen, &d));
    memset(d, 0xab, reclen);
    if (reclen >= 8)
        memcpy(d, &meta, 8);
    (void)payload;
    CHECK_OK(ferry_spsc_commit(tx, reclen, 0));
}

static void test_hostile(int which)
{
    int fds = tu_count_fds(), maps = tu_count_segment_maps();
    side s = make_link(65536, 1, 4096);
    if (s.child == 0) {
        /* The child abuses its own side of the segment directly. */
        fy_shm_link_view v;
        fy_shm_link_view_get(fy_shm_pipe_link(s.p), &v);
        ferry_spsc_tx tx;
        CHECK_OK(ferry_spsc_tx_init(&tx, v.ring[1], v.ring_bytes));
        ferry_wait_policy pol;
        ferry_wait_policy_init(&pol);
        pol.eventfd = fy_shm_link_efd(fy_shm_pipe_link(s.p), 0);
        ferry_spsc_tx_set_wait(&tx, &pol);
        /* One good frame first: the victim must deliver it before failing. */
        raw_record(&tx, (uint64_t)0 | (3u << 8), 3, 11);
        fy_spsc_shared *sh = v.ring[1];
        switch (which) {
        case BAD_SHORT:
            raw_record(&tx, 0, 0, 4);
            break;
        case BAD_FLAGS:
            raw_record(&tx, 0x40 | (4u << 8), 4, 12);
            break;
        case BAD_TOTAL:
            raw_record(&tx, 0 | (9u << 8), 4, 12);
            break;
        case BAD_CONT:
            raw_record(&tx, 0x08 | (100u << 8), 4, 12);
            break;
        case BAD_HUGE:
            raw_record(&tx, 0x04 | ((uint64_t)1 << 40 << 8), 4, 12);
            break;
        case BAD_CHUNKSEQ:
            raw_record(&tx, 0x04 | (100u << 8), 4, 12);
            raw_record(&tx, 0x0c | (101u << 8), 4, 12);
            break;
        case BAD_OVERRUN:
            raw_record(&tx, 0x04 | (10u << 8), 4, 12);
            raw_record(&tx, 0x08 | (10u << 8), 8, 16);
            break;
        case BAD_TAIL:
            atomic_store(&sh->tail, atomic_load(&sh->tail) + (1u << 20));
            break;
        case BAD_RECHDR: {
            /* Publish 16 bytes whose record header claims 1000. */
            uint64_t t = atomic_load(&sh->tail);
            uint8_t *data = (uint8_t *)sh + FY_SPSC_HDR_SIZE;
            uint64_t hdr = 1000 | ((uint64_t)FERRY_SPSC_REC_DATA_ << 32);
            memcpy(data + (t & 65535), &hdr, 8);
            atomic_store(&sh->tail, t + 16);
            break;
        }
        }
        /* Wake the victim in case it sleeps (raw scribbles do not). */
        uint64_t one = 1;
        CHECK(write(pol.eventfd, &one, 8) == 8);
        /* Stay alive until the victim has judged (it closes the link). */
        char b;
        struct pollfd pf = {.fd = fy_shm_pipe_usock(s.p), .events = POLLIN};
        poll(&pf, 1, 10000);
        ssize_t r = read(fy_shm_pipe_usock(s.p), &b, 1);
        (void)r;
        _exit(0);
    }
    fy_msg m;
    {
        fy_msg_init(&m);
        int rc = recv_wait(s.p, &m);
        /* A broken index may be seen before the good record; a broken record never is. */
        if (which != BAD_TAIL || rc == 0) {
            CHECK_OK(rc);
            CHECK(fy_msg_size(&m) == 3);
            rc = recv_wait(s.p, &m);
        }
        if (rc != FERRY_EPROTO)
            fprintf(stderr, "hostile case %d: %d %s\n", which, rc, tu_errname(rc));
        CHECK_RC(rc, FERRY_EPROTO);
        fy_msg_fini(&m);
    }
    CHECK(atomic_load(&s.p->dead));
    CHECK(fy_shm_pipe_error(s.p) == FERRY_EPROTO);
    CHECK_RC(fy_pipe_recv(s.p, &m), FERRY_EPROTO);
    fy_shm_pipe_free(s.p);
    CHECK(reap(s.child) == 0);
    CHECK(tu_count_fds() == fds);
    CHECK(tu_count_segment_maps() == maps);
}

int main(void)
{
    tu_deadline(100);
    setvbuf(stderr, NULL, _IONBF, 0);
    signal(SIGPIPE, SIG_IGN);
    int fds = tu_count_fds(), maps = tu_count_segment_maps();
    fprintf(stderr, "echo\n");
    test_echo();
    fprintf(stderr, "large\n");
    test_large();
    fprintf(stderr, "hwm\n");
    test_hwm();
    fprintf(stderr, "ctl drain\n");
    test_ctl_drain();
    fprintf(stderr, "overflow\n");
    test_overflow();
    fprintf(stderr, "peer death\n");
    test_peer_death();
    CHECK(tu_count_fds() == fds);
    CHECK(tu_count_segment_maps() == maps);
    for (int i = 0; i < BAD_COUNT; i++) {
        fprintf(stderr, "hostile %d\n", i);
        test_hostile(i);
    }
    printf("test_shm_pipe: ok\n");
    return 0;
}
