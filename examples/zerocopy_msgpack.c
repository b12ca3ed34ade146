/*
 * zerocopy_msgpack.c - a msgpack-c document packed straight into the
 * shared-memory ring and unpacked where it lies: the portable-encoding sibling
 * of zerocopy_struct.c.
 *
 * The final size of a msgpack document is known only once it is written, so the
 * sender loans an upper bound (ferry_msg_loan), points a msgpack_packer at that
 * ring space through a small write callback, and trims the message to what was
 * written (ferry_msg_trim) before ferry_msg_send commits it in place: no
 * sbuffer, no copy. The receiver (FERRY_OPT_ZEROCOPY_RECV) unpacks from the
 * ring; msgpack_unpack keeps strings as references into the buffer, so they are
 * valid until the message is dropped. msgpack_unpack validates the encoding,
 * which matters here: the sender owns that memory and is untrusted.
 */
#define _POSIX_C_SOURCE 200809L /* fork, waitpid with -std=c11 */

#include <ferry/ferry.h>
#include <msgpack.h>

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

#define DOC_MAX 4096 /* upper bound of one document */

/* Where the packer writes: the loaned bytes. */
typedef struct cursor {
    uint8_t *p;
    size_t len, cap;
} cursor;

static int cursor_write(void *data, const char *buf, size_t len)
{
    cursor *c = data;
    if (len > c->cap - c->len)
        return -1; /* the document outgrew the loan */
    memcpy(c->p + c->len, buf, len);
    c->len += len;
    return 0;
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
    CHECK(ferry_msg_recv(pull, &m, 0));
    int ok = ferry_msg_is_loaned(&m);
    msgpack_unpacked u;
    msgpack_unpacked_init(&u);
    size_t off = 0;
    if (msgpack_unpack_next(&u, ferry_msg_data(&m), ferry_msg_size(&m), &off) !=
            MSGPACK_UNPACK_SUCCESS ||
        off != ferry_msg_size(&m) || u.data.type != MSGPACK_OBJECT_MAP)
        ok = 0;
    /* Look the fields up by key; anything unexpected is rejected. */
    int64_t sensor = -1;
    double celsius = 0;
    const char *label = NULL;
    uint32_t label_len = 0, history = 0;
    for (uint32_t i = 0; ok && i < u.data.via.map.size; i++) {
        const msgpack_object_kv *kv = &u.data.via.map.ptr[i];
        if (kv->key.type != MSGPACK_OBJECT_STR) {
            ok = 0;
            break;
        }
        const msgpack_object_str *k = &kv->key.via.str;
        if (k->size == 6 && !memcmp(k->ptr, "sensor", 6) &&
            kv->val.type == MSGPACK_OBJECT_POSITIVE_INTEGER)
            sensor = (int64_t)kv->val.via.u64;
        else if (k->size == 7 && !memcmp(k->ptr, "celsius", 7) &&
                 kv->val.type == MSGPACK_OBJECT_FLOAT64)
            celsius = kv->val.via.f64;
        else if (k->size == 5 && !memcmp(k->ptr, "label", 5) &&
                 kv->val.type == MSGPACK_OBJECT_STR) {
            label = kv->val.via.str.ptr; /* points into the ring: valid until the fini below */
            label_len = kv->val.via.str.size;
        } else if (k->size == 7 && !memcmp(k->ptr, "history", 7) &&
                   kv->val.type == MSGPACK_OBJECT_ARRAY)
            history = kv->val.via.array.size;
    }
    if (ok && label)
        printf("receiver: sensor %lld says %.1f C (%.*s), unpacked in place in the "
               "ring\n",
               (long long)sensor, celsius, (int)label_len, label);
    ok = ok && sensor == 7 && label_len == 7 && !memcmp(label, "kitchen", 7) && history == 8;
    msgpack_unpacked_destroy(&u);
    ferry_msg_fini(&m); /* the ring space goes back to the sender */
    ferry_socket_close(pull);
    return ok ? 0 : 1;
}

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
    snprintf(url, sizeof url, "shm://example-msgpack-%d", (int)getpid());
    pid_t child = fork(); /* before any socket */
    if (child < 0)
        return 1;
    if (child == 0) {
        int rc = receiver(url);
        fflush(stdout);
        _exit(rc);
    }

    ferry_socket *push;
    CHECK(ferry_socket_open(&push, FERRY_PUSH));
    CHECK(ferry_socket_setopt_int(push, FERRY_OPT_SNDTIMEO, 10000));
    CHECK(ferry_socket_connect(push, url));
    if (wait_shm_peer(push) < 0)
        return 1;

    ferry_msg m;
    int loaned = ferry_msg_loan(push, &m, DOC_MAX);
    CHECK(loaned);
    cursor c = {.p = ferry_msg_data(&m), .len = 0, .cap = ferry_msg_size(&m)};
    msgpack_packer pk;
    msgpack_packer_init(&pk, &c, cursor_write);
    int bad = msgpack_pack_map(&pk, 4);
    bad |= msgpack_pack_str_with_body(&pk, "sensor", 6);
    bad |= msgpack_pack_uint32(&pk, 7);
    bad |= msgpack_pack_str_with_body(&pk, "celsius", 7);
    bad |= msgpack_pack_double(&pk, 21.5);
    bad |= msgpack_pack_str_with_body(&pk, "label", 5);
    bad |= msgpack_pack_str_with_body(&pk, "kitchen", 7);
    /* A history makes the document larger than 40 bytes: smaller frames are
     * always copied. */
    bad |= msgpack_pack_str_with_body(&pk, "history", 7);
    bad |= msgpack_pack_array(&pk, 8);
    for (int i = 0; i < 8; i++)
        bad |= msgpack_pack_double(&pk, 21.0 + i / 10.0);
    if (bad) {
        ferry_msg_fini(&m); /* abandons the loan: the peer sees nothing */
        return 1;
    }
    CHECK(ferry_msg_trim(&m, c.len)); /* only the document is committed */
    CHECK(ferry_msg_send(push, &m, 0));

    ferry_stats st;
    CHECK(ferry_socket_stats(push, &st));
    printf("sender: %zu-byte document packed %s\n", c.len,
           loaned == 1 && st.zc_sends == 1 ? "in place in the ring" : "in a heap message");
    int status;
    waitpid(child, &status, 0);
    ferry_socket_close(push);
    if (loaned != 1 || st.zc_sends != 1)
        return 1;
    return WIFEXITED(status) ? WEXITSTATUS(status) : 1;
}
