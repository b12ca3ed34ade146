/*
 * test_harden_stream.c - a hostile raw byte-stream peer against a ferry PULL
 * socket, on tcp:// and ipc://. Each attack (truncated greeting, bad signature,
 * ZMTP 2.0, PLAIN/CURVE, absurd LONG sizes, an over-size frame, unknown
 * commands, bad READY properties, a slowloris, a storm of connect-and-drop
 * clients) must end in a clean disconnect of that peer alone: a well-behaved
 * ferry PUSH on the same endpoint exchanges a message after every attack, and
 * the process's memory and fd count stay bounded (a peer's size claim never
 * drives an allocation before the bytes arrive). Long mode:
 * FERRY_HARDEN_DROP_CLIENTS (default 1000) and FERRY_HARDEN_SLOWLORIS_BYTES
 * (default 20; any larger value feeds the whole handshake and message a byte at
 * a time).
 */
#include "ferry/ferry.h"
#include "testutil.h"
#include "wire/zmtp.h"

#include <arpa/inet.h>
#include <dirent.h>
#include <errno.h>
#include <netinet/in.h>
#include <poll.h>
#include <signal.h>
#include <stdbool.h>
#include <stdio.h>
#include <string.h>
#include <sys/socket.h>
#include <sys/un.h>
#include <time.h>
#include <unistd.h>

#if defined(__SANITIZE_ADDRESS__)
#define HARDEN_ASAN 1
#elif defined(__has_feature)
#if __has_feature(address_sanitizer)
#define HARDEN_ASAN 1
#endif
#endif

#if defined(__SANITIZE_THREAD__)
#define HARDEN_TSAN 1
#elif defined(__has_feature)
#if __has_feature(thread_sanitizer)
#define HARDEN_TSAN 1
#endif
#endif

#ifdef HARDEN_ASAN
/* Freed blocks sit in ASan's quarantine (256 MiB by default) and would read as
 * growth. */
const char *__asan_default_options(void);
const char *__asan_default_options(void)
{
    return "quarantine_size_mb=4";
}
#endif

static bool g_tcp;
static int g_port;
static char g_path[108];
static ferry_socket *g_pull, *g_push;
static unsigned g_seq;

static long env_long(const char *name, long dflt)
{
    const char *v = getenv(name);
    return v && *v ? strtol(v, NULL, 10) : dflt;
}

static long status_kib(const char *key)
{
    FILE *f = fopen("/proc/self/status", "r");
    CHECK(f != NULL);
    char line[256];
    long v = -1;
    size_t kl = strlen(key);
    while (fgets(line, sizeof line, f))
        if (strncmp(line, key, kl) == 0 && line[kl] == ':')
            v = strtol(line + kl + 1, NULL, 10);
    fclose(f);
    CHECK(v >= 0);
    return v;
}

static int fd_count(void)
{
    DIR *d = opendir("/proc/self/fd");
    CHECK(d != NULL);
    int n = 0;
    struct dirent *e;
    while ((e = readdir(d)) != NULL)
        if (e->d_name[0] != '.')
            n++;
    closedir(d);
    return n - 1; /* the directory stream's own fd */
}

static int raw_connect(void)
{
    int fd;
    if (g_tcp) {
        fd = socket(AF_INET, SOCK_STREAM | SOCK_CLOEXEC, 0);
        CHECK(fd >= 0);
        struct sockaddr_in a = {.sin_family = AF_INET,
                                .sin_addr.s_addr = htonl(INADDR_LOOPBACK),
                                .sin_port = htons((uint16_t)g_port)};
        CHECK(connect(fd, (struct sockaddr *)&a, sizeof a) == 0);
    } else {
        fd = socket(AF_UNIX, SOCK_STREAM | SOCK_CLOEXEC, 0);
        CHECK(fd >= 0);
        struct sockaddr_un a = {.sun_family = AF_UNIX};
        memcpy(a.sun_path, g_path, strlen(g_path) + 1);
        CHECK(connect(fd, (struct sockaddr *)&a, sizeof a) == 0);
    }
    return fd;
}

/* Writes everything; a reset by ferry part-way is acceptable (it may drop us
 * before we finish). */
static void put(int fd, const void *b, size_t n)
{
    const uint8_t *p = b;
    while (n) {
        ssize_t w = send(fd, p, n, MSG_NOSIGNAL);
        if (w < 0 && (errno == EPIPE || errno == ECONNRESET))
            return;
        CHECK(w > 0);
        p += w;
        n -= (size_t)w;
    }
}

/*
 * ferry must close the connection on its own: read (discarding its greeting) until EOF or reset.
 * Frames after the handshake are parsed on the receiving thread (the hot path runs on the
 * caller's thread), so the PULL keeps receiving meanwhile; nothing from the attacker may arrive.
 */
static void expect_dropped(int fd, const char *what)
{
    uint8_t b[4096];
    uint64_t end = tu_now_ns() + 10000000000ull;
    for (;;) {
        if (tu_now_ns() >= end) {
            fprintf(stderr, "attack '%s': ferry did not drop the peer within 10 s\n", what);
            exit(1);
        }
        ssize_t got = ferry_socket_recv(g_pull, b, sizeof b, FERRY_DONTWAIT, NULL);
        if (got != FERRY_EAGAIN) {
            fprintf(stderr, "attack '%s': the PULL received %zd (%s) from the attacker\n", what,
                    got, got < 0 ? ferry_errname((int)got) : "a message");
            exit(1);
        }
        struct pollfd p = {.fd = fd, .events = POLLIN};
        int pr = poll(&p, 1, 10);
        CHECK(pr >= 0);
        if (pr == 0)
            continue;
        ssize_t r = read(fd, b, sizeof b);
        if (r == 0 || (r < 0 && errno == ECONNRESET))
            break;
        CHECK(r > 0);
    }
    close(fd);
}

/* Like put(), but keeps the PULL receiving while the kernel buffer is full (ferry reads a link's
 * input on the receiving thread); nothing may be delivered from the attacker meanwhile. */
static void put_driving(int fd, const void *b, size_t n)
{
    const uint8_t *p = b;
    uint64_t end = tu_now_ns() + 20000000000ull;
    while (n) {
        CHECK(tu_now_ns() < end);
        ssize_t w = send(fd, p, n, MSG_NOSIGNAL | MSG_DONTWAIT);
        if (w > 0) {
            p += w;
            n -= (size_t)w;
            continue;
        }
        CHECK(w < 0 && (errno == EAGAIN || errno == EWOULDBLOCK));
        char x[64];
        CHECK_RC(ferry_socket_recv(g_pull, x, sizeof x, FERRY_DONTWAIT, NULL), FERRY_EAGAIN);
        struct pollfd pf = {.fd = fd, .events = POLLOUT};
        CHECK(poll(&pf, 1, 10) >= 0);
    }
}

/* The well-behaved peer still gets a fresh, distinct message through. */
static void good_peer_works(const char *after)
{
    char want[32], got[32];
    int n = snprintf(want, sizeof want, "ok-%u", ++g_seq);
    CHECK_OK(ferry_socket_send(g_push, want, (size_t)n, 0));
    ssize_t r = ferry_socket_recv(g_pull, got, sizeof got, 0, NULL);
    if (r != n || memcmp(got, want, (size_t)n) != 0) {
        fprintf(stderr, "after '%s': good peer's message lost (recv %zd: %s)\n", after, r,
                r < 0 ? ferry_errname((int)r) : "wrong bytes");
        exit(1);
    }
}

static size_t greeting(uint8_t *buf, const char *mech)
{
    CHECK(fy_zmtp_greeting_encode(buf, 1, mech, 0) == 64);
    return 64;
}

static size_t greeting_ready(uint8_t *buf, int type)
{
    greeting(buf, "NULL");
    ssize_t n = fy_zmtp_ready_encode(buf + 64, 512, type, NULL, 0, NULL);
    CHECK(n > 0);
    return 64 + (size_t)n;
}

/* A connection that completed the handshake as PUSH, then gets `tail` and must
 * be dropped. */
static void after_handshake(const void *tail, size_t n, const char *what)
{
    uint8_t buf[1024];
    int fd = raw_connect();
    put(fd, buf, greeting_ready(buf, FERRY_PUSH));
    put(fd, tail, n);
    expect_dropped(fd, what);
    good_peer_works(what);
}

static void long_header(uint8_t *h, uint8_t flags, uint64_t size)
{
    h[0] = (uint8_t)(flags | FY_ZMTP_FLAG_LONG);
    for (int i = 0; i < 8; i++)
        h[1 + i] = (uint8_t)(size >> (56 - 8 * i));
}

static void attacks_greeting(void)
{
    uint8_t buf[1024];

    /* Truncated greeting, then we close: nothing to assert on the raw side but
     * ferry's health. */
    for (size_t cut = 1; cut < 64; cut += 9) {
        int fd = raw_connect();
        put(fd, buf, greeting(buf, "NULL") - (64 - cut));
        close(fd);
    }
    good_peer_works("truncated greeting");

    /* Truncated greeting and then silence: ferry keeps waiting (handshake timeout
     * is 30 s) but must keep serving; we close it ourselves. */
    int idle = raw_connect();
    put(idle, buf, 11);
    good_peer_works("truncated greeting, silent");

    greeting(buf, "NULL");
    buf[0] = 0x00; /* bad signature */
    int fd = raw_connect();
    put(fd, buf, 64);
    expect_dropped(fd, "bad signature");
    good_peer_works("bad signature");

    greeting(buf, "NULL");
    buf[9] = 0x00; /* bad signature tail */
    fd = raw_connect();
    put(fd, buf, 64);
    expect_dropped(fd, "bad signature tail");
    good_peer_works("bad signature tail");

    greeting(buf, "NULL");
    buf[10] = 2; /* ZMTP 2.0 */
    buf[11] = 0;
    fd = raw_connect();
    put(fd, buf, 64);
    expect_dropped(fd, "version 2.0");
    good_peer_works("version 2.0");

    fd = raw_connect();
    put(fd, "GET / HTTP/1.1\r\nHost: x\r\n\r\n", 27);
    expect_dropped(fd, "http");
    good_peer_works("http");

    const char *mechs[] = {"PLAIN", "CURVE", "GSSAPI", "NUL"};
    for (size_t i = 0; i < sizeof mechs / sizeof *mechs; i++) {
        fd = raw_connect();
        put(fd, buf, greeting(buf, mechs[i]));
        expect_dropped(fd, mechs[i]);
        good_peer_works(mechs[i]);
    }
    close(idle);
    good_peer_works("idle closed");
}

static void attacks_ready(void)
{
    uint8_t buf[200000];
    size_t g;

    /* READY claiming a socket type PULL cannot talk to. */
    const int bad_types[] = {FERRY_PUB, FERRY_SUB, FERRY_PULL, FERRY_REQ, FERRY_ROUTER};
    for (size_t i = 0; i < sizeof bad_types / sizeof *bad_types; i++) {
        int fd = raw_connect();
        put(fd, buf, greeting_ready(buf, bad_types[i]));
        expect_dropped(fd, "incompatible Socket-Type");
        good_peer_works("incompatible Socket-Type");
    }

    /* READY with no Socket-Type at all (only an Identity). */
    g = greeting(buf, "NULL");
    fy_zmtp_prop idp = {.name = "Identity", .name_len = 8, .value = "x", .value_len = 1};
    ssize_t n = fy_zmtp_ready_encode_props(buf + g, sizeof buf - g, &idp, 1);
    CHECK(n > 0);
    int fd = raw_connect();
    put(fd, buf, g + (size_t)n);
    expect_dropped(fd, "missing Socket-Type");
    good_peer_works("missing Socket-Type");

    /* Socket-Type with an unknown name. */
    fy_zmtp_prop st = {.name = "Socket-Type", .name_len = 11, .value = "PUSHX", .value_len = 5};
    n = fy_zmtp_ready_encode_props(buf + g, sizeof buf - g, &st, 1);
    CHECK(n > 0);
    fd = raw_connect();
    put(fd, buf, g + (size_t)n);
    expect_dropped(fd, "unknown Socket-Type");
    good_peer_works("unknown Socket-Type");

    /* A property value length far beyond the frame (0xFFFFFFF0). */
    uint8_t body[64];
    size_t b = 0;
    body[b++] = 5;
    memcpy(body + b, "READY", 5), b += 5;
    body[b++] = 11;
    memcpy(body + b, "Socket-Type", 11), b += 11;
    memcpy(body + b, "\xff\xff\xff\xf0", 4), b += 4;
    memcpy(body + b, "PUSH", 4), b += 4;
    buf[g] = FY_ZMTP_FLAG_COMMAND;
    buf[g + 1] = (uint8_t)b;
    memcpy(buf + g + 2, body, b);
    fd = raw_connect();
    put(fd, buf, g + 2 + b);
    expect_dropped(fd, "over-long property length");
    good_peer_works("over-long property length");

    /* A well-formed READY whose extra property makes the command larger than the
     * command cap. */
    static char junk[150000];
    memset(junk, 'j', sizeof junk);
    fy_zmtp_prop big[2] = {
        {.name = "Socket-Type", .name_len = 11, .value = "PUSH", .value_len = 4},
        {.name = "X-Junk", .name_len = 6, .value = junk, .value_len = sizeof junk}};
    n = fy_zmtp_ready_encode_props(buf + g, sizeof buf - g, big, 2);
    if (n > 0) {
        fd = raw_connect();
        put(fd, buf, g + (size_t)n);
        expect_dropped(fd, "READY larger than the command limit");
        good_peer_works("READY larger than the command limit");
    }

    /* An unknown command where READY belongs. */
    n = fy_zmtp_command_encode(buf + g, sizeof buf - g, "HELLOX", "abc", 3);
    CHECK(n > 0);
    fd = raw_connect();
    put(fd, buf, g + (size_t)n);
    expect_dropped(fd, "unknown command instead of READY");
    good_peer_works("unknown command instead of READY");

    /* Data before READY. */
    memcpy(buf + g, "\x00\x03zzz", 5);
    fd = raw_connect();
    put(fd, buf, g + 5);
    expect_dropped(fd, "data before READY");
    good_peer_works("data before READY");
}

static void attacks_frames(void)
{
    uint8_t h[FY_ZMTP_MAX_HEADER + 16];
    const uint64_t sizes[] = {UINT64_C(1) << 63, UINT64_MAX, UINT64_C(1) << 40,
                              FY_ZMTP_DEFAULT_MAX_MSG + 1};
    for (size_t i = 0; i < sizeof sizes / sizeof *sizes; i++) {
        long_header(h, 0, sizes[i]);
        memcpy(h + 9, "abcdefgh", 8);
        after_handshake(h, 17, "absurd LONG size");
        long_header(h, FY_ZMTP_FLAG_COMMAND, sizes[i]);
        after_handshake(h, 17, "absurd LONG command size");
    }
    /* Reserved flag bits. */
    after_handshake("\x08\x01x", 3, "reserved flag bit");
    after_handshake("\xf0\x01x", 3, "reserved flag bits");
    /* A short command frame that does not even hold its name. */
    after_handshake("\x04\x05\x09PING", 7, "truncated command name");
    /* READY again after the handshake. */
    {
        uint8_t r[128];
        ssize_t n = fy_zmtp_ready_encode(r, sizeof r, FERRY_PUSH, NULL, 0, NULL);
        CHECK(n > 0);
        int fd = raw_connect();
        uint8_t buf[1024];
        put(fd, buf, greeting_ready(buf, FERRY_PUSH));
        put(fd, r, (size_t)n);
        /* A second READY is either ignored or fatal; a message sent after it must
         * then either arrive or the link must drop. */
        put(fd,
            "\x00\x05"
            "after",
            7);
        char got[16];
        CHECK_OK(ferry_socket_setopt_int(g_pull, FERRY_OPT_RCVTIMEO, 2000));
        ssize_t rc = ferry_socket_recv(g_pull, got, sizeof got, 0, NULL);
        CHECK_OK(ferry_socket_setopt_int(g_pull, FERRY_OPT_RCVTIMEO, 10000));
        if (rc == FERRY_EAGAIN || rc == FERRY_ETIMEDOUT)
            expect_dropped(fd, "second READY");
        else {
            CHECK(rc == 5 && memcmp(got, "after", 5) == 0);
            close(fd);
        }
        good_peer_works("second READY");
    }

    /* Unknown command after READY: RFC 37 says ignore it; the message behind it
     * arrives. */
    {
        uint8_t buf[1024];
        int fd = raw_connect();
        size_t g = greeting_ready(buf, FERRY_PUSH);
        ssize_t n = fy_zmtp_command_encode(buf + g, sizeof buf - g, "FOOBAR", "xyz", 3);
        CHECK(n > 0);
        g += (size_t)n;
        memcpy(buf + g,
               "\x00\x04"
               "data",
               6);
        put(fd, buf, g + 6);
        char got[16];
        CHECK_RC(ferry_socket_recv(g_pull, got, sizeof got, 0, NULL), 4);
        CHECK(memcmp(got, "data", 4) == 0);
        close(fd);
        good_peer_works("unknown command after READY");
    }

    /* A near-maximum claim (1 GiB) with 1 MiB actually sent, then silence: the
     * memory held must follow the bytes that arrived, not the claim. */
    {
        uint8_t buf[1024];
        long rss0 = status_kib("VmRSS"), data0 = status_kib("VmData");
        int fd = raw_connect();
        put(fd, buf, greeting_ready(buf, FERRY_PUSH));
        long_header(h, 0, FY_ZMTP_DEFAULT_MAX_MSG);
        put(fd, h, 9);
        static uint8_t chunk[1 << 20];
        memset(chunk, 0x5a, sizeof chunk);
        put_driving(fd, chunk, sizeof chunk);
        good_peer_works("1 GiB claim, 1 MiB sent"); /* the control thread keeps up */
        long rss1 = status_kib("VmRSS"), data1 = status_kib("VmData");
        printf("  1 GiB claim with 1 MiB sent: VmRSS %+ld KiB, VmData %+ld KiB\n", rss1 - rss0,
               data1 - data0);
#ifndef HARDEN_TSAN
        CHECK(rss1 - rss0 < 64 * 1024);
#endif
#ifndef HARDEN_ASAN
        CHECK(data1 - data0 < 64 * 1024); /* ASan reserves its own arenas: VmData means little */
#endif
        close(fd);
        good_peer_works("1 GiB claim closed");
    }
}

/* One byte every 50 ms; the good peer is served between bytes. */
static void slowloris(long nbytes)
{
    uint8_t buf[1024];
    size_t total = greeting_ready(buf, FERRY_PUSH);
    memcpy(buf + total, "\x00\x04slow", 6);
    total += 6;
    int fd = raw_connect();
    size_t i = 0;
    for (; i < total && (long)i < nbytes; i++) {
        put(fd, buf + i, 1);
        good_peer_works("slowloris byte");
        struct timespec ts = {0, 50 * 1000000};
        nanosleep(&ts, NULL); /* the attack's pace, not a wait for state */
    }
    put(fd, buf + i, total - i);
    char got[16];
    CHECK_RC(ferry_socket_recv(g_pull, got, sizeof got, 0, NULL), 4);
    CHECK(memcmp(got, "slow", 4) == 0);
    close(fd);
    good_peer_works("slowloris done");
}

static void connect_and_drop(long n)
{
    uint8_t g[64];
    greeting(g, "NULL");
    for (long i = 0; i < n; i++) {
        int fd = raw_connect();
        switch (i % 4) {
        case 0:
            break; /* nothing at all */
        case 1:
            put(fd, g, 10);
            break;
        case 2:
            put(fd, g, 64);
            break;
        default: {
            /* RST instead of FIN */
            struct linger l = {1, 0};
            setsockopt(fd, SOL_SOCKET, SO_LINGER, &l, sizeof l);
            put(fd, g, 33);
        }
        }
        close(fd);
        if (i % 100 == 99)
            good_peer_works("connect-and-drop storm");
    }
    good_peer_works("connect-and-drop storm end");
}

static void wait_fds(int want)
{
    uint64_t end = tu_now_ns() + 10000000000ull;
    int n;
    while ((n = fd_count()) > want && tu_now_ns() < end) {
        struct timespec ts = {0, 5 * 1000000};
        nanosleep(&ts, NULL); /* polling the fd table with a deadline */
    }
    if (n > want) {
        fprintf(stderr, "fd leak: %d open, %d before the attacks\n", n, want);
        exit(1);
    }
}

static void run(bool tcp)
{
    g_tcp = tcp;
    CHECK_OK(ferry_socket_open(&g_pull, FERRY_PULL));
    CHECK_OK(ferry_socket_open(&g_push, FERRY_PUSH));
    CHECK_OK(ferry_socket_setopt_int(g_pull, FERRY_OPT_RCVTIMEO, 10000));
    char ep[160];
    if (tcp) {
        CHECK_OK(ferry_socket_bind(g_pull, "tcp://127.0.0.1:*"));
        CHECK_OK(ferry_socket_last_endpoint(g_pull, ep, sizeof ep));
        CHECK(sscanf(ep, "tcp://127.0.0.1:%d", &g_port) == 1);
    } else {
        snprintf(g_path, sizeof g_path, "%s/%s", tu_tmpdir(), tu_unique("hs"));
        snprintf(ep, sizeof ep, "ipc://%s", g_path);
        CHECK_OK(ferry_socket_bind(g_pull, ep));
    }
    CHECK_OK(ferry_socket_connect(g_push, ep));
    good_peer_works("start");
    /* Warm-up so the baseline includes the library's steady state. */
    for (int i = 0; i < 50; i++)
        good_peer_works("warm-up");
    int fds0 = fd_count();
    long rss0 = status_kib("VmRSS");

    attacks_greeting();
    attacks_ready();
    attacks_frames();
    slowloris(env_long("FERRY_HARDEN_SLOWLORIS_BYTES", 20));
    long drops = env_long("FERRY_HARDEN_DROP_CLIENTS", 1000);
    connect_and_drop(drops);

    wait_fds(fds0);
    long rss1 = status_kib("VmRSS");
    ferry_stats st;
    CHECK_OK(ferry_socket_stats(g_pull, &st));
    printf("%s: all attacks dropped cleanly; %ld connect-and-drop clients; VmRSS "
           "%ld -> %ld KiB; "
           "fds %d; live peers %u\n",
           tcp ? "tcp" : "ipc", drops, rss0, rss1, fd_count(), st.peers);
#if defined(HARDEN_ASAN)
    /* ASan's allocator keeps the size-class regions the 1000 clients' engines churned through
     * resident: the tcp run grows 7-16.5 MiB under ASan (16 runs; quarantine 4 MiB above) where
     * the plain build grows 1.4 MiB, so 16 MiB failed now and then. The plain build keeps the
     * strict bound; here it only catches runaway growth. What leaks per client is caught by the
     * fd count above and by LeakSanitizer at exit. */
    CHECK(rss1 - rss0 < 48 * 1024);
#elif !defined(HARDEN_TSAN)
    CHECK(rss1 - rss0 < 16 * 1024); /* TSan's shadow and history grow with every access */
#endif
    ferry_socket_close(g_push);
    ferry_socket_close(g_pull);
}

int main(void)
{
    signal(SIGPIPE, SIG_IGN);
    tu_deadline((unsigned)env_long("FERRY_HARDEN_DEADLINE", 110));
    run(true);
    run(false);
    return 0;
}
