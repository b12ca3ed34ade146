/*
 * test_shm_direct.c - the shm pipe's owner fast paths between two real processes: the direct
 * single-frame send/recv (fy_shm_pipe_send_buf/recv_buf, what ferry_socket_send/recv use for a
 * pattern's direct pipe) mixed with the general pipe ops in one stream (order, content, flags,
 * truncation, what each path declines), records a hostile peer writes (declined untouched, then
 * FERRY_EPROTO from the general path, never a crash: run it under ASan), and the bounded wait of
 * ferry_socket_send's ring loan (fy_shm_pipe_send_loan): it waits for a consumer that reads, gives
 * up on one that does not and then does not wait again until that consumer moves, and never
 * waits with timeout 0; and the receive's spin window, which follows the last frame's size.
 */
#include "core/msg.h"
#include "ferry/ring.h"
#include "ring/spsc_layout.h"
#include "testutil.h"
#include "transport/shm.h"
#include "transport/shm_pipe_impl.h"

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
    int gate[2]; /* parent -> child: one byte = "go on" */
} side;

/* Forks; both processes return with a live pipe (child: side 1). */
static side make_link(size_t ring, int sndhwm)
{
    side s = {0};
    CHECK(pipe(s.gate) == 0);
    s.p = tu_shm_pipe_fork(ring, sndhwm, 0, &s.child);
    return s;
}

static void gate_open(side *s)
{
    char c = 1;
    CHECK(write(s->gate[1], &c, 1) == 1);
}

static void gate_wait(side *s)
{
    char c;
    CHECK(read(s->gate[0], &c, 1) == 1);
}

static int reap(pid_t pid)
{
    int st;
    CHECK(waitpid(pid, &st, 0) == pid);
    return WIFEXITED(st) ? WEXITSTATUS(st) : 1000 + WTERMSIG(st);
}

#define MIX_N 3000

/* Frame i of the mixed stream: its size and whether it is the first of a two-frame message
 * (sent and received by the general ops). */
static size_t mix_size(uint32_t i)
{
    static const size_t sz[] = {0, 1, 8, 40, 41, 64, 200, 1000, 4096, 9000, 30000};
    return sz[(i * 7u) % (sizeof sz / sizeof sz[0])];
}

static bool mix_multi(uint32_t i)
{
    return i % 9 == 4;
}

static void test_mixed(void)
{
    side s = make_link(65536, 0);
    static uint8_t buf[65536];
    if (s.child == 0) {
        /* Receiver: every single-frame message (whichever way it was sent) is taken by the
         * direct path; the two-frame ones are declined (MORE) and taken by the general ops. */
        for (uint32_t i = 0; i < MIX_N; i++) {
            size_t want = mix_size(i);
            size_t cap = i % 13 == 5 ? want / 2 : sizeof buf; /* truncating receives */
            size_t got = 0;
            int rc;
            if (!mix_multi(i)) {
                while ((rc = fy_shm_pipe_recv_buf(s.p, buf, cap, &got)) == FY_SHM_EMPTY)
                    tu_shm_pipe_wait(s.p, true, false); /* nothing there yet */
                CHECK_OK(rc);
                CHECK(got == want);
                CHECK(tu_check_seeded(buf, want < cap ? want : cap, i));
                continue;
            }
            /* A first frame with MORE is not a whole single-frame message: declined. */
            while ((rc = fy_shm_pipe_recv_buf(s.p, buf, cap, &got)) == FY_SHM_EMPTY)
                tu_shm_pipe_wait(s.p, true, false);
            CHECK_RC(rc, FY_SHM_DECLINE);
            for (int f = 0; f < 2; f++) {
                fy_msg m;
                fy_msg_init(&m);
                while ((rc = fy_pipe_recv(s.p, &m)) == FERRY_EAGAIN)
                    tu_shm_pipe_wait(s.p, true, false);
                CHECK_OK(rc);
                CHECK(m.flags == (f == 0 ? FY_MSG_MORE : 0u));
                CHECK(fy_msg_size(&m) == (f ? 3 : want));
                CHECK(tu_check_seeded(fy_msg_data(&m), fy_msg_size(&m), f ? i + 1000000 : i));
                fy_msg_fini(&m);
            }
        }
        fy_shm_pipe_free(s.p);
        _exit(0);
    }
    uint32_t direct = 0;
    for (uint32_t i = 0; i < MIX_N; i++) {
        size_t n = mix_size(i);
        tu_fill_seeded(buf, n, i);
        if (!mix_multi(i) && i % 5 != 2) {
            int rc;
            while ((rc = fy_shm_pipe_send_buf(s.p, buf, n)) == FY_SHM_DECLINE)
                tu_shm_pipe_wait(s.p, false, true); /* full: the general path would wait too */
            CHECK_OK(rc);
            direct++;
            continue;
        }
        for (int f = 0; f < (mix_multi(i) ? 2 : 1); f++) {
            fy_msg m;
            size_t fn = f ? 3 : n;
            CHECK_OK(fy_msg_init_size(&m, fn));
            tu_fill_seeded(fy_msg_data(&m), fn, f ? i + 1000000 : i);
            m.flags = mix_multi(i) && f == 0 ? FY_MSG_MORE : 0;
            int rc = fy_pipe_send(s.p, &m);
            CHECK_OK(rc); /* no SNDHWM: a full ring queues */
            if (mix_multi(i) && f == 0) {
                /* Half a message sent: the direct path must decline until it is complete. */
                CHECK_RC(fy_shm_pipe_send_buf(s.p, buf, 1), FY_SHM_DECLINE);
            }
        }
    }
    while (s.p->ops->flush(s.p) == 1)
        tu_shm_pipe_wait(s.p, false, true);
    CHECK(direct > MIX_N / 2);
    CHECK_RC(reap(s.child), 0);
    fy_shm_pipe_free(s.p);
    close(s.gate[0]);
    close(s.gate[1]);
}

/* The peer writes record r (a meta word and len bytes in all) straight into its ring. */
static void hostile_write(fy_pipe *p, uint64_t meta, size_t len)
{
    fy_shm_pipe *sp = (fy_shm_pipe *)p;
    void *dst;
    CHECK_OK(ferry_spsc_reserve(&sp->tx, len, &dst));
    memset(dst, 0x5a, len);
    if (len >= 8)
        memcpy(dst, &meta, 8);
    CHECK_OK(ferry_spsc_commit(&sp->tx, len, 0));
}

static void test_hostile(int which)
{
    side s = make_link(65536, 0);
    if (s.child == 0) {
        switch (which) {
        case 0: /* unknown flag bit */
            hostile_write(s.p, 0x80u | ((uint64_t)16 << 8), 8 + 16);
            break;
        case 1: /* announces more bytes than the record holds */
            hostile_write(s.p, (uint64_t)1000 << 8, 8 + 16);
            break;
        case 2: /* shorter than a meta word */
            hostile_write(s.p, 0, 4);
            break;
        default: /* a continuation without a start */
            hostile_write(s.p, REC_CONT | ((uint64_t)16 << 8), 8 + 16);
            break;
        }
        gate_wait(&s);
        fy_shm_pipe_free(s.p);
        _exit(0);
    }
    uint8_t buf[64];
    size_t got = 0;
    int rc;
    while ((rc = fy_shm_pipe_recv_buf(s.p, buf, sizeof buf, &got)) == FY_SHM_DECLINE ||
           rc == FY_SHM_EMPTY) {
        /* Declined untouched: the general path sees the same record and refuses it. */
        fy_msg m;
        fy_msg_init(&m);
        rc = fy_pipe_recv(s.p, &m);
        fy_msg_fini(&m);
        if (rc != FERRY_EAGAIN)
            break;
        tu_shm_pipe_wait(s.p, true, false);
    }
    CHECK_RC(rc, FERRY_EPROTO);
    CHECK(fy_shm_pipe_error(s.p) == FERRY_EPROTO);
    CHECK_RC(fy_shm_pipe_recv_buf(s.p, buf, sizeof buf, &got), FY_SHM_DECLINE);
    gate_open(&s);
    CHECK_RC(reap(s.child), 0);
    fy_shm_pipe_free(s.p);
    close(s.gate[0]);
    close(s.gate[1]);
}

#define LOAN_SIZE 12000u
#define LOAN_N    300u

/* One frame through ferry_socket_send's loan path: loan (with waiting), write, commit. */
static int loan_send(fy_pipe *p, uint32_t seed, int timeout_ms)
{
    fy_msg m;
    int rc = fy_shm_pipe_send_loan(p, &m, LOAN_SIZE, timeout_ms);
    if (rc != 0)
        return rc;
    tu_fill_seeded(fy_msg_data(&m), LOAN_SIZE, seed);
    CHECK_OK(fy_pipe_send(p, &m));
    fy_msg_fini(&m);
    return 0;
}

static void test_send_wait(void)
{
    side s = make_link(65536, 16); /* room for 5 frames of LOAN_SIZE; 16 queued at most */
    if (s.child == 0) {
        gate_wait(&s); /* not reading until the parent saw the stall */
        for (uint32_t i = 0;; i++) {
            fy_msg m;
            fy_msg_init(&m);
            int rc;
            while ((rc = fy_pipe_recv(s.p, &m)) == FERRY_EAGAIN)
                tu_shm_pipe_wait(s.p, true, false);
            CHECK_OK(rc);
            if (fy_msg_size(&m) == 0)
                break; /* the end */
            CHECK(fy_msg_size(&m) == LOAN_SIZE);
            /* The ends only: a consumer as fast as possible, so the producer's waits see it
             * read even under a sanitizer on a loaded machine. */
            const uint8_t *d = fy_msg_data(&m);
            uint8_t head[64];
            tu_fill_seeded(head, 64, i);
            CHECK(memcmp(d, head, 64) == 0);
            CHECK(d[LOAN_SIZE - 1] ==
                  (uint8_t)(i * 31u + (LOAN_SIZE - 1) * 7u + ((LOAN_SIZE - 1) >> 8)));
            fy_msg_fini(&m);
        }
        fy_shm_pipe_free(s.p);
        _exit(0);
    }
    fy_shm_pipe *sp = (fy_shm_pipe *)s.p;
    uint32_t seed = 0;
    /* Fill the ring while the consumer does not read. */
    while (loan_send(s.p, seed, 0) == 0)
        seed++;
    CHECK(seed >= 4 && !sp->stalled);
    /* Timeout 0 (DONTWAIT): no wait, no stall recorded. */
    CHECK_RC(loan_send(s.p, seed, 0), FERRY_EAGAIN);
    CHECK(!sp->stalled);
    /* A consumer that does not read: the bounded wait expires and is remembered... */
    CHECK_RC(loan_send(s.p, seed, -1), FERRY_EAGAIN);
    CHECK(sp->stalled);
    uint64_t head = atomic_load(&sp->tx_shared->head);
    CHECK(sp->stall_head == head);
    /* ...so the next sends give up at once (the caller queues) while the head stands still. A
     * SNDTIMEO shorter than the wait caps it. */
    for (int i = 0; i < 50; i++)
        CHECK_RC(loan_send(s.p, seed, -1), FERRY_EAGAIN);
    CHECK(sp->stalled && sp->ovf_n == 0);
    /* The consumer starts reading: sends wait for room again and go into the ring. */
    gate_open(&s);
    /* Until the consumer has published a release, the stall rule still applies (sends give up
     * at once): wait for its head to move, as the next send would see it. */
    uint64_t until = tu_now_ns() + 20000000000ull;
    while (atomic_load(&sp->tx_shared->head) == head) {
        CHECK(tu_now_ns() < until);
        poll(NULL, 0, 1);
    }
    uint32_t waited = 0, fell_back = 0;
    /* A consumer starved of CPU for longer than a wait (a loaded machine) looks stalled, and the
     * sends then queue until it moves again: go on until enough loans went in after waiting for
     * room (or a generous cap says the waits never work). */
    uint64_t stop = tu_now_ns() + 5000000000ull;
    while ((seed < LOAN_N || waited < 20) && (seed < LOAN_N || tu_now_ns() < stop)) {
        int rc = loan_send(s.p, seed, -1);
        if (rc == FERRY_EAGAIN) {
            /* The frame goes the general way (queued), as ferry_socket_send does. */
            fy_msg m;
            CHECK_OK(fy_msg_init_size(&m, LOAN_SIZE));
            tu_fill_seeded(fy_msg_data(&m), LOAN_SIZE, seed);
            while ((rc = fy_pipe_send(s.p, &m)) == FERRY_EAGAIN)
                tu_shm_pipe_wait(s.p, false, true); /* at SNDHWM: the socket would wait here */
            CHECK_OK(rc);
            fell_back++;
        } else {
            CHECK_OK(rc);
            waited++;
        }
        seed++;
    }
    fy_msg end;
    fy_msg_init(&end);
    CHECK_OK(fy_pipe_send(s.p, &end));
    CHECK(waited > 0);
    fprintf(stderr, "  %u loans after waiting for room, %u fallbacks\n", waited, fell_back);
    while (s.p->ops->flush(s.p) == 1)
        tu_shm_pipe_wait(s.p, false, true);
    CHECK_RC(reap(s.child), 0);
    fy_shm_pipe_free(s.p);
    close(s.gate[0]);
    close(s.gate[1]);
}

/*
 * The receive's spin window (fy_shm_pipe_spin_ns) follows the size of the last frame received,
 * whichever path took it: base only before anything arrived and for small frames' few
 * nanoseconds, base plus about two copies' time after a 1 MiB frame (direct path), the cap after
 * a chunked 8 MiB frame (general path), and 0 whenever the base is 0 (no spinning asked for).
 */
static void test_spin_window(void)
{
    static const size_t sizes[] = {64, 1u << 20, 8u << 20};
    side s = make_link(4u << 20, 0);
    if (s.child == 0) {
        for (int i = 0; i < 3; i++) {
            fy_msg m;
            CHECK_OK(fy_msg_init_size(&m, sizes[i]));
            tu_fill_seeded(fy_msg_data(&m), sizes[i], (uint32_t)i);
            CHECK_OK(fy_pipe_send(s.p, &m));
            fy_msg_fini(&m);
            while (s.p->ops->flush(s.p) == 1)
                tu_shm_pipe_wait(s.p, false, true);
        }
        close(s.gate[1]); /* a parent that fails ends the wait (EOF) instead of orphaning us */
        gate_wait(&s);    /* the parent has read everything */
        fy_shm_pipe_free(s.p);
        _exit(0);
    }
    const uint64_t base = 30000;
    CHECK(fy_shm_pipe_spin_ns(s.p, base) == base);
    static uint8_t buf[1u << 20];
    for (int i = 0; i < 2; i++) {
        size_t got = 0;
        int rc;
        while ((rc = fy_shm_pipe_recv_buf(s.p, buf, sizeof buf, &got)) == FY_SHM_EMPTY)
            tu_shm_pipe_wait(s.p, true, false);
        CHECK_OK(rc);
        CHECK(got == sizes[i] && tu_check_seeded(buf, got, (uint32_t)i));
        uint64_t w = fy_shm_pipe_spin_ns(s.p, base);
        fprintf(stderr, "  after %zu bytes: window %llu ns\n", got, (unsigned long long)w);
        if (i == 0)
            CHECK(w >= base && w < base + 1000);
        else
            CHECK(w >= base + 400000 && w <= base + 1000000);
        CHECK(fy_shm_pipe_spin_ns(s.p, 0) == 0);
    }
    /* Chunked: the direct path declines it, the general path reassembles it. */
    size_t got = 0;
    int rc;
    while ((rc = fy_shm_pipe_recv_buf(s.p, buf, sizeof buf, &got)) == FY_SHM_EMPTY)
        tu_shm_pipe_wait(s.p, true, false);
    CHECK_RC(rc, FY_SHM_DECLINE);
    fy_msg m;
    fy_msg_init(&m);
    while ((rc = fy_pipe_recv(s.p, &m)) == FERRY_EAGAIN)
        tu_shm_pipe_wait(s.p, true, false);
    CHECK_OK(rc);
    CHECK(fy_msg_size(&m) == sizes[2] && tu_check_seeded(fy_msg_data(&m), sizes[2], 2));
    fy_msg_fini(&m);
    uint64_t w = fy_shm_pipe_spin_ns(s.p, base);
    fprintf(stderr, "  after %zu bytes: window %llu ns\n", sizes[2], (unsigned long long)w);
    CHECK(w == base + 1000000);
    gate_open(&s);
    CHECK_RC(reap(s.child), 0);
    fy_shm_pipe_free(s.p);
    close(s.gate[0]);
    close(s.gate[1]);
}

int main(void)
{
    tu_deadline(100);
    setvbuf(stderr, NULL, _IONBF, 0);
    signal(SIGPIPE, SIG_IGN);
    fprintf(stderr, "mixed\n");
    test_mixed();
    for (int i = 0; i < 4; i++) {
        fprintf(stderr, "hostile %d\n", i);
        test_hostile(i);
    }
    fprintf(stderr, "send wait\n");
    test_send_wait();
    fprintf(stderr, "spin window\n");
    test_spin_window();
    printf("test_shm_direct: ok\n");
    return 0;
}
