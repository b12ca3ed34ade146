/*
 * test_shm_link.c - the shm link hand-over on a Unix socket: a listener process and a connector
 * process exchange the sealed segment and both eventfds, then move data both ways through the
 * rings and wake each other through the eventfds; a hostile listener's offers (no descriptors,
 * too many, an unsealed memfd, a pipe instead of an eventfd, sizes or a header that do not match)
 * are refused with FERRY_EPROTO and leak no descriptor; a declined offer and a hang-up are
 * reported as such. Each side maps the data of the ring it receives from read-only: a write there
 * faults (SIGSEGV in a child), while the words a receiver writes stay writable.
 */
#include "ferry/ring.h"
#include "ring/spsc_layout.h"
#include "testutil.h"
#include "transport/shm.h"

#include <dirent.h>
#include <errno.h>
#include <fcntl.h>
#include <poll.h>
#include <signal.h>
#include <string.h>
#include <sys/eventfd.h>
#include <sys/mman.h>
#include <sys/socket.h>
#include <sys/wait.h>
#include <unistd.h>

static void make_pair(int sv[2])
{
    CHECK(socketpair(AF_UNIX, SOCK_STREAM | SOCK_NONBLOCK | SOCK_CLOEXEC, 0, sv) == 0);
}

/* Two processes: hand over, then ping-pong records through the rings, sleeping on the eventfds. */
static void test_two_processes(void)
{
    int before = tu_count_fds();
    int sv[2];
    make_pair(sv);
    pid_t pid = fork();
    CHECK(pid >= 0);
    if (pid == 0) {
        close(sv[0]);
        fy_shm_hs hs;
        fy_shm_hs_init(&hs, 1, 0);
        if (tu_shm_handover(&hs, sv[1]) != 1)
            _exit(10);
        fy_shm_link *l = fy_shm_hs_take(&hs);
        fy_shm_hs_fini(&hs);
        if (!l || fy_shm_link_side(l) != 1)
            _exit(11);
        fy_shm_link_view v;
        fy_shm_link_view_get(l, &v);
        ferry_spsc_rx rx;
        ferry_spsc_tx tx;
        if (ferry_spsc_rx_init(&rx, v.ring[0], v.ring_bytes) != 0 ||
            ferry_spsc_tx_init(&tx, v.ring[1], v.ring_bytes) != 0)
            _exit(12);
        ferry_wait_policy pol;
        ferry_wait_policy_init(&pol);
        pol.eventfd = fy_shm_link_efd(l, 0);
        ferry_spsc_tx_set_wait(&tx, &pol);
        for (int i = 0; i < 200; i++) {
            uint64_t x;
            for (;;) {
                ssize_t r = ferry_spsc_read(&rx, &x, sizeof x, 0);
                if (r == 8)
                    break;
                if (r != FERRY_EAGAIN)
                    _exit(13);
                /* Sleep in poll on our eventfd, as the socket's epoll would. */
                if (ferry_spsc_rx_arm(&rx) == 0) {
                    struct pollfd p = {.fd = fy_shm_link_efd(l, 1), .events = POLLIN};
                    if (poll(&p, 1, 10000) != 1)
                        _exit(14);
                    uint64_t c;
                    if (read(fy_shm_link_efd(l, 1), &c, 8) != 8)
                        _exit(15);
                    ferry_spsc_rx_disarm(&rx);
                }
            }
            x = x * 3 + 1;
            if (ferry_spsc_write(&tx, &x, sizeof x, 0) != 0)
                _exit(16);
        }
        fy_shm_link_free(l);
        _exit(0);
    }
    close(sv[1]);
    fy_shm_hs hs;
    size_t cap;
    CHECK_OK(fy_shm_ring_capacity(100000, &cap));
    CHECK(cap == 131072);
    fy_shm_hs_init(&hs, 0, cap);
    CHECK_RC(tu_shm_handover(&hs, sv[0]), 1);
    fy_shm_link *l = fy_shm_hs_take(&hs);
    CHECK(l && fy_shm_link_side(l) == 0);
    fy_shm_hs_fini(&hs);
    fy_shm_link_view v;
    fy_shm_link_view_get(l, &v);
    CHECK(v.ring_bytes >= ferry_spsc_footprint(cap));
    ferry_spsc_tx tx;
    ferry_spsc_rx rx;
    CHECK_OK(ferry_spsc_tx_init(&tx, v.ring[0], v.ring_bytes));
    CHECK_OK(ferry_spsc_rx_init(&rx, v.ring[1], v.ring_bytes));
    ferry_wait_policy pol;
    ferry_wait_policy_init(&pol);
    pol.eventfd = fy_shm_link_efd(l, 1);
    ferry_spsc_tx_set_wait(&tx, &pol);
    for (uint64_t i = 0; i < 200; i++) {
        CHECK_OK(ferry_spsc_write(&tx, &i, sizeof i, 0));
        uint64_t x;
        for (;;) {
            ssize_t r = ferry_spsc_read(&rx, &x, sizeof x, 0);
            if (r == 8)
                break;
            CHECK_RC(r, FERRY_EAGAIN);
            if (ferry_spsc_rx_arm(&rx) == 0) {
                struct pollfd p = {.fd = fy_shm_link_efd(l, 0), .events = POLLIN};
                CHECK(poll(&p, 1, 10000) == 1);
                uint64_t c;
                CHECK(read(fy_shm_link_efd(l, 0), &c, 8) == 8);
                ferry_spsc_rx_disarm(&rx);
            }
        }
        CHECK(x == i * 3 + 1);
    }
    int st;
    CHECK(waitpid(pid, &st, 0) == pid);
    CHECK(WIFEXITED(st) && WEXITSTATUS(st) == 0);
    fy_shm_link_free(l);
    close(sv[0]);
    CHECK(tu_count_fds() == before);
}

/* ---- a hostile listener ---- */

/* In a throw-away child: one byte at p rewritten with its own value. Returns the signal that ended
 * the child (0: none). */
static int write_in_child(volatile uint8_t *p)
{
    pid_t pid = fork();
    CHECK(pid >= 0);
    if (pid == 0) {
        signal(SIGSEGV, SIG_DFL);
        uint8_t b = p[0];
        p[0] = b; /* the same value: the memory is shared with the live link */
        _exit(0);
    }
    int st;
    CHECK(waitpid(pid, &st, 0) == pid);
    if (WIFSIGNALED(st))
        return WTERMSIG(st);
    CHECK(WIFEXITED(st) && WEXITSTATUS(st) == 0);
    return 0;
}

/* Checks one side's view: the incoming ring's data is read-only (a write faults), everything the
 * receiver and the producer must write is writable, and reading the incoming data works. */
static void check_views(fy_shm_link *l, size_t cap)
{
    fy_shm_link_view v;
    fy_shm_link_view_get(l, &v);
    int me = fy_shm_link_side(l);
    uint8_t *in = v.ring[1 - me], *out = v.ring[me];
    fy_spsc_shared *ish = (fy_spsc_shared *)in;
    CHECK(((uintptr_t)(in + FY_SPSC_HDR_SIZE) & 4095) == 0);
    CHECK(((uintptr_t)(out + FY_SPSC_HDR_SIZE) & 4095) == 0);
    volatile uint8_t *in_data = in + FY_SPSC_HDR_SIZE;
    CHECK(write_in_child(in_data) == SIGSEGV);
    CHECK(write_in_child(in_data + cap / 2) == SIGSEGV);
    CHECK(write_in_child(in_data + cap - 1) == SIGSEGV);
    /* Still ours to write: our consumer line and our sleep announcement in the producer line,
     * the consumed counters, all of our outgoing ring. */
    CHECK(write_in_child((volatile uint8_t *)&ish->head) == 0);
    CHECK(write_in_child((volatile uint8_t *)&ish->readable) == 0);
    CHECK(write_in_child((volatile uint8_t *)v.consumed[1 - me]) == 0);
    CHECK(write_in_child(out + FY_SPSC_HDR_SIZE) == 0);
    CHECK(write_in_child(out + FY_SPSC_HDR_SIZE + cap - 1) == 0);
    uint8_t sum = 0;
    for (size_t i = 0; i < cap; i += 4096)
        sum = (uint8_t)(sum + in_data[i]);
    (void)sum;
}

/*
 * Issue 6, "receivers' view of data they only read is mapped read-only": both sides of a real
 * hand-over check their views (a child of each writes into the incoming data and must die of
 * SIGSEGV), then traffic still flows both ways through the rings.
 */
static void test_readonly_views(void)
{
    if (sysconf(_SC_PAGESIZE) != 4096) {
        printf("read-only views: page size %ld, layout keeps the data writable: skipped\n",
               sysconf(_SC_PAGESIZE));
        return;
    }
    size_t cap = 16384;
    int sv[2];
    make_pair(sv);
    pid_t pid = fork();
    CHECK(pid >= 0);
    if (pid == 0) {
        close(sv[0]);
        fy_shm_hs hs;
        fy_shm_hs_init(&hs, 1, 0);
        CHECK_RC(tu_shm_handover(&hs, sv[1]), 1);
        fy_shm_link *l = fy_shm_hs_take(&hs);
        fy_shm_hs_fini(&hs);
        CHECK(l);
        check_views(l, cap);
        fy_shm_link_view v;
        fy_shm_link_view_get(l, &v);
        ferry_spsc_rx rx;
        ferry_spsc_tx tx;
        CHECK_OK(ferry_spsc_rx_init(&rx, v.ring[0], v.ring_bytes));
        CHECK_OK(ferry_spsc_tx_init(&tx, v.ring[1], v.ring_bytes));
        /* Echo 100 records back, incremented, reading them in place from the read-only data. */
        for (int i = 0; i < 100; i++) {
            const void *d;
            size_t n;
            int rc;
            uint64_t t_end = tu_now_ns() + 10000000000ull;
            while ((rc = ferry_spsc_peek(&rx, &d, &n)) == FERRY_EAGAIN)
                CHECK(tu_now_ns() < t_end);
            CHECK_OK(rc);
            CHECK(n == 8);
            uint64_t x;
            memcpy(&x, d, 8);
            CHECK_OK(ferry_spsc_release(&rx, 0));
            x++;
            CHECK_OK(ferry_spsc_write(&tx, &x, 8, 0));
        }
        fy_shm_link_free(l);
        _exit(0);
    }
    close(sv[1]);
    fy_shm_hs hs;
    fy_shm_hs_init(&hs, 0, cap);
    CHECK_RC(tu_shm_handover(&hs, sv[0]), 1);
    fy_shm_link *l = fy_shm_hs_take(&hs);
    fy_shm_hs_fini(&hs);
    CHECK(l);
    check_views(l, cap);
    fy_shm_link_view v;
    fy_shm_link_view_get(l, &v);
    ferry_spsc_tx tx;
    ferry_spsc_rx rx;
    CHECK_OK(ferry_spsc_tx_init(&tx, v.ring[0], v.ring_bytes));
    CHECK_OK(ferry_spsc_rx_init(&rx, v.ring[1], v.ring_bytes));
    for (uint64_t i = 0; i < 100; i++) {
        CHECK_OK(ferry_spsc_write(&tx, &i, 8, 0));
        uint64_t x;
        ssize_t r;
        uint64_t t_end = tu_now_ns() + 10000000000ull;
        while ((r = ferry_spsc_read(&rx, &x, 8, 0)) == FERRY_EAGAIN)
            CHECK(tu_now_ns() < t_end);
        CHECK(r == 8 && x == i + 1);
    }
    int st;
    CHECK(waitpid(pid, &st, 0) == pid && WIFEXITED(st) && WEXITSTATUS(st) == 0);
    fy_shm_link_free(l);
    close(sv[0]);
    printf("read-only views: writes into the incoming ring's data fault on both sides, traffic "
           "ok\n");
}

static void put64(uint8_t *p, uint64_t v)
{
    for (int i = 0; i < 8; i++)
        p[i] = (uint8_t)(v >> (8 * i));
}

static void send_with_fds(int fd, const void *buf, size_t len, const int *fds, int nfds)
{
    struct iovec iov = {(void *)buf, len};
    union {
        struct cmsghdr h;
        char b[CMSG_SPACE(8 * sizeof(int))];
    } u;
    memset(&u, 0, sizeof u);
    struct msghdr m = {.msg_iov = &iov, .msg_iovlen = 1};
    if (nfds) {
        m.msg_control = u.b;
        m.msg_controllen = CMSG_SPACE((size_t)nfds * sizeof(int));
        struct cmsghdr *c = CMSG_FIRSTHDR(&m);
        c->cmsg_level = SOL_SOCKET;
        c->cmsg_type = SCM_RIGHTS;
        c->cmsg_len = CMSG_LEN((size_t)nfds * sizeof(int));
        memcpy(CMSG_DATA(c), fds, (size_t)nfds * sizeof(int));
    }
    CHECK(sendmsg(fd, &m, MSG_NOSIGNAL) == (ssize_t)len);
}

static int sealed_memfd(size_t size, bool seal)
{
    int fd = memfd_create("hostile", MFD_CLOEXEC | MFD_ALLOW_SEALING);
    CHECK(fd >= 0);
    CHECK(ftruncate(fd, (off_t)size) == 0);
    if (seal)
        CHECK(fcntl(fd, F_ADD_SEALS, F_SEAL_SHRINK | F_SEAL_GROW | F_SEAL_SEAL) == 0);
    return fd;
}

enum { H_NOFDS, H_TWOFDS, H_UNSEALED, H_PIPE, H_SIZE, H_HEADER, H_MAGIC, H_CAP, H_COUNT };

/* The connector (in this process) against one crafted offer. */
static void hostile_case(int which)
{
    int before = tu_count_fds();
    int sv[2];
    make_pair(sv);
    fy_shm_hs hs;
    fy_shm_hs_init(&hs, 1, 0);
    bool wo;
    CHECK_RC(fy_shm_hs_step(&hs, sv[1], &wo), 0); /* request sent, waits for the offer */
    uint8_t req[16];
    CHECK(read(sv[0], req, sizeof req) == 16 && memcmp(req, "FYSHMRQ1", 8) == 0);

    /* The layout of version 2 (shm_link.c): ring control lines end where ring data pages start. */
    size_t cap = 65536;
    size_t rb = ferry_spsc_footprint(cap);
    size_t size = 2 * 4096 + 2 * cap;
    int e1 = eventfd(0, EFD_CLOEXEC), e2 = eventfd(0, EFD_CLOEXEC);
    int pp[2];
    CHECK(pipe2(pp, O_CLOEXEC) == 0);
    int mfd = sealed_memfd(which == H_SIZE ? size + 4096 : size, which != H_UNSEALED);
    if (which != H_HEADER) {
        /* A plausible header, unless the case is about the header. */
        uint8_t *b = mmap(NULL, size, PROT_READ | PROT_WRITE, MAP_SHARED, mfd, 0);
        CHECK(b != MAP_FAILED);
        put64(b, which == H_MAGIC ? 0x1234 : UINT64_C(0x314d485359525246));
        uint32_t ver = 2, hsz = 4096;
        memcpy(b + 8, &ver, 4);
        memcpy(b + 12, &hsz, 4);
        put64(b + 16, cap);
        put64(b + 24, rb);
        put64(b + 32, 4096 - FY_SPSC_HDR_SIZE);
        put64(b + 40, 2 * 4096 + cap - FY_SPSC_HDR_SIZE);
        put64(b + 48, size);
        munmap(b, size);
    }
    uint8_t offer[32];
    memcpy(offer, "FYSHMOF1", 8);
    put64(offer + 8, which == H_CAP ? 65536 + 8 : cap); /* not a power of two */
    put64(offer + 16, size);
    put64(offer + 24, 0);
    int fds[3] = {mfd, which == H_PIPE ? pp[0] : e1, e2};
    int nfds = which == H_NOFDS ? 0 : which == H_TWOFDS ? 2 : 3;
    send_with_fds(sv[0], offer, sizeof offer, fds, nfds);
    close(mfd);
    close(e1);
    close(e2);
    close(pp[0]);
    close(pp[1]);
    int rc;
    do {
        rc = fy_shm_hs_step(&hs, sv[1], &wo);
    } while (rc == 0 && poll(&(struct pollfd){.fd = sv[1], .events = POLLIN}, 1, 5000) == 1);
    if (rc != FERRY_EPROTO)
        fprintf(stderr, "hostile case %d: rc %d (%s)\n", which, rc, tu_errname(rc));
    CHECK_RC(rc, FERRY_EPROTO);
    CHECK(hs.why != NULL);
    CHECK(fy_shm_hs_take(&hs) == NULL);
    fy_shm_hs_fini(&hs);
    /* The connector told the listener no. */
    uint8_t nak[8];
    if (which != H_NOFDS && which != H_TWOFDS)
        CHECK(read(sv[0], nak, 8) == 8 && memcmp(nak, "FYSHMNO1", 8) == 0);
    close(sv[0]);
    close(sv[1]);
    CHECK(tu_count_fds() == before);
}

/* The listener side against a connector that declines, sends garbage, or hangs up. */
static void test_listener_errors(void)
{
    int before = tu_count_fds();
    for (int c = 0; c < 3; c++) {
        int sv[2];
        make_pair(sv);
        fy_shm_hs hs;
        fy_shm_hs_init(&hs, 0, 65536);
        if (c == 2) {
            CHECK(write(sv[1], "GARBAGE!\0\0\0\0\0\0\0\0", 16) == 16);
            CHECK_RC(tu_shm_handover(&hs, sv[0]), FERRY_EPROTO);
        } else {
            uint8_t req[16] = "FYSHMRQ1";
            memset(req + 8, 0, 8);
            CHECK(write(sv[1], req, 16) == 16);
            bool wo;
            CHECK_RC(fy_shm_hs_step(&hs, sv[0], &wo), 0);
            /* The offer arrived with three descriptors; drop them. */
            uint8_t off[32];
            union {
                struct cmsghdr h;
                char b[CMSG_SPACE(3 * sizeof(int))];
            } u;
            struct iovec iov = {off, 32};
            struct msghdr m = {
                .msg_iov = &iov, .msg_iovlen = 1, .msg_control = u.b, .msg_controllen = sizeof u.b};
            CHECK(recvmsg(sv[1], &m, MSG_CMSG_CLOEXEC) == 32);
            struct cmsghdr *ch = CMSG_FIRSTHDR(&m);
            CHECK(ch && ch->cmsg_type == SCM_RIGHTS && ch->cmsg_len == CMSG_LEN(3 * sizeof(int)));
            int got[3];
            memcpy(got, CMSG_DATA(ch), sizeof got);
            for (int i = 0; i < 3; i++)
                close(got[i]);
            if (c == 0) {
                CHECK(write(sv[1], "FYSHMNO1", 8) == 8);
                CHECK_RC(tu_shm_handover(&hs, sv[0]), FERRY_ECONNREFUSED);
            } else {
                close(sv[1]);
                sv[1] = -1;
                CHECK_RC(tu_shm_handover(&hs, sv[0]), FERRY_ECONNRESET);
            }
        }
        fy_shm_hs_fini(&hs);
        close(sv[0]);
        if (sv[1] >= 0)
            close(sv[1]);
    }
    CHECK(tu_count_fds() == before);
}

int main(void)
{
    tu_deadline(60);
    size_t cap;
    CHECK_OK(fy_shm_ring_capacity(0, &cap));
    CHECK(cap == FY_SHM_DEFAULT_RING);
    CHECK_OK(fy_shm_ring_capacity(1, &cap));
    CHECK(cap == 4096);
    CHECK_OK(fy_shm_ring_capacity(65537, &cap));
    CHECK(cap == 131072);
    CHECK_RC(fy_shm_ring_capacity(-1, &cap), FERRY_EINVAL);
    CHECK_RC(fy_shm_ring_capacity((int64_t)1 << 40, &cap), FERRY_EINVAL);
    test_two_processes();
    test_readonly_views();
    for (int i = 0; i < H_COUNT; i++)
        hostile_case(i);
    test_listener_errors();
    printf("test_shm_link: ok\n");
    return 0;
}
