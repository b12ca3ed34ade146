/*
 * test_pattern_linkup.c - a SUB/XSUB whose owner subscribes and then makes no ferry call at all
 * still gets its subscriptions to a new publisher: they go out when the link comes up, on the
 * thread that completes it (docs/patterns.md "When pattern code runs"). Checked over ipc, tcp,
 * shm, inproc and fd, with the SUB binding and connecting: a verbose XPUB (every subscribe
 * reported, so a second copy would show) must see the subscription and publish before the SUB's
 * owner makes its first call after connecting, and the SUB's next call (which attaches the pipe)
 * must not send the set again. A second case changes subscriptions on one thread while
 * publishers appear on another, and checks every publisher saw exactly the SUB's changes. A third
 * makes building or sending subscription frames fail (out of memory, through the library's
 * test-only fault hook) while the link comes up and after: everything still reaches the
 * publisher later, and the publisher is never refused.
 */
#include "testutil.h"

#include "ferry/ferry.h"

#include <pthread.h>
#include <sched.h>
#include <stdatomic.h>
#include <stdbool.h>
#include <string.h>
#include <sys/socket.h>
#include <unistd.h>

/* pattern.h's fault sites (the test cannot include the library's private headers). */
#define FY_FAULT_SUB_FRAME_ID 1
#define FY_FAULT_SUB_SEND_ID  2

static void make_url(char *url, size_t cap, const char *tr)
{
    if (strcmp(tr, "ipc") == 0)
        tu_ipc_url(url, cap, "lu");
    else if (strcmp(tr, "tcp") == 0)
        snprintf(url, cap, "tcp://127.0.0.1:%d", tu_free_port());
    else
        snprintf(url, cap, "%s://%s", tr, tu_unique("lu"));
}

/* Links sub and pub over tr; the SUB's side is the binding one when sub_binds. fd://: one
 * socketpair, adopted by both. */
static void link_pair(ferry_socket *sub, ferry_socket *pub, const char *tr, bool sub_binds)
{
    if (strcmp(tr, "fd") == 0) {
        int sv[2];
        CHECK(socketpair(AF_UNIX, SOCK_STREAM | SOCK_CLOEXEC, 0, sv) == 0);
        CHECK_OK(ferry_socket_adopt(sub, sv[0], sv[0]));
        CHECK_OK(ferry_socket_adopt(pub, sv[1], sv[1]));
        return;
    }
    char url[300];
    make_url(url, sizeof url, tr);
    if (sub_binds) {
        CHECK_OK(ferry_socket_bind(sub, url));
        CHECK_OK(ferry_socket_connect(pub, url));
    } else {
        CHECK_OK(ferry_socket_connect(sub, url));
        CHECK_OK(ferry_socket_bind(pub, url));
    }
}

static void case_idle_sub(const char *tr, int subt, bool sub_binds)
{
    printf("  %s %s %s\n", tr, subt == FERRY_SUB ? "SUB" : "XSUB",
           sub_binds ? "binds" : "connects");
    fflush(stdout);
    ferry_socket *sub = tu_open_sock(subt), *x = tu_open_sock(FERRY_XPUB);
    CHECK_OK(ferry_socket_setopt_int(sub, FERRY_OPT_RECONNECT_IVL, 10));
    CHECK_OK(ferry_socket_setopt_int(x, FERRY_OPT_RECONNECT_IVL, 10));
    CHECK_OK(ferry_socket_setopt_int(x, FERRY_OPT_XPUB_VERBOSE, 1));
    CHECK_OK(ferry_socket_setopt_int(x, FERRY_OPT_RCVTIMEO, 4 * TU_TIMEOUT_MS));
    CHECK_OK(ferry_socket_subscribe(sub, "a", 1));
    CHECK_OK(ferry_socket_subscribe(sub, "cc", 2));
    link_pair(sub, x, tr, sub_binds);
    /* From here on the SUB's owner makes no call until the publisher has published. */
    char got[2][8];
    for (int i = 0; i < 2; i++) {
        ssize_t n = ferry_socket_recv(x, got[i], sizeof got[i] - 1, 0, NULL);
        if (n < 0) {
            fprintf(stderr, "%s: the XPUB never saw the idle SUB's subscriptions: %s\n", tr,
                    ferry_errname((int)n));
            exit(1);
        }
        got[i][n] = 0;
    }
    /* One notice per prefix, in any order. */
    bool a_first = strcmp(got[0], "\1a") == 0;
    CHECK(strcmp(got[a_first ? 0 : 1], "\1a") == 0 && strcmp(got[a_first ? 1 : 0], "\1cc") == 0);
    tu_send_str(x, "b-not-for-you", 0);
    tu_send_str(x, "cc-1", 0);
    tu_send_str(x, "a-2", 0);
    /* The owner's first call attaches the pipe and receives what was published meanwhile. */
    tu_recv_str(sub, "cc-1", false);
    tu_recv_str(sub, "a-2", false);
    /* No second copy of the set went out on attach: the next notice is the new prefix. */
    CHECK_OK(ferry_socket_subscribe(sub, "z", 1));
    tu_expect_sub(x, true, "z");
    CHECK_OK(ferry_socket_unsubscribe(sub, "a", 1));
    tu_expect_sub(x, false, "a");
    ferry_socket_close(sub);
    ferry_socket_close(x);
}

/* ---- subscription changes racing with new links ---- */

#define RACE_PUBS     4
#define RACE_PREFIXES 6
#define RACE_TOGGLES  240

typedef struct race {
    ferry_socket *sub;
    _Atomic int toggles; /* subscription changes made so far */
    bool on[RACE_PREFIXES];
} race;

static uint32_t peers_of(ferry_socket *s)
{
    ferry_stats st;
    CHECK_OK(ferry_socket_stats(s, &st));
    return st.peers;
}

static void *race_owner(void *arg)
{
    race *r = arg;
    unsigned seed = 12345;
    uint64_t end = tu_now_ns() + 4ull * TU_TIMEOUT_MS * 1000000u;
    /* Keep changing until every publisher is linked, so links come up between changes. */
    for (int i = 0; i < RACE_TOGGLES || peers_of(r->sub) < RACE_PUBS; i++) {
        CHECK(tu_now_ns() < end);
        seed = seed * 1103515245u + 12345u;
        int k = (int)((seed >> 16) % RACE_PREFIXES);
        char p[2] = {(char)('a' + k), 0};
        /* Toggle, so each change is exactly one frame on the wire (no reference counts). */
        if (r->on[k])
            CHECK_OK(ferry_socket_unsubscribe(r->sub, p, 1));
        else
            CHECK_OK(ferry_socket_subscribe(r->sub, p, 1));
        r->on[k] = !r->on[k];
        atomic_store(&r->toggles, i + 1);
        sched_yield();
    }
    /* Every link is up (and got its snapshot): the marker comes after everything else. */
    CHECK_OK(ferry_socket_subscribe(r->sub, "~end", 4));
    return NULL;
}

static void case_race(const char *tr)
{
    printf("  %s: subscription changes racing with %d new publishers\n", tr, RACE_PUBS);
    fflush(stdout);
    race r = {.sub = tu_open_sock(FERRY_SUB)};
    CHECK_OK(ferry_socket_setopt_int(r.sub, FERRY_OPT_RECONNECT_IVL, 5));
    char urls[RACE_PUBS][300];
    for (int i = 0; i < RACE_PUBS; i++) {
        make_url(urls[i], sizeof urls[i], tr);
        CHECK_OK(ferry_socket_connect(r.sub, urls[i]));
    }
    pthread_t th;
    CHECK(pthread_create(&th, NULL, race_owner, &r) == 0);
    ferry_socket *x[RACE_PUBS];
    for (int i = 0; i < RACE_PUBS; i++) {
        /* Publisher i appears once the owner made i/RACE_PUBS of its changes. */
        uint64_t end = tu_now_ns() + 4ull * TU_TIMEOUT_MS * 1000000u;
        while (atomic_load(&r.toggles) < i * RACE_TOGGLES / RACE_PUBS) {
            CHECK(tu_now_ns() < end);
            usleep(100); /* pacing only: the condition is the owner's progress */
        }
        x[i] = tu_open_sock(FERRY_XPUB);
        CHECK_OK(ferry_socket_setopt_int(x[i], FERRY_OPT_XPUB_VERBOSE, 1));
        CHECK_OK(ferry_socket_setopt_int(x[i], FERRY_OPT_RCVTIMEO, 4 * TU_TIMEOUT_MS));
        CHECK_OK(ferry_socket_bind(x[i], urls[i]));
    }
    CHECK(pthread_join(th, NULL) == 0);
    for (int i = 0; i < RACE_PUBS; i++) {
        /* Per prefix the notices must alternate subscribe/cancel starting with a subscribe (a
         * duplicate shows as two in a row, a lost change as a wrong final state), and end in the
         * SUB's final state. */
        int state[RACE_PREFIXES] = {0};
        for (;;) {
            char b[8];
            ssize_t n = ferry_socket_recv(x[i], b, sizeof b, 0, NULL);
            if (n < 0) {
                fprintf(stderr, "%s publisher %d: %s before the end marker\n", tr, i,
                        ferry_errname((int)n));
                exit(1);
            }
            if (n == 5 && memcmp(b, "\1~end", 5) == 0)
                break;
            CHECK(n == 2 && b[0] <= 1 && b[1] >= 'a' && b[1] < 'a' + RACE_PREFIXES);
            int k = b[1] - 'a';
            if (state[k] == b[0]) {
                fprintf(stderr, "%s publisher %d: prefix %c %s twice in a row\n", tr, i, b[1],
                        b[0] ? "subscribed" : "cancelled");
                exit(1);
            }
            state[k] = b[0];
        }
        for (int k = 0; k < RACE_PREFIXES; k++) {
            if (state[k] != (int)r.on[k]) {
                fprintf(stderr, "%s publisher %d: prefix %c is %d there, %d at the SUB\n", tr, i,
                        'a' + k, state[k], (int)r.on[k]);
                exit(1);
            }
        }
        ferry_socket_close(x[i]);
    }
    ferry_socket_close(r.sub);
}

/* ---- out of memory while subscriptions go out (the library's test-only fault hook) ---- */

#define OOM_PREFIXES 6

/* Makes calls on sub (they attach its pipes and retry what failed) until the XPUB x has seen a
 * subscribe for every prefix in want (bit i: "p<i>"), then checks the last call made no further one
 * fail, and that a message for each prefix reaches sub exactly once. */
static void oom_expect(ferry_socket *sub, ferry_socket *x, unsigned want, int site, int fails)
{
    unsigned seen = 0;
    uint64_t end = tu_now_ns() + (uint64_t)TU_TIMEOUT_MS * 1000000u;
    while ((seen & want) != want) {
        CHECK(ferry_socket_events(sub) >= 0);
        char b[16];
        ssize_t n = ferry_socket_recv(x, b, sizeof b - 1, FERRY_DONTWAIT, NULL);
        if (n == FERRY_EAGAIN) {
            if (tu_now_ns() > end) {
                fprintf(stderr, "subscriptions lost: the XPUB saw %#x of %#x\n", seen, want);
                exit(1);
            }
            ferry_pollitem it = {x, -1, FERRY_POLLIN, 0};
            CHECK(ferry_poll(&it, 1, 2) >= 0);
            continue;
        }
        CHECK(n == 3 && b[0] == 1 && b[1] == 'p' && b[2] >= '0' && b[2] < '0' + OOM_PREFIXES);
        seen |= 1u << (b[2] - '0');
    }
    /* The failures really happened (the case tests something). */
    CHECK(tu_fault_hits() == fails);
    tu_fault_off();
    for (int i = 0; i < OOM_PREFIXES; i++) {
        if (!(want & (1u << i)))
            continue;
        char m[8];
        snprintf(m, sizeof m, "p%d-m", i);
        tu_send_str(x, m, 0);
    }
    tu_send_str(x, "p0-end", 0);
    for (int i = 0; i < OOM_PREFIXES; i++) {
        if (!(want & (1u << i)))
            continue;
        char m[8];
        snprintf(m, sizeof m, "p%d-m", i);
        tu_recv_str(sub, m, false);
    }
    tu_recv_str(sub, "p0-end", false); /* nothing twice in between */
}

/*
 * The SUB subscribed to p0..p5 before connecting; while its link comes up (link_up, on the
 * connecting thread for inproc://, the control thread for ipc://), building or sending one of
 * those frames fails: from call `skip` on, `fail` calls fail. The rest must still reach the
 * publisher later (at attach, or on a later call while memory stays short), without refusing
 * the publisher. Then, attached, a subscribe whose send fails is also repeated.
 */
static void case_oom(const char *tr, int subt, int site, int skip, int fail)
{
    printf("  out of memory at link-up: %s %s, %s fails from call %d, %d time(s)\n", tr,
           subt == FERRY_SUB ? "SUB" : "XSUB", site == 1 ? "frame" : "send", skip, fail);
    ferry_socket *sub = tu_open_sock(subt), *x = tu_open_sock(FERRY_XPUB);
    /* A refused link would come back only after a minute: the test would see it lost. */
    CHECK_OK(ferry_socket_setopt_int(sub, FERRY_OPT_RECONNECT_IVL, 60000));
    /* Not verbose: a prefix sent twice (a resend repeats the whole set) is reported once. */
    for (int i = 0; i < OOM_PREFIXES; i++) {
        char pfx[4] = {'p', (char)('0' + i), 0, 0};
        CHECK_OK(ferry_socket_subscribe(sub, pfx, 2));
    }
    char url[300];
    make_url(url, sizeof url, tr);
    CHECK_OK(ferry_socket_bind(x, url));
    tu_fault_arm(site, skip, fail);
    CHECK_OK(ferry_socket_connect(sub, url));
    oom_expect(sub, x, (1u << OOM_PREFIXES) - 1, site, fail);
    /* Attached: a subscribe that the pipe cannot take goes out again on a later call. */
    CHECK_OK(ferry_socket_unsubscribe(sub, "p1", 2));
    tu_expect_sub(x, false, "p1");
    tu_fault_arm(FY_FAULT_SUB_SEND_ID, 0, 1);
    CHECK_OK(ferry_socket_subscribe(sub, "p1", 2));
    oom_expect(sub, x, 1u << 1, FY_FAULT_SUB_SEND_ID, 1);
    if (subt == FERRY_XSUB) {
        /* The pipe's resend mark and the upstream fan-out's per-pipe bit live side by side. */
        tu_send_str(sub, "up", FERRY_MORE);
        tu_send_str(sub, "stream", 0);
        tu_recv_str(x, "up", true);
        tu_recv_str(x, "stream", false);
    }
    ferry_socket_close(sub);
    ferry_socket_close(x);
}

int main(void)
{
    tu_deadline(120);
    setvbuf(stdout, NULL, _IOLBF, 0);
    const char *trs[] = {"ipc", "tcp", "shm", "inproc"};
    for (size_t t = 0; t < sizeof trs / sizeof trs[0]; t++) {
        for (int b = 0; b < 2; b++) {
            case_idle_sub(trs[t], FERRY_SUB, b == 1);
            case_idle_sub(trs[t], FERRY_XSUB, b == 1);
        }
    }
    case_idle_sub("fd", FERRY_SUB, false);
    case_idle_sub("fd", FERRY_XSUB, false);
    for (size_t t = 0; t < sizeof trs / sizeof trs[0]; t++)
        case_race(trs[t]);
    const char *oom_trs[] = {"inproc", "ipc"};
    for (int t = 0; t < 2; t++) {
        const char *tr = oom_trs[t];
        case_oom(tr, FERRY_SUB, FY_FAULT_SUB_FRAME_ID, 2, 1); /* attach repairs it */
        case_oom(tr, FERRY_SUB, FY_FAULT_SUB_FRAME_ID, 2, 4); /* attach's repair fails too */
        case_oom(tr, FERRY_SUB, FY_FAULT_SUB_SEND_ID, 1, 1);  /* the pipe refuses one frame */
        case_oom(tr, FERRY_XSUB, FY_FAULT_SUB_SEND_ID, 3, 2);
    }
    printf("test_pattern_linkup: ok\n");
    return 0;
}
