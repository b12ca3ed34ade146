/*
 * test_ring_segment.c - sealed memfd and named segments: the seals hold against a peer that was
 * given the fd, unsealed or foreign fds are refused on attach, an allocation the memory file
 * system cannot hold fails at create time (never SIGBUS later), read-only attach really is
 * read-only, and every bad argument is rejected.
 */
#include "ferry/ring.h"
#include "testutil.h"

#include <errno.h>
#include <fcntl.h>
#include <sched.h>
#include <signal.h>
#include <string.h>
#include <sys/mman.h>
#include <sys/mount.h>
#include <sys/socket.h>
#include <sys/stat.h>
#include <sys/wait.h>
#include <unistd.h>

static int wait_child(pid_t pid)
{
    int st;
    CHECK(waitpid(pid, &st, 0) == pid);
    if (WIFSIGNALED(st))
        return 1000 + WTERMSIG(st);
    return WEXITSTATUS(st);
}

static void send_fd(int sock, int fd)
{
    char dummy = 'x';
    struct iovec iov = {&dummy, 1};
    union {
        struct cmsghdr h;
        char buf[CMSG_SPACE(sizeof(int))];
    } u;
    memset(&u, 0, sizeof u);
    struct msghdr m = {
        .msg_iov = &iov, .msg_iovlen = 1, .msg_control = u.buf, .msg_controllen = sizeof u.buf};
    struct cmsghdr *c = CMSG_FIRSTHDR(&m);
    c->cmsg_level = SOL_SOCKET;
    c->cmsg_type = SCM_RIGHTS;
    c->cmsg_len = CMSG_LEN(sizeof(int));
    memcpy(CMSG_DATA(c), &fd, sizeof fd);
    CHECK(sendmsg(sock, &m, 0) == 1);
}

static int recv_fd(int sock)
{
    char dummy;
    struct iovec iov = {&dummy, 1};
    union {
        struct cmsghdr h;
        char buf[CMSG_SPACE(sizeof(int))];
    } u;
    struct msghdr m = {
        .msg_iov = &iov, .msg_iovlen = 1, .msg_control = u.buf, .msg_controllen = sizeof u.buf};
    CHECK(recvmsg(sock, &m, 0) == 1);
    struct cmsghdr *c = CMSG_FIRSTHDR(&m);
    CHECK(c && c->cmsg_type == SCM_RIGHTS);
    int fd;
    memcpy(&fd, CMSG_DATA(c), sizeof fd);
    return fd;
}

static void test_bad_args(void)
{
    ferry_segment *seg = (ferry_segment *)1;
    ferry_segment_opts o = {.size = 4096};
    CHECK_RC(ferry_segment_open(NULL, &o), FERRY_EINVAL);
    CHECK_RC(ferry_segment_open(&seg, NULL), FERRY_EINVAL);
    CHECK(seg == NULL); /* *out is cleared on every failure */
    seg = (ferry_segment *)1;
    o.size = 0;
    CHECK_RC(ferry_segment_open(&seg, &o), FERRY_EINVAL);
    CHECK(seg == NULL);
    o.size = 4096;
    o.flags = 0x100;
    CHECK_RC(ferry_segment_open(&seg, &o), FERRY_EINVAL);
    o.flags = FERRY_SEG_READONLY; /* attach-only flag */
    CHECK_RC(ferry_segment_open(&seg, &o), FERRY_EINVAL);
    o.flags = 0;
    o.mode = 01777;
    CHECK_RC(ferry_segment_open(&seg, &o), FERRY_EINVAL);
    o.mode = 0;
    o.size = SIZE_MAX;
    CHECK_RC(ferry_segment_open(&seg, &o), FERRY_EINVAL);
    o.size = 4096;
    o.name = "";
    CHECK_RC(ferry_segment_open(&seg, &o), FERRY_EINVAL);
    o.name = "/";
    CHECK_RC(ferry_segment_open(&seg, &o), FERRY_EINVAL);
    o.name = "a/b";
    CHECK_RC(ferry_segment_open(&seg, &o), FERRY_EINVAL);
    char longname[400];
    memset(longname, 'n', sizeof longname - 1);
    longname[sizeof longname - 1] = 0;
    o.name = longname;
    CHECK_RC(ferry_segment_open(&seg, &o), FERRY_ENAMETOOLONG);

    CHECK_RC(ferry_segment_attach(NULL, 0, 0), FERRY_EINVAL);
    CHECK_RC(ferry_segment_attach(&seg, -1, 0), FERRY_EBADF);
    CHECK_RC(ferry_segment_attach(&seg, 0, 0x100), FERRY_EINVAL);
    CHECK_RC(ferry_segment_attach(&seg, 0, FERRY_SEG_HUGEPAGES), FERRY_EINVAL);
    int closed = dup(0);
    CHECK(closed >= 0);
    close(closed);
    CHECK_RC(ferry_segment_attach(&seg, closed, 0), FERRY_EBADF);
    CHECK_RC(ferry_segment_attach_named(NULL, "x", 0), FERRY_EINVAL);
    CHECK_RC(ferry_segment_attach_named(&seg, NULL, 0), FERRY_EINVAL);
    CHECK_RC(ferry_segment_attach_named(&seg, "a/b", 0), FERRY_EINVAL);
    CHECK_RC(ferry_segment_attach_named(&seg, "x", 0x100), FERRY_EINVAL);
    CHECK_RC(ferry_segment_attach_named(&seg, tu_unique("ferry-none"), 0), FERRY_ENOENT);

    CHECK(ferry_segment_base(NULL) == NULL);
    CHECK(ferry_segment_size(NULL) == 0);
    CHECK_RC(ferry_segment_fd(NULL), FERRY_EINVAL);
    ferry_segment_close(NULL);
}

/* The creator's segment: allocated, page-rounded, sealed, usable. */
static void test_anonymous(void)
{
    ferry_segment *seg;
    ferry_segment_opts o = {.size = 100000};
    CHECK_OK(ferry_segment_open(&seg, &o));
    size_t pg = (size_t)sysconf(_SC_PAGESIZE);
    CHECK(ferry_segment_size(seg) >= 100000 && ferry_segment_size(seg) % pg == 0);
    CHECK(ferry_segment_size(seg) < 100000 + pg);
    int fd = ferry_segment_fd(seg);
    CHECK(fd >= 0);
    CHECK((fcntl(fd, F_GETFD) & FD_CLOEXEC) != 0);
    int seals = fcntl(fd, F_GET_SEALS);
    CHECK(seals >= 0);
    CHECK((seals & (F_SEAL_SHRINK | F_SEAL_GROW | F_SEAL_SEAL)) ==
          (F_SEAL_SHRINK | F_SEAL_GROW | F_SEAL_SEAL));
    struct stat st;
    CHECK(fstat(fd, &st) == 0);
    CHECK((size_t)st.st_size == ferry_segment_size(seg));
    /* posix_fallocate ran: every page is allocated (st_blocks counts 512-byte units). */
    CHECK((size_t)st.st_blocks * 512 >= ferry_segment_size(seg));
    uint8_t *b = ferry_segment_base(seg);
    CHECK(b != NULL && ((uintptr_t)b % pg) == 0);
    memset(b, 0x5a, ferry_segment_size(seg));
    /* Even we cannot change the size any more. */
    CHECK(ftruncate(fd, 4096) == -1 && errno == EPERM);
    CHECK(fcntl(fd, F_ADD_SEALS, F_SEAL_WRITE) == -1 && errno == EPERM);
    ferry_segment_close(seg);

    /* Huge pages: hugetlbfs when reserved, otherwise a normal segment with THP advice. */
    o.size = 3u << 20;
    o.flags = FERRY_SEG_HUGEPAGES;
    CHECK_OK(ferry_segment_open(&seg, &o));
    CHECK(ferry_segment_size(seg) >= (3u << 20) && ferry_segment_size(seg) % pg == 0);
    memset(ferry_segment_base(seg), 1, ferry_segment_size(seg));
    ferry_segment_close(seg);

    /* NUMA: node 0 exists on every Linux machine; node 4095 does not. */
    o.size = 65536;
    o.flags = FERRY_SEG_NUMA;
    o.numa_node = 0;
    int rc = ferry_segment_open(&seg, &o);
    if (rc == FERRY_ENOTSUP) {
        printf("NUMA support not built (libnuma-dev missing): ENOTSUP checked\n");
    } else {
        CHECK_OK(rc);
        memset(ferry_segment_base(seg), 1, ferry_segment_size(seg));
        ferry_segment_close(seg);
        o.numa_node = 4095;
        rc = ferry_segment_open(&seg, &o);
        CHECK(rc == FERRY_EINVAL || rc == FERRY_ENODEV);
        o.numa_node = -1;
        CHECK_RC(ferry_segment_open(&seg, &o), FERRY_EINVAL);
    }
}

/* A peer receives the fd over SCM_RIGHTS: it can map and write, but never resize. */
static void test_peer_cannot_resize(void)
{
    ferry_segment *seg;
    ferry_segment_opts o = {.size = 65536};
    CHECK_OK(ferry_segment_open(&seg, &o));
    int sv[2];
    CHECK(socketpair(AF_UNIX, SOCK_STREAM | SOCK_CLOEXEC, 0, sv) == 0);
    pid_t pid = fork();
    CHECK(pid >= 0);
    if (pid == 0) {
        close(sv[0]);
        int fd = recv_fd(sv[1]);
        if (ftruncate(fd, 4096) != -1 || errno != EPERM)
            _exit(2);
        if (ftruncate(fd, 1 << 20) != -1 || errno != EPERM)
            _exit(3);
        if (fallocate(fd, 0, 0, 1 << 20) != -1 || errno != EPERM)
            _exit(4);
        if (fcntl(fd, F_ADD_SEALS, F_SEAL_WRITE) != -1 || errno != EPERM)
            _exit(5);
        ferry_segment *peer;
        if (ferry_segment_attach(&peer, fd, 0) != 0)
            _exit(6);
        if (ferry_segment_size(peer) != 65536)
            _exit(7);
        ((volatile uint32_t *)ferry_segment_base(peer))[10] = 0xfeedbeef;
        ferry_segment_close(peer);
        _exit(0);
    }
    close(sv[1]);
    send_fd(sv[0], ferry_segment_fd(seg));
    CHECK(wait_child(pid) == 0);
    CHECK(((volatile uint32_t *)ferry_segment_base(seg))[10] == 0xfeedbeef);
    close(sv[0]);
    ferry_segment_close(seg);
}

/* Attach refuses fds whose size a peer could still change, and leaves them to the caller. */
static void test_attach_refuses_unsealed(void)
{
    ferry_segment *seg = NULL;
    /* A memfd without sealing support at all. */
    int fd = memfd_create("t", MFD_CLOEXEC);
    CHECK(fd >= 0 && ftruncate(fd, 65536) == 0);
    CHECK_RC(ferry_segment_attach(&seg, fd, 0), FERRY_EPROTO);
    CHECK(seg == NULL);
    CHECK(fcntl(fd, F_GETFD) >= 0); /* still ours */
    /* Trusted: accepted without seals. */
    CHECK_OK(ferry_segment_attach(&seg, fd, FERRY_SEG_TRUSTED));
    CHECK(ferry_segment_size(seg) == 65536);
    ferry_segment_close(seg); /* closes fd */

    /* Sealable but only partly sealed: each missing seal is refused. */
    static const int partial[] = {F_SEAL_SHRINK | F_SEAL_GROW, F_SEAL_SHRINK | F_SEAL_SEAL,
                                  F_SEAL_GROW | F_SEAL_SEAL, 0};
    for (size_t i = 0; i < sizeof partial / sizeof partial[0]; i++) {
        fd = memfd_create("t", MFD_CLOEXEC | MFD_ALLOW_SEALING);
        CHECK(fd >= 0 && ftruncate(fd, 65536) == 0);
        if (partial[i])
            CHECK(fcntl(fd, F_ADD_SEALS, partial[i]) == 0);
        CHECK_RC(ferry_segment_attach(&seg, fd, 0), FERRY_EPROTO);
        close(fd);
    }
    /* Fully sealed but empty, or not page-sized. */
    fd = memfd_create("t", MFD_CLOEXEC | MFD_ALLOW_SEALING);
    CHECK(fd >= 0);
    CHECK(fcntl(fd, F_ADD_SEALS, F_SEAL_SHRINK | F_SEAL_GROW | F_SEAL_SEAL) == 0);
    CHECK_RC(ferry_segment_attach(&seg, fd, 0), FERRY_EPROTO);
    close(fd);
    fd = memfd_create("t", MFD_CLOEXEC | MFD_ALLOW_SEALING);
    CHECK(fd >= 0 && ftruncate(fd, 5000) == 0);
    CHECK(fcntl(fd, F_ADD_SEALS, F_SEAL_SHRINK | F_SEAL_GROW | F_SEAL_SEAL) == 0);
    CHECK_RC(ferry_segment_attach(&seg, fd, 0), FERRY_EPROTO);
    close(fd);
    /* Not a memfd: a pipe, a regular file. */
    int p[2];
    CHECK(pipe(p) == 0);
    CHECK_RC(ferry_segment_attach(&seg, p[0], 0), FERRY_EPROTO);
    CHECK_RC(ferry_segment_attach(&seg, p[0], FERRY_SEG_TRUSTED), FERRY_EPROTO);
    close(p[0]);
    close(p[1]);
    char path[512];
    snprintf(path, sizeof path, "%s/file", tu_tmpdir());
    fd = open(path, O_RDWR | O_CREAT | O_CLOEXEC, 0600);
    CHECK(fd >= 0 && ftruncate(fd, 4096) == 0);
    CHECK_RC(ferry_segment_attach(&seg, fd, 0), FERRY_EPROTO);
    close(fd);
    unlink(path);
}

/* READONLY attach maps PROT_READ: a write kills the writer with SIGSEGV. */
static void test_readonly(void)
{
    ferry_segment *seg;
    ferry_segment_opts o = {.size = 4096};
    CHECK_OK(ferry_segment_open(&seg, &o));
    ((volatile uint8_t *)ferry_segment_base(seg))[0] = 42;
    int fd = dup(ferry_segment_fd(seg));
    CHECK(fd >= 0);
    ferry_segment *ro;
    CHECK_OK(ferry_segment_attach(&ro, fd, FERRY_SEG_READONLY));
    CHECK(((volatile uint8_t *)ferry_segment_base(ro))[0] == 42);
    pid_t pid = fork();
    CHECK(pid >= 0);
    if (pid == 0) {
        signal(SIGSEGV, SIG_DFL);
        ((volatile uint8_t *)ferry_segment_base(ro))[0] = 1;
        _exit(0);
    }
    int st = wait_child(pid);
    CHECK(st == 1000 + SIGSEGV || st == 1000 + SIGBUS || st == 1); /* 1: a sanitizer's report */
    ferry_segment_close(ro);
    ferry_segment_close(seg);
}

static void test_named(void)
{
    const char *name = tu_unique("ferry-seg");
    ferry_segment *seg, *other;
    ferry_segment_opts o = {.size = 8192, .name = name};
    CHECK_OK(ferry_segment_open(&seg, &o));
    struct stat st;
    CHECK(fstat(ferry_segment_fd(seg), &st) == 0);
    CHECK((st.st_mode & 0777) == 0600);
    CHECK_RC(ferry_segment_open(&other, &o), FERRY_EEXIST);
    ((volatile uint32_t *)ferry_segment_base(seg))[1] = 7;

    pid_t pid = fork();
    CHECK(pid >= 0);
    if (pid == 0) {
        ferry_segment *peer;
        if (ferry_segment_attach_named(&peer, name, 0) != 0)
            _exit(2);
        if (ferry_segment_size(peer) != 8192 ||
            ((volatile uint32_t *)ferry_segment_base(peer))[1] != 7)
            _exit(3);
        ((volatile uint32_t *)ferry_segment_base(peer))[2] = 9;
        ferry_segment_close(peer); /* not the creator: must not unlink */
        if (ferry_segment_attach_named(&peer, name, FERRY_SEG_READONLY) != 0)
            _exit(4);
        ferry_segment_close(peer);
        _exit(0);
    }
    CHECK(wait_child(pid) == 0);
    CHECK(((volatile uint32_t *)ferry_segment_base(seg))[2] == 9);
    ferry_segment_close(seg);
    CHECK_RC(ferry_segment_attach_named(&other, name, 0), FERRY_ENOENT);

    /* Explicit mode bits are applied exactly (umask ignored); "/name" is the same name. */
    char slashed[200];
    snprintf(slashed, sizeof slashed, "/%s", tu_unique("ferry-seg"));
    o.name = slashed;
    o.mode = 0640;
    mode_t old = umask(077);
    CHECK_OK(ferry_segment_open(&seg, &o));
    umask(old);
    CHECK(fstat(ferry_segment_fd(seg), &st) == 0);
    CHECK((st.st_mode & 0777) == 0640);
    CHECK_OK(ferry_segment_attach_named(&other, slashed + 1, 0));
    ferry_segment_close(other);
    ferry_segment_close(seg);
}

/* Sizes no memory file system can hold fail at create time with a clear error. */
static void test_too_big(void)
{
    ferry_segment *seg = (ferry_segment *)1;
    ferry_segment_opts o = {.size = (size_t)1 << 40};
    int rc = ferry_segment_open(&seg, &o);
    CHECK(rc == FERRY_ENOMEM || rc == FERRY_ENOSPC);
    CHECK(seg == NULL);
    o.name = tu_unique("ferry-big");
    rc = ferry_segment_open(&seg, &o);
    CHECK(rc == FERRY_ENOMEM || rc == FERRY_ENOSPC);
    CHECK_RC(ferry_segment_attach_named(&seg, o.name, 0), FERRY_ENOENT); /* cleaned up */
}

/*
 * A full tmpfs: in a child with its own mount namespace, mount a 1 MiB tmpfs on /dev/shm and ask
 * for more. posix_fallocate must fail (FERRY_ENOSPC), with nothing left behind and no SIGBUS.
 */
static void test_full_tmpfs(void)
{
    pid_t pid = fork();
    CHECK(pid >= 0);
    if (pid == 0) {
        if (unshare(CLONE_NEWNS) != 0 && unshare(CLONE_NEWUSER | CLONE_NEWNS) != 0)
            _exit(TEST_SKIP);
        if (mount(NULL, "/", NULL, MS_REC | MS_PRIVATE, NULL) != 0)
            _exit(TEST_SKIP);
        if (mount("tmpfs", "/dev/shm", "tmpfs", 0, "size=1m") != 0)
            _exit(TEST_SKIP);
        ferry_segment *seg;
        ferry_segment_opts o = {.size = 4u << 20, .name = "ferry-full"};
        int rc = ferry_segment_open(&seg, &o);
        if (rc != FERRY_ENOSPC) {
            fprintf(stderr, "4 MiB on a 1 MiB tmpfs: %s\n", ferry_errname(rc));
            _exit(2);
        }
        if (ferry_segment_attach_named(&seg, "ferry-full", 0) != FERRY_ENOENT)
            _exit(3);
        /* What fits still works and is fully usable. */
        o.size = 512u << 10;
        if (ferry_segment_open(&seg, &o) != 0)
            _exit(4);
        memset(ferry_segment_base(seg), 1, ferry_segment_size(seg));
        o.name = "ferry-full2";
        o.size = 768u << 10;
        rc = ferry_segment_open(&seg, &o); /* only 512 KiB left */
        if (rc != FERRY_ENOSPC)
            _exit(5);
        _exit(0);
    }
    int st = wait_child(pid);
    if (st == TEST_SKIP) {
        printf("full-tmpfs check skipped: no mount namespace available\n");
        return;
    }
    if (st != 0)
        fprintf(stderr, "full-tmpfs child failed with status %d\n", st);
    CHECK(st == 0);
}

int main(void)
{
    tu_deadline(60);
    test_bad_args();
    test_anonymous();
    test_peer_cannot_resize();
    test_attach_refuses_unsealed();
    test_readonly();
    test_named();
    test_too_big();
    test_full_tmpfs();
    printf("ring segment: ok\n");
    return 0;
}
