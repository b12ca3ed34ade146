/*
 * test_ring_mpsc.c - the MPSC byte ring: every call's arguments and errors, full/empty, 0-byte and
 * maximum records, wrap (padding records) at every 8-byte offset with several record sizes, the
 * zeroed-free-space invariant, corrupted header and index words (FERRY_EPROTO, sticky), the
 * dead-producer stall and its detection, a hostile thread scribbling the ring while it is used
 * (never a fault: run under ASan), and a stress run with 4 producer processes and one consumer
 * (plus the same with threads for TSan) verifying strict per-producer order and checksums.
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

static void *alloc_exact(size_t size)
{
    void *p = NULL;
    CHECK(posix_memalign(&p, 128, size) == 0);
    memset(p, 0xa5, size);
    return p;
}

static _Atomic uint64_t *word_at(void *mem, uint64_t off)
{
    return (_Atomic uint64_t *)(void *)((uint8_t *)mem + sizeof(fy_mpsc_hdr) + off);
}

static uint8_t *data_of(void *mem)
{
    return (uint8_t *)mem + sizeof(fy_mpsc_hdr);
}

static bool all_zero(const uint8_t *p, size_t n)
{
    for (size_t i = 0; i < n; i++)
        if (p[i])
            return false;
    return true;
}

static uint64_t xorshift(uint64_t *s)
{
    uint64_t x = *s;
    x ^= x << 13;
    x ^= x >> 7;
    x ^= x << 17;
    return *s = x;
}

static void test_footprint_format_init(void)
{
    CHECK(ferry_mpsc_footprint(0) == 0);
    CHECK(ferry_mpsc_footprint(128) == 0);
    CHECK(ferry_mpsc_footprint(1000) == 0);
    CHECK(ferry_mpsc_footprint(256) == 384 + 256);
    CHECK(ferry_mpsc_footprint((size_t)1 << 20) == 384 + ((size_t)1 << 20));
    CHECK(ferry_mpsc_footprint((size_t)1 << 33) == 0);
    CHECK(FERRY_MPSC_MAX_RECORD(256) == 120);

    size_t fp = ferry_mpsc_footprint(1024);
    void *mem = alloc_exact(fp);
    ferry_mpsc r;
    CHECK_RC(ferry_mpsc_format(NULL, fp, 1024), FERRY_EINVAL);
    CHECK_RC(ferry_mpsc_format((uint8_t *)mem + 8, fp - 8, 256), FERRY_EINVAL);
    CHECK_RC(ferry_mpsc_format(mem, fp, 1000), FERRY_EINVAL);
    CHECK_RC(ferry_mpsc_format(mem, fp - 1, 1024), FERRY_EMSGSIZE);
    CHECK_RC(ferry_mpsc_init(&r, mem, fp), FERRY_EPROTO); /* not formatted */
    CHECK_OK(ferry_mpsc_format(mem, fp, 1024));
    CHECK(all_zero(data_of(mem), 1024));
    CHECK_RC(ferry_mpsc_init(NULL, mem, fp), FERRY_EINVAL);
    CHECK_RC(ferry_mpsc_init(&r, NULL, fp), FERRY_EINVAL);
    CHECK_RC(ferry_mpsc_init(&r, (uint8_t *)mem + 64, fp - 64), FERRY_EINVAL);
    CHECK_RC(ferry_mpsc_init(&r, mem, 10), FERRY_EPROTO);
    CHECK_RC(ferry_mpsc_init(&r, mem, fp - 1), FERRY_EPROTO);
    CHECK_RC(ferry_mpsc_write(&r, "x", 1), FERRY_EINVAL); /* failed init leaves it unusable */
    CHECK_RC(ferry_mpsc_read(&r, NULL, 0), FERRY_EINVAL);
    CHECK_RC(ferry_mpsc_write(NULL, "x", 1), FERRY_EINVAL);
    CHECK_RC(ferry_mpsc_read(NULL, NULL, 0), FERRY_EINVAL);
    CHECK_RC(ferry_mpsc_stalled(NULL, NULL), FERRY_EINVAL);
    CHECK_OK(ferry_mpsc_init(&r, mem, fp));

    fy_mpsc_hdr *h = mem;
    atomic_store(&h->capacity, 1000);
    CHECK_RC(ferry_mpsc_init(&r, mem, fp), FERRY_EPROTO);
    atomic_store(&h->capacity, 2048); /* valid, but larger than the mapping */
    CHECK_RC(ferry_mpsc_init(&r, mem, fp), FERRY_EPROTO);
    atomic_store(&h->capacity, 1024);
    atomic_store(&h->head, 4); /* misaligned head */
    CHECK_RC(ferry_mpsc_init(&r, mem, fp), FERRY_EPROTO);
    atomic_store(&h->head, 0);
    atomic_store(&h->magic, 0);
    CHECK_RC(ferry_mpsc_init(&r, mem, fp), FERRY_EPROTO);
    atomic_store(&h->magic, FY_MPSC_MAGIC);
    atomic_store(&h->version, 9);
    CHECK_RC(ferry_mpsc_init(&r, mem, fp), FERRY_EPROTO);
    atomic_store(&h->version, FY_MPSC_VERSION);
    CHECK_OK(ferry_mpsc_init(&r, mem, fp));
    free(mem);
}

static void test_basic(void)
{
    const size_t cap = 256, max = FERRY_MPSC_MAX_RECORD(cap);
    size_t fp = ferry_mpsc_footprint(cap);
    void *mem = alloc_exact(fp);
    CHECK_OK(ferry_mpsc_format(mem, fp, cap));
    ferry_mpsc p, c;
    CHECK_OK(ferry_mpsc_init(&p, mem, fp));
    CHECK_OK(ferry_mpsc_init(&c, mem, fp));
    uint8_t buf[256], out[256];
    for (size_t i = 0; i < sizeof buf; i++)
        buf[i] = (uint8_t)(i * 7 + 1);

    CHECK_RC(ferry_mpsc_read(&c, out, sizeof out), FERRY_EAGAIN);
    CHECK_RC(ferry_mpsc_read(&c, NULL, 4), FERRY_EINVAL);
    CHECK_RC(ferry_mpsc_write(&p, NULL, 4), FERRY_EINVAL);
    CHECK_RC(ferry_mpsc_write(&p, buf, max + 1), FERRY_EMSGSIZE);
    CHECK_RC(ferry_mpsc_stalled(&c, NULL), 0);

    /* 0-byte records are real records (8 bytes of header). */
    CHECK_OK(ferry_mpsc_write(&p, NULL, 0));
    CHECK_OK(ferry_mpsc_write(&p, buf, 0));
    CHECK_RC(ferry_mpsc_read(&c, NULL, 0), 0);
    CHECK_RC(ferry_mpsc_read(&c, out, sizeof out), 0);
    CHECK_RC(ferry_mpsc_read(&c, out, sizeof out), FERRY_EAGAIN);

    /* The largest record, a too-small buffer (record stays), then the read. */
    CHECK_OK(ferry_mpsc_write(&p, buf, max));
    CHECK_RC(ferry_mpsc_read(&c, out, max - 1), FERRY_EMSGSIZE);
    CHECK_RC(ferry_mpsc_read(&c, NULL, 0), FERRY_EMSGSIZE);
    CHECK_RC(ferry_mpsc_read(&c, out, max), (long long)max);
    CHECK(memcmp(out, buf, max) == 0);

    /* Fill with 24-byte records (32 bytes each) from offset 144: three fit before the end, the
     * fourth needs 16 bytes of padding first, then three more: 7, with 16 bytes left over. */
    CHECK(atomic_load(&((fy_mpsc_hdr *)mem)->tail) == 144);
    size_t n = 0;
    while (ferry_mpsc_write(&p, buf + n, 24) == 0)
        n++;
    CHECK(n == 7);
    CHECK(atomic_load(&((fy_mpsc_hdr *)mem)->tail) - atomic_load(&((fy_mpsc_hdr *)mem)->head) ==
          cap - 16);
    CHECK_RC(ferry_mpsc_write(&p, buf, 24), FERRY_EAGAIN);
    /* The 16 bytes left hold exactly two 0-byte records. */
    CHECK_OK(ferry_mpsc_write(&p, NULL, 0));
    CHECK_OK(ferry_mpsc_write(&p, NULL, 0));
    CHECK_RC(ferry_mpsc_write(&p, NULL, 0), FERRY_EAGAIN);
    for (size_t i = 0; i < n; i++) {
        CHECK_RC(ferry_mpsc_read(&c, out, sizeof out), 24);
        CHECK(memcmp(out, buf + i, 24) == 0);
    }
    CHECK_RC(ferry_mpsc_read(&c, out, sizeof out), 0);
    CHECK_RC(ferry_mpsc_read(&c, out, sizeof out), 0);
    CHECK_RC(ferry_mpsc_read(&c, out, sizeof out), FERRY_EAGAIN);
    CHECK(all_zero(data_of(mem), cap));
    free(mem);
}

/*
 * For every 8-byte starting offset and several record sizes (including ones that need a padding
 * record at the end and the largest one), records go round the ring several times with contents
 * intact, and after each drain the whole data area is zero again.
 */
static void test_wrap_every_offset(void)
{
    const size_t cap = 256, max = FERRY_MPSC_MAX_RECORD(cap);
    size_t fp = ferry_mpsc_footprint(cap);
    void *mem = alloc_exact(fp);
    uint8_t buf[256], out[256];
    const size_t sizes[] = {0, 1, 7, 8, 9, 23, 40, 57, 100, max};
    uint64_t pads_seen = 0;
    for (size_t start = 0; start < cap; start += 8) {
        for (size_t si = 0; si < sizeof sizes / sizeof sizes[0]; si++) {
            size_t len = sizes[si];
            CHECK_OK(ferry_mpsc_format(mem, fp, cap));
            ferry_mpsc r;
            CHECK_OK(ferry_mpsc_init(&r, mem, fp));
            /* Move the indices to `start` with 0-byte records. */
            for (size_t k = 0; k < start / 8; k++) {
                CHECK_OK(ferry_mpsc_write(&r, NULL, 0));
                CHECK_RC(ferry_mpsc_read(&r, NULL, 0), 0);
            }
            uint64_t seq = 0, rseq = 0;
            for (int lap = 0; lap < 6; lap++) {
                /* Fill until full, then drain everything: in order, intact. */
                for (;;) {
                    for (size_t i = 0; i < len; i++)
                        buf[i] = (uint8_t)(seq * 13 + i);
                    uint64_t before = atomic_load(&((fy_mpsc_hdr *)mem)->tail);
                    int rc = ferry_mpsc_write(&r, buf, len);
                    if (rc == FERRY_EAGAIN)
                        break;
                    CHECK_OK(rc);
                    uint64_t after = atomic_load(&((fy_mpsc_hdr *)mem)->tail);
                    if (after - before > fy_mpsc_total(len))
                        pads_seen++;
                    seq++;
                }
                CHECK(seq > rseq);
                while (rseq < seq) {
                    CHECK_RC(ferry_mpsc_read(&r, out, sizeof out), (long long)len);
                    for (size_t i = 0; i < len; i++)
                        CHECK(out[i] == (uint8_t)(rseq * 13 + i));
                    rseq++;
                }
                CHECK_RC(ferry_mpsc_read(&r, out, sizeof out), FERRY_EAGAIN);
                CHECK(all_zero(data_of(mem), cap));
                /* A few more (as many as fit), so the next lap starts at another offset. */
                for (size_t k = 0; k < 3 + (size_t)lap; k++) {
                    int rc = ferry_mpsc_write(&r, buf, len);
                    if (rc == FERRY_EAGAIN)
                        break;
                    CHECK_OK(rc);
                    seq++;
                }
                while (rseq < seq) {
                    CHECK_RC(ferry_mpsc_read(&r, out, sizeof out), (long long)len);
                    rseq++;
                }
            }
        }
    }
    CHECK(pads_seen > 100);
    free(mem);
}

static void test_corruption(void)
{
    const size_t cap = 256;
    size_t fp = ferry_mpsc_footprint(cap);
    void *mem = alloc_exact(fp);
    fy_mpsc_hdr *h = mem;
    ferry_mpsc r;
    uint8_t out[256];

    /* A header word without the commit bit, with unknown bits, or too long. */
    const uint64_t bad_words[] = {
        5,                                    /* length but no commit bit */
        FY_MPSC_COMMIT | (UINT64_C(1) << 40), /* unknown bit */
        FY_MPSC_COMMIT | 121,                 /* longer than the largest record */
        FY_MPSC_COMMIT | FY_MPSC_LEN_MASK,    /* absurd length */
        FY_MPSC_COMMIT | FY_MPSC_PAD | 256,   /* padding at offset 0 */
        FY_MPSC_COMMIT | FY_MPSC_PAD | 8,     /* padding at offset 0 */
    };
    for (size_t i = 0; i < sizeof bad_words / sizeof bad_words[0]; i++) {
        CHECK_OK(ferry_mpsc_format(mem, fp, cap));
        CHECK_OK(ferry_mpsc_init(&r, mem, fp));
        atomic_store(word_at(mem, 0), bad_words[i]);
        CHECK_RC(ferry_mpsc_read(&r, out, sizeof out), FERRY_EPROTO);
        /* Sticky, even after the word is repaired. */
        atomic_store(word_at(mem, 0), 0);
        CHECK_RC(ferry_mpsc_read(&r, out, sizeof out), FERRY_EPROTO);
        CHECK_RC(ferry_mpsc_write(&r, "x", 1), FERRY_EPROTO);
        CHECK_RC(ferry_mpsc_stalled(&r, NULL), FERRY_EPROTO);
    }

    /* Near the end of the ring: a record running past the end, a padding record that does not
     * end exactly at the end, and a padding record followed by another one. */
    const struct {
        uint64_t w_end, w_zero;
    } tail_cases[] = {
        {FY_MPSC_COMMIT | 17, 0},                                                /* 32 > 24 bytes */
        {FY_MPSC_COMMIT | FY_MPSC_PAD | 16, 0},                                  /* short pad */
        {FY_MPSC_COMMIT | FY_MPSC_PAD | 24, FY_MPSC_COMMIT | 121},               /* then too long */
        {FY_MPSC_COMMIT | FY_MPSC_PAD | 24, FY_MPSC_COMMIT | FY_MPSC_PAD | 256}, /* pad, pad */
    };
    for (size_t i = 0; i < sizeof tail_cases / sizeof tail_cases[0]; i++) {
        CHECK_OK(ferry_mpsc_format(mem, fp, cap));
        atomic_store(&h->head, cap - 24);
        atomic_store(&h->tail, cap - 24);
        CHECK_OK(ferry_mpsc_init(&r, mem, fp));
        atomic_store(word_at(mem, cap - 24), tail_cases[i].w_end);
        atomic_store(word_at(mem, 0), tail_cases[i].w_zero);
        CHECK_RC(ferry_mpsc_read(&r, out, sizeof out), FERRY_EPROTO);
    }

    /* The capacity changed under an attached endpoint. */
    CHECK_OK(ferry_mpsc_format(mem, fp, cap));
    CHECK_OK(ferry_mpsc_init(&r, mem, fp));
    CHECK_OK(ferry_mpsc_write(&r, "abc", 3));
    atomic_store(&h->capacity, cap * 2);
    CHECK_RC(ferry_mpsc_read(&r, out, sizeof out), FERRY_EPROTO);

    /* Producer side: indices that break tail - head <= capacity, or a misaligned tail. */
    const struct {
        uint64_t tail, head;
    } idx_cases[] = {{1000, 0}, {0, 1000}, {12, 0}, {UINT64_MAX - 7, 64}};
    for (size_t i = 0; i < sizeof idx_cases / sizeof idx_cases[0]; i++) {
        CHECK_OK(ferry_mpsc_format(mem, fp, cap));
        CHECK_OK(ferry_mpsc_init(&r, mem, fp));
        atomic_store(&h->tail, idx_cases[i].tail);
        atomic_store(&h->head, idx_cases[i].head);
        /* A producer looks at the shared head only when its cached (validated) copy says the
         * ring is full, so a bad head may be noticed a few writes late, but it is noticed, and
         * nothing is written outside the ring meanwhile (ASan). */
        int rc = 0, writes = 0;
        while (rc == 0 && writes <= (int)(cap / 16)) {
            rc = ferry_mpsc_write(&r, "abc", 3);
            writes++;
        }
        CHECK_RC(rc, FERRY_EPROTO);
        CHECK_RC(ferry_mpsc_write(&r, "abc", 3), FERRY_EPROTO);
    }
    /* Large but consistent indices are fine (the ring is just old). */
    CHECK_OK(ferry_mpsc_format(mem, fp, cap));
    atomic_store(&h->tail, UINT64_MAX - 7);
    atomic_store(&h->head, UINT64_MAX - 7);
    CHECK_OK(ferry_mpsc_init(&r, mem, fp));
    for (int i = 0; i < 20; i++) {
        CHECK_OK(ferry_mpsc_write(&r, "abcdefghij", 10));
        CHECK_RC(ferry_mpsc_read(&r, out, sizeof out), 10);
        CHECK(memcmp(out, "abcdefghij", 10) == 0);
    }
    CHECK(atomic_load(&h->head) < 1000); /* the indices wrapped through 2^64 */
    free(mem);
}

/* A producer that reserved space and never committed (as if killed in between). */
static void test_stall(void)
{
    const size_t cap = 256;
    size_t fp = ferry_mpsc_footprint(cap);
    void *mem = alloc_exact(fp);
    CHECK_OK(ferry_mpsc_format(mem, fp, cap));
    fy_mpsc_hdr *h = mem;
    ferry_mpsc r;
    CHECK_OK(ferry_mpsc_init(&r, mem, fp));
    uint8_t out[64];
    CHECK_OK(ferry_mpsc_write(&r, "a", 1));
    CHECK_RC(ferry_mpsc_read(&r, out, sizeof out), 1);
    uint64_t hole = atomic_fetch_add(&h->tail, 16); /* the dead producer's reservation */
    CHECK(hole == 16);
    CHECK_OK(ferry_mpsc_write(&r, "b", 1));
    uint64_t pos = 0;
    CHECK_RC(ferry_mpsc_stalled(&r, &pos), 1);
    CHECK(pos == 16);
    CHECK_RC(ferry_mpsc_read(&r, out, sizeof out), FERRY_EAGAIN);
    CHECK_RC(ferry_mpsc_read(&r, out, sizeof out), FERRY_EAGAIN);
    /* Had the producer only been slow, its commit unblocks the ring. */
    memcpy(data_of(mem) + 16 + 8, "zz", 2);
    atomic_store_explicit(word_at(mem, 16), FY_MPSC_COMMIT | 2, memory_order_release);
    CHECK_RC(ferry_mpsc_stalled(&r, &pos), 0);
    CHECK_RC(ferry_mpsc_read(&r, out, sizeof out), 2);
    CHECK_RC(ferry_mpsc_read(&r, out, sizeof out), 1);
    CHECK(out[0] == 'b');
    CHECK_RC(ferry_mpsc_stalled(&r, &pos), 0);
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
    const size_t cap = 256;
    size_t fp = ferry_mpsc_footprint(cap);
    ferry_segment *seg;
    ferry_segment_opts so = {.size = fp};
    CHECK_OK(ferry_segment_open(&seg, &so));
    void *mem = ferry_segment_base(seg);
    size_t size = ferry_segment_size(seg);
    CHECK_OK(ferry_mpsc_format(mem, size, cap));
    fy_mpsc_hdr *h = mem;
    ferry_mpsc c, p;
    uint8_t buf[128] = {0}, out[128];
    CHECK_RC(ferry_mpsc_wait_readable(NULL, 0), FERRY_EINVAL);
    CHECK_RC(ferry_mpsc_wait_writable(NULL, 0, 0), FERRY_EINVAL);
    ferry_mpsc_set_wait(NULL, NULL);
    CHECK_OK(ferry_mpsc_init(&c, mem, size));
    CHECK_OK(ferry_mpsc_init(&p, mem, size));
    ferry_mpsc_set_wait(&p, NULL);

    CHECK_RC(ferry_mpsc_wait_readable(&c, 0), FERRY_ETIMEDOUT);
    CHECK_RC(ferry_mpsc_wait_readable(&c, 5), FERRY_ETIMEDOUT);
    CHECK_RC(ferry_mpsc_wait_writable(&p, FERRY_MPSC_MAX_RECORD(cap) + 1, 0), FERRY_EMSGSIZE);
    CHECK_OK(ferry_mpsc_wait_writable(&p, FERRY_MPSC_MAX_RECORD(cap), 0));
    CHECK_OK(ferry_mpsc_write(&p, buf, 100)); /* 112 bytes */
    CHECK_OK(ferry_mpsc_wait_readable(&c, 0));
    CHECK_OK(ferry_mpsc_wait_writable(&p, 100, 0));
    CHECK_OK(ferry_mpsc_write(&p, buf, 100)); /* 224 bytes used, 32 free */
    CHECK_OK(ferry_mpsc_wait_writable(&p, 24, 0));
    CHECK_RC(ferry_mpsc_wait_writable(&p, 25, 0), FERRY_ETIMEDOUT);
    CHECK_RC(ferry_mpsc_wait_writable(&p, 25, 5), FERRY_ETIMEDOUT);
    CHECK_RC(ferry_mpsc_read(&c, out, sizeof out), 100);
    /* 144 free, of which 32 before the end: 100 bytes take 32 of padding + 112 = 144 (fits),
     * 105 bytes take 32 + 120 = 152 (does not), 24 bytes fit before the end. */
    CHECK_OK(ferry_mpsc_wait_writable(&p, 100, 0));
    CHECK_RC(ferry_mpsc_wait_writable(&p, 105, 0), FERRY_ETIMEDOUT);
    CHECK_OK(ferry_mpsc_wait_writable(&p, 24, 0));
    CHECK_RC(ferry_mpsc_read(&c, out, sizeof out), 100);

    /* The consumer process asleep on an empty ring is woken by a write; the writer's eventfd is
     * signalled because it woke a sleeper. */
    int efd = eventfd(0, EFD_NONBLOCK | EFD_CLOEXEC);
    CHECK(efd >= 0);
    ferry_wait_policy pol;
    ferry_wait_policy_init(&pol);
    pol.eventfd = efd;
    ferry_mpsc_set_wait(&p, &pol);
    pid_t pid = fork();
    CHECK(pid >= 0);
    if (pid == 0) {
        tu_deadline(60);
        CHECK_OK(ferry_mpsc_wait_readable(&c, 30000));
        CHECK_RC(ferry_mpsc_read(&c, out, sizeof out), 3);
        CHECK(memcmp(out, "xyz", 3) == 0);
        _exit(0);
    }
    await_sleeper(&h->readable);
    uint64_t ev = 0;
    CHECK(read(efd, &ev, sizeof ev) < 0);
    CHECK_OK(ferry_mpsc_write(&p, "xyz", 3));
    int status;
    CHECK(waitpid(pid, &status, 0) == pid);
    CHECK(WIFEXITED(status) && WEXITSTATUS(status) == 0);
    CHECK(read(efd, &ev, sizeof ev) == (ssize_t)sizeof ev && ev >= 1);
    /* The child consumed a record, our consumer endpoint did not see it: re-attach. */
    CHECK_OK(ferry_mpsc_init(&c, mem, size));
    CHECK_RC(ferry_mpsc_read(&c, out, sizeof out), FERRY_EAGAIN);

    /* A producer process asleep on a full ring is woken by a read. */
    CHECK_OK(ferry_mpsc_write(&p, buf, 100));
    CHECK_OK(ferry_mpsc_write(&p, buf, 100));
    CHECK_RC(ferry_mpsc_write(&p, buf, 100), FERRY_EAGAIN);
    pid = fork();
    CHECK(pid >= 0);
    if (pid == 0) {
        tu_deadline(60);
        ferry_mpsc w;
        CHECK_OK(ferry_mpsc_init(&w, mem, size));
        CHECK_OK(ferry_mpsc_wait_writable(&w, 60, 30000));
        CHECK_OK(ferry_mpsc_write(&w, "after", 5));
        _exit(0);
    }
    await_sleeper(&h->writable);
    CHECK_RC(ferry_mpsc_read(&c, out, sizeof out), 100);
    CHECK(waitpid(pid, &status, 0) == pid);
    CHECK(WIFEXITED(status) && WEXITSTATUS(status) == 0);
    CHECK_RC(ferry_mpsc_read(&c, out, sizeof out), 100);
    CHECK_RC(ferry_mpsc_read(&c, out, sizeof out), 5);
    CHECK(memcmp(out, "after", 5) == 0);

    /* A failed endpoint reports FERRY_EPROTO instead of waiting. */
    atomic_store(&h->capacity, 512);
    CHECK_RC(ferry_mpsc_wait_readable(&c, 1000), FERRY_EPROTO);
    CHECK_RC(ferry_mpsc_wait_writable(&p, 8, 1000), FERRY_EPROTO);
    close(efd);
    ferry_segment_close(seg);
}

/*
 * kill -9 of a producer process at a random point, repeatedly. Records are large (200 KiB), so
 * the producer spends most of its time copying between reservation and commit. Afterwards every
 * committed record must drain intact and in order, and then either the ring is empty (the shared
 * tail equals our head) or the head is stalled for good: ferry_mpsc_stalled reports the same
 * position again later and read keeps returning FERRY_EAGAIN.
 */
static void test_killed_producer(void)
{
#ifdef TEST_SANITIZED
    const size_t cap = 1u << 18, len = 50 * 1024;
#else
    const size_t cap = 1u << 20, len = 200 * 1024;
#endif
    size_t fp = ferry_mpsc_footprint(cap);
    uint8_t *out = malloc(len);
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
        CHECK_OK(ferry_mpsc_format(mem, size, cap));
        pid_t pid = fork();
        CHECK(pid >= 0);
        if (pid == 0) {
            tu_deadline(60);
            ferry_mpsc p;
            CHECK_OK(ferry_mpsc_init(&p, mem, size));
            uint8_t *msg = malloc(len);
            CHECK(msg);
            for (uint64_t seq = 0;; seq++) {
                memset(msg, (int)(seq & 0xff), len);
                memcpy(msg, &seq, sizeof seq);
                int rc;
                while ((rc = ferry_mpsc_write(&p, msg, len)) == FERRY_EAGAIN)
                    sched_yield();
                CHECK_OK(rc);
            }
        }
        ferry_mpsc c;
        CHECK_OK(ferry_mpsc_init(&c, mem, size));
        uint64_t next = 0, kill_after = 1 + (uint64_t)round * 3 % 7;
        uint64_t deadline = tu_now_ns() + 30ull * 1000000000u;
        bool killed = false;
        for (;;) {
            ssize_t n = ferry_mpsc_read(&c, out, len);
            if (n == FERRY_EAGAIN) {
                if (killed)
                    break;
                CHECK(tu_now_ns() < deadline);
                sched_yield();
                continue;
            }
            CHECK_RC(n, (long long)len);
            uint64_t seq;
            memcpy(&seq, out, sizeof seq);
            CHECK(seq == next);
            CHECK(out[len - 1] == (uint8_t)(seq & 0xff) && out[len / 2] == (uint8_t)(seq & 0xff));
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
        int st = ferry_mpsc_stalled(&c, &pos1);
        CHECK(st == 0 || st == 1);
        fy_mpsc_hdr *h = mem;
        if (st == 0) {
            CHECK(atomic_load(&h->tail) == c.head_);
        } else {
            stalls++;
            CHECK(pos1 == c.head_);
            CHECK_RC(ferry_mpsc_wait_readable(&c, 20), FERRY_ETIMEDOUT);
            CHECK_RC(ferry_mpsc_stalled(&c, &pos2), 1);
            CHECK(pos2 == pos1);
            CHECK_RC(ferry_mpsc_read(&c, out, len), FERRY_EAGAIN);
        }
        ferry_segment_close(seg);
    }
    fprintf(stderr, "killed producer: %d rounds, %d left a stalled head\n", rounds, stalls);
    free(out);
}

/* ---- hostile scribbler -------------------------------------------------------------------- */

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
    const size_t data0 = sizeof(fy_mpsc_hdr) / 8;
    while (!atomic_load_explicit(&a->stop, memory_order_relaxed)) {
        uint64_t r = xorshift(&a->rng);
        size_t idx;
        uint64_t v;
        switch (r & 3) {
        case 0:
            idx = (size_t)((r >> 8) % 3); /* shape line */
            v = atomic_load_explicit(&w[idx], memory_order_relaxed) + ((r >> 20) & 3) - 1;
            break;
        case 1:
            idx = (r >> 8) & 1 ? 16 : 32; /* tail / head */
            v = atomic_load_explicit(&w[idx], memory_order_relaxed) + ((r >> 20) & 63) - 31;
            break;
        default: /* record words: plausible headers as often as garbage */
            idx = data0 + (size_t)((r >> 8) % (a->words - data0));
            v = (r >> 30) & 1
                    ? FY_MPSC_COMMIT | ((r >> 31) & 1 ? FY_MPSC_PAD : 0) | ((r >> 40) & 511)
                    : xorshift(&a->rng);
            break;
        }
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
    fprintf(stderr, "hostile: skipped under TSan (the scribbler races with copies by design)\n");
#else
    const size_t cap = 512;
    size_t fp = ferry_mpsc_footprint(cap);
    void *mem = alloc_exact(fp);
    CHECK_OK(ferry_mpsc_format(mem, fp, cap));
    scribble_arg a = {.mem = mem, .words = fp / 8, .rng = tu_now_ns() | 1};
    atomic_init(&a.stop, false);
    pthread_t t;
    CHECK(pthread_create(&t, NULL, scribbler, &a) == 0);
    ferry_mpsc r;
    uint8_t buf[512] = {1, 2, 3}, out[512];
    uint64_t calls = 0, eproto = 0, ok = 0, deadline = tu_now_ns() + 20ull * 1000000000u;
    bool attached = false;
    while ((eproto < 50 || calls < 200000) && tu_now_ns() < deadline) {
        if (!attached) {
            int rc = ferry_mpsc_init(&r, mem, fp);
            CHECK(rc == 0 || rc == FERRY_EPROTO);
            if (rc != 0) {
                CHECK_OK(ferry_mpsc_format(mem, fp, cap));
                continue;
            }
            attached = true;
        }
        calls++;
        size_t len = calls % 200;
        int rc = ferry_mpsc_write(&r, buf, len);
        CHECK(rc == 0 || rc == FERRY_EAGAIN || rc == FERRY_EPROTO ||
              (rc == FERRY_EMSGSIZE && len > FERRY_MPSC_MAX_RECORD(r.cap_)));
        size_t rcap = calls % 3 == 0 ? 16 : sizeof out;
        ssize_t n = ferry_mpsc_read(&r, out, rcap);
        CHECK((n >= 0 && (size_t)n <= rcap) || n == FERRY_EAGAIN || n == FERRY_EPROTO ||
              n == FERRY_EMSGSIZE);
        uint64_t pos;
        int st = ferry_mpsc_stalled(&r, &pos);
        CHECK(st == 0 || st == 1 || st == FERRY_EPROTO);
        if (n >= 0)
            ok++;
        if (rc == FERRY_EPROTO || n == FERRY_EPROTO || st == FERRY_EPROTO) {
            eproto++;
            attached = false;
        }
    }
    atomic_store(&a.stop, true);
    CHECK(pthread_join(t, NULL) == 0);
    fprintf(stderr, "hostile: %llu calls, %llu reads ok, %llu EPROTO\n", (unsigned long long)calls,
            (unsigned long long)ok, (unsigned long long)eproto);
    CHECK(eproto > 0);
    free(mem);
#endif
}

/* ---- stress: 4 producers, 1 consumer ------------------------------------------------------ */

#define NPROD   4
#define MAXPAY  700
#define MSG_HDR 24

typedef struct stress_msg {
    uint32_t producer;
    uint32_t len;
    uint64_t seq;
    uint64_t sum;
    uint8_t payload[MAXPAY];
} stress_msg;

typedef struct stress_ctx {
    void *ring;
    size_t ring_size;
    uint64_t per_producer;
    int id;
    bool blocking; /* wait_readable/wait_writable instead of sched_yield on FERRY_EAGAIN */
    bool strong;   /* endpoints publish with full fences, as without membarrier registration */
} stress_ctx;

static uint64_t msg_sum(const stress_msg *m)
{
    uint64_t h = UINT64_C(1469598103934665603) ^ m->producer ^ (m->seq << 8) ^ m->len;
    for (uint32_t i = 0; i < m->len - MSG_HDR; i++)
        h = (h ^ m->payload[i]) * UINT64_C(1099511628211);
    return h;
}

static void produce(const stress_ctx *x)
{
    ferry_mpsc r;
    CHECK_OK(ferry_mpsc_init(&r, x->ring, x->ring_size));
    if (x->strong)
        r.strong_ = 1; /* exercise the full-fence publish (no membarrier) */
    uint64_t rng = (uint64_t)x->id * 104729 + 17;
    stress_msg m;
    for (uint64_t s = 0; s < x->per_producer; s++) {
        m.producer = (uint32_t)x->id;
        m.seq = s;
        /* Mostly small records, now and then a big one, so the wrap lands everywhere. */
        uint64_t x8 = xorshift(&rng);
        uint32_t pay = (uint32_t)((x8 & 15) == 0 ? (x8 >> 8) % (MAXPAY + 1) : (x8 >> 8) % 64);
        m.len = MSG_HDR + pay;
        for (uint32_t i = 0; i < pay; i++)
            m.payload[i] = (uint8_t)(xorshift(&rng) >> 24);
        m.sum = msg_sum(&m);
        int rc;
        while ((rc = ferry_mpsc_write(&r, &m, m.len)) == FERRY_EAGAIN) {
            if (!x->blocking) {
                sched_yield();
                continue;
            }
            /* The consumer reads until everything arrived, so room always comes: a time-out
             * here would be a lost wake-up. Other producers may take the room first. */
            CHECK_OK(ferry_mpsc_wait_writable(&r, m.len, 20000));
        }
        CHECK_OK(rc);
    }
}

static void consume(const stress_ctx *x)
{
    ferry_mpsc r;
    CHECK_OK(ferry_mpsc_init(&r, x->ring, x->ring_size));
    if (x->strong)
        r.strong_ = 1; /* exercise the full-fence publish (no membarrier) */
    uint64_t next[NPROD] = {0};
    uint64_t total = x->per_producer * NPROD;
    stress_msg m;
    for (uint64_t got = 0; got < total;) {
        ssize_t n = ferry_mpsc_read(&r, &m, sizeof m);
        if (n == FERRY_EAGAIN) {
            if (!x->blocking) {
                sched_yield();
                continue;
            }
            /* Producers keep writing until done, so a time-out would be a lost wake-up. */
            CHECK_OK(ferry_mpsc_wait_readable(&r, 20000));
            continue;
        }
        CHECK(n >= MSG_HDR && n <= (ssize_t)sizeof m);
        CHECK(m.len == (uint32_t)n);
        CHECK(m.producer < NPROD);
        /* Strict per-producer order: no loss, no duplicate, no reordering. */
        CHECK(m.seq == next[m.producer]);
        CHECK(m.sum == msg_sum(&m));
        next[m.producer]++;
        got++;
    }
    uint8_t extra[8];
    CHECK_RC(ferry_mpsc_read(&r, extra, sizeof extra), FERRY_EAGAIN);
    for (int i = 0; i < NPROD; i++)
        CHECK(next[i] == x->per_producer);
}

static void *produce_thread(void *p)
{
    produce(p);
    return NULL;
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

static void stress(bool processes, bool blocking, bool strong, uint64_t total_messages, size_t cap)
{
    uint64_t per = total_messages / NPROD;
    if (per == 0)
        per = 1;
    size_t fp = ferry_mpsc_footprint(cap);
    ferry_segment *seg;
    ferry_segment_opts so = {.size = fp};
    CHECK_OK(ferry_segment_open(&seg, &so));
    void *ring = ferry_segment_base(seg);
    size_t ring_size = ferry_segment_size(seg);
    CHECK(ring_size >= fp);
    CHECK_OK(ferry_mpsc_format(ring, ring_size, cap));
    stress_ctx ctx[NPROD + 1];
    for (int i = 0; i <= NPROD; i++)
        ctx[i] = (stress_ctx){.ring = ring,
                              .ring_size = ring_size,
                              .per_producer = per,
                              .id = i,
                              .blocking = blocking,
                              .strong = strong};
    uint64_t t0 = tu_now_ns();
    if (processes) {
        pid_t pids[NPROD + 1];
        for (int i = 0; i <= NPROD; i++) {
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
        for (int i = 0; i <= NPROD; i++) {
            int status;
            CHECK(waitpid(pids[i], &status, 0) == pids[i]);
            CHECK(WIFEXITED(status) && WEXITSTATUS(status) == 0);
        }
    } else {
        pthread_t th[NPROD];
        for (int i = 0; i < NPROD; i++)
            CHECK(pthread_create(&th[i], NULL, produce_thread, &ctx[i]) == 0);
        consume(&ctx[NPROD]);
        for (int i = 0; i < NPROD; i++)
            CHECK(pthread_join(th[i], NULL) == 0);
    }
    uint64_t dt = tu_now_ns() - t0;
    fy_mpsc_hdr *h = ring;
    CHECK(atomic_load(&h->head) == atomic_load(&h->tail));
    CHECK(all_zero(data_of(ring), cap));
    fprintf(stderr,
            "stress (%s, %s, %zu-byte ring): %llu messages, %d producers, 1 consumer, %.0f ms\n",
            processes ? "processes" : "threads",
            blocking ? (strong ? "blocking, full fences" : "blocking") : "polling", cap,
            (unsigned long long)(per * NPROD), NPROD, (double)dt / 1e6);
    ferry_segment_close(seg);
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
    test_basic();
    test_wrap_every_offset();
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
    stress(true, false, false, n, 65536);
    stress(true, false, false, n / 4, 2048); /* small ring: often full, wraps constantly */
    stress(true, true, false, n / 2, 4096);
    stress(true, true, true, n / 4, 4096);
    stress(false, false, false, n / 2, 4096);
    stress(false, true, false, n / 4, 2048);
    return 0;
}
