/* testutil.c - shared helpers for the test programs (see testutil.h). */
#include "testutil.h"

#include "ferry/ferry.h"
#include "transport/shm.h"

#include <arpa/inet.h>
#include <dirent.h>
#include <errno.h>
#include <poll.h>
#include <netinet/in.h>
#include <signal.h>
#include <stdio.h>
#include <string.h>
#include <sys/resource.h>
#include <sys/socket.h>
#include <sys/stat.h>
#include <time.h>
#include <unistd.h>

const char *tu_errname(int rc)
{
    return rc >= 0 ? "ok" : ferry_errname(rc);
}

const char *tu_unique(const char *prefix)
{
    static char bufs[8][96];
    static unsigned n;
    static unsigned salt;
    if (!salt)
        salt = (unsigned)(tu_now_ns() ^ ((uint64_t)getpid() << 16)) | 1u;
    char *b = bufs[n % 8];
    snprintf(b, sizeof bufs[0], "%s-%d-%u-%x", prefix, (int)getpid(), n, salt & 0xffffu);
    n++;
    return b;
}

const char *tu_tmpdir(void)
{
    static char dir[256];
    if (dir[0])
        return dir;
    const char *base = getenv("FERRY_TEST_TMP");
    if (!base || !*base)
        base = "/tmp";
    mkdir(base, 0700);
    snprintf(dir, sizeof dir, "%s/t-%d-%llx", base, (int)getpid(),
             (unsigned long long)(tu_now_ns() & 0xffffff));
    if (mkdir(dir, 0700) != 0) {
        perror("mkdir test tmpdir");
        exit(1);
    }
    return dir;
}

/* The kernel's ephemeral range (what bind to port 0 and every outgoing connect draw from). */
static void tu_ephemeral_range(int *lo, int *hi)
{
    *lo = 32768;
    *hi = 60999;
    FILE *f = fopen("/proc/sys/net/ipv4/ip_local_port_range", "r");
    if (!f)
        return;
    int a, b;
    if (fscanf(f, "%d %d", &a, &b) == 2 && a > 0 && b >= a && b <= 65535) {
        *lo = a;
        *hi = b;
    }
    fclose(f);
}

/* Binds a probe socket to port (0: the kernel picks); the port bound, or -1 when taken. */
static int tu_probe_port(int port)
{
    int fd = socket(AF_INET, SOCK_STREAM, 0);
    CHECK(fd >= 0);
    struct sockaddr_in a;
    memset(&a, 0, sizeof a);
    a.sin_family = AF_INET;
    a.sin_addr.s_addr = htonl(INADDR_LOOPBACK);
    a.sin_port = htons((uint16_t)port);
    int got = -1;
    if (bind(fd, (struct sockaddr *)&a, sizeof a) == 0) {
        socklen_t l = sizeof a;
        CHECK(getsockname(fd, (struct sockaddr *)&a, &l) == 0);
        got = ntohs(a.sin_port);
    } else {
        CHECK(errno == EADDRINUSE || errno == EACCES);
    }
    close(fd);
    return got;
}

/*
 * Outside the ephemeral range when there is room for one: a port handed out there can be taken,
 * between the probe and the caller's bind (or between a child listener's rounds), by any test
 * running beside this one that binds port 0 or connects anywhere. Below the range only another
 * tu_free_port caller, picking at random among thousands, can collide.
 */
int tu_free_port(void)
{
    int lo, hi;
    tu_ephemeral_range(&lo, &hi);
    int from = 1024, to = lo - 1; /* below the range, else above it */
    if (to - from < 1000) {
        from = hi + 1;
        to = 65535;
    }
    if (to - from >= 1000) {
        static uint64_t x;
        if (!x)
            x = tu_now_ns() ^ ((uint64_t)getpid() << 32) ^ 0x9e3779b97f4a7c15ull;
        for (int tries = 0; tries < 200; tries++) {
            x ^= x << 13;
            x ^= x >> 7;
            x ^= x << 17;
            int port = tu_probe_port(from + (int)(x % (uint64_t)(to - from + 1)));
            if (port > 0)
                return port;
        }
    }
    int port = tu_probe_port(0);
    CHECK(port > 0);
    return port;
}

uint64_t tu_now_ns(void)
{
    struct timespec ts;
    clock_gettime(CLOCK_MONOTONIC, &ts);
    return (uint64_t)ts.tv_sec * 1000000000u + (uint64_t)ts.tv_nsec;
}

static void tu_on_alarm(int sig)
{
    (void)sig;
    static const char msg[] = "test deadline exceeded\n";
    ssize_t r = write(2, msg, sizeof msg - 1);
    (void)r;
    _exit(1);
}

void tu_deadline(unsigned seconds)
{
    signal(SIGALRM, tu_on_alarm);
    alarm(seconds);
}

ferry_socket *tu_open_sock(int type)
{
    ferry_socket *s = NULL;
    CHECK_OK(ferry_socket_open(&s, type));
    CHECK_OK(ferry_socket_setopt_int(s, FERRY_OPT_LINGER, 0));
    CHECK_OK(ferry_socket_setopt_int(s, FERRY_OPT_RCVTIMEO, TU_TIMEOUT_MS));
    CHECK_OK(ferry_socket_setopt_int(s, FERRY_OPT_SNDTIMEO, TU_TIMEOUT_MS));
    return s;
}

void tu_ipc_url(char *buf, size_t cap, const char *tag)
{
    snprintf(buf, cap, "ipc://%s/%s", tu_tmpdir(), tu_unique(tag));
}

void tu_transport_url(char *buf, size_t cap, const char *transport, const char *tag)
{
    if (strcmp(transport, "ipc") == 0)
        tu_ipc_url(buf, cap, tag);
    else if (strcmp(transport, "tcp") == 0)
        snprintf(buf, cap, "tcp://127.0.0.1:%d", tu_free_port());
    else
        snprintf(buf, cap, "%s://%s", transport, tu_unique(tag));
}

ferry_socket *tu_open_sock_on(int type, const char *transport)
{
    ferry_socket *s = tu_open_sock(type);
    if (strcmp(transport, "ipc") == 0)
        CHECK_OK(ferry_socket_setopt_int(s, FERRY_OPT_SHM_UPGRADE, 0));
    return s;
}

void tu_bind_on(ferry_socket *s, const char *transport, char *buf, size_t cap, const char *tag)
{
    for (int tries = 0;; tries++) {
        tu_transport_url(buf, cap, transport, tag);
        int rc = ferry_socket_bind(s, buf);
        if (rc == 0)
            return;
        CHECK(rc == FERRY_EADDRINUSE && tries < 20);
    }
}

void tu_wait_peers(ferry_socket *s, uint32_t n)
{
    uint64_t end = tu_now_ns() + (uint64_t)TU_TIMEOUT_MS * 1000000u;
    for (;;) {
        ferry_stats st;
        CHECK_OK(ferry_socket_stats(s, &st));
        if (st.peers == n)
            return;
        CHECK(tu_now_ns() < end);
        ferry_pollitem it = {s, -1, FERRY_POLLIN, 0};
        ferry_poll(&it, 1, 5); /* any socket activity or 5 ms, then look again */
    }
}

void tu_send_str(ferry_socket *s, const char *str, int flags)
{
    CHECK_OK(ferry_socket_send(s, str, strlen(str), flags));
}

void tu_recv_str(ferry_socket *s, const char *want, bool more)
{
    char buf[256];
    int m = -1;
    ssize_t n = ferry_socket_recv(s, buf, sizeof buf, 0, &m);
    if (n < 0) {
        fprintf(stderr, "recv (want '%s'): %s\n", want, ferry_errname((int)n));
        exit(1);
    }
    if ((size_t)n != strlen(want) || memcmp(buf, want, (size_t)n) != 0) {
        fprintf(stderr, "got '%.*s', want '%s'\n", (int)(n < 256 ? n : 256), buf, want);
        exit(1);
    }
    CHECK(m == (more ? 1 : 0));
}

void tu_expect_sub(ferry_socket *x, bool on, const char *prefix)
{
    char buf[256];
    ssize_t n = ferry_socket_recv(x, buf, sizeof buf, 0, NULL);
    size_t len = strlen(prefix);
    if (n != (ssize_t)len + 1 || buf[0] != (on ? 1 : 0) || memcmp(buf + 1, prefix, len) != 0) {
        fprintf(stderr, "want %s '%s', got %zd bytes (first %d)\n", on ? "sub" : "cancel", prefix,
                n, n > 0 ? buf[0] : -1);
        exit(1);
    }
}

int tu_count_fds(void)
{
    DIR *d = opendir("/proc/self/fd");
    CHECK(d);
    int n = 0;
    while (readdir(d))
        n++;
    closedir(d);
    return n;
}

int tu_count_segment_maps(void)
{
    FILE *f = fopen("/proc/self/maps", "r");
    CHECK(f);
    char line[512];
    int n = 0;
    while (fgets(line, sizeof line, f))
        n += strstr(line, "memfd:ferry-segment") != NULL;
    fclose(f);
    return n;
}

int tu_shm_handover(struct fy_shm_hs *hs, int fd)
{
    for (;;) {
        bool want_out;
        int rc = fy_shm_hs_step(hs, fd, &want_out);
        if (rc != 0)
            return rc;
        struct pollfd p = {.fd = fd, .events = want_out ? POLLOUT : POLLIN};
        if (poll(&p, 1, 10000) != 1)
            return FERRY_ETIMEDOUT;
    }
}

struct fy_pipe *tu_shm_pipe_fork(size_t ring, int sndhwm, uint64_t max_msg, pid_t *child)
{
    int sv[2];
    CHECK(socketpair(AF_UNIX, SOCK_STREAM | SOCK_NONBLOCK | SOCK_CLOEXEC, 0, sv) == 0);
    *child = fork();
    CHECK(*child >= 0);
    int me = *child == 0 ? 1 : 0;
    close(sv[1 - me]);
    fy_shm_hs hs;
    fy_shm_hs_init(&hs, me, ring);
    CHECK_RC(tu_shm_handover(&hs, sv[me]), 1);
    fy_shm_link *l = fy_shm_hs_take(&hs);
    fy_shm_hs_fini(&hs);
    CHECK(l);
    fy_shm_pipe_cfg cfg = {.sndhwm = sndhwm, .max_msg = max_msg};
    fy_pipe *p = NULL;
    CHECK_OK(fy_shm_pipe_new(&p, NULL, l, sv[me], &cfg));
    return p;
}

void tu_shm_pipe_wait(struct fy_pipe *p, bool in, bool out)
{
    if (fy_shm_pipe_prepare_wait(p, in, out) != 1)
        return;
    struct pollfd f[2] = {{.fd = p->rfd, .events = POLLIN},
                          {.fd = fy_shm_pipe_usock(p), .events = POLLRDHUP}};
    CHECK(poll(f, 2, 10000) >= 1);
    if (f[1].revents & (POLLHUP | POLLRDHUP | POLLERR))
        fy_shm_pipe_kill(p, FERRY_EPIPE);
}

void tu_fill_seeded(uint8_t *b, size_t n, uint32_t seed)
{
    for (size_t i = 0; i < n; i++)
        b[i] = (uint8_t)(seed * 31u + i * 7u + (i >> 8));
}

bool tu_check_seeded(const uint8_t *b, size_t n, uint32_t seed)
{
    for (size_t i = 0; i < n; i++)
        if (b[i] != (uint8_t)(seed * 31u + i * 7u + (i >> 8)))
            return false;
    return true;
}

double tu_cpu_ms(void)
{
    struct rusage ru;
    CHECK(getrusage(RUSAGE_SELF, &ru) == 0);
    return (double)(ru.ru_utime.tv_sec + ru.ru_stime.tv_sec) * 1e3 +
           (double)(ru.ru_utime.tv_usec + ru.ru_stime.tv_usec) / 1e3;
}

static uint8_t tu_frame_byte(uint32_t i, uint32_t k, size_t j)
{
    return (uint8_t)(i * 31u + k * 7u + (uint32_t)j * 13u + 1u);
}

void tu_fill_frame(uint8_t *b, size_t n, uint32_t i, uint32_t k)
{
    for (size_t j = 0; j < n; j++)
        b[j] = tu_frame_byte(i, k, j);
}

bool tu_frame_ok(const uint8_t *b, size_t got, size_t want, uint32_t i, uint32_t k)
{
    if (got != want)
        return false;
    for (size_t j = 0; j < got; j++)
        if (b[j] != tu_frame_byte(i, k, j))
            return false;
    return true;
}

void tu_write_all(int fd, const void *buf, size_t n)
{
    const uint8_t *p = buf;
    while (n) {
        ssize_t w = write(fd, p, n);
        if (w < 0 && errno == EINTR)
            continue;
        CHECK(w > 0);
        p += w;
        n -= (size_t)w;
    }
}
