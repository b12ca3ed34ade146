/*
 * test_shm_socket.c - shm:// and the ipc:// upgrade through the socket API, between real
 * processes: PAIR (sizes up to 8 MiB, multipart), PUSH/PULL, PUB/SUB and REQ/REP over shm://;
 * ipc:// between two ferry processes runs on shared memory (peers_shm == 1) unless either side
 * sets FERRY_OPT_SHM_UPGRADE to 0; a peer of another uid is refused (root only); and the peer
 * killed with SIGKILL at random points, alternately the listener and the connector: the survivor
 * notices, frees the link (no descriptor or segment mapping left), reconnects when the peer
 * returns, and no socket file is left behind. FERRY_SHM_KILL_ROUNDS sets the number of kill
 * rounds (default 20; 200 for the long run, which also asserts detection within 100 ms).
 */
#include "ferry/ferry.h"
#include "pattern/pattern.h"
#include "testutil.h"

#include <dirent.h>
#include <errno.h>
#include <poll.h>
#include <signal.h>
#include <stdbool.h>
#include <stdlib.h>
#include <string.h>
#include <sys/stat.h>
#include <sys/wait.h>
#include <unistd.h>

/* The forked children start a control thread; under ThreadSanitizer that needs this. */
const char *__tsan_default_options(void);
const char *__tsan_default_options(void)
{
    return "die_after_fork=0";
}

/* Sanitizer builds run the same cases with less volume (each test should stay short there). */
#if defined(__SANITIZE_ADDRESS__) || defined(__SANITIZE_THREAD__)
#define SANITIZED 1
#else
#define SANITIZED 0
#endif

static char rundir[300];

static int count_files(const char *dir)
{
    DIR *d = opendir(dir);
    if (!d)
        return 0;
    int n = 0;
    struct dirent *e;
    while ((e = readdir(d)))
        n += strcmp(e->d_name, ".") != 0 && strcmp(e->d_name, "..") != 0;
    closedir(d);
    return n;
}

static ferry_socket *open_sock(int type)
{
    ferry_socket *s;
    CHECK_OK(ferry_socket_open(&s, type));
    CHECK_OK(ferry_socket_setopt_int(s, FERRY_OPT_SNDTIMEO, 10000));
    CHECK_OK(ferry_socket_setopt_int(s, FERRY_OPT_RCVTIMEO, 10000));
    CHECK_OK(ferry_socket_setopt_int(s, FERRY_OPT_RECONNECT_IVL, 10));
    return s;
}

/* Polls the socket's statistics until it has `peers` live peers (and `shm` of them on shared
 * memory, unless shm < 0). Returns the nanoseconds it took; fails after 10 s. */
static uint64_t wait_peers(ferry_socket *s, uint32_t peers, int shm)
{
    uint64_t t0 = tu_now_ns();
    for (;;) {
        ferry_stats st;
        CHECK_OK(ferry_socket_stats(s, &st));
        if (st.peers == peers && (shm < 0 || st.peers_shm == (uint32_t)shm))
            return tu_now_ns() - t0;
        if (tu_now_ns() - t0 > 10000000000ull) {
            fprintf(stderr, "wait_peers: have %u/%u shm, want %u/%d\n", st.peers, st.peers_shm,
                    peers, shm);
            CHECK(0);
        }
        struct pollfd p = {.fd = ferry_socket_pollfd(s), .events = POLLIN};
        poll(&p, 1, 1);
    }
}

static void fill(uint8_t *b, size_t n, unsigned seed)
{
    for (size_t i = 0; i < n; i++)
        b[i] = (uint8_t)(i * 31u + seed + (i >> 12));
}

static int reap(pid_t pid)
{
    int st;
    CHECK(waitpid(pid, &st, 0) == pid);
    return WIFEXITED(st) ? WEXITSTATUS(st) : 1000 + WTERMSIG(st);
}

/* ---- PAIR echo over shm:// and ipc:// ---- */

static const size_t sizes[] = {0, 1, 40, 41, 255, 256, 4096, 65536, 1 << 20, 3 << 20, 8 << 20};
#define NSIZES (sizeof sizes / sizeof sizes[0])

static void echo_child(const char *url, int upgrade)
{
    ferry_socket *s = open_sock(FERRY_PAIR);
    if (!upgrade)
        CHECK_OK(ferry_socket_setopt_int(s, FERRY_OPT_SHM_UPGRADE, 0));
    CHECK_OK(ferry_socket_connect(s, url));
    uint8_t *buf = malloc(8 << 20);
    CHECK(buf);
    for (;;) {
        int more = 0;
        ssize_t n = ferry_socket_recv(s, buf, 8 << 20, 0, &more);
        CHECK(n >= 0);
        if (n == 3 && memcmp(buf, "end", 3) == 0)
            break;
        CHECK_OK(ferry_socket_send(s, buf, (size_t)n, more ? FERRY_MORE : 0));
    }
    free(buf);
    ferry_socket_close(s);
    _exit(0);
}

static void test_pair(const char *url, int parent_upgrade, int child_upgrade, int want_shm)
{
    ferry_socket *s = open_sock(FERRY_PAIR);
    if (!parent_upgrade)
        CHECK_OK(ferry_socket_setopt_int(s, FERRY_OPT_SHM_UPGRADE, 0));
    CHECK_OK(ferry_socket_bind(s, url));
    pid_t pid = fork();
    CHECK(pid >= 0);
    if (pid == 0)
        echo_child(url, child_upgrade);
    wait_peers(s, 1, want_shm);
    uint8_t *tx = malloc(8 << 20), *rx = malloc(8 << 20);
    CHECK(tx && rx);
    for (size_t i = 0; i < NSIZES - (SANITIZED ? 2 : 0); i++) {
        fill(tx, sizes[i], (unsigned)i);
        CHECK_OK(ferry_socket_send(s, tx, sizes[i], 0));
        int more = 1;
        CHECK_RC(ferry_socket_recv(s, rx, 8 << 20, 0, &more), (ssize_t)sizes[i]);
        CHECK(more == 0 && memcmp(tx, rx, sizes[i]) == 0);
    }
    /* Multipart, and a burst far larger than the ring in small messages. */
    CHECK_OK(ferry_socket_send(s, "a", 1, FERRY_MORE));
    CHECK_OK(ferry_socket_send(s, "", 0, FERRY_MORE));
    CHECK_OK(ferry_socket_send(s, "c", 1, 0));
    int more = 0;
    CHECK_RC(ferry_socket_recv(s, rx, 16, 0, &more), 1);
    CHECK(more == 1 && rx[0] == 'a');
    CHECK_RC(ferry_socket_recv(s, rx, 16, 0, &more), 0);
    CHECK(more == 1);
    CHECK_RC(ferry_socket_recv(s, rx, 16, 0, &more), 1);
    CHECK(more == 0 && rx[0] == 'c');
    for (uint32_t k = 0; k < (SANITIZED ? 4000u : 20000u); k++) {
        CHECK_OK(ferry_socket_send(s, &k, sizeof k, 0));
        if (k % 1000 == 999) {
            for (uint32_t j = k - 999; j <= k; j++) {
                uint32_t got;
                CHECK_RC(ferry_socket_recv(s, &got, sizeof got, 0, NULL), 4);
                CHECK(got == j);
            }
        }
    }
    ferry_stats st;
    CHECK_OK(ferry_socket_stats(s, &st));
    CHECK(st.peers == 1 && st.peers_shm == (uint32_t)want_shm);
    CHECK_OK(ferry_socket_send(s, "end", 3, 0));
    CHECK(reap(pid) == 0);
    wait_peers(s, 0, 0);
    free(tx);
    free(rx);
    ferry_socket_close(s);
}

/* ---- the other patterns over shm:// ---- */

static void test_patterns(void)
{
    char url[128];
    /* PUSH/PULL: the child pushes 1000 messages, the parent pulls them in order. */
    snprintf(url, sizeof url, "shm://%s", tu_unique("pp"));
    ferry_socket *pull = open_sock(FERRY_PULL);
    CHECK_OK(ferry_socket_bind(pull, url));
    pid_t pid = fork();
    CHECK(pid >= 0);
    if (pid == 0) {
        ferry_socket *push = open_sock(FERRY_PUSH);
        CHECK_OK(ferry_socket_connect(push, url));
        for (uint32_t k = 0; k < 1000; k++)
            CHECK_OK(ferry_socket_send(push, &k, sizeof k, 0));
        CHECK_OK(ferry_socket_setopt_int(push, FERRY_OPT_LINGER, 5000));
        ferry_socket_close(push);
        _exit(0);
    }
    /* ferry_poll sleeps until the first message arrives through the ring (the pipe announces the
     * sleep when events() finds nothing) and reports it. */
    ferry_pollitem it = {.socket = pull, .fd = -1, .events = FERRY_POLLIN};
    CHECK_RC(ferry_poll(&it, 1, 10000), 1);
    CHECK(it.revents & FERRY_POLLIN);
    for (uint32_t k = 0; k < 1000; k++) {
        uint32_t got;
        CHECK_RC(ferry_socket_recv(pull, &got, sizeof got, 0, NULL), 4);
        CHECK(got == k);
    }
    CHECK(reap(pid) == 0);
    ferry_socket_close(pull);

    /* REQ/REP: the child answers 100 requests. */
    snprintf(url, sizeof url, "shm://%s", tu_unique("rr"));
    ferry_socket *rep = open_sock(FERRY_REP);
    CHECK_OK(ferry_socket_bind(rep, url));
    pid = fork();
    CHECK(pid >= 0);
    if (pid == 0) {
        ferry_socket *req = open_sock(FERRY_REQ);
        CHECK_OK(ferry_socket_connect(req, url));
        for (uint32_t k = 0; k < 100; k++) {
            CHECK_OK(ferry_socket_send(req, &k, sizeof k, 0));
            uint32_t got;
            CHECK_RC(ferry_socket_recv(req, &got, sizeof got, 0, NULL), 4);
            CHECK(got == k * 2);
        }
        ferry_socket_close(req);
        _exit(0);
    }
    for (uint32_t k = 0; k < 100; k++) {
        uint32_t got;
        CHECK_RC(ferry_socket_recv(rep, &got, sizeof got, 0, NULL), 4);
        got *= 2;
        CHECK_OK(ferry_socket_send(rep, &got, sizeof got, 0));
    }
    CHECK(reap(pid) == 0);
    ferry_socket_close(rep);

    /* PUB/SUB: the child subscribes to "b" and reports what it got. */
    snprintf(url, sizeof url, "shm://%s", tu_unique("ps"));
    ferry_socket *pub = open_sock(FERRY_PUB);
    ferry_socket *back = open_sock(FERRY_PULL);
    char back_url[128];
    snprintf(back_url, sizeof back_url, "shm://%s", tu_unique("back"));
    CHECK_OK(ferry_socket_bind(pub, url));
    CHECK_OK(ferry_socket_bind(back, back_url));
    pid = fork();
    CHECK(pid >= 0);
    if (pid == 0) {
        ferry_socket *sub = open_sock(FERRY_SUB);
        ferry_socket *push = open_sock(FERRY_PUSH);
        CHECK_OK(ferry_socket_subscribe(sub, "b", 1));
        CHECK_OK(ferry_socket_connect(sub, url));
        CHECK_OK(ferry_socket_connect(push, back_url));
        char buf[64];
        int got_b = 0;
        bool acked = false;
        for (;;) {
            ssize_t n = ferry_socket_recv(sub, buf, sizeof buf, 0, NULL);
            CHECK(n > 0 && buf[0] == 'b');
            if (n == 7 && memcmp(buf, "b-probe", 7) == 0) {
                if (!acked)
                    CHECK_OK(ferry_socket_send(push, "ok", 2, 0));
                acked = true;
                continue;
            }
            if (n == 3 && memcmp(buf, "bye", 3) == 0)
                break;
            got_b++;
        }
        CHECK_OK(ferry_socket_send(push, &got_b, sizeof got_b, 0));
        CHECK_OK(ferry_socket_setopt_int(push, FERRY_OPT_LINGER, 5000));
        ferry_socket_close(push);
        ferry_socket_close(sub);
        _exit(0);
    }
    /* Probe until the subscription has arrived and the child says so, then publish. */
    char buf[64];
    for (;;) {
        CHECK_OK(ferry_socket_send(pub, "b-probe", 7, 0));
        CHECK_OK(ferry_socket_setopt_int(back, FERRY_OPT_RCVTIMEO, 5));
        ssize_t n = ferry_socket_recv(back, buf, sizeof buf, 0, NULL);
        if (n == 2)
            break;
        CHECK_RC(n, FERRY_EAGAIN);
    }
    CHECK_OK(ferry_socket_setopt_int(back, FERRY_OPT_RCVTIMEO, 10000));
    CHECK_OK(ferry_socket_stats(pub, &(ferry_stats){0}));
    wait_peers(pub, 1, 1);
    for (int i = 0; i < 200; i++)
        CHECK_OK(ferry_socket_send(pub, i % 2 ? "a-skip" : "b-take", 6, 0));
    CHECK_OK(ferry_socket_send(pub, "bye", 3, 0));
    int got_b = -1;
    CHECK_RC(ferry_socket_recv(back, &got_b, sizeof got_b, 0, NULL), (ssize_t)sizeof got_b);
    CHECK(got_b == 100);
    CHECK(reap(pid) == 0);
    ferry_socket_close(pub);
    ferry_socket_close(back);
}

/* ---- another uid ---- */

static void test_foreign_uid(void)
{
    if (geteuid() != 0) {
        fprintf(stderr, "foreign uid: skipped (not root)\n");
        return;
    }
    /* An ipc:// socket nobody can reach, so the credential check is what refuses it. */
    char dir[128], url[200];
    snprintf(dir, sizeof dir, "/tmp/%s", tu_unique("fyuid"));
    CHECK(mkdir(dir, 0777) == 0 && chmod(dir, 0777) == 0);
    snprintf(url, sizeof url, "ipc://%s/s", dir);
    ferry_socket *s = open_sock(FERRY_PAIR);
    CHECK_OK(ferry_socket_bind(s, url));
    CHECK(chmod(url + 6, 0777) == 0);
    pid_t pid = fork();
    CHECK(pid >= 0);
    if (pid == 0) {
        if (setgid(65534) != 0 || setuid(65534) != 0)
            _exit(3);
        ferry_socket *c = open_sock(FERRY_PAIR);
        CHECK_OK(ferry_socket_connect(c, url));
        /* Refused: the send can never be delivered. */
        CHECK_OK(ferry_socket_setopt_int(c, FERRY_OPT_SNDTIMEO, 300));
        int rc = ferry_socket_send(c, "x", 1, 0);
        ferry_socket_close(c);
        /* shm:// of the parent's runtime directory is out of reach altogether. */
        _exit(rc == FERRY_EAGAIN ? 0 : 4);
    }
    CHECK(reap(pid) == 0);
    ferry_stats st;
    CHECK_OK(ferry_socket_stats(s, &st));
    CHECK(st.peers == 0 && st.msgs_in == 0);
    ferry_socket_close(s);
    CHECK(rmdir(dir) == 0);
}

/* ---- SIGKILL at random points ---- */

static void kill_child_peer(const char *url, bool child_binds)
{
    ferry_socket *s = open_sock(FERRY_PAIR);
    if (child_binds)
        CHECK_OK(ferry_socket_bind(s, url));
    else
        CHECK_OK(ferry_socket_connect(s, url));
    /* Stream messages as fast as it can until it is killed. */
    uint8_t buf[2048];
    memset(buf, 7, sizeof buf);
    for (uint32_t k = 0;; k++) {
        size_t n = 1 + (k * 97u) % sizeof buf;
        int rc = ferry_socket_send(s, buf, n, 0);
        if (rc != 0 && rc != FERRY_EAGAIN)
            _exit(5);
    }
}

/*
 * Known bug 1 of docs/hardening.md, at its root: a PAIR peer goes away leaving input we have not
 * received; a new peer connects while our blocking send is already waiting. The send must reach
 * the new peer (before: the new peer was refused while the dead one's input waited, and the send
 * timed out), and recv must return the dead peer's messages first, all of them, in order, then the
 * new peer's answer. The first peer stays until we have attached it (then goes), so that we know
 * it is dead before we send: a peer that has exited but is not attached yet would take our send
 * into a link nobody reads (the new peer would then wait for it in vain).
 */
static void test_pair_replace(const char *url, int upgrade)
{
    enum { N = 100 };
    ferry_socket *s = open_sock(FERRY_PAIR);
    CHECK_OK(ferry_socket_setopt_int(s, FERRY_OPT_SHM_UPGRADE, upgrade));
    CHECK_OK(ferry_socket_bind(s, url));
    int go[2];
    CHECK(pipe(go) == 0);
    pid_t first = fork();
    CHECK(first >= 0);
    if (first == 0) {
        close(go[1]);
        ferry_socket *c = open_sock(FERRY_PAIR);
        CHECK_OK(ferry_socket_setopt_int(c, FERRY_OPT_SHM_UPGRADE, upgrade));
        CHECK_OK(ferry_socket_connect(c, url));
        char m[16];
        for (int i = 0; i < N; i++) {
            int n = snprintf(m, sizeof m, "A%d", i);
            CHECK_OK(ferry_socket_send(c, m, (size_t)n, 0));
        }
        CHECK_OK(ferry_socket_setopt_int(c, FERRY_OPT_LINGER, 10000));
        struct pollfd p = {.fd = go[0], .events = POLLIN};
        CHECK(poll(&p, 1, 10000) == 1); /* the parent has attached us (or exited) */
        ferry_socket_close(c);
        _exit(0);
    }
    close(go[0]);
    wait_peers(s, 1, -1); /* attached */
    CHECK(write(go[1], "g", 1) == 1);
    close(go[1]);
    CHECK(reap(first) == 0);
    wait_peers(s, 0, -1); /* gone, its input not received */
    pid_t second = fork();
    CHECK(second >= 0);
    if (second == 0) {
        ferry_socket *c = open_sock(FERRY_PAIR);
        CHECK_OK(ferry_socket_setopt_int(c, FERRY_OPT_SHM_UPGRADE, upgrade));
        CHECK_OK(ferry_socket_connect(c, url));
        char b[16];
        ssize_t n = ferry_socket_recv(c, b, sizeof b, 0, NULL);
        if (n != 1 || b[0] != 'B')
            _exit(20);
        if (ferry_socket_send(c, "C", 1, 0) != 0)
            _exit(21);
        CHECK_OK(ferry_socket_setopt_int(c, FERRY_OPT_LINGER, 10000));
        ferry_socket_close(c);
        _exit(0);
    }
    /* Blocks until the second peer is attached (it must wake us and take our message). */
    CHECK_OK(ferry_socket_send(s, "B", 1, 0));
    char b[16];
    for (int i = 0; i < N; i++) {
        char want[16];
        int wn = snprintf(want, sizeof want, "A%d", i);
        ssize_t n = ferry_socket_recv(s, b, sizeof b, 0, NULL);
        if (n != wn || memcmp(b, want, (size_t)wn) != 0) {
            fprintf(stderr,
                    "pair replace (%s, upgrade %d): message %d of the dead peer: got %zd (%.*s)\n",
                    url, upgrade, i, n, n > 0 ? (int)n : 0, b);
            CHECK(0);
        }
    }
    ssize_t n = ferry_socket_recv(s, b, sizeof b, 0, NULL);
    if (n != 1 || b[0] != 'C') {
        fprintf(stderr, "pair replace (%s, upgrade %d): after the dead peer's %d: got %zd (%.*s)\n",
                url, upgrade, N, n, n > 0 ? (int)n : 0, b);
        CHECK(0);
    }
    CHECK(reap(second) == 0);
    ferry_socket_close(s);
}

static void count_pending(void *ctx, fy_pipe *p)
{
    (void)p;
    (*(int *)ctx)++;
}

/* Published links the owner has not attached yet (it attaches them at its next call). */
static int pending_links(ferry_socket *s)
{
    int n = 0;
    fy_socket_links_lock(s);
    fy_socket_foreach_pending(s, count_pending, &n);
    fy_socket_links_unlock(s);
    return n;
}

/*
 * The same replacement when the owner makes no call between the two peers: the dead peer's link
 * and the new peer's link both wait to be attached when the blocking send starts. Nothing may be
 * lost: the dead peer's messages first, then the new peer's answer. Until session 4 the core
 * attached waiting links newest first (fy_socket_sync walked s->incoming, which
 * fy_socket_publish_pipe pushes at its head), so the new peer took the PAIR, the dead one was
 * refused at attach and its unread messages were dropped with it; this case failed every time.
 */
static void test_pair_replace_pending(const char *url, int upgrade)
{
    enum { N = 100 };
    ferry_socket *s = open_sock(FERRY_PAIR);
    CHECK_OK(ferry_socket_setopt_int(s, FERRY_OPT_SHM_UPGRADE, upgrade));
    CHECK_OK(ferry_socket_bind(s, url));
    /* The pollfd is taken now, while no link can be waiting: the first ferry_socket_pollfd call
     * runs the pollfd upkeep, which syncs, i.e. attaches whatever waits. Taken in the loop below
     * (as before), it attached the first peer's link whenever that link was published before the
     * loop's first look, so the count of waiting links then stopped at 1 for the second peer and
     * the wait failed after 10 s (43 of ~460 runs under ASan at load ~8). */
    int pfd = ferry_socket_pollfd(s);
    CHECK(pfd >= 0);
    pid_t kids[2];
    for (int k = 0; k < 2; k++) {
        kids[k] = fork();
        CHECK(kids[k] >= 0);
        if (kids[k] == 0) {
            ferry_socket *c = open_sock(FERRY_PAIR);
            CHECK_OK(ferry_socket_setopt_int(c, FERRY_OPT_SHM_UPGRADE, upgrade));
            CHECK_OK(ferry_socket_connect(c, url));
            if (k == 0) {
                char m[16];
                for (int i = 0; i < N; i++) {
                    int n = snprintf(m, sizeof m, "A%d", i);
                    CHECK_OK(ferry_socket_send(c, m, (size_t)n, 0));
                }
            } else {
                char b[16];
                if (ferry_socket_recv(c, b, sizeof b, 0, NULL) != 1 || b[0] != 'B')
                    _exit(20);
                CHECK_OK(ferry_socket_send(c, "C", 1, 0));
            }
            CHECK_OK(ferry_socket_setopt_int(c, FERRY_OPT_LINGER, 10000));
            ferry_socket_close(c);
            _exit(0);
        }
        /* No call on s: wait until this peer's link is published, not attached. */
        uint64_t t0 = tu_now_ns();
        while (pending_links(s) != k + 1) {
            CHECK(tu_now_ns() - t0 < 10000000000ull);
            struct pollfd p = {.fd = pfd, .events = POLLIN};
            poll(&p, 1, 1);
        }
        if (k == 0)
            CHECK(reap(kids[0]) == 0); /* everything sent, and gone */
    }
    CHECK_OK(ferry_socket_send(s, "B", 1, 0));
    char b[16];
    for (int i = 0; i < N; i++) {
        char want[16];
        int wn = snprintf(want, sizeof want, "A%d", i);
        ssize_t n = ferry_socket_recv(s, b, sizeof b, 0, NULL);
        if (n != wn || memcmp(b, want, (size_t)wn) != 0) {
            fprintf(stderr,
                    "pair replace, both waiting (%s, upgrade %d): message %d of the dead peer: "
                    "got %zd (%.*s)\n",
                    url, upgrade, i, n, n > 0 ? (int)n : 0, b);
            CHECK(0);
        }
    }
    ssize_t n = ferry_socket_recv(s, b, sizeof b, 0, NULL);
    CHECK(n == 1 && b[0] == 'C');
    CHECK(reap(kids[1]) == 0);
    ferry_socket_close(s);
}

static int cmp_u64(const void *a, const void *b)
{
    uint64_t x = *(const uint64_t *)a, y = *(const uint64_t *)b;
    return x < y ? -1 : x > y;
}

static void test_kill(void)
{
    const char *env = getenv("FERRY_SHM_KILL_ROUNDS");
    int rounds = env ? atoi(env) : SANITIZED ? 6 : 20;
    bool strict = rounds >= 200;
    char url[128];
    snprintf(url, sizeof url, "shm://%s", tu_unique("kill"));
    int fds0 = tu_count_fds();
    uint64_t worst = 0;
    srand((unsigned)getpid());
    ferry_socket *s = NULL;
    bool parent_binds = false;
    int shm_deaths = 0, late_links = 0;
    static uint64_t dts[4096];
    for (int r = 0; r < rounds; r++) {
        bool child_binds = (r & 1) != 0;
        if (!s || parent_binds == child_binds) {
            /* Roles change: a fresh parent socket bound or connected accordingly. */
            ferry_socket_close(s);
            s = open_sock(FERRY_PAIR);
            CHECK_OK(ferry_socket_setopt_int(s, FERRY_OPT_RCVTIMEO, 20));
            parent_binds = !child_binds;
            if (parent_binds)
                CHECK_OK(ferry_socket_bind(s, url));
            else
                CHECK_OK(ferry_socket_connect(s, url));
        }
        pid_t pid = fork();
        CHECK(pid >= 0);
        if (pid == 0)
            kill_child_peer(url, child_binds);
        bool linked = (rand() % 4) != 0; /* one round in four: kill at a random early point */
        uint8_t buf[4096];
        if (linked) {
            wait_peers(s, 1, 1);
            int n = rand() % 200;
            for (int i = 0; i < n; i++) {
                ssize_t got = ferry_socket_recv(s, buf, sizeof buf, 0, NULL);
                CHECK(got > 0 || got == FERRY_EAGAIN);
            }
        } else {
            usleep((useconds_t)(rand() % 3000));
        }
        CHECK(kill(pid, SIGKILL) == 0);
        uint64_t t0 = tu_now_ns();
        /* Detection: the peer counts as gone (stats count live peers only) while what it sent
         * before dying may still be queued for us. */
        if (linked) {
            wait_peers(s, 0, -1);
            uint64_t dt = tu_now_ns() - t0;
            if (shm_deaths < (int)(sizeof dts / sizeof dts[0]))
                dts[shm_deaths] = dt;
            shm_deaths++;
            if (dt > worst)
                worst = dt;
        }
        CHECK(reap(pid) == 1000 + SIGKILL);
        /* Drain what the peer sent before it died; then the link must go away. */
        for (;;) {
            ssize_t got = ferry_socket_recv(s, buf, sizeof buf, FERRY_DONTWAIT, NULL);
            ferry_stats st;
            CHECK_OK(ferry_socket_stats(s, &st));
            if (got < 0 && st.peers == 0)
                break;
            CHECK(tu_now_ns() - t0 < 10000000000ull);
            if (got < 0) {
                struct pollfd p = {.fd = ferry_socket_pollfd(s), .events = POLLIN};
                poll(&p, 1, 1);
            }
        }
        /* The link's segment is unmapped once the control thread frees it. "No peer" above does
         * not mean no link: after a kill at an early point the control thread may still be in the
         * handshake or the shm hand-over, and publish the link after the loop has ended (dead,
         * holding what the peer sent before it died). Such a link stays until that input is
         * received (pipe.h), like any dead link; the pollfd says so, and we receive when it does,
         * as an application would. Before, this loop only polled and read the statistics, and
         * now and then (a few runs in a hundred at load 6-8) waited for ever. */
        uint64_t t1 = tu_now_ns();
        bool late = false;
        while (tu_count_segment_maps() != 0) {
            CHECK(tu_now_ns() - t1 < 10000000000ull);
            struct pollfd p = {.fd = ferry_socket_pollfd(s), .events = POLLIN};
            if (poll(&p, 1, 1) == 1) {
                ssize_t got;
                while ((got = ferry_socket_recv(s, buf, sizeof buf, FERRY_DONTWAIT, NULL)) > 0)
                    late = true;
                CHECK(got == FERRY_EAGAIN);
            }
            ferry_stats st;
            ferry_socket_stats(s, &st);
        }
        late_links += late;
    }
    ferry_socket_close(s);
    int nd = shm_deaths < 4096 ? shm_deaths : 4096;
    qsort(dts, (size_t)nd, sizeof dts[0], cmp_u64);
    fprintf(stderr,
            "kill: %d rounds, %d with a live shm link, %d with input received after the drain, "
            "detection p50 %.2f ms, p90 %.2f ms, worst %.2f ms\n",
            rounds, shm_deaths, late_links, nd ? (double)dts[nd / 2] / 1e6 : 0.0,
            nd ? (double)dts[nd * 9 / 10] / 1e6 : 0.0, (double)worst / 1e6);
    if (strict)
        CHECK(worst <= 100000000ull);
    CHECK(tu_count_segment_maps() == 0);
    CHECK(tu_count_fds() == fds0);
    /* A killed listener leaves its socket file; the next bind replaces it, close removes it. */
    ferry_socket *last = open_sock(FERRY_PAIR);
    CHECK_OK(ferry_socket_bind(last, url));
    ferry_socket_close(last);
    CHECK(count_files(rundir) == 0);
}

int main(void)
{
    const char *rounds = getenv("FERRY_SHM_KILL_ROUNDS");
    tu_deadline(110 + (rounds ? (unsigned)atoi(rounds) : 0));
    signal(SIGPIPE, SIG_IGN);
    /* A private runtime directory, so "no file left behind" can be checked exactly. */
    char xdg[256];
    snprintf(xdg, sizeof xdg, "%s/xdg", tu_tmpdir());
    CHECK(mkdir(xdg, 0700) == 0);
    CHECK(setenv("XDG_RUNTIME_DIR", xdg, 1) == 0);
    snprintf(rundir, sizeof rundir, "%s/ferry", xdg);

    char url[300];
    snprintf(url, sizeof url, "shm://%s", tu_unique("pair"));
    fprintf(stderr, "pair over shm\n");
    test_pair(url, 1, 1, 1);
    fprintf(stderr, "pair over shm, upgrade option off (shm:// ignores it)\n");
    snprintf(url, sizeof url, "shm://%s", tu_unique("pair"));
    test_pair(url, 0, 0, 1);
    fprintf(stderr, "ipc upgrade\n");
    snprintf(url, sizeof url, "ipc://%s/%s", tu_tmpdir(), tu_unique("ipc"));
    test_pair(url, 1, 1, 1);
    fprintf(stderr, "ipc, no upgrade\n");
    snprintf(url, sizeof url, "ipc://%s/%s", tu_tmpdir(), tu_unique("ipc"));
    test_pair(url, 1, 0, 0);
    snprintf(url, sizeof url, "ipc://%s/%s", tu_tmpdir(), tu_unique("ipc"));
    test_pair(url, 0, 1, 0);
    fprintf(stderr, "pair: a new peer replaces a dead one that left unread input\n");
    snprintf(url, sizeof url, "shm://%s", tu_unique("repl"));
    test_pair_replace(url, 1);
    snprintf(url, sizeof url, "ipc://%s/%s", tu_tmpdir(), tu_unique("repl"));
    test_pair_replace(url, 1);
    snprintf(url, sizeof url, "ipc://%s/%s", tu_tmpdir(), tu_unique("repl"));
    test_pair_replace(url, 0);
    fprintf(stderr, "pair: the same, both links waiting to be attached\n");
    snprintf(url, sizeof url, "shm://%s", tu_unique("repl"));
    test_pair_replace_pending(url, 1);
    snprintf(url, sizeof url, "ipc://%s/%s", tu_tmpdir(), tu_unique("repl"));
    test_pair_replace_pending(url, 1);
    snprintf(url, sizeof url, "ipc://%s/%s", tu_tmpdir(), tu_unique("repl"));
    test_pair_replace_pending(url, 0);
    fprintf(stderr, "patterns\n");
    test_patterns();
    fprintf(stderr, "foreign uid\n");
    test_foreign_uid();
    fprintf(stderr, "kill\n");
    test_kill();
    CHECK(count_files(rundir) == 0);
    printf("test_shm_socket: ok\n");
    return 0;
}
