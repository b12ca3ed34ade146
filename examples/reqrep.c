/*
 * reqrep.c - REQ/REP over ipc:// (a Unix socket speaking ZMTP 3.1, so a libzmq
 * REQ or REP could take either side): a server process answers "hello N" with
 * "world N"; the client sends three requests and prints the replies.
 *
 * REQ and REP are lock-step: a REQ must receive the reply before it may send
 * again (otherwise ferry_socket_send returns FERRY_EFSM), and a REP must reply
 * before it receives again. Between two ferry processes on one host the ipc://
 * link switches to shared memory after the handshake (FERRY_OPT_SHM_UPGRADE, on
 * by default); the program does not change.
 */
#define _POSIX_C_SOURCE 200809L /* fork, waitpid, nanosleep with -std=c11 */

#include <ferry/ferry.h>

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

#define ROUNDS 3

static int server(const char *url)
{
    ferry_socket *rep;
    CHECK(ferry_socket_open(&rep, FERRY_REP));
    CHECK(ferry_socket_setopt_int(rep, FERRY_OPT_RCVTIMEO, 10000));
    CHECK(ferry_socket_setopt_int(rep, FERRY_OPT_LINGER, 10000)); /* deliver the last reply */
    CHECK(ferry_socket_bind(rep, url));
    for (int i = 0; i < ROUNDS; i++) {
        char req[32], reply[32];
        ssize_t n = ferry_socket_recv(rep, req, sizeof req - 1, 0, NULL);
        CHECK(n);
        int id = -1;
        if (n >= (ssize_t)sizeof req || sscanf((req[n] = 0, req), "hello %d", &id) != 1)
            return 1;
        int len = snprintf(reply, sizeof reply, "world %d", id);
        CHECK(ferry_socket_send(rep, reply, (size_t)len, 0));
    }
    ferry_socket_close(rep);
    return 0;
}

int main(void)
{
    char url[128];
    snprintf(url, sizeof url, "ipc:///tmp/ferry-example-reqrep-%d", (int)getpid());

    pid_t child = fork(); /* before any socket: sockets belong to the process that
                             opened them */
    if (child < 0)
        return 1;
    if (child == 0) {
        int rc = server(url);
        fflush(stdout); /* _exit skips stdio: flush what the child printed */
        _exit(rc);
    }

    ferry_socket *req;
    CHECK(ferry_socket_open(&req, FERRY_REQ));
    CHECK(ferry_socket_setopt_int(req, FERRY_OPT_RCVTIMEO, 10000));
    /* Connecting before the server has bound is fine: ferry retries in the background. */
    CHECK(ferry_socket_connect(req, url));
    for (int i = 0; i < ROUNDS; i++) {
        char msg[32];
        int len = snprintf(msg, sizeof msg, "hello %d", i);
        CHECK(ferry_socket_send(req, msg, (size_t)len, 0));
        ssize_t n = ferry_socket_recv(req, msg, sizeof msg - 1, 0, NULL);
        CHECK(n);
        msg[n < (ssize_t)sizeof msg ? n : (ssize_t)sizeof msg - 1] = 0;
        printf("client: sent hello %d, got %s\n", i, msg);
        char want[32];
        snprintf(want, sizeof want, "world %d", i);
        if (strcmp(msg, want) != 0)
            return 1;
    }
    ferry_socket_close(req);
    int status;
    waitpid(child, &status, 0);
    return WIFEXITED(status) ? WEXITSTATUS(status) : 1;
}
