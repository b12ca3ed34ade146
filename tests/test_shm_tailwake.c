/*
 * test_shm_tailwake.c - the tail flush of an shm link resumes as soon as a stalled consumer reads
 * again, while the sender makes no call, across real processes.
 *
 * The sender (parent) fills its ring and queues SNDHWM more messages with DONTWAIT sends, then
 * makes no ferry call at all: its control thread owns the queued tail. The receiver (a forked
 * child) stalls for a while, then drains everything and checks order and content. The control
 * thread used to poll a full ring with a back-off growing to 25.6 ms, so after a long stall the
 * tail resumed up to that late; now it waits on the ring's writable word (eventfd) and the
 * consumer's first release wakes it. Asserted: every message arrives, in order, intact, while the
 * sender is idle; several rounds on one link (the watch is set up and torn down each time).
 * Printed, not asserted (timing): the receiver's longest wait for one message per round and the
 * sender's CPU time over the whole stall-and-drain.
 */
#include "testutil.h"

#include <ferry/ferry.h>

#include <string.h>
#include <sys/wait.h>
#include <time.h>
#include <unistd.h>

#define MSG_LEN 200
#define ROUNDS  4
#define SNDHWM  600

static void fill(unsigned char *buf, uint32_t seq)
{
    memcpy(buf, &seq, sizeof seq);
    for (size_t i = sizeof seq; i < MSG_LEN; i++)
        buf[i] = (unsigned char)(seq * 31u + i);
}

static void xwrite(int fd, const void *p, size_t n)
{
    CHECK(write(fd, p, n) == (ssize_t)n);
}

static void xread(int fd, void *p, size_t n)
{
    CHECK(read(fd, p, n) == (ssize_t)n);
}

/* Child: for each round, wait for the count, stall, drain, report the longest single wait. */
static int receiver(const char *url, int from_parent, int to_parent)
{
    ferry_socket *rx = tu_open_sock(FERRY_PULL);
    CHECK_OK(ferry_socket_setopt_int(rx, FERRY_OPT_SHM_RING_SIZE, 65536));
    CHECK_OK(ferry_socket_setopt_int(rx, FERRY_OPT_RCVHWM, SNDHWM));
    CHECK_OK(ferry_socket_bind(rx, url));
    xwrite(to_parent, "b", 1);
    uint32_t next = 0;
    for (int r = 0; r < ROUNDS; r++) {
        uint32_t n;
        xread(from_parent, &n, sizeof n);
        /* The stall: long enough for the old back-off to reach its 25.6 ms ceiling. */
        struct timespec ts = {0, 300000000};
        nanosleep(&ts, NULL);
        uint64_t max_wait = 0;
        unsigned char got[MSG_LEN + 1], want[MSG_LEN];
        for (uint32_t i = 0; i < n; i++, next++) {
            uint64_t t0 = tu_now_ns();
            ssize_t k = ferry_socket_recv(rx, got, sizeof got, 0, NULL);
            uint64_t w = tu_now_ns() - t0;
            max_wait = w > max_wait ? w : max_wait;
            if (k != MSG_LEN)
                fprintf(stderr, "round %d: message %u of %u: %s\n", r, i, n, tu_errname((int)k));
            CHECK_RC(k, MSG_LEN);
            fill(want, next);
            CHECK(memcmp(got, want, MSG_LEN) == 0);
        }
        CHECK_RC(ferry_socket_recv(rx, got, sizeof got, FERRY_DONTWAIT, NULL), FERRY_EAGAIN);
        xwrite(to_parent, &max_wait, sizeof max_wait);
    }
    ferry_socket_close(rx);
    return 0;
}

int main(void)
{
    tu_deadline(60);
    char url[256];
    snprintf(url, sizeof url, "shm://%s", tu_unique("tailwake"));
    int down[2], up[2];
    CHECK(pipe(down) == 0 && pipe(up) == 0);
    pid_t pid = fork();
    CHECK(pid >= 0);
    if (pid == 0) {
        close(down[1]);
        close(up[0]);
        _exit(receiver(url, down[0], up[1]));
    }
    close(down[0]);
    close(up[1]);
    char b;
    xread(up[0], &b, 1);

    ferry_socket *tx = tu_open_sock(FERRY_PUSH);
    CHECK_OK(ferry_socket_setopt_int(tx, FERRY_OPT_SHM_RING_SIZE, 65536));
    CHECK_OK(ferry_socket_setopt_int(tx, FERRY_OPT_SNDHWM, SNDHWM));
    CHECK_OK(ferry_socket_connect(tx, url));
    tu_wait_peers(tx, 1);
    ferry_stats st;
    CHECK_OK(ferry_socket_stats(tx, &st));
    CHECK(st.peers_shm == 1);

    uint32_t seq = 0;
    unsigned char buf[MSG_LEN];
    for (int r = 0; r < ROUNDS; r++) {
        /* Fill ring and queue: EAGAIN twice, 20 ms apart, means full (the ring may still be
         * taking what the first sends queued). */
        uint32_t n = 0;
        uint64_t end = tu_now_ns() + 20000000000ull;
        for (;;) {
            fill(buf, seq);
            int rc = ferry_socket_send(tx, buf, sizeof buf, FERRY_DONTWAIT);
            if (rc == FERRY_EAGAIN) {
                struct timespec ts = {0, 20000000};
                nanosleep(&ts, NULL);
                rc = ferry_socket_send(tx, buf, sizeof buf, FERRY_DONTWAIT);
                if (rc == FERRY_EAGAIN)
                    break;
            }
            CHECK_OK(rc);
            seq++;
            n++;
            CHECK(tu_now_ns() < end);
        }
        /* More than the ring holds: part of it is the tail only the control thread can send. */
        CHECK(n > 65536 / MSG_LEN + SNDHWM / 2);
        double c0 = tu_cpu_ms();
        xwrite(down[1], &n, sizeof n);
        uint64_t max_wait;
        xread(up[0], &max_wait, sizeof max_wait); /* no ferry call until the child is done */
        fprintf(stderr,
                "round %d: %u messages, all received; receiver's longest wait %.3f ms; sender "
                "CPU over the stall and drain %.1f ms\n",
                r, n, (double)max_wait / 1e6, tu_cpu_ms() - c0);
    }
    int status;
    CHECK(waitpid(pid, &status, 0) == pid);
    CHECK(WIFEXITED(status) && WEXITSTATUS(status) == 0);
    ferry_socket_close(tx);
    fprintf(stderr, "test_shm_tailwake: ok\n");
    return 0;
}
