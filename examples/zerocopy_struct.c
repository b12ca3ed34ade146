/*
 * zerocopy_struct.c - a C struct built in place inside the shared-memory ring
 * and read in place by the receiver: no copy anywhere between the two
 * processes.
 *
 * Sender: ferry_msg_loan(push, &m, sizeof(struct reading)) returns 1 when the
 * bytes of m ARE the space reserved in the peer's ring (the socket's only peer
 * is on shm:// or ipc:// upgraded); the struct is written there and
 * ferry_msg_send commits it in place. It returns 0 (an ordinary heap message,
 * written and sent the same way) when no copy-free path exists: no peer yet,
 * several peers, a TCP/libzmq peer, a frame too big for one ring record.
 * docs/shm.md "Zero-copy" lists every case.
 *
 * Receiver: with FERRY_OPT_ZEROCOPY_RECV, ferry_msg_recv hands out frames
 * larger than 40 bytes that still sit in the ring; ferry_msg_is_loaned says so,
 * and ferry_msg_fini gives the space back to the sender. The data is shared
 * memory the sender owns: read-only for us, and a hostile sender could change
 * it while we read, so validate what you read (read each field once).
 *
 * ferry_msg_init_data is the other zero-copy entry point (your buffer and a
 * free function; the shm transport copies it into the ring): shown for the
 * second message.
 *
 * Both sides must agree on the layout: fixed-width fields, explicit padding,
 * same endianness (fine on one host; across hosts, encode explicitly: see
 * zerocopy_msgpack.c).
 */
#define _POSIX_C_SOURCE 200809L /* fork, waitpid with -std=c11 */

#include <ferry/ferry.h>

#include <poll.h>
#include <stdint.h>
#include <stdio.h>
#include <stdlib.h>
#include <string.h>
#include <sys/wait.h>
#include <unistd.h>

#define CHECK(call)                                                                                \
    do {                                                                                           \
        int rc_ = (int)(call);                                                                     \
        if (rc_ < 0) {                                                                             \
            fprintf(stderr, "%s failed: %s\n", #call, ferry_strerror(rc_));                        \
            exit(1);                                                                               \
        }                                                                                          \
    } while (0)

struct reading {
    uint64_t timestamp_ns;
    uint32_t sensor_id;
    uint32_t flags;
    double celsius;
    double last_minutes[8]; /* makes it 104 bytes: frames up to 40 bytes are
                               always copied */
    char label[16];
};

static void free_reading(void *data, void *hint)
{
    (void)hint;
    free(data);
}

static int receiver(const char *url)
{
    ferry_socket *pull;
    CHECK(ferry_socket_open(&pull, FERRY_PULL));
    CHECK(ferry_socket_setopt_int(pull, FERRY_OPT_RCVTIMEO, 10000));
    CHECK(ferry_socket_setopt_int(pull, FERRY_OPT_ZEROCOPY_RECV, 1));
    CHECK(ferry_socket_bind(pull, url));
    ferry_msg m;
    ferry_msg_init(&m);
    for (uint32_t want = 7; want <= 8; want++) {
        CHECK(ferry_msg_recv(pull, &m, 0)); /* drops the previous frame first */
        /* Untrusted input: check the size, and the alignment before using it as a
         * struct. */
        const struct reading *r = ferry_msg_data(&m);
        if (ferry_msg_size(&m) != sizeof *r || (uintptr_t)r % _Alignof(struct reading) != 0)
            return 1;
        uint32_t id = r->sensor_id; /* read once: the sender owns this memory */
        printf("receiver: sensor %u says %.1f C (%.15s), %s\n", id, r->celsius, r->label,
               ferry_msg_is_loaned(&m) ? "read in place in the ring" : "a copy");
        if (id != want || !ferry_msg_is_loaned(&m))
            return 1;
    }
    ferry_msg_fini(&m);
    ferry_stats st;
    CHECK(ferry_socket_stats(pull, &st));
    ferry_socket_close(pull);
    return st.zc_recvs == 2 ? 0 : 1;
}

/* A loan needs the shm peer attached; wait (10 s at most) for it. */
static int wait_shm_peer(ferry_socket *s)
{
    for (int i = 0; i < 10000; i++) {
        ferry_stats st;
        CHECK(ferry_socket_stats(s, &st));
        if (st.peers_shm == 1)
            return 0;
        struct pollfd p = {.fd = ferry_socket_pollfd(s), .events = POLLIN};
        poll(&p, 1, 1);
    }
    return -1;
}

int main(void)
{
    char url[64];
    snprintf(url, sizeof url, "shm://example-zerocopy-%d", (int)getpid());
    pid_t child = fork(); /* before any socket */
    if (child < 0)
        return 1;
    if (child == 0) {
        int rc = receiver(url);
        fflush(stdout); /* _exit skips stdio: flush what the child printed */
        _exit(rc);
    }

    ferry_socket *push;
    CHECK(ferry_socket_open(&push, FERRY_PUSH));
    CHECK(ferry_socket_setopt_int(push, FERRY_OPT_SNDTIMEO, 10000));
    CHECK(ferry_socket_connect(push, url));
    if (wait_shm_peer(push) < 0)
        return 1;

    /* 1: the struct is built inside the peer's ring. */
    ferry_msg m;
    int loaned = ferry_msg_loan(push, &m, sizeof(struct reading));
    CHECK(loaned);
    struct reading *r = ferry_msg_data(&m);
    memset(r, 0, sizeof *r); /* no stray bytes (padding, label tail) reach the peer */
    r->timestamp_ns = 1;
    r->sensor_id = 7;
    r->celsius = 21.5;
    strcpy(r->label, "kitchen");
    CHECK(ferry_msg_send(push, &m, 0)); /* committed in place; m is empty now */

    /* 2: a buffer we allocated, handed over with its free function (copied into
     * the ring). */
    struct reading *own = calloc(1, sizeof *own);
    if (!own)
        return 1;
    own->sensor_id = 8;
    own->celsius = 4.0;
    strcpy(own->label, "fridge");
    CHECK(ferry_msg_init_data(&m, own, sizeof *own, free_reading, NULL));
    CHECK(ferry_msg_send(push, &m, 0)); /* ferry calls free_reading when done with it */

    ferry_stats st;
    CHECK(ferry_socket_stats(push, &st));
    printf("sender: loan %s, %llu frame(s) committed in place\n",
           loaned == 1 ? "was ring space" : "fell back to the heap",
           (unsigned long long)st.zc_sends);
    int status;
    waitpid(child, &status, 0); /* keep the socket open until the receiver has both */
    ferry_socket_close(push);
    if (loaned != 1 || st.zc_sends != 1)
        return 1;
    return WIFEXITED(status) ? WEXITSTATUS(status) : 1;
}
