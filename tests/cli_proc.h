/*
 * cli_proc.h - runs programs (the built `ferry` binary from $FERRY_BIN, or /usr/bin/python3) as
 * real child processes for the CLI tests: stdin from a string or /dev/null, stdout and stderr
 * collected through pipes with poll() so neither can fill up and stall the child, and a hard
 * per-process deadline (the child is killed and the test fails with its output, never hangs).
 *
 * Header-only (static functions) because only the test_cli_* programs use it.
 */
#ifndef FERRY_CLI_PROC_H
#define FERRY_CLI_PROC_H

#include "testutil.h"

#include <errno.h>
#include <fcntl.h>
#include <poll.h>
#include <signal.h>
#include <stdbool.h>
#include <string.h>
#include <sys/wait.h>
#include <unistd.h>

#define CLI_OUT_CAP 65536

typedef struct cli_proc {
    pid_t pid;
    int in;       /* write end of a held stdin (cli_spawn_held), else -1 */
    int out, err; /* read ends, -1 once at EOF */
    char obuf[CLI_OUT_CAP], ebuf[CLI_OUT_CAP];
    size_t olen, elen;
    int status; /* exit code, or 128 + signal */
} cli_proc;

/* The ferry binary under test; the test is skipped (77) when FERRY_BIN is missing. */
static inline const char *cli_bin(void)
{
    const char *bin = getenv("FERRY_BIN");
    if (!bin || access(bin, X_OK) != 0) {
        fprintf(stderr, "FERRY_BIN not set or not executable: skipped\n");
        exit(TEST_SKIP);
    }
    return bin;
}

/*
 * Starts path with argv (argv[0] included, NULL-terminated); stdin_text NULL means /dev/null.
 * With hold, stdin stays open after stdin_text until cli_release(): a sender reading stdin lines
 * then stays alive (and connected) until the test has seen its messages arrive.
 */
static inline void cli_spawn_path(cli_proc *p, const char *path, const char *const *argv,
                                  const char *stdin_text, bool hold)
{
    int o[2], e[2], in[2];
    CHECK(pipe2(o, O_CLOEXEC) == 0 && pipe2(e, O_CLOEXEC) == 0 && pipe2(in, O_CLOEXEC) == 0);
    pid_t pid = fork();
    CHECK(pid >= 0);
    if (pid == 0) {
        /* Only async-signal-safe calls between fork and exec. */
        if (stdin_text) {
            dup2(in[0], 0);
        } else {
            int dn = open("/dev/null", O_RDONLY);
            if (dn >= 0)
                dup2(dn, 0);
        }
        dup2(o[1], 1);
        dup2(e[1], 2);
        execv(path, (char *const *)argv);
        _exit(127);
    }
    close(o[1]);
    close(e[1]);
    close(in[0]);
    if (stdin_text) {
        /* Test inputs are far below the pipe buffer, so this never blocks. */
        size_t len = strlen(stdin_text);
        CHECK(len < 4096);
        CHECK(write(in[1], stdin_text, len) == (ssize_t)len);
    }
    memset(p, 0, sizeof *p);
    p->in = -1;
    if (hold)
        p->in = in[1];
    else
        close(in[1]);
    p->pid = pid;
    p->out = o[0];
    p->err = e[0];
    p->status = -1;
}

/* Starts `ferry args...` (args NULL-terminated, without the program name). */
static inline void cli_spawn_ferry(cli_proc *p, const char *const *args, const char *stdin_text,
                                   bool hold)
{
    const char *argv[64];
    int n = 0;
    argv[n++] = cli_bin();
    while (args[n - 1]) {
        CHECK(n < 63);
        argv[n] = args[n - 1];
        n++;
    }
    argv[n] = NULL;
    cli_spawn_path(p, argv[0], argv, stdin_text, hold);
}

static inline void cli_spawn(cli_proc *p, const char *const *args, const char *stdin_text)
{
    cli_spawn_ferry(p, args, stdin_text, false);
}

/* Like cli_spawn, but stdin stays open after stdin_text until cli_release(). */
static inline void cli_spawn_held(cli_proc *p, const char *const *args, const char *stdin_text)
{
    cli_spawn_ferry(p, args, stdin_text, true);
}

/* Ends a held stdin: a sender of stdin lines sees EOF and finishes. */
static inline void cli_release(cli_proc *p)
{
    if (p->in >= 0)
        close(p->in);
    p->in = -1;
}

static inline void cli_drain(int *fd, char *buf, size_t *len)
{
    char tmp[4096];
    ssize_t r = read(*fd, tmp, sizeof tmp);
    if (r < 0 && errno == EINTR)
        return;
    if (r <= 0) {
        close(*fd);
        *fd = -1;
        return;
    }
    size_t room = CLI_OUT_CAP - 1 - *len;
    size_t take = (size_t)r < room ? (size_t)r : room;
    memcpy(buf + *len, tmp, take);
    *len += take;
    buf[*len] = 0;
}

/*
 * Collects output until the child exits; returns its status. Past timeout_s the child is killed
 * and the test fails, printing what `what` had written so far.
 */
static inline int cli_wait(cli_proc *p, unsigned timeout_s, const char *what)
{
    uint64_t deadline = tu_now_ns() + (uint64_t)timeout_s * 1000000000u;
    while (p->out >= 0 || p->err >= 0) {
        struct pollfd fds[2] = {{p->out, POLLIN, 0}, {p->err, POLLIN, 0}};
        uint64_t now = tu_now_ns();
        if (now >= deadline) {
            kill(p->pid, SIGKILL);
            waitpid(p->pid, NULL, 0);
            fprintf(stderr, "%s: still running after %u s; stdout:\n%s\nstderr:\n%s\n", what,
                    timeout_s, p->obuf, p->ebuf);
            exit(1);
        }
        int ms = (int)((deadline - now) / 1000000u) + 1;
        int r = poll(fds, 2, ms);
        if (r < 0 && errno == EINTR)
            continue;
        CHECK(r >= 0);
        if (p->out >= 0 && (fds[0].revents & (POLLIN | POLLHUP | POLLERR)))
            cli_drain(&p->out, p->obuf, &p->olen);
        if (p->err >= 0 && (fds[1].revents & (POLLIN | POLLHUP | POLLERR)))
            cli_drain(&p->err, p->ebuf, &p->elen);
    }
    /* Both pipes hit EOF: the child has exited (or closed them just before exiting). */
    int st;
    pid_t w;
    while ((w = waitpid(p->pid, &st, 0)) < 0 && errno == EINTR)
        ;
    CHECK(w == p->pid);
    cli_release(p);
    p->status = WIFEXITED(st) ? WEXITSTATUS(st) : 128 + WTERMSIG(st);
    return p->status;
}

/* Stops a child that would otherwise run on (a looping publisher) and reaps it. */
static inline void cli_stop(cli_proc *p)
{
    kill(p->pid, SIGTERM);
    cli_wait(p, 20, "stopped process");
}

/* Runs `ferry args...` to completion. */
static inline int cli_run(cli_proc *p, const char *const *args, const char *stdin_text,
                          unsigned timeout_s)
{
    cli_spawn(p, args, stdin_text);
    return cli_wait(p, timeout_s, args[0]);
}

/* Fails the test unless the process exited with `status` and printed exactly `out` (if given). */
static inline void cli_expect(const cli_proc *p, int status, const char *out, const char *what)
{
    if (p->status != status || (out && strcmp(p->obuf, out) != 0)) {
        fprintf(stderr, "%s: exit %d (want %d)\nstdout:\n%s\n(want:\n%s)\nstderr:\n%s\n", what,
                p->status, status, p->obuf, out ? out : "(anything)", p->ebuf);
        exit(1);
    }
}

/* Fails the test unless stderr contains needle. */
static inline void cli_expect_err(const cli_proc *p, const char *needle, const char *what)
{
    if (!strstr(p->ebuf, needle)) {
        fprintf(stderr, "%s: stderr lacks '%s':\n%s\n", what, needle, p->ebuf);
        exit(1);
    }
}

/* A fresh ipc:// URL in this test's private directory. */
static inline void cli_ipc_url(char *buf, size_t cap)
{
    snprintf(buf, cap, "ipc://%s/%s", tu_tmpdir(), tu_unique("cli"));
}

#endif
