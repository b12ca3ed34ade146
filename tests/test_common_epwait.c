/*
 * test_common_epwait.c - fy_epoll_wait: nanosecond deadlines, and the fallback for kernels (or
 * valgrind) without epoll_pwait2.
 *
 * The fallback is exercised for real: a forked child installs a seccomp filter that makes
 * epoll_pwait2 fail with ENOSYS, then runs a ferry PAIR over ipc:// with a receive timeout. Before
 * the fallback existed, both the control thread and the blocked owner retried epoll_pwait2 in a
 * loop, burning a core for the whole wait; the child checks that it consumed almost no CPU while
 * blocked, that the timeout still fires, and that messages still flow.
 */
#include "common/epwait.h"
#include "testutil.h"

#include <ferry/ferry.h>

#include <errno.h>
#include <limits.h>
#include <linux/audit.h>
#include <linux/filter.h>
#include <linux/seccomp.h>
#include <stddef.h>
#include <string.h>
#include <sys/eventfd.h>
#include <sys/prctl.h>
#include <sys/resource.h>
#include <sys/syscall.h>
#include <sys/wait.h>
#include <unistd.h>

static void test_timeout_ms(void)
{
    CHECK(fy_epoll_timeout_ms(0) == 0);
    CHECK(fy_epoll_timeout_ms(1) == 1);
    CHECK(fy_epoll_timeout_ms(999999) == 1);
    CHECK(fy_epoll_timeout_ms(1000000) == 1);
    CHECK(fy_epoll_timeout_ms(1000001) == 2);
    CHECK(fy_epoll_timeout_ms(UINT64_MAX) == -1);
    CHECK(fy_epoll_timeout_ms(UINT64_MAX - 1) == INT_MAX);
}

/* Ready fd: the event is reported at once; idle fd: 0 after no less than the timeout. */
static void test_wait_basics(void)
{
    int ep = epoll_create1(EPOLL_CLOEXEC);
    int ev = eventfd(0, EFD_CLOEXEC | EFD_NONBLOCK);
    CHECK(ep >= 0 && ev >= 0);
    struct epoll_event e = {.events = EPOLLIN, .data.u64 = 42};
    CHECK(epoll_ctl(ep, EPOLL_CTL_ADD, ev, &e) == 0);

    struct epoll_event out[4];
    uint64_t t0 = tu_now_ns();
    CHECK(fy_epoll_wait(ep, out, 4, 20000000u) == 0);
    CHECK(tu_now_ns() - t0 >= 20000000u);
    CHECK(fy_epoll_wait(ep, out, 4, 0) == 0);

    uint64_t one = 1;
    CHECK(write(ev, &one, sizeof one) == (ssize_t)sizeof one);
    CHECK(fy_epoll_wait(ep, out, 4, UINT64_MAX) == 1);
    CHECK(out[0].data.u64 == 42);
    close(ev);
    close(ep);
}

static double cpu_seconds(void)
{
    struct rusage ru;
    CHECK(getrusage(RUSAGE_SELF, &ru) == 0);
    return (double)ru.ru_utime.tv_sec + (double)ru.ru_utime.tv_usec / 1e6 +
           (double)ru.ru_stime.tv_sec + (double)ru.ru_stime.tv_usec / 1e6;
}

/* epoll_pwait2 -> ENOSYS for this process from now on (x86-64 and aarch64 share the number). */
static int deny_epoll_pwait2(void)
{
#ifndef SYS_epoll_pwait2
    return -1;
#else
    struct sock_filter prog[] = {
        BPF_STMT(BPF_LD | BPF_W | BPF_ABS, offsetof(struct seccomp_data, nr)),
        BPF_JUMP(BPF_JMP | BPF_JEQ | BPF_K, SYS_epoll_pwait2, 0, 1),
        BPF_STMT(BPF_RET | BPF_K, SECCOMP_RET_ERRNO | (ENOSYS & SECCOMP_RET_DATA)),
        BPF_STMT(BPF_RET | BPF_K, SECCOMP_RET_ALLOW),
    };
    struct sock_fprog fp = {.len = (unsigned short)(sizeof prog / sizeof prog[0]), .filter = prog};
    if (prctl(PR_SET_NO_NEW_PRIVS, 1, 0, 0, 0) != 0)
        return -1;
    return prctl(PR_SET_SECCOMP, SECCOMP_MODE_FILTER, &fp, 0, 0);
#endif
}

static int child_without_pwait2(void)
{
    if (deny_epoll_pwait2() != 0) {
        fprintf(stderr, "seccomp unavailable (%s): fallback not tested\n", strerror(errno));
        return TEST_SKIP;
    }
    struct timespec ts = {0, 1000};
    errno = 0;
    CHECK(syscall(SYS_epoll_pwait2, -1, NULL, 1, &ts, NULL, 0) == -1 && errno == ENOSYS);

    test_wait_basics();

    char url[256];
    snprintf(url, sizeof url, "ipc://%s/%s", tu_tmpdir(), tu_unique("epw"));
    ferry_socket *a = NULL, *b = NULL;
    CHECK_OK(ferry_socket_open(&a, FERRY_PAIR));
    CHECK_OK(ferry_socket_open(&b, FERRY_PAIR));
    CHECK_OK(ferry_socket_setopt_int(a, FERRY_OPT_RCVTIMEO, 5000));
    CHECK_OK(ferry_socket_bind(a, url));
    CHECK_OK(ferry_socket_connect(b, url));
    CHECK_OK(ferry_socket_send(b, "hello", 5, 0));
    char buf[16];
    CHECK_RC(ferry_socket_recv(a, buf, sizeof buf, 0, NULL), 5);
    CHECK(memcmp(buf, "hello", 5) == 0);

    /* Blocked in recv with nothing coming: both the owner and the control thread sleep. */
    CHECK_OK(ferry_socket_setopt_int(a, FERRY_OPT_RCVTIMEO, 400));
    double c0 = cpu_seconds();
    uint64_t t0 = tu_now_ns();
    CHECK_RC(ferry_socket_recv(a, buf, sizeof buf, 0, NULL), FERRY_EAGAIN);
    uint64_t waited = tu_now_ns() - t0;
    double used = cpu_seconds() - c0;
    fprintf(stderr, "fallback: waited %.0f ms, used %.1f ms of CPU\n", (double)waited / 1e6,
            used * 1e3);
    CHECK(waited >= 400000000u);
    /* A retry loop on ENOSYS would use most of the 400 ms even on a loaded machine. */
    CHECK(used < 0.1);

    CHECK_OK(ferry_socket_send(a, "back", 4, 0));
    CHECK_OK(ferry_socket_setopt_int(b, FERRY_OPT_RCVTIMEO, 5000));
    CHECK_RC(ferry_socket_recv(b, buf, sizeof buf, 0, NULL), 4);
    ferry_socket_close(a);
    ferry_socket_close(b);
    return 0;
}

int main(void)
{
    tu_deadline(60);
    test_timeout_ms();
    test_wait_basics();

    pid_t pid = fork();
    CHECK(pid >= 0);
    if (pid == 0)
        _exit(child_without_pwait2());
    int st = 0;
    CHECK(waitpid(pid, &st, 0) == pid);
    CHECK(WIFEXITED(st));
    if (WEXITSTATUS(st) == TEST_SKIP)
        return TEST_SKIP;
    CHECK(WEXITSTATUS(st) == 0);
    fprintf(stderr, "test_common_epwait: ok\n");
    return 0;
}
