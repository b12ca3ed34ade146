/*
 * pubsub.c - PUB/SUB over shared memory (shm://): a publisher process sends
 * weather and sports updates; a subscriber process subscribes to "weather."
 * only and prints five of them.
 *
 * Things worth seeing here:
 *  - shm:// needs no files and no daemon: the name is a Unix socket in ferry's
 * private runtime directory, used only to hand over the shared-memory rings.
 *  - SUB filters by prefix of the first frame; sports never reaches the
 * subscriber.
 *  - A subscriber that joins late misses what was published before (the "slow
 * joiner"), so the publisher keeps publishing until the subscriber is done, as
 * real publishers do.
 *
 * Build and run: it is built with the project and run by ctest (label
 * "examples").
 */
#define _POSIX_C_SOURCE 200809L /* fork, waitpid, nanosleep with -std=c11 */

#include <ferry/ferry.h>

#include <signal.h>
#include <stdio.h>
#include <stdlib.h>
#include <string.h>
#include <sys/wait.h>
#include <time.h>
#include <unistd.h>

#define CHECK(call)                                                                                \
    do {                                                                                           \
        int rc_ = (call);                                                                          \
        if (rc_ < 0) {                                                                             \
            fprintf(stderr, "%s failed: %s\n", #call, ferry_strerror(rc_));                        \
            exit(1);                                                                               \
        }                                                                                          \
    } while (0)

static int subscriber(const char *url)
{
    ferry_socket *sub;
    CHECK(ferry_socket_open(&sub, FERRY_SUB));
    CHECK(ferry_socket_setopt_int(sub, FERRY_OPT_RCVTIMEO, 10000)); /* fail, don't hang */
    CHECK(ferry_socket_subscribe(sub, "weather.", strlen("weather.")));
    CHECK(ferry_socket_connect(sub, url));
    for (int i = 0; i < 5; i++) {
        char buf[64];
        ssize_t n = ferry_socket_recv(sub, buf, sizeof buf - 1, 0, NULL);
        CHECK((int)n);
        buf[n < (ssize_t)sizeof buf ? n : (ssize_t)sizeof buf - 1] = 0;
        if (strncmp(buf, "weather.", 8) != 0) {
            fprintf(stderr, "subscriber got an unsubscribed topic: %s\n", buf);
            return 1;
        }
        printf("subscriber: %s\n", buf);
    }
    ferry_socket_close(sub);
    return 0;
}

int main(void)
{
    char url[64];
    snprintf(url, sizeof url, "shm://example-pubsub-%d", (int)getpid());

    /* Fork before opening any socket: a ferry socket belongs to the process that opened it. */
    pid_t child = fork();
    if (child < 0)
        return 1;
    if (child == 0) {
        int rc = subscriber(url);
        fflush(stdout); /* _exit skips stdio: flush what the child printed */
        _exit(rc);
    }

    ferry_socket *pub;
    CHECK(ferry_socket_open(&pub, FERRY_PUB));
    CHECK(ferry_socket_bind(pub, url));
    int status = 0;
    for (int seq = 0; waitpid(child, &status, WNOHANG) == 0; seq++) {
        char msg[64];
        int n = snprintf(msg, sizeof msg, "weather.%d 21C", seq);
        CHECK(ferry_socket_send(pub, msg, (size_t)n, 0));
        n = snprintf(msg, sizeof msg, "sports.%d 2-1", seq);
        CHECK(ferry_socket_send(pub, msg, (size_t)n, 0));
        nanosleep(&(struct timespec){0, 5 * 1000 * 1000}, NULL); /* 200 updates a second */
    }
    ferry_socket_close(pub);
    return WIFEXITED(status) ? WEXITSTATUS(status) : 1;
}
