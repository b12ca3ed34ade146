/*
 * test_ring_mpmc.c - the bounded MPMC slot queue: every call's arguments and errors, full/empty,
 * wrap over many laps, corrupted shared words (FERRY_EPROTO, sticky), the dead-producer stall and
 * its detection, a hostile thread scribbling the queue while it is used (never a fault: run under
 * ASan), and a stress run with 4 producer and 2 consumer processes (plus the same with threads,
 * which is what TSan can check) verifying per-producer order, no loss, no duplicate, checksums.
 *
 * FERRY_STRESS_MESSAGES=<n> sets the number of messages per stress run (default small for CI).
 */
#include "testutil.h"

#include "ferry/ring.h"
#include "ring/multi_layout.h"

#include <pthread.h>
#include <signal.h>
#include <sched.h>
#include <stdatomic.h>
#include <stdbool.h>
#include <string.h>
#include <sys/eventfd.h>
#include <sys/mman.h>
#include <sys/wait.h>
#include <unistd.h>

#if defined(__SANITIZE_THREAD__)
#define TEST_TSAN 1
#elif defined(__has_feature)
#if __has_feature(thread_sanitizer)
#define TEST_TSAN 1
#endif
#endif
#if defined(__SANITIZE_ADDRESS__) || defined(TEST_TSAN)
#define TEST_SANITIZED 1
#endif

/* Seconds before the test (and each stress child) gives up; see main. */
static unsigned stress_deadline_s = 110;

/* 128-byte aligned memory of exactly `size` bytes, so ASan flags any access past the end. */
static void *alloc_exact(size_t size)
{
    void *p = NULL;
    CHECK(posix_memalign(&p, 128, size) == 0);
    memset(p, 0xa5, size);
    return p;
}

static fy_mpmc_hdr *hdr_of(void *mem)
{
    return mem;
}

static fy_mpmc_cell *cell_of(void *mem, uint64_t slot_size, uint64_t i)
{
    return (fy_mpmc_cell *)((uint8_t *)mem + sizeof(fy_mpmc_hdr) + i * fy_mpmc_stride(slot_size));
}

static void test_footprint_format_init(void)
{
    CHECK(ferry_mpmc_footprint(0, 8) == 0);
    CHECK(ferry_mpmc_footprint(1, 8) == 0);
    CHECK(ferry_mpmc_footprint(3, 8) == 0);
    CHECK(ferry_mpmc_footprint(4, 0) == 0);
    CHECK(ferry_mpmc_footprint((size_t)FY_MPMC_MAX_SLOTS * 2, 8) == 0);
    CHECK(ferry_mpmc_footprint(4, (size_t)FY_MPMC_MAX_SLOT_SIZE + 1) == 0);
    CHECK(ferry_mpmc_footprint(4, 8) == 384 + 4 * 64);
    CHECK(ferry_mpmc_footprint(4, 48) == 384 + 4 * 64);
    CHECK(ferry_mpmc_footprint(4, 49) == 384 + 4 * 128);
    CHECK(ferry_mpmc_footprint(2, 1000) == 384 + 2 * 1024);

    size_t fp = ferry_mpmc_footprint(8, 32);
    void *mem = alloc_exact(fp);
    CHECK_RC(ferry_mpmc_format(NULL, fp, 8, 32), FERRY_EINVAL);
    CHECK_RC(ferry_mpmc_format((uint8_t *)mem + 8, fp - 8, 2, 8), FERRY_EINVAL);
    CHECK_RC(ferry_mpmc_format(mem, fp, 6, 32), FERRY_EINVAL);
    CHECK_RC(ferry_mpmc_format(mem, fp, 8, 0), FERRY_EINVAL);
    CHECK_RC(ferry_mpmc_format(mem, fp - 1, 8, 32), FERRY_EMSGSIZE);

    ferry_mpmc q;
    /* Not formatted yet: the magic is garbage. */
    CHECK_RC(ferry_mpmc_init(&q, mem, fp), FERRY_EPROTO);
    CHECK_OK(ferry_mpmc_format(mem, fp, 8, 32));
    CHECK_RC(ferry_mpmc_init(NULL, mem, fp), FERRY_EINVAL);
    CHECK_RC(ferry_mpmc_init(&q, NULL, fp), FERRY_EINVAL);
    CHECK_RC(ferry_mpmc_init(&q, (uint8_t *)mem + 64, fp - 64), FERRY_EINVAL);
    CHECK_RC(ferry_mpmc_init(&q, mem, 100), FERRY_EPROTO);
    CHECK_RC(ferry_mpmc_init(&q, mem, fp - 1), FERRY_EPROTO);
    CHECK_OK(ferry_mpmc_init(&q, mem, fp));
    /* Calls on an endpoint whose init failed are rejected, not crashes. */
    ferry_mpmc bad;
    CHECK_RC(ferry_mpmc_init(&bad, mem, 10), FERRY_EPROTO);
    CHECK_RC(ferry_mpmc_push(&bad, "x", 1), FERRY_EINVAL);
    CHECK_RC(ferry_mpmc_pop(&bad, NULL, 0), FERRY_EINVAL);
    CHECK_RC(ferry_mpmc_push(NULL, "x", 1), FERRY_EINVAL);
    CHECK_RC(ferry_mpmc_pop(NULL, NULL, 0), FERRY_EINVAL);
    CHECK_RC(ferry_mpmc_stalled(NULL, NULL), FERRY_EINVAL);

    /* Shape words that break an invariant are refused at init. */
    fy_mpmc_hdr *h = hdr_of(mem);
    atomic_store(&h->slots, 6);
    CHECK_RC(ferry_mpmc_init(&q, mem, fp), FERRY_EPROTO);
    atomic_store(&h->slots, 1);
    CHECK_RC(ferry_mpmc_init(&q, mem, fp), FERRY_EPROTO);
    atomic_store(&h->slots, 16); /* valid shape, but larger than the mapping */
    CHECK_RC(ferry_mpmc_init(&q, mem, fp), FERRY_EPROTO);
    atomic_store(&h->slots, 8);
    atomic_store(&h->slot_size, 0);
    CHECK_RC(ferry_mpmc_init(&q, mem, fp), FERRY_EPROTO);
    atomic_store(&h->slot_size, 32);
    atomic_store(&h->version, 2);
    CHECK_RC(ferry_mpmc_init(&q, mem, fp), FERRY_EPROTO);
    atomic_store(&h->version, FY_MPMC_VERSION);
    CHECK_OK(ferry_mpmc_init(&q, mem, fp));
    free(mem);
}

static void test_push_pop(void)
{
    const size_t slots = 8, ss = 40;
    size_t fp = ferry_mpmc_footprint(slots, ss);
    void *mem = alloc_exact(fp);
    CHECK_OK(ferry_mpmc_format(mem, fp, slots, ss));
    ferry_mpmc p, c;
    CHECK_OK(ferry_mpmc_init(&p, mem, fp));
    CHECK_OK(ferry_mpmc_init(&c, mem, fp));
    uint8_t buf[64], out[64];

    CHECK_RC(ferry_mpmc_pop(&c, out, sizeof out), FERRY_EAGAIN);
    CHECK_RC(ferry_mpmc_pop(&c, NULL, 5), FERRY_EINVAL);
    CHECK_RC(ferry_mpmc_push(&p, NULL, 1), FERRY_EINVAL);
    CHECK_RC(ferry_mpmc_push(&p, buf, ss + 1), FERRY_EMSGSIZE);
    CHECK_RC(ferry_mpmc_stalled(&c, NULL), 0);

    /* 0-byte messages, with and without a buffer. */
    CHECK_OK(ferry_mpmc_push(&p, NULL, 0));
    CHECK_OK(ferry_mpmc_push(&p, buf, 0));
    CHECK_RC(ferry_mpmc_pop(&c, NULL, 0), 0);
    CHECK_RC(ferry_mpmc_pop(&c, out, sizeof out), 0);
    CHECK_RC(ferry_mpmc_pop(&c, out, sizeof out), FERRY_EAGAIN);

    /* Fill to exactly `slots`, then full; lengths 0..slot_size are kept per slot. */
    for (size_t i = 0; i < slots; i++) {
        size_t len = i == slots - 1 ? ss : i * 5;
        for (size_t k = 0; k < len; k++)
            buf[k] = (uint8_t)(i * 31 + k);
        CHECK_OK(ferry_mpmc_push(&p, buf, len));
    }
    CHECK_RC(ferry_mpmc_push(&p, buf, 1), FERRY_EAGAIN);
    CHECK_RC(ferry_mpmc_push(&p, NULL, 0), FERRY_EAGAIN);
    for (size_t i = 0; i < slots; i++) {
        size_t len = i == slots - 1 ? ss : i * 5;
        if (len > 3) {
            /* Too small a buffer: EMSGSIZE and the message stays at the head. */
            CHECK_RC(ferry_mpmc_pop(&c, out, 3), FERRY_EMSGSIZE);
            CHECK_RC(ferry_mpmc_pop(&c, out, len - 1), FERRY_EMSGSIZE);
        }
        memset(out, 0, sizeof out);
        /* An exact-size buffer (smaller than the slot) is enough. */
        CHECK_RC(ferry_mpmc_pop(&c, out, len), (long long)len);
        for (size_t k = 0; k < len; k++)
            CHECK(out[k] == (uint8_t)(i * 31 + k));
        if (i == 0)
            CHECK_OK(ferry_mpmc_push(&p, buf, 1)); /* room again after one pop */
    }
    CHECK_RC(ferry_mpmc_pop(&c, out, sizeof out), 1);
    CHECK_RC(ferry_mpmc_pop(&c, out, sizeof out), FERRY_EAGAIN);
    free(mem);
}

/* The head moves through every cell many times: all fill levels at all starting offsets. */
static void test_wrap(void)
{
    const size_t slots = 4, ss = 24;
    size_t fp = ferry_mpmc_footprint(slots, ss);
    void *mem = alloc_exact(fp);
    CHECK_OK(ferry_mpmc_format(mem, fp, slots, ss));
    ferry_mpmc q;
    CHECK_OK(ferry_mpmc_init(&q, mem, fp));
    uint64_t next_in = 0, next_out = 0;
    uint8_t out[32];
    for (int round = 0; round < 200; round++) {
        size_t fill = (size_t)round % (slots + 1);
        for (size_t i = 0; i < fill; i++) {
            uint64_t v = next_in++;
            CHECK_OK(ferry_mpmc_push(&q, &v, (size_t)(v % 9)));
        }
        if (fill == slots)
            CHECK_RC(ferry_mpmc_push(&q, out, 1), FERRY_EAGAIN);
        for (size_t i = 0; i < fill; i++) {
            uint64_t v = 0, want = next_out++;
            size_t len = (size_t)(want % 9);
            CHECK_RC(ferry_mpmc_pop(&q, &v, sizeof v + 8), (long long)len);
            uint64_t mask = len >= 8 ? ~UINT64_C(0) : ((UINT64_C(1) << (8 * len)) - 1);
            CHECK((v & mask) == (want & mask));
        }
        CHECK_RC(ferry_mpmc_pop(&q, out, sizeof out), FERRY_EAGAIN);
    }
    fy_mpmc_hdr *h = hdr_of(mem);
    CHECK(atomic_load(&h->enq) == next_in && atomic_load(&h->deq) == next_out);
    CHECK(next_in == 400);
    free(mem);
}

static void test_corruption(void)
{
    const size_t slots = 4, ss = 16;
    size_t fp = ferry_mpmc_footprint(slots, ss);
    void *mem = alloc_exact(fp);
    fy_mpmc_hdr *h = hdr_of(mem);
    ferry_mpmc q;
    uint8_t out[64];

    /* slot_size changed after init: both sides notice, and the failure is sticky. */
    CHECK_OK(ferry_mpmc_format(mem, fp, slots, ss));
    CHECK_OK(ferry_mpmc_init(&q, mem, fp));
    CHECK_OK(ferry_mpmc_push(&q, "abc", 3));
    atomic_store(&h->slot_size, 4096);
    CHECK_RC(ferry_mpmc_pop(&q, out, sizeof out), FERRY_EPROTO);
    atomic_store(&h->slot_size, ss);
    CHECK_RC(ferry_mpmc_pop(&q, out, sizeof out), FERRY_EPROTO);
    CHECK_RC(ferry_mpmc_push(&q, "abc", 3), FERRY_EPROTO);
    CHECK_RC(ferry_mpmc_stalled(&q, NULL), FERRY_EPROTO);

    /* slots no longer a power of two. */
    CHECK_OK(ferry_mpmc_format(mem, fp, slots, ss));
    CHECK_OK(ferry_mpmc_init(&q, mem, fp));
    atomic_store(&h->slots, 3);
    CHECK_RC(ferry_mpmc_push(&q, "abc", 3), FERRY_EPROTO);

    /* A published length beyond the slot size. */
    CHECK_OK(ferry_mpmc_format(mem, fp, slots, ss));
    CHECK_OK(ferry_mpmc_init(&q, mem, fp));
    CHECK_OK(ferry_mpmc_push(&q, "abc", 3));
    atomic_store(&cell_of(mem, ss, 0)->len, ss + 1);
    CHECK_RC(ferry_mpmc_pop(&q, out, sizeof out), FERRY_EPROTO);
    CHECK_RC(ferry_mpmc_pop(&q, out, sizeof out), FERRY_EPROTO);

    /* The same, seen by the pre-check of a consumer with a small buffer. */
    CHECK_OK(ferry_mpmc_format(mem, fp, slots, ss));
    CHECK_OK(ferry_mpmc_init(&q, mem, fp));
    CHECK_OK(ferry_mpmc_push(&q, "abc", 3));
    atomic_store(&cell_of(mem, ss, 0)->len, UINT64_C(1) << 60);
    CHECK_RC(ferry_mpmc_pop(&q, out, 4), FERRY_EPROTO);

    /* A cell that claims to be past its position while the index did not move. */
    CHECK_OK(ferry_mpmc_format(mem, fp, slots, ss));
    CHECK_OK(ferry_mpmc_init(&q, mem, fp));
    atomic_store(&cell_of(mem, ss, 0)->seq, 7);
    CHECK_RC(ferry_mpmc_push(&q, "abc", 3), FERRY_EPROTO);
    CHECK_OK(ferry_mpmc_format(mem, fp, slots, ss));
    CHECK_OK(ferry_mpmc_init(&q, mem, fp));
    atomic_store(&cell_of(mem, ss, 0)->seq, 9);
    CHECK_RC(ferry_mpmc_pop(&q, out, sizeof out), FERRY_EPROTO);

    /* Absurd indices only ever address cells through the mask. */
    CHECK_OK(ferry_mpmc_format(mem, fp, slots, ss));
    CHECK_OK(ferry_mpmc_init(&q, mem, fp));
    /* Indices far ahead of the cells: they look like a full/empty queue of a later lap. */
    atomic_store(&h->enq, (UINT64_C(1) << 40) + 2);
    atomic_store(&h->deq, (UINT64_C(1) << 40) + 2);
    CHECK_RC(ferry_mpmc_pop(&q, out, sizeof out), FERRY_EAGAIN);
    CHECK_RC(ferry_mpmc_push(&q, "abc", 3), FERRY_EAGAIN);
    /* Indices behind the cells (wrapped): the cells claim a later lap that the index denies. */
    atomic_store(&h->enq, UINT64_MAX - 1);
    atomic_store(&h->deq, UINT64_MAX - 1);
    CHECK_RC(ferry_mpmc_pop(&q, out, sizeof out), FERRY_EPROTO);
    CHECK_OK(ferry_mpmc_init(&q, mem, fp));
    CHECK_RC(ferry_mpmc_push(&q, "abc", 3), FERRY_EPROTO);
    free(mem);
}

/* A producer that claimed a slot and never published it (as if killed in between). */
static void test_stall(void)
{
    const size_t slots = 4, ss = 8;
    size_t fp = ferry_mpmc_footprint(slots, ss);
    void *mem = alloc_exact(fp);
    CHECK_OK(ferry_mpmc_format(mem, fp, slots, ss));
    ferry_mpmc q;
    CHECK_OK(ferry_mpmc_init(&q, mem, fp));
    uint8_t out[8];
    CHECK_OK(ferry_mpmc_push(&q, "a", 1));
    CHECK_RC(ferry_mpmc_pop(&q, out, sizeof out), 1);
    /* The dead producer's claim: enq moves, the cell's seq stays at the position. */
    fy_mpmc_hdr *h = hdr_of(mem);
    uint64_t claimed = atomic_fetch_add(&h->enq, 1);
    CHECK(claimed == 1);
    CHECK_OK(ferry_mpmc_push(&q, "b", 1));
    CHECK_OK(ferry_mpmc_push(&q, "c", 1));
    uint64_t pos = 99;
    CHECK_RC(ferry_mpmc_stalled(&q, &pos), 1);
    CHECK(pos == 1);
    /* Later messages are stuck behind the hole. */
    CHECK_RC(ferry_mpmc_pop(&q, out, sizeof out), FERRY_EAGAIN);
    CHECK_RC(ferry_mpmc_pop(&q, out, sizeof out), FERRY_EAGAIN);
    CHECK_OK(ferry_mpmc_push(&q, "d", 1));
    CHECK_RC(ferry_mpmc_push(&q, "e", 1), FERRY_EAGAIN);
    CHECK_RC(ferry_mpmc_stalled(&q, &pos), 1);
    CHECK(pos == 1);
    /* Had the producer only been slow, its publish unblocks everything. */
    atomic_store_explicit(&cell_of(mem, ss, 1)->len, 0, memory_order_relaxed);
    atomic_store_explicit(&cell_of(mem, ss, 1)->seq, 2, memory_order_release);
    CHECK_RC(ferry_mpmc_stalled(&q, &pos), 0);
    CHECK_RC(ferry_mpmc_pop(&q, out, sizeof out), 0);
    CHECK_RC(ferry_mpmc_pop(&q, out, sizeof out), 1);
    CHECK(out[0] == 'b');
    free(mem);
}

/* Polls (with a deadline) until someone sleeps on w: the child reached the futex phase. */
static void await_sleeper(ferry_waitword *w)
{
    uint64_t deadline = tu_now_ns() + 20ull * 1000000000u;
    while (atomic_load(&w->sleepers) == 0) {
        CHECK(tu_now_ns() < deadline);
        sched_yield();
    }
}

static void test_wait(void)
{
    const size_t slots = 2, ss = 16;
    size_t fp = ferry_mpmc_footprint(slots, ss);
    ferry_segment *seg;
    ferry_segment_opts so = {.size = fp};
    CHECK_OK(ferry_segment_open(&seg, &so));
    void *mem = ferry_segment_base(seg);
    size_t size = ferry_segment_size(seg);
    CHECK_OK(ferry_mpmc_format(mem, size, slots, ss));
    fy_mpmc_hdr *h = mem;
    ferry_mpmc q;
    uint8_t out[16];
    CHECK_RC(ferry_mpmc_wait_readable(NULL, 0), FERRY_EINVAL);
    CHECK_RC(ferry_mpmc_wait_writable(NULL, 0), FERRY_EINVAL);
    ferry_mpmc_set_wait(NULL, NULL);
    CHECK_OK(ferry_mpmc_init(&q, mem, size));
    ferry_mpmc_set_wait(&q, NULL);

    /* Non-blocking checks (timeout 0) and short time-outs. */
    CHECK_RC(ferry_mpmc_wait_readable(&q, 0), FERRY_ETIMEDOUT);
    CHECK_RC(ferry_mpmc_wait_readable(&q, 5), FERRY_ETIMEDOUT);
    CHECK_OK(ferry_mpmc_wait_writable(&q, 0));
    CHECK_OK(ferry_mpmc_push(&q, "a", 1));
    CHECK_OK(ferry_mpmc_wait_readable(&q, 0));
    CHECK_OK(ferry_mpmc_push(&q, "b", 1));
    CHECK_RC(ferry_mpmc_wait_writable(&q, 0), FERRY_ETIMEDOUT);
    CHECK_RC(ferry_mpmc_wait_writable(&q, 5), FERRY_ETIMEDOUT);
    CHECK_RC(ferry_mpmc_pop(&q, out, sizeof out), 1);
    CHECK_OK(ferry_mpmc_wait_writable(&q, 0));
    CHECK_RC(ferry_mpmc_pop(&q, out, sizeof out), 1);

    /* A consumer process asleep on an empty queue is woken by a push; the pushing endpoint's
     * eventfd is signalled because it woke a sleeper. */
    int efd = eventfd(0, EFD_NONBLOCK | EFD_CLOEXEC);
    CHECK(efd >= 0);
    ferry_wait_policy pol;
    ferry_wait_policy_init(&pol);
    pol.eventfd = efd;
    ferry_mpmc_set_wait(&q, &pol);
    pid_t pid = fork();
    CHECK(pid >= 0);
    if (pid == 0) {
        tu_deadline(60);
        ferry_mpmc c;
        CHECK_OK(ferry_mpmc_init(&c, mem, size));
        CHECK_OK(ferry_mpmc_wait_readable(&c, 30000));
        CHECK_RC(ferry_mpmc_pop(&c, out, sizeof out), 3);
        CHECK(memcmp(out, "xyz", 3) == 0);
        _exit(0);
    }
    await_sleeper(&h->readable);
    uint64_t ev = 0;
    CHECK(read(efd, &ev, sizeof ev) < 0); /* nothing signalled yet */
    CHECK_OK(ferry_mpmc_push(&q, "xyz", 3));
    int status;
    CHECK(waitpid(pid, &status, 0) == pid);
    CHECK(WIFEXITED(status) && WEXITSTATUS(status) == 0);
    CHECK(read(efd, &ev, sizeof ev) == (ssize_t)sizeof ev && ev >= 1);

    /* A producer process asleep on a full queue is woken by a pop. */
    CHECK_OK(ferry_mpmc_push(&q, "1", 1));
    CHECK_OK(ferry_mpmc_push(&q, "2", 1));
    pid = fork();
    CHECK(pid >= 0);
    if (pid == 0) {
        tu_deadline(60);
        ferry_mpmc p;
        CHECK_OK(ferry_mpmc_init(&p, mem, size));
        CHECK_OK(ferry_mpmc_wait_writable(&p, 30000));
        CHECK_OK(ferry_mpmc_push(&p, "3", 1));
        _exit(0);
    }
    await_sleeper(&h->writable);
    CHECK_RC(ferry_mpmc_pop(&q, out, sizeof out), 1);
    CHECK(out[0] == '1');
    CHECK(waitpid(pid, &status, 0) == pid);
    CHECK(WIFEXITED(status) && WEXITSTATUS(status) == 0);
    CHECK_RC(ferry_mpmc_pop(&q, out, sizeof out), 1);
    CHECK(out[0] == '2');
    CHECK_RC(ferry_mpmc_pop(&q, out, sizeof out), 1);
    CHECK(out[0] == '3');

    /* A failed endpoint reports FERRY_EPROTO instead of waiting. */
    atomic_store(&h->slot_size, 3);
    CHECK_RC(ferry_mpmc_wait_readable(&q, 1000), FERRY_EPROTO);
    CHECK_RC(ferry_mpmc_wait_writable(&q, 1000), FERRY_EPROTO);
    close(efd);
    ferry_segment_close(seg);
}

/*
 * kill -9 of a producer process at a random point, repeatedly. Slots are large (256 KiB), so the
 * producer spends most of its time copying between claim and publish and the kill often lands
 * there. Afterwards everything published must drain intact, and then either the queue is empty
 * (enq == deq) or the head is stalled for good: ferry_mpmc_stalled reports the same position
 * again later and pop keeps returning FERRY_EAGAIN (the documented dead-producer state).
 */
static void test_killed_producer(void)
{
#ifdef TEST_SANITIZED
    const size_t slots = 4, ss = 64 * 1024;
#else
    const size_t slots = 4, ss = 256 * 1024;
#endif
    size_t fp = ferry_mpmc_footprint(slots, ss);
    uint8_t *out = malloc(ss);
    CHECK(out);
    int stalls = 0;
#ifdef TEST_SANITIZED
    const int rounds = 4;
#else
    const int rounds = 8;
#endif
    for (int round = 0; round < rounds; round++) {
        ferry_segment *seg;
        ferry_segment_opts so = {.size = fp};
        CHECK_OK(ferry_segment_open(&seg, &so));
        void *mem = ferry_segment_base(seg);
        size_t size = ferry_segment_size(seg);
        CHECK_OK(ferry_mpmc_format(mem, size, slots, ss));
        pid_t pid = fork();
        CHECK(pid >= 0);
        if (pid == 0) {
            tu_deadline(60);
            ferry_mpmc p;
            CHECK_OK(ferry_mpmc_init(&p, mem, size));
            uint8_t *msg = malloc(ss);
            CHECK(msg);
            for (uint64_t seq = 0;; seq++) {
                memset(msg, (int)(seq & 0xff), ss);
                memcpy(msg, &seq, sizeof seq);
                int rc;
                while ((rc = ferry_mpmc_push(&p, msg, ss)) == FERRY_EAGAIN)
                    sched_yield();
                CHECK_OK(rc);
            }
        }
        ferry_mpmc q;
        CHECK_OK(ferry_mpmc_init(&q, mem, size));
        uint64_t next = 0, kill_after = 1 + (uint64_t)round * 3 % 7;
        uint64_t deadline = tu_now_ns() + 30ull * 1000000000u;
        bool killed = false;
        for (;;) {
            ssize_t n = ferry_mpmc_pop(&q, out, ss);
            if (n == FERRY_EAGAIN) {
                if (killed)
                    break;
                CHECK(tu_now_ns() < deadline);
                sched_yield();
                continue;
            }
            CHECK_RC(n, (long long)ss);
            uint64_t seq;
            memcpy(&seq, out, sizeof seq);
            CHECK(seq == next);
            CHECK(out[ss - 1] == (uint8_t)(seq & 0xff) && out[ss / 2] == (uint8_t)(seq & 0xff));
            next++;
            if (!killed && next == kill_after) {
                CHECK(kill(pid, SIGKILL) == 0);
                int status;
                CHECK(waitpid(pid, &status, 0) == pid);
                CHECK(WIFSIGNALED(status) && WTERMSIG(status) == SIGKILL);
                killed = true;
            }
        }
        uint64_t pos1 = 0, pos2 = 0;
        int st = ferry_mpmc_stalled(&q, &pos1);
        CHECK(st == 0 || st == 1);
        fy_mpmc_hdr *h = mem;
        if (st == 0) {
            CHECK(atomic_load(&h->enq) == atomic_load(&h->deq));
        } else {
            stalls++;
            CHECK(pos1 == next);
            CHECK_RC(ferry_mpmc_wait_readable(&q, 20), FERRY_ETIMEDOUT);
            CHECK_RC(ferry_mpmc_stalled(&q, &pos2), 1);
            CHECK(pos2 == pos1);
            CHECK_RC(ferry_mpmc_pop(&q, out, ss), FERRY_EAGAIN);
        }
        ferry_segment_close(seg);
    }
    fprintf(stderr, "killed producer: %d rounds, %d left a stalled head\n", rounds, stalls);
    free(out);
}

/* ---- hostile scribbler -------------------------------------------------------------------- */

static uint64_t xorshift(uint64_t *s)
{
    uint64_t x = *s;
    x ^= x << 13;
    x ^= x >> 7;
    x ^= x << 17;
    return *s = x;
}

#ifndef TEST_TSAN
typedef struct scribble_arg {
    uint8_t *mem;
    size_t words;
    _Atomic bool stop;
    uint64_t rng;
} scribble_arg;

static void *scribbler(void *p)
{
    scribble_arg *a = p;
    _Atomic uint64_t *w = (_Atomic uint64_t *)(void *)a->mem;
    while (!atomic_load_explicit(&a->stop, memory_order_relaxed)) {
        uint64_t r = xorshift(&a->rng);
        /* Mostly the words that steer the code (shape line, indices, cell headers), with values
         * that are near plausible ones as often as wild ones. */
        size_t idx;
        switch (r & 3) {
        case 0:
            idx = (size_t)((r >> 8) % 4); /* shape line */
            break;
        case 1:
            idx = (r >> 8) & 1 ? 16 : 32; /* enq / deq */
            break;
        default:
            idx = (size_t)((r >> 8) % a->words);
            break;
        }
        uint64_t old = atomic_load_explicit(&w[idx], memory_order_relaxed);
        uint64_t v = (r >> 40) & 1 ? old + ((r >> 41) & 7) - 3 : xorshift(&a->rng);
        atomic_store_explicit(&w[idx], v, memory_order_relaxed);
        if ((r & 0xff) == 0)
            sched_yield();
    }
    return NULL;
}

#endif /* !TEST_TSAN */

static void test_hostile(void)
{
#ifdef TEST_TSAN
    /* The scribbler races with payload copies by design; TSan would (rightly) report that. */
    fprintf(stderr, "hostile: skipped under TSan\n");
#else
    const size_t slots = 8, ss = 40;
    size_t fp = ferry_mpmc_footprint(slots, ss);
    void *mem = alloc_exact(fp);
    CHECK_OK(ferry_mpmc_format(mem, fp, slots, ss));
    scribble_arg a = {.mem = mem, .words = fp / 8, .rng = tu_now_ns() | 1};
    atomic_init(&a.stop, false);
    pthread_t t;
    CHECK(pthread_create(&t, NULL, scribbler, &a) == 0);
    ferry_mpmc q;
    uint8_t buf[64] = {1, 2, 3}, out[64];
    uint64_t calls = 0, eproto = 0, ok = 0, deadline = tu_now_ns() + 20ull * 1000000000u;
    bool attached = false;
    while ((eproto < 50 || calls < 200000) && tu_now_ns() < deadline) {
        if (!attached) {
            int rc = ferry_mpmc_init(&q, mem, fp);
            CHECK(rc == 0 || rc == FERRY_EPROTO);
            if (rc != 0) {
                CHECK_OK(ferry_mpmc_format(mem, fp, slots, ss));
                continue;
            }
            attached = true;
        }
        calls++;
        /* init may have accepted a scribbled (but self-consistent) shape: the private copy is
         * what the endpoint enforces from then on. */
        size_t len = calls % (ss + 1);
        int rc = ferry_mpmc_push(&q, buf, len);
        CHECK(rc == 0 || rc == FERRY_EAGAIN || rc == FERRY_EPROTO ||
              (rc == FERRY_EMSGSIZE && len > q.slot_size_));
        size_t cap = calls % 3 == 0 ? 8 : sizeof out;
        ssize_t n = ferry_mpmc_pop(&q, out, cap);
        CHECK((n >= 0 && (size_t)n <= cap) || n == FERRY_EAGAIN || n == FERRY_EPROTO ||
              (n == FERRY_EMSGSIZE && cap < q.slot_size_));
        uint64_t pos;
        int st = ferry_mpmc_stalled(&q, &pos);
        CHECK(st == 0 || st == 1 || st == FERRY_EPROTO);
        if (n >= 0)
            ok++;
        if (rc == FERRY_EPROTO || n == FERRY_EPROTO) {
            eproto++;
            attached = false;
        }
    }
    atomic_store(&a.stop, true);
    CHECK(pthread_join(t, NULL) == 0);
    fprintf(stderr, "hostile: %llu calls, %llu pops ok, %llu EPROTO\n", (unsigned long long)calls,
            (unsigned long long)ok, (unsigned long long)eproto);
    CHECK(eproto > 0);
    free(mem);
#endif
}

/* ---- stress: 4 producers, 2 consumers ----------------------------------------------------- */

#define NPROD 4
#define NCONS 2
#define SLOT  64

typedef struct stress_msg {
    uint32_t producer;
    uint32_t len;
    uint64_t seq;
    uint64_t sum;
    uint8_t payload[SLOT - 24];
} stress_msg;

_Static_assert(sizeof(stress_msg) == SLOT, "message fills a slot");

typedef struct stress_shared {
    _Atomic uint64_t consumed;
    _Atomic uint64_t waits; /* blocking mode: waits that ended with the condition true */
} stress_shared;

typedef struct stress_ctx {
    void *ring; /* the queue (shared) */
    size_t ring_size;
    stress_shared *st; /* shared counters */
    uint8_t *bitmaps;  /* shared: [NCONS][NPROD][per_producer bits] */
    uint64_t per_producer;
    int id;
    bool blocking; /* wait_readable/wait_writable instead of sched_yield on FERRY_EAGAIN */
    bool strong;   /* endpoints publish with full fences, as without membarrier registration */
} stress_ctx;

static uint64_t msg_sum(const stress_msg *m)
{
    uint64_t h = UINT64_C(1469598103934665603) ^ m->producer ^ (m->seq << 8) ^ m->len;
    for (uint32_t i = 0; i < m->len - 24; i++)
        h = (h ^ m->payload[i]) * UINT64_C(1099511628211);
    return h;
}

static void produce(const stress_ctx *x)
{
    ferry_mpmc q;
    CHECK_OK(ferry_mpmc_init(&q, x->ring, x->ring_size));
    if (x->strong)
        q.strong_ = 1; /* exercise the full-fence publish (no membarrier) */
    uint64_t rng = (uint64_t)x->id * 7919 + 1;
    stress_msg m;
    for (uint64_t s = 0; s < x->per_producer; s++) {
        m.producer = (uint32_t)x->id;
        m.seq = s;
        m.len = 24 + (uint32_t)(xorshift(&rng) % (SLOT - 24 + 1));
        for (uint32_t i = 0; i < m.len - 24; i++)
            m.payload[i] = (uint8_t)(xorshift(&rng) >> 24);
        m.sum = msg_sum(&m);
        int rc;
        while ((rc = ferry_mpmc_push(&q, &m, m.len)) == FERRY_EAGAIN) {
            if (!x->blocking) {
                sched_yield();
                continue;
            }
            /* Consumers run until everything is consumed, so room always comes: a time-out
             * here would be a lost wake-up. */
            CHECK_OK(ferry_mpmc_wait_writable(&q, 20000));
            atomic_fetch_add_explicit(&x->st->waits, 1, memory_order_relaxed);
        }
        CHECK_OK(rc);
    }
}

static void consume(const stress_ctx *x)
{
    ferry_mpmc q;
    CHECK_OK(ferry_mpmc_init(&q, x->ring, x->ring_size));
    if (x->strong)
        q.strong_ = 1; /* exercise the full-fence publish (no membarrier) */
    uint64_t total = x->per_producer * NPROD;
    int64_t last[NPROD];
    for (int i = 0; i < NPROD; i++)
        last[i] = -1;
    size_t map_bytes = (size_t)(x->per_producer + 7) / 8;
    uint8_t *mine = x->bitmaps + (size_t)x->id * NPROD * map_bytes;
    stress_msg m;
    while (atomic_load_explicit(&x->st->consumed, memory_order_relaxed) < total) {
        ssize_t n = ferry_mpmc_pop(&q, &m, sizeof m);
        if (n == FERRY_EAGAIN) {
            if (!x->blocking) {
                sched_yield();
                continue;
            }
            /* Short time-out: once the other consumer takes the last message nothing will wake
             * this one, and it has to notice that the run is over. */
            int rc = ferry_mpmc_wait_readable(&q, 20);
            CHECK(rc == 0 || rc == FERRY_ETIMEDOUT);
            if (rc == 0)
                atomic_fetch_add_explicit(&x->st->waits, 1, memory_order_relaxed);
            continue;
        }
        CHECK(n >= 24 && n <= SLOT);
        CHECK(m.len == (uint32_t)n);
        CHECK(m.producer < NPROD);
        CHECK(m.seq < x->per_producer);
        CHECK(m.sum == msg_sum(&m));
        /* One consumer claims positions in increasing order, and one producer's messages occupy
         * increasing positions: so each consumer sees each producer's sequence increase. */
        CHECK((int64_t)m.seq > last[m.producer]);
        last[m.producer] = (int64_t)m.seq;
        uint8_t *bm = mine + (size_t)m.producer * map_bytes;
        CHECK((bm[m.seq / 8] & (1u << (m.seq % 8))) == 0);
        bm[m.seq / 8] |= (uint8_t)(1u << (m.seq % 8));
        atomic_fetch_add_explicit(&x->st->consumed, 1, memory_order_relaxed);
    }
}

static void *produce_thread(void *p)
{
    produce(p);
    return NULL;
}

static void *consume_thread(void *p)
{
    consume(p);
    return NULL;
}

static void *map_shared(size_t size)
{
    void *p = mmap(NULL, size, PROT_READ | PROT_WRITE, MAP_SHARED | MAP_ANONYMOUS, -1, 0);
    CHECK(p != MAP_FAILED);
    return p;
}

/* In a child process: map the ring's segment again from its fd, at an address of its own, so the
 * ring is used exactly as an unrelated process would use it (nothing in it may hold a pointer). */
static void attach_own_mapping(stress_ctx *x, const ferry_segment *seg)
{
    int fd = dup(ferry_segment_fd(seg));
    CHECK(fd >= 0);
    ferry_segment *mine;
    CHECK_OK(ferry_segment_attach(&mine, fd, 0));
    CHECK(ferry_segment_base(mine) != x->ring);
    x->ring = ferry_segment_base(mine);
    x->ring_size = ferry_segment_size(mine);
}

static void stress(bool processes, bool blocking, bool strong, uint64_t total_messages,
                   size_t slots)
{
    uint64_t per = total_messages / NPROD;
    if (per == 0)
        per = 1;
    size_t fp = ferry_mpmc_footprint(slots, SLOT);
    size_t map_bytes = (size_t)(per + 7) / 8;
    size_t bm_size = (size_t)NCONS * NPROD * map_bytes;
    ferry_segment *seg;
    ferry_segment_opts so = {.size = fp};
    CHECK_OK(ferry_segment_open(&seg, &so));
    void *ring = ferry_segment_base(seg);
    size_t ring_size = ferry_segment_size(seg);
    CHECK(ring_size >= fp);
    stress_shared *st = map_shared(sizeof *st);
    uint8_t *bitmaps = map_shared(bm_size);
    CHECK_OK(ferry_mpmc_format(ring, ring_size, slots, SLOT));
    stress_ctx ctx[NPROD + NCONS];
    for (int i = 0; i < NPROD + NCONS; i++)
        ctx[i] = (stress_ctx){.ring = ring,
                              .ring_size = ring_size,
                              .st = st,
                              .bitmaps = bitmaps,
                              .per_producer = per,
                              .id = i < NPROD ? i : i - NPROD,
                              .blocking = blocking,
                              .strong = strong};
    uint64_t t0 = tu_now_ns();
    if (processes) {
        pid_t pids[NPROD + NCONS];
        for (int i = 0; i < NPROD + NCONS; i++) {
            pids[i] = fork();
            CHECK(pids[i] >= 0);
            if (pids[i] == 0) {
                tu_deadline(stress_deadline_s - 10);
                attach_own_mapping(&ctx[i], seg);
                if (i < NPROD)
                    produce(&ctx[i]);
                else
                    consume(&ctx[i]);
                _exit(0);
            }
        }
        for (int i = 0; i < NPROD + NCONS; i++) {
            int status;
            CHECK(waitpid(pids[i], &status, 0) == pids[i]);
            CHECK(WIFEXITED(status) && WEXITSTATUS(status) == 0);
        }
    } else {
        pthread_t th[NPROD + NCONS];
        for (int i = 0; i < NPROD + NCONS; i++)
            CHECK(pthread_create(&th[i], NULL, i < NPROD ? produce_thread : consume_thread,
                                 &ctx[i]) == 0);
        for (int i = 0; i < NPROD + NCONS; i++)
            CHECK(pthread_join(th[i], NULL) == 0);
    }
    uint64_t dt = tu_now_ns() - t0;
    CHECK(atomic_load(&st->consumed) == per * NPROD);
    /* Every message of every producer was taken by exactly one consumer. */
    for (int p = 0; p < NPROD; p++) {
        for (uint64_t s = 0; s < per; s++) {
            int seen = 0;
            for (int c = 0; c < NCONS; c++) {
                const uint8_t *bm = bitmaps + ((size_t)c * NPROD + (size_t)p) * map_bytes;
                seen += (bm[s / 8] >> (s % 8)) & 1;
            }
            CHECK(seen == 1);
        }
    }
    /* Nothing left behind, and the indices agree. */
    ferry_mpmc q;
    CHECK_OK(ferry_mpmc_init(&q, ring, ring_size));
    uint8_t out[SLOT];
    CHECK_RC(ferry_mpmc_pop(&q, out, sizeof out), FERRY_EAGAIN);
    fy_mpmc_hdr *h = ring;
    CHECK(atomic_load(&h->enq) == per * NPROD && atomic_load(&h->deq) == per * NPROD);
    fprintf(stderr,
            "stress (%s, %s, %zu slots): %llu messages, %d producers, %d consumers, %llu waits, "
            "%.0f ms\n",
            processes ? "processes" : "threads",
            blocking ? (strong ? "blocking, full fences" : "blocking") : "polling", slots,
            (unsigned long long)(per * NPROD), NPROD, NCONS,
            (unsigned long long)atomic_load(&st->waits), (double)dt / 1e6);
    ferry_segment_close(seg);
    munmap(st, sizeof *st);
    munmap(bitmaps, bm_size);
}

int main(void)
{
    uint64_t n = 0;
    const char *env = getenv("FERRY_STRESS_MESSAGES");
    if (env && *env) {
        n = strtoull(env, NULL, 10);
        /* Long runs get a deadline that grows with the count (the machine may be shared). */
        stress_deadline_s = 110 + (unsigned)(n / 5000 < 86400 ? n / 5000 : 86400);
    }
    tu_deadline(stress_deadline_s);
    test_footprint_format_init();
    test_push_pop();
    test_wrap();
    test_corruption();
    test_stall();
    test_wait();
    test_killed_producer();
    test_hostile();
#ifdef TEST_SANITIZED
    if (!n)
        n = 100000;
#else
    if (!n)
        n = 400000;
#endif
    stress(true, false, false, n, 64);
    stress(true, false, false, n / 8, 2); /* a tiny ring: mostly full, cells reused constantly */
    stress(true, true, false, n / 2, 8);
    stress(true, true, true, n / 4, 8);
    stress(false, false, false, n / 2, 16);
    stress(false, true, false, n / 4, 4);
    return 0;
}
