/*
 * interop_pyzmq.c - ferry talking to an unmodified pyzmq program
 * (interop_pyzmq.py, run here with /usr/bin/python3). ferry speaks ZMTP 3.1 on
 * tcp:// and ipc://, so libzmq, pyzmq, JeroMQ or NetMQ peers need nothing
 * special: this REQ asks the Python REP server to upper-case three words, then
 * a SUB receives the Python PUB's multipart "status" update.
 *
 * usage: interop_pyzmq PATH/TO/interop_pyzmq.py   (exits 77 when pyzmq is not
 * installed)
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

#define PYTHON "/usr/bin/python3"

/* Starts python with argv; wait_status() collects it. */
static pid_t spawn_python(char *const argv[])
{
    pid_t pid = fork();
    if (pid == 0) {
        execv(PYTHON, argv);
        _exit(127);
    }
    return pid;
}

static int wait_status(pid_t pid)
{
    int st;
    if (pid < 0 || waitpid(pid, &st, 0) != pid || !WIFEXITED(st))
        return -1;
    return WEXITSTATUS(st);
}

/* Receives one frame as a NUL-terminated string. */
static int recv_str(ferry_socket *s, char *buf, size_t cap, int *more)
{
    ssize_t n = ferry_socket_recv(s, buf, cap - 1, 0, more);
    if (n < 0)
        return (int)n;
    buf[(size_t)n < cap ? (size_t)n : cap - 1] = 0;
    return 0;
}

int main(int argc, char **argv)
{
    if (argc != 2) {
        fprintf(stderr, "usage: %s interop_pyzmq.py\n", argv[0]);
        return 2;
    }
    char *probe[] = {PYTHON, "-c", "import zmq", NULL};
    if (wait_status(spawn_python(probe)) != 0) {
        fprintf(stderr, "pyzmq is not installed for %s (apt install python3-zmq): skipped\n",
                PYTHON);
        return 77;
    }

    /* Let ferry pick free ports: bind to port *, read the real endpoint, then
     * free it for the Python side (a tiny window in which another program could
     * take it; fine for an example). */
    char rep_url[64], pub_url[64];
    ferry_socket *probe_sock;
    CHECK(ferry_socket_open(&probe_sock, FERRY_PAIR));
    CHECK(ferry_socket_bind(probe_sock, "tcp://127.0.0.1:*"));
    CHECK(ferry_socket_last_endpoint(probe_sock, rep_url, sizeof rep_url));
    CHECK(ferry_socket_bind(probe_sock, "tcp://127.0.0.1:*"));
    CHECK(ferry_socket_last_endpoint(probe_sock, pub_url, sizeof pub_url));
    ferry_socket_close(probe_sock);

    char *py_argv[] = {PYTHON, argv[1], rep_url, pub_url, "3", NULL};
    pid_t py = spawn_python(py_argv);

    ferry_socket *req, *sub;
    CHECK(ferry_socket_open(&req, FERRY_REQ));
    CHECK(ferry_socket_setopt_int(req, FERRY_OPT_RCVTIMEO, 10000));
    CHECK(ferry_socket_connect(req, rep_url)); /* retried in the background until Python binds */
    const char *words[] = {"ferry", "speaks", "zmtp"};
    for (int i = 0; i < 3; i++) {
        char reply[64];
        CHECK(ferry_socket_send(req, words[i], strlen(words[i]), 0));
        CHECK(recv_str(req, reply, sizeof reply, NULL));
        printf("REQ %s -> REP %s\n", words[i], reply);
    }

    CHECK(ferry_socket_open(&sub, FERRY_SUB));
    CHECK(ferry_socket_setopt_int(sub, FERRY_OPT_RCVTIMEO, 10000));
    CHECK(ferry_socket_subscribe(sub, "status", 6));
    CHECK(ferry_socket_connect(sub, pub_url));
    char topic[32], body[64];
    int more = 0;
    CHECK(recv_str(sub, topic, sizeof topic, &more));
    if (!more)
        return 1;
    CHECK(recv_str(sub, body, sizeof body, &more));
    printf("SUB got [%s] [%s]\n", topic, body);

    char done[8];
    CHECK(ferry_socket_send(req, "done", 4, 0)); /* tells the Python side to finish */
    CHECK(recv_str(req, done, sizeof done, NULL));
    ferry_socket_close(sub);
    ferry_socket_close(req);
    return wait_status(py) == 0 && strcmp(topic, "status") == 0 ? 0 : 1;
}
