/*
 * zerocopy_struct.c - sending a C struct without building it twice: the sender
 * asks ferry for a message of sizeof(struct reading) bytes and fills the struct
 * in place, in the message's own storage; the receiver reads the fields where
 * the received message holds them.
 *
 * Which copies happen (ferry 0.1, which has no ring "loan" API yet):
 *  - sender: none by the application. ferry_msg_init_size allocates the body
 * (inline in the ferry_msg up to 40 bytes, else one malloc), the struct is
 * written straight into it, and ferry_msg_send moves the body into the library
 * without copying it.
 *  - transport: one copy into the link: the shared-memory ring for shm:// (and
 * for ipc:// between two ferry processes), or the kernel socket buffer for
 * tcp:// and ipc:// to libzmq peers.
 *  - receiver: one copy out of the ring (or socket) into the received
 * ferry_msg; the struct is then read in place from ferry_msg_data, no further
 * copy. ferry_msg_init_data is the other zero-copy entry point: hand ferry a
 * buffer you allocated plus a free function, and ferry frees it when the
 * message is done (shown for the second message).
 *
 * Both sides must agree on the layout: fixed-width fields, explicit padding,
 * same endianness (fine on one host; across hosts, encode explicitly).
 */
#define _POSIX_C_SOURCE 200809L /* fork, waitpid, nanosleep with -std=c11 */

#include <ferry/ferry.h>

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
    CHECK(ferry_socket_bind(pull, url));
    ferry_msg m;
    ferry_msg_init(&m);
    for (uint32_t want = 7; want <= 8; want++) {
        CHECK(ferry_msg_recv(pull, &m, 0));
        /* Untrusted input: check the size, and the alignment before using it as a
         * struct (ferry's bodies are 8-byte aligned today, but the header does not
         * promise it). */
        const struct reading *r = ferry_msg_data(&m);
        if (ferry_msg_size(&m) != sizeof *r || (uintptr_t)r % _Alignof(struct reading) != 0)
            return 1;
        printf("receiver: sensor %u says %.1f C (%.15s)\n", r->sensor_id, r->celsius, r->label);
        if (r->sensor_id != want)
            return 1;
    }
    ferry_msg_fini(&m);
    ferry_socket_close(pull);
    return 0;
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

    /* 1: the struct is built inside the message. */
    ferry_msg m;
    CHECK(ferry_msg_init_size(&m, sizeof(struct reading)));
    struct reading *r = ferry_msg_data(&m);
    memset(r, 0, sizeof *r); /* no stray bytes (padding, label tail) leave the process */
    r->timestamp_ns = 1;
    r->sensor_id = 7;
    r->celsius = 21.5;
    strcpy(r->label, "kitchen");
    CHECK(ferry_msg_send(push, &m, 0)); /* m is empty now; the body belongs to ferry */

    /* 2: a buffer we allocated, handed over with its free function. */
    struct reading *own = calloc(1, sizeof *own);
    if (!own)
        return 1;
    own->sensor_id = 8;
    own->celsius = 4.0;
    strcpy(own->label, "fridge");
    CHECK(ferry_msg_init_data(&m, own, sizeof *own, free_reading, NULL));
    CHECK(ferry_msg_send(push, &m, 0)); /* ferry calls free_reading when done with it */

    int status;
    waitpid(child, &status, 0); /* keep the socket open until the receiver has both */
    ferry_socket_close(push);
    return WIFEXITED(status) ? WEXITSTATUS(status) : 1;
}
