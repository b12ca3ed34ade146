/*
 * bench_loop.c - the measuring loops every message-shaped transport shares, and the payload rules.
 *
 * Keeping one rtt loop, one thr loop, one idle loop and one fan-out loop for kernel sockets,
 * libzmq, nng and ferry sockets means the numbers differ only by the transport, never by how they
 * were taken.
 *  - Payload: the producer writes every byte of every message (bench_fill), the consumer reads
 *    every byte (bench_touch sums it 64 bytes per step) and checks the first byte's sequence stamp.
 *  - End of a run without an in-band marker: role 0 decides when to stop (its clock), stores the
 *    total message count in the control page BEFORE sending the last message, and role 1 stops
 *    after that many. The store happens-before the send, so the receiver always sees it in time.
 *  - thr is measured on the consumer's side: from the first message received after the warm-up
 *    interval to the last message, so backlog drained after the producer stops still counts.
 */
#include "bench.h"

#include <errno.h>
#include <stdarg.h>
#include <stdio.h>
#include <string.h>
#include <sys/mman.h>
#include <sys/resource.h>
#include <time.h>
#include <unistd.h>

volatile uint64_t bench_sink;

uint64_t bench_now_ns(void)
{
    struct timespec ts;
    clock_gettime(CLOCK_MONOTONIC, &ts);
    return (uint64_t)ts.tv_sec * 1000000000ull + (uint64_t)ts.tv_nsec;
}

int bench_fail(bench_job *j, const char *fmt, ...)
{
    if (j->err && !j->err[0]) { /* keep the first (root) cause */
        va_list ap;
        va_start(ap, fmt);
        vsnprintf(j->err, sizeof j->ctl->res[0].err, fmt, ap);
        va_end(ap);
    }
    return -1;
}

int bench_await(_Atomic int *flag, double seconds)
{
    /* Spin briefly, then sleep in short steps: a waiter must not steal the CPU its own peer's
     * helper threads (libzmq's I/O thread, pinned alongside) need to finish. */
    uint64_t end = bench_now_ns() + (uint64_t)(seconds * 1e9);
    for (unsigned n = 0; !atomic_load_explicit(flag, memory_order_acquire); n++) {
        if (n < 2000)
            continue;
        if (bench_now_ns() > end)
            return -1;
        struct timespec ts = {0, 20000};
        nanosleep(&ts, NULL);
    }
    return 0;
}

void *bench_buf(size_t len)
{
    size_t l = len ? len : 1;
    void *p = mmap(NULL, l, PROT_READ | PROT_WRITE, MAP_PRIVATE | MAP_ANONYMOUS, -1, 0);
    if (p == MAP_FAILED)
        return NULL;
    memset(p, 0, l); /* fault every page in now, not inside the measured loop */
    return p;
}

void bench_buf_free(void *p, size_t len)
{
    if (p)
        munmap(p, len ? len : 1);
}

/* How many messages between two clock reads: often enough for ~1 ms precision, rarely enough
 * that the clock does not dominate small messages. */
static uint64_t bench_clock_mask(size_t size)
{
    return size >= 4096 ? 0 : size >= 256 ? 7 : 63;
}

static int msg_rtt(bench_job *j, int role, const bench_msg_ops *ops, void *h, void *buf)
{
    bench_ctl *c = j->ctl;
    size_t size = j->size;
    if (role == 1) {
        for (uint64_t r = 1;; r++) {
            long n = ops->recv(h, buf, size);
            if (n < 0)
                return bench_fail(j, "recv of ping %llu failed", (unsigned long long)r);
            if ((size_t)n != size || !bench_check(buf, size, r))
                return bench_fail(j, "ping %llu: wrong length %ld or payload",
                                  (unsigned long long)r, n);
            bench_sink += bench_touch(buf, size);
            bench_fill(buf, size, r);
            if (ops->send(h, buf, size) < 0)
                return bench_fail(j, "send of pong %llu failed", (unsigned long long)r);
            atomic_store_explicit(&c->progress[1].n, r, memory_order_relaxed);
            if (r >= atomic_load_explicit(&c->total, memory_order_acquire))
                return 0;
        }
    }
    uint64_t start = bench_now_ns();
    uint64_t warm_end = start + (uint64_t)(j->cfg->warmup * 1e9);
    uint64_t end = warm_end + (uint64_t)(j->cfg->seconds * 1e9);
    uint64_t prev = start;
    for (uint64_t r = 1;; r++) {
        bool last =
            prev >= end && (c->hist.count >= BENCH_MIN_RTT || prev >= end + 4 * (end - warm_end));
        if (last)
            atomic_store_explicit(&c->total, r, memory_order_seq_cst);
        bench_fill(buf, size, r);
        if (ops->send(h, buf, size) < 0)
            return bench_fail(j, "send of ping %llu failed", (unsigned long long)r);
        long n = ops->recv(h, buf, size);
        if (n < 0)
            return bench_fail(j, "recv of pong %llu failed", (unsigned long long)r);
        if ((size_t)n != size || !bench_check(buf, size, r))
            return bench_fail(j, "pong %llu: wrong length %ld or payload", (unsigned long long)r,
                              n);
        bench_sink += bench_touch(buf, size);
        atomic_store_explicit(&c->progress[0].n, r, memory_order_relaxed);
        bench_rtt_mark(c, &prev, warm_end);
        if (last)
            break;
    }
    return bench_rtt_done(c, prev, warm_end);
}

static int msg_thr(bench_job *j, int role, const bench_msg_ops *ops, void *h, void *buf)
{
    bench_ctl *c = j->ctl;
    size_t size = j->size;
    uint64_t mask = bench_clock_mask(size);
    if (role == 0) {
        uint64_t end = bench_now_ns() + (uint64_t)((j->cfg->warmup + j->cfg->seconds) * 1e9);
        for (uint64_t i = 1;; i++) {
            bool last = i >= BENCH_MIN_MSGS && (i & mask) == 0 && bench_now_ns() >= end;
            if (last)
                atomic_store_explicit(&c->total, i, memory_order_seq_cst);
            bench_fill(buf, size, i);
            if (ops->send(h, buf, size) < 0)
                return bench_fail(j, "send of message %llu failed", (unsigned long long)i);
            if ((i & mask) == 0)
                atomic_store_explicit(&c->progress[0].n, i, memory_order_relaxed);
            if (last)
                return 0;
        }
    }
    uint64_t warm = (uint64_t)(j->cfg->warmup * 1e9);
    uint64_t t_first = 0, t0 = 0, k0 = 0, sum = 0;
    for (uint64_t i = 1;; i++) {
        long n = ops->recv(h, buf, size);
        if (n < 0)
            return bench_fail(j, "recv of message %llu failed", (unsigned long long)i);
        if ((size_t)n != size || !bench_check(buf, size, i))
            return bench_fail(j, "message %llu: wrong length %ld or payload (lost or reordered)",
                              (unsigned long long)i, n);
        sum += bench_touch(buf, size);
        if ((i & mask) == 0)
            atomic_store_explicit(&c->progress[1].n, i, memory_order_relaxed);
        if (i == 1) {
            t_first = bench_now_ns();
        } else if (!k0 && (i & mask) == 0 && bench_now_ns() >= t_first + warm) {
            k0 = i;
            t0 = bench_now_ns();
        }
        if (i >= atomic_load_explicit(&c->total, memory_order_acquire)) {
            uint64_t t1 = bench_now_ns();
            if (!k0 || i - k0 < BENCH_MIN_MSGS / 2) { /* (nearly) all of it was warm-up */
                k0 = 1;
                t0 = t_first;
            }
            bench_sink += sum;
            c->res[1].count = i - k0;
            c->res[1].ns = t1 - t0;
            c->res[1].bytes = (i - k0) * size;
            return 0;
        }
    }
}

static double bench_cpu_ns(void)
{
    struct rusage ru;
    getrusage(RUSAGE_SELF, &ru);
    return (double)(ru.ru_utime.tv_sec + ru.ru_stime.tv_sec) * 1e9 +
           (double)(ru.ru_utime.tv_usec + ru.ru_stime.tv_usec) * 1e3;
}

/* Role 1 blocks in recv for a second: its CPU use over that second, then how late the first
 * message arrives (one-way, both sides read the same system-wide CLOCK_MONOTONIC). */
static int msg_idle(bench_job *j, int role, const bench_msg_ops *ops, void *h, void *buf)
{
    bench_ctl *c = j->ctl;
    size_t size = j->size;
    if (role == 0) {
        bench_fill(buf, size, 1);
        if (ops->send(h, buf, size) < 0)
            return bench_fail(j, "send of the connect message failed");
        if (bench_await(&c->go, 10.0) < 0)
            return bench_fail(j, "receiver never armed");
        struct timespec ts = {1, 0};
        while (nanosleep(&ts, &ts) != 0 && errno == EINTR)
            ;
        bench_fill(buf, size, 2);
        atomic_store_explicit(&c->stamp, bench_now_ns(), memory_order_seq_cst);
        if (ops->send(h, buf, size) < 0)
            return bench_fail(j, "send of the cold message failed");
        return 0;
    }
    long n = ops->recv(h, buf, size);
    if (n < 0 || (size_t)n != size)
        return bench_fail(j, "recv of the connect message failed");
    double cpu0 = bench_cpu_ns();
    uint64_t t0 = bench_now_ns();
    atomic_store_explicit(&c->go, 1, memory_order_release);
    n = ops->recv(h, buf, size);
    uint64_t t1 = bench_now_ns();
    double cpu1 = bench_cpu_ns();
    if (n < 0 || (size_t)n != size || !bench_check(buf, size, 2))
        return bench_fail(j, "recv of the cold message failed");
    bench_sink += bench_touch(buf, size);
    uint64_t stamp = atomic_load_explicit(&c->stamp, memory_order_acquire);
    c->res[1].cold_ns = stamp && t1 > stamp ? (double)(t1 - stamp) : 0.0;
    c->res[1].idle_cpu = 100.0 * (cpu1 - cpu0) / (double)(t1 - t0);
    c->res[1].count = 1;
    return 0;
}

/*
 * Fan-out: role 0 publishes, roles 1..subs subscribe to everything. PUB never blocks (it drops at a
 * subscriber's high-water mark), so the stream's end cannot be a message count: the publisher
 * raises `go` when it is done and a subscriber stops after a receive timeout that follows it. Each
 * subscriber's rate is taken over its own window, from the first clock read after the warm-up to
 * the last clock read (every few messages, as in thr).
 */
static int msg_fan(bench_job *j, int role, const bench_msg_ops *ops, void *h, void *buf)
{
    bench_ctl *c = j->ctl;
    size_t size = j->size;
    uint64_t mask = bench_clock_mask(size);
    if (role == 0) {
        for (int k = 1; k <= j->subs; k++)
            if (bench_await(&c->ready[k], 20.0) < 0)
                return bench_fail(j, "subscriber %d never connected", k);
        /* Subscriptions reach a publisher asynchronously (the "slow joiner"): publish probes
         * until every subscriber has received one, then the measured stream. */
        uint64_t sent = 0, give_up = bench_now_ns() + 10000000000ull;
        for (;;) {
            bool all = true;
            for (int k = 1; k <= j->subs; k++)
                all &= atomic_load_explicit(&c->joined[k], memory_order_acquire) != 0;
            if (all)
                break;
            if (bench_now_ns() > give_up)
                return bench_fail(j, "a subscriber received nothing for 10 s");
            bench_fill(buf, size, 0);
            if (ops->send(h, buf, size) < 0)
                return bench_fail(j, "send of a probe failed");
            sent++;
            struct timespec ts = {0, 1000000};
            nanosleep(&ts, NULL);
        }
        uint64_t start = bench_now_ns(), now = start;
        uint64_t end = start + (uint64_t)((j->cfg->warmup + j->cfg->seconds) * 1e9), i = 1;
        for (;; i++) {
            if ((i & mask) == 0 && (now = bench_now_ns()) >= end)
                break;
            bench_fill(buf, size, i);
            if (ops->send(h, buf, size) < 0)
                return bench_fail(j, "send of message %llu failed", (unsigned long long)i);
        }
        c->res[0].count = i - 1;
        c->res[0].ns = now - start;
        c->res[0].all = sent + i - 1;
        atomic_store_explicit(&c->go, 1, memory_order_release);
        return 0;
    }
    if (ops->set_rcvtimeo(h, 20) < 0)
        return -1;
    atomic_store_explicit(&c->ready[role], 1, memory_order_release);
    uint64_t warm = (uint64_t)(j->cfg->warmup * 1e9);
    uint64_t n = 0, t_first = 0, k0 = 0, t0 = 0, k_last = 0, t_last = 0, sum = 0;
    uint64_t heard = bench_now_ns();
    for (;;) {
        long r = ops->recv(h, buf, size);
        if (r == BENCH_TIMEDOUT) {
            if (atomic_load_explicit(&c->go, memory_order_acquire))
                break;
            if (bench_now_ns() - heard > 15000000000ull)
                return bench_fail(j, "no message for 15 s");
            continue;
        }
        if (r < 0)
            return bench_fail(j, "recv failed after %llu messages", (unsigned long long)n);
        if ((size_t)r != size)
            return bench_fail(j, "message %llu: wrong length %ld", (unsigned long long)n + 1, r);
        sum += bench_touch(buf, size);
        n++;
        if (n == 1) {
            t_first = heard = bench_now_ns();
            atomic_store_explicit(&c->joined[role], 1, memory_order_release);
        } else if ((n & mask) == 0) {
            uint64_t now = heard = bench_now_ns();
            if (!k0 && now >= t_first + warm) {
                k0 = n;
                t0 = now;
            }
            k_last = n;
            t_last = now;
        }
    }
    bench_sink += sum;
    if (!k0 || k_last < k0 + BENCH_MIN_MSGS / 2) { /* (nearly) all of it was warm-up */
        k0 = 1;
        t0 = t_first;
    }
    if (k_last <= k0 || t_last <= t0)
        return bench_fail(j, "only %llu messages arrived", (unsigned long long)n);
    c->res[role].count = k_last - k0;
    c->res[role].ns = t_last - t0;
    c->res[role].all = n;
    return 0;
}

int bench_msg_run(bench_job *j, int role)
{
    const bench_msg_ops *ops = j->tr->ops;
    void *h = NULL;
    void *buf = bench_buf(j->size);
    if (!buf)
        return bench_fail(j, "out of memory for a %zu-byte buffer", j->size);
    int rc = ops->open(j, role, &h);
    if (rc == 0) {
        if (j->mode == BENCH_RTT)
            rc = msg_rtt(j, role, ops, h, buf);
        else if (j->mode == BENCH_THR)
            rc = msg_thr(j, role, ops, h, buf);
        else if (j->mode == BENCH_IDLE)
            rc = msg_idle(j, role, ops, h, buf);
        else
            rc = msg_fan(j, role, ops, h, buf);
        /* Closing a libzmq socket (linger 0) discards messages still queued in its I/O thread,
         * so neither side closes before the other has finished: then every message it sent has
         * been received (rtt: role 0 got the last pong; thr and idle: role 1 got the last
         * message). A failed side finishes too, and the supervisor kills a peer stuck in recv. */
        atomic_store_explicit(&j->ctl->finished[role], 1, memory_order_release);
        int first = role == 0 ? 1 : 0, last = role == 0 ? (j->mode == BENCH_FAN ? j->subs : 1) : 0;
        for (int k = first; rc == 0 && k <= last; k++)
            if (bench_await(&j->ctl->finished[k], 30.0) < 0)
                rc = bench_fail(j, "peer did not finish");
        ops->close(h);
    }
    bench_buf_free(buf, j->size);
    return rc;
}
