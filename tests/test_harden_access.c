/*
 * test_harden_access.c - who may reach a ferry socket, end to end through the
 * public API.
 *  - ipc:// socket files are 0600 and the shm:// runtime directory 0700 (socket
 * files 0600) under umask 0, 022 and 0777 (each in a fresh child so the runtime
 * directory is created anew).
 *  - A foreign uid (a child that drops to 65534; root needed, else those parts
 * are skipped) is refused by SO_PEERCRED on ipc:// (an abstract name, so file
 * permissions cannot be what stops it) and on shm:// (the runtime directory
 * opened up after bind, so again only the credential check stands), and
 * accepted on ipc:// when FERRY_OPT_PEER_UID names it on both sides; that link
 * is then upgraded to shared memory like any other.
 *  - Every memfd segment this process holds for a live shm link is sealed:
 * ftruncate (shrink or grow) and fallocate beyond its size fail with EPERM.
 */
#include "ferry/ferry.h"
#include "testutil.h"
#include "wire/zmtp.h"

#include <dirent.h>
#include <errno.h>
#include <fcntl.h>
#include <grp.h>
#include <poll.h>
#include <signal.h>
#include <stdbool.h>
#include <stdio.h>
#include <stdlib.h>
#include <string.h>
#include <sys/socket.h>
#include <sys/stat.h>
#include <sys/un.h>
#include <sys/wait.h>
#include <unistd.h>

/* The forked children start a control thread; under ThreadSanitizer that needs
 * this. */
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

static int reap(pid_t pid)
{
    int st;
    CHECK(waitpid(pid, &st, 0) == pid);
    if (WIFEXITED(st))
        return WEXITSTATUS(st);
    fprintf(stderr, "child killed by signal %d\n", WTERMSIG(st));
    return 128 + WTERMSIG(st);
}

static void make_dir(char *out, size_t cap, const char *prefix, mode_t mode)
{
    snprintf(out, cap, "/tmp/%s", tu_unique(prefix));
    CHECK(mkdir(out, 0700) == 0);
    CHECK(chmod(out, mode) == 0);
}

static void rm_tree(const char *dir)
{
    char cmd[512];
    snprintf(cmd, sizeof cmd, "rm -rf '%s'", dir);
    CHECK(system(cmd) == 0);
}

/* ---- modes under several umasks ---- */

static void modes_child(mode_t mask, const char *xdg)
{
    umask(mask);
    CHECK(setenv("XDG_RUNTIME_DIR", xdg, 1) == 0);
    char path[400], url[420];
    snprintf(path, sizeof path, "%s/ipc-sock", xdg);
    snprintf(url, sizeof url, "ipc://%s", path);
    ferry_socket *a = sock(FERRY_PAIR), *b = sock(FERRY_PAIR);
    CHECK_OK(ferry_socket_bind(a, url));
    struct stat st;
    CHECK(lstat(path, &st) == 0 && S_ISSOCK(st.st_mode));
    if ((st.st_mode & 07777) != 0600) {
        fprintf(stderr, "umask %03o: ipc socket file mode %04o, want 0600\n", (unsigned)mask,
                (unsigned)(st.st_mode & 07777));
        _exit(10);
    }
    const char *name = tu_unique("acc");
    snprintf(url, sizeof url, "shm://%s", name);
    int rc = ferry_socket_bind(b, url);
    if (rc == FERRY_EPROTONOSUPPORT)
        _exit(0);
    CHECK_OK(rc);
    char dir[300];
    snprintf(dir, sizeof dir, "%s/ferry", xdg);
    CHECK(lstat(dir, &st) == 0 && S_ISDIR(st.st_mode));
    if ((st.st_mode & 07777) != 0700 || st.st_uid != geteuid()) {
        fprintf(stderr, "umask %03o: shm runtime directory mode %04o, want 0700\n", (unsigned)mask,
                (unsigned)(st.st_mode & 07777));
        _exit(11);
    }
    snprintf(path, sizeof path, "%s/%s", dir, name);
    CHECK(lstat(path, &st) == 0 && S_ISSOCK(st.st_mode));
    if ((st.st_mode & 07777) != 0600) {
        fprintf(stderr, "umask %03o: shm socket file mode %04o, want 0600\n", (unsigned)mask,
                (unsigned)(st.st_mode & 07777));
        _exit(12);
    }
    /* And it works under that umask. */
    ferry_socket *c = sock(FERRY_PAIR);
    CHECK_OK(ferry_socket_connect(c, url));
    CHECK_OK(ferry_socket_send(c, "m", 1, 0));
    char x;
    CHECK_RC(ferry_socket_recv(b, &x, 1, 0, NULL), 1);
    ferry_socket_close(c);
    ferry_socket_close(a);
    ferry_socket_close(b);
    _exit(0);
}

static void test_modes(void)
{
    const mode_t masks[] = {0, 022, 0777};
    for (size_t i = 0; i < sizeof masks / sizeof *masks; i++) {
        char xdg[200];
        make_dir(xdg, sizeof xdg, "fyxdg", 0700);
        fflush(stdout);
        pid_t pid = fork();
        CHECK(pid >= 0);
        if (pid == 0)
            modes_child(masks[i], xdg);
        CHECK(reap(pid) == 0);
        rm_tree(xdg);
    }
    printf("modes: ipc socket 0600, shm directory 0700 and socket 0600 under "
           "umask 000/022/777\n");
}

/* ---- foreign uid ---- */

static void drop_to_nobody(void)
{
    if (setgroups(0, NULL) != 0 || setgid(65534) != 0 || setuid(65534) != 0)
        _exit(3);
}

/* A raw AF_UNIX client that completes the ZMTP handshake bytes and expects to
 * be dropped. */
static int raw_expect_refused(const struct sockaddr_un *a, socklen_t len)
{
    int fd = socket(AF_UNIX, SOCK_STREAM | SOCK_CLOEXEC, 0);
    if (fd < 0)
        return 20;
    if (connect(fd, (const struct sockaddr *)a, len) != 0)
        return 21;
    uint8_t buf[600];
    CHECK(fy_zmtp_greeting_encode(buf, 1, "NULL", 0) == 64);
    ssize_t n = fy_zmtp_ready_encode(buf + 64, sizeof buf - 64, FERRY_PAIR, NULL, 0, NULL);
    CHECK(n > 0);
    ssize_t w = send(fd, buf, 64 + (size_t)n, MSG_NOSIGNAL);
    (void)w; /* the listener may already have dropped us */
    uint64_t end = tu_now_ns() + 10000000000ull;
    while (tu_now_ns() < end) {
        struct pollfd p = {.fd = fd, .events = POLLIN};
        if (poll(&p, 1, 500) <= 0)
            continue;
        ssize_t r = read(fd, buf, sizeof buf);
        if (r == 0 || (r < 0 && errno == ECONNRESET)) {
            close(fd);
            return 0;
        }
        if (r < 0)
            return 22;
    }
    return 23; /* still connected after 10 s: not refused */
}

static void test_foreign_ipc(void)
{
    /* Abstract name: no file, so only SO_PEERCRED protects it. */
    char url[200];
    snprintf(url, sizeof url, "ipc://@%s", tu_unique("fyabs"));
    ferry_socket *s = sock(FERRY_PAIR);
    CHECK_OK(ferry_socket_bind(s, url));
    struct sockaddr_un a = {.sun_family = AF_UNIX};
    size_t nl = strlen(url + 7);
    memcpy(a.sun_path + 1, url + 7, nl);
    socklen_t alen = (socklen_t)(offsetof(struct sockaddr_un, sun_path) + 1 + nl);

    pid_t pid = fork();
    CHECK(pid >= 0);
    if (pid == 0) {
        drop_to_nobody();
        _exit(raw_expect_refused(&a, alen));
    }
    CHECK(reap(pid) == 0);
    /* A ferry client of the foreign uid: never delivered. */
    pid = fork();
    CHECK(pid >= 0);
    if (pid == 0) {
        drop_to_nobody();
        ferry_socket *c = sock(FERRY_PAIR);
        CHECK_OK(ferry_socket_connect(c, url));
        CHECK_OK(ferry_socket_setopt_int(c, FERRY_OPT_SNDTIMEO, 300));
        int rc = ferry_socket_send(c, "x", 1, 0);
        ferry_socket_close(c);
        _exit(rc == FERRY_EAGAIN || rc == FERRY_ETIMEDOUT ? 0 : 4);
    }
    CHECK(reap(pid) == 0);
    ferry_stats st;
    CHECK_OK(ferry_socket_stats(s, &st));
    CHECK(st.peers == 0 && st.msgs_in == 0);

    /* Allowed on both sides: accepted, and the link upgrades to shm like a
     * same-uid one. */
    /* Like other link options, PEER_UID applies to endpoints bound or connected after it. */
    CHECK_OK(ferry_socket_setopt_int(s, FERRY_OPT_PEER_UID, 65534));
    snprintf(url, sizeof url, "ipc://@%s", tu_unique("fyabs"));
    CHECK_OK(ferry_socket_bind(s, url));
    pid = fork();
    CHECK(pid >= 0);
    if (pid == 0) {
        drop_to_nobody();
        ferry_socket *c = sock(FERRY_PAIR);
        CHECK_OK(ferry_socket_setopt_int(c, FERRY_OPT_PEER_UID, 0));
        CHECK_OK(ferry_socket_connect(c, url));
        CHECK_OK(ferry_socket_send(c, "hello", 5, 0));
        char b[16];
        ssize_t r = ferry_socket_recv(c, b, sizeof b, 0, NULL);
        ferry_socket_close(c);
        _exit(r == 3 && memcmp(b, "bye", 3) == 0 ? 0 : 5);
    }
    char b[16];
    CHECK_RC(ferry_socket_recv(s, b, sizeof b, 0, NULL), 5);
    CHECK(memcmp(b, "hello", 5) == 0);
    CHECK_OK(ferry_socket_stats(s, &st));
    printf("foreign uid on ipc://: refused by default (raw and ferry client), "
           "accepted with "
           "FERRY_OPT_PEER_UID (peers %u, of which shm %u)\n",
           st.peers, st.peers_shm);
    CHECK_OK(ferry_socket_send(s, "bye", 3, 0));
    CHECK(reap(pid) == 0);
    ferry_socket_close(s);
}

static void test_foreign_shm(void)
{
    char xdg[200];
    make_dir(xdg, sizeof xdg, "fyxdgf", 0700);
    CHECK(setenv("XDG_RUNTIME_DIR", xdg, 1) == 0);
    const char *name = tu_unique("fyshm");
    char url[200], path[400], dir[300];
    snprintf(url, sizeof url, "shm://%s", name);
    ferry_socket *s = sock(FERRY_PAIR);
    int rc = ferry_socket_bind(s, url);
    if (rc == FERRY_EPROTONOSUPPORT) {
        printf("shm:// not available: foreign-uid shm part skipped\n");
        ferry_socket_close(s);
        rm_tree(xdg);
        return;
    }
    CHECK_OK(rc);
    snprintf(dir, sizeof dir, "%s/ferry", xdg);
    snprintf(path, sizeof path, "%s/%s", dir, name);

    /* By name, the foreign uid cannot even resolve our runtime directory (it is
     * not its own). */
    pid_t pid = fork();
    CHECK(pid >= 0);
    if (pid == 0) {
        drop_to_nobody();
        ferry_socket *c = sock(FERRY_PAIR);
        int crc = ferry_socket_connect(c, url);
        int code = 0;
        if (crc == 0) {
            CHECK_OK(ferry_socket_setopt_int(c, FERRY_OPT_SNDTIMEO, 300));
            int src = ferry_socket_send(c, "x", 1, 0);
            code = src == FERRY_EAGAIN || src == FERRY_ETIMEDOUT ? 0 : 6;
        }
        ferry_socket_close(c);
        _exit(code);
    }
    CHECK(reap(pid) == 0);

    /* Open the directory and file up after bind so that only the credential check
     * remains. */
    CHECK(chmod(xdg, 0711) == 0 && chmod(dir, 0711) == 0 && chmod(path, 0777) == 0);
    struct sockaddr_un a = {.sun_family = AF_UNIX};
    CHECK(strlen(path) < sizeof a.sun_path);
    memcpy(a.sun_path, path, strlen(path) + 1);
    pid = fork();
    CHECK(pid >= 0);
    if (pid == 0) {
        drop_to_nobody();
        _exit(raw_expect_refused(&a, sizeof a));
    }
    CHECK(reap(pid) == 0);
    ferry_stats st;
    CHECK_OK(ferry_socket_stats(s, &st));
    CHECK(st.peers == 0 && st.msgs_in == 0);
    CHECK(chmod(dir, 0700) == 0 && chmod(xdg, 0700) == 0);
    printf("foreign uid on shm://: unreachable by name, refused by SO_PEERCRED "
           "when the directory "
           "is opened\n");
    ferry_socket_close(s);
    rm_tree(xdg);
    CHECK(unsetenv("XDG_RUNTIME_DIR") == 0);
}

/* ---- memfd seals ---- */

/* Seals on one memfd: nothing can shrink, grow or unseal it, and its size is
 * unchanged. */
static void check_sealed(int fd, const char *what, bool writable)
{
    struct stat st;
    CHECK(fstat(fd, &st) == 0);
    int seals = fcntl(fd, F_GET_SEALS);
    int need = F_SEAL_SHRINK | F_SEAL_GROW | F_SEAL_SEAL;
    if (seals < 0 || (seals & need) != need) {
        fprintf(stderr, "%s: seals 0x%x, want shrink|grow|seal\n", what, seals);
        exit(1);
    }
    if (!writable)
        return; /* a read-only view: the seals above are what a writer would meet */
    CHECK(ftruncate(fd, st.st_size + 4096) == -1 && errno == EPERM);
    CHECK(ftruncate(fd, 0) == -1 && errno == EPERM);
    CHECK(ftruncate(fd, st.st_size / 2) == -1 && errno == EPERM);
    CHECK(posix_fallocate(fd, st.st_size, 4096) == EPERM);
    CHECK(fcntl(fd, F_ADD_SEALS, F_SEAL_WRITE) == -1 && errno == EPERM);
    struct stat st2;
    CHECK(fstat(fd, &st2) == 0 && st2.st_size == st.st_size);
}

/* Every memfd this process maps (via /proc/self/map_files, root only) or holds
 * open. */
static int n_rw;

static int check_memfds(void)
{
    int n = 0;
    FILE *f = fopen("/proc/self/maps", "r");
    CHECK(f != NULL);
    char line[512];
    while (fgets(line, sizeof line, f)) {
        if (!strstr(line, "/memfd:"))
            continue;
        char range[64];
        CHECK(sscanf(line, "%63s", range) == 1);
        char p[128];
        snprintf(p, sizeof p, "/proc/self/map_files/%s", range);
        bool rw = true;
        int fd = open(p, O_RDWR | O_CLOEXEC);
        if (fd < 0) {
            rw = false;
            fd = open(p, O_RDONLY | O_CLOEXEC);
        }
        if (fd < 0)
            continue; /* not root: fall back to open fds below */
        check_sealed(fd, line, rw);
        n_rw += rw;
        close(fd);
        n++;
    }
    fclose(f);
    DIR *d = opendir("/proc/self/fd");
    CHECK(d != NULL);
    struct dirent *e;
    while ((e = readdir(d)) != NULL) {
        if (e->d_name[0] == '.')
            continue;
        int fd = atoi(e->d_name);
        char p[64], t[256];
        snprintf(p, sizeof p, "/proc/self/fd/%d", fd);
        ssize_t l = readlink(p, t, sizeof t - 1);
        if (l <= 0)
            continue;
        t[l] = 0;
        if (strncmp(t, "/memfd:", 7) != 0)
            continue;
        int acc = fcntl(fd, F_GETFL) & O_ACCMODE;
        check_sealed(fd, t, acc == O_RDWR);
        n_rw += acc == O_RDWR;
        n++;
    }
    closedir(d);
    return n;
}

static void test_memfd_seals(void)
{
    /* One shm:// link and one upgraded ipc:// link, both with traffic. */
    char xdg[200];
    make_dir(xdg, sizeof xdg, "fyxdgm", 0700);
    CHECK(setenv("XDG_RUNTIME_DIR", xdg, 1) == 0);
    char url[200];
    snprintf(url, sizeof url, "shm://%s", tu_unique("seal"));
    ferry_socket *a = sock(FERRY_PAIR), *b = sock(FERRY_PAIR);
    int rc = ferry_socket_bind(a, url);
    if (rc == FERRY_EPROTONOSUPPORT) {
        printf("shm:// not available: memfd seal check skipped\n");
        ferry_socket_close(a);
        ferry_socket_close(b);
        rm_tree(xdg);
        return;
    }
    CHECK_OK(rc);
    CHECK_OK(ferry_socket_connect(b, url));
    CHECK_OK(ferry_socket_send(b, "s", 1, 0));
    char x;
    CHECK_RC(ferry_socket_recv(a, &x, 1, 0, NULL), 1);
    CHECK_OK(ferry_socket_send(a, "t", 1, 0));
    CHECK_RC(ferry_socket_recv(b, &x, 1, 0, NULL), 1);
    int n = check_memfds();
    CHECK(n > 0 || geteuid() != 0); /* root sees every mapping: a live shm link has one */
    printf("memfd seals: %d memfd mapping(s)/fd(s), all sealed; %d opened read-write and "
           "ftruncate/fallocate/F_ADD_SEALS gave EPERM\n",
           n, n_rw);
    CHECK(n_rw > 0 || geteuid() != 0);
    ferry_socket_close(b);
    ferry_socket_close(a);
    rm_tree(xdg);
    CHECK(unsetenv("XDG_RUNTIME_DIR") == 0);
}

int main(void)
{
    tu_deadline(100);
    signal(SIGPIPE, SIG_IGN);
    test_modes();
    test_memfd_seals();
    if (geteuid() != 0) {
        printf("not root: foreign-uid parts skipped\n");
        return TEST_SKIP;
    }
    test_foreign_ipc();
    test_foreign_shm();
    return 0;
}
