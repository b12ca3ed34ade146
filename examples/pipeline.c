/*
 * pipeline.c - PUSH/PULL "divide and conquer" in processes: a ventilator pushes
 * 100 tasks (the numbers 1..100) to two workers, each worker squares its
 * numbers and pushes the results to a sink, the sink adds them up and checks
 * the sum (338350).
 *
 *   ventilator (PUSH, bind) ──► worker ×2 (PULL connect, PUSH connect) ──► sink
 * (PULL, bind)
 *
 * PUSH hands each message to one peer, round-robin over the peers that can take
 * it (it blocks when all are at their high-water mark: nothing is dropped);
 * PULL fair-queues from its peers. Workers run until they are told to stop,
 * here by a signal once the sink has everything.
 */
#define _POSIX_C_SOURCE 200809L /* fork, waitpid, nanosleep with -std=c11 */

#include <ferry/ferry.h>

#include <signal.h>
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

#define TASKS 100

static int worker(const char *tasks_url, const char *results_url)
{
    ferry_socket *in, *out;
    CHECK(ferry_socket_open(&in, FERRY_PULL));
    CHECK(ferry_socket_open(&out, FERRY_PUSH));
    CHECK(ferry_socket_connect(in, tasks_url));
    CHECK(ferry_socket_connect(out, results_url));
    for (;;) { /* until SIGTERM */
        uint64_t n;
        ssize_t len = ferry_socket_recv(in, &n, sizeof n, 0, NULL);
        CHECK(len);
        if (len != sizeof n)
            return 1;
        uint64_t square = n * n;
        CHECK(ferry_socket_send(out, &square, sizeof square, 0));
    }
}

static int sink(const char *results_url)
{
    ferry_socket *in;
    CHECK(ferry_socket_open(&in, FERRY_PULL));
    CHECK(ferry_socket_setopt_int(in, FERRY_OPT_RCVTIMEO, 10000)); /* fail rather than hang */
    CHECK(ferry_socket_bind(in, results_url));
    uint64_t sum = 0;
    for (int i = 0; i < TASKS; i++) {
        uint64_t square;
        ssize_t len = ferry_socket_recv(in, &square, sizeof square, 0, NULL);
        CHECK(len);
        if (len != sizeof square)
            return 1;
        sum += square;
    }
    printf("sink: sum of squares 1..%d = %llu\n", TASKS, (unsigned long long)sum);
    ferry_socket_close(in);
    return sum == (uint64_t)TASKS * (TASKS + 1) * (2 * TASKS + 1) / 6 ? 0 : 1;
}

int main(void)
{
    char tasks[128], results[128];
    snprintf(tasks, sizeof tasks, "ipc:///tmp/ferry-example-tasks-%d", (int)getpid());
    snprintf(results, sizeof results, "ipc:///tmp/ferry-example-results-%d", (int)getpid());

    /* All processes are forked before any socket exists: sockets are per process.
     */
    pid_t workers[2], sink_pid = fork();
    if (sink_pid == 0) {
        int rc = sink(results);
        fflush(stdout); /* _exit skips stdio: flush what the child printed */
        _exit(rc);
    }
    for (int i = 0; i < 2; i++)
        if ((workers[i] = fork()) == 0)
            _exit(worker(tasks, results));

    ferry_socket *vent;
    CHECK(ferry_socket_open(&vent, FERRY_PUSH));
    CHECK(ferry_socket_setopt_int(vent, FERRY_OPT_SNDTIMEO, 10000));
    CHECK(ferry_socket_bind(vent, tasks));
    for (uint64_t n = 1; n <= TASKS; n++)
        CHECK(ferry_socket_send(vent, &n, sizeof n, 0));

    int status;
    waitpid(sink_pid, &status, 0);
    for (int i = 0; i < 2; i++) {
        kill(workers[i], SIGTERM);
        waitpid(workers[i], NULL, 0);
    }
    ferry_socket_close(vent);
    return WIFEXITED(status) ? WEXITSTATUS(status) : 1;
}
