/*
 * test_harden_chaos.c - kill -9 at random points, on ipc:// (stream path, shm upgrade off), tcp://
 * and shm:// (when shm:// binds). Every round forks a peer and SIGKILLs it after a random delay;
 * the roles rotate: the child connects to our listener, or the child is the listener our
 * connecting socket reconnects to (a fresh child binds the same endpoint every round, so
 * reconnection to a returning peer is proven by a round trip started with a blocking send before
 * the peer is back). What the survivor is doing at the kill rotates too:
 *  - busy: sending and receiving (the child too); detection = kill to stats().peers dropping;
 *  - idle: only polling ferry_socket_stats (the child is busy); same measure;
 *  - blocked in recv (the child is quiet), and
 *  - blocked in send with the link full (the child never receives): a watcher thread kills the
 *    child while our thread sleeps in the blocking call, and detection = kill to the link's fds and
 *    memfd mappings being gone from /proc/self (the blocked owner woke, dropped the pipe and the
 *    control thread freed it). Our thread repeats its blocking call until the watcher has its
 *    measure (see blocked_kill); the calls last 200 ms (asleep in the call at the kill) or 2 ms
 *    (killed between or after calls: the next call must free the link), alternating.
 * The survivor must never receive a corrupted message, keep working, and at the end /proc/self/fd,
 * the memfd mappings in /proc/self/maps, /dev/shm and the shm runtime directory are back to their
 * baseline. Rounds per transport: FERRY_CHAOS_ROUNDS (default 20); given explicitly (long mode),
 * detection on ipc/shm must also take at most 100 ms in every round (FERRY_CHAOS_STRICT=0: measure
 * only, counting the rounds over 100 ms). FERRY_CHAOS_ONLY=ipc|tcp|shm
 * runs one transport; FERRY_CHAOS_BLOCK_MS=n makes every blocked call last n ms.
 */
#include "ferry/ferry.h"
#include "testutil.h"

#include <dirent.h>
#include <fcntl.h>
#include <netinet/in.h>
#include <poll.h>
#include <pthread.h>
#include <signal.h>
#include <stdatomic.h>
#include <stdbool.h>
#include <stddef.h>
#include <stdio.h>
#include <stdlib.h>
#include <string.h>
#include <sys/socket.h>
#include <sys/stat.h>
#include <sys/un.h>
#include <sys/wait.h>
#include <time.h>
#include <unistd.h>

/* The forked children start a control thread; under ThreadSanitizer that needs this. */
const char *__tsan_default_options(void);
const char *__tsan_default_options(void)
{
    return "die_after_fork=0";
}

enum { T_IPC, T_TCP, T_SHM };
static const char *const tname[] = {"ipc", "tcp", "shm"};
enum { M_BUSY, M_IDLE, M_RECV, M_SEND, M_COUNT };
/* Statistics rows: the modes, then the blocked modes with short (2 ms) calls. */
enum { S_RECV_SHORT = M_COUNT, S_SEND_SHORT, S_COUNT };
static const char *const mname[] = {"busy",         "idle",           "blocked-recv",
                                    "blocked-send", "recv 2ms-calls", "send 2ms-calls"};
static char g_rundir[256];
static pid_t g_child;

/* On a failure, say how the current child is doing (it may have failed first). */
static void child_state(void)
{
    int st;
    pid_t r = g_child > 0 ? waitpid(g_child, &st, WNOHANG) : 0;
    if (r == g_child)
        fprintf(stderr, "  (the child had %s %d)\n",
                WIFEXITED(st) ? "exited with" : "died of signal",
                WIFEXITED(st) ? WEXITSTATUS(st) : WTERMSIG(st));
    else
        fprintf(stderr, "  (the child is still running)\n");
}

static ferry_socket *sock(void)
{
    ferry_socket *s;
    CHECK_OK(ferry_socket_open(&s, FERRY_PAIR));
    CHECK_OK(ferry_socket_setopt_int(s, FERRY_OPT_RCVTIMEO, 10000));
    CHECK_OK(ferry_socket_setopt_int(s, FERRY_OPT_SNDTIMEO, 10000));
    CHECK_OK(ferry_socket_setopt_int(s, FERRY_OPT_SHM_UPGRADE, 0));
    CHECK_OK(ferry_socket_setopt_int(s, FERRY_OPT_RECONNECT_IVL, 10));
    CHECK_OK(ferry_socket_setopt_int(s, FERRY_OPT_RECONNECT_IVL_MAX, 0));
    CHECK_OK(ferry_socket_setopt_int(s, FERRY_OPT_SNDHWM, 64));
    return s;
}

/* When the killed child's descriptors were closed (so the kernel had run its exit), as seen by
 * the survivor's polling; 0 while unknown. A pipe whose only write end the child holds hangs up
 * at that moment, the same moment its link socket does. This separates the kernel's share of a
 * detection time (the child must be scheduled to run its exit, slow on an overloaded machine) from
 * the library's. */
static _Atomic uint64_t g_closed_ns;
static int g_death_fd = -1;

static void note_closed(void)
{
    if (g_death_fd < 0 || atomic_load(&g_closed_ns))
        return;
    struct pollfd p = {.fd = g_death_fd, .events = POLLIN};
    if (poll(&p, 1, 0) == 1 && (p.revents & (POLLHUP | POLLERR)))
        atomic_store(&g_closed_ns, tu_now_ns());
}

static const char *loadavg(void)
{
    static char b[64];
    FILE *f = fopen("/proc/loadavg", "r");
    b[0] = 0;
    if (f) {
        if (!fgets(b, sizeof b, f))
            b[0] = 0;
        fclose(f);
    }
    char *nl = strchr(b, '\n');
    if (nl)
        *nl = 0;
    return b;
}

static int count_dir(const char *path, const char *prefix)
{
    DIR *d = opendir(path);
    if (!d)
        return 0;
    int n = 0;
    struct dirent *e;
    while ((e = readdir(d)) != NULL)
        if (e->d_name[0] != '.' && (!prefix || strncmp(e->d_name, prefix, strlen(prefix)) == 0))
            n++;
    closedir(d);
    return n;
}

/* A socket's ends, for the fd list: "tcp port 40000 -> port 39998"; "tcp port 0, no peer" is a
 * connect the kernel refused (or not started yet); "unix bound" is a listener or an accepted link,
 * "unix unnamed" a connecting side. */
static void sock_ends(int fd, char *out, size_t cap)
{
    struct sockaddr_storage a, b;
    socklen_t la = sizeof a, lb = sizeof b;
    out[0] = 0;
    if (getsockname(fd, (struct sockaddr *)&a, &la) != 0)
        return;
    bool peer = getpeername(fd, (struct sockaddr *)&b, &lb) == 0;
    if (a.ss_family == AF_INET) {
        int port = ntohs(((struct sockaddr_in *)&a)->sin_port);
        if (peer)
            snprintf(out, cap, " (tcp port %d -> port %d)", port,
                     ntohs(((struct sockaddr_in *)&b)->sin_port));
        else
            snprintf(out, cap, " (tcp port %d, no peer)", port);
    } else if (a.ss_family == AF_UNIX) {
        snprintf(out, cap, " (unix %s%s)",
                 la > offsetof(struct sockaddr_un, sun_path) ? "bound" : "unnamed",
                 peer ? "" : ", no peer");
    }
}

/* On a failure: what the open descriptors are. */
static void fd_list(void)
{
    DIR *d = opendir("/proc/self/fd");
    if (!d)
        return;
    struct dirent *e;
    while ((e = readdir(d)) != NULL) {
        if (e->d_name[0] == '.')
            continue;
        char path[300], target[256];
        snprintf(path, sizeof path, "/proc/self/fd/%s", e->d_name);
        ssize_t n = readlink(path, target, sizeof target - 1);
        target[n > 0 ? n : 0] = 0;
        char ends[96] = "";
        if (strncmp(target, "socket:", 7) == 0)
            sock_ends(atoi(e->d_name), ends, sizeof ends);
        fprintf(stderr, "    fd %s -> %s%s\n", e->d_name, target, ends);
    }
    closedir(d);
}

static int fd_count(void)
{
    return count_dir("/proc/self/fd", NULL) - 1; /* minus the directory stream itself */
}

static int memfd_maps(void)
{
    FILE *f = fopen("/proc/self/maps", "r");
    CHECK(f != NULL);
    char line[512];
    int n = 0;
    while (fgets(line, sizeof line, f))
        n += strstr(line, "/memfd:") != NULL;
    fclose(f);
    return n;
}

/* Message i: 8-byte index then bytes derived from it; length varies. */
static size_t mlen(uint32_t i)
{
    return 8 + (i * 131u) % 3000u;
}

static void mfill(uint8_t *b, uint32_t i)
{
    size_t n = mlen(i);
    uint64_t v = i;
    memcpy(b, &v, 8);
    for (size_t k = 8; k < n; k++)
        b[k] = (uint8_t)(i + k * 13);
}

static void mcheck(const uint8_t *b, ssize_t n, const char *what)
{
    if (n == 4 && memcmp(b, "pong", 4) == 0)
        return;
    CHECK(n >= 8);
    uint64_t v;
    memcpy(&v, b, 8);
    static uint8_t exp[4096];
    if ((size_t)n != mlen((uint32_t)v)) {
        fprintf(stderr, "%s: message %llu has %zd bytes, want %zu (torn message)\n", what,
                (unsigned long long)v, n, mlen((uint32_t)v));
        exit(1);
    }
    mfill(exp, (uint32_t)v);
    if (memcmp(exp, b, (size_t)n) != 0) {
        fprintf(stderr, "%s: message %llu corrupted\n", what, (unsigned long long)v);
        exit(1);
    }
}

static void nap_us(long us)
{
    struct timespec ts = {us / 1000000, (us % 1000000) * 1000};
    nanosleep(&ts, NULL); /* a random kill point or a polling interval, never a wait for state */
}

/* The child: (optionally) answer one ping, then either send and receive as fast as it can (busy)
 * or do nothing at all (quiet: our blocking recv stays blocked, our sends fill the link) until
 * killed. */
static void child_run(const char *url, bool bind_it, bool quiet)
{
    ferry_socket *s = sock();
    int rc = bind_it ? ferry_socket_bind(s, url) : ferry_socket_connect(s, url);
    if (rc) {
        fprintf(stderr, "chaos child: %s %s: %s\n", bind_it ? "bind" : "connect", url,
                ferry_errname(rc));
        _exit(2);
    }
    if (bind_it) {
        /* Blocking recv right away: the peer attaches while we sleep in it (it must wake us). */
        static uint8_t b2[4096];
        ssize_t r;
        /* Our churn may have queued messages before the ping: skip them (checked intact). */
        while ((r = ferry_socket_recv(s, b2, sizeof b2, 0, NULL)) >= 0 &&
               !(r == 4 && memcmp(b2, "ping", 4) == 0))
            mcheck(b2, r, "child listener");
        int w = r == 4 ? ferry_socket_send(s, "pong", 4, 0) : 0;
        if (r != 4 || w) {
            fprintf(stderr, "chaos child: ping %zd, pong %s\n", r, ferry_errname(w));
            _exit(3);
        }
    }
    if (quiet)
        for (;;)
            pause();
    static uint8_t buf[4096];
    for (uint32_t i = 0;; i++) {
        mfill(buf, i);
        rc = ferry_socket_send(s, buf, mlen(i), FERRY_DONTWAIT);
        if (rc && rc != FERRY_EAGAIN)
            _exit(4);
        ssize_t r;
        while ((r = ferry_socket_recv(s, buf, sizeof buf, FERRY_DONTWAIT, NULL)) >= 0)
            ;
        if (r != FERRY_EAGAIN)
            _exit(5);
    }
}

/* Traffic from the parent while waiting for a state: keeps both directions busy and checked. */
static void churn(ferry_socket *s, uint32_t *i, const char *what)
{
    static uint8_t buf[4096];
    mfill(buf, *i);
    int rc = ferry_socket_send(s, buf, mlen(*i), FERRY_DONTWAIT);
    CHECK(rc == 0 || rc == FERRY_EAGAIN);
    (*i)++;
    /* Bounded: a fast child could otherwise keep a slow (sanitized) parent draining forever. */
    ssize_t r = 0;
    for (int k = 0;
         k < 64 && (r = ferry_socket_recv(s, buf, sizeof buf, FERRY_DONTWAIT, NULL)) >= 0; k++)
        mcheck(buf, r, what);
    CHECK(r >= 0 || r == FERRY_EAGAIN);
}

static uint32_t peers(ferry_socket *s)
{
    ferry_stats st;
    CHECK_OK(ferry_socket_stats(s, &st));
    return st.peers;
}

/* Waits (with a deadline) until the survivor counts `want` peers, with traffic (i != NULL) or
 * only looking; returns the time taken. */
static uint64_t wait_peers(ferry_socket *s, uint32_t want, uint32_t *i, const char *what)
{
    uint64_t t0 = tu_now_ns(), end = t0 + 10000000000ull;
    while (peers(s) != want) {
        if (tu_now_ns() > end) {
            fprintf(stderr, "%s: peers stayed %u, want %u, for 10 s\n", what, peers(s), want);
            child_state();
            exit(1);
        }
        if (i)
            churn(s, i, what);
        if (want == 0)
            note_closed();
        nap_us(200);
    }
    return tu_now_ns() - t0;
}

/* Receives (without waiting) whatever earlier peers left, checking it. */
static void drain(ferry_socket *s, const char *what)
{
    static uint8_t buf[4096];
    ssize_t r;
    while ((r = ferry_socket_recv(s, buf, sizeof buf, FERRY_DONTWAIT, NULL)) >= 0)
        mcheck(buf, r, what);
    CHECK(r == FERRY_EAGAIN);
}

/* The socket inodes open in this process ("socket:[N]" in /proc/self/fd). */
#define MAX_SOCKS 64
typedef struct sockset {
    unsigned long ino[MAX_SOCKS];
    int n;
} sockset;

static void sockets_now(sockset *ss)
{
    ss->n = 0;
    DIR *d = opendir("/proc/self/fd");
    CHECK(d != NULL);
    struct dirent *e;
    while ((e = readdir(d)) != NULL) {
        char path[300], target[64];
        snprintf(path, sizeof path, "/proc/self/fd/%s", e->d_name);
        ssize_t n = readlink(path, target, sizeof target - 1);
        if (n <= 0)
            continue;
        target[n] = 0;
        unsigned long ino;
        if (sscanf(target, "socket:[%lu]", &ino) == 1 && ss->n < MAX_SOCKS)
            ss->ino[ss->n++] = ino;
    }
    closedir(d);
}

static bool sockset_has(const sockset *ss, unsigned long ino)
{
    for (int i = 0; i < ss->n; i++)
        if (ss->ino[i] == ino)
            return true;
    return false;
}

/* The sockets of the link that just came up: open now and not before it (by inode, so neither a
 * reused fd number nor a reconnect attempt of the other socket confuses the count). */
static void sockets_new(const sockset *before, sockset *link)
{
    sockset now;
    sockets_now(&now);
    link->n = 0;
    for (int i = 0; i < now.n; i++)
        if (!sockset_has(before, now.ino[i]))
            link->ino[link->n++] = now.ino[i];
}

/* Waits until none of the link's sockets is open and the memfd mappings are back to base
 * (10 s deadline); false on timeout. */
static bool wait_link_gone(const sockset *link, int maps)
{
    uint64_t end = tu_now_ns() + 10000000000ull;
    for (;;) {
        sockset now;
        sockets_now(&now);
        bool open = false;
        for (int i = 0; i < link->n && !open; i++)
            open = sockset_has(&now, link->ino[i]);
        if (!open && memfd_maps() <= maps)
            return true;
        if (tu_now_ns() > end)
            return false;
        note_closed();
        nap_us(100);
    }
}

/* Watcher thread of the blocked modes: kills the child after `delay_us` (our thread is asleep in
 * its blocking call by then, normally) and measures until everything of the link is freed. */
typedef struct watch {
    pid_t pid;
    long delay_us;
    const sockset *link;
    int maps;
    uint64_t det, kill_ns;
    uint64_t late_ns; /* how much later than planned the watcher got to the kill (scheduling) */
    bool ok;
    _Atomic bool done; /* measured: our thread may stop blocking */
} watch;

static void *watch_main(void *arg)
{
    watch *w = arg;
    uint64_t planned = tu_now_ns() + (uint64_t)w->delay_us * 1000;
    nap_us(w->delay_us);
    uint64_t t0 = tu_now_ns();
    w->kill_ns = t0;
    w->late_ns = t0 > planned ? t0 - planned : 0;
    CHECK(kill(w->pid, SIGKILL) == 0);
    w->ok = wait_link_gone(w->link, w->maps);
    w->det = tu_now_ns() - t0;
    atomic_store(&w->done, true);
    return NULL;
}

/*
 * Blocked modes: our thread sleeps in recv (nothing comes) or in send (the link is full) while
 * the watcher kills the child. Each call ends at its timeout (call_ms); our thread makes the next
 * blocking call at once, and goes on until the watcher has its measure, like an application that
 * waits in a loop. It must: a dead link is the owner's to free (pipe.h: detached at the owner's
 * next call), so an owner that has stopped calling keeps it until it calls again. A single call
 * is not enough even with a window far longer than the kill delay: on a loaded machine the
 * watcher thread itself may be scheduled hundreds of ms late (its 1-21 ms nap took 257 ms at nice
 * 19, load 10), and the killed child may take as long again to close its descriptors, so the kill
 * or the hang-up could land after the one call had returned (that was known bug 5, docs/
 * hardening.md). With short calls (2 ms) the death nearly always lands between or after calls,
 * which checks that the next blocking call frees the link.
 */
static uint64_t blocked_kill(ferry_socket *s, pid_t pid, bool in_send, long delay_us, int call_ms,
                             const sockset *link, int maps, const char *what, uint64_t *kill_ns,
                             uint64_t *late_ns)
{
    static uint8_t buf[4096];
    if (in_send) {
        /* Fill the ring / socket buffers and the SNDHWM queue: the peer never receives. */
        int rc = 0;
        for (uint32_t k = 0;
             k < 1000000 && (rc = ferry_socket_send(s, buf, 1000, FERRY_DONTWAIT)) == 0; k++)
            ;
        CHECK_RC(rc, FERRY_EAGAIN);
    }
    watch w = {.pid = pid, .delay_us = delay_us, .link = link, .maps = maps};
    atomic_init(&w.done, false);
    CHECK_OK(
        ferry_socket_setopt_int(s, in_send ? FERRY_OPT_SNDTIMEO : FERRY_OPT_RCVTIMEO, call_ms));
    pthread_t th;
    CHECK(pthread_create(&th, NULL, watch_main, &w) == 0);
    int rc;
    long calls = 0;
    do {
        if (in_send) {
            /* The control thread's tail flush may still move our queue into the kernel and free
             * SNDHWM room: then the send succeeds, and the next one blocks. */
            for (int k = 0; k < 100000 && (rc = ferry_socket_send(s, buf, 1000, 0)) == 0; k++)
                ;
        } else {
            ssize_t n = ferry_socket_recv(s, buf, sizeof buf, 0, NULL);
            rc = n >= 0 ? 0 : (int)n;
        }
        calls++;
    } while (rc == FERRY_EAGAIN && !atomic_load(&w.done));
    CHECK(pthread_join(th, NULL) == 0);
    CHECK_OK(ferry_socket_setopt_int(s, in_send ? FERRY_OPT_SNDTIMEO : FERRY_OPT_RCVTIMEO, 10000));
    if (rc != FERRY_EAGAIN) {
        fprintf(stderr, "%s: the blocked call returned %s, want FERRY_EAGAIN at its timeout\n",
                what, ferry_errname(rc));
        exit(1);
    }
    if (!w.ok) {
        /* Our thread was in blocking calls all along (each call syncs the pipe set first): a
         * real leak, not an owner that stopped calling. */
        fprintf(stderr,
                "%s: the link's sockets/mappings were not freed within 10 s although our thread "
                "kept blocking in %s (%ld calls of %d ms; %d link sockets; memfd mappings %d, want "
                "%d)\n",
                what, in_send ? "send" : "recv", calls, call_ms, link->n, memfd_maps(), maps);
        sockset now;
        sockets_now(&now);
        for (int i = 0; i < link->n; i++)
            fprintf(stderr, "    watched socket:[%lu] %s\n", link->ino[i],
                    sockset_has(&now, link->ino[i]) ? "still open" : "closed");
        fd_list();
        exit(1);
    }
    *kill_ns = w.kill_ns;
    *late_ns = w.late_ns;
    return w.det;
}

static void reap_killed(pid_t pid)
{
    int st;
    CHECK(waitpid(pid, &st, 0) == pid);
    if (!(WIFSIGNALED(st) && WTERMSIG(st) == SIGKILL)) {
        fprintf(stderr, "chaos child ended early: %s %d\n", WIFEXITED(st) ? "exit" : "signal",
                WIFEXITED(st) ? WEXITSTATUS(st) : WTERMSIG(st));
        exit(1);
    }
}

static bool chaos(int t, int rounds, bool strict, int block_ms, unsigned *seed)
{
    char lurl[256], curl[256];
    int port = 0;
    switch (t) {
    case T_IPC:
        snprintf(lurl, sizeof lurl, "ipc://%s/%s", tu_tmpdir(), tu_unique("cl"));
        snprintf(curl, sizeof curl, "ipc://%s/%s", tu_tmpdir(), tu_unique("cc"));
        break;
    case T_TCP:
        snprintf(lurl, sizeof lurl, "tcp://127.0.0.1:*");
        port = tu_free_port();
        snprintf(curl, sizeof curl, "tcp://127.0.0.1:%d", port);
        break;
    default:
        snprintf(lurl, sizeof lurl, "shm://%s", tu_unique("cl"));
        snprintf(curl, sizeof curl, "shm://%s", tu_unique("cc"));
    }
    ferry_socket *l = sock();
    int rc = ferry_socket_bind(l, lurl);
    if (t == T_SHM && rc == FERRY_EPROTONOSUPPORT) {
        ferry_socket_close(l);
        return false;
    }
    CHECK_OK(rc);
    CHECK_OK(ferry_socket_last_endpoint(l, lurl, sizeof lurl));
    ferry_socket *c = sock();
    CHECK_OK(ferry_socket_connect(c, curl));
    /* For a failure's fd list: which ports are ours. */
    printf("  %s: listening on %s, connecting to %s\n", tname[t], lurl, curl);

    /* The memfd mappings with no link up (both sockets exist, no peer). */
    int maps_base = memfd_maps();
    /* The sockets that exist with no link up (the listener; maybe a reconnect attempt, whose inode
     * is never reused). A snapshot taken later, right before a fork, could catch the connecting
     * socket that is about to become the next link (created before the child listens). */
    sockset base_socks;
    sockets_now(&base_socks);
    uint64_t worst = 0, total = 0, mworst[S_COUNT] = {0}, mtotal[S_COUNT] = {0};
    uint64_t kworst = 0, lworst = 0, late_worst = 0;
    int over = 0, over_lib = 0; /* rounds over 100 ms; of which over 100 ms without the kernel */
    int mkills[S_COUNT] = {0};
    uint32_t li = 0, ci = 0;
    int kills = 0;
    for (int r = 0; r < rounds; r++) {
        bool child_listens = (r & 1) != 0;
        int mode = (r / 2) % M_COUNT;
        /* TCP cannot tell an idle reader: the dead peer's kernel still holds data for our full
         * receive window and sends its FIN only after it (zero-window probes meanwhile). */
        if (t == T_TCP && mode == M_IDLE)
            mode = M_BUSY;
        bool blocked = mode == M_RECV || mode == M_SEND;
        /* Blocked rounds alternate (every other pass through the modes) between calls of 200 ms,
         * asleep in the call at the kill, and calls of 2 ms, killed between or after calls;
         * FERRY_CHAOS_BLOCK_MS sets one length for all. */
        bool short_calls = block_ms <= 0 && ((r / (2 * M_COUNT)) & 1);
        int call_ms = block_ms > 0 ? block_ms : short_calls ? 2 : 200;
        int row = mode;
        if (blocked && short_calls)
            row = mode == M_RECV ? S_RECV_SHORT : S_SEND_SHORT;
        ferry_socket *s = child_listens ? c : l;
        char what[160];
        snprintf(what, sizeof what, "%s round %d (%s, %s)", tname[t], r, mname[row],
                 child_listens ? "connector, child listener killed"
                               : "listener, child connector killed");
        if (blocked) {
            /* Whatever earlier peers left is received first, so that their links go (the memfd
             * mappings must be back to the base before this round's link comes up). */
            drain(l, what);
            drain(c, what);
            uint64_t end = tu_now_ns() + 10000000000ull;
            while (memfd_maps() > maps_base) {
                if (tu_now_ns() > end) {
                    fprintf(stderr, "%s: memfd mappings %d never came back to %d\n", what,
                            memfd_maps(), maps_base);
                    exit(1);
                }
                nap_us(200);
            }
        }
        fflush(stdout);
        fflush(stderr);
        int dp[2];
        CHECK(pipe2(dp, O_CLOEXEC) == 0);
        pid_t pid = fork();
        CHECK(pid >= 0);
        g_child = pid;
        if (pid == 0) {
            close(dp[0]);
            alarm(60);
            child_run(child_listens ? curl : lurl, child_listens, blocked);
        }
        close(dp[1]);
        g_death_fd = dp[0];
        if (child_listens) {
            /* The peer returns: our connecting socket reconnects and a round trip works. The
             * send blocks before the peer is back (it must be woken when the link comes up, and
             * the dead previous peer's unread input must not keep the PAIR taken). */
            CHECK_OK(ferry_socket_send(c, "ping", 4, 0));
            static uint8_t b[4096];
            ssize_t n;
            uint64_t pend = tu_now_ns() + 20000000000ull;
            uint64_t others = 0;
            while ((n = ferry_socket_recv(c, b, sizeof b, 0, NULL)) != 4 ||
                   memcmp(b, "pong", 4) != 0) {
                if (tu_now_ns() > pend) {
                    fprintf(stderr,
                            "%s: no pong within 20 s, %llu other messages received "
                            "meanwhile (the pong was lost)\n",
                            what, (unsigned long long)others);
                    child_state();
                    exit(1);
                }
                others++;
                if (n < 0) {
                    fprintf(stderr, "%s: no pong: %s\n", what, ferry_errname((int)n));
                    child_state();
                    exit(1);
                }
                mcheck(b, n, what);
            }
        } else {
            wait_peers(s, 1, blocked || mode == M_IDLE ? NULL : &li, what);
        }
        uint32_t *ctr = child_listens ? &ci : &li;
        atomic_store(&g_closed_ns, 0);
        /* A random point in the phase. */
        long delay = (long)(rand_r(seed) % 20000);
        uint64_t det, kill_ns = 0;
        if (blocked) {
            sockset link;
            /* Also counts links of earlier rounds still being freed: they only add the time the
             * control thread needs to close them, which they were given already. */
            sockets_new(&base_socks, &link);
            CHECK(link.n > 0);
            uint64_t late = 0;
            det = blocked_kill(s, pid, mode == M_SEND, 1000 + delay, call_ms, &link, maps_base,
                               what, &kill_ns, &late);
            if (late > late_worst)
                late_worst = late;
        } else {
            uint64_t until = tu_now_ns() + (uint64_t)delay * 1000;
            while (tu_now_ns() < until) {
                if (mode == M_BUSY)
                    churn(s, ctr, what);
                nap_us(100);
            }
            CHECK(kill(pid, SIGKILL) == 0);
            kill_ns = tu_now_ns();
            det = wait_peers(s, 0, mode == M_BUSY ? ctr : NULL, what);
        }
        /* The kernel's share: kill until the child's descriptors were closed (not seen before
         * the detection, in the same poll step: the detection came right after it). */
        note_closed();
        uint64_t z = atomic_load(&g_closed_ns);
        uint64_t kern = z > kill_ns ? z - kill_ns : 0;
        if (kern > det)
            kern = det;
        close(g_death_fd);
        g_death_fd = -1;
        if (kern > kworst)
            kworst = kern;
        reap_killed(pid);
        kills++;
        total += det;
        mkills[row]++;
        mtotal[row] += det;
        if (det > mworst[row])
            mworst[row] = det;
        if (det > worst)
            worst = det;
        if (det - kern > lworst)
            lworst = det - kern;
        over += det > 100000000ull;
        over_lib += det - kern > 100000000ull;
        if (strict && t != T_TCP && det > 100000000ull) {
            fprintf(stderr,
                    "%s: detection took %.1f ms (> 100 ms), of which %.1f ms until the killed "
                    "child's descriptors were closed (load average %s)\n",
                    what, (double)det / 1e6, (double)kern / 1e6, loadavg());
            exit(1);
        }
    }
    /* The listener's last child ended by SIGKILL; a clean one last so stale files are replaced
     * and removed: then only our own listener's file may remain. */
    pid_t pid = fork();
    CHECK(pid >= 0);
    if (pid == 0) {
        ferry_socket *s = sock();
        int brc = ferry_socket_bind(s, curl);
        ferry_socket_close(s);
        _exit(brc == 0 ? 0 : 1);
    }
    int st;
    CHECK(waitpid(pid, &st, 0) == pid && WIFEXITED(st) && WEXITSTATUS(st) == 0);
    ferry_socket_close(c);
    ferry_socket_close(l);
    printf("  %s: %d kills (child listener and connector alternating), detection max %.2f ms, "
           "mean %.2f ms\n",
           tname[t], kills, (double)worst / 1e6, (double)total / 1e6 / (kills ? kills : 1));
    printf("    worst kernel share (kill until the child's fds were closed) %.2f ms, worst rest "
           "(closed until detected) %.2f ms; load average now %s\n",
           (double)kworst / 1e6, (double)lworst / 1e6, loadavg());
    printf("    rounds over 100 ms: %d (over 100 ms not counting the kernel's share: %d); the "
           "watcher's kill came up to %.2f ms later than planned (scheduling)\n",
           over, over_lib, (double)late_worst / 1e6);
    for (int m = 0; m < S_COUNT; m++)
        if (mkills[m])
            printf("    %-14s %4d kills, max %7.2f ms, mean %6.2f ms\n", mname[m], mkills[m],
                   (double)mworst[m] / 1e6, (double)mtotal[m] / 1e6 / mkills[m]);
    return true;
}

int main(void)
{
    signal(SIGPIPE, SIG_IGN);
    const char *e = getenv("FERRY_CHAOS_ROUNDS");
    int rounds = e && *e ? atoi(e) : 20;
    /* FERRY_CHAOS_STRICT=0: long run that measures only (counts the rounds over 100 ms). */
    const char *st = getenv("FERRY_CHAOS_STRICT");
    bool strict = e && *e && !(st && strcmp(st, "0") == 0);
    const char *only = getenv("FERRY_CHAOS_ONLY");
    /* FERRY_CHAOS_BLOCK_MS=n: every blocked call lasts n ms (default: 200 and 2 alternating). */
    const char *bm = getenv("FERRY_CHAOS_BLOCK_MS");
    int block_ms = bm && *bm ? atoi(bm) : 0;
    tu_deadline(e && *e ? 0 : 110); /* long runs take as long as they take */
    /* A private shm runtime directory so that it can be checked for leftovers. */
    snprintf(g_rundir, sizeof g_rundir, "%s/run", tu_tmpdir());
    CHECK(mkdir(g_rundir, 0700) == 0);
    CHECK(setenv("XDG_RUNTIME_DIR", g_rundir, 1) == 0);
    char shmdir[300];
    snprintf(shmdir, sizeof shmdir, "%s/ferry", g_rundir);
    /* Baselines after the library has started (its control thread and epoll exist). */
    ferry_socket *warm = sock();
    CHECK_OK(ferry_socket_bind(warm, "tcp://127.0.0.1:*"));
    ferry_socket_close(warm);
    int fds0 = fd_count(), maps0 = memfd_maps(), devshm0 = count_dir("/dev/shm", "ferry");
    unsigned seed = (unsigned)getpid();
    printf("chaos: %d rounds per transport (seed %u)\n", rounds, seed);
    for (int t = T_IPC; t <= T_SHM; t++)
        if (only && *only && strcmp(only, tname[t]) != 0)
            continue;
        else if (!chaos(t, rounds, strict, block_ms, &seed))
            printf("  %s: not available, skipped\n", tname[t]);
    /* Leak checks (the control thread closes dropped links asynchronously: poll, with deadline). */
    uint64_t end = tu_now_ns() + 10000000000ull;
    while ((fd_count() != fds0 || memfd_maps() != maps0) && tu_now_ns() < end)
        nap_us(5000);
    int fds1 = fd_count(), maps1 = memfd_maps(), devshm1 = count_dir("/dev/shm", "ferry");
    int left = count_dir(shmdir, NULL);
    printf("leaks: fds %d -> %d, memfd mappings %d -> %d, /dev/shm entries %d -> %d, shm runtime "
           "directory entries left %d\n",
           fds0, fds1, maps0, maps1, devshm0, devshm1, left);
    CHECK(fds1 == fds0);
    CHECK(maps1 == maps0);
    CHECK(devshm1 <= devshm0); /* ferry uses memfds: no ferry-named /dev/shm file may appear */
    CHECK(left == 0);
    return 0;
}
