/*
 * test_transport_large.c - large frames over ipc:// and tcp:// stream links, between two
 * processes, with the reused body blocks of both sides under watch.
 *
 * The stream engine reads bodies above 32 KiB straight into their own block (grown as bytes
 * arrive, or taken from the socket's pool of released blocks), and ferry_socket_send copies
 * large buffers into pooled blocks that the engine may still have queued. So the test checks:
 *  - every size around the engine's boundaries (inline 40 B, cached 8 KiB, read buffer 32/64 KiB,
 *    first large allocation 256 KiB, 1 MiB, 3 MiB), each behind a small frame of varying length
 *    so large headers land at different offsets of the 64 KiB read buffer, arrives whole;
 *  - multipart messages mixing 1 MiB, 33 KiB and empty frames keep their frames and MORE flags;
 *  - a receiver holding large frames (ferry_msg_recv) never sees them overwritten by later
 *    frames, more than the pool has slots;
 *  - a sender that queues many large messages in user space (the receiver does not read until
 *    the sender is done) from one buffer it rewrites after each send delivers every message as
 *    it was at its send: a queued block is never reused.
 */
#include "ferry/ferry.h"
#include "testutil.h"

#include <errno.h>
#include <stdbool.h>
#include <stdint.h>
#include <stdio.h>
#include <stdlib.h>
#include <string.h>
#include <sys/wait.h>
#include <unistd.h>

#define MIB (1024u * 1024u)

static const size_t sizes[] = {0,      1,      40,      41,    255,     256,        8191,  8192,
                               8193,   32767,  32768,   32769, 65535,   65536,      65537, 262143,
                               262144, 262145, MIB - 1, MIB,   MIB + 1, 3 * MIB + 5};
#define NSIZES (sizeof sizes / sizeof sizes[0])
#define HELD   7  /* large frames held at once (more than the pool's slots) */
#define QUEUED 24 /* large messages queued by the sender before the receiver reads */

static uint8_t body_byte(uint64_t seq, size_t i)
{
    return (uint8_t)(seq * 131 + i * 7 + (i >> 12));
}

static void fill(uint8_t *b, uint64_t seq, size_t len)
{
    for (size_t i = 0; i < len; i++)
        b[i] = body_byte(seq, i);
}

static void check_body(const uint8_t *b, uint64_t seq, size_t len)
{
    for (size_t i = 0; i < len; i++) {
        if (b[i] != body_byte(seq, i)) {
            fprintf(stderr, "frame %llu (%zu B): byte %zu is %u, expected %u\n",
                    (unsigned long long)seq, len, i, b[i], body_byte(seq, i));
            exit(1);
        }
    }
}

static void send_frame(ferry_socket *s, uint8_t *buf, uint64_t seq, size_t len, bool more)
{
    fill(buf, seq, len);
    CHECK_OK(ferry_socket_send(s, buf, len, more ? FERRY_MORE : 0));
}

/* The sender's side (child process). */
static void run_sender(const char *url, int go_fd, int done_fd)
{
    ferry_socket *s;
    CHECK_OK(ferry_socket_open(&s, FERRY_PUSH));
    CHECK_OK(ferry_socket_setopt_int(s, FERRY_OPT_SHM_UPGRADE, 0));
    CHECK_OK(ferry_socket_setopt_int(s, FERRY_OPT_LINGER, -1));
    CHECK_OK(ferry_socket_connect(s, url));
    uint8_t *buf = malloc(3 * MIB + 5);
    CHECK(buf);
    uint64_t seq = 0;
    /* 1. Every size, each behind a small frame of its own length. */
    for (size_t i = 0; i < NSIZES; i++) {
        send_frame(s, buf, seq++, 1 + i * 37, false);
        send_frame(s, buf, seq++, sizes[i], false);
    }
    /* 2. Multipart messages, twice (the second time the receiver's pool has blocks). */
    for (int r = 0; r < 2; r++) {
        send_frame(s, buf, seq++, MIB, true);
        send_frame(s, buf, seq++, 33 * 1024, true);
        send_frame(s, buf, seq++, 0, true);
        send_frame(s, buf, seq++, MIB + 7, false);
    }
    /* 3. Large frames the receiver holds all at once. */
    for (int i = 0; i < HELD; i++)
        send_frame(s, buf, seq++, MIB - (size_t)i * 4096, false);
    /* 4. Queued in user space: the receiver reads only after the sender is told all went in. */
    char c = 0;
    CHECK(read(go_fd, &c, 1) == 1);
    for (int i = 0; i < QUEUED; i++)
        send_frame(s, buf, seq++, i % 3 == 2 ? 200 * 1024 : MIB, false);
    CHECK(write(done_fd, "q", 1) == 1);
    free(buf);
    ferry_socket_close(s); /* LINGER -1: delivers everything queued */
}

static void recv_check(ferry_socket *s, uint8_t *buf, size_t cap, uint64_t seq, size_t len,
                       bool more)
{
    int m = -1;
    ssize_t n = ferry_socket_recv(s, buf, cap, 0, &m);
    if (n != (ssize_t)len) {
        fprintf(stderr, "frame %llu: got %zd bytes, expected %zu\n", (unsigned long long)seq, n,
                len);
        exit(1);
    }
    CHECK(m == (more ? 1 : 0));
    check_body(buf, seq, len);
}

/* A sender child, forked before any socket exists in this process (a fork after the library
 * started its control thread would leave the child a half-copied library, and TSan refuses
 * it): it waits for the first byte on start before it opens its socket. */
typedef struct sender {
    pid_t pid;
    int start, go, done; /* parent's ends */
} sender;

static void sender_spawn(sender *c, const char *url)
{
    int st[2], go[2], done[2];
    CHECK(pipe(st) == 0 && pipe(go) == 0 && pipe(done) == 0);
    c->pid = fork();
    CHECK(c->pid >= 0);
    if (c->pid == 0) {
        close(st[1]);
        close(go[1]);
        close(done[0]);
        char b = 0;
        if (read(st[0], &b, 1) != 1)
            _exit(0); /* the parent gave up */
        run_sender(url, go[0], done[1]);
        _exit(0);
    }
    close(st[0]);
    close(go[0]);
    close(done[1]);
    c->start = st[1];
    c->go = go[1];
    c->done = done[0];
}

static void run(const char *url, sender *c)
{
    ferry_socket *s;
    pid_t pid = c->pid;
    CHECK_OK(ferry_socket_open(&s, FERRY_PULL));
    CHECK_OK(ferry_socket_setopt_int(s, FERRY_OPT_SHM_UPGRADE, 0));
    CHECK_OK(ferry_socket_setopt_int(s, FERRY_OPT_RCVTIMEO, 20000));
    CHECK_OK(ferry_socket_bind(s, url));
    CHECK(write(c->start, "s", 1) == 1); /* the child connects (retrying) once started */
    size_t cap = 3 * MIB + 64;
    uint8_t *buf = malloc(cap);
    CHECK(buf);
    uint64_t seq = 0;
    for (size_t i = 0; i < NSIZES; i++) {
        recv_check(s, buf, cap, seq, 1 + i * 37, false);
        seq++;
        /* Alternate the two receive calls: a pooled block handed to the application. */
        if (i % 2) {
            recv_check(s, buf, cap, seq, sizes[i], false);
        } else {
            ferry_msg m;
            ferry_msg_init(&m);
            CHECK_OK(ferry_msg_recv(s, &m, 0));
            CHECK(ferry_msg_size(&m) == sizes[i]);
            CHECK(!ferry_msg_more(&m));
            check_body(ferry_msg_data(&m), seq, sizes[i]);
            ferry_msg_fini(&m);
        }
        seq++;
    }
    for (int r = 0; r < 2; r++) {
        recv_check(s, buf, cap, seq, MIB, true);
        seq++;
        recv_check(s, buf, cap, seq, 33 * 1024, true);
        seq++;
        recv_check(s, buf, cap, seq, 0, true);
        seq++;
        recv_check(s, buf, cap, seq, MIB + 7, false);
        seq++;
    }
    ferry_msg held[HELD];
    uint64_t held_seq = seq;
    for (int i = 0; i < HELD; i++) {
        ferry_msg_init(&held[i]);
        CHECK_OK(ferry_msg_recv(s, &held[i], 0));
        CHECK(ferry_msg_size(&held[i]) == MIB - (size_t)i * 4096);
        seq++;
    }
    for (int i = 0; i < HELD; i++) {
        check_body(ferry_msg_data(&held[i]), held_seq + (uint64_t)i, MIB - (size_t)i * 4096);
        ferry_msg_fini(&held[i]);
    }
    CHECK(write(c->go, "g", 1) == 1);
    char b = 0;
    CHECK(read(c->done, &b, 1) == 1); /* every queued message was accepted by the sender */
    for (int i = 0; i < QUEUED; i++) {
        recv_check(s, buf, cap, seq, i % 3 == 2 ? 200 * 1024 : MIB, false);
        seq++;
    }
    int st = 0;
    CHECK(waitpid(pid, &st, 0) == pid);
    CHECK(WIFEXITED(st) && WEXITSTATUS(st) == 0);
    ferry_stats stats;
    CHECK_OK(ferry_socket_stats(s, &stats));
    CHECK(stats.msgs_in == NSIZES * 2 + 2 + HELD + QUEUED);
    free(buf);
    close(c->start);
    close(c->go);
    close(c->done);
    ferry_socket_close(s);
}

int main(void)
{
    tu_deadline(120);
    char ipc[300], tcp[300];
    snprintf(ipc, sizeof ipc, "ipc://%s/%s", tu_tmpdir(), tu_unique("large"));
    snprintf(tcp, sizeof tcp, "tcp://127.0.0.1:%d", tu_free_port());
    sender c[2];
    sender_spawn(&c[0], ipc);
    sender_spawn(&c[1], tcp);
    run(ipc, &c[0]);
    run(tcp, &c[1]);
    return 0;
}
