/*
 * test_core_socket.c - socket semantics that do not depend on a pattern: options (defaults,
 * validation, read-only ones), statistics, the level-triggered pollfd and ferry_poll over sockets
 * and plain fds, SNDHWM with DONTWAIT and SNDTIMEO, nothing lost at HWM, LINGER delivering queued
 * output to a real process after close, unbind/disconnect, and FERRY_ECHILD_FORK after fork().
 */
#include "ferry/ferry.h"
#include "testutil.h"

#include <poll.h>
#include <stdbool.h>
#include <stdio.h>
#include <stdlib.h>
#include <string.h>
#include <sys/wait.h>
#include <unistd.h>

/* The forked children start a control thread; under ThreadSanitizer that needs this. */
const char *__tsan_default_options(void);
const char *__tsan_default_options(void)
{
    return "die_after_fork=0";
}

static ferry_socket *sock(int type)
{
    ferry_socket *s;
    CHECK_OK(ferry_socket_open(&s, type));
    CHECK_OK(ferry_socket_setopt_int(s, FERRY_OPT_RCVTIMEO, 10000));
    CHECK_OK(ferry_socket_setopt_int(s, FERRY_OPT_SNDTIMEO, 10000));
    return s;
}

static int readable(int fd, int ms)
{
    struct pollfd p = {.fd = fd, .events = POLLIN};
    int r = poll(&p, 1, ms);
    CHECK(r >= 0);
    return r > 0 && (p.revents & POLLIN);
}

static void wait_peers(ferry_socket *s, uint32_t n)
{
    uint64_t end = tu_now_ns() + 10000000000ull;
    for (;;) {
        ferry_stats st;
        CHECK_OK(ferry_socket_stats(s, &st));
        if (st.peers == n)
            return;
        CHECK(tu_now_ns() < end);
        poll(NULL, 0, 1);
    }
}

static void options(void)
{
    ferry_socket *s = sock(FERRY_PUSH);
    int64_t v;
    CHECK_OK(ferry_socket_getopt_int(s, FERRY_OPT_SNDHWM, &v));
    CHECK(v == 1000);
    CHECK_OK(ferry_socket_getopt_int(s, FERRY_OPT_LINGER, &v));
    CHECK(v == 0);
    CHECK_OK(ferry_socket_getopt_int(s, FERRY_OPT_TYPE, &v));
    CHECK(v == FERRY_PUSH);
    CHECK_OK(ferry_socket_getopt_int(s, FERRY_OPT_RECONNECT_IVL, &v));
    CHECK(v == 100);
    CHECK_OK(ferry_socket_setopt_int(s, FERRY_OPT_SNDHWM, 5));
    CHECK_OK(ferry_socket_getopt_int(s, FERRY_OPT_SNDHWM, &v));
    CHECK(v == 5);
    CHECK_RC(ferry_socket_setopt_int(s, FERRY_OPT_TYPE, 1), FERRY_EINVAL);
    CHECK_RC(ferry_socket_setopt_int(s, FERRY_OPT_RCVMORE, 1), FERRY_EINVAL);
    CHECK_RC(ferry_socket_setopt_int(s, FERRY_OPT_LINGER, -2), FERRY_EINVAL);
    CHECK_RC(ferry_socket_setopt_int(s, FERRY_OPT_IMMEDIATE, 2), FERRY_EINVAL);
    CHECK_RC(ferry_socket_setopt_int(s, FERRY_OPT_RECONNECT_IVL, 0), FERRY_EINVAL);
    CHECK_RC(ferry_socket_setopt_int(s, 12345, 0), FERRY_EINVAL);
    CHECK_RC(ferry_socket_getopt_int(s, 12345, &v), FERRY_EINVAL);
    CHECK_RC(ferry_socket_setopt_bytes(s, FERRY_OPT_ROUTING_ID, "", 0), FERRY_EINVAL);
    CHECK_RC(ferry_socket_setopt_bytes(s, FERRY_OPT_ROUTING_ID, "\0x", 2), FERRY_EINVAL);
    CHECK_OK(ferry_socket_setopt_bytes(s, FERRY_OPT_ROUTING_ID, "me", 2));
    char id[8];
    size_t len = 1;
    CHECK_RC(ferry_socket_getopt_bytes(s, FERRY_OPT_ROUTING_ID, id, &len), FERRY_EMSGSIZE);
    CHECK(len == 2);
    len = sizeof id;
    CHECK_OK(ferry_socket_getopt_bytes(s, FERRY_OPT_ROUTING_ID, id, &len));
    CHECK(len == 2 && memcmp(id, "me", 2) == 0);
    int hwm = 7;
    CHECK_OK(ferry_socket_setopt_bytes(s, FERRY_OPT_RCVHWM, &hwm, sizeof hwm));
    CHECK_OK(ferry_socket_getopt_int(s, FERRY_OPT_RCVHWM, &v));
    CHECK(v == 7);
    /* PUSH cannot receive, PULL cannot send. */
    char b[4];
    CHECK_RC(ferry_socket_recv(s, b, sizeof b, 0, NULL), FERRY_ENOTSUP);
    ferry_socket *pull = sock(FERRY_PULL);
    CHECK_RC(ferry_socket_send(pull, "x", 1, 0), FERRY_ENOTSUP);
    CHECK_RC(ferry_socket_send(s, "x", 1, 0x100), FERRY_EINVAL);
    ferry_socket_close(pull);
    ferry_socket_close(s);
}

static void pollfd_and_poll(const char *url)
{
    ferry_socket *a = sock(FERRY_PAIR), *b = sock(FERRY_PAIR);
    CHECK_OK(ferry_socket_bind(a, url));
    char ep[512];
    CHECK_OK(ferry_socket_last_endpoint(a, ep, sizeof ep));
    CHECK_OK(ferry_socket_connect(b, ep));
    int fd = ferry_socket_pollfd(a);
    CHECK(fd >= 0);
    /* Nothing to read: the fd settles to not readable once the handshake traffic is handled. */
    CHECK_OK(ferry_socket_send(b, "1", 1, 0));
    CHECK_OK(ferry_socket_send(b, "2", 1, 0));
    CHECK(readable(fd, 10000));
    /* Wait until both messages are in; then the level stays up until both are received. */
    uint64_t end = tu_now_ns() + 10000000000ull;
    char c;
    CHECK_RC(ferry_socket_recv(a, &c, 1, 0, NULL), 1);
    CHECK(c == '1');
    while (!(ferry_socket_events(a) & FERRY_POLLIN))
        CHECK(tu_now_ns() < end);
    CHECK(readable(fd, 0));
    CHECK(readable(fd, 0)); /* level-triggered: still readable */
    CHECK_RC(ferry_socket_recv(a, &c, 1, 0, NULL), 1);
    CHECK(c == '2');
    CHECK((ferry_socket_events(a) & FERRY_POLLIN) == 0);
    CHECK(!readable(fd, 0));
    CHECK(ferry_socket_events(a) & FERRY_POLLOUT);

    /* ferry_poll over two sockets and a plain pipe. */
    int pp[2];
    CHECK(pipe(pp) == 0);
    ferry_pollitem items[3] = {
        {.socket = a, .events = FERRY_POLLIN},
        {.socket = b, .events = FERRY_POLLIN},
        {.socket = NULL, .fd = pp[0], .events = FERRY_POLLIN},
    };
    CHECK_RC(ferry_poll(items, 3, 0), 0);
    CHECK_OK(ferry_socket_send(a, "x", 1, 0));
    CHECK_RC(ferry_poll(items, 3, 10000), 1);
    CHECK(items[1].revents == FERRY_POLLIN && items[0].revents == 0 && items[2].revents == 0);
    CHECK_RC(ferry_socket_recv(b, &c, 1, 0, NULL), 1);
    CHECK(write(pp[1], "z", 1) == 1);
    CHECK_RC(ferry_poll(items, 3, 10000), 1);
    CHECK(items[2].revents == FERRY_POLLIN);
    close(pp[0]);
    close(pp[1]);
    CHECK_RC(ferry_poll(items, 2, 30), 0); /* times out: nothing pending */
    ferry_socket_close(b);
    ferry_socket_close(a);
}

static void hwm(const char *url)
{
    /* PUSH with SNDHWM 4 to a PULL that does not read: DONTWAIT sends fail with EAGAIN once the
     * kernel buffers and 4 queued messages are full; a timed send times out with EAGAIN; then the
     * reader drains and receives every accepted message in order. */
    ferry_socket *push = sock(FERRY_PUSH), *pull = sock(FERRY_PULL);
    CHECK_OK(ferry_socket_setopt_int(push, FERRY_OPT_SNDHWM, 4));
    CHECK_OK(ferry_socket_setopt_int(pull, FERRY_OPT_RCVHWM, 4));
    CHECK_OK(ferry_socket_setopt_int(push, FERRY_OPT_SHM_UPGRADE, 0));
    CHECK_OK(ferry_socket_setopt_int(pull, FERRY_OPT_SHM_UPGRADE, 0));
    CHECK_OK(ferry_socket_bind(pull, url));
    char ep[512];
    CHECK_OK(ferry_socket_last_endpoint(pull, ep, sizeof ep));
    CHECK_OK(ferry_socket_connect(push, ep));
    wait_peers(push, 1);
    size_t sz = 64 * 1024;
    uint8_t *buf = calloc(1, sz);
    CHECK(buf);
    uint32_t sent = 0;
    for (;;) {
        memcpy(buf, &sent, sizeof sent);
        int rc = ferry_socket_send(push, buf, sz, FERRY_DONTWAIT);
        if (rc == FERRY_EAGAIN)
            break;
        CHECK_OK(rc);
        sent++;
        CHECK(sent < 10000); /* the HWM must stop us long before this */
    }
    /* A timed send gives up with EAGAIN (the reader's side may still take in a little, so a
     * few may succeed first). */
    CHECK_OK(ferry_socket_setopt_int(push, FERRY_OPT_SNDTIMEO, 30));
    for (;;) {
        memcpy(buf, &sent, sizeof sent);
        int rc = ferry_socket_send(push, buf, sz, 0);
        if (rc == FERRY_EAGAIN)
            break;
        CHECK_OK(rc);
        sent++;
        CHECK(sent < 10000);
    }
    for (uint32_t i = 0; i < sent; i++) {
        CHECK_RC(ferry_socket_recv(pull, buf, sz, 0, NULL), (long long)sz);
        uint32_t got;
        memcpy(&got, buf, sizeof got);
        CHECK(got == i);
    }
    CHECK_RC(ferry_socket_recv(pull, buf, sz, FERRY_DONTWAIT, NULL), FERRY_EAGAIN);
    ferry_stats st;
    CHECK_OK(ferry_socket_stats(push, &st));
    CHECK(st.msgs_out == sent && st.bytes_out == (uint64_t)sent * sz);
    CHECK_OK(ferry_socket_stats(pull, &st));
    CHECK(st.msgs_in == sent && st.bytes_in == (uint64_t)sent * sz);
    free(buf);
    ferry_socket_close(push);
    ferry_socket_close(pull);
}

static void linger(const char *url)
{
    /* The parent queues many messages (more than the kernel holds) and closes at once with
     * LINGER -1: the child, a separate process, must receive every one. */
    enum { N = 3000, SZ = 1000 };
    ferry_socket *pull = sock(FERRY_PULL);
    CHECK_OK(ferry_socket_bind(pull, url));
    char ep[512];
    CHECK_OK(ferry_socket_last_endpoint(pull, ep, sizeof ep));
    pid_t pid = fork();
    CHECK(pid >= 0);
    if (pid == 0) {
        ferry_socket *push;
        if (ferry_socket_open(&push, FERRY_PUSH) != 0)
            _exit(2);
        ferry_socket_setopt_int(push, FERRY_OPT_SNDHWM, 0);
        ferry_socket_setopt_int(push, FERRY_OPT_LINGER, -1);
        if (ferry_socket_connect(push, ep) != 0)
            _exit(3);
        char b[SZ];
        for (int i = 0; i < N; i++) {
            memset(b, i & 0xff, sizeof b);
            if (ferry_socket_send(push, b, sizeof b, 0) != 0)
                _exit(4);
        }
        ferry_socket_close(push);
        _exit(0);
    }
    char b[SZ];
    for (int i = 0; i < N; i++) {
        CHECK_RC(ferry_socket_recv(pull, b, sizeof b, 0, NULL), SZ);
        CHECK((uint8_t)b[0] == (i & 0xff) && (uint8_t)b[SZ - 1] == (i & 0xff));
    }
    int status;
    CHECK(waitpid(pid, &status, 0) == pid);
    CHECK(WIFEXITED(status) && WEXITSTATUS(status) == 0);
    ferry_socket_close(pull);
}

static void unbind_disconnect(void)
{
    ferry_socket *a = sock(FERRY_PAIR), *b = sock(FERRY_PAIR);
    CHECK_OK(ferry_socket_bind(a, "tcp://127.0.0.1:*"));
    char ep[256];
    CHECK_OK(ferry_socket_last_endpoint(a, ep, sizeof ep));
    CHECK_OK(ferry_socket_connect(b, ep));
    wait_peers(b, 1);
    CHECK_OK(ferry_socket_disconnect(b, ep));
    CHECK_RC(ferry_socket_disconnect(b, ep), FERRY_ENOENT);
    wait_peers(b, 0);
    wait_peers(a, 0);
    CHECK_OK(ferry_socket_unbind(a, ep));
    CHECK_RC(ferry_socket_unbind(a, ep), FERRY_ENOENT);
    /* The port is free again: bind it once more. */
    CHECK_OK(ferry_socket_bind(a, ep));
    ferry_socket_close(b);
    ferry_socket_close(a);
}

static void after_fork(void)
{
    ferry_socket *s = sock(FERRY_PAIR);
    CHECK_OK(ferry_socket_bind(s, "tcp://127.0.0.1:*"));
    pid_t pid = fork();
    CHECK(pid >= 0);
    if (pid == 0) {
        int ok = ferry_socket_send(s, "x", 1, FERRY_DONTWAIT) == FERRY_ECHILD_FORK &&
                 ferry_socket_recv(s, NULL, 0, FERRY_DONTWAIT, NULL) == FERRY_ECHILD_FORK;
        ferry_socket_close(s); /* must not disturb the parent */
        /* A fresh socket works in the child (a new control thread starts). */
        ferry_socket *c;
        ok = ok && ferry_socket_open(&c, FERRY_PAIR) == 0 &&
             ferry_socket_bind(c, "tcp://127.0.0.1:*") == 0;
        ferry_socket_close(c);
        _exit(ok ? 0 : 1);
    }
    int status;
    CHECK(waitpid(pid, &status, 0) == pid);
    CHECK(WIFEXITED(status) && WEXITSTATUS(status) == 0);
    /* The parent's socket still works. */
    ferry_socket *c = sock(FERRY_PAIR);
    char ep[256];
    CHECK_OK(ferry_socket_last_endpoint(s, ep, sizeof ep));
    CHECK_OK(ferry_socket_connect(c, ep));
    CHECK_OK(ferry_socket_send(c, "y", 1, 0));
    char b;
    CHECK_RC(ferry_socket_recv(s, &b, 1, 0, NULL), 1);
    ferry_socket_close(c);
    ferry_socket_close(s);
}

int main(void)
{
    tu_deadline(100);
    char url[512];
    options();
    pollfd_and_poll("tcp://127.0.0.1:*");
    snprintf(url, sizeof url, "inproc://%s", tu_unique("poll"));
    pollfd_and_poll(url);
    snprintf(url, sizeof url, "ipc://%s/hwm.sock", tu_tmpdir());
    hwm(url);
    hwm("tcp://127.0.0.1:*");
    snprintf(url, sizeof url, "inproc://%s", tu_unique("hwm"));
    hwm(url);
    snprintf(url, sizeof url, "ipc://%s/linger.sock", tu_tmpdir());
    linger(url);
    linger("tcp://127.0.0.1:*");
    unbind_disconnect();
    after_fork();
    return 0;
}
