/*
 * test_transport_oom.c - the stream engine's send path out of memory. docs/api.md: FERRY_ENOMEM
 * from a send means the frame was not taken, the message stays open, and sending the same frame
 * again makes the peer receive the message once, whole. So the engine must queue nothing of a
 * frame it refuses: a frame queued and then reported refused reaches the peer twice (the retry),
 * and a frame header queued without its body makes the peer parse whatever follows as the body.
 *
 * The library's test-only fault hook (fy_test_fault, pattern.h) makes the engine's two
 * reservations fail on demand: FY_FAULT_ENG_END (room to record where a message ends, for
 * SNDHWM) and FY_FAULT_ENG_SEG (room for the output segments a frame starts: a large frame's
 * header and referenced body, a small frame's bytes after a large frame). Over ipc:// (plain
 * ZMTP, no shm upgrade) and tcp://, each site fails every frame position it applies to in
 * single-frame and multipart messages with small (copied) and large (64 KiB+, queued by
 * reference for writev) frames, and the end site the first message of a link (where the engine
 * first allocates that ring); the application sends again as the contract says. A ferry PULL must
 * then receive every message exactly once, whole, in order, with no link error on either side and
 * its one peer still there. The same run against a hand-driven peer on an adopted socketpair
 * decodes the raw byte stream with zmtp.c and checks every frame header and body. A PUB (whose
 * per-subscriber pipe refusing a later frame of a message owes that subscriber the rest, dist.c) is
 * checked the same way with a SUB.
 */
#include "core/ctl.h"
#include "ferry/ferry.h"
#include "testutil.h"
#include "wire/zmtp.h"

#include <errno.h>
#include <poll.h>
#include <pthread.h>
#include <stdatomic.h>
#include <stdbool.h>
#include <stdint.h>
#include <string.h>
#include <sys/socket.h>
#include <unistd.h>

/* pattern.h's engine sites (the test does not include the pattern layer's header). */
#define SITE_END 4
#define SITE_SEG 5
/* Armed with tu_fault_arm_here: only the test's own thread fails, the control thread's link-up
 * and heartbeat writes are not what is being tested. */

/* ---- the schedule: which messages, which frame fails where ---- */

#define SMALL     100
#define MID       300   /* long header form, still copied */
#define LARGE     70000 /* above the engine's copy limit and the 64 KiB read buffer */
#define SMALL_MAX 8192  /* the engine copies frames up to this size (FY_ENG_COPY_MAX) */
#define MAXF      3
#define MAXMSG    96

typedef struct shape {
    int nf;
    size_t sz[MAXF];
} shape;

static const shape shapes[] = {
    {1, {SMALL}}, {1, {LARGE}}, {1, {0}}, {3, {SMALL, LARGE, MID}}, {3, {LARGE, 0, LARGE}},
};
#define NSHAPES (int)(sizeof shapes / sizeof shapes[0])
static const shape after_large = {1, {LARGE}};

static const int sites[] = {SITE_END, SITE_SEG};
#define NSITES (int)(sizeof sites / sizeof sites[0])

/* What was sent, for the receivers to check against. */
static shape sent[MAXMSG];
static uint32_t nsent;

static uint8_t fbuf[LARGE];
static const char *tr_name;

static ferry_stats stats(ferry_socket *s)
{
    ferry_stats st;
    CHECK_OK(ferry_socket_stats(s, &st));
    return st;
}

/*
 * Sends frame k of message i. When site is set, the first `fails` attempts must fail with
 * FERRY_ENOMEM at once (blocking and DONTWAIT alternately), count nothing and, for a
 * single-frame ferry_msg_send, leave the msg its content; then the same frame is sent again.
 * Single-frame messages go through ferry_msg_send: ferry_socket_send would give a small one to
 * the engine's single-frame fast path, which has no fault site. retried: the application does
 * not see the refusal (PUB), so nothing is sent again here.
 */
static void send_frame(ferry_socket *s, const shape *sh, uint32_t i, int k, int site, int fails,
                       bool retried)
{
    size_t n = sh->sz[k];
    int flags = k + 1 < sh->nf ? FERRY_MORE : 0;
    ferry_stats before = stats(s);
    tu_fill_frame(fbuf, n, i, (uint32_t)k);
    ferry_msg m;
    bool use_msg = sh->nf == 1;
    if (use_msg) {
        CHECK_OK(ferry_msg_init_size(&m, n));
        if (n)
            memcpy(ferry_msg_data(&m), fbuf, n);
    }
    if (site && retried) {
        tu_fault_arm_here(site, 0, fails);
        for (int a = 0; a < fails; a++) {
            int fl = flags | (a & 1 ? FERRY_DONTWAIT : 0);
            uint64_t t0 = tu_now_ns();
            int rc = use_msg ? ferry_msg_send(s, &m, fl) : ferry_socket_send(s, fbuf, n, fl);
            if (rc != FERRY_ENOMEM) {
                fprintf(stderr,
                        "%s: message %u frame %d (%zu B) site %d attempt %d: %s, expected "
                        "FERRY_ENOMEM\n",
                        tr_name, i, k, n, site, a, tu_errname(rc));
                exit(1);
            }
            CHECK(tu_now_ns() - t0 < 2000000000ull); /* not waited for */
            CHECK(tu_fault_hits() == a + 1);
            ferry_stats st = stats(s);
            CHECK(st.bytes_out == before.bytes_out && st.msgs_out == before.msgs_out);
            if (use_msg) {
                /* docs/api.md: ferry_msg_send leaves m its content on failure. */
                CHECK(ferry_msg_size(&m) == n);
                CHECK(n == 0 || tu_frame_ok(ferry_msg_data(&m), n, n, i, (uint32_t)k));
            }
        }
        tu_fault_off();
    } else if (site) {
        tu_fault_arm_here(site, 0, fails);
    }
    int rc = use_msg ? ferry_msg_send(s, &m, flags) : ferry_socket_send(s, fbuf, n, flags);
    if (rc != 0) {
        fprintf(stderr, "%s: message %u frame %d (%zu B): %s\n", tr_name, i, k, n, tu_errname(rc));
        exit(1);
    }
    if (site && !retried) {
        CHECK(tu_fault_hits() == fails);
        tu_fault_off();
    }
    if (use_msg)
        ferry_msg_fini(&m);
    ferry_stats st = stats(s);
    CHECK(st.bytes_out == before.bytes_out + n);
    CHECK(st.msgs_out == before.msgs_out + (flags ? 0 : 1));
}

static void send_msg(ferry_socket *s, const shape *sh, int fk, int site, int fails, bool retried)
{
    CHECK(nsent < MAXMSG);
    uint32_t i = nsent;
    sent[nsent++] = *sh;
    for (int k = 0; k < sh->nf; k++)
        send_frame(s, sh, i, k, k == fk ? site : 0, fails, retried);
}

/*
 * Every shape, every frame at the segment site, the last frame at the end site (the only frame
 * that records an end), each followed by a message that meets no failure. A small frame starts
 * a segment only after a large one (or on an idle link), so at the segment site a small first
 * frame comes after a large message, and a small later frame must follow a large one (as in
 * every multipart shape here). first_frame: whether a failing first frame is to be tried (a PUB
 * drops a message whose first frame a subscriber's pipe refuses, documented; it owes only later
 * frames).
 */
static void send_schedule(ferry_socket *s, bool retried, bool first_frame)
{
    for (int h = 0; h < NSHAPES; h++) {
        const shape *sh = &shapes[h];
        for (int k = first_frame ? 0 : 1; k < sh->nf; k++) {
            for (int si = 0; si < NSITES; si++) {
                int site = sites[si];
                if (site == SITE_END && k != sh->nf - 1)
                    continue;
                if (site == SITE_SEG && sh->sz[k] <= SMALL_MAX) {
                    if (k == 0)
                        send_msg(s, &after_large, -1, 0, 0, retried);
                    else
                        CHECK(sh->sz[k - 1] > SMALL_MAX);
                }
                send_msg(s, sh, k, site, retried ? 2 : 1, retried);
                send_msg(s, &shapes[(h + 1) % NSHAPES], -1, 0, 0, retried);
            }
        }
    }
}

static uint8_t rbuf[LARGE + 64];

/* Receives message i of `sent` whole on a ferry socket. */
static void recv_msg(ferry_socket *s, uint32_t i)
{
    const shape *sh = &sent[i];
    for (int k = 0; k < sh->nf; k++) {
        int more = -1;
        ssize_t n = ferry_socket_recv(s, rbuf, sizeof rbuf, 0, &more);
        if (n < 0) {
            fprintf(stderr, "%s: message %u frame %d: %s\n", tr_name, i, k, tu_errname((int)n));
            exit(1);
        }
        if (more != (k + 1 < sh->nf) || !tu_frame_ok(rbuf, (size_t)n, sh->sz[k], i, (uint32_t)k)) {
            fprintf(stderr,
                    "%s: message %u frame %d: got %zd bytes (more %d), expected %zu (more %d)%s\n",
                    tr_name, i, k, n, more, sh->sz[k], k + 1 < sh->nf,
                    (size_t)n == sh->sz[k] ? ", wrong bytes" : "");
            exit(1);
        }
    }
}

/* After the last message nothing more arrives (a duplicated frame would sit before it, but a
 * second copy of the last one would not) and no link error was recorded on either side. */
static void check_end(ferry_socket *tx, ferry_socket *rx)
{
    ferry_pollitem it = {rx, -1, FERRY_POLLIN, 0};
    CHECK(ferry_poll(&it, 1, 50) == 0);
    CHECK_RC(ferry_socket_recv(rx, rbuf, sizeof rbuf, FERRY_DONTWAIT, NULL), FERRY_EAGAIN);
    if (fy_ctl_link_errors(tx) || fy_ctl_link_errors(rx)) {
        fprintf(stderr, "%s: link errors: sender %llu (%s), receiver %llu (%s)\n", tr_name,
                (unsigned long long)fy_ctl_link_errors(tx),
                fy_ctl_last_error(tx) ? fy_ctl_last_error(tx) : "-",
                (unsigned long long)fy_ctl_link_errors(rx),
                fy_ctl_last_error(rx) ? fy_ctl_last_error(rx) : "-");
        exit(1);
    }
    CHECK(stats(tx).peers == 1 && stats(rx).peers == 1);
}

static void make_url(char *url, size_t cap, const char *tr)
{
    if (strcmp(tr, "ipc") == 0)
        tu_ipc_url(url, cap, "eoom");
    else
        snprintf(url, cap, "tcp://127.0.0.1:%d", tu_free_port());
}

static ferry_socket *open_sock(int type)
{
    ferry_socket *s = tu_open_sock(type);
    CHECK_OK(ferry_socket_setopt_int(s, FERRY_OPT_SHM_UPGRADE, 0));
    return s;
}

/* PUSH -> PULL: the application retries each refused frame. */
static void case_push(const char *tr)
{
    tr_name = tr;
    printf("  %s PUSH -> PULL\n", tr);
    fflush(stdout);
    nsent = 0;
    char url[300];
    make_url(url, sizeof url, tr);
    ferry_socket *pull = open_sock(FERRY_PULL), *push = open_sock(FERRY_PUSH);
    CHECK_OK(ferry_socket_bind(pull, url));
    CHECK_OK(ferry_socket_connect(push, url));
    tu_wait_peers(push, 1);
    /* The first whole message of a link is where the engine allocates its end-offset ring: even
     * ferry_socket_send's single-frame fast path leaves it to the general path. */
    static const shape first = {1, {SMALL}};
    CHECK(nsent < MAXMSG);
    sent[nsent] = first;
    tu_fill_frame(fbuf, SMALL, nsent, 0);
    tu_fault_arm_here(SITE_END, 0, 1);
    CHECK_RC(ferry_socket_send(push, fbuf, SMALL, 0), FERRY_ENOMEM);
    CHECK(tu_fault_hits() == 1);
    tu_fault_off();
    CHECK_OK(ferry_socket_send(push, fbuf, SMALL, 0));
    nsent++;
    send_schedule(push, true, true);
    for (uint32_t i = 0; i < nsent; i++)
        recv_msg(pull, i);
    CHECK(stats(push).msgs_out == nsent && stats(pull).msgs_in == nsent);
    check_end(push, pull);
    ferry_socket_close(push);
    ferry_socket_close(pull);
}

/* PUB -> SUB: the PUB does not report a subscriber's refusal of a later frame; it owes that
 * subscriber the rest and hands it over on its next send (dist.c). */
static void case_pub(const char *tr)
{
    tr_name = tr;
    printf("  %s PUB -> SUB\n", tr);
    fflush(stdout);
    char url[300];
    make_url(url, sizeof url, tr);
    ferry_socket *sub = open_sock(FERRY_SUB), *pub = open_sock(FERRY_PUB);
    CHECK_OK(ferry_socket_subscribe(sub, "", 0));
    CHECK_OK(ferry_socket_bind(pub, url));
    CHECK_OK(ferry_socket_connect(sub, url));
    /* The subscription has arrived when a probe gets through. */
    uint64_t end = tu_now_ns() + (uint64_t)TU_TIMEOUT_MS * 1000000u;
    for (;;) {
        CHECK_OK(ferry_socket_send(pub, "probe", 5, 0));
        if (ferry_socket_recv(sub, rbuf, sizeof rbuf, FERRY_DONTWAIT, NULL) == 5)
            break;
        CHECK(tu_now_ns() < end);
        ferry_pollitem it = {sub, -1, FERRY_POLLIN, 0};
        ferry_poll(&it, 1, 5);
    }
    while (ferry_socket_recv(sub, rbuf, sizeof rbuf, FERRY_DONTWAIT, NULL) == 5) {
        ferry_pollitem it = {sub, -1, FERRY_POLLIN, 0};
        ferry_poll(&it, 1, 20);
    }
    nsent = 0;
    send_schedule(pub, false, false);
    /* Whatever the subscriber is still owed goes out with the next send. */
    static const shape last = {1, {SMALL}};
    send_msg(pub, &last, -1, 0, 0, false);
    for (uint32_t i = 0; i < nsent; i++)
        recv_msg(sub, i);
    check_end(pub, sub);
    ferry_socket_close(pub);
    ferry_socket_close(sub);
}

/* ---- a hand-driven peer: the raw byte stream, decoded by zmtp.c ---- */

/* Greeting (ZMTP 3.1, NULL) and READY announcing Socket-Type PULL. */
static void raw_handshake(int fd)
{
    uint8_t g[FY_ZMTP_GREETING_SIZE];
    CHECK(fy_zmtp_greeting_encode(g, 1, "NULL", 0) == FY_ZMTP_GREETING_SIZE);
    tu_write_all(fd, g, sizeof g);
    uint8_t r[256];
    ssize_t n = fy_zmtp_ready_encode(r, sizeof r, FERRY_PULL, NULL, 0, NULL);
    CHECK(n > 0);
    tu_write_all(fd, r, (size_t)n);
}

typedef struct rawin {
    int fd;
    uint8_t *buf;
    size_t r, w, cap;
} rawin;

/* Makes at least want bytes available at in->buf + in->r (10 s at most without progress). */
static void raw_need(rawin *in, size_t want)
{
    while (in->w - in->r < want) {
        if (in->r > 0) {
            memmove(in->buf, in->buf + in->r, in->w - in->r);
            in->w -= in->r;
            in->r = 0;
        }
        CHECK(in->cap - in->r >= want);
        struct pollfd pf = {.fd = in->fd, .events = POLLIN};
        if (poll(&pf, 1, 10000) != 1) {
            fprintf(stderr, "raw: stream stalled with %zu bytes of a %zu-byte need\n",
                    in->w - in->r, want);
            exit(1);
        }
        ssize_t n = read(in->fd, in->buf + in->w, in->cap - in->w);
        CHECK(n > 0);
        in->w += (size_t)n;
    }
}

/* The next data frame (command frames, READY among them, are skipped): its flags and body. */
static const uint8_t *raw_frame(rawin *in, fy_zmtp_frame *f)
{
    for (;;) {
        for (;;) {
            uint64_t need = 0;
            int rc = fy_zmtp_frame_decode(in->buf + in->r, in->w - in->r, NULL, f, &need);
            if (rc < 0) {
                fprintf(stderr, "raw: invalid frame: %s\n", tu_errname(rc));
                exit(1);
            }
            if (rc == 1)
                break;
            raw_need(in, in->w - in->r + (size_t)need);
        }
        const uint8_t *body = in->buf + in->r + f->header_len;
        in->r += f->header_len + (size_t)f->size;
        if (!fy_zmtp_frame_is_command(f))
            return body;
    }
}

static void case_raw(void)
{
    tr_name = "fd (raw peer)";
    printf("  fd PUSH -> raw ZMTP decoder\n");
    fflush(stdout);
    nsent = 0;
    int sp[2];
    CHECK(socketpair(AF_UNIX, SOCK_STREAM | SOCK_CLOEXEC, 0, sp) == 0);
    ferry_socket *push = open_sock(FERRY_PUSH);
    CHECK_OK(ferry_socket_adopt(push, sp[0], sp[0]));
    raw_handshake(sp[1]);
    rawin in = {.fd = sp[1], .cap = 4 * LARGE};
    in.buf = malloc(in.cap);
    CHECK(in.buf);
    raw_need(&in, FY_ZMTP_GREETING_SIZE);
    fy_zmtp_greeting g;
    CHECK(fy_zmtp_greeting_check(in.buf, FY_ZMTP_GREETING_SIZE, &g) == FY_ZMTP_GREETING_SIZE);
    in.r = FY_ZMTP_GREETING_SIZE;
    tu_wait_peers(push, 1);
    send_schedule(push, true, true);
    for (uint32_t i = 0; i < nsent; i++) {
        for (int k = 0; k < sent[i].nf; k++) {
            fy_zmtp_frame f;
            const uint8_t *body = raw_frame(&in, &f);
            bool more = fy_zmtp_frame_more(&f);
            if (more != (k + 1 < sent[i].nf) ||
                !tu_frame_ok(body, (size_t)f.size, sent[i].sz[k], i, (uint32_t)k)) {
                fprintf(stderr,
                        "raw: message %u frame %d: header says %llu bytes (more %d), expected %zu "
                        "(more %d)%s\n",
                        i, k, (unsigned long long)f.size, more, sent[i].sz[k], k + 1 < sent[i].nf,
                        f.size == sent[i].sz[k] ? ", wrong bytes" : "");
                exit(1);
            }
        }
    }
    /* Nothing after the last message. */
    CHECK(in.r == in.w);
    struct pollfd pf = {.fd = sp[1], .events = POLLIN};
    CHECK(poll(&pf, 1, 50) == 0);
    CHECK(fy_ctl_link_errors(push) == 0 && stats(push).peers == 1);
    ferry_socket_close(push);
    close(sp[1]);
    free(in.buf);
}

int main(void)
{
    tu_deadline(100);
    static const char *trs[] = {"ipc", "tcp"};
    for (int t = 0; t < 2; t++) {
        case_push(trs[t]);
        case_pub(trs[t]);
    }
    case_raw();
    printf("ok\n");
    return 0;
}
