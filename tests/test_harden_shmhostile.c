/*
 * test_harden_shmhostile.c - a victim ROUTER bound on shm:// keeps serving a
 * well-behaved peer while a hostile peer process scribbles over every word of
 * the shared segments it shares with the victim (issue 6, "hostile shm peer").
 *
 * The hostile child is a real ferry DEALER ("evil") that completes the
 * handshake, so it holds a real link segment; it then opens each memfd its
 * process holds through /proc/self/fd, maps it read-write a second time (its
 * own mapping survives the library dropping the link), and writes random values
 * and plausible lies (0, ~0, 2^63, the old value plus or minus a little, huge
 * lengths) into the header page (consumed counters), both rings' control lines
 * (indices, wait and futex words) and their data, for FERRY_HOSTILE_SHM_MS (CI
 * 1 s, long mode 10 s). Its DEALER keeps reconnecting, so every new link is
 * attacked too. Meanwhile the victim ping-pongs sequenced messages with the
 * good child ("good") and sends junk to "evil"; it reads every message it gets.
 *
 * Checked: the victim never faults (run it under ASan+UBSan), every echo from
 * "good" is exact and in order, the good peer is served during the attack and
 * after it, the hostile link is dropped (the victim's live peer count falls
 * back while evil lives: the library reports FERRY_EPROTO for the violation and
 * drops only that pipe), an idle victim afterwards uses less than half a core
 * (no thread left spinning on a corrupted ring), and once both children are
 * gone the victim's fds and memfd mappings are back to their baseline.
 */
#include "ferry/ferry.h"
#include "testutil.h"

#include <dirent.h>
#include <fcntl.h>
#include <signal.h>
#include <stdatomic.h>
#include <stdbool.h>
#include <stdlib.h>
#include <string.h>
#include <sys/mman.h>
#include <sys/resource.h>
#include <sys/stat.h>
#include <sys/wait.h>
#include <unistd.h>

#define MAX_SEGS 4

/* The forked children start a control thread; under ThreadSanitizer that needs this. */
const char *__tsan_default_options(void);
const char *__tsan_default_options(void)
{
    return "die_after_fork=0";
}

static uint64_t rnd_state;

static uint64_t rnd(void)
{
    uint64_t x = rnd_state;
    x ^= x << 13;
    x ^= x >> 7;
    x ^= x << 17;
    return rnd_state = x;
}

static unsigned env_uint(const char *name, unsigned dflt)
{
    const char *e = getenv(name);
    return e && *e ? (unsigned)strtoul(e, NULL, 10) : dflt;
}

static int fd_count(void)
{
    DIR *d = opendir("/proc/self/fd");
    CHECK(d);
    int n = 0;
    struct dirent *e;
    while ((e = readdir(d)))
        n += e->d_name[0] != '.';
    closedir(d);
    return n;
}

static int memfd_maps(void)
{
    FILE *f = fopen("/proc/self/maps", "r");
    CHECK(f);
    char line[512];
    int n = 0;
    while (fgets(line, sizeof line, f))
        n += strstr(line, "/memfd:") != NULL;
    fclose(f);
    return n;
}

/* ---- the hostile peer ---- */

typedef struct seg {
    ino_t ino;
    uint8_t *base;
    size_t size;
} seg;

/* Maps (a second time, read-write) every ferry memfd this process holds that is
 * not mapped yet. */
static void evil_scan(seg *segs, int *nsegs, int *next, const ino_t *skip, int nskip)
{
    DIR *d = opendir("/proc/self/fd");
    if (!d)
        return;
    struct dirent *e;
    while ((e = readdir(d))) {
        char path[300], target[256];
        snprintf(path, sizeof path, "/proc/self/fd/%s", e->d_name);
        ssize_t n = readlink(path, target, sizeof target - 1);
        if (n <= 0)
            continue;
        target[n] = '\0';
        if (!strstr(target, "memfd:ferry"))
            continue;
        struct stat st;
        if (stat(path, &st) != 0 || st.st_size <= 0)
            continue;
        bool known = false;
        for (int i = 0; i < *nsegs; i++)
            known |= segs[i].ino == st.st_ino;
        for (int i = 0; i < nskip; i++)
            known |= skip[i] == st.st_ino;
        if (known)
            continue;
        int fd = open(path, O_RDWR | O_CLOEXEC);
        if (fd < 0)
            continue;
        void *p = mmap(NULL, (size_t)st.st_size, PROT_READ | PROT_WRITE, MAP_SHARED, fd, 0);
        close(fd);
        if (p == MAP_FAILED)
            continue;
        /* Keep the newest MAX_SEGS: older links are long dropped. */
        seg *s = &segs[*next];
        if (*next < *nsegs)
            munmap(s->base, s->size);
        else
            (*nsegs)++;
        s->ino = st.st_ino;
        s->base = p;
        s->size = (size_t)st.st_size;
        *next = (*next + 1) % MAX_SEGS;
    }
    closedir(d);
}

/* One lie: a random 8-byte word of the segment, biased to the control words. */
static void evil_scribble(const seg *s)
{
    size_t words = s->size / 8;
    size_t pg = (size_t)sysconf(_SC_PAGESIZE);
    size_t off;
    switch (rnd() % 4) {
    case 0: /* the link header page: magic, sizes, consumed counters */
        off = (size_t)(rnd() % (pg / 8)) * 8;
        break;
    case 1:   /* the 512 bytes before a page boundary: a ring's control lines end
                 there */
    case 2: { /* (rings start at page 1 and at the page after ring 0's data) */
        size_t pages = s->size / pg;
        size_t b = 1 + (size_t)(rnd() % (pages > 1 ? pages - 1 : 1));
        off = b * pg - 8 * (1 + (size_t)(rnd() % 64));
        break;
    }
    default:
        off = (size_t)(rnd() % words) * 8;
        break;
    }
    if (off + 8 > s->size)
        return;
    _Atomic uint64_t *w = (_Atomic uint64_t *)(s->base + off);
    uint64_t old = atomic_load_explicit(w, memory_order_relaxed), v;
    switch (rnd() % 8) {
    case 0:
        v = 0;
        break;
    case 1:
        v = ~(uint64_t)0;
        break;
    case 2:
        v = UINT64_C(1) << 63;
        break;
    case 3:
        v = old + 1 + rnd() % 64;
        break;
    case 4:
        v = old - 1 - rnd() % 64;
        break;
    case 5:
        v = old + (rnd() % 4096) * 8;
        break;
    case 6:
        v = (rnd() % 0x100000) << 8 | (rnd() % 16); /* a plausible record meta word */
        break;
    default:
        v = rnd();
        break;
    }
    atomic_store_explicit(w, v, memory_order_relaxed);
}

static int evil_main(const char *url, unsigned ms)
{
    rnd_state = 0x9e3779b97f4a7c15u ^ (uint64_t)getpid();
    /* The memfds inherited from the victim by fork() (its link with the good peer) are not ours
     * to attack: a peer only ever holds the segments of its own links. Map them once to learn
     * their inodes, then forget the mappings (before our own link can exist). */
    seg segs[MAX_SEGS];
    int nsegs = 0, next = 0;
    evil_scan(segs, &nsegs, &next, NULL, 0);
    ino_t inherited[MAX_SEGS];
    int ninherited = nsegs;
    for (int i = 0; i < nsegs; i++) {
        inherited[i] = segs[i].ino;
        munmap(segs[i].base, segs[i].size);
    }
    nsegs = next = 0;
    ferry_socket *s;
    if (ferry_socket_open(&s, FERRY_DEALER) != 0)
        return 20;
    if (ferry_socket_setopt_bytes(s, FERRY_OPT_ROUTING_ID, "evil", 4) != 0 ||
        ferry_socket_setopt_int(s, FERRY_OPT_RECONNECT_IVL, 20) != 0 ||
        ferry_socket_setopt_int(s, FERRY_OPT_RECONNECT_IVL_MAX, 0) != 0 ||
        ferry_socket_connect(s, url) != 0)
        return 21;
    char buf[256];
    /* The attack time counts from our first link. */
    uint64_t first = tu_now_ns() + 20000000000u;
    while (nsegs == 0 && tu_now_ns() < first) {
        (void)ferry_socket_recv(s, buf, sizeof buf, FERRY_DONTWAIT, NULL);
        evil_scan(segs, &nsegs, &next, inherited, ninherited);
        usleep(1000);
    }
    if (nsegs == 0)
        return 22; /* no link within 20 s: the parent reports it */
    uint64_t end = tu_now_ns() + (uint64_t)ms * 1000000u, scans = 0;
    while (tu_now_ns() < end) {
        if (scans++ % 64 == 0)
            evil_scan(segs, &nsegs, &next, inherited, ninherited);
        for (int i = 0; i < nsegs; i++)
            for (int k = 0; k < 64; k++)
                evil_scribble(&segs[i]);
        /* Keep our own end of the link busy too, whatever state it is in. */
        memset(buf, (int)(rnd() & 0xff), sizeof buf);
        (void)ferry_socket_send(s, buf, 1 + rnd() % sizeof buf, FERRY_DONTWAIT);
        (void)ferry_socket_recv(s, buf, sizeof buf, FERRY_DONTWAIT, NULL);
    }
    ferry_socket_close(s);
    for (int i = 0; i < nsegs; i++)
        munmap(segs[i].base, segs[i].size);
    return 0;
}

/* ---- the good peer: echoes until "bye" ---- */

static int good_main(const char *url)
{
    ferry_socket *s;
    if (ferry_socket_open(&s, FERRY_DEALER) != 0)
        return 30;
    if (ferry_socket_setopt_bytes(s, FERRY_OPT_ROUTING_ID, "good", 4) != 0 ||
        ferry_socket_setopt_int(s, FERRY_OPT_RCVTIMEO, 60000) != 0 ||
        ferry_socket_setopt_int(s, FERRY_OPT_SNDTIMEO, 60000) != 0 ||
        ferry_socket_connect(s, url) != 0)
        return 31;
    if (ferry_socket_send(s, "hello", 5, 0) != 0)
        return 32;
    char buf[512];
    for (;;) {
        ssize_t n = ferry_socket_recv(s, buf, sizeof buf, 0, NULL);
        if (n < 0 || (size_t)n > sizeof buf)
            return 33;
        if (n == 3 && memcmp(buf, "bye", 3) == 0)
            break;
        if (ferry_socket_send(s, buf, (size_t)n, 0) != 0)
            return 34;
    }
    ferry_socket_close(s);
    return 0;
}

/* ---- the victim ---- */

static double cpu_seconds(void)
{
    struct rusage ru;
    CHECK(getrusage(RUSAGE_SELF, &ru) == 0);
    return (double)ru.ru_utime.tv_sec + (double)ru.ru_utime.tv_usec / 1e6 +
           (double)ru.ru_stime.tv_sec + (double)ru.ru_stime.tv_usec / 1e6;
}

/* Payload of ping seq: its length and bytes follow from seq. */
static size_t ping_fill(uint64_t seq, uint8_t *buf)
{
    size_t len = 8 + (size_t)(seq * 37 % 200);
    memcpy(buf, &seq, 8);
    for (size_t i = 8; i < len; i++)
        buf[i] = (uint8_t)(seq * 131 + i);
    return len;
}

typedef struct victim {
    ferry_socket *r;
    uint64_t from_evil, peer_drops, timeouts;
    uint32_t peers_max, last_peers;
} victim;

static void watch_peers(victim *v)
{
    ferry_stats st;
    CHECK_OK(ferry_socket_stats(v->r, &st));
    if (st.peers < v->last_peers)
        v->peer_drops++;
    if (st.peers > v->peers_max)
        v->peers_max = st.peers;
    v->last_peers = st.peers;
}

/* Receives until the echo of seq arrives from "good" (anything from "evil" is
 * read and counted). */
static void await_echo(victim *v, uint64_t seq)
{
    uint8_t want[256], got[512];
    size_t wlen = ping_fill(seq, want);
    uint64_t deadline = tu_now_ns() + 20000000000u;
    for (;;) {
        char id[64];
        int more = 0;
        ssize_t n = ferry_socket_recv(v->r, id, sizeof id, 0, &more);
        watch_peers(v);
        if (n == FERRY_EAGAIN) {
            v->timeouts++;
            if (tu_now_ns() > deadline) {
                fprintf(stderr, "victim: no echo of %llu from the good peer for 20 s\n",
                        (unsigned long long)seq);
                CHECK(0);
            }
            continue;
        }
        CHECK(n > 0 && (size_t)n <= sizeof id && more == 1);
        ssize_t m = ferry_socket_recv(v->r, got, sizeof got, 0, &more);
        CHECK(m >= 0);
        while (more) { /* evil may send multi-frame junk: drain it */
            char junk[64];
            CHECK(ferry_socket_recv(v->r, junk, sizeof junk, 0, &more) >= 0);
            CHECK(n == 4 && memcmp(id, "evil", 4) == 0);
        }
        if (n == 4 && memcmp(id, "evil", 4) == 0) {
            v->from_evil++;
            continue;
        }
        CHECK(n == 4 && memcmp(id, "good", 4) == 0);
        if ((size_t)m != wlen || memcmp(got, want, wlen) != 0) {
            uint64_t s = 0;
            if (m >= 8)
                memcpy(&s, got, 8);
            fprintf(stderr,
                    "victim: echo %llu from good is wrong (len %zd, want %zu, seq "
                    "%llu)\n",
                    (unsigned long long)seq, m, wlen, (unsigned long long)s);
            CHECK(0);
        }
        return;
    }
}

static void send_to(ferry_socket *r, const char *id, const void *buf, size_t len)
{
    /* ROUTER drops what it cannot route (unknown or gone peer): both are fine
     * here. */
    int rc = ferry_socket_send(r, id, strlen(id), FERRY_MORE | FERRY_DONTWAIT);
    if (rc == 0)
        rc = ferry_socket_send(r, buf, len, FERRY_DONTWAIT);
    CHECK(rc == 0 || rc == FERRY_EAGAIN);
}

static int reap(pid_t pid, unsigned secs)
{
    uint64_t deadline = tu_now_ns() + (uint64_t)secs * 1000000000u;
    int st = 0;
    for (;;) {
        pid_t r = waitpid(pid, &st, WNOHANG);
        CHECK(r >= 0);
        if (r == pid)
            return st;
        if (tu_now_ns() > deadline) {
            kill(pid, SIGKILL);
            CHECK(waitpid(pid, &st, 0) == pid);
            fprintf(stderr, "child %d did not finish within %u s\n", (int)pid, secs);
            return -1;
        }
        usleep(10000);
    }
}

int main(void)
{
    unsigned ms = env_uint("FERRY_HOSTILE_SHM_MS", 1000);
    tu_deadline(120 + ms / 1000 * 3);
    signal(SIGPIPE, SIG_IGN);
    char url[256];
    snprintf(url, sizeof url, "shm://%s", tu_unique("hostile"));

    victim v = {0};
    CHECK_OK(ferry_socket_open(&v.r, FERRY_ROUTER));
    CHECK_OK(ferry_socket_setopt_int(v.r, FERRY_OPT_RCVTIMEO, 100));
    int bound = ferry_socket_bind(v.r, url);
    if (bound == FERRY_EPROTONOSUPPORT || bound == FERRY_ENOSYS) {
        printf("shm:// unavailable here (%s): skipped\n", ferry_errname(bound));
        return 77;
    }
    CHECK_OK(bound);
    int fds_base = fd_count(), maps_base = memfd_maps();

    pid_t good = fork();
    CHECK(good >= 0);
    if (good == 0)
        _exit(good_main(url));
    /* The good peer says hello first: from then on it is routable. */
    {
        char id[64], buf[64];
        int more = 0;
        uint64_t deadline = tu_now_ns() + 20000000000u;
        ssize_t n;
        while ((n = ferry_socket_recv(v.r, id, sizeof id, 0, &more)) == FERRY_EAGAIN)
            CHECK(tu_now_ns() < deadline);
        CHECK(n == 4 && memcmp(id, "good", 4) == 0 && more);
        CHECK(ferry_socket_recv(v.r, buf, sizeof buf, 0, &more) == 5 && !more);
    }

    pid_t evil = fork();
    CHECK(evil >= 0);
    if (evil == 0)
        _exit(evil_main(url, ms));

    /* During the attack: ping-pong with good, junk to evil, count evil's links
     * coming and going. */
    uint64_t seq = 0, t0 = tu_now_ns(), during = 0;
    uint8_t buf[256];
    int evil_status = -2;
    while (evil_status == -2) {
        size_t len = ping_fill(seq, buf);
        send_to(v.r, "good", buf, len);
        send_to(v.r, "evil", buf, len);
        await_echo(&v, seq++);
        during++;
        int st;
        pid_t r = waitpid(evil, &st, WNOHANG);
        CHECK(r >= 0);
        if (r == evil)
            evil_status = st;
        CHECK(tu_now_ns() - t0 < (uint64_t)(ms + 60000) * 1000000u);
    }
    double attack_s = (double)(tu_now_ns() - t0) / 1e9;
    if (!WIFEXITED(evil_status) || WEXITSTATUS(evil_status) != 0) {
        fprintf(stderr, "hostile child ended with status 0x%x (exit %d, signal %d)\n", evil_status,
                WIFEXITED(evil_status) ? WEXITSTATUS(evil_status) : -1,
                WIFSIGNALED(evil_status) ? WTERMSIG(evil_status) : 0);
        CHECK(0);
    }
    /* Evil's link was up (2 peers) and was dropped while evil was alive. */
    CHECK(v.peers_max >= 2);
    CHECK(v.peer_drops >= 1);

    /* After the attack the good peer is still served. */
    uint64_t after = 0;
    for (; after < 1000; after++) {
        size_t len = ping_fill(seq, buf);
        send_to(v.r, "good", buf, len);
        await_echo(&v, seq++);
    }

    /* Idle: nobody may be left spinning on a corrupted ring. */
    double c0 = cpu_seconds();
    uint64_t w0 = tu_now_ns();
    for (int i = 0; i < 10; i++) {
        char id[64];
        ssize_t n = ferry_socket_recv(v.r, id, sizeof id, 0, NULL);
        CHECK_RC(n, FERRY_EAGAIN);
    }
    double idle_cpu = cpu_seconds() - c0, idle_wall = (double)(tu_now_ns() - w0) / 1e9;
    if (idle_cpu > idle_wall / 2) {
        fprintf(stderr, "victim used %.3f s of CPU in %.3f s idle\n", idle_cpu, idle_wall);
        CHECK(0);
    }

    send_to(v.r, "good", "bye", 3);
    int gst = reap(good, 30);
    CHECK(WIFEXITED(gst) && WEXITSTATUS(gst) == 0);

    /* Both children gone: their links' fds and mappings go too. */
    uint64_t deadline = tu_now_ns() + 10000000000u;
    while (fd_count() > fds_base || memfd_maps() > maps_base) {
        if (tu_now_ns() > deadline) {
            fprintf(stderr, "leak: fds %d (base %d), memfd mappings %d (base %d)\n", fd_count(),
                    fds_base, memfd_maps(), maps_base);
            CHECK(0);
        }
        char id[64];
        (void)ferry_socket_recv(v.r, id, sizeof id, FERRY_DONTWAIT, NULL);
        usleep(10000);
    }
    ferry_socket_close(v.r);
    printf("shm hostile: %.1f s attack (%u ms asked), %llu echoes from the good "
           "peer during it and "
           "%llu after, %llu hostile link drops, %llu messages from the hostile "
           "peer read, idle "
           "victim %.3f s CPU in %.3f s, fds %d, memfd mappings %d: ok\n",
           attack_s, ms, (unsigned long long)during, (unsigned long long)after,
           (unsigned long long)v.peer_drops, (unsigned long long)v.from_evil, idle_cpu, idle_wall,
           fds_base, maps_base);
    return 0;
}
